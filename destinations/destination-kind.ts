import { z } from 'zod';
import type { ConnectorFamily, SecretFields, StoredSettings } from '../connectors/connector-store.js';
import { Secret } from '../core/secret.js';
import type { SessionLimits } from '../loaders/warehouse.js';
import type { CheckReport } from './check-report.js';

/** A connector's destination as its kind sees it: where (settings), with what (secret fields), into which namespace. */
export interface DestinationTarget<S extends StoredSettings = StoredSettings> {
  readonly connectorId: string;
  readonly settings: S;
  readonly secret: SecretFields;
  /** The warehouse schema (warehouse kinds; buckets keep their prefix in their settings). */
  readonly schema: string;
  /** Lock and statement timeouts and the stop signal of the sessions `open` gives (defaults when absent). */
  readonly session?: SessionLimits;
}

const secret = z.instanceof(Secret);

/**
 * The fields a user gives to add a connector or change its credentials (`wharf connectors add` / `rotate`,
 * the HTTP API), before a kind turns them into stored settings and secret fields. Each kind reads the ones it
 * needs and refuses the ones that make no sense for it.
 */
export const destinationRequestSchema = z.object({
  url: z.string().min(1),
  /** A warehouse schema to check against the engine's identifier limit (`connectors add`). */
  schema: z.string().optional(),
  password: secret.optional(),
  accessKeyId: z.string().min(1).optional(),
  secretAccessKey: secret.optional(),
  s3Endpoint: z.string().url().optional(),
  s3PathStyle: z.boolean().optional(),
  s3Region: z.string().min(1).optional(),
  every: z.string().min(1).optional(),
});

export type DestinationRequest = z.infer<typeof destinationRequestSchema>;

/** A request turned into what is stored: settings (JSON) and secret fields (encrypted). */
export interface ParsedDestination<S extends StoredSettings = StoredSettings> {
  readonly settings: S;
  readonly secret: SecretFields;
}

/**
 * A destination kind (postgres, mssql, bucket): one folder under destinations/ and one entry in the registry.
 * `D` is what `open` gives the job of its family: a `Warehouse` for warehouses, a bucket destination for
 * buckets. The job around it (lock, history, retries, status) is shared.
 */
export interface DestinationKind<S extends StoredSettings = StoredSettings, D = unknown> {
  /** `postgres`, `mssql`, `bucket`: what `--engine` names and the settings' `engine`. */
  readonly name: string;
  readonly family: ConnectorFamily;
  /** Turns the user's fields into settings and secret fields; a field that cannot work is a `UsageError`. */
  parse(request: DestinationRequest): ParsedDestination<S>;
  /** Where it goes, for people (never a secret): `host:5432/db`, `s3://bucket/prefix`. */
  describe(settings: S): string;
  /** Ordered connection and permission steps; the report names the first failure and its fix. */
  check(target: DestinationTarget<S>): Promise<CheckReport>;
  /** A connection to the destination for its family's job; the caller closes it. */
  open(target: DestinationTarget<S>): Promise<D>;
}
