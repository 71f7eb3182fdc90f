/**
 * A map that keeps only the `capacity` most recently used entries: a Map's insertion order is
 * its recency, so a hit moves to the end and the first entry is the one to drop. `onEvict` hears
 * of each dropped entry (a compiled schema must also leave ajv's own cache).
 */
export class LruCache<K, V> {
  readonly #entries = new Map<K, V>();

  constructor(
    readonly capacity: number,
    private readonly onEvict?: (value: V, key: K) => void,
  ) {}

  /** The entry for `key`, now the most recently used; undefined when there is none. */
  get(key: K): V | undefined {
    const hit = this.#entries.get(key);
    if (hit !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, hit);
    }
    return hit;
  }

  /** Stores an entry as the most recently used, dropping the least recently used past capacity. */
  set(key: K, value: V): void {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    if (this.#entries.size <= this.capacity) return;
    const [oldest, entry] = this.#entries.entries().next().value!;
    this.#entries.delete(oldest);
    this.onEvict?.(entry, oldest);
  }

  /** Entries held now. */
  get size(): number {
    return this.#entries.size;
  }
}
