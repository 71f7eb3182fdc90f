import { randomUUID } from 'node:crypto';
import type { Sql } from '#shared/db/connect.js';

/** The columns a test may set on a job row; everything else takes the table's default. */
export interface JobFields {
  id?: string;
  kind?: string;
  queue?: string;
  payload?: unknown;
  status?: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  priority?: number;
  runAt?: Date;
  attempts?: number;
  maxAttempts?: number;
  /** Running rows only; defaults to a worker called `factory`. */
  leaseOwner?: string;
  /** Running rows only; defaults to a fresh token. */
  leaseToken?: string;
  /** Running rows only; defaults to 30 s from now. */
  leaseExpiresAt?: Date;
  cancelRequestedAt?: Date;
  errors?: unknown[];
}

/**
 * Inserts jobs directly in any state (River's testfactory), one statement for all of them, so a
 * reclaim test does not need a crashed worker first. Writes no events. Returns the ids in order.
 */
export async function insertJobs(sql: Sql, jobs: JobFields[]): Promise<string[]> {
  const rows = jobs.map((j) => {
    const status = j.status ?? 'queued';
    const running = status === 'running';
    return {
      id: j.id ?? randomUUID(),
      kind: j.kind ?? 'test.factory',
      queue: j.queue ?? 'default',
      payload: j.payload ?? {},
      status,
      priority: j.priority ?? 100,
      run_at: (j.runAt ?? new Date()).toISOString(),
      attempts: j.attempts ?? (running ? 1 : 0),
      max_attempts: j.maxAttempts ?? 3,
      lease_owner: running ? (j.leaseOwner ?? 'factory') : null,
      lease_token: running ? (j.leaseToken ?? randomUUID()) : null,
      lease_expires_at: running ? (j.leaseExpiresAt ?? new Date(Date.now() + 30_000)).toISOString() : null,
      cancel_requested_at: j.cancelRequestedAt?.toISOString() ?? null,
      errors: j.errors ?? [],
      finished: ['succeeded', 'failed', 'cancelled'].includes(status),
    };
  });
  await sql.unsafe(
    `insert into leasehold.jobs (id, kind, queue, payload, status, priority, run_at, attempts, max_attempts,
                                 lease_owner, lease_token, lease_expires_at, heartbeat_at, cancel_requested_at,
                                 errors, started_at, finished_at)
     select id, kind, queue, payload, status, priority, run_at, attempts, max_attempts,
            lease_owner, lease_token, lease_expires_at, case when lease_token is not null then now() end,
            cancel_requested_at, errors, case when status <> 'queued' then now() end,
            case when finished then now() end
     from json_to_recordset($1::text::json) as x(id uuid, kind text, queue text, payload jsonb,
            status leasehold.job_status, priority int, run_at timestamptz, attempts int, max_attempts int,
            lease_owner text, lease_token uuid, lease_expires_at timestamptz, cancel_requested_at timestamptz,
            errors jsonb, finished boolean)`,
    [JSON.stringify(rows)],
  );
  return rows.map((r) => r.id);
}

/** Inserts one job in any state; see insertJobs. */
export async function insertJob(sql: Sql, job: JobFields = {}): Promise<string> {
  const [id] = await insertJobs(sql, [job]);
  return id!;
}
