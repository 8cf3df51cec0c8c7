import type { ArgumentsCamelCase } from 'yargs';
import { CommandContext } from './context.js';
import { resolveSettings } from './settings.js';

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
}

/** Wraps a command handler: resolves settings, opens what it uses, always closes it. */
export function withContext<A extends GlobalArgs>(
  handler: (ctx: CommandContext, args: ArgumentsCamelCase<A>) => Promise<void>,
): (args: ArgumentsCamelCase<A>) => Promise<void> {
  return async (args) => {
    const ctx = new CommandContext(resolveSettings(args as unknown as Record<string, unknown>));
    try {
      await handler(ctx, args);
    } finally {
      await ctx.close();
    }
  };
}
