import { cliActor, withDatabase, type CommandContext } from '../context.js';
import { fail, printObject, printTable, usage } from '../output.js';

/** `leasehold queues ls|pause|resume`. */
export async function queuesCommand(ctx: CommandContext, args: string[]): Promise<number> {
  const [sub, name] = args;
  if (sub === 'ls' || sub === undefined) {
    const rows = await withDatabase(ctx, (sql) => sql`
      select q.name, q.paused_at is not null as paused, q.paused_at,
             coalesce(sum(s.ready), 0)::int as ready, coalesce(sum(s.scheduled), 0)::int as scheduled,
             coalesce(sum(s.running), 0)::int as running,
             round(extract(epoch from max(s.oldest_ready_age)))::int as oldest_ready_s,
             (select count(*) from leasehold.live_workers w where w.queues is null or q.name = any (w.queues))::int as live_workers
      from leasehold.queues q
      left join leasehold.queue_summary s on s.queue = q.name
      group by q.name, q.paused_at
      order by q.name`);
    printTable(rows, ctx.json, ['name', 'paused', 'ready', 'scheduled', 'running', 'oldest_ready_s', 'live_workers', 'paused_at']);
    return 0;
  }
  if (sub === 'pause' || sub === 'resume') {
    if (!name) return usage(`queues ${sub} <queue>`);
    const result = await withDatabase(ctx, async (sql) => {
      const [known] = await sql`select paused_at from leasehold.queues where name = ${name}`;
      if (sub === 'resume' && !known) return undefined;
      const fn = sub === 'pause' ? sql`leasehold.pause_queue` : sql`leasehold.resume_queue`;
      const [r] = await sql<{ changed: boolean }[]>`select ${fn}(${name}, ${cliActor()}) as changed`;
      return r!.changed;
    });
    if (result === undefined) return fail(ctx.json, 'queues resume', `no queue named ${name}`);
    const note = result ? {} : { note: sub === 'pause' ? 'it was already paused' : 'it was not paused' };
    printObject({ queue: name, paused: sub === 'pause', changed: result, ...note }, ctx.json);
    return 0;
  }
  return usage('queues ls|pause|resume');
}
