import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDuration } from '../core/duration.js';
import { ConfigError } from '../core/errors.js';

/** Settings shared by every command: flags win over environment, environment over wharf.yaml. */
export const settingsSchema = z.object({
  sourceUrl: z.string().optional(),
  sourceSchema: z.string().min(1).default('public'),
  stagingUrl: z.string().optional(),
  controlUrl: z.string().optional(),
  controlSchema: z.string().min(1).default('wharf'),
  window: z.string().default('1m'),
  historyWindow: z.string().default('1d'),
  settle: z.string().default('30s'),
  longTransaction: z.string().default('15m'),
  format: z.enum(['csv', 'parquet', 'json']).default('csv'),
  s3Endpoint: z.string().optional(),
  s3PathStyle: z.boolean().optional(),
  spoolDir: z.string().optional(),
  json: z.boolean().default(false),
  verbose: z.boolean().default(false),
});

export type Settings = z.infer<typeof settingsSchema>;

export interface ResolvedDurations {
  readonly windowMs: number;
  readonly historyMs: number;
  readonly settleMs: number;
  readonly longTransactionMs: number;
}

const ENV: Record<string, keyof Settings> = {
  WHARF_SOURCE_URL: 'sourceUrl',
  WHARF_SOURCE_SCHEMA: 'sourceSchema',
  WHARF_STAGING_URL: 'stagingUrl',
  WHARF_CONTROL_URL: 'controlUrl',
  WHARF_CONTROL_SCHEMA: 'controlSchema',
  WHARF_WINDOW: 'window',
  WHARF_HISTORY_WINDOW: 'historyWindow',
  WHARF_SETTLE: 'settle',
  WHARF_LONG_TRANSACTION: 'longTransaction',
  WHARF_S3_ENDPOINT: 's3Endpoint',
};

const yamlSchema = z
  .object({
    source_url: z.string(),
    source_schema: z.string(),
    staging_url: z.string(),
    control_url: z.string(),
    control_schema: z.string(),
    window: z.string(),
    history_window: z.string(),
    settle: z.string(),
    long_transaction: z.string(),
    format: z.enum(['csv', 'parquet', 'json']),
    s3_endpoint: z.string(),
    s3_path_style: z.boolean(),
  })
  .partial()
  .strict();

function fromYaml(path: string): Partial<Settings> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}`, {
      cause: error,
      hint: 'check the --config path',
    });
  }
  const parsed = yamlSchema.safeParse(parseYaml(text) ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(
      `invalid config file ${path}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim(),
      {
        hint: 'see docs/configuration.md for the keys wharf.yaml accepts',
      },
    );
  }
  const y = parsed.data;
  const out: Partial<Settings> = {};
  if (y.source_url) out.sourceUrl = y.source_url;
  if (y.source_schema) out.sourceSchema = y.source_schema;
  if (y.staging_url) out.stagingUrl = y.staging_url;
  if (y.control_url) out.controlUrl = y.control_url;
  if (y.control_schema) out.controlSchema = y.control_schema;
  if (y.window) out.window = y.window;
  if (y.history_window) out.historyWindow = y.history_window;
  if (y.settle) out.settle = y.settle;
  if (y.long_transaction) out.longTransaction = y.long_transaction;
  if (y.format) out.format = y.format;
  if (y.s3_endpoint) out.s3Endpoint = y.s3_endpoint;
  if (y.s3_path_style !== undefined) out.s3PathStyle = y.s3_path_style;
  return out;
}

/** Merges wharf.yaml, the environment and flags (in that order of precedence, lowest first). */
export function resolveSettings(
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
): Settings {
  const merged: Record<string, unknown> = {};
  if (typeof flags.config === 'string') Object.assign(merged, fromYaml(flags.config));
  for (const [name, key] of Object.entries(ENV)) {
    const value = env[name];
    if (value !== undefined && value !== '') merged[key] = value;
  }
  if (env.WHARF_S3_PATH_STYLE)
    merged.s3PathStyle = env.WHARF_S3_PATH_STYLE === 'true' || env.WHARF_S3_PATH_STYLE === '1';
  for (const key of Object.keys(settingsSchema.shape)) {
    const value = flags[key];
    if (value !== undefined) merged[key] = value;
  }
  const parsed = settingsSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`invalid setting ${issue?.path.join('.') ?? ''}: ${issue?.message ?? ''}`);
  }
  return parsed.data;
}

export function durations(settings: Settings): ResolvedDurations {
  return {
    windowMs: parseDuration(settings.window, 'window size (WHARF_WINDOW)'),
    historyMs: parseDuration(settings.historyWindow, 'history window'),
    settleMs: parseDuration(settings.settle, 'settle time (WHARF_SETTLE)'),
    longTransactionMs: parseDuration(settings.longTransaction, 'long transaction limit'),
  };
}
