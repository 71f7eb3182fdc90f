import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type Sql } from '#shared/db/connect.js';
import { alive, readPostmasterPid, startEmbeddedPostgres, type EmbeddedPostgres } from '#shared/db/embedded.js';
import { freePort } from '#shared/db/free-port.js';
import { migrate } from '#shared/db/migrator.js';
import { testLog } from './engine.js';
import { waitFor } from './wait.js';

const DATA_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '.data');

/**
 * A migrated PostgreSQL cluster of one test file's own, for tests that stop and restart the
 * server: stopping the shared test cluster would break every other test file. It restarts on the
 * same port and data directory, so pools opened through it reconnect by themselves.
 */
export class OwnCluster {
  readonly #pools: Sql[] = [];

  private constructor(
    readonly rootDir: string,
    readonly port: number,
    private pg: EmbeddedPostgres | undefined,
    private readonly settings: Record<string, string>,
  ) {}

  /** `settings`: server settings (`-c name=value`), kept across restarts. */
  static async start(name: string, settings: Record<string, string> = {}): Promise<OwnCluster> {
    const rootDir = path.join(DATA_DIR, `test-${name}-${process.pid}`);
    const port = await freePort();
    const cluster = new OwnCluster(rootDir, port, await startEmbeddedPostgres({ rootDir, port, log: testLog, settings }), settings);
    const sql = connect(cluster.url, { max: 1 });
    try {
      await migrate(sql);
    } finally {
      await sql.end();
    }
    return cluster;
  }

  get url(): string {
    return this.pg!.url;
  }

  /** A pool on the cluster (as another role: `url`), ended by endPools(). */
  open(max: number, url = this.url): Sql {
    const sql = connect(url, { max });
    this.#pools.push(sql);
    return sql;
  }

  /**
   * Ends every pool opened so far. postgres.js 3.4.9: a connection closed mid-query by a restart and
   * never used again keeps that query as current, so a graceful end() would wait for it until the timeout.
   */
  async endPools(): Promise<void> {
    await Promise.all(this.#pools.splice(0).map((p) => p.end({ timeout: 1 })));
  }

  /** Stops the server (the data stays, for start()). */
  async stop(): Promise<void> {
    await this.pg?.stop();
    this.pg = undefined;
  }

  /** Starts the server again on the same port and data. */
  async restart(): Promise<void> {
    this.pg = await startEmbeddedPostgres({ rootDir: this.rootDir, port: this.port, log: testLog, settings: this.settings });
  }

  /**
   * Crashes the server and starts it again: SIGQUIT is PostgreSQL's immediate shutdown, every
   * process exits at once and WAL still in shared memory is lost, so the restart runs crash
   * recovery from what reached the WAL files.
   */
  async crash(): Promise<void> {
    const pid = readPostmasterPid(path.join(this.rootDir, 'pg'));
    if (pid === undefined) throw new Error(`no postmaster.pid under ${this.rootDir}`);
    process.kill(pid, 'SIGQUIT');
    await waitFor(() => !alive(pid), 'the crashed PostgreSQL to exit', 30_000);
    await this.stop();
    await this.restart();
  }

  /** Ends the pools, stops the server and deletes its data. */
  async remove(): Promise<void> {
    await this.endPools();
    await this.stop();
    rmSync(this.rootDir, { recursive: true, force: true });
  }
}
