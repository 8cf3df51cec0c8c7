import type { Writable } from 'node:stream';

/** Resolves once `out` has drained (at once if it does not need to); rejects if it fails or is destroyed. */
export function waitForDrain(out: Writable): Promise<void> {
  if (out.destroyed) return Promise.reject(out.errored ?? new Error('output stream destroyed'));
  if (!out.writableNeedDrain) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      out.off('error', onError);
      resolve();
    };
    const onError = (error: Error) => {
      out.off('drain', onDrain);
      reject(error);
    };
    out.once('drain', onDrain);
    out.once('error', onError);
  });
}
