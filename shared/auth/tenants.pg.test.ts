import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { deferred } from '../../test/helpers/deferred.js';
import { ensureTenant, lockTenantForCap } from './tenants.js';

let db: TestDatabase;
beforeAll(async () => (db = await createTestDatabase()));
afterAll(() => db.drop());

test("a create holding its tenant's cap lock makes the tenant's other creates wait, not the tenant's other inserts", async () => {
  const { id: tenantId } = await ensureTenant(db.sql, 'cap-lock');
  const holder = db.connect({ max: 1 });
  const other = db.connect({ max: 1 });
  const locked = deferred();
  const release = deferred();
  try {
    // A webhook or pattern create between its count and its insert.
    const holding = holder.begin(async (tx) => {
      await lockTenantForCap(tx, tenantId);
      locked.resolve();
      await release.promise;
    });
    await locked.promise;

    // Inserts whose foreign key names the tenant (a queue its job made, an upload) go through.
    await other.begin(async (tx) => {
      await tx`set local lock_timeout = '2s'`;
      await tx`insert into leasehold.queues (name, tenant_id) values ('cap-lock-queue', ${tenantId})`;
    });
    // A second create of the same tenant waits for the first.
    await expect(
      other.begin(async (tx) => {
        await tx`set local lock_timeout = '300ms'`;
        await lockTenantForCap(tx, tenantId);
      }),
    ).rejects.toMatchObject({ code: '55P03' });

    release.resolve();
    await holding;
    await other.begin((tx) => lockTenantForCap(tx, tenantId));
    const [q] = await db.sql`select tenant_id from leasehold.queues where name = 'cap-lock-queue'`;
    expect(q!.tenant_id).toBe(tenantId);
  } finally {
    release.resolve();
    await Promise.all([holder.end(), other.end()]);
  }
});
