import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as queueSql from './queue-sql.js';
import { STATEMENTS } from './queue-sql.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';

let db: TestDatabase;
let serverVersion: number;
beforeAll(async () => {
  db = await createTestDatabase();
  serverVersion = (await db.sql<{ v: number }[]>`select current_setting('server_version_num')::int as v`)[0]!.v;
});
afterAll(() => db.drop());

const named = Object.entries(STATEMENTS);
// pg_type oids that mean "the server could not tell": unknown, and 0 for unresolved.
const UNTYPED = new Set([0, 705]);

/** The highest `$n` a statement binds. */
function parameterCount(text: string): number {
  return Math.max(0, ...[...text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
}

describe('queue statements', () => {
  test('STATEMENTS lists every statement the module exports', () => {
    const exported = Object.entries(queueSql)
      .filter(([, v]) => typeof v === 'string')
      .map(([k]) => k)
      .sort();
    expect(Object.keys(STATEMENTS).sort()).toEqual(exported);
  });

  test.each(named)('%s binds every parameter with a cast', (_name, text) => {
    const uncast = [...text.matchAll(/\$\d+(?!\d)(?!::)/g)].map((m) => m[0]);
    expect(uncast, 'write $n::type so the statement plans the same for every caller').toEqual([]);
  });

  test.each(named)('%s prepares against the migrated schema', async (_name, text) => {
    // Parse + Describe: the server resolves every table, column, function and type, and infers
    // each parameter's type, without running anything.
    const described = await db.sql.unsafe(text, [], { prepare: true }).describe();
    expect(described.types).toHaveLength(parameterCount(text));
    expect(described.types.filter((t) => UNTYPED.has(t))).toEqual([]);
  });

  test.each(named)('%s plans against the migrated schema', async (_name, text) => {
    // The planner catches what parse analysis lets through (e.g. an ON CONFLICT without an index).
    if (serverVersion < 160000) return; // EXPLAIN (GENERIC_PLAN) arrived in PostgreSQL 16.
    const plan = await db.sql.unsafe(`explain (generic_plan) ${text}`);
    expect(plan.length).toBeGreaterThan(0);
  });
});
