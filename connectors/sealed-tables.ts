import type { SecretAad } from './envelope.js';

/**
 * A control table of secrets sealed in the envelope (`envelope.ts`): each row a data key wrapped by a master key
 * (`key_id`, `key_version`, `wrapped_key`) and a ciphertext. A master key rotation re-wraps the data keys of every
 * such table (`SEALED_TABLES`).
 */
export interface SealedTable {
  /** The table, in the control schema. */
  readonly table: string;
  /** The columns naming one sealed secret (its primary key), in order, each with its SQL type. */
  readonly key: ReadonlyArray<readonly [column: string, type: string]>;
  /** The data a row's data key is bound to, from its key columns. */
  aad(row: Readonly<Record<string, unknown>>): SecretAad;
}

/** Connectors' secrets (`secrets`): a warehouse password or a bucket key, per connector and version. */
export const CONNECTOR_SECRETS: SealedTable = {
  table: 'secrets',
  key: [
    ['connector_id', 'bigint'],
    ['version', 'int'],
  ],
  aad: (row) => ({ connectorId: String(row.connector_id), version: Number(row.version) }),
};

/**
 * What a reverse-ETL secret is bound to: its owner (`source`: a warehouse password; `sync`: a write key), the
 * owner's id and the secret's version.
 */
export function retlSecretAad(owner: string, id: string | number, version: number): SecretAad {
  return { connectorId: `retl-${owner}-${id}`, version };
}

/** Reverse-ETL secrets (`retl_secrets`): sources' passwords and syncs' write keys. */
export const RETL_SECRETS: SealedTable = {
  table: 'retl_secrets',
  key: [
    ['owner_kind', 'text'],
    ['owner_id', 'bigint'],
    ['version', 'int'],
  ],
  aad: (row) => retlSecretAad(String(row.owner_kind), String(row.owner_id), Number(row.version)),
};

/** Every table whose data keys a master key wraps. */
export const SEALED_TABLES: readonly SealedTable[] = [CONNECTOR_SECRETS, RETL_SECRETS];
