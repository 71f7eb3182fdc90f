import type { Sql, Tx } from '../db/connect.js';
import { AppError } from '../errors.js';
import { KINDS, isKind } from './kinds.js';
import { CHANNELS, type Notifier } from './notifier.js';
import {
  INSERT_JOBS,
  INSERT_JOBS_ADMITTED,
  INSERT_JOBS_AND_WAKE,
  INSERT_JOB_AND_WAKE,
  INSERT_JOBS_IDEMPOTENT,
  PREPARED,
  SELECT_IDEMPOTENT_IDS,
} from './queue-sql.js';
import { SYSTEM_TENANT } from './system-tenant.js';
import { isUuid, uuidv7 } from './uuid.js';
import { copyJobs, type CopyColumns, type CopyRow } from './copy-jobs.js';

export { SYSTEM_TENANT };

/** A job to enqueue; everything but `kind` has a default (the kind's own, then the engine's). */
export interface NewJob {
  kind: string;
  payload?: unknown;
  queue?: string;
  /** Lower runs first; default 100. */
  priority?: number;
  /** Not before this time; default now. */
  runAt?: Date;
  maxAttempts?: number;
  tenantId?: string;
  /** Per tenant: a second job with the same key is not inserted; its first job's id is returned. */
  idempotencyKey?: string;
  /** Normally generated (UUIDv7). */
  id?: string;
  /** The pattern (and its version) an AI job runs with, for listing and filtering. */
  patternId?: string;
  patternVersion?: number;
}

/** How insertJobs treats queues that do not exist yet. */
export interface InsertOptions {
  /**
   * Refuse (AppError `queue_limit`, nothing written) jobs whose new queues would take the number of
   * queues past `total`, or the number their tenant made past `perTenant`; unset: any queue is
   * registered (the insert trigger does it). Only the plain INSERT admits queues
   * (INSERT_JOBS_ADMITTED): jobs of one tenant without idempotency keys, fewer than a COPY takes, as
   * POST /v1/jobs sends them; other jobs with it are a programming error.
   */
  queueLimits?: QueueLimits;
}

/** MAX_QUEUES and MAX_QUEUES_PER_TENANT, for the API's jobs. */
export interface QueueLimits {
  total: number;
  perTenant: number;
}

/** The queues every registered kind uses by default: they exist for the system, so no bound refuses them. */
export const KIND_QUEUES: ReadonlySet<string> = new Set(['default', ...Object.values(KINDS).map((k) => k.queue)]);

/** What enqueue did with each input, in input order. */
export interface EnqueueResult {
  ids: string[];
  /** False where an idempotency key matched an existing job (whose id is in `ids`). */
  created: boolean[];
}

// One INSERT per chunk of rows: a few MB of parameters at most.
const CHUNK = 10_000;
// Enqueues up to this many jobs may carry their own wake-up (JobQueue.#insertAndWake).
const INLINE_WAKE_MAX_ROWS = 100;
// From this many rows on (without idempotency keys), one streamed COPY instead: below it, the
// extra round trip of COPY's protocol costs more than it saves.
const COPY_MIN_ROWS = 2_000;
/** A row for INSERT: what COPY takes, plus the idempotency key only INSERT can honour. */
interface Row extends CopyRow {
  idempotency_key: string | null;
}

const NAME = /^[^\s\u0000]{1,200}$/;

function bad(field: string, why: string): never {
  throw new RangeError(`invalid job: ${field} ${why}`);
}

/**
 * Rejects, with a message naming the field, what the table's constraints would refuse mid-bulk.
 * Runs once per job of a bulk: no closure is made per call (under tsx each one also costs a
 * __name() call, ~0.3 µs a job in a 100,000-job bulk).
 */
