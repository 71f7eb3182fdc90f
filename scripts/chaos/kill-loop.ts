/**
 * `npm run chaos:kill`: worker processes are SIGKILLed in a loop while they work.
 *   N `system.sleep` jobs (random 0–max ms) are worked by W real `leasehold worker` processes;
 *   every K ms one of them is killed with SIGKILL and a new one started. Invariants: every job
 *   succeeded exactly once (one `job.succeeded` event per job), none lost, and every job a killed
 *   worker held was rescued (put back in the queue) within the lease window: by its lease's expiry
 *   plus one reclaim pass. How long it then waited behind the backlog to run again is reported.
 * DATABASE_URL when set, otherwise a fresh embedded PostgreSQL. Exits 1 when an invariant breaks.
 */
import { parseArgs } from 'node:util';
import { ensureTenant } from '#shared/auth/tenants.js';
import { Notifier } from '#shared/jobs/notifier.js';
import { JobQueue, type NewJob } from '#shared/jobs/queue.js';
import { exactlyOnce, openChaosDatabase, percentile, pollUntil, spawnLeasehold, stopProcess, Verdict, type LeaseholdProcess } from './harness.js';

const { values: opts } = parseArgs({
  options: {
    jobs: { type: 'string', default: '20000' },
    workers: { type: 'string', default: '4' },
    'kill-every-ms': { type: 'string', default: '2000' },
    'max-sleep-ms': { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '25' },
    'lease-ms': { type: 'string', default: '5000' },
    'heartbeat-ms': { type: 'string', default: '1000' },
    'reclaim-ms': { type: 'string', default: '500' },
    // Scheduling slack on a busy 2-core machine: the claim after a reclaim, process start-up.
    'slack-ms': { type: 'string', default: '2000' },
    'timeout-s': { type: 'string', default: '600' },
    /** Stop killing after this many (the fast variant in `npm test` uses 3). */
    'max-kills': { type: 'string', default: '1000000' },
    json: { type: 'boolean', default: false },
  },
});
const N = Number(opts.jobs);
const WORKERS = Number(opts.workers);
const KILL_EVERY_MS = Number(opts['kill-every-ms']);
const MAX_SLEEP_MS = Number(opts['max-sleep-ms']);
const LEASE_MS = Number(opts['lease-ms']);
const RECLAIM_MS = Number(opts['reclaim-ms']);
const SLACK_MS = Number(opts['slack-ms']);

/** A job a killed worker held: when the kill happened and when its lease was due to run out. */
interface Victim {
  id: string;
  killedAt: number;
  leaseExpiresAt: number;
}

