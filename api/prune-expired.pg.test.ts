import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { pruneExpiredIdempotencyKeys } from './prune-expired.js';

let db: TestDatabase;
beforeAll(async () => (db = await createTestDatabase()));
afterAll(() => db.drop());

test('expired Idempotency-Key records are deleted in batches; live ones stay', async () => {
  await db.sql`
    insert into leasehold.idempotency_keys (tenant_id, key, method, path, request_sha256, status, response, expires_at)
    select '00000000-0000-0000-0000-000000000000', 'k' || i, 'POST', '/v1/jobs', '\\x00'::bytea, 202, '{}'::jsonb,
           case when i <= 2500 then now() - interval '1 minute' else now() + interval '1 hour' end
    from generate_series(1, 2600) as i`;
  expect(await pruneExpiredIdempotencyKeys(db.sql)).toBe(2500);
  const [left] = await db.sql<{ n: number; live: boolean }[]>`
    select count(*)::int as n, bool_and(expires_at > now()) as live from leasehold.idempotency_keys`;
  expect(left).toEqual({ n: 100, live: true });
  expect(await pruneExpiredIdempotencyKeys(db.sql)).toBe(0);
});
