/**
 * `npm run bench:drain`: where the time of one Leasehold drain goes, printed, not asserted. Each
 * round enqueues --jobs no-op jobs, then times a Worker at --concurrency from its start until every
 * outcome is written, as a bench:compare processing round does, and records:
 * - how long the drain spent with how many claim and completion statements in flight (the
 *   worker's connection pool is wrapped to time CLAIM_JOBS and COMPLETE_JOBS), and each
 *   statement's rows and round trip;
 * - the tail: from the last handler's return to the last outcome written;
 * - CPU per job, PostgreSQL's and this process's, and the share of the machine's CPU left idle
 *   (/proc/stat: other tenants of a shared host count as busy);
 * - WAL per job by record type and by relation (pg_walinspect, read after each round, outside the
 *   timed part).
 * The first round warms up and is not kept. Uses a fresh embedded PostgreSQL under
 * .data/bench-drain, started as bench:compare starts its own.
 */
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connect, type Sql } from '#shared/db/connect.js';
import { startEmbeddedPostgres } from '#shared/db/embedded.js';
import { CLAIM_JOBS, COMPLETE_JOBS } from '#shared/jobs/queue-sql.js';
import { createLogger } from '#shared/log.js';
import { pgCpuSeconds, postmasterPid } from './pg-cpu.js';
import { benchServerSettings, describeWal, walInitZeroOption } from './server-settings.js';
import { median } from './stats.js';
import { drained, leaseholdSystem, startWorker } from './systems/leasehold.js';
import { timeDrain, type QueueSystem } from './systems/system.js';
import { yardstickMs } from './yardstick.js';

const { values: opts } = parseArgs({
  options: {
    jobs: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '8' },
    port: { type: 'string', default: '54347' },
    ...walInitZeroOption,
  },
});
const N = Number(opts.jobs);
const C = Number(opts.concurrency);
const ROUNDS = Number(opts.rounds);
const log = createLogger(process.env.LOG_LEVEL ?? 'warn', 'bench');

/**
 * One claim or completion statement: when the worker asked for it and when its answer came (a
 * message under 1 kB leaves at postgres.js's next `setImmediate`, so it may reach the server a
 * little later), and the rows it took or wrote.
 */
interface Statement {
  kind: 'claim' | 'completion';
  sent: number;
  done: number;
  rows: number;
}

/** `sql` with its claims and completions timed into `into` (every other statement passes untouched). */
function timedStatements(sql: Sql, into: Statement[]): Sql {
  const kinds = new Map<string, Statement['kind']>([[CLAIM_JOBS, 'claim'], [COMPLETE_JOBS, 'completion']]);
  return new Proxy(sql, {
    get(target, prop, receiver) {
      if (prop !== 'unsafe') return Reflect.get(target, prop, receiver);
      return (query: string, ...rest: unknown[]) => {
        const pending = (target.unsafe as (...a: unknown[]) => Promise<Record<string, unknown>[]>)(query, ...rest);
        const kind = kinds.get(query);
        if (!kind) return pending;
        const sent = performance.now();
        return pending.then((rows) => {
          into.push({ kind, sent, done: performance.now(), rows: kind === 'claim' ? rows.length : Number(rows[0]!.written) });
          return rows;
        });
      };
    },
  });
}

/** Milliseconds of [t0, t1] spent with each number of claims and completions in flight ("claims × completions"). */
function inFlight(statements: Statement[], t0: number, t1: number): Map<string, number> {
  const edges = statements
    .flatMap((s) => [{ t: s.sent, kind: s.kind, d: 1 }, { t: s.done, kind: s.kind, d: -1 }])
    .filter((e) => e.t <= t1)
    .sort((a, b) => a.t - b.t);
  const out = new Map<string, number>();
  const open = { claim: 0, completion: 0 };
  let at = t0;
  const spend = (until: number) => {
    const key = `${open.claim} × ${open.completion}`;
    out.set(key, (out.get(key) ?? 0) + (until - at));
    at = until;
  };
  for (const e of edges) {
    spend(e.t);
    open[e.kind] += e.d;
  }
  spend(t1);
  return out;
}