function checkJob(job: NewJob): void {
  if (typeof job.kind !== 'string' || !NAME.test(job.kind)) bad('kind', 'must be 1–200 characters without spaces');
  if (job.queue !== undefined && (typeof job.queue !== 'string' || !NAME.test(job.queue))) bad('queue', 'must be 1–200 characters without spaces');
  if (job.priority !== undefined && !(Number.isInteger(job.priority) && Math.abs(job.priority) <= 2_147_483_647)) bad('priority', 'must be a 32-bit integer');
  if (job.maxAttempts !== undefined && !(Number.isInteger(job.maxAttempts) && job.maxAttempts >= 1 && job.maxAttempts <= 1000)) bad('maxAttempts', 'must be an integer from 1 to 1000');
  if (job.runAt !== undefined && !(job.runAt instanceof Date && Number.isFinite(job.runAt.getTime()))) bad('runAt', 'must be a valid Date');
  if (job.tenantId !== undefined && !isUuid(job.tenantId)) bad('tenantId', 'must be a UUID');
  if (job.id !== undefined && !isUuid(job.id)) bad('id', 'must be a UUID');
  if (job.patternId !== undefined && !isUuid(job.patternId)) bad('patternId', 'must be a UUID');
  if (job.patternVersion !== undefined && !(Number.isInteger(job.patternVersion) && job.patternVersion >= 1)) bad('patternVersion', 'must be a positive integer');
}

/** The registered kind's spec, if the kind is one of ours. */
const specOf = (kind: string) => (isKind(kind) ? KINDS[kind] : undefined);

/** The queue a job goes to: its own, else its kind's, else 'default'. */
function queueOf(job: NewJob, spec = specOf(job.kind)): string {
  return job.queue ?? spec?.queue ?? 'default';
}

/** A job with every default applied; run_at null means the database's now(). */
function toRow(job: NewJob): Row {
  checkJob(job);
  const spec = specOf(job.kind);
  const payload = spec ? spec.payload.parse(job.payload ?? {}) : (job.payload ?? {});
  return {
    id: job.id ?? uuidv7(),
    tenant_id: job.tenantId ?? SYSTEM_TENANT,
    kind: job.kind,
    queue: queueOf(job, spec),
    payload: JSON.stringify(payload),
    priority: job.priority ?? 100,
    run_at: job.runAt ? job.runAt.toISOString() : null,
    max_attempts: job.maxAttempts ?? spec?.maxAttempts ?? 3,
    idempotency_key: job.idempotencyKey ?? null,
    pattern_id: job.patternId ?? null,
    pattern_version: job.patternVersion ?? null,
  };
}

/**
 * The producer statements' parameters ($1…$11): one array per column, in the order of their
 * column list (queue-sql.ts, INSERT_INTO_JOBS). One loop of pushes: building the arrays from a
 * list of field names took 171 against 120 µs for 2,000 rows.
 */
function columns(rows: Row[]): (string | number | null)[][] {
  const cols: (string | number | null)[][] = [[], [], [], [], [], [], [], [], [], [], []];
  for (const r of rows) {
    cols[0]!.push(r.id);
    cols[1]!.push(r.tenant_id);
    cols[2]!.push(r.kind);
    cols[3]!.push(r.queue);
    cols[4]!.push(r.payload);
    cols[5]!.push(r.priority);
    cols[6]!.push(r.run_at);
    cols[7]!.push(r.max_attempts);
    cols[8]!.push(r.idempotency_key);
    cols[9]!.push(r.pattern_id);
    cols[10]!.push(r.pattern_version);
  }
  return cols;
}

function usesCopy(jobs: NewJob[]): boolean {
  return jobs.length >= COPY_MIN_ROWS && jobs.every((j) => j.idempotencyKey === undefined);
}

/** work_mem that keeps a COPY of `rows` jobs' transition table in memory: ~400 bytes a row, 256 MB at most. */
function transitionMemory(rows: number): string {
  return `${Math.min(256, 4 + Math.ceil((rows * 400) / 2 ** 20))}MB`;
}

/** The optional columns a COPY of these jobs must send: those some job sets (see CopyColumns). */
function copyColumns(jobs: NewJob[]): CopyColumns {
  const c: CopyColumns = { tenant_id: false, priority: false, run_at: false, pattern: false };
  for (const j of jobs) {
    if (j.tenantId !== undefined) c.tenant_id = true;
    if (j.priority !== undefined) c.priority = true;
    if (j.runAt !== undefined) c.run_at = true;
    if (j.patternId !== undefined || j.patternVersion !== undefined) c.pattern = true;
  }
  return c;
}

/** The refusal of jobs whose new queues would pass a bound of `limits` ('total' or 'tenant'). */
function queueLimit(queues: string[], limits: QueueLimits, bound: string): AppError {
  const names = queues.map((q) => `"${q}"`).join(', ');
  const passed = bound === 'tenant'
    ? `this tenant made ${limits.perTenant} of the queues that exist already (MAX_QUEUES_PER_TENANT)`
    : `${limits.total} queues exist already (MAX_QUEUES)`;
  return new AppError(
    'queue_limit',
    `${queues.length === 1 ? `queue ${names} does not exist` : `one of the queues ${names} does not exist`}, and ${passed}: ` +
      'send the job to an existing queue, or leave queue out for its kind\'s own',
    bound === 'tenant' ? { max_queues_per_tenant: limits.perTenant } : { max_queues: limits.total },
  );
}

