import type { Sql, Tx } from '../db/connect.js';
import { KINDS, isKind } from './kinds.js';
import { CHANNELS, type Notifier } from './notifier.js';
import { INSERT_JOBS, INSERT_JOBS_IDEMPOTENT, PREPARED, SELECT_IDEMPOTENT_IDS } from './queue-sql.js';
import { uuidv7 } from './uuid.js';

/** The tenant that owns jobs enqueued without one. */
export const SYSTEM_TENANT = '00000000-0000-0000-0000-000000000000';

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
}

/** What enqueue did with each input, in input order. */
export interface EnqueueResult {
  ids: string[];
  /** False where an idempotency key matched an existing job (whose id is in `ids`). */
  created: boolean[];
}

// One statement per chunk of rows: a few MB of parameters at most.
const CHUNK = 10_000;

interface Row {
  id: string;
  tenant_id: string;
  kind: string;
  queue: string;
  /** JSON text. */
  payload: string;
  priority: number;
  run_at: string | null;
  max_attempts: number;
  idempotency_key: string | null;
}

/** A job with every default applied; run_at null means the database's now(). */
function toRow(job: NewJob): Row {
  const spec = isKind(job.kind) ? KINDS[job.kind] : undefined;
  const payload = spec ? spec.payload.parse(job.payload ?? {}) : (job.payload ?? {});
  return {
    id: job.id ?? uuidv7(),
    tenant_id: job.tenantId ?? SYSTEM_TENANT,
    kind: job.kind,
    queue: job.queue ?? spec?.queue ?? 'default',
    payload: JSON.stringify(payload),
    priority: job.priority ?? 100,
    run_at: job.runAt ? job.runAt.toISOString() : null,
    max_attempts: job.maxAttempts ?? spec?.maxAttempts ?? 3,
    idempotency_key: job.idempotencyKey ?? null,
  };
}

/** The statement's parameters: one array per column, in INSERT_JOBS order. */
function columns(rows: Row[]): (string | number | null)[][] {
  const cols: (string | number | null)[][] = [[], [], [], [], [], [], [], [], []];
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
  }
  return cols;
}

/**
 * Inserts jobs and their `job.queued` events in as few statements as possible, without any
 * NOTIFY: callers choose how to wake workers. Runs in whatever `db` is (pool or transaction);
 * a bulk larger than one chunk should be given a transaction so it lands whole.
 */
export async function insertJobs(db: Sql | Tx, jobs: NewJob[]): Promise<EnqueueResult> {
  const rows = jobs.map(toRow);
  const created = new Array<boolean>(rows.length).fill(true);
  const ids = rows.map((r) => r.id);
  for (let start = 0; start < rows.length; start += CHUNK) {
    const chunk = rows.slice(start, start + CHUNK);
    const keyed = chunk.filter((r) => r.idempotency_key !== null);
    if (keyed.length === 0) {
      await db.unsafe(INSERT_JOBS, columns(chunk), PREPARED);
      continue;
    }
    const inserted = new Set((await db.unsafe<{ id: string }[]>(INSERT_JOBS_IDEMPOTENT, columns(chunk), PREPARED)).map((r) => r.id));
    const skipped = chunk.filter((r) => !inserted.has(r.id));
    if (skipped.length === 0) continue;
    const byTenant = new Map<string, string[]>();
    for (const r of skipped) byTenant.set(r.tenant_id, [...(byTenant.get(r.tenant_id) ?? []), r.idempotency_key!]);
    const existing = new Map<string, string>();
    for (const [tenant, keys] of byTenant) {
      for (const e of await db.unsafe<{ idempotency_key: string; id: string }[]>(SELECT_IDEMPOTENT_IDS, [tenant, keys], PREPARED)) {
        existing.set(`${tenant}\0${e.idempotency_key}`, e.id);
      }
    }
    for (let i = start; i < start + chunk.length; i++) {
      const r = rows[i]!;
      if (inserted.has(r.id) || r.idempotency_key === null) continue;
      created[i] = false;
      ids[i] = existing.get(`${r.tenant_id}\0${r.idempotency_key}`) ?? r.id;
    }
  }
  return { ids, created };
}

/** Producer API: enqueue now, in bulk, or inside the caller's own transaction. */
export class JobQueue {
  constructor(private readonly sql: Sql, private readonly notifier: Notifier) {}

  /** Enqueues one job; workers are woken after the commit. */
  async enqueue(job: NewJob): Promise<{ id: string; created: boolean }> {
    const r = await this.enqueueMany([job]);
    return { id: r.ids[0]!, created: r.created[0]! };
  }

  /** Enqueues many jobs in one statement per 10,000, atomically. */
  async enqueueMany(jobs: NewJob[]): Promise<EnqueueResult> {
    if (jobs.length === 0) return { ids: [], created: [] };
    const result =
      jobs.length <= CHUNK ? await insertJobs(this.sql, jobs) : await this.sql.begin((tx) => insertJobs(tx, jobs));
    this.#wake(jobs);
    return result;
  }

  /**
   * Enqueues inside the caller's transaction: the jobs exist if and only if it commits. The wake-up
   * is a NOTIFY in that same transaction, which PostgreSQL delivers only on commit.
   */
  async enqueueInTransaction(tx: Tx, jobs: NewJob[]): Promise<EnqueueResult> {
    const result = await insertJobs(tx, jobs);
    const queues = [...new Set(jobs.map((j) => j.queue ?? (isKind(j.kind) ? KINDS[j.kind].queue : 'default')))];
    await tx`select pg_notify(${CHANNELS.jobs}, q) from unnest(${queues}::text[]) as q`;
    await tx`select pg_notify(${CHANNELS.events}, '')`;
    return result;
  }

  #wake(jobs: NewJob[]): void {
    const seen = new Set<string>();
    for (const j of jobs) {
      const q = j.queue ?? (isKind(j.kind) ? KINDS[j.kind].queue : 'default');
      if (!seen.has(q)) seen.add(q), this.notifier.notify(CHANNELS.jobs, q);
    }
    this.notifier.notify(CHANNELS.events);
  }
}
