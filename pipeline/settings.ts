import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDuration } from '../core/duration.js';
import { ConfigError, UsageError } from '../core/errors.js';
import { checkSizes } from '../exporter/windows.js';

/** One setting: its schema, and where it may come from besides its flag (`--kebab-case` of its key). */
interface SettingSource {
  readonly schema: z.ZodType;
  /** Environment variables, first set one wins. */
  readonly env?: readonly string[];
  /** Its key in wharf.yaml (none: not allowed in the file). */
  readonly yaml?: string;
}

const bool = z.union([
  z.boolean(),
  z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1'),
]);
const text = z.string();
const nonEmpty = z.string().min(1);
/** A duration setting; `what` names it in the message (`invalid window size "1 minute"; use …`). */
const duration = (what: string) =>
  z.string().superRefine((value, ctx) => {
    try {
      parseDuration(value, what);
    } catch (error) {
      ctx.addIssue({
        code: 'custom',
        message: error instanceof UsageError ? error.oneLine() : String(error),
      });
    }
  });

/** A duration that must be more than 0 (a timeout of 0 would mean none at all). */
const positive = (what: string) =>
  duration(what).refine((value) => {
    try {
      return parseDuration(value, what) > 0;
    } catch {
      return true; // the duration check reports it
    }
  }, `the ${what} must be more than 0, e.g. 10s`);

/**
 * Every setting shared by the commands and the daemon, with its sources. Precedence, lowest first:
 * wharf.yaml, the environment, flags. Adding a setting is one line here.
 */
const SOURCES = {
  sourceUrl: { schema: text, env: ['WHARF_SOURCE_URL'], yaml: 'source_url' },
  sourceSchema: { schema: nonEmpty.default('public'), env: ['WHARF_SOURCE_SCHEMA'], yaml: 'source_schema' },
  stagingUrl: { schema: text, env: ['WHARF_STAGING_URL'], yaml: 'staging_url' },
  controlUrl: { schema: text, env: ['WHARF_CONTROL_URL'], yaml: 'control_url' },
  controlSchema: { schema: nonEmpty.default('wharf'), env: ['WHARF_CONTROL_SCHEMA'], yaml: 'control_schema' },
  window: { schema: duration('window size').default('1m'), env: ['WHARF_WINDOW'], yaml: 'window' },
  historyWindow: {
    schema: duration('history window').default('1d'),
    env: ['WHARF_HISTORY_WINDOW'],
    yaml: 'history_window',
  },
  settle: { schema: duration('settle time').default('30s'), env: ['WHARF_SETTLE'], yaml: 'settle' },
  longTransaction: {
    schema: duration('long transaction limit').default('15m'),
    env: ['WHARF_LONG_TRANSACTION'],
    yaml: 'long_transaction',
  },
  lockTimeout: {
    schema: positive('lock timeout').default('10s'),
    env: ['WHARF_LOCK_TIMEOUT'],
    yaml: 'lock_timeout',
  },
  statementTimeout: {
    schema: positive('statement timeout').default('1h'),
    env: ['WHARF_STATEMENT_TIMEOUT'],
    yaml: 'statement_timeout',
  },
  stopGrace: {
    schema: duration('stop grace period').default('20s'),
    env: ['WHARF_STOP_GRACE'],
    yaml: 'stop_grace',
  },
  format: { schema: z.enum(['csv', 'parquet', 'json']).optional(), yaml: 'format' },
  s3Endpoint: {
    schema: text,
    env: ['WHARF_S3_ENDPOINT', 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL'],
    yaml: 's3_endpoint',
  },
  s3PathStyle: { schema: bool, env: ['WHARF_S3_PATH_STYLE'], yaml: 's3_path_style' },
  spoolDir: { schema: text, env: ['WHARF_SPOOL_DIR'], yaml: 'spool_dir' },
  json: { schema: bool.default(false) },
  verbose: { schema: bool.default(false) },
} as const satisfies Record<string, SettingSource>;

type Sources = typeof SOURCES;

/** The settings schema: every setting optional unless it has a default. */
export const settingsSchema = z.object(
  Object.fromEntries(
    Object.entries(SOURCES).map(([key, s]) => [
      key,
      s.schema instanceof z.ZodDefault || s.schema instanceof z.ZodOptional ? s.schema : s.schema.optional(),
    ]),
  ) as {
    [K in keyof Sources]: Sources[K]['schema'] extends z.ZodDefault | z.ZodOptional
      ? Sources[K]['schema']
      : z.ZodOptional<Sources[K]['schema']>;
  },
);

export type Settings = z.infer<typeof settingsSchema>;

/** The durations of `Settings`, in milliseconds (checked when the settings are resolved). */
export interface ResolvedDurations {
  readonly windowMs: number;
  readonly historyMs: number;
  readonly settleMs: number;
  readonly longTransactionMs: number;
  /** `lock_timeout` of every warehouse session. */
  readonly lockTimeoutMs: number;
  /** `statement_timeout` of every warehouse session. */
  readonly statementTimeoutMs: number;
  /** How long a running load may go on once the daemon is asked to stop. */
  readonly stopGraceMs: number;
}

const yamlKeys = new Map<string, string>(
  Object.entries(SOURCES).flatMap(([key, s]) => ('yaml' in s ? [[s.yaml, key] as [string, string]] : [])),
);

function fromYaml(path: string): Record<string, unknown> {
  let body: string;
  try {
    body = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}`, {
      cause: error,
      hint: 'check the --config path',
    });
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(body) ?? {};
  } catch (error) {
    throw new UsageError(`config file ${path} is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`config file ${path} must be a mapping of settings`, 'see docs/configuration.md');
  }
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(parsed)) {
    const key = yamlKeys.get(name);
    if (!key) {
      throw new UsageError(
        `invalid config file ${path}: unknown key "${name}"`,
        `see docs/configuration.md for the keys wharf.yaml accepts (${[...yamlKeys.keys()].join(', ')})`,
      );
    }
    out[key] = value;
  }
  return out;
}