/**
 * Inserts jobs and their `job.queued` events in as few statements as possible, without any
 * NOTIFY: callers choose how to wake workers. Runs in whatever `db` is (pool or transaction);
 * a bulk larger than one chunk should be given a transaction so it lands (or is refused) whole.
 */
export async function insertJobs(db: Sql | Tx, jobs: NewJob[], opts: InsertOptions = {}): Promise<EnqueueResult> {
  const { queueLimits } = opts;
  if (queueLimits !== undefined && (usesCopy(jobs) || jobs.some((j) => j.idempotencyKey !== undefined || j.tenantId !== jobs[0]!.tenantId))) {
    throw new Error('insertJobs: queueLimits is for jobs of one tenant without idempotency keys, fewer than a COPY takes');
  }
  if (usesCopy(jobs)) {
    // Rows are made as COPY consumes them, so building them overlaps the database's work.
    const ids: string[] = [];
    await copyJobs(db, (function* () {
      for (const job of jobs) {
        const row = toRow(job);
        ids.push(row.id);
        yield row;
      }
    })(), copyColumns(jobs));
    return { ids, created: new Array<boolean>(ids.length).fill(true) };
  }
  const ids = new Array<string>(jobs.length);
  const created = new Array<boolean>(jobs.length).fill(true);
  const sent: Promise<unknown>[] = [];
  let failure: unknown;
  try {
    for (let start = 0; start < jobs.length; start += CHUNK) {
      const chunk = jobs.slice(start, start + CHUNK).map(toRow);
      chunk.forEach((r, i) => (ids[start + i] = r.id));
      if (chunk.some((r) => r.idempotency_key !== null)) {
        await insertKeyed(db, chunk, start, ids, created);
        continue;
      }
      // Sent without waiting: PostgreSQL inserts this chunk while the next one is built. One
      // connection (the caller's transaction) keeps the statements in order. Yielding once lets
      // postgres.js write the query out (it flushes on setImmediate).
      if (queueLimits === undefined) sent.push(db.unsafe(INSERT_JOBS, columns(chunk), PREPARED));
      else {
        const queues = [...new Set(chunk.map((r) => r.queue))];
        const params = [...columns(chunk), queues, queueLimits.total, chunk[0]!.tenant_id, queueLimits.perTenant];
        sent.push(
          db.unsafe<{ refusal: string | null }[]>(INSERT_JOBS_ADMITTED, params, PREPARED).then(([r]) => {
            if (r!.refusal !== null) throw queueLimit(queues, queueLimits, r!.refusal);
          }),
        );
      }
      if (start + CHUNK < jobs.length) await new Promise((resolve) => setImmediate(resolve));
    }
  } catch (err) {
    failure = err;
  }
  // Every statement sent must settle before we return or throw: one failing in a transaction
  // makes the rest fail too, and none of those rejections may go unhandled.
  for (const r of await Promise.allSettled(sent)) if (r.status === 'rejected') failure ??= r.reason;
  if (failure !== undefined) throw failure;
  return { ids, created };
}

/** Inserts a chunk with idempotency keys; a key the tenant already used yields the existing job's id. */
async function insertKeyed(db: Sql | Tx, chunk: Row[], offset: number, ids: string[], created: boolean[]): Promise<void> {
  const [row] = await db.unsafe<{ ids: string[] }[]>(INSERT_JOBS_IDEMPOTENT, columns(chunk), PREPARED);
  const inserted = new Set(row!.ids);
  const skipped = chunk.filter((r) => !inserted.has(r.id));
  if (skipped.length === 0) return;
  const byTenant = new Map<string, string[]>();
  for (const r of skipped) byTenant.set(r.tenant_id, [...(byTenant.get(r.tenant_id) ?? []), r.idempotency_key!]);
  const existing = new Map<string, string>();
  for (const [tenant, keys] of byTenant) {
    for (const e of await db.unsafe<{ idempotency_key: string; id: string }[]>(SELECT_IDEMPOTENT_IDS, [tenant, keys], PREPARED)) {
      existing.set(`${tenant}\0${e.idempotency_key}`, e.id);
    }
  }
  chunk.forEach((r, i) => {
    if (inserted.has(r.id) || r.idempotency_key === null) return;
    created[offset + i] = false;
    ids[offset + i] = existing.get(`${r.tenant_id}\0${r.idempotency_key}`) ?? r.id;
  });
}

