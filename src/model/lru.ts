/**
 * A least-recently-used map of bounded size, for caches that must not grow with the number of
 * distinct keys a long-lived process sees.
 */

/**
 * A `Map` that keeps at most `capacity` entries, dropping the least recently used.
 * @example const counts = new Lru<number>(1_000); counts.set(hash, 42); counts.get(hash);
 */
export class Lru<V> {
  private readonly entries = new Map<string, V>();

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`an LRU needs a whole capacity of at least 1, got ${String(capacity)}`);
    }
  }

  /** The value under `key`, marking it as the most recently used. */
  get(key: string): V | undefined {
    const value = this.entries.get(key);
    if (value === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, value);
    return value;
  }

  /** Stores `value` under `key` as the most recently used, dropping the oldest beyond capacity. */
  set(key: string, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
  }

  /** Removes `key` if it still holds `value` (a newer entry under the same key stays). */
  deleteIf(key: string, value: V): void {
    if (this.entries.get(key) === value) this.entries.delete(key);
  }

  /** How many entries are held. */
  get size(): number {
    return this.entries.size;
  }
}