/** `sourceUrl` → `--source-url`. */
function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Where a setting's value came from, for the error message. */
function origin(key: string, from: Map<string, string>): string {
  return from.get(key) ?? flagName(key);
}

/**
 * Merges wharf.yaml (`flags.config`), the environment and flags, in that order of precedence (lowest first),
 * and checks them with one schema. A bad value is a usage error naming where it came from.
 */
export function resolveSettings(
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
): Settings {
  const merged: Record<string, unknown> = {};
  const from = new Map<string, string>();
  if (typeof flags.config === 'string') {
    for (const [key, value] of Object.entries(fromYaml(flags.config))) {
      merged[key] = value;
      from.set(key, `${flags.config}: ${(SOURCES as Record<string, SettingSource>)[key]!.yaml}`);
    }
  }
  for (const [key, source] of Object.entries(SOURCES) as [string, SettingSource][]) {
    const name = source.env?.find((n) => env[n] !== undefined && env[n] !== '');
    if (name) {
      merged[key] = env[name];
      from.set(key, name);
    }
    if (flags[key] !== undefined) {
      merged[key] = flags[key];
      from.set(key, flagName(key));
    }
  }
  const parsed = settingsSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue?.path[0] ?? '');
    throw new UsageError(
      `invalid setting ${origin(key, from)}: ${issue?.message ?? 'invalid'}`,
      'see docs/configuration.md',
    );
  }
  const settings = parsed.data as Settings;
  const d = durations(settings);
  try {
    checkSizes({ fineMs: d.windowMs, coarseMs: d.historyMs });
  } catch (error) {
    if (error instanceof UsageError) {
      throw new UsageError(`invalid setting ${origin('window', from)}: ${error.message}`, error.hint);
    }
    throw error;
  }
  return settings;
}

/** The settings' durations in milliseconds. */
export function durations(settings: Settings): ResolvedDurations {
  return {
    windowMs: parseDuration(settings.window, 'window size (WHARF_WINDOW)'),
    historyMs: parseDuration(settings.historyWindow, 'history window'),
    settleMs: parseDuration(settings.settle, 'settle time (WHARF_SETTLE)'),
    longTransactionMs: parseDuration(settings.longTransaction, 'long transaction limit'),
    lockTimeoutMs: parseDuration(settings.lockTimeout, 'lock timeout (WHARF_LOCK_TIMEOUT)'),
    statementTimeoutMs: parseDuration(
      settings.statementTimeout,
      'statement timeout (WHARF_STATEMENT_TIMEOUT)',
    ),
    stopGraceMs: parseDuration(settings.stopGrace, 'stop grace period (WHARF_STOP_GRACE)'),
  };
}
