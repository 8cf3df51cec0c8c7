import { type Logger, pino } from 'pino';
import pretty from 'pino-pretty';
import { redactUrls } from './secret.js';

export type { Logger };

export interface LoggerOptions {
  /** `debug`, `info`, `warn`, `error`, `silent`. */
  readonly level?: string;
  /** Pretty lines for a person (default: when stderr is a terminal); JSON lines otherwise. */
  readonly pretty?: boolean;
}

/**
 * Structured logs on stderr: JSON lines for machines, pretty lines in a terminal. Passwords never reach
 * a log line: `Secret` values print `********`, and any `scheme://user:password@` is masked.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.WHARF_LOG_LEVEL ?? 'info';
  const usePretty = options.pretty ?? Boolean(process.stderr.isTTY);
  const hooks = {
    streamWrite: (line: string) => redactUrls(line),
  };
  if (usePretty) {
    return pino(
      { level, hooks, base: undefined },
      pretty({
        destination: 2,
        sync: true,
        colorize: true,
        ignore: 'pid,hostname',
        translateTime: 'HH:MM:ss',
      }),
    );
  }
  return pino({ level, hooks, base: { app: 'wharf' } }, pino.destination({ dest: 2, sync: true }));
}

/** A logger that writes nothing (library use and tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
