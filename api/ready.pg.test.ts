import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { connect } from '#shared/db/connect.js';
import { createLogger } from '#shared/log.js';
import { freePort } from '#shared/db/free-port.js';
import { readMigrations } from '#shared/db/migrator.js';
import { createTestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';

/** A response body as JSON, loosely typed for assertions. */
const json = (res: Response): Promise<any> => res.json();

/** A logger whose output a test can read back. */
function capturedLog() {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { log: createLogger('warn', 'ready-test', stream), text: () => text };
}

let db: TestDatabase;
beforeAll(async () => (db = await createTestDatabase()));
afterAll(async () => db?.drop());

const latest = readMigrations().at(-1)!.version;

test('GET /health answers without touching the database', async () => {
  const idle = connect('postgres://leasehold@127.0.0.1:1/none', { max: 1 });
  try {
    const res = await createTestApi(idle).app.request('/health');
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ status: 'ok' });
  } finally {
    await idle.end({ timeout: 0 });
  }
});

test('GET /ready is 200 on a migrated database and reports the queue', async () => {
  const res = await createTestApi(db.sql).app.request('/ready');
  expect(res.status).toBe(200);
  expect(await json(res)).toEqual({
    status: 'ready',
    checks: {
      database: 'ok',
      migrations: 'current',
      workers: 0,
      queue: { ready: 0, running: 0 },
      storage: 'ok',
      governor: { global_daily_micros: null, spent_today_micros: 0, brake: null },
    },
  });
});

test('GET /ready is 503 when object storage is unusable; the reason (a path here) is logged, not shown', async () => {
  const { log, text } = capturedLog();
  const res = await createTestApi(db.sql, { LEASEHOLD_DATA_DIR: '/dev/null/leasehold' }, { log }).app.request('/ready');
  expect(res.status).toBe(503);
  const body = await res.text();
  expect(JSON.parse(body)).toMatchObject({ status: 'unavailable', checks: { database: 'ok', migrations: 'current', storage: 'error' } });
  expect(body).not.toMatch(/ENOTDIR|\/dev\/null/);
  expect(text()).toMatch(/ready: storage check failed/);
  expect(text()).toMatch(/ENOTDIR/);
});

test('GET /ready is 503 while a migration is pending', async () => {
  const other = await createTestDatabase();
  try {
    await other.sql`delete from leasehold.schema_migrations where version = ${latest}`;
    const res = await createTestApi(other.sql).app.request('/ready');
    expect(res.status).toBe(503);
    expect(await json(res)).toMatchObject({ status: 'unavailable', checks: { database: 'ok', migrations: `pending: ${latest}` } });
  } finally {
    await other.drop();
  }
});

test('GET /ready is 503 when the database is unreachable (and /health still 200)', async () => {
  const port = await freePort();
  const closed = connect(`postgres://leasehold@127.0.0.1:${port}/leasehold`, { max: 1 });
  try {
    const { log, text } = capturedLog();
    const api = createTestApi(closed, {}, { log });
    const res = await api.app.request('/ready');
    expect(res.status).toBe(503);
    const body = await res.text();
    // Unauthenticated: the driver's message (host, port) stays in the log.
    expect(JSON.parse(body)).toEqual({ status: 'unavailable', checks: { database: 'error', storage: 'ok' } });
    expect(body).not.toContain(String(port));
    expect(text()).toMatch(/ready: database check failed/);
    expect(text()).toMatch(/ECONNREFUSED|connect/i);
    expect((await api.app.request('/health')).status).toBe(200);
  } finally {
    await closed.end({ timeout: 0 });
  }
});

test('GET /ready is 503 within its deadline when the database accepts connections but never answers', async () => {
  // A TCP server that swallows the startup message: a stalled database or a silent network.
  const sockets: Socket[] = [];
  const silent = createServer((s) => sockets.push(s));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const stalled = connect(`postgres://leasehold@127.0.0.1:${(silent.address() as AddressInfo).port}/leasehold`, { max: 1 });
  try {
    const started = performance.now();
    const res = await createTestApi(stalled).app.request('/ready');
    expect(res.status).toBe(503);
    expect((await json(res)).checks.database).toBe('timeout');
    expect(performance.now() - started).toBeLessThan(4_000);
  } finally {
    sockets.forEach((s) => s.destroy());
    await stalled.end({ timeout: 0 });
    await new Promise((resolve) => silent.close(resolve));
  }
});
