import { randomInt } from 'node:crypto';
import type pg from 'pg';
import { WharfError } from '../core/errors.js';
import { classifyPgError } from '../db/postgres/errors.js';
import { quotePg } from '../db/postgres/quote.js';
import { inTransaction } from '../db/postgres/transaction.js';
import { mix32, Random } from './random.js';
import { COUNTRIES, DEVICES, decimal4, REFERRERS, USER_AGENTS } from './synthetic-values.js';

/** Options of `insertLiveEvents`. */
export interface LiveEventsOptions {
  /** Accounts that get new events (each must already have links, e.g. from `seedSource`). */
  readonly accounts: readonly number[];
  /** New clicks per account. */
  readonly clicks: number;
  /** Makes the choices (links, values, which rows change) repeatable. Default: random. */
  readonly seed?: number;
  /** Source schema. Default `public`. */
  readonly schema?: string;
}

/** What `insertLiveEvents` wrote. */
export interface LiveEventsSummary {
  readonly clicks: number;
  readonly conversions: number;
  readonly updates: number;
}

interface LinkRow {
  readonly id: string;
  readonly affiliate_id: string;
  readonly traffic_source_id: string | null;
  readonly programme_id: string;
}

/**
 * Writes live traffic the way a platform does: ordinary inserts and updates in one transaction,
 * so the trigger stamps `updated_at = now()`. Adds `clicks` clicks per account on its existing
 * links, a conversion (pending) for some of them, and now and then an entity change (a pending
 * conversion approved, an affiliate's status toggled).
 *
 * @example await insertLiveEvents(client, { accounts: [1, 2], clicks: 20 });
 */
export async function insertLiveEvents(
  client: pg.ClientBase,
  options: LiveEventsOptions,
): Promise<LiveEventsSummary> {
  const schema = options.schema ?? 'public';
  const rng = new Random(mix32(options.seed ?? randomInt(2 ** 32 - 1)));
  const table = (name: string) => `${quotePg(schema)}.${quotePg(name)}`;
  let clicks = 0;
  let conversions = 0;
  let updates = 0;
  try {
    await inTransaction(client, async () => {
      for (const account of options.accounts) {
        const links = (
          await client.query<LinkRow>(
            `select id::text, affiliate_id::text, traffic_source_id::text, programme_id::text
             from ${table('links')} where account_id = $1 order by (deleted_at is null) desc, id limit 500`,
            [account],
          )
        ).rows;
        if (links.length === 0) {
          throw new WharfError(`account ${account} has no links to click on`, {
            hint: 'seed the source first (`wharf seed`)',
            context: { account },
          });
        }
        const picked = Array.from(
          { length: options.clicks },
          () => links[Math.floor(rng.next() ** 2 * links.length)]!,
        );
        const inserted = await client.query<{ event_id: string; link_id: string }>(
          `insert into ${table('clicks')}
           (account_id, link_id, affiliate_id, traffic_source_id, occurred_at, ip, user_agent, referrer, country, device, is_unique)
         select $1, x.link_id, x.affiliate_id, x.traffic_source_id, now(), x.ip, x.user_agent, x.referrer, x.country, x.device, x.is_unique
           from unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::boolean[])
             as x(link_id, affiliate_id, traffic_source_id, ip, user_agent, referrer, country, device, is_unique)
         returning event_id::text, link_id::text`,
          [
            account,
            picked.map((l) => l.id),
            picked.map((l) => l.affiliate_id),
            picked.map((l) => l.traffic_source_id),
            picked.map(() => `${rng.between(1, 223)}.${rng.int(256)}.${rng.int(256)}.${rng.between(1, 254)}`),
            picked.map(() => rng.pick(USER_AGENTS)),
            picked.map(() => (rng.chance(0.3) ? null : rng.pick(REFERRERS))),
            picked.map(() => rng.pick(COUNTRIES)),
            picked.map(() => rng.pick(DEVICES)),
            picked.map(() => rng.chance(0.7)),
          ],
        );
        clicks += inserted.rowCount ?? 0;
        const byId = new Map(links.map((l) => [l.id, l]));
        for (const click of inserted.rows) {
          if (!rng.chance(0.05)) continue;
          const link = byId.get(click.link_id)!;
          const amount = rng.between(50_000, 5_000_000);
          await client.query(
            `insert into ${table('conversions')}
             (account_id, click_id, link_id, affiliate_id, programme_id, occurred_at, order_ref, amount, commission, currency, status)
           select $1, $2, $3, $4, $5, now(), $6, $7::numeric, $8::numeric, a.currency, 'pending'
             from ${table('accounts')} a where a.id = $1`,
            [
              account,
              click.event_id,
              link.id,
              link.affiliate_id,
              link.programme_id,
              `LIVE-${rng.uint32().toString(16)}`,
              decimal4(amount),
              decimal4(Math.floor(amount / 10)),
            ],
          );
          conversions++;
        }
        if (rng.chance(0.3)) {
          const approved = await client.query(
            `update ${table('conversions')} set status = 'approved'
            where event_id = (select event_id from ${table('conversions')}
                               where account_id = $1 and status = 'pending' order by event_id limit 1)`,
            [account],
          );
          updates += approved.rowCount ?? 0;
        }
        if (rng.chance(0.2)) {
          const toggled = await client.query(
            `update ${table('affiliates')} set status = case when status = 'active' then 'suspended' else 'active' end
            where id = (select id from ${table('affiliates')} where account_id = $1 and deleted_at is null order by id offset $2 limit 1)`,
            [account, rng.int(5)],
          );
          updates += toggled.rowCount ?? 0;
        }
      }
    });
  } catch (error) {
    if (error instanceof WharfError) throw error;
    const code = (error as { code?: string }).code;
    throw new WharfError(`inserting live events failed: ${(error as Error).message}`, {
      kind: classifyPgError(error),
      cause: error,
      ...(code ? { code } : {}),
    });
  }
  return { clicks, conversions, updates };
}
