import { z } from 'zod';
import type { Sql } from '#shared/db/connect.js';
import { withDatabase, type CommandContext } from '../context.js';
import { fail, usage } from '../output.js';

/** Everything doctor found about one job. */
interface Findings {
  job: Record<string, any>;
  /** A machine-readable reason: a job_diagnosis reason for queued jobs, else the state. */
  reason: string;
  /** The answer in plain words. */
  explanation: string;
  dead_letters: Record<string, any>[];
  events: Record<string, any>[];
}

const ago = (d: Date | null | undefined, now: Date) => (d ? `${duration(now.getTime() - d.getTime())} ago` : 'never');

/** 3725000 → "1h 2m 5s". */
function duration(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  const parts = [[Math.floor(s / 86400), 'd'], [Math.floor((s % 86400) / 3600), 'h'], [Math.floor((s % 3600) / 60), 'm'], [s % 60, 's']] as const;
  const text = parts.filter(([n]) => n > 0).map(([n, u]) => `${n}${u}`).join(' ');
  return text || '0s';
}

async function investigate(sql: Sql, id: string): Promise<Findings | undefined> {
  const [job] = await sql`
    select j.id, j.kind, j.queue, j.status::text as status, j.priority, j.run_at, j.attempts, j.max_attempts,
           j.lease_owner, j.lease_expires_at, j.heartbeat_at, j.cancel_requested_at, j.last_error, j.errors,
           j.rescues, j.created_at, j.started_at, j.finished_at, t.slug as tenant, now() as now
    from leasehold.jobs j left join leasehold.tenants t on t.id = j.tenant_id
    where j.id = ${id}`;
  if (!job) return undefined;
  const now: Date = job.now;
  delete job.now;
  const events = await sql`select id, type, attempt, data, created_at from leasehold.job_events where job_id = ${id} order by id`;
  const deadLetters = await sql`select id, failed_at, requeued_at, last_error from leasehold.dead_letters where job_id = ${id} order by failed_at`;
  let reason: string = job.status;
  let explanation: string;
  switch (job.status) {
    case 'queued': {
      // The queue is given too, so the view reads only that queue's range of jobs_claim_idx.
      const [d] = await sql`select reason, detail from leasehold.job_diagnosis where job_id = ${id} and queue = ${job.queue}`;
      reason = d?.reason ?? 'queued';
      explanation = d ? `queued, not running: ${d.detail}` : 'queued';
      break;
    }
    case 'running': {
      const [l] = await sql`select worker_live, claimed_at, expires_in < interval '0' as expired from leasehold.active_leases where job_id = ${id}`;
      const who = `worker ${job.lease_owner} (${l?.worker_live ? 'alive' : 'not seen in the last minute'})`;
      if (l?.expired) {
        reason = 'lease_expired';
        explanation = `stuck: held by ${who}, whose lease expired ${ago(job.lease_expires_at, now)} and has not been reclaimed yet; ` +
          'every running worker reclaims expired leases within seconds, so none may be running';
      } else {
        explanation = `running on ${who}, attempt ${job.attempts} of ${job.max_attempts}, claimed ${ago(l?.claimed_at, now)}, ` +
          `last heartbeat ${ago(job.heartbeat_at, now)}, lease expires in ${duration(job.lease_expires_at.getTime() - now.getTime())}`;
      }
      if (job.cancel_requested_at) explanation += `; cancellation was requested ${ago(job.cancel_requested_at, now)}`;
      break;
    }
    case 'succeeded':
      explanation = `succeeded ${ago(job.finished_at, now)} after ${job.attempts} attempt(s)`;
      break;
    case 'failed': {
      const open = deadLetters.find((d) => d.requeued_at === null);
      explanation = `failed for good ${ago(job.finished_at, now)} after ${job.attempts} of ${job.max_attempts} attempt(s): ${job.last_error ?? 'no message'}` +
        (open ? `; dead letter ${open.id} is open: requeue it with "leasehold dlq requeue ${open.id}"` : '');
      break;
    }
    default: {
      const by = [...events].reverse().find((e) => e.type === 'job.cancelled')?.data?.by;
      explanation = `cancelled ${ago(job.finished_at, now)}${by ? ` by ${by}` : ''}; "leasehold jobs retry ${id}" runs it again`;
    }
  }
  return { job, reason, explanation, dead_letters: deadLetters, events };
}

/** The findings as an operator reads them. */
function render(f: Findings): string {
  const j = f.job;
  const lines = [
    `job ${j.id}: ${j.kind} in queue ${j.queue} (tenant ${j.tenant ?? '?'})`,
    `status: ${j.status}, attempt ${j.attempts} of ${j.max_attempts}, priority ${j.priority}${j.rescues ? `, rescued ${j.rescues} time(s) from dead workers` : ''}`,
    `why: ${f.explanation} [${f.reason}]`,
  ];
  if (j.last_error) lines.push(`last error: ${j.last_error}`);
  const errors = (j.errors ?? []) as { attempt?: number; at?: string; code?: string; message?: string }[];
  if (errors.length) {
    lines.push('errors:');
    for (const e of errors) lines.push(`  attempt ${e.attempt ?? '?'} at ${e.at ?? '?'}${e.code ? ` (${e.code})` : ''}: ${e.message ?? ''}`);
  }
  for (const d of f.dead_letters) {
    lines.push(`dead letter ${d.id}: failed at ${d.failed_at.toISOString()}, ${d.requeued_at ? `requeued at ${d.requeued_at.toISOString()}` : 'open'}`);
  }
  lines.push('history:');
  for (const e of f.events) {
    const data = e.data ? ` ${JSON.stringify(e.data)}` : '';
    lines.push(`  ${e.created_at.toISOString()}  ${e.type}${e.attempt !== null ? ` (attempt ${e.attempt})` : ''}${data}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `leasehold doctor <job-id>`: why a job is not running, or how it ended, with its history. */
export async function doctorCommand(ctx: CommandContext, args: string[]): Promise<number> {
  const [id] = args;
  if (!z.uuid().safeParse(id).success) {
    return usage('doctor <job-id>');
  }
  const found = await withDatabase(ctx, (sql) => investigate(sql, id!));
  if (!found) return fail(ctx.json, 'doctor', `no job ${id}`);
  process.stdout.write(ctx.json ? `${JSON.stringify(found, null, 2)}\n` : render(found));
  return 0;
}
