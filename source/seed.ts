import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { z } from 'zod';
import { trackingCatalog } from '../catalog/tracking.js';
import { getStream } from '../catalog/types.js';
import { UsageError, WharfError } from '../core/errors.js';
import { classifyPgError } from '../db/postgres/errors.js';
import { quotePg } from '../db/postgres/quote.js';
import { deterministicUuid, hash32, Random } from './random.js';
import {
  type AccountPlan,
  type AffiliatePlan,
  ID_BLOCK,
  type LinkPlan,
  planSeed,
  type SeedPlan,
} from './seed-plan.js';
import { PRESERVE_UPDATED_AT_SETTING, stampTriggerName } from './source-schema.js';
import { suspendConstraints } from './suspend-constraints.js';
import {
  COUNTRIES,
  csvField,
  DEVICES,
  decimal4,
  isoDate,
  isoTime,
  MAX_MONEY,
  REFERRERS,
  USER_AGENTS,
} from './synthetic-values.js';

/** Options of `seedSource`. */
export interface SeedOptions {
  /** Number of customer accounts (ids 1..N). */
  readonly accounts: number;
  /** Clicks in all, spread unevenly over the accounts; the other streams follow in proportion. */
  readonly rows: number;
  /** Same seed (and accounts, rows, end, days), same data. Default 1. */
  readonly seed?: number;
  /** Source schema. Default `public`. */
  readonly schema?: string;
  /** Latest `updated_at` of the data set. Default: the database's now() truncated to the minute, minus 1 minute. */
  readonly end?: Date;
  /** Days of history before `end`. Default 7. */
  readonly days?: number;
  /** Called as rows are written: rows done so far and rows in all. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** What `seedSource` wrote. */
export interface SeedSummary {
  readonly rowsByStream: Record<string, number>;
  readonly seconds: number;
}

const optionsSchema = z.object({
  accounts: z.number().int().min(1).max(1_000_000),
  rows: z
    .number()
    .int()
    .min(0)
    .max(2 ** 32 - 1),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 32 - 1),
  days: z.number().min(0.05).max(3650),
});

/** Share of clicks that lead to a conversion. */
const CONVERSION_RATE = 0.03;
const DAY = 86_400_000;
const HOUR = 3_600_000;

// salts that keep the derived random streams independent
const SALT_CLICK = 11;
const SALT_CLICK_ID = 1000;
const SALT_CONVERSION_PICK = 21;
const SALT_CONVERSION = 31;
const SALT_CONVERSION_ID = 2000;
const SALT_PAYOUT = 41;

/**
 * Fills an empty source schema with realistic, deterministic synthetic tracking data: the same
 * (seed, accounts, rows, end, days) always gives the same rows. Every stream is written with
 * COPY from a generator (memory stays flat), in one transaction with
 * `wharf.preserve_updated_at = on` so the historical `updated_at` values are kept. For speed, the
 * keys, foreign keys, indexes and `updated_at` triggers are set aside during the load and
 * restored (foreign keys validated) before the commit; the tables stay locked meanwhile.
 *
 * Seeding into tables that already hold rows is refused (ids would collide): seed a fresh
 * database, or truncate the tables first.
 *
 * @example await seedSource(client, { accounts: 3, rows: 100_000, seed: 7 });
 */
