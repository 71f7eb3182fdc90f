import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { connect, type Sql } from '#shared/db/connect.js';

/** A database of its own for one test file, cloned from the migrated template. */
export interface TestDatabase {
  url: string;
  sql: Sql;
  /** Closes every pool opened through it and drops the database. */
  drop(): Promise<void>;
  /** Opens another pool on the same database, closed by drop(). */
  connect(opts?: Parameters<typeof connect>[1]): Sql;
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject('pgAdminUrl');
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = connect(adminUrl, { max: 1 });
  try {
    await admin.unsafe(`create database ${name} template ${inject('pgTemplate')}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(adminUrl, name);
  const pools: Sql[] = [];
  const open = (opts?: Parameters<typeof connect>[1]) => {
    const sql = connect(url, { max: 10, ...opts });
    pools.push(sql);
    return sql;
  };
  return {
    url,
    sql: open(),
    connect: open,
    async drop() {
      await Promise.all(pools.map((p) => p.end({ timeout: 5 })));
      const a = connect(adminUrl, { max: 1 });
      try {
        await a.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}
