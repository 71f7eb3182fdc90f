import { SCOPES, createApiKey, listApiKeys, revokeApiKey, type Scope } from '#shared/auth/api-keys.js';
import { DEV_TENANT_SLUG, ensureTenant, listTenants } from '#shared/auth/tenants.js';
import { withDatabase, type CommandContext } from '../context.js';
import { printObject, printTable, unchanged, usage } from '../output.js';
import { budgetCommand } from './budget.js';

type Flags = Record<string, string | boolean | undefined>;

/**
 * `leasehold keys create|ls|revoke`: API keys are shown once, at creation. A key gets jobs:read and
 * jobs:write unless --scopes says otherwise: admin, which acts on every tenant, is never a default.
 */
export async function keysCommand(ctx: CommandContext, args: string[], flags: Flags): Promise<number> {
  const [sub, target] = args;
  if (sub === 'create') {
    const scopes = (typeof flags.scopes === 'string' ? flags.scopes : 'jobs:read,jobs:write').split(',').map((s) => s.trim());
    const bad = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
    if (bad.length || scopes.length === 0) return usage(`keys create [--tenant slug] [--name n] [--scopes ${SCOPES.join(',')}]  (unknown: ${bad.join(', ')})`);
    const slug = typeof flags.tenant === 'string' ? flags.tenant : DEV_TENANT_SLUG;
    const name = typeof flags.name === 'string' ? flags.name : 'cli';
    const made = await withDatabase(ctx, async (sql) => {
      const tenant = await ensureTenant(sql, slug);
      return createApiKey(sql, { tenantId: tenant.id, name, scopes: scopes as Scope[] });
    });
    // admin is the operators' scope: whatever tenant holds the key, it acts on every tenant.
    const note = made.info.scopes.includes('admin') ? 'shown once: store it now; admin acts on every tenant: give it to operators only' : 'shown once: store it now';
    printObject({ key: made.key, id: made.info.id, prefix: made.info.prefix, tenant: slug, scopes: made.info.scopes.join(','), note }, ctx.json);
    return 0;
  }
  if (sub === 'ls' || sub === undefined) {
    const rows = await withDatabase(ctx, async (sql) => {
      const tenants = new Map((await listTenants(sql)).map((t) => [t.id, t.slug]));
      return (await listApiKeys(sql)).map((k) => ({ ...k, tenant: tenants.get(k.tenant_id) ?? k.tenant_id, scopes: k.scopes.join(',') }));
    });
    printTable(rows, ctx.json, ['id', 'prefix', 'tenant', 'name', 'scopes', 'created_at', 'last_used_at', 'revoked_at']);
    return 0;
  }
  if (sub === 'revoke') {
    if (!target) return usage('keys revoke <key-id or prefix>');
    const ok = await withDatabase(ctx, (sql) => revokeApiKey(sql, target));
    if (!ok) return unchanged({ key: target, revoked: false, reason: 'no active key with that id or prefix' }, ctx.json, 'keys revoke');
    printObject({ key: target, revoked: true }, ctx.json);
    return 0;
  }
  return usage('keys create|ls|revoke');
}

/** `leasehold tenants create|ls|budget`. */
export async function tenantsCommand(ctx: CommandContext, args: string[], flags: Flags): Promise<number> {
  const [sub, slug] = args;
  if (sub === 'create') {
    if (!slug || !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(slug)) return usage('tenants create <slug: a-z 0-9 _ -> [--name n]');
    const tenant = await withDatabase(ctx, (sql) => ensureTenant(sql, slug, typeof flags.name === 'string' ? flags.name : slug));
    printObject({ ...tenant }, ctx.json);
    return 0;
  }
  if (sub === 'ls' || sub === undefined) {
    const rows = await withDatabase(ctx, (sql) => listTenants(sql));
    printTable(rows as unknown as Record<string, unknown>[], ctx.json, ['id', 'slug', 'name', 'external_id', 'created_at']);
    return 0;
  }
  if (sub === 'budget') return budgetCommand(ctx, slug, flags);
  return usage('tenants create|ls|budget');
}
