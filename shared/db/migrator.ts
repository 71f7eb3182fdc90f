import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sql } from './connect.js';

/** The folder of forward-only migrations, `NNNN_verb_object.sql`. */
export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../sql/migrations');

/** The advisory lock migrate() holds; any constant every Leasehold process shares ("leasehol" in ASCII). */
export const MIGRATION_LOCK_KEY = 0x6c6561736568_6f6cn;

/** One migration file. */
export interface Migration {
  version: string;
  name: string;
  sql: string;
  checksum: string;
}

/** Reads the migration files in order. */
export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((file) => {
      const text = readFileSync(path.join(dir, file), 'utf8');
      return {
        version: file.slice(0, 4),
        name: file.slice(5, -4),
        sql: text,
        checksum: createHash('sha256').update(text).digest('hex'),
      };
    });
}

/**
 * Applies every pending migration, each in its own transaction, under a session advisory lock so
 * that any number of processes may start at once: the first applies, the rest wait and find
 * nothing to do. Refuses to run when an applied migration's file has changed since.
 */
export async function migrate(sql: Sql, migrations = readMigrations()): Promise<string[]> {
  const conn = await sql.reserve();
  try {
    await conn`select pg_advisory_lock(${MIGRATION_LOCK_KEY.toString()}::bigint)`;
    await conn`create schema if not exists leasehold`;
    await conn`
      create table if not exists leasehold.schema_migrations (
        version text primary key,
        name text not null,
        checksum text not null,
        applied_at timestamptz not null default now()
      )`;
    const applied = new Map(
      (await conn<{ version: string; checksum: string }[]>`select version, checksum from leasehold.schema_migrations`).map(
        (r) => [r.version, r.checksum],
      ),
    );
    const done: string[] = [];
    for (const m of migrations) {
      const seen = applied.get(m.version);
      if (seen !== undefined) {
        if (seen !== m.checksum) {
          throw new Error(`migration ${m.version}_${m.name} was edited after it was applied; add a new migration instead`);
        }
        continue;
      }
      await conn.unsafe('begin');
      try {
        await conn.unsafe(m.sql);
        await conn`insert into leasehold.schema_migrations (version, name, checksum) values (${m.version}, ${m.name}, ${m.checksum})`;
        await conn.unsafe('commit');
      } catch (err) {
        await conn.unsafe('rollback');
        throw new Error(`migration ${m.version}_${m.name} failed: ${(err as Error).message}`, { cause: err });
      }
      done.push(`${m.version}_${m.name}`);
    }
    return done;
  } finally {
    await conn`select pg_advisory_unlock(${MIGRATION_LOCK_KEY.toString()}::bigint)`.catch(() => {});
    conn.release();
  }
}
