import { z } from 'zod';
import { limitFlag, withDatabase, type CommandContext } from '../context.js';
import { printObject, printTable } from '../output.js';

/** `leasehold dlq ls|requeue`. */
export async function dlqCommand(ctx: CommandContext, args: string[], flags: Record<string, string | boolean | undefined>): Promise<number> {
  const [sub, id] = args;
  if (sub === 'ls' || sub === undefined) {
    const all = flags.all === true;
    const limit = limitFlag(flags.limit);
    const rows = await withDatabase(ctx, (sql) => sql`
      select id, job_id, kind, queue, attempts, failed_at, requeued_at, last_error
      from leasehold.dead_letters
      where ${all} or requeued_at is null
      order by failed_at desc
      limit ${limit}`);
    printTable(rows, ctx.json, ['id', 'job_id', 'kind', 'queue', 'attempts', 'failed_at', 'last_error']);
    return 0;
  }
  if (sub === 'requeue') {
    if (!z.uuid().safeParse(id).success) {
      process.stderr.write('usage: leasehold dlq requeue <dead-letter-id>\n');
      return 64;
    }
    const jobId = await withDatabase(ctx, async (sql) =>
      (await sql`select leasehold.requeue_dead_letter(${id!}) as job_id`)[0]!.job_id as string | null);
    const reason = jobId ? {} : { reason: 'no open dead letter with this id (unknown, or already requeued)' };
    printObject({ dead_letter_id: id, requeued: jobId !== null, job_id: jobId, ...reason }, ctx.json);
    return jobId ? 0 : 1;
  }
  process.stderr.write('usage: leasehold dlq ls|requeue\n');
  return 64;
}