/** Producer API: enqueue now, in bulk, or inside the caller's own transaction. */
export class JobQueue {
  /** An INSERT_JOB_AND_WAKE or INSERT_JOBS_AND_WAKE statement is in flight. */
  #wakingInline = false;

  constructor(private readonly sql: Sql, private readonly notifier: Notifier) {}

  /** Enqueues one job; workers are woken after the commit. */
  async enqueue(job: NewJob): Promise<{ id: string; created: boolean }> {
    const r = await this.enqueueMany([job]);
    return { id: r.ids[0]!, created: r.created[0]! };
  }

  /** Enqueues many jobs in one statement per 10,000, atomically. */
  async enqueueMany(jobs: NewJob[]): Promise<EnqueueResult> {
    if (jobs.length === 0) return { ids: [], created: [] };
    if (!this.#wakingInline && this.notifier.jobsIdle && jobs.length <= INLINE_WAKE_MAX_ROWS && jobs.every((j) => j.idempotencyKey === undefined)) {
      return this.#insertAndWake(jobs);
    }
    const copy = usesCopy(jobs);
    // A single INSERT is atomic on its own. Several INSERTs need a transaction; a COPY (one
    // statement too) gets one for its work_mem.
    const result =
      !copy && jobs.length <= CHUNK
        ? await insertJobs(this.sql, jobs)
        : await this.sql.begin(async (tx) => {
            // The insert trigger's transition table holds every copied row; past work_mem (4 MB by
            // default, ~13,000 jobs) it spills to a temporary file that is written and read back.
            if (copy) await tx`select set_config('work_mem', ${transitionMemory(jobs.length)}, true)`;
            return insertJobs(tx, jobs);
          });
    this.wake(jobs);
    return result;
  }

  /**
   * With nothing else of this process waking workers, the INSERT carries its own wake-up
   * (INSERT_JOB_AND_WAKE for one job, INSERT_JOBS_AND_WAKE for more): one such statement in flight
   * per producer at most, so NOTIFYs inside write transactions cannot pile up. The same NOTIFY
   * wakes job_events readers (CHANNELS.jobs): a separate event wake-up, a statement of its own sent
   * while the worker claimed, cost an idle worker's enqueue → start 0.1–0.36 ms at p90 (four
   * interleaved runs of 1,500 samples).
   */
  async #insertAndWake(jobs: NewJob[]): Promise<EnqueueResult> {
    this.#wakingInline = true;
    try {
      const rows = jobs.map(toRow);
      if (rows.length === 1) {
        // The one row's values, in the same order as the arrays.
        await this.sql.unsafe(INSERT_JOB_AND_WAKE, columns(rows).map((column) => column[0] ?? null), PREPARED);
      } else {
        const queues = [...new Set(rows.map((r) => r.queue))];
        await this.sql.unsafe(INSERT_JOBS_AND_WAKE, [...columns(rows), queues], PREPARED);
      }
      return { ids: rows.map((r) => r.id), created: rows.map(() => true) };
    } finally {
      this.#wakingInline = false;
    }
  }

  /**
   * Enqueues inside the caller's transaction: the jobs exist if and only if it commits. The wake-up
   * (for workers and job_events readers) is a NOTIFY in that same transaction, which PostgreSQL
   * delivers only on commit.
   */
  async enqueueInTransaction(tx: Tx, jobs: NewJob[]): Promise<EnqueueResult> {
    const result = await insertJobs(tx, jobs);
    const queues = [...new Set(jobs.map((j) => queueOf(j)))];
    await tx`select pg_notify(${CHANNELS.jobs}, q) from unnest(${queues}::text[]) as q`;
    return result;
  }

  /**
   * Wakes the workers of these jobs' queues, and job_events readers, after commit and coalesced:
   * for callers that inserted them with insertJobs in a transaction of their own and have committed it.
   */
  wake(jobs: NewJob[]): void {
    const seen = new Set<string>();
    for (const j of jobs) {
      const q = queueOf(j);
      if (!seen.has(q)) seen.add(q), this.notifier.notify(CHANNELS.jobs, q);
    }
  }
}
