import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { FetchRefused } from './fetch-refused.js';
import { safePost } from './safe-post.js';

let server: http.Server;
let base: string;
const seen: { path: string; body: string; type: string | undefined }[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ path: req.url!, body, type: req.headers['content-type'] });
      if (req.url === '/moved') res.writeHead(302, { location: '/elsewhere' }).end();
      else if (req.url === '/big') res.writeHead(500).end('e'.repeat(100_000));
      else if (req.url === '/slow') setTimeout(() => res.writeHead(200).end(), 2_000);
      else res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('safePost', () => {
  test('posts the JSON body with the given headers', async () => {
    const res = await safePost(`${base}/hook`, '{"a":1}', { 'webhook-id': 'x' }, { allowPrivate: true, timeoutMs: 2_000 });
    expect(res.status).toBe(204);
    expect(seen.at(-1)).toEqual({ path: '/hook', body: '{"a":1}', type: 'application/json' });
  });

  test('does not follow redirects: a 3xx is the answer', async () => {
    const before = seen.length;
    const res = await safePost(`${base}/moved`, '{}', {}, { allowPrivate: true, timeoutMs: 2_000 });
    expect(res.status).toBe(302);
    expect(seen.slice(before).map((s) => s.path)).toEqual(['/moved']);
  });

  test('keeps only an excerpt of a large answer', async () => {
    const res = await safePost(`${base}/big`, '{}', {}, { allowPrivate: true, timeoutMs: 2_000 });
    expect(res.status).toBe(500);
    expect(res.excerpt.length).toBeLessThanOrEqual(512);
    expect(res.excerpt).toMatch(/^e+$/);
  });

  test('times out, and refuses private addresses unless allowed', async () => {
    await expect(safePost(`${base}/slow`, '{}', {}, { allowPrivate: true, timeoutMs: 200 })).rejects.toMatchObject({ code: 'timeout' });
    const refused = await safePost(`${base}/hook`, '{}', {}, { timeoutMs: 2_000 }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(FetchRefused);
    expect(refused).toMatchObject({ code: 'private_address' });
  });
});
