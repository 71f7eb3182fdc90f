import { isKind, KINDS } from '#shared/jobs/kinds.js';
import { checkCron, nextTicks } from '#shared/maintenance/cron-ticks.js';
import { cliActor, intFlag, textFlag, UsageError, withDatabase, type CommandContext } from '../context.js';
import { fail, printObject, printTable, usage } from '../output.js';

type Flags = Record<string, string | boolean | undefined>;

/** The validated fields of `schedules add`; any problem is a UsageError naming the flag. */
function parseAdd(name: string | undefined, flags: Flags) {
  if (!name || name.length > 200) throw new UsageError('schedules add <name> needs a name of 1 to 200 characters');
  const cron = textFlag(flags, 'cron');
  const kind = textFlag(flags, 'kind');
  if (!cron || !kind) throw new UsageError('schedules add needs --cron and --kind');
  if (!isKind(kind)) throw new UsageError(`--kind: unknown kind "${kind}" (known: ${Object.keys(KINDS).join(', ')})`);
  const timezone = textFlag(flags, 'tz') ?? 'UTC';
  try {
    checkCron(cron, timezone);
  } catch (err) {
    throw new UsageError(`--cron/--tz: ${(err as Error).message}`);
  }
  let raw: unknown = {};
  const text = textFlag(flags, 'payload');
  if (text !== undefined) {
    try {
      raw = JSON.parse(text);
    } catch {
      throw new UsageError('--payload must be JSON');
    }
  }
  const parsed = KINDS[kind].payload.safeParse(raw);
  if (!parsed.success) {
    throw new UsageError(`--payload does not fit ${kind}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  return {
    name, cron, timezone, kind, payload: parsed.data as Record<string, unknown>,
    queue: textFlag(flags, 'queue') ?? KINDS[kind].queue,
    priority: intFlag(flags, 'priority', -1_000_000, 1_000_000) ?? 100,
    maxAttempts: intFlag(flags, 'max-attempts', 1, 1000) ?? KINDS[kind].maxAttempts,
    tenant: textFlag(flags, 'tenant') ?? 'system',
  };
}

/** `leasehold schedules ls|add|rm|pause|resume`: recurring jobs. */
export async function schedulesCommand(ctx: CommandContext, args: string[], flags: Flags): Promise<number> {
  const [sub, name] = args;
  if (sub === 'ls' || sub === undefined) {
    const rows = await withDatabase(ctx, (sql) => sql`
      select s.name, s.cron, s.timezone, s.kind, s.queue, s.enabled, s.last_tick_at, s.last_job_id, s.last_error,
             s.payload, s.priority, s.max_attempts, t.slug as tenant, s.created_at
      from leasehold.schedules s left join leasehold.tenants t on t.id = s.tenant_id
      order by s.name`);
    const now = new Date();
    const shown = rows.map((r) => {
      let next: Date | null = null;
      try {
        next = r.enabled ? nextTicks(r.cron, r.timezone, now)[0]! : null;
      } catch {
        next = null;
      }
      return { ...r, next_tick_at: next };
    });
    printTable(shown, ctx.json, ['name', 'cron', 'timezone', 'kind', 'queue', 'enabled', 'next_tick_at', 'last_tick_at', 'last_error']);
    return 0;
  }
  if (sub === 'add') {
    const s = parseAdd(name, flags);
    const made = await withDatabase(ctx, async (sql) => {
      const [tenant] = await sql<{ id: string }[]>`select id from leasehold.tenants where slug = ${s.tenant}`;
      if (!tenant) return { error: `no tenant with slug ${s.tenant}` };
      const [row] = await sql`
        with ins as (
          insert into leasehold.schedules (name, cron, timezone, kind, payload, queue, priority, max_attempts, tenant_id)
          values (${s.name}, ${s.cron}, ${s.timezone}, ${s.kind}, ${sql.json(s.payload as never)}, ${s.queue}, ${s.priority},
                  ${s.maxAttempts}, ${tenant.id})
          on conflict (name) do nothing
          returning id, name
        ), audit as (
          insert into leasehold.admin_actions (actor, action, target, args)
          select ${cliActor()}, 'add_schedule', name, ${sql.json({ cron: s.cron, timezone: s.timezone, kind: s.kind, queue: s.queue })} from ins
        )
        select id from ins`;
      return row ? { id: row.id as string } : { error: `a schedule named ${s.name} exists already` };
    });
    if ('error' in made) return fail(ctx.json, 'schedules add', made.error!);
    const next = nextTicks(s.cron, s.timezone, new Date())[0]!;
    printObject({ id: made.id, name: s.name, cron: s.cron, timezone: s.timezone, kind: s.kind, queue: s.queue, next_tick_at: next }, ctx.json);
    return 0;
  }
  if (sub === 'rm' || sub === 'pause' || sub === 'resume') {
    if (!name) return usage(`schedules ${sub} <name>`);
    const changed = await withDatabase(ctx, async (sql) => {
      const action = sub === 'rm' ? 'remove_schedule' : `${sub}_schedule`;
      const change =
        sub === 'rm' ? sql`delete from leasehold.schedules where name = ${name} returning name`
        : sub === 'pause' ? sql`update leasehold.schedules set enabled = false, updated_at = now() where name = ${name} and enabled returning name`
        // Resuming skips the ticks that fell while paused: the next tick from now on runs.
        : sql`update leasehold.schedules set enabled = true, ticks_from = greatest(ticks_from, now()), updated_at = now()
              where name = ${name} and not enabled returning name`;
      const [row] = await sql`
        with c as (${change}), audit as (
          insert into leasehold.admin_actions (actor, action, target) select ${cliActor()}, ${action}, name from c
        )
        select count(*)::int as n, (select count(*) from leasehold.schedules where name = ${name})::int as exists from c`;
      return row!;
    });
    if (changed.n === 0 && (sub === 'rm' || changed.exists === 0)) return fail(ctx.json, `schedules ${sub}`, `no schedule named ${name}`);
    const result = sub === 'rm' ? { removed: true } : { enabled: sub === 'resume', changed: changed.n > 0 };
    printObject({ name, ...result, ...(changed.n === 0 ? { note: sub === 'pause' ? 'it was already paused' : 'it was not paused' } : {}) }, ctx.json);
    return 0;
  }
  return usage('schedules ls|add|rm|pause|resume');
}
