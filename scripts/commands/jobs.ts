import { z } from 'zod';
import { cliActor, intFlag, limitFlag, statusFlag, withDatabase, type CommandContext } from '../context.js';
import { printObject, printTable, unchanged, usage } from '../output.js';

const uuid = z.uuid();

/** `leasehold jobs ls|show|retry|cancel|extend`. */
export async function jobsCommand(ctx: CommandContext, args: string[], flags: Record<string, string | boolean | undefined>): Promise<number> {
  const [sub, id] = args;
  switch (sub) {
    case 'ls':
    case undefined: {
      const status = statusFlag(flags.status);
      const queue = typeof flags.queue === 'string' ? flags.queue : null;
      const kind = typeof flags.kind === 'string' ? flags.kind : null;
      const limit = limitFlag(flags.limit);
      const rows = await withDatabase(ctx, (sql) => sql`
        select id, kind, queue, status, priority, attempts, max_attempts, run_at, created_at, last_error
        from leasehold.jobs
        where (${status}::text is null or status::text = ${status})
          and (${queue}::text is null or queue = ${queue})
          and (${kind}::text is null or kind = ${kind})
        order by id desc
        limit ${limit}`);
      printTable(rows, ctx.json, ['id', 'kind', 'queue', 'status', 'attempts', 'run_at', 'last_error']);
      return 0;
    }
    case 'show': {
      if (!uuid.safeParse(id).success) return usage(`jobs show <job-id>`);
      const found = await withDatabase(ctx, async (sql) => {
        const [job] = await sql`select * from leasehold.jobs where id = ${id!}`;
        if (!job) return undefined;
        const events = await sql`select id, type, attempt, data, created_at from leasehold.job_events where job_id = ${id!} order by id`;
        return { ...job, events };
      });
      if (!found) return notFound(ctx, id!);
      printObject(found, ctx.json);
      return 0;
    }
    case 'retry': {
      if (!uuid.safeParse(id).success) return usage(`jobs retry <job-id>`);
      const ok = await withDatabase(ctx, async (sql) => (await sql`select leasehold.retry_job(${id!}, null, ${cliActor()}) as ok`)[0]!.ok as boolean);
      if (!ok) return unchanged({ id, retried: false, reason: 'only failed or cancelled jobs can be retried' }, ctx.json, 'jobs retry');
      printObject({ id, retried: true }, ctx.json);
      return 0;
    }
    case 'cancel': {
      if (!uuid.safeParse(id).success) return usage(`jobs cancel <job-id>`);
      const status = await withDatabase(ctx, async (sql) => (await sql`select leasehold.cancel_job(${id!}, null, ${cliActor()})::text as status`)[0]!.status as string | null);
      if (status === null) return notFound(ctx, id!);
      if (status !== 'cancelled' && status !== 'running') {
        return unchanged({ id, status, reason: `the job already ended ${status}; only queued or running jobs can be cancelled` }, ctx.json, 'jobs cancel');
      }
      printObject({ id, status, ...(status === 'running' ? { note: 'cancellation requested; the worker aborts the handler' } : {}) }, ctx.json);
      return 0;
    }
    case 'extend': {
      if (!uuid.safeParse(id).success) return usage('jobs extend <job-id> --by <seconds>');
      const seconds = intFlag(flags, 'by', 1, 86_400);
      if (seconds === undefined) return usage('jobs extend <job-id> --by <seconds, 1 to 86400>');
      const until = await withDatabase(ctx, async (sql) =>
        (await sql`select leasehold.extend_lease(${id!}, make_interval(secs => ${seconds}), null, ${cliActor()}) as until`)[0]!.until as Date | null);
      if (!until) return unchanged({ id, extended: false, lease_expires_at: null, reason: 'only a running job has a lease to extend' }, ctx.json, 'jobs extend');
      printObject({ id, extended: true, lease_expires_at: until }, ctx.json);
      return 0;
    }
    default:
      return usage('jobs ls|show|retry|cancel|extend');
  }
}

function notFound(ctx: CommandContext, id: string): number {
  if (ctx.json) process.stdout.write(`${JSON.stringify({ error: `no job ${id}` })}\n`);
  process.stderr.write(`no job ${id}\n`);
  return 1;
}
