import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { connect, type Sql } from './connect.js';
import { MIGRATION_LOCK_KEY, migrate, readMigrations, type Migration } from './migrator.js';
import { createTestDatabase, withDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { waitFor } from '../../test/helpers/wait.js';

let db: TestDatabase;
const scratch: { name: string; pools: Sql[] }[] = [];
beforeAll(async () => (db = await createTestDatabase()));
afterAll(async () => {
  const admin = connect(inject('pgAdminUrl'), { max: 1 });
  try {
    for (const s of scratch.splice(0)) {
      await Promise.all(s.pools.map((p) => p.end({ timeout: 5 })));
      await admin.unsafe(`drop database if exists ${s.name} with (force)`);
    }
  } finally {
    await admin.end();
  }
  await db.drop();
});

/** An empty database (no leasehold schema at all) and `pools` separate pools on it. */
async function freshDatabase(pools: number): Promise<Sql[]> {
  const name = `t_migrate_${randomBytes(5).toString('hex')}`;
  const admin = connect(inject('pgAdminUrl'), { max: 1 });
  await admin.unsafe(`create database ${name} template template0`).finally(() => admin.end());
  const opened = Array.from({ length: pools }, () => connect(withDatabase(inject('pgAdminUrl'), name), { max: 1 }));
  scratch.push({ name, pools: opened });
  return opened;
}

function migration(version: string, name: string, sql: string): Migration {
  return { version, name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
}

/** Advisory locks held or awaited in this database (pg_locks is cluster-wide). */
const advisoryLocks = async (sql: Sql, granted: boolean) =>
  (await sql<{ n: number }[]>`select count(*)::int as n from pg_locks
    where locktype = 'advisory' and granted = ${granted}
      and database = (select oid from pg_database where datname = current_database())`)[0]!.n;

const applied = (sql: Sql) =>
  sql<{ version: string; checksum: string; applied_at: Date }[]>`
    select version, checksum, applied_at from leasehold.schema_migrations order by version`;

describe('migrate', () => {
  test('on a migrated database is a no-op, however often it runs', async () => {
    const before = await applied(db.sql);
    expect(before.map((r) => r.version)).toEqual(readMigrations().map((m) => m.version));
    expect(await migrate(db.sql)).toEqual([]);
    expect(await migrate(db.sql)).toEqual([]);
    expect(await applied(db.sql)).toEqual(before);
  });

  test('applies each migration once when several processes start at once on an empty database', async () => {
    // Two extra migrations that would fail (table exists) or double a row if applied twice.
    const migrations = [
      ...readMigrations(),
      migration('9001', 'create_probe', 'create table leasehold.migrate_probe (n int not null);'),
      migration('9002', 'fill_probe', 'insert into leasehold.migrate_probe values (1);'),
    ];
    const [gate, ...pools] = await freshDatabase(7);
    // Hold the lock until every caller waits on it, so they truly start together.
    const held = await gate!.reserve();
    await held`select pg_advisory_lock(${MIGRATION_LOCK_KEY.toString()}::bigint)`;
    const running = Promise.all(pools.map((p) => migrate(p, migrations)));
    await waitFor(async () => (await advisoryLocks(held, false)) === pools.length, 'every migrate() to wait on the lock');
    await held`select pg_advisory_unlock(${MIGRATION_LOCK_KEY.toString()}::bigint)`;
    held.release();
    const results = await running;
    const all = migrations.map((m) => `${m.version}_${m.name}`);
    expect(results.filter((r) => r.length > 0)).toEqual([all]);
    expect(results.filter((r) => r.length === 0)).toHaveLength(pools.length - 1);
    const sql = pools[0]!;
    expect((await applied(sql)).map((r) => r.version)).toEqual(migrations.map((m) => m.version));
    expect(await sql`select n from leasehold.migrate_probe`).toEqual([{ n: 1 }]);
    expect(await sql`select slug from leasehold.tenants`).toEqual([{ slug: 'system' }]);
    expect(await advisoryLocks(sql, true)).toBe(0);
  });

  test('refuses to run when an applied migration was edited, and releases its lock', async () => {
    const [first, ...rest] = readMigrations();
    const edited = migration(first!.version, first!.name, `${first!.sql}\n-- an afterthought\n`);
    await expect(migrate(db.sql, [edited, ...rest])).rejects.toThrow(
      `migration ${first!.version}_${first!.name} was edited after it was applied; add a new migration instead`,
    );
    expect(await advisoryLocks(db.sql, true)).toBe(0);
    expect(await migrate(db.sql)).toEqual([]);
  });

  test('rolls a failing migration back whole and records nothing', async () => {
    const broken = migration('9100', 'half_done', 'create table leasehold.half_done (x int);\nselect 1 / 0;');
    await expect(migrate(db.sql, [...readMigrations(), broken])).rejects.toThrow(
      'migration 9100_half_done failed: division by zero',
    );
    expect(await db.sql`select to_regclass('leasehold.half_done') as t`).toEqual([{ t: null }]);
    expect((await applied(db.sql)).map((r) => r.version)).toEqual(readMigrations().map((m) => m.version));
    expect(await advisoryLocks(db.sql, true)).toBe(0);
  });
});
