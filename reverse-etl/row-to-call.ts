import { hash } from 'node:crypto';
import { UsageError } from '../core/errors.js';
import type { JsonValue, ResultColumn } from './warehouse-rows.js';

/** The call types of the Segment spec (CALLS.md). */
export const CALL_TYPES = ['identify', 'track', 'group', 'page', 'screen', 'alias'] as const;
export type CallType = (typeof CALL_TYPES)[number];

/** The most bytes one call may have (the Segment HTTP API's 32 KB), as JSON without `sentAt`. */
export const MAX_CALL_BYTES = 32 * 1024;

/** A row mapped: the call as one line of JSON starting with its `messageId`, or why it was rejected. */
export type MappedRow = { readonly ok: true; readonly line: string; readonly messageId: string } | Rejection;

/** Why a row was rejected. */
export interface Rejection {
  readonly ok: false;
  readonly reason: string;
}

/** A row mapped for `writeCall`: the call's JSON after its opening brace (`"type":…}`), or why it was rejected. */
export type MappedBody = { readonly ok: true; readonly body: string } | Rejection;

type Field =
  | 'userId'
  | 'anonymousId'
  | 'previousId'
  | 'groupId'
  | 'objectTypeId'
  | 'event'
  | 'name'
  | 'timestamp';

/** The top-level fields in the order a call carries them (so its JSON, and its id, do not depend on column order). */
const FIELD_ORDER: readonly Field[] = [
  'userId',
  'anonymousId',
  'previousId',
  'groupId',
  'objectTypeId',
  'event',
  'name',
  'timestamp',
];

const COMMON: readonly Field[] = ['userId', 'anonymousId', 'timestamp'];
const FIELDS: Record<CallType, readonly Field[]> = {
  identify: COMMON,
  track: [...COMMON, 'event'],
  group: [...COMMON, 'groupId', 'objectTypeId'],
  page: [...COMMON, 'name'],
  screen: [...COMMON, 'name'],
  alias: [...COMMON, 'previousId'],
};

/** Where the other columns go. */
const BAG: Record<CallType, 'traits' | 'properties' | undefined> = {
  identify: 'traits',
  group: 'traits',
  track: 'properties',
  page: 'properties',
  screen: 'properties',
  alias: undefined,
};

const MESSAGE_ID_PREFIX = 'wharf-';
const LINE_PREFIX = '{"messageId":"';
/** `{"messageId":"wharf-` + 64 hex digits + `",`: the bytes of a call before its body. */
export const CALL_HEAD_BYTES = LINE_PREFIX.length + MESSAGE_ID_PREFIX.length + 64 + 2;
const HEAD_START = Buffer.from(LINE_PREFIX + MESSAGE_ID_PREFIX);
const QUOTE = 34;
const COMMA = 44;

type Plan =
  | { readonly to: 'field'; readonly field: Field }
  | { readonly to: 'context' }
  | { readonly to: 'integrations' }
  | { readonly to: 'context-path'; readonly path: readonly string[] }
  | { readonly to: 'bag'; readonly key: string };

/**
 * Maps the rows of one result to calls of one type, per CALLS.md. Columns are matched once, at
 * construction: a column named like a field of the type (`userId`, `anonymousId`, `timestamp`, and
 * `event` for track, `groupId` and `objectTypeId` for group, `name` for page and screen, `previousId`
 * for alias), without regard to case, goes to that field; `context.…` columns and a JSON `context`
 * column make the context; an `integrations` column the integrations; every other column is a trait
 * (identify, group) or a property (track, page, screen), under its name as returned, with its JSON type.
 *
 * The `messageId` is `wharf-` and the sha256 (hex) of the sync's id and the call's JSON without
 * `messageId` and `sentAt`: the same row of the same sync always gets the same id, whatever the run,
 * and whatever the order of the query's columns.
 */
export class CallMapper {
  readonly type: CallType;
  readonly #plans: readonly Plan[];
  /** The bag's columns in the order a JSON object of them prints, each with its `"key":` text. */
  readonly #bagParts: ReadonlyArray<{ readonly index: number; readonly prefix: string }>;
  /** `"type":"identify"`: how every body starts. */
  readonly #typePart: string;
  /** `,"traits":{` (or properties); undefined for alias. */
  readonly #bagStart: string | undefined;
  /** What the messageId hashes before the body: `<sync id>\n{`. */
  readonly #seed: string;
  /** `#seed` as UTF-8, for `writeCall`. */
  readonly seed: Buffer;