/** The machine's CPU time counters (/proc/stat, all CPUs): [idle incl. iowait, total]. */
function machineCpu(): [number, number] {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return [f[3]! + f[4]!, f.reduce((a, b) => a + b, 0)];
}

/** Where the next WAL record will go. */
async function walInsertLsn(sql: Sql): Promise<string> {
  return (await sql<{ lsn: string }[]>`select pg_current_wal_insert_lsn()::text as lsn`)[0]!.lsn;
}

interface Round {
  rate: number;
  tailMs: number;
  states: Map<string, number>;
  statements: Statement[];
  pgUs: number;
  nodeUs: number;
  idle: number;
  wal: { type: string; bytes: number; records: number }[];
  walByRelation: { relation: string; bytes: number }[];
}

/** One drain of `N` jobs (enqueued and analyzed first, as bench:compare's rounds are), measured. */
async function round(system: QueueSystem, sql: Sql, workerSql: Sql, statements: Statement[], pgPid: number, walBy: boolean): Promise<Round> {
  await system.reset();
  await system.fill(N);
  statements.length = 0;
  const lsn0 = await walInsertLsn(sql);
  let ran = 0;
  let lastRan = 0;
  const [idle0, total0] = machineCpu();
  const pg0 = pgCpuSeconds(pgPid);
  const node0 = process.cpuUsage();
  // As a bench:compare round: from the worker's start until every outcome is written (its stop,
  // after that, is in the CPU figures, as there).
  const t0 = performance.now();
  const ms = await timeDrain(
    N,
    (done) => startWorker(workerSql, log, { concurrency: C }, () => (++ran === N && (lastRan = performance.now()), done())),
    () => drained(sql),
  );
  const t1 = t0 + ms;
  const node = process.cpuUsage(node0);
  const pg1 = pgCpuSeconds(pgPid);
  const [idle1, total1] = machineCpu();
  const lsn1 = await walInsertLsn(sql);
  const wal = await sql<{ type: string; bytes: number; records: number }[]>`
    select "resource_manager/record_type" as type, combined_size::float8 as bytes, count::float8 as records
    from pg_get_wal_stats(${lsn0}::pg_lsn, ${lsn1}::pg_lsn, true) where count > 0`;
  // A record's bytes go to the relation of its first block (records without one: "none").
  const walByRelation = walBy
    ? await sql<{ relation: string; bytes: number }[]>`
        select coalesce(c.relname, 'none') as relation, sum(r.record_length)::float8 as bytes
        from pg_get_wal_records_info(${lsn0}::pg_lsn, ${lsn1}::pg_lsn) r
        left join pg_class c on c.relfilenode = (regexp_match(r.block_ref, 'rel \\d+/\\d+/(\\d+)'))[1]::oid
        group by 1`
    : [];
  return {
    rate: N / (ms / 1000),
    tailMs: t1 - lastRan,
    states: inFlight(statements, t0, t1),
    statements: [...statements],
    pgUs: ((pg1 - pg0) * 1e6) / N,
    nodeUs: (node.user + node.system) / N,
    idle: (idle1 - idle0) / (total1 - total0),
    wal: [...wal],
    walByRelation: [...walByRelation],
  };
}

/** Values summed by key over the rounds and divided by `by` (the jobs, or the rounds for a mean per drain), largest first. */
function summed<T>(rounds: Round[], pick: (r: Round) => T[], key: (x: T) => string, value: (x: T) => number, by: number): [string, number][] {
  const sums = new Map<string, number>();
  for (const r of rounds) for (const x of pick(r)) sums.set(key(x), (sums.get(key(x)) ?? 0) + value(x));
  return [...sums].map(([k, v]): [string, number] => [k, v / by]).sort((a, b) => b[1] - a[1]);
}

