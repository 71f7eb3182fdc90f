import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { FAST, runWebhookFlap, summaryLine } from './webhook-flap.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

test('chaos (fast): a flapping receiver still gets every callback, once per webhook-id after de-duplication', async () => {
  const report = await runWebhookFlap(db.url, FAST);
  expect(report.violations, summaryLine(report)).toEqual([]);
  expect(report.ok).toBe(true);
  expect(report.acked).toBe(report.callbacks);
  // The receiver really flapped: attempts were refused or failed before the callbacks got through.
  expect(report.refused_attempts + report.failed_attempts).toBeGreaterThan(0);
  expect(summaryLine(report)).toMatch(/^webhook-flap: ok callbacks=80 delivered=80 /);
}, 180_000);