export async function seedSource(client: pg.ClientBase, options: SeedOptions): Promise<SeedSummary> {
  const started = performance.now();
  const parsed = optionsSchema.safeParse({
    accounts: options.accounts,
    rows: options.rows,
    seed: options.seed ?? 1,
    days: options.days ?? 7,
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(
      `invalid seed option ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
      'accounts 1..1000000, rows 0..4294967295, seed 0..4294967295, days 0.05..3650',
    );
  }
  const { accounts, rows, seed, days } = parsed.data;
  const schema = options.schema ?? 'public';

  await client.query('begin');
  try {
    await client.query(`select pg_advisory_xact_lock(hashtext('wharf.seed'), hashtext($1))`, [schema]);
    await client.query(`select set_config($1, 'on', true)`, [PRESERVE_UPDATED_AT_SETTING]);
    await refuseNonEmpty(client, schema);
    const end = options.end ?? (await databaseEnd(client));
    const plan = planSeed({ seed, accounts, rows, endMs: end.getTime(), days });
    const writers = streamWriters(plan);
    const totals = writers.map((w) => w.count());
    const total = totals.reduce((a, b) => a + b, 0);
    const rowsByStream: Record<string, number> = {};
    let done = 0;
    options.onProgress?.(0, total);
    for (const writer of writers) checkColumns(writer);
    const restoreConstraints = await suspendConstraints(
      client,
      schema,
      writers.map((w) => w.stream),
    );
    const enableTriggers = await suspendStampTriggers(client, schema);
    for (const writer of writers) {
      const table = `${quotePg(schema)}.${quotePg(writer.stream)}`;
      const copy = client.query(
        copyFrom(`copy ${table} (${writer.columns.map(quotePg).join(', ')}) from stdin with (format csv)`),
      );
      const report = (n: number) => {
        done += n;
        options.onProgress?.(done, total);
      };
      await pipeline(Readable.from(chunked(writer.rows(), report), { objectMode: false }), copy);
      rowsByStream[writer.stream] = copy.rowCount;
    }
    await enableTriggers();
    await restoreConstraints();
    await client.query('commit');
    return { rowsByStream, seconds: (performance.now() - started) / 1000 };
  } catch (error) {
    await client.query('rollback').catch(() => {});
    if (error instanceof WharfError) throw error;
    const code = (error as { code?: string }).code;
    throw new WharfError(`seeding the source schema "${schema}" failed: ${(error as Error).message}`, {
      kind: classifyPgError(error),
      cause: error,
      ...(code ? { code } : {}),
    });
  }
}

/**
 * Disables the `updated_at` triggers for the load (the setting alone would keep the values, but a
 * row trigger makes COPY insert row by row instead of in batches: about twice as slow). Returns
 * the function that enables them again, before the commit.
 */
async function suspendStampTriggers(client: pg.ClientBase, schema: string): Promise<() => Promise<void>> {
  const wanted = trackingCatalog.streams.map((s) => [s.name, stampTriggerName(s)] as const);
  const present = await client.query<{ table: string; trigger: string }>(
    `select c.relname as table, t.tgname as trigger
       from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and not t.tgisinternal and t.tgenabled <> 'D'`,
    [schema],
  );
  const found = wanted.filter(([table, trigger]) =>
    present.rows.some((r) => r.table === table && r.trigger === trigger),
  );
  const alter = async (verb: string) => {
    for (const [table, trigger] of found) {
      await client.query(
        `alter table ${quotePg(schema)}.${quotePg(table)} ${verb} trigger ${quotePg(trigger)}`,
      );
    }
  };
  await alter('disable');
  return async () => {
    await alter('enable');
  };
}

async function databaseEnd(client: pg.ClientBase): Promise<Date> {
  const result = await client.query<{ end: Date }>(
    `select date_trunc('minute', now()) - interval '1 minute' as "end"`,
  );
  return result.rows[0]!.end;
}

async function refuseNonEmpty(client: pg.ClientBase, schema: string): Promise<void> {
  for (const stream of trackingCatalog.streams) {
    const table = `${quotePg(schema)}.${quotePg(stream.name)}`;
    const exists = await client.query<{ oid: string | null }>('select to_regclass($1)::text as oid', [table]);
    if (exists.rows[0]?.oid == null) {
      throw new WharfError(`source table ${schema}.${stream.name} does not exist`, {
        hint: 'run `wharf source init` first',
        context: { stream: stream.name },
      });
    }
    // held until commit: nothing can write between this check and the load
    await client.query(`lock table ${table} in access exclusive mode`);
    const any = await client.query(`select 1 from ${table} limit 1`);
    if (any.rowCount !== 0) {
      throw new WharfError(`source table ${schema}.${stream.name} is not empty; seeding is refused`, {
        hint: 'seed a fresh database (or truncate the source tables first): seeded ids would collide with existing rows',
        context: { stream: stream.name },
      });
    }
  }
}

/** One stream's rows as CSV lines, in the writer's column order. */
interface StreamWriter {
  readonly stream: string;
  readonly columns: readonly string[];
  /** Rows this writer will produce. */
  count(): number;
  rows(): Iterable<string>;
}

function checkColumns(writer: StreamWriter): void {
  const stream = getStream(trackingCatalog, writer.stream);
  const known = new Set(stream.columns.map((c) => c.name));
  const unknown = writer.columns.filter((c) => !known.has(c));
  const missing = stream.columns
    .filter((c) => !c.nullable && !writer.columns.includes(c.name))
    .map((c) => c.name);
  if (unknown.length > 0 || missing.length > 0) {
    throw new WharfError(`the seeder does not match the catalog for stream ${writer.stream}`, {
      context: { stream: writer.stream },
      hint: `unknown columns: ${unknown.join(', ') || 'none'}; missing required columns: ${missing.join(', ') || 'none'}`,
    });
  }
}

/** Groups rows into chunks of about 64 KiB and reports progress per chunk. */
function* chunked(rows: Iterable<string>, report: (rows: number) => void): Generator<string> {
  let buffer = '';
  let pending = 0;
  for (const row of rows) {
    buffer += row;
    pending++;
    if (buffer.length >= 65_536) {
      yield buffer;
      report(pending);
      buffer = '';
      pending = 0;
    }
  }
  if (buffer.length > 0) yield buffer;
  report(pending);
}

const t = isoTime;
const text = csvField;
const nullable = (value: number | null, format: (v: number) => string): string =>
  value === null ? '' : format(value);
const deletedAt = (value: number | null): string => nullable(value, isoTime);

function streamWriters(plan: SeedPlan): StreamWriter[] {
  const sum = (f: (a: AccountPlan) => number) => () => plan.accounts.reduce((n, a) => n + f(a), 0);
  return [
    {
      stream: 'accounts',
      columns: ['id', 'updated_at', 'name', 'currency', 'timezone', 'created_at', 'deleted_at'],
      count: () => plan.accounts.length,
      *rows() {
        for (const a of plan.accounts) {
          yield `${a.id},${t(a.updatedAt)},${text(a.name)},${a.currency},${text(a.timezone)},${t(a.createdAt)},${deletedAt(a.deletedAt)}\n`;
        }
      },
    },
    {
      stream: 'programmes',
      columns: [
        'account_id',
        'id',
        'updated_at',
        'name',
        'commission_type',
        'commission_value',
        'currency',
        'status',
        'created_at',
        'deleted_at',
      ],
      count: sum((a) => a.programmes.length),
      *rows() {
        for (const a of plan.accounts) {
          for (const p of a.programmes) {
            yield `${a.id},${p.id},${t(p.updatedAt)},${text(p.name)},${p.commissionType},${decimal4(p.commissionValue)},${a.currency},${p.status},${t(p.createdAt)},${deletedAt(p.deletedAt)}\n`;
          }
        }
      },
    },
    {
      stream: 'affiliates',
      columns: [
        'account_id',
        'id',
        'updated_at',
        'name',
        'email',
        'country',
        'status',
        'created_at',
        'deleted_at',
      ],
      count: sum((a) => a.affiliates.length),
      *rows() {
        for (const a of plan.accounts) {
          for (const f of a.affiliates) {
            yield `${a.id},${f.id},${t(f.updatedAt)},${text(f.name)},${text(f.email)},${f.country ?? ''},${f.status},${t(f.createdAt)},${deletedAt(f.deletedAt)}\n`;
          }
        }
      },
    },
    {
      stream: 'traffic_sources',
      columns: ['account_id', 'id', 'updated_at', 'affiliate_id', 'name', 'kind', 'created_at', 'deleted_at'],
      count: sum((a) => a.trafficSources.length),
      *rows() {
        for (const a of plan.accounts) {
          for (const s of a.trafficSources) {
            yield `${a.id},${s.id},${t(s.updatedAt)},${s.affiliateId},${text(s.name)},${s.kind},${t(s.createdAt)},${deletedAt(s.deletedAt)}\n`;
          }
        }
      },
    },
    {
      stream: 'links',
      columns: [
        'account_id',
        'id',
        'updated_at',
        'programme_id',
        'affiliate_id',
        'traffic_source_id',
        'url',
        'slug',
        'metadata',
        'created_at',
        'deleted_at',
      ],
      count: sum((a) => a.links.length),
      *rows() {
        for (const a of plan.accounts) {
          for (const l of a.links) {
            yield `${a.id},${l.id},${t(l.updatedAt)},${l.programme.id},${l.affiliateId},${l.trafficSourceId ?? ''},${text(l.url)},${text(l.slug)},${text(l.metadata)},${t(l.createdAt)},${deletedAt(l.deletedAt)}\n`;
          }
        }
      },
    },
    clickWriter(plan),
    conversionWriter(plan),
    payoutWriter(plan),
  ];
}

/** The parts of a click that conversions need too. */
interface ClickCore {
  eventId: string;
  link: LinkPlan;
  occurredAt: number;
  updatedAt: number;
}

/** Weight of an hour of the day (UTC) in the daily cycle: quiet at night, busy in the afternoon. */
const HOUR_WEIGHT = Array.from(
  { length: 24 },
  (_, h) => 0.2 + 0.8 * (0.5 - 0.5 * Math.cos((2 * Math.PI * (h - 3)) / 24)),
);

/** Draws the click with global index `index` of `account`; `rng` must be reset for this click. */
function drawClick(plan: SeedPlan, account: AccountPlan, index: number, rng: Random, out: ClickCore): void {
  const links = account.links;
  const link = links[Math.floor(rng.next() ** 2 * links.length)]!;
  const lo = link.createdAt + Math.min(1000, Math.floor((plan.endMs - link.createdAt) / 4));
  const hi = plan.endMs - Math.min(1000, Math.floor((plan.endMs - link.createdAt) / 4));
  let at = lo + Math.floor(rng.next() * (hi - lo));
  for (let tries = 0; tries < 8; tries++) {
    if (rng.next() < HOUR_WEIGHT[Math.floor(at / HOUR) % 24]!) break;
    at = lo + Math.floor(rng.next() * (hi - lo));
  }
  out.eventId = deterministicUuid(plan.seed, index, SALT_CLICK_ID);
  out.link = link;
  out.occurredAt = at;
  out.updatedAt = Math.min(plan.endMs, at + rng.int(2000));
}

/** Visits the accounts' click index ranges in order. */
function* clickIndexes(plan: SeedPlan): Generator<[AccountPlan, number]> {
  const pair: [AccountPlan, number] = [plan.accounts[0]!, 0];
  for (const account of plan.accounts) {
    pair[0] = account;
    for (let i = account.firstClick; i < account.firstClick + account.clicks; i++) {
      pair[1] = i;
      yield pair;
    }
  }
}

const CONVERSION_THRESHOLD = Math.floor(CONVERSION_RATE * 2 ** 32);
const isConversion = (seed: number, index: number) =>
  hash32(seed, index, SALT_CONVERSION_PICK) < CONVERSION_THRESHOLD;

function clickWriter(plan: SeedPlan): StreamWriter {
  return {
    stream: 'clicks',
    columns: [
      'account_id',
      'event_id',
      'updated_at',
      'link_id',
      'affiliate_id',
      'traffic_source_id',
      'occurred_at',
      'ip',
      'user_agent',
      'referrer',
      'country',
      'device',
      'is_unique',
    ],
    count: () => plan.totalClicks,
    *rows() {
      const referrers = REFERRERS.map(csvField);
      const agents = USER_AGENTS.map(csvField);
      const rng = new Random(0);
      const click = {} as ClickCore;
      for (const [account, index] of clickIndexes(plan)) {
        rng.reset(hash32(plan.seed, index, SALT_CLICK));
        drawClick(plan, account, index, rng, click);
        const l = click.link;
        const ipRoll = rng.next();
        const ip =
          ipRoll < 0.03
            ? ''
            : ipRoll < 0.8
              ? `${rng.between(1, 223)}.${rng.int(256)}.${rng.int(256)}.${rng.between(1, 254)}`
              : `2001:db8:${rng.int(65536).toString(16)}:${rng.int(65536).toString(16)}::${rng.int(65536).toString(16)}`;
        const uaRoll = rng.next();
        const ua = uaRoll < 0.04 ? '' : uaRoll < 0.06 ? '""' : rng.pick(agents);
        const refRoll = rng.next();
        const referrer = refRoll < 0.25 ? '' : refRoll < 0.32 ? '""' : rng.pick(referrers);
        const country = rng.chance(0.05) ? '' : rng.pick(COUNTRIES);
        const device = rng.chance(0.04) ? '' : rng.pick(DEVICES);
        yield `${account.id},${click.eventId},${t(click.updatedAt)},${l.id},${l.affiliateId},${l.trafficSourceId ?? ''},${t(click.occurredAt)},${ip},${ua},${referrer},${country},${device},${rng.chance(0.72) ? 't' : 'f'}\n`;
      }
    },
  };
}

function conversionWriter(plan: SeedPlan): StreamWriter {
  return {
    stream: 'conversions',
    columns: [
      'account_id',
      'event_id',
      'updated_at',
      'click_id',
      'link_id',
      'affiliate_id',
      'programme_id',
      'occurred_at',
      'order_ref',
      'amount',
      'commission',
      'currency',
      'status',
    ],
    count: () => {
      let n = 0;
      for (let i = 0; i < plan.totalClicks; i++) if (isConversion(plan.seed, i)) n++;
      return n;
    },
    *rows() {
      const clickRng = new Random(0);
      const rng = new Random(0);
      const click = {} as ClickCore;
      for (const [account, index] of clickIndexes(plan)) {
        if (!isConversion(plan.seed, index)) continue;
        clickRng.reset(hash32(plan.seed, index, SALT_CLICK));
        drawClick(plan, account, index, clickRng, click);
        rng.reset(hash32(plan.seed, index, SALT_CONVERSION));
        const l = click.link;
        const room = plan.endMs - 1 - click.occurredAt;
        const delay = 60_000 + Math.floor(rng.next() ** 3 * 6 * HOUR);
        const occurredAt = click.occurredAt + 1 + Math.floor(Math.min(delay, (room - 1) * rng.next()));
        const review = occurredAt + HOUR + Math.floor(rng.next() * 47 * HOUR);
        const roll = rng.next();
        let status = 'pending';
        let updatedAt = Math.min(plan.endMs, occurredAt + rng.int(1000));
        if (review <= plan.endMs && roll < 0.95) {
          status = roll < 0.8 ? 'approved' : 'reversed';
          updatedAt = review;
        }
        const refRoll = rng.next();
        const orderRef =
          refRoll < 0.1
            ? ''
            : refRoll < 0.15
              ? '""'
              : `ORD-${(hash32(plan.seed, index, 77) >>> 0).toString(16)}`;
        const amountRoll = rng.next();
        let amount: string;
        let commission: string;
        const p = l.programme;
        if (amountRoll < 0.004) {
          amount = MAX_MONEY;
          commission = p.commissionType === 'fixed' ? decimal4(p.commissionValue) : '9999999999999.9999';
        } else if (amountRoll < 0.01) {
          amount = '0.0000';
          commission = '0.0000';
        } else {
          const cents = rng.between(50_000, 50_000_000);
          amount = decimal4(cents);
          commission =
            p.commissionType === 'fixed'
              ? decimal4(p.commissionValue)
              : decimal4(Math.floor((cents * p.commissionValue) / 1_000_000));
        }
        const clickId = rng.chance(0.08) ? '' : click.eventId;
        yield `${account.id},${deterministicUuid(plan.seed, index, SALT_CONVERSION_ID)},${t(updatedAt)},${clickId},${l.id},${l.affiliateId},${p.id},${t(occurredAt)},${orderRef},${amount},${commission},${account.currency},${status}\n`;
      }
    },
  };
}

/** UTC midnight of the day holding `ms`. */
const dayStart = (ms: number) => Math.floor(ms / DAY) * DAY;

/** The payout period holding `ms`: [first day, last day] as UTC midnights. */
function periodOf(cadence: AffiliatePlan['cadence'], ms: number): [number, number] {
  const day = dayStart(ms);
  if (cadence === 'daily') return [day, day];
  if (cadence === 'weekly') {
    // day 0 of the epoch was a Thursday: weeks start on Monday
    const start = day - ((day / DAY + 3) % 7) * DAY;
    return [start, start + 6 * DAY];
  }
  const d = new Date(day);
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  const next = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return [start, next - DAY];
}

/** The payouts of an affiliate: one per completed period after it joined (a few rows at most per day). */
function affiliatePayouts(
  plan: SeedPlan,
  account: AccountPlan,
  affiliate: AffiliatePlan,
  firstId: number,
): string[] {
  const rows: string[] = [];
  const rng = new Random(hash32(plan.seed, affiliate.id % ID_BLOCK, SALT_PAYOUT + account.id * 8));
  const stop = Math.min(plan.endMs, affiliate.deletedAt ?? plan.endMs);
  let [periodStart, periodEnd] = periodOf(affiliate.cadence, affiliate.createdAt);
  for (;;) {
    const createdAt = periodEnd + DAY + Math.floor(rng.next() * 6 * HOUR);
    if (createdAt > stop) return rows;
    const amountRoll = rng.next();
    const amount = amountRoll < 0.005 ? MAX_MONEY : decimal4(rng.between(100_000, 50_000_000));
    const roll = rng.next();
    let status = 'pending';
    let paidAt: number | null = null;
    let updatedAt = createdAt;
    if (roll < 0.05) {
      status = 'cancelled';
      updatedAt = createdAt + 1 + Math.floor(rng.next() * (plan.endMs - createdAt - 1));
    } else {
      const paid = createdAt + HOUR + Math.floor(rng.next() * 72 * HOUR);
      if (paid <= plan.endMs) {
        status = 'paid';
        paidAt = paid;
        updatedAt = paid;
      }
    }
    rows.push(
      `${account.id},${firstId + rows.length},${t(updatedAt)},${affiliate.id},${isoDate(periodStart)},${isoDate(periodEnd)},${amount},${account.currency},${status},${nullable(paidAt, isoTime)},${t(createdAt)}\n`,
    );
    [periodStart, periodEnd] = periodOf(affiliate.cadence, periodEnd + DAY);
  }
}

/** Visits every affiliate's payouts, numbering them per account from `account * ID_BLOCK + 1`. */
function* payoutRows(plan: SeedPlan): Generator<string[]> {
  for (const account of plan.accounts) {
    let next = account.id * ID_BLOCK + 1;
    for (const affiliate of account.affiliates) {
      const rows = affiliatePayouts(plan, account, affiliate, next);
      next += rows.length;
      yield rows;
    }
  }
}

function payoutWriter(plan: SeedPlan): StreamWriter {
  return {
    stream: 'payouts',
    columns: [
      'account_id',
      'id',
      'updated_at',
      'affiliate_id',
      'period_start',
      'period_end',
      'amount',
      'currency',
      'status',
      'paid_at',
      'created_at',
    ],
    count: () => {
      let n = 0;
      for (const rows of payoutRows(plan)) n += rows.length;
      return n;
    },
    *rows() {
      for (const rows of payoutRows(plan)) yield* rows;
    },
  };
}
