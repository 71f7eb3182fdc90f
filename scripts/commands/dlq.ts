import { z } from 'zod';
import { instantRefusal } from '#shared/db/timestamptz-refusal.js';
import { cliActor, intFlag, limitFlag, textFlag, UsageError, withDatabase, type CommandContext } from '../context.js';
import { fail, printObject, printTable, unchanged, usage } from '../output.js';

type Flags = Record<string, string | boolean | undefined>;
const FILTERS = ['kind', 'queue', 'tenant', 'since', 'error'] as const;

/** `leasehold dlq requeue` with filters: every open dead letter matching all of them. */
async function requeueMatching(ctx: CommandContext, flags: Flags): Promise<number> {
  const given = FILTERS.filter((f) => flags[f] !== undefined);
  if (given.length === 0 && flags.all !== true) {
    throw new UsageError('dlq requeue needs a dead-letter id, filters (--kind --queue --tenant --since --error), or --all for every open one');
  }
  const since = textFlag(flags, 'since');
  if (since !== undefined && Number.isNaN(Date.parse(since))) throw new UsageError('--since must be a date or time, e.g. 2026-11-20T08:00:00Z');
  // Date.parse takes years PostgreSQL refuses (0000, or past 9999): a usage error, not a failed query.
  const outOfRange = since === undefined ? undefined : instantRefusal(Date.parse(since));
  if (outOfRange) throw new UsageError(`--since ${outOfRange}, e.g. 2026-11-20T08:00:00Z`);
  const limit = intFlag(flags, 'limit', 1, 1_000_000) ?? 10_000;
  const slug = textFlag(flags, 'tenant');
  const result = await withDatabase(ctx, async (sql) => {
    let tenantId: string | null = null;
    if (slug !== undefined) {
      const [t] = await sql<{ id: string }[]>`select id from leasehold.tenants where slug = ${slug}`;
      if (!t) return { error: `no tenant with slug ${slug}` };
      tenantId = t.id;
    }
    const [r] = await sql<{ n: number }[]>`
      select leasehold.requeue_dead_letters(
        p_kind => ${textFlag(flags, 'kind') ?? null}, p_queue => ${textFlag(flags, 'queue') ?? null},
        p_tenant_id => ${tenantId}::uuid, p_since => ${since ? new Date(since) : null}::timestamptz,
        p_error_pattern => ${textFlag(flags, 'error') ?? null}, p_actor => ${cliActor()}, p_limit => ${limit}) as n`;
    return { requeued: r!.n };
  });
  if ('error' in result) return fail(ctx.json, 'dlq requeue', result.error!);
  printObject({ requeued: result.requeued, filters: Object.fromEntries(given.map((f) => [f, flags[f]])) }, ctx.json);
  return 0;
}

/** `leasehold dlq ls|requeue`. */
export async function dlqCommand(ctx: CommandContext, args: string[], flags: Flags): Promise<number> {
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
    if (id === undefined) return requeueMatching(ctx, flags);
    if (!z.uuid().safeParse(id).success) {
      return usage('dlq requeue <dead-letter-id> | dlq requeue [--kind k] [--queue q] [--tenant slug] [--since time] [--error regex] [--all]');
    }
    const jobId = await withDatabase(ctx, async (sql) =>
      (await sql`select leasehold.requeue_dead_letter(${id}, null, ${cliActor()}) as job_id`)[0]!.job_id as string | null);
    if (!jobId) {
      return unchanged({ dead_letter_id: id, requeued: false, job_id: null, reason: 'no open dead letter with this id (unknown, or already requeued)' }, ctx.json, 'dlq requeue');
    }
    printObject({ dead_letter_id: id, requeued: true, job_id: jobId }, ctx.json);
    return 0;
  }
  return usage('dlq ls|requeue');
}
