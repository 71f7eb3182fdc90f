import type { Sql, Tx } from '../db/connect.js';
import { uuidv7 } from '../jobs/uuid.js';

/** A tenant as the CLI and API show it. */
export interface Tenant {
  id: string;
  slug: string;
  name: string;
  external_id: string | null;
  created_at: Date;
}

/** The tenant `start` gives its development key. */
export const DEV_TENANT_SLUG = 'dev';

/** Creates a tenant, or returns the existing one with that slug. */
export async function ensureTenant(sql: Sql, slug: string, name = slug): Promise<Tenant> {
  const [t] = await sql<Tenant[]>`
    with ins as (
      insert into leasehold.tenants (id, slug, name) values (${uuidv7()}, ${slug}, ${name})
      on conflict (slug) do nothing
      returning id, slug, name, external_id, created_at
    )
    select * from ins
    union all
    select id, slug, name, external_id, created_at from leasehold.tenants where slug = ${slug}
    limit 1`;
  // Empty when a concurrent insert of the same slug committed after this statement's snapshot
  // (ON CONFLICT waited for it); a new statement sees that row.
  return t ?? (await sql<Tenant[]>`select id, slug, name, external_id, created_at from leasehold.tenants where slug = ${slug}`)[0]!;
}

/** Every tenant but the internal `system` one. */
export function listTenants(sql: Sql): Promise<Tenant[]> {
  return sql<Tenant[]>`
    select id, slug, name, external_id, created_at from leasehold.tenants
    where id <> '00000000-0000-0000-0000-000000000000' order by created_at`;
}

/**
 * The tenant a JWT's claim names: found by external id, or created on first sight (the issuer
 * is trusted to name tenants; its signature was verified before this is called).
 */
export async function tenantForExternalId(sql: Sql, externalId: string): Promise<string> {
  const slug = `jwt-${externalId.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').slice(0, 40)}-${uuidv7().slice(-6)}`;
  const [row] = await sql<{ id: string }[]>`
    with ins as (
      insert into leasehold.tenants (id, slug, name, external_id)
      values (${uuidv7()}, ${slug}, ${externalId}, ${externalId})
      on conflict (external_id) do nothing
      returning id
    )
    select id from ins
    union all
    select id from leasehold.tenants where external_id = ${externalId}
    limit 1`;
  // Empty when a concurrent first request for the same claim won the insert (see ensureTenant).
  return (row ?? (await sql<{ id: string }[]>`select id from leasehold.tenants where external_id = ${externalId}`)[0]!).id;
}

/**
 * Inside a transaction that counts a tenant's rows of some kind and then inserts one (a pattern,
 * a webhook), holds the count against that tenant's cap: concurrent creates of the same tenant
 * wait here, one after the other. NO KEY UPDATE leaves the tenant row's key-share locks alone, so
 * the foreign keys of the tenant's other inserts (queues, uploads, API keys, …) do not wait for it.
 */
export async function lockTenantForCap(tx: Tx, tenantId: string): Promise<void> {
  await tx`select 1 from leasehold.tenants where id = ${tenantId}::uuid for no key update`;
}
