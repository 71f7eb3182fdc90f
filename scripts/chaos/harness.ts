/**
 * What the chaos and load scripts share: a PostgreSQL to run against, real `leasehold` child
 * processes, and the summary line each prints before exiting non-zero on a broken invariant.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type Sql } from '#shared/db/connect.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '#shared/db/embedded.js';
import { freePort } from '#shared/db/free-port.js';
import { migrate } from '#shared/db/migrator.js';
import { createLogger, type Logger } from '#shared/log.js';

/** The repository root: where `scripts/leasehold.mjs` runs from. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/**
 * Where the `leasehold` processes run from: this checkout, or CHAOS_APP_DIR (e.g. a directory laid
 * out like the production image, with its own node_modules).
 */
export const APP_DIR = process.env.CHAOS_APP_DIR ?? ROOT;
/** Quiet unless LOG_LEVEL says otherwise. */
export const log: Logger = createLogger(process.env.LOG_LEVEL ?? 'warn', 'chaos');

/** A migrated database for one run, and how to let it go. */
export interface ChaosDatabase {
  url: string;
  sql: Sql;
  /** Present when the run started its own embedded server (pg-restart stops and starts it). */
  embedded?: { rootDir: string; port: number; server: EmbeddedPostgres };
  close(): Promise<void>;
}

/**
 * DATABASE_URL when set (and `ownServer` is not asked for), otherwise a fresh embedded PostgreSQL
 * under .data/<name>-<pid>, removed at close.
 */
export async function openChaosDatabase(name: string, opts: { ownServer?: boolean } = {}): Promise<ChaosDatabase> {
  const given = process.env.DATABASE_URL;
  if (given && !opts.ownServer) {
    const sql = connect(given, { max: 4, application: `chaos-${name}` });
    await migrate(sql);
    return { url: given, sql, close: () => sql.end({ timeout: 5 }) };
  }
  const rootDir = path.join(ROOT, '.data', `${name}-${process.pid}`);
  rmSync(rootDir, { recursive: true, force: true });
  const port = await freePort();
  const server = await startEmbeddedPostgres({ rootDir, port, log });
  const db: ChaosDatabase = {
    url: server.url,
    sql: connect(server.url, { max: 4, application: `chaos-${name}` }),
    embedded: { rootDir, port, server },
    async close() {
      await db.sql.end({ timeout: 1 });
      await db.embedded!.server.stop();
      rmSync(rootDir, { recursive: true, force: true });
    },
  };
  await migrate(db.sql);
  return db;
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** A running `leasehold <command>` child, its output kept for the report when it fails. */
export interface LeaseholdProcess {
  child: ChildProcess;
  pid: number;
  output(): string;
  exited: Promise<number | null>;
}

/** Starts `node scripts/leasehold.mjs <args>` with `env` over this process's environment. */
export function spawnLeasehold(args: string[], env: Record<string, string>): LeaseholdProcess {
  const child = spawn(process.execPath, ['scripts/leasehold.mjs', ...args], {
    cwd: APP_DIR,
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  // Keep the tail only: a long run must not grow without bound.
  const keep = (d: Buffer) => (out = (out + d.toString()).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => (children.delete(child), resolve(code))));
  return { child, pid: child.pid!, output: () => out, exited };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null when killed). */
export async function stopProcess(p: LeaseholdProcess, graceMs = 15_000): Promise<number | null> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return p.child.exitCode;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  const code = await p.exited;
  clearTimeout(timer);
  return code;
}

/** Polls `check` every `everyMs` until it returns a truthy value or `timeoutMs` passes (then undefined). */
export async function pollUntil<T>(check: () => Promise<T | false | undefined> | T | false | undefined, timeoutMs: number, everyMs = 100): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The p-th percentile (0–100) of `xs`, nearest rank; NaN for none. */
export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Invariants checked at the end of a run: each failed one is named in the summary. */
export class Verdict {
  readonly failures: string[] = [];

  /** Records `message` as a broken invariant unless `ok`. */
  check(ok: boolean, message: string): void {
    if (!ok) this.failures.push(message);
  }

  /** Prints the one summary line (and the figures as JSON with --json) and sets the exit code. */
  finish(name: string, summary: string, figures: Record<string, unknown>, json: boolean): void {
    const ok = this.failures.length === 0;
    if (json) console.log(JSON.stringify({ name, ok, failures: this.failures, ...figures }, null, 2));
    console.log(`${name} ${ok ? 'ok' : 'FAILED'}: ${summary}${ok ? '' : ` | broken: ${this.failures.join('; ')}`}`);
    process.exitCode = ok ? 0 : 1;
  }
}

/** Jobs, successes and job.succeeded events of one tenant (or all), for the exactly-once check. */
export async function exactlyOnce(sql: Sql, tenantId?: string): Promise<{ jobs: number; succeeded: number; events: number; jobsWithEvent: number; maxEventsPerJob: number }> {
  const [r] = await sql<{ jobs: number; succeeded: number; events: number; jobs_with_event: number; max_per_job: number }[]>`
    with j as (select id, status from leasehold.jobs where ${tenantId ? sql`tenant_id = ${tenantId}` : sql`true`}),
         e as (select job_id, count(*) as n from leasehold.job_events
               where type = 'job.succeeded' and job_id in (select id from j) group by job_id)
    select (select count(*) from j)::int as jobs,
           (select count(*) from j where status = 'succeeded')::int as succeeded,
           coalesce((select sum(n) from e), 0)::int as events,
           (select count(*) from e)::int as jobs_with_event,
           coalesce((select max(n) from e), 0)::int as max_per_job`;
  return { jobs: r!.jobs, succeeded: r!.succeeded, events: r!.events, jobsWithEvent: r!.jobs_with_event, maxEventsPerJob: r!.max_per_job };
}
