import type { ArgumentsCamelCase } from 'yargs';
import { Runtime } from '../pipeline/runtime.js';
import { resolveSettings } from '../pipeline/settings.js';

/** Options every command accepts. */
export interface GlobalArgs {
  sourceUrl?: string;
  sourceSchema?: string;
  stagingUrl?: string;
  controlUrl?: string;
  controlSchema?: string;
  config?: string;
  json?: boolean;
  verbose?: boolean;
  s3Endpoint?: string;
  s3PathStyle?: boolean;
  window?: string;
  settle?: string;
  lockTimeout?: string;
  statementTimeout?: string;
  stopGrace?: string;
}

/** Wraps a command handler: resolves the settings, builds the runtime it uses, always closes it. */
export function withRuntime<A extends GlobalArgs>(
  handler: (rt: Runtime, args: ArgumentsCamelCase<A>) => Promise<void>,
): (args: ArgumentsCamelCase<A>) => Promise<void> {
  return async (args) => {
    const rt = new Runtime(resolveSettings(args as unknown as Record<string, unknown>));
    try {
      await handler(rt, args);
    } finally {
      await rt.close();
    }
  };
}
