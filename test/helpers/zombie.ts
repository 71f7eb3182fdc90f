import type { Sql } from '#shared/db/connect.js';
import { reclaimExpired } from '../../worker/reclaimer.js';
import { jobRow } from './engine.js';
import { waitFor } from './wait.js';

/**
 * Settings for a worker that never notices on its own that its lease is gone: no heartbeat, poll,
 * or reclaim pass falls inside a test, and its local lease budget outlasts the test. Only NOTIFY
 * wakes it.
 */
export const zombieSettings = (queue: string) => ({
  queues: [{ name: queue }],
  concurrency: 1,
  leaseMs: 120_000,
  heartbeatMs: 60_000,
  pollMs: 60_000,
  reclaimMs: 60_000,
  shutdownGraceMs: 500,
  abortGraceMs: 200,
});

/**
 * Expires a job's lease in the database and reclaims it, as the reclaimer does after a crash: the
 * job goes back to the queue, or fails for good when that was its last attempt.
 */
export async function loseLease(sql: Sql, id: string): Promise<void> {
  await waitFor(async () => {
    // Retried: a heartbeat landing between these two statements legitimately wins the lease back.
    await sql`update leasehold.jobs set lease_expires_at = now() - interval '1 second'
              where id = ${id} and status = 'running'`;
    await reclaimExpired(sql);
    const row = await jobRow(sql, id);
    return row.status !== 'running' && row.rescues === 1;
  }, 'the lease to be reclaimed');
}

/**
 * Waits for a zombie's follow-up claim to come back empty. Its first claim came back full, so it
 * claims again at once while its one running job leaves room for a prefetched one; sent late on a
 * loaded machine, that claim took the job the test had just had reclaimed, and the zombie, whose
 * one slot stays taken, then held it for good. Once it is back, only a NOTIFY makes the zombie claim.
 */
export async function followUpClaimBack(zombie: { counters: { claims: number } }): Promise<void> {
  await waitFor(() => zombie.counters.claims >= 2, "the zombie's follow-up claim");
}
