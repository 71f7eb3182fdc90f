import { randomUUID } from 'node:crypto';
import type { Sql } from '#shared/db/connect.js';

/** The ids of a queue in every state an operator looks for, as seedOperatorFixture() left it. */
export interface OperatorFixture {
  /** Ready to run now. */
  queued: string;
  /** Due an hour from now. */
  scheduled: string;
  /** Due two hours ago and still queued: what "stuck in the queue" looks like. */
  overdue: string;
  /** Held by `worker-a`, heartbeating, lease 30 s ahead. */
  running: string;
  /** Held by `worker-dead`, lease expired five minutes ago: what a crashed worker leaves. */
  expired: string;
  succeeded: string;
  /** Failed for good, with an error history and an open dead letter. */
  failed: string;
  /** The open dead letter of `failed`. */
  deadLetter: string;
}

/**
 * Inserts one job in each state (queue `default`, plus `overdue` in queue `images`), as plain
 * SQL rows the way the engine leaves them, without a worker. Writes no events.
 */
export async function seedOperatorFixture(sql: Sql): Promise<OperatorFixture> {
  const ids = {
    queued: randomUUID(), scheduled: randomUUID(), overdue: randomUUID(), running: randomUUID(),
    expired: randomUUID(), succeeded: randomUUID(), failed: randomUUID(),
  };
  const errors = JSON.stringify([1, 2, 3].map((attempt) => ({ attempt, at: new Date().toISOString(), message: `boom ${attempt}` })));
  await sql`
    insert into leasehold.jobs (id, kind, queue, status, run_at, attempts, lease_owner, lease_token,
                                lease_expires_at, heartbeat_at, started_at, finished_at, result, last_error, errors)
    values
      (${ids.queued}, 'system.noop', 'default', 'queued', now(), 0, null, null, null, null, null, null, null, null, '[]'),
      (${ids.scheduled}, 'system.noop', 'default', 'queued', now() + interval '1 hour', 0, null, null, null, null, null, null, null, null, '[]'),
      (${ids.overdue}, 'system.sleep', 'images', 'queued', now() - interval '2 hours', 0, null, null, null, null, null, null, null, null, '[]'),
      (${ids.running}, 'system.sleep', 'default', 'running', now(), 1, 'worker-a', ${randomUUID()},
       now() + interval '30 seconds', now(), now(), null, null, null, '[]'),
      (${ids.expired}, 'system.sleep', 'default', 'running', now() - interval '10 minutes', 1, 'worker-dead', ${randomUUID()},
       now() - interval '5 minutes', now() - interval '6 minutes', now() - interval '10 minutes', null, null, null, '[]'),
      (${ids.succeeded}, 'system.noop', 'default', 'succeeded', now(), 1, null, null, null, null, now(), now(), '{"ok":true}', null, '[]'),
      (${ids.failed}, 'system.noop', 'default', 'failed', now(), 3, null, null, null, null, now(), now(), null, 'boom 3', ${errors}::text::jsonb)`;
  const [dead] = await sql<{ id: string }[]>`
    insert into leasehold.dead_letters (job_id, tenant_id, kind, queue, payload, priority, attempts,
                                        max_attempts, last_error, errors, job_created_at)
    select id, tenant_id, kind, queue, payload, priority, attempts, max_attempts, last_error, errors, created_at
    from leasehold.jobs where id = ${ids.failed}
    returning id`;
  return { ...ids, deadLetter: dead!.id };
}
