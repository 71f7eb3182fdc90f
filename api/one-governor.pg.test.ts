import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Sql, Tx } from '#shared/db/connect.js';
import { Governor, type PatternCostInputs } from '#shared/governor/governor.js';
import { loadConfig } from '#shared/config.js';
import { createTestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { insertPattern } from '../test/helpers/governor.js';

/** A governor that records which pattern versions' cost inputs it was asked for. */
class CountingGovernor extends Governor {
  readonly asked: string[] = [];
  override patternInputs(db: Sql | Tx, tenantId: string, patternId: string, version?: number): Promise<PatternCostInputs | undefined> {
    this.asked.push(`${patternId}@${version ?? 'current'}`);
    return super.patternInputs(db, tenantId, patternId, version);
  }
}

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

// Every router used to make its own Governor, each with its own cache of pattern cost inputs,
// warmed separately: up to seven per API process.
test('every router estimates with the one governor the app was given', async () => {
  const governor = new CountingGovernor(loadConfig({}));
  const api = createTestApi(db.sql, {}, { governor });
  const t = await api.tenant('one-governor');
  const pattern = await insertPattern(db.sql, t.tenantId);
  const image = { url: 'https://images.example.com/receipt.jpg' };

  expect((await api.request(t.key, 'POST', `/v1/patterns/${pattern}/ingest`, { image_url: image.url })).status).toBe(202);
  const job = await api.request(t.key, 'POST', '/v1/jobs', { kind: 'manifest.extract', payload: { pattern_id: pattern, pattern_version: 1, image } });
  expect(job.status).toBe(202);
  expect(governor.asked).toEqual([`${pattern}@current`, `${pattern}@1`]);
});
