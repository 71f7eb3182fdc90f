import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded.js';

/** Where this process's database is, and how to let it go. */
export interface DatabaseHandle {
  url: string;
  /** The embedded server this process started, if any. */
  embedded?: EmbeddedPostgres;
  close(): Promise<void>;
}

/** `DATABASE_URL` when set; otherwise the embedded PostgreSQL under the data directory. */
export async function openDatabase(config: Config, log: Logger): Promise<DatabaseHandle> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL, close: async () => {} };
  const embedded = await startEmbeddedPostgres({ rootDir: config.LEASEHOLD_DATA_DIR, port: config.EMBEDDED_PG_PORT, log });
  return { url: embedded.url, embedded, close: () => embedded.stop() };
}
