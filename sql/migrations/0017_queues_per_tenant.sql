-- A tenant may make at most MAX_QUEUES_PER_TENANT of the MAX_QUEUES queues: with the global bound
-- alone, one tenant could take every place (a thousand requests) and keep it with a delayed job in
-- each, so that no other tenant's job could name a new queue.

-- The tenant whose job made the queue through the API (null: the library, SQL, the CLI, a kind's
-- own queue, or a queue made before this column).
alter table leasehold.queues add column tenant_id uuid references leasehold.tenants (id) on delete set null;
create index queues_tenant_idx on leasehold.queues (tenant_id) where tenant_id is not null;

-- As 0013's admit_queues(text[], int), and the tenant's own queues count against p_tenant_max. Returns null when every
-- queue is registered now, else which bound refused the new ones: 'total' or 'tenant' (none is
-- added then).
create function leasehold.admit_queues(p_names text[], p_max int, p_tenant uuid, p_tenant_max int) returns text
language plpgsql as $$
declare
  v_name text;
  v_new text[] := '{}';
begin
  foreach v_name in array coalesce(p_names, '{}') loop
    if not exists (select 1 from leasehold.queues where name = v_name) then
      v_new := v_new || v_name;
    end if;
  end loop;
  if cardinality(v_new) = 0 then
    return null;
  end if;
  perform pg_advisory_xact_lock(7810756276994470241);
  v_new := array(select distinct n from unnest(v_new) as n
                 where not exists (select 1 from leasehold.queues q where q.name = n));
  if cardinality(v_new) = 0 then
    return null;
  end if;
  -- Counting stops at the bound: refusals stay cheap however many queues exist.
  if (select count(*) from (select 1 from leasehold.queues limit p_max) q) + cardinality(v_new) > p_max then
    return 'total';
  end if;
  if (select count(*) from (select 1 from leasehold.queues where tenant_id = p_tenant limit p_tenant_max) q)
       + cardinality(v_new) > p_tenant_max then
    return 'tenant';
  end if;
  insert into leasehold.queues (name, tenant_id) select unnest(v_new), p_tenant on conflict (name) do nothing;
  return null;
end $$;

-- 0013's signature stays, for the API processes of the previous release while a rolling deploy
-- replaces them: the same admission without a tenant's share.
create or replace function leasehold.admit_queues(p_names text[], p_max int) returns boolean
language sql as $$
  select leasehold.admit_queues(p_names, p_max, null::uuid, p_max) is null
$$;
