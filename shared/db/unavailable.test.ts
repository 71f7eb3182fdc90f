import { tmpdir } from 'node:os';
import { describe, expect, test } from 'vitest';
import { connect } from './connect.js';
import { freePort } from './free-port.js';
import { isDatabaseUnavailable } from './unavailable.js';

/** What a query on a pool pointed at `url` rejects with. */
async function failure(url: string): Promise<unknown> {
  const sql = connect(url, { max: 1 });
  try {
    await sql`select 1`;
    throw new Error('the query should have failed');
  } catch (err) {
    return err;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

describe('isDatabaseUnavailable', () => {
  test('a closed port and a missing Unix socket (a stopped server) are "unavailable"', async () => {
    const closed = await freePort();
    expect(isDatabaseUnavailable(await failure(`postgres://x@127.0.0.1:${closed}/db`))).toBe(true);
    expect(isDatabaseUnavailable(await failure(`postgres://x@127.0.0.1:${closed}/db?host=${encodeURIComponent(tmpdir())}`))).toBe(true);
  });

  test('server-side SQLSTATEs of a restart count, query errors do not', () => {
    const pgError = (code: string) => Object.assign(new Error('x'), { code });
    for (const code of ['57P01', '57P03', '08006', '53300']) expect(isDatabaseUnavailable(pgError(code)), code).toBe(true);
    for (const code of ['42601', '23505', '22P02', '40001']) expect(isDatabaseUnavailable(pgError(code)), code).toBe(false);
    expect(isDatabaseUnavailable(new Error('no code'))).toBe(false);
    expect(isDatabaseUnavailable(new Error('wrapped', { cause: pgError('57P01') }))).toBe(true);
  });
});
