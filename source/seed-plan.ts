import { hash32, mix32, Random } from './random.js';
import {
  ACCOUNT_NAMES,
  COUNTRIES,
  CURRENCIES,
  FIRST_NAMES,
  LAST_NAMES,
  LINK_METADATA,
  PROGRAMME_NAMES,
  SLUG_WORDS,
  TIMEZONES,
  TRAFFIC_SOURCE_KINDS,
  TRAFFIC_SOURCE_NAMES,
  URL_PATHS,
} from './synthetic-values.js';

/**
 * The entity side of a synthetic data set, decided up front and kept in memory (it is small: a few
 * rows per thousand clicks). Clicks, conversions and payouts are derived from it row by row.
 *
 * Ids: account `a` (1..N) owns the ids `a * 10^9 + 1 …` of every entity stream, so accounts never
 * collide and an id tells its account.
 */

/** Ids of an account's entities start at `account * ID_BLOCK + 1`. */
export const ID_BLOCK = 1_000_000_000;

/** Times are milliseconds since the epoch. */
export interface Lifecycle {
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly deletedAt: number | null;
}

export interface ProgrammePlan extends Lifecycle {
  readonly id: number;
  readonly name: string;
  readonly commissionType: 'percentage' | 'fixed';
  /** In ten-thousandths (percent for `percentage`, currency units for `fixed`). */
  readonly commissionValue: number;
  readonly status: string;
}

export type PayoutCadence = 'daily' | 'weekly' | 'monthly';

export interface AffiliatePlan extends Lifecycle {
  readonly id: number;
  readonly name: string;
  readonly email: string | null;
  readonly country: string | null;
  readonly status: string;
  readonly cadence: PayoutCadence;
}

export interface TrafficSourcePlan extends Lifecycle {
  readonly id: number;
  readonly affiliateId: number;
  readonly name: string;
  readonly kind: string;
}

export interface LinkPlan extends Lifecycle {
  readonly id: number;
  readonly programme: ProgrammePlan;
  readonly affiliateId: number;
  readonly trafficSourceId: number | null;
  readonly url: string;
  readonly slug: string;
  readonly metadata: string | null;
}

export interface AccountPlan extends Lifecycle {
  readonly id: number;
  readonly name: string;
  readonly currency: string;
  readonly timezone: string;
  /** Clicks of this account, and the global index of its first click. */
  readonly clicks: number;
  readonly firstClick: number;
  readonly programmes: readonly ProgrammePlan[];
  readonly affiliates: readonly AffiliatePlan[];
  readonly trafficSources: readonly TrafficSourcePlan[];
  /** Most clicked first. */
  readonly links: readonly LinkPlan[];
}

export interface SeedPlan {
  readonly seed: number;
  readonly startMs: number;
  readonly endMs: number;
  readonly totalClicks: number;
  readonly accounts: readonly AccountPlan[];
}

export interface PlanOptions {
  readonly seed: number;
  readonly accounts: number;
  readonly rows: number;
  readonly endMs: number;
  readonly days: number;
}

/** Splits `total` over weights exactly (largest remainder). */
export function allocate(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  const exact = weights.map((w) => (total * w) / sum);
  const counts = exact.map(Math.floor);
  let left = total - counts.reduce((a, b) => a + b, 0);
  const order = exact
    .map((e, i) => [e - Math.floor(e), i] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let k = 0; left > 0; k = (k + 1) % order.length, left--) counts[order[k]![1]]! += 1;
  return counts;
}

/**
 * A lifecycle after `createdAt`: most rows never change, some are updated later, a few are soft
 * deleted (then `updatedAt = deletedAt`). Every time stays at or before `endMs`.
 */
function lifecycle(
  rng: Random,
  createdAt: number,
  endMs: number,
  pDelete: number,
  pUpdate = 0.25,
): Lifecycle {
  const r = rng.next();
  const later = () => createdAt + 1 + Math.floor(rng.next() * (endMs - createdAt - 1));
  if (r < pDelete) {
    const at = later();
    return { createdAt, updatedAt: at, deletedAt: at };
  }
  if (r < pDelete + pUpdate) return { createdAt, updatedAt: later(), deletedAt: null };
  return { createdAt, updatedAt: createdAt, deletedAt: null };
}

/** Builds the entity plan: accounts, programmes, affiliates, traffic sources and links. */
export function planSeed(options: PlanOptions): SeedPlan {
  const { seed, endMs } = options;
  const span = Math.floor(options.days * 86_400_000);
  const startMs = endMs - span;
  const step = Math.max(1, Math.floor(span / 1000));
  const rng = new Random(mix32(seed ^ 0x5eed));
  const weights = Array.from(
    { length: options.accounts },
    (_, i) => (0.7 + 0.6 * rng.next()) / (i + 1) ** 1.1,
  );
  const clickCounts = allocate(options.rows, weights);
  let firstClick = 0;
  const accounts: AccountPlan[] = [];
  for (let a = 0; a < options.accounts; a++) {
    const id = a + 1;
    const clicks = clickCounts[a]!;
    const accountRng = new Random(hash32(seed, id, 7));
    accounts.push(planAccount(accountRng, id, clicks, firstClick, startMs, endMs, span, step));
    firstClick += clicks;
  }
  return { seed, startMs, endMs, totalClicks: options.rows, accounts };
}