  /** Throws a `UsageError` when two columns land in the same place, or an alias query has columns with nowhere to go. */
  constructor(syncId: string, type: CallType, columns: readonly ResultColumn[]) {
    this.type = type;
    this.#seed = `${syncId}\n{`;
    this.seed = Buffer.from(this.#seed);
    this.#typePart = `"type":"${type}"`;
    this.#bagStart = BAG[type] === undefined ? undefined : `,"${BAG[type]}":{`;
    const fields = new Map(FIELDS[type].map((f) => [f.toLowerCase(), f]));
    const taken = new Map<string, string>();
    const plans: Plan[] = [];
    for (const column of columns) {
      const lower = column.name.toLowerCase();
      const field = fields.get(lower);
      let plan: Plan;
      let place: string;
      if (field !== undefined) {
        plan = { to: 'field', field };
        place = `the ${field} field`;
      } else if (lower === 'context') {
        plan = { to: 'context' };
        place = 'the context';
      } else if (lower === 'integrations') {
        plan = { to: 'integrations' };
        place = 'the integrations';
      } else if (lower.startsWith('context.')) {
        const path = column.name.slice('context.'.length).split('.');
        if (path.some((p) => p === '')) {
          throw new UsageError(
            `the sync query's column "${column.name}" names no context field`,
            'name it like "context.ip" or "context.campaign.source"',
          );
        }
        plan = { to: 'context-path', path };
        place = `context.${path.join('.')}`;
      } else {
        const bag = BAG[type];
        if (bag === undefined) {
          throw new UsageError(
            `the sync query's column "${column.name}" has nowhere to go: alias calls carry only previousId, userId, anonymousId, timestamp and context`,
            'remove the column from the query',
          );
        }
        plan = { to: 'bag', key: column.name };
        place = `${bag}.${column.name}`;
      }
      const other = taken.get(place);
      if (other !== undefined) {
        throw new UsageError(
          `the sync query's columns "${other}" and "${column.name}" both go to ${place}`,
          'rename one of them in the query (names match without regard to case)',
        );
      }
      taken.set(place, column.name);
      plans.push(plan);
    }
    this.#plans = plans;
    this.#bagParts = plans
      .map((p, index) => ({ p, index }))
      .filter(({ p }) => p.to === 'bag')
      .map(({ p, index }) => ({ index, key: (p as { key: string }).key }))
      .sort((a, b) => compareObjectKeys(a.key, b.key))
      .map(({ index, key }, n) => ({ index, prefix: `${n === 0 ? '' : ','}${JSON.stringify(key)}:` }));
  }

  /** The call of one row (values in column order), or why it is rejected. */
  map(row: readonly JsonValue[]): MappedRow {
    const mapped = this.mapBody(row);
    if (!mapped.ok) return mapped;
    const messageId = MESSAGE_ID_PREFIX + hash('sha256', this.#seed + mapped.body, 'hex');
    return { ok: true, line: `${LINE_PREFIX}${messageId}",${mapped.body}`, messageId };
  }

  /**
   * The call of one row without its opening brace and `messageId` (`"type":…}`), checked like `map`'s; what
   * `writeCall` writes into a batch with its messageId, hashed over the bytes it writes (no second string).
   */
  mapBody(row: readonly JsonValue[]): MappedBody {
    const plans = this.#plans;
    const fields: Partial<Record<Field, string>> = {};
    let context: Record<string, JsonValue> | undefined;
    let contextColumn: JsonValue = null;
    let integrations: JsonValue = null;
    for (let i = 0; i < plans.length; i++) {
      const plan = plans[i]!;
      if (plan.to === 'bag') continue;
      const value = row[i] ?? null;
      if (plan.to === 'field') {
        if (value === null) continue;
        const text = fieldValue(plan.field, value);
        if (typeof text !== 'string') return text;
        if (text !== '') fields[plan.field] = text;
      } else if (plan.to === 'context') contextColumn = value;
      else if (plan.to === 'integrations') integrations = value;
      else if (value !== null) {
        context ??= Object.create(null) as Record<string, JsonValue>;
        if (!setPath(context, plan.path, value)) {
          return reject(`context.${plan.path.join('.')} clashes with another context column`);
        }
      }
    }
    const missing = this.#missing(fields);
    if (missing !== undefined) return reject(missing);

    // the JSON text of the call after its brace, built in one pass: the same text JSON.stringify gives for an
    // object with these keys in this order (the bag's keys in the order such an object prints them)
    let body = this.#typePart;
    for (const f of FIELD_ORDER) {
      const v = fields[f];
      if (v !== undefined) body += `,"${f}":${jsonText(v)}`;
    }
    if (contextColumn !== null || context !== undefined) {
      const base = jsonObject(contextColumn);
      if (base === undefined) return reject('the context column is not a JSON object');
      const merged = context === undefined ? base : mergeObjects(base, context);
      if (Object.keys(merged).length > 0) body += `,"context":${JSON.stringify(canonical(merged))}`;
    }
    if (integrations !== null) {
      const value = jsonObject(integrations);
      if (value === undefined || Object.values(value).some((v) => typeof v !== 'boolean')) {
        return reject('the integrations column is not a JSON object of booleans');
      }
      body += `,"integrations":${JSON.stringify(canonical(value))}`;
    }
    if (this.#bagStart !== undefined) {
      body += this.#bagStart;
      const parts = this.#bagParts;
      for (let p = 0; p < parts.length; p++) {
        const part = parts[p]!;
        body += part.prefix + jsonText(row[part.index] ?? null);
      }
      body += '}';
    }
    body += '}';
    if ((CALL_HEAD_BYTES + body.length) * 3 > MAX_CALL_BYTES) {
      const bytes = CALL_HEAD_BYTES + Buffer.byteLength(body);
      if (bytes > MAX_CALL_BYTES) {
        return reject(`the call is ${bytes} bytes, over the ${MAX_CALL_BYTES / 1024} KB limit of one call`);
      }
    }
    return { ok: true, body };
  }

  #missing(f: Partial<Record<Field, string>>): string | undefined {
    const who = f.userId !== undefined || f.anonymousId !== undefined;
    switch (this.type) {
      case 'identify':
        return who ? undefined : 'no userId and no anonymousId';
      case 'track':
        if (f.event === undefined) return 'no event';
        return who ? undefined : 'no userId and no anonymousId';
      case 'group':
        if (f.groupId === undefined) return 'no groupId';
        return who ? undefined : 'no userId and no anonymousId';
      case 'page':
      case 'screen':
        if (f.name === undefined) return 'no name';
        return who ? undefined : 'no userId and no anonymousId';
      case 'alias':
        if (f.previousId === undefined) return 'no previousId';
        return f.userId === undefined ? 'no userId' : undefined;
    }
  }
}

/**
 * Writes a call at `at` in `out` (room for `CALL_HEAD_BYTES` + 3 bytes per UTF-16 unit of `body` needed):
 * `{"messageId":"wharf-<sha256>",<body>`, the same bytes as the UTF-8 of `map`'s line. The sha256 is taken over
 * the bytes written, with `seed` (the mapper's, at most `CALL_HEAD_BYTES` long) laid just before the body in the
 * place the head then takes. Returns the call's bytes.
 */
export function writeCall(out: Buffer, at: number, seed: Buffer, body: string): number {
  const bodyAt = at + CALL_HEAD_BYTES;
  const size = out.write(body, bodyAt, 'utf8');
  seed.copy(out, bodyAt - seed.length);
  const digest = hash('sha256', out.subarray(bodyAt - seed.length, bodyAt + size), 'hex');
  HEAD_START.copy(out, at);
  out.write(digest, at + HEAD_START.length, 'latin1');
  out[bodyAt - 2] = QUOTE;
  out[bodyAt - 1] = COMMA;
  return CALL_HEAD_BYTES + size;
}

/** What JSON.stringify escapes in a string (and surrogates, which it escapes when alone). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A value's JSON text: what JSON.stringify gives, without its call for the plain strings and numbers most values are. */
function jsonText(value: JsonValue): string {
  if (typeof value === 'string') return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return JSON.stringify(value);
}

/** The `messageId` a call line starts with. */
export function messageIdOf(line: string): string {
  if (!line.startsWith(LINE_PREFIX)) throw new Error('not a call line');
  return line.slice(LINE_PREFIX.length, line.indexOf('"', LINE_PREFIX.length));
}

function reject(reason: string): Rejection {
  return { ok: false, reason };
}

/** A field's value as text, or the rejection. */
function fieldValue(field: Field, value: JsonValue): string | Rejection {
  if (field === 'timestamp') {
    const iso = isoTimestamp(value);
    return iso ?? reject('timestamp is neither an ISO-8601 date-time nor a Unix time in seconds');
  }
  if (field === 'objectTypeId') {
    const text = typeof value === 'number' ? String(value) : value;
    return typeof text === 'string' && /^\d+$/.test(text) ? text : reject('objectTypeId is not an integer');
  }
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  return reject(
    `${field} is ${Array.isArray(value) ? 'an array' : typeof value === 'boolean' ? 'a boolean' : 'an object'}, not a string or a number`,
  );
}

const ISO = /^(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d(?:\.\d+)?)?)(Z|[+-]\d\d(?::?\d\d)?)?)?$/;

