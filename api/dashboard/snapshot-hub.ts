import type { Sql } from '#shared/db/connect.js';
import type { Logger } from '#shared/log.js';
import { SnapshotReader, type Snapshot } from './snapshot.js';

/** A page listening for snapshots. */
type Listener = (snapshot: Snapshot) => void;

/**
 * Reads a snapshot every `intervalMs` while at least one dashboard is open in this process, and
 * hands the same one to every page: ten open dashboards cost the database what one does. It stops
 * reading when the last page goes.
 */
export class SnapshotHub {
  readonly #reader: SnapshotReader;
  readonly #listeners = new Set<Listener>();
  #loop: Promise<void> | undefined;
  #latest: Snapshot | undefined;
  #reading: Promise<Snapshot> | undefined;

  constructor(
    sql: Sql,
    private readonly log: Logger,
    private readonly intervalMs = 1_000,
  ) {
    this.#reader = new SnapshotReader(sql);
  }

  /** A fresh snapshot (shared with a read already in flight). */
  current(): Promise<Snapshot> {
    this.#reading ??= this.#reader.read().finally(() => (this.#reading = undefined));
    return this.#reading.then((s) => (this.#latest = s));
  }

  /** Calls `listener` with the latest snapshot at once, then with every new one; returns the unsubscribe. */
  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    if (this.#latest) listener(this.#latest);
    this.#loop ??= this.#run().finally(() => (this.#loop = undefined));
    return () => void this.#listeners.delete(listener);
  }

  async #run(): Promise<void> {
    while (this.#listeners.size > 0) {
      try {
        const snapshot = await this.current();
        for (const listener of this.#listeners) listener(snapshot);
      } catch (err) {
        this.log.warn({ err }, 'dashboard: could not read a snapshot');
      }
      await new Promise((resolve) => setTimeout(resolve, this.intervalMs).unref());
    }
  }
}
