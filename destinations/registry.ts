import type { Connector, StoredSettings } from '../connectors/connector-store.js';
import { UsageError } from '../core/errors.js';
import type { BucketClient } from '../delivery/bucket-client.js';
import type { Warehouse } from '../loaders/warehouse.js';
import { bucketKind } from './bucket/bucket-kind.js';
import type { DestinationKind } from './destination-kind.js';
import { mssqlKind } from './mssql/mssql-kind.js';
import { postgresKind } from './postgres/postgres-kind.js';

/** A kind whose connectors load a warehouse. */
export type WarehouseKind = DestinationKind<StoredSettings, Warehouse> & { readonly family: 'warehouse' };

/** A kind whose connectors deliver files into a bucket. */
export type BucketKind = DestinationKind<StoredSettings, BucketClient> & { readonly family: 'bucket' };

/** Every destination kind Wharf has. Adding a kind is a folder under destinations/ and a line here. */
export type AnyDestinationKind = WarehouseKind | BucketKind;

const KINDS: readonly AnyDestinationKind[] = [
  postgresKind as WarehouseKind,
  mssqlKind as WarehouseKind,
  bucketKind as BucketKind,
];

/** The names `--engine` accepts. */
export const destinationNames: readonly string[] = KINDS.map((k) => k.name);

/** The kind called `name`; an unknown name is a usage error listing the known ones. */
export function destinationKind(name: string): AnyDestinationKind {
  const kind = KINDS.find((k) => k.name === name);
  if (!kind) {
    throw new UsageError(`unknown destination kind "${name}"`, `use --engine ${destinationNames.join(', ')}`);
  }
  return kind;
}

/** The kind of a stored connector. */
export function kindOf(connector: Pick<Connector, 'engine'>): AnyDestinationKind {
  return destinationKind(connector.engine);
}
