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
 * Waits until a zombie that holds its job has stopped claiming: no claim in flight, and none sent
 * or answered for three polls in a row (75 ms). A zombie with one running job still has room for a
 * prefetched one, and claims again whenever something wakes it: the follow-up behind a full claim,
 * or the NOTIFY of the job's own enqueue when its claim at start had already taken the job. A
 * claim sent after the test reclaimed the job took it back, and the zombie, whose one slot stays
 * taken, then held it for good (counting claims, as this helper once did, missed the second case:
 * the claim at start counted too). Once settled, only a NOTIFY makes the zombie claim.
 */
export async function claimsSettled(zombie: { claimsInFlight: number; counters: { claims: number } }): Promise<void> {
  let seen = -1;
  let quiet = 0;
  await waitFor(
    () => {
      const claims = zombie.counters.claims;
      if (zombie.claimsInFlight > 0 || claims !== seen) {
        seen = claims;
        quiet = 0;
        return false;
      }
      return ++quiet >= 3;
    },
    "the zombie's claims to settle",
    30_000,
    25,
  );
}
