/**
 * Objects whose bytes are all handed to the store and that are still being stored: the next object is converted
 * while they finish, at most `limit` of them at once (each holds at most its upload buffers). Results come back
 * in the order the objects were added.
 */
export class PendingObjects<T> {
  readonly #limit: number;
  readonly #pending: Promise<T>[] = [];
  readonly #done: T[] = [];
  readonly #onDone: ((value: T) => void) | undefined;

  constructor(limit: number, onDone?: (value: T) => void) {
    this.#limit = Math.max(1, limit);
    this.#onDone = onDone;
  }

  /** Adds an object being stored; waits while more than `limit` are. */
  async add(storing: Promise<T>): Promise<void> {
    // a failure is seen when the object is awaited, never as an unhandled rejection
    storing.catch(() => {});
    this.#pending.push(storing);
    while (this.#pending.length > this.#limit) await this.#next();
  }

  /** Waits for every object; their results in the order they were added. */
  async drain(): Promise<T[]> {
    while (this.#pending.length > 0) await this.#next();
    return this.#done;
  }

  /** Waits for every object to succeed or fail (after a failure elsewhere), without throwing. */
  async settle(): Promise<void> {
    await Promise.allSettled(this.#pending.splice(0));
  }

  async #next(): Promise<void> {
    const value = await this.#pending[0]!;
    this.#pending.shift();
    this.#done.push(value);
    this.#onDone?.(value);
  }
}