/**
 * A `timestamp` column's value as ISO-8601: a number (or numeric text) is Unix seconds; an ISO date-time
 * stays as it is (a space before the time becomes `T`; without a zone it is UTC); a date is its midnight UTC.
 */
export function isoTimestamp(value: JsonValue): string | undefined {
  let seconds: number | undefined;
  if (typeof value === 'number') seconds = value;
  else if (typeof value === 'string' && /^-?\d+(?:\.\d+)?$/.test(value)) seconds = Number(value);
  if (seconds !== undefined) {
    const ms = seconds * 1000;
    return Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const m = ISO.exec(value);
  if (m === null) return undefined;
  const text = m[2] === undefined ? `${m[1]}T00:00:00Z` : `${m[1]}T${m[2]}${m[3] ?? 'Z'}`;
  return Number.isNaN(Date.parse(text)) ? undefined : text;
}

/** An object from a JSON value, or from text holding one; undefined when it is neither. */
function jsonObject(value: JsonValue): Record<string, JsonValue> | undefined {
  if (value === null) return Object.create(null) as Record<string, JsonValue>;
  let v: unknown = value;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      return undefined;
    }
  }
  return v !== null && typeof v === 'object' && !Array.isArray(v)
    ? (v as Record<string, JsonValue>)
    : undefined;
}