async function main() {
  const rootDir = path.resolve('.data/bench-drain');
  rmSync(rootDir, { recursive: true, force: true });
  const pg = await startEmbeddedPostgres({ rootDir, port: Number(opts.port), log, settings: benchServerSettings(opts['wal-init-zero']) });
  const pgPid = postmasterPid(path.join(rootDir, 'pg'));
  // Enqueues and empties the tables as bench:compare does; the worker gets a pool of its own, timed.
  const system = leaseholdSystem(pg.url, log);
  const sql = connect(pg.url, { max: 2, application: 'bench-drain' });
  const statements: Statement[] = [];
  const workerSql = timedStatements(connect(pg.url, { max: 10, application: 'bench-worker', worker: true }), statements);
  try {
    await system.setup();
    await sql`create extension if not exists pg_walinspect`;
    const version = (await sql<{ version: string }[]>`select current_setting('server_version') as version`)[0]!.version;
    const rounds: Round[] = [];
    for (let r = 0; r <= ROUNDS; r++) {
      const result = await round(system, sql, workerSql, statements, pgPid, r === ROUNDS);
      if (r > 0) rounds.push(result);
    }
    print(rounds, version);
  } finally {
    await Promise.all([system.close(), sql.end(), workerSql.end()]);
    await pg.stop();
  }
}

function print(rounds: Round[], version: string) {
  const fmt = (x: number, digits = 0) => x.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  const med = (f: (r: Round) => number) => median(rounds.map(f));
  const drainMs = med((r) => N / r.rate * 1000);
  console.log(`PostgreSQL ${version} (embedded; ${describeWal(opts['wal-init-zero'])}), ${fmt(N)} no-op jobs per round, ` +
    `concurrency ${C}, ${rounds.length} rounds after one not kept, machine yardstick ${yardstickMs()} ms (350 = quiet)`);
  console.log(`rate: median ${fmt(med((r) => r.rate))} jobs/s (rounds: ${rounds.map((r) => fmt(r.rate)).join(', ')})`);
  console.log(`tail (last handler → last outcome written): median ${fmt(med((r) => r.tailMs))} ms of a median drain of ${fmt(drainMs)} ms`);
  console.log(`CPU per job: PostgreSQL ${fmt(med((r) => r.pgUs), 1)} µs, this process ${fmt(med((r) => r.nodeUs), 1)} µs; machine idle ${fmt(med((r) => r.idle) * 100)} %`);
  console.log('time by statements in flight (claims × completions), mean ms per drain:');
  const states = summed(rounds, (r) => [...r.states], ([k]) => k, ([, v]) => v, rounds.length);
  for (const [k, ms] of states.sort((a, b) => a[0].localeCompare(b[0]))) console.log(`  ${k}: ${fmt(ms, 1)} ms (${fmt((ms / drainMs) * 100)} %)`);
  for (const kind of ['claim', 'completion'] as const) {
    const all = rounds.flatMap((r) => r.statements.filter((s) => s.kind === kind));
    console.log(`${kind}s: ${fmt(all.length / rounds.length, 1)} per drain, median ${fmt(median(all.map((s) => s.rows)))} rows and ${fmt(median(all.map((s) => s.done - s.sent)), 1)} ms`);
  }
  const wal = summed(rounds, (r) => r.wal, (x) => x.type, (x) => x.bytes, rounds.length * N);
  const records = summed(rounds, (r) => r.wal, (x) => x.type, (x) => x.records, rounds.length * N);
  const total = wal.reduce((a, [, b]) => a + b, 0);
  console.log(`WAL per job: ${fmt(total)} bytes in ${fmt(records.reduce((a, [, n]) => a + n, 0), 1)} records; by record type:`);
  for (const [type, bytes] of wal.filter(([, b]) => b >= 1)) console.log(`  ${type}: ${fmt(bytes)} bytes (${fmt(records.find(([t]) => t === type)![1], 2)} records)`);
  const last = rounds[rounds.length - 1]!;
  console.log('WAL per job by relation (last round; a record counts for the relation of its first block):');
  for (const [relation, bytes] of summed([last], (r) => r.walByRelation, (x) => x.relation, (x) => x.bytes, N).filter(([, b]) => b >= 1)) {
    console.log(`  ${relation}: ${fmt(bytes)} bytes`);
  }
}

await main();
