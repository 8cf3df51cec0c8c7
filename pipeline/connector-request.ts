import type { Catalog, Stream } from '../catalog/types.js';
import { UsageError, WharfError } from '../core/errors.js';
import { classifyError } from '../db/classify.js';
import { quotePg } from '../db/postgres/quote.js';
import type { Runtime } from './runtime.js';

const FORMATS = ['csv', 'parquet', 'json'] as const;

/** What `connectors add` checks before it touches any server. */
export interface AddArguments {
  readonly account: number | string;
  readonly streams: readonly string[];
  readonly format: string;
}

/**
 * The customer account id as given (`--account`): a whole number of 1 or more, as text. Anything else is a
 * usage error that repeats what was typed.
 */
export function accountId(account: number | string): string {
  const text = String(account).trim();
  if (!/^[1-9]\d{0,17}$/.test(text)) {
    throw new UsageError(
      `invalid --account "${String(account)}"`,
      "use the customer's account id in the source: a whole number of 1 or more",
    );
  }
  return text;
}

/**
 * Checks the arguments of `connectors add` that need no server, whatever the destination kind: the account id,
 * the streams (known, at least one, none twice) and the format. Throws the first problem as a usage error;
 * returns the account id as text.
 */
export function checkAddArguments(args: AddArguments, catalog: Catalog): string {
  const account = accountId(args.account);
  const known = catalog.streams.map((s) => s.name);
  const unknown = args.streams.filter((s) => !known.includes(s));
  if (unknown.length > 0) {
    throw new UsageError(
      `unknown stream(s) in --streams: ${unknown.join(', ')}`,
      `choose from ${known.join(', ')}`,
    );
  }
  if (args.streams.length === 0) {
    throw new UsageError('a connector needs at least one stream', `choose from ${known.join(', ')}`);
  }
  const twice = args.streams.filter((s, i) => args.streams.indexOf(s) !== i);
  if (twice.length > 0) throw new UsageError(`--streams names ${twice[0]} twice`);
  if (!(FORMATS as readonly string[]).includes(args.format)) {
    throw new UsageError(`unknown format "${args.format}"`, `use ${FORMATS.join(', ')}`);
  }
  return account;
}

/** The catalog's tenant table: the stream whose primary key is its tenant column (`accounts.id`). */
function tenantRoot(catalog: Catalog): Stream | undefined {
  return catalog.streams.find((s) => s.primaryKey.length === 1 && s.primaryKey[0] === s.tenantColumn);
}

/**
 * Refuses an account the source does not have (`select 1 from <source schema>.accounts where id = $1`), so that
 * a typo does not become a connector that never loads a row. `--allow-unknown-account` skips this.
 */
export async function checkAccountExists(rt: Runtime, account: number | string): Promise<void> {
  const id = accountId(account);
  const root = tenantRoot(rt.catalog);
  if (!root) return;
  const table = `${quotePg(rt.settings.sourceSchema)}.${quotePg(root.name)}`;
  const source = await rt.source();
  let found: boolean;
  try {
    const r = await source.query(`select 1 from ${table} where ${quotePg(root.tenantColumn)} = $1::bigint`, [
      id,
    ]);
    found = (r.rowCount ?? 0) > 0;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === '42P01' || code === '3F000') {
      throw new UsageError(
        `the source has no table ${rt.settings.sourceSchema}.${root.name} to find account ${id} in`,
        'check --source-url / --source-schema, or pass --allow-unknown-account',
      );
    }
    if (error instanceof WharfError) throw error;
    throw new WharfError(`cannot look account ${id} up in the source: ${(error as Error).message}`, {
      kind: classifyError(error),
      cause: error,
    });
  }
  if (!found) {
    throw new UsageError(
      `account ${id} does not exist in the source (${rt.settings.sourceSchema}.${root.name})`,
      'check --account; to add a connector for an account that is not created yet, pass --allow-unknown-account',
    );
  }
}