/** Sets `path` in `target`; false when a non-object is in the way. */
function setPath(target: Record<string, JsonValue>, path: readonly string[], value: JsonValue): boolean {
  let node = target;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]!;
    const next = node[key];
    if (next === undefined) {
      const child = Object.create(null) as Record<string, JsonValue>;
      node[key] = child;
      node = child;
    } else if (next !== null && typeof next === 'object' && !Array.isArray(next)) {
      node = next as Record<string, JsonValue>;
    } else return false;
  }
  const last = path[path.length - 1]!;
  if (node[last] !== undefined && typeof node[last] === 'object') return false;
  node[last] = value;
  return true;
}

/** `over` laid over `base`, objects merged key by key. */
function mergeObjects(
  base: Record<string, JsonValue>,
  over: Record<string, JsonValue>,
): Record<string, JsonValue> {
  const out = Object.assign(Object.create(null) as Record<string, JsonValue>, base);
  for (const [key, value] of Object.entries(over)) {
    const was = out[key];
    const bothObjects =
      was !== null &&
      typeof was === 'object' &&
      !Array.isArray(was) &&
      value !== null &&
      typeof value === 'object' &&
      !Array.isArray(value);
    out[key] = bothObjects
      ? mergeObjects(was as Record<string, JsonValue>, value as Record<string, JsonValue>)
      : value;
  }
  return out;
}

/** The same value with every object's keys sorted (a stable JSON text, hence a stable messageId). */
function canonical(value: JsonValue): JsonValue {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(canonical);
  const out = Object.create(null) as Record<string, JsonValue>;
  for (const key of Object.keys(value).sort(compareText)) {
    out[key] = canonical((value as Record<string, JsonValue>)[key]!);
  }
  return out;
}

/** Array-index keys (`0`, `7`, `10`) first in numeric order, then the others by code unit: how an object prints. */
function compareObjectKeys(a: string, b: string): number {
  const x = isArrayIndex(a);
  const y = isArrayIndex(b);
  if (x && y) return Number(a) - Number(b);
  if (x !== y) return x ? -1 : 1;
  return compareText(a, b);
}

function isArrayIndex(key: string): boolean {
  return /^(?:0|[1-9]\d{0,9})$/.test(key) && Number(key) < 4294967295;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