async function main() {
  const db = await openChaosDatabase('chaos-kill');
  const { sql } = db;
  const verdict = new Verdict();
  const workerEnv = {
    DATABASE_URL: db.url,
    WORKER_CONCURRENCY: opts.concurrency!,
    WORKER_LEASE_MS: String(LEASE_MS),
    WORKER_HEARTBEAT_MS: opts['heartbeat-ms']!,
    WORKER_RECLAIM_MS: String(RECLAIM_MS),
    WORKER_SHUTDOWN_GRACE_MS: '5000',
  };
  const workers: LeaseholdProcess[] = [];
  const victims: Victim[] = [];
  let kills = 0;
  let t0 = Date.now();
  try {
    // A tenant of its own when DATABASE_URL is shared: the checks count only this run's jobs.
    const { id: tenantId } = await ensureTenant(sql, `chaos-kill-${process.pid}-${Date.now()}`);
    const queue = new JobQueue(sql, new Notifier(sql));
    // Attempts are not what this run is about: many kills can land on one job.
    const jobs: NewJob[] = Array.from({ length: N }, () => ({
      kind: 'system.sleep',
      payload: { ms: Math.floor(Math.random() * (MAX_SLEEP_MS + 1)) },
      tenantId,
      maxAttempts: 100,
    }));
    const registered = async (w: LeaseholdProcess) =>
      (await sql`select 1 from leasehold.workers where pid = ${w.pid} and stopped_at is null`).length > 0;
    for (let i = 0; i < WORKERS; i++) workers.push(spawnLeasehold(['worker'], workerEnv));
    for (const w of workers) await pollUntil(() => registered(w), 30_000);
    await queue.enqueueMany(jobs);
    t0 = Date.now();

    const remaining = async () => {
      const [r] = await sql<{ n: number }[]>`select count(*)::int as n from leasehold.jobs where tenant_id = ${tenantId} and status <> 'succeeded'`;
      return r!.n;
    };
    const deadline = t0 + Number(opts['timeout-s']) * 1000;
    let nextKill = Date.now() + KILL_EVERY_MS;
    while ((await remaining()) > 0 && Date.now() < deadline) {
      if (Date.now() >= nextKill && kills < Number(opts['max-kills'])) {
        // Only a worker that is up (it holds leases), and only while at most one replacement is
        // still starting (on a busy machine that takes seconds): W − 2 workers are always there to
        // reclaim and work.
        const up: number[] = [];
        for (let i = 0; i < workers.length; i++) if (await registered(workers[i]!)) up.push(i);
        if (up.length >= Math.max(1, WORKERS - 1)) {
          const i = up[Math.floor(Math.random() * up.length)]!;
          const victim = workers[i]!;
          victim.child.kill('SIGKILL');
          const killedAt = Date.now();
          nextKill = killedAt + KILL_EVERY_MS;
          await victim.exited;
          kills++;
          // Its worker id is host:pid:random; what it held is still `running` under that owner.
          const held = await sql<{ id: string; expires: Date }[]>`
            select id, lease_expires_at as expires from leasehold.jobs
            where tenant_id = ${tenantId} and status = 'running' and lease_owner like ${`%:${victim.pid}:%`}`;
          for (const h of held) victims.push({ id: h.id, killedAt, leaseExpiresAt: h.expires.getTime() });
          workers[i] = spawnLeasehold(['worker'], workerEnv);
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const elapsedS = (Date.now() - t0) / 1000;
    const left = await remaining();
    verdict.check(left === 0, `${left} jobs not succeeded after ${opts['timeout-s']} s`);
    for (const w of workers) {
      // A worker still starting has no SIGTERM handler yet: let it register first.
      await pollUntil(() => registered(w), 30_000);
      const code = await stopProcess(w);
      verdict.check(code === 0, `a worker exited ${code} on SIGTERM: ${w.output().slice(-500)}`);
    }

    const once = await exactlyOnce(sql, tenantId);
    verdict.check(once.jobs === N, `${once.jobs} jobs in the table, ${N} enqueued (lost or extra)`);
    verdict.check(once.succeeded === N, `${N - once.succeeded} jobs did not succeed`);
    verdict.check(once.events === N && once.jobsWithEvent === N, `${once.events} job.succeeded events for ${once.jobsWithEvent} jobs, want ${N} for ${N}`);
    verdict.check(once.maxEventsPerJob <= 1, `a job succeeded ${once.maxEventsPerJob} times`);
    const dead = await sql<{ n: number }[]>`select count(*)::int as n from leasehold.dead_letters where tenant_id = ${tenantId}`;
    verdict.check(dead[0]!.n === 0, `${dead[0]!.n} jobs dead-lettered`);

    // Rescue: the reclaimer's requeue (`job.retrying`, reason lease_expired) after the kill, against
    // the lease's own expiry plus one reclaim pass (every reclaim interval ±25 %) and some slack.
    // Then, for the report, the next claim: that waits behind whatever backlog is queued.
    const rescueMs: number[] = [];
    const lateMs: number[] = [];
    const rerunMs: number[] = [];
    let finishedByVictim = 0;
    const bound = 1.25 * RECLAIM_MS + SLACK_MS;
    for (const v of victims) {
      const [rescue] = await sql<{ at: Date }[]>`
        select created_at as at from leasehold.job_events
        where job_id = ${v.id} and type = 'job.retrying' and data->>'reason' = 'lease_expired' and created_at > ${new Date(v.killedAt)}
        order by id limit 1`;
      const [rerun] = await sql<{ at: Date }[]>`
        select created_at as at from leasehold.job_events
        where job_id = ${v.id} and type = 'job.running' and created_at > ${new Date(v.killedAt)}
        order by id limit 1`;
      if (!rescue) {
        // The victim's last completion was already on its way to the server when it died.
        const [done] = await sql<{ at: Date }[]>`select created_at as at from leasehold.job_events where job_id = ${v.id} and type = 'job.succeeded'`;
        if (done && !rerun && done.at.getTime() <= v.killedAt + 1_000) finishedByVictim++;
        else verdict.check(false, `job ${v.id} held by a killed worker was never rescued`);
        continue;
      }
      rescueMs.push(rescue.at.getTime() - v.killedAt);
      lateMs.push(rescue.at.getTime() - v.leaseExpiresAt);
      if (rerun) rerunMs.push(rerun.at.getTime() - v.killedAt);
    }
    const worstLate = Math.max(0, ...lateMs);
    verdict.check(worstLate <= bound, `a job was rescued ${Math.round(worstLate)} ms after its lease expired (bound ${bound} ms)`);
    verdict.check(kills > 0 && victims.length > 0, `the kills hit no running job (${kills} kills)`);

    const figures = {
      jobs: N,
      workers: WORKERS,
      kills,
      jobs_held_by_killed_workers: victims.length,
      finished_by_victim_before_dying: finishedByVictim,
      rescue_ms_after_kill: { p50: percentile(rescueMs, 50), p99: percentile(rescueMs, 99), max: Math.max(0, ...rescueMs) },
      rescued_after_lease_expiry_ms_max: Math.round(worstLate),
      running_again_ms_after_kill: { p50: percentile(rerunMs, 50), p99: percentile(rerunMs, 99), max: Math.max(0, ...rerunMs) },
      lease_ms: LEASE_MS,
      reclaim_ms: RECLAIM_MS,
      succeeded_events: once.events,
      elapsed_s: +elapsedS.toFixed(1),
    };
    verdict.finish(
      'chaos:kill',
      `${N} jobs, ${WORKERS} workers, ${kills} SIGKILLs, ${victims.length} held jobs rescued ` +
        `within ${figures.rescue_ms_after_kill.max} ms of the kill (≤ ${Math.round(worstLate)} ms past lease expiry; lease ${LEASE_MS} ms, reclaim every ${RECLAIM_MS} ms; ` +
        `running again within ${figures.running_again_ms_after_kill.max} ms), ` +
        `${once.events} job.succeeded events for ${once.succeeded} succeeded jobs, ${elapsedS.toFixed(1)} s`,
      figures,
      opts.json,
    );
  } finally {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await db.close();
  }
}

await main();
