import { Hono } from 'hono';
import postgres from 'postgres';
import { describe, expect, test } from 'vitest';
import type { ApiEnv } from '../context.js';
import { onError } from './problems.js';

/** What the API answers when a route throws `err`. */
async function answerTo(err: unknown): Promise<Response> {
  const app = new Hono<ApiEnv>();
  app.onError(onError);
  app.get('/x', (c) => {
    c.set('log', { error() {}, warn() {} } as unknown as ApiEnv['Variables']['log']);
    throw err;
  });
  return app.request('/x');
}

describe('onError', () => {
  test.each(['40P01', '40001'])('SQLSTATE %s (a transaction rolled back by a concurrent one) is a retryable 503, not a 500', async (code) => {
    const res = await answerTo(new postgres.PostgresError({ message: 'deadlock detected', code } as never));
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(await res.json()).toMatchObject({ code: 'unavailable', status: 503, detail: expect.stringContaining(`SQLSTATE ${code}`) });
  });

  test('any other PostgreSQL error is still a 500 internal, its detail hidden', async () => {
    const res = await answerTo(new postgres.PostgresError({ message: 'syntax error at or near "selec"', code: '42601' } as never));
    expect(res.status).toBe(500);
    expect(await res.json()).toMatchObject({ code: 'internal' });
  });
});