function planAccount(
  rng: Random,
  id: number,
  clicks: number,
  firstClick: number,
  startMs: number,
  endMs: number,
  span: number,
  step: number,
): AccountPlan {
  const createdAt = startMs + Math.floor(rng.next() * span * 0.02);
  const life = lifecycle(rng, createdAt, endMs, id > 3 ? 0.03 : 0);
  const currency = rng.pick(CURRENCIES);
  const base = id * ID_BLOCK;

  const programmes: ProgrammePlan[] = [];
  const programmeCount = rng.between(3, 6);
  for (let k = 1; k <= programmeCount; k++) {
    const created = createdAt + step + Math.floor(rng.next() * span * 0.05);
    const pl = lifecycle(rng, created, endMs, 0.04);
    const percentage = rng.chance(0.6);
    programmes.push({
      ...pl,
      id: base + k,
      name: `${rng.pick(PROGRAMME_NAMES)} ${k}`,
      commissionType: percentage ? 'percentage' : 'fixed',
      commissionValue: percentage ? rng.between(20_000, 300_000) : rng.between(10_000, 1_500_000),
      status: pl.deletedAt !== null ? 'archived' : rng.chance(0.85) ? 'active' : 'paused',
    });
  }

  const affiliates: AffiliatePlan[] = [];
  const trafficSources: TrafficSourcePlan[] = [];
  const links: LinkPlan[] = [];
  const affiliateCount = Math.max(5, Math.round((clicks / 2000) * (0.8 + 0.4 * rng.next())));
  for (let k = 1; k <= affiliateCount; k++) {
    const affId = base + k;
    const created = createdAt + step + Math.floor(rng.next() ** 2 * span * 0.5);
    const al = lifecycle(rng, created, endMs, 0.04);
    const emailRoll = rng.next();
    affiliates.push({
      ...al,
      id: affId,
      name: `${rng.pick(FIRST_NAMES)} ${rng.pick(LAST_NAMES)}`,
      email: emailRoll < 0.08 ? null : emailRoll < 0.13 ? '' : `affiliate.${affId}@example.com`,
      country: rng.chance(0.07) ? null : rng.pick(COUNTRIES),
      status:
        al.deletedAt !== null ? 'archived' : rng.chance(0.8) ? 'active' : rng.pick(['pending', 'suspended']),
      cadence: rng.chance(0.3) ? 'daily' : rng.chance(0.75) ? 'weekly' : 'monthly',
    });
    const sourceRoll = rng.next();
    const sourceCount = sourceRoll < 0.25 ? 0 : sourceRoll < 0.65 ? 1 : sourceRoll < 0.9 ? 2 : 3;
    const sources: TrafficSourcePlan[] = [];
    for (let s = 0; s < sourceCount; s++) {
      const tsCreated = created + step + Math.floor(rng.next() * span * 0.05);
      const source = {
        ...lifecycle(rng, tsCreated, endMs, 0.04),
        id: base + trafficSources.length + 1,
        affiliateId: affId,
        name: rng.pick(TRAFFIC_SOURCE_NAMES),
        kind: rng.pick(TRAFFIC_SOURCE_KINDS),
      };
      sources.push(source);
      trafficSources.push(source);
    }
    const linkCount = rng.between(1, 4);
    for (let l = 0; l < linkCount; l++) {
      const programme = rng.pick(programmes);
      const source = sources.length > 0 && rng.chance(0.7) ? rng.pick(sources) : null;
      const after = Math.max(programme.createdAt, created, source?.createdAt ?? 0);
      const linkCreated = after + step + Math.floor(rng.next() * span * 0.05);
      const linkId = base + links.length + 1;
      const slug = `${rng.pick(SLUG_WORDS)}-${linkId.toString(36)}`;
      links.push({
        ...lifecycle(rng, linkCreated, endMs, 0.03),
        id: linkId,
        programme,
        affiliateId: affId,
        trafficSourceId: source?.id ?? null,
        url: `https://shop${id}.example.com${rng.pick(URL_PATHS)}${rng.chance(0.5) ? '' : `#${slug}`}`,
        slug,
        metadata: rng.chance(0.2) ? null : rng.pick(LINK_METADATA),
      });
    }
  }
  // a few links get most clicks: shuffle, the clicker favours the front of the list
  for (let i = links.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [links[i], links[j]] = [links[j]!, links[i]!];
  }
  return {
    ...life,
    id,
    name: `${rng.pick(ACCOUNT_NAMES)} ${id}`,
    currency,
    timezone: rng.pick(TIMEZONES),
    clicks,
    firstClick,
    programmes,
    affiliates,
    trafficSources,
    links,
  };
}
