import type pg from 'pg';

/** Inserts one account with a programme, an affiliate and a link (ids derived from the account id). */
export async function insertAccount(db: pg.Pool | pg.ClientBase, account: number): Promise<void> {
  const a = account;
  await db.query(
    `insert into accounts (id, name, currency, timezone, created_at) values ($1, $2, 'EUR', 'Europe/Paris', now());
     `.trim(),
    [a, `Account ${a} ✓ 🚀`],
  );
  await db.query(
    `insert into programmes (id, account_id, name, commission_type, commission_value, currency, status, created_at)
     values ($1, $2, 'Main', 'percentage', 12.5, 'EUR', 'active', now())`,
    [a * 1000 + 1, a],
  );
  await db.query(
    `insert into affiliates (id, account_id, name, email, country, status, created_at)
     values ($1, $2, 'Zoë', '', 'FR', 'active', now())`,
    [a * 1000 + 1, a],
  );
  await db.query(
    `insert into links (id, account_id, programme_id, affiliate_id, url, slug, metadata, created_at)
     values ($1, $2, $3, $4, 'https://example.com/?a=1,b="2"', 'slug-' || $5, '{"k": "v"}', now())`,
    [a * 1000 + 1, a, a * 1000 + 1, a * 1000 + 1, String(a * 1000 + 1)],
  );
}

/** Inserts `n` clicks for an account (normal inserts: the trigger stamps updated_at). */
export async function insertClicks(
  db: pg.Pool | pg.ClientBase,
  account: number,
  n: number,
  referrer = 'r',
): Promise<void> {
  await db.query(
    `insert into clicks (account_id, link_id, affiliate_id, occurred_at, ip, user_agent, referrer, country, device, is_unique)
     select $1, $2, $2, now(), '127.0.0.1', 'ua', $4, 'FR', 'desktop', true from generate_series(1, $3)`,
    [account, account * 1000 + 1, n, referrer],
  );
}
