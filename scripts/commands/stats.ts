import { withDatabase, type CommandContext } from '../context.js';
import { printTable } from '../output.js';

/**
 * `leasehold stats`: per queue and kind, live depth, the oldest ready job's wait, outcomes of the
 * last minute and hour (leasehold.queue_summary, which reads no whole table); live workers.
 */
export async function statsCommand(ctx: CommandContext): Promise<number> {
  const { queues, workers } = await withDatabase(ctx, async (sql) => ({
    queues: await sql`
      select queue, kind, paused, ready, scheduled, running,
             round(extract(epoch from oldest_ready_age))::int as oldest_ready_s,
             succeeded_1m, failed_1m, succeeded_1h, failed_1h, retried_1h, cancelled_1h,
             per_s_1m::float8 as per_s_1m, per_s_1h::float8 as per_s_1h, failure_rate_1h::float8 as failure_rate_1h
      from leasehold.queue_summary order by queue, kind`,
    workers: await sql`
      select id, host, pid, concurrency, queues, holding, free_slots, last_seen_at
      from leasehold.live_workers order by id`,
  }));
  if (ctx.json) {
    process.stdout.write(`${JSON.stringify({ queues, workers }, null, 2)}\n`);
    return 0;
  }
  process.stdout.write('queues (outcomes: last minute / last hour)\n');
  printTable(queues, false, ['queue', 'kind', 'paused', 'ready', 'scheduled', 'running', 'oldest_ready_s', 'succeeded_1h', 'failed_1h', 'per_s_1m', 'failure_rate_1h']);
  process.stdout.write('\nworkers (seen in the last minute)\n');
  printTable(workers, false, ['id', 'concurrency', 'holding', 'free_slots', 'queues', 'last_seen_at']);
  return 0;
}
