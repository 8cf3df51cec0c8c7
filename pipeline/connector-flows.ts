import type { Connector, ConnectorFormat } from '../connectors/connector-store.js';
import { UsageError, WharfError } from '../core/errors.js';
import { type CheckReport, checkFailure } from '../destinations/check-report.js';
import type { DestinationRequest, DestinationTarget } from '../destinations/destination-kind.js';
import { type AnyDestinationKind, destinationKind, kindOf } from '../destinations/registry.js';
import { checkAccountExists, checkAddArguments } from './connector-request.js';
import type { Runtime } from './runtime.js';

/** What `connectors add` (and the API) asks for. */
export interface AddConnectorRequest extends DestinationRequest {
  readonly account: number | string;
  readonly engine: string;
  readonly schema: string;
  readonly streams: readonly string[];
  readonly format: ConnectorFormat;
  /** Add it even though the source has no such account (yet). */
  readonly allowUnknownAccount?: boolean;
}

/** A connector as it may be shown anywhere: never a secret. */
export interface ConnectorView {
  readonly id: string;
  readonly account: string;
  readonly engine: string;
  readonly family: string;
  readonly destination: string;
  readonly schema: string;
  readonly streams: readonly string[];
  readonly format: string;
  readonly state: string;
  readonly stateReason: string | null;
  readonly secretVersion: number;
  readonly createdAt: Date;
}

/** What is safe to show of a connector. */
export function connectorView(c: Connector): ConnectorView {
  return {
    id: String(c.id),
    account: String(c.account),
    engine: c.engine,
    family: c.family,
    destination: kindOf(c).describe(c.settings),
    schema: c.schema,
    streams: c.streams,
    format: c.format,
    state: c.state,
    stateReason: c.stateReason ?? null,
    secretVersion: c.secretVersion,
    createdAt: c.createdAt,
  };
}

/** Checks that failed: the first failure's one line, and every step's result (the API returns them). */
export class ChecksFailedError extends WharfError {
  readonly checks: CheckReport['checks'];

  constructor(failure: WharfError, report: CheckReport) {
    super(failure.message, {
      kind: failure.kind,
      context: failure.context,
      ...(failure.hint ? { hint: failure.hint } : {}),
      ...(failure.code ? { code: failure.code } : {}),
    });
    this.checks = report.checks;
  }
}

/** Runs a target's ordered checks; throws the first failure as one clear error. */
async function checked(
  kind: AnyDestinationKind,
  target: DestinationTarget,
  connector?: string,
): Promise<CheckReport> {
  const report = await kind.check(target);
  const failure = checkFailure(report, connector, kind.family);
  if (failure) throw new ChecksFailedError(failure, report);
  return report;
}

/** Makes a destination ready for its first run: a warehouse's schema and tables (a bucket needs nothing). */
async function prepare(
  rt: Runtime,
  kind: AnyDestinationKind,
  target: DestinationTarget,
  streams: readonly string[],
): Promise<void> {
  if (kind.family !== 'warehouse') return;
  const warehouse = await kind.open(target);
  try {
    await warehouse.migrate(rt.catalog, streams);
  } finally {
    await warehouse.close();
  }
}

/**
 * `connectors add`: checks every argument first (account, streams, format, the URL and the schema name, then
 * that the account exists in the source), refuses a second active connector of the family for the account,
 * checks the destination in order (reach, TLS, authenticate, permissions; a failed check leaves it as it
 * was), prepares it (a warehouse's schema and tables) only once every check passed, and then stores the
 * connector with its encrypted secret.
 */
export async function addConnector(
  rt: Runtime,
  request: AddConnectorRequest,
): Promise<{ readonly id: string; readonly checks: CheckReport }> {
  const kind = destinationKind(request.engine);
  // every check that needs no server first: nothing is touched when one fails
  const account = checkAddArguments(request, rt.catalog);
  if (kind.family === 'warehouse' && request.format !== 'csv') {
    throw new UsageError(
      `--format ${request.format} is for bucket connectors`,
      'warehouses load csv staging; leave --format out, or use --engine bucket',
    );
  }
  const parsed = kind.parse(request);
  if (!request.allowUnknownAccount) await checkAccountExists(rt, account);
  const store = await rt.connectors();
  const existing = (await store.list()).find(
    (c) => String(c.account) === account && c.family === kind.family && c.state !== 'disabled',
  );
  if (existing) {
    throw new UsageError(
      `account ${account} already has active connector ${existing.id}`,
      `disable it first: wharf connectors disable ${existing.id}`,
    );
  }
  const target: DestinationTarget = {
    connectorId: 'new',
    ...parsed,
    schema: request.schema,
    session: rt.sessionLimits(),
  };
  const checks = await checked(kind, target);
  await prepare(rt, kind, target, request.streams);
  const connector = await store.add({
    account,
    family: kind.family,
    settings: parsed.settings,
    secret: parsed.secret,
    schema: request.schema,
    streams: request.streams,
    format: request.format,
  });
  return { id: String(connector.id), checks };
}

/** `connectors test`: the checks and the migrations again; a parked connector becomes active. */
export async function testConnector(
  rt: Runtime,
  id: string,
): Promise<{ readonly id: string; readonly ok: true; readonly checks: CheckReport['checks'] }> {
  const store = await rt.connectors();
  const c = await store.get(id);
  const kind = kindOf(c);
  const creds = await store.credentials(c.id);
  const target: DestinationTarget = {
    connectorId: String(c.id),
    settings: creds.settings,
    secret: creds.secret,
    schema: c.schema,
    session: rt.sessionLimits(),
  };
  const report = await checked(kind, target, String(c.id));
  await prepare(rt, kind, target, c.streams);
  if (c.state !== 'active' && c.state !== 'disabled') await store.setState(c.id, 'active');
  return { id: String(c.id), ok: true, checks: report.checks };
}

/**
 * `connectors rotate`: new credentials (a new URL, new secret fields, or both), tested before they are stored;
 * the connector keeps its id, ledger and history.
 */
export async function rotateConnector(
  rt: Runtime,
  id: string,
  change: Partial<DestinationRequest>,
): Promise<Connector> {
  const store = await rt.connectors();
  const c = await store.get(id);
  const kind = kindOf(c);
  const current = await store.credentials(c.id);
  let settings = current.settings;
  let secret = current.secret;
  if (change.url !== undefined) {
    // a bucket keeps its secret key unless a new one is given; a warehouse's password comes from the new URL
    const keepKey = change.secretAccessKey === undefined && secret.secretAccessKey !== undefined;
    const parsed = kind.parse({
      ...change,
      url: change.url,
      ...(keepKey ? { secretAccessKey: secret.secretAccessKey } : {}),
    });
    if (parsed.settings.engine !== c.engine) {
      throw new UsageError(`the new URL is for ${parsed.settings.engine}, the connector is ${c.engine}`);
    }
    settings = parsed.settings;
    secret = { ...secret, ...parsed.secret };
  } else {
    if (change.accessKeyId !== undefined) settings = { ...settings, accessKeyId: change.accessKeyId };
    secret = {
      ...secret,
      ...(change.password ? { password: change.password } : {}),
      ...(change.secretAccessKey ? { secretAccessKey: change.secretAccessKey } : {}),
    };
  }
  await checked(kind, { connectorId: String(c.id), settings, secret, schema: c.schema }, String(c.id));
  return store.rotate(c.id, { ...(settings !== current.settings ? { settings } : {}), secret });
}
