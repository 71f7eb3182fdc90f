import { withDatabase, type CommandContext } from '../context.js';
import { printTable } from '../output.js';

/** `leasehold stats`: depth by status per queue and kind, oldest ready job, live workers. */
export async function statsCommand(ctx: CommandContext): Promise<number> {
  const { queues, workers } = await withDatabase(ctx, async (sql) => ({
    queues: await sql`
      select queue, kind,
             count(*) filter (where status = 'queued' and run_at <= now())::int as ready,
             count(*) filter (where status = 'queued' and run_at > now())::int as scheduled,
             count(*) filter (where status = 'running')::int as running,
             count(*) filter (where status = 'succeeded')::int as succeeded,
             count(*) filter (where status = 'failed')::int as failed,
             count(*) filter (where status = 'cancelled')::int as cancelled,
             round(extract(epoch from now() - min(run_at) filter (where status = 'queued' and run_at <= now())))::int as oldest_ready_s
      from leasehold.jobs group by queue, kind order by queue, kind`,
    workers: await sql`
      select id, concurrency, queues, last_seen_at,
             (select count(*) from leasehold.jobs j where j.status = 'running' and j.lease_owner = w.id)::int as holding
      from leasehold.workers w
      where stopped_at is null and last_seen_at > now() - interval '1 minute'
      order by id`,
  }));
  if (ctx.json) {
    process.stdout.write(`${JSON.stringify({ queues, workers }, null, 2)}\n`);
    return 0;
  }
  process.stdout.write('queues\n');
  printTable(queues, false);
  process.stdout.write('\nworkers\n');
  printTable(workers, false);
  return 0;
}
