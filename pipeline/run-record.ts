import { oneLine } from '../core/errors.js';
import type { Runtime } from './runtime.js';

/**
 * Runs `record` (a write of run history) and logs, instead of throwing, when the control database cannot take
 * it: the work it records is done (or failed) either way.
 */
export async function recordSafely(rt: Runtime, record: () => Promise<void>): Promise<void> {
  try {
    await record();
  } catch (error) {
    rt.logger.warn(
      { err: oneLine(error) },
      `cannot record the run in the control database: ${oneLine(error)}`,
    );
  }
}
