import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { FetchRefused } from './fetch-refused.js';
import { safeFetchImage, type SafeFetchOptions } from './safe-fetch.js';

// A real 1×1 PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const MB = 1024 * 1024;

let main: Server;
let other: Server;
let port: number;
let otherPort: number;
const hosts: string[] = [];

function route(req: IncomingMessage, res: ServerResponse): void {
  hosts.push(req.headers.host ?? '');
  const path = req.url ?? '/';
  const png = (type = 'image/png') => void res.writeHead(200, { 'content-type': type, 'content-length': PNG.length }).end(PNG);
  const redirect = (to: string) => void res.writeHead(302, { location: to }).end();
  const hops = /^\/redirect\/(\d+)$/.exec(path);
  if (path === '/image.png') return png();
  if (hops) return redirect(Number(hops[1]) > 1 ? `/redirect/${Number(hops[1]) - 1}` : '/image.png');
  if (path === '/mislabelled') return png('image/jpeg');
  if (path === '/html-as-png') return void res.writeHead(200, { 'content-type': 'image/png' }).end('<!doctype html><h1>hi</h1>');
  if (path === '/html') return void res.writeHead(200, { 'content-type': 'text/html' }).end('<h1>hi</h1>');
  if (path === '/to-private') return redirect(`http://127.0.0.2:${otherPort}/image.png`);
  if (path === '/to-name') return redirect(`http://rebound.example:${otherPort}/image.png`);
  if (path === '/to-file') return redirect('file:///etc/passwd');
  if (path === '/503') return void res.writeHead(503, { 'retry-after': '7' }).end();
  if (path === '/404') return void res.writeHead(404).end();
  if (path === '/declared-huge') return void res.writeHead(200, { 'content-type': 'image/png', 'content-length': 50 * MB }).write(PNG);
  if (path === '/slow') return void res.writeHead(200, { 'content-type': 'image/png' }).write(PNG.subarray(0, 8));
  if (path === '/huge') {
    res.writeHead(200, { 'content-type': 'image/png' });
    const chunk = Buffer.alloc(64 * 1024);
    const pump = () => {
      while (!res.destroyed && res.write(chunk));
    };
    res.on('drain', pump);
    return pump();
  }
  res.writeHead(404).end();
}

function listen(server: Server, host: string): Promise<number> {
  return new Promise((resolve) => server.listen(0, host, () => resolve((server.address() as AddressInfo).port)));
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

beforeAll(async () => {
  main = http.createServer(route);
  other = http.createServer(route);
  port = await listen(main, '127.0.0.1');
  otherPort = await listen(other, '127.0.0.2');
});
afterAll(async () => Promise.all([close(main), close(other)]));

/** The FetchRefused a fetch fails with (the test fails if it succeeds or throws something else). */
async function refusal(url: string, opts: SafeFetchOptions = {}): Promise<FetchRefused> {
  const err = await safeFetchImage(url, opts).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(FetchRefused);
  return err as FetchRefused;
}

const dev = { allowPrivate: true };
const onlyMain = { allowAddress: (ip: string) => ip === '127.0.0.1' };

describe('with allowPrivate (local development)', () => {
  test('fetches a PNG and reports its type and URL', async () => {
    const image = await safeFetchImage(`http://127.0.0.1:${port}/image.png`, dev);
    expect(image).toEqual({ bytes: PNG, contentType: 'image/png', finalUrl: `http://127.0.0.1:${port}/image.png` });
  });

  test('follows up to three redirects, and refuses the fourth', async () => {
    expect((await safeFetchImage(`http://127.0.0.1:${port}/redirect/3`, dev)).finalUrl).toBe(`http://127.0.0.1:${port}/image.png`);
    expect(await refusal(`http://127.0.0.1:${port}/redirect/4`, dev)).toMatchObject({ code: 'redirects', retryable: false });
  });

  test('refuses a body over the limit while it streams, and up front when Content-Length says so', async () => {
    const started = Date.now();
    expect(await refusal(`http://127.0.0.1:${port}/huge`, dev)).toMatchObject({ code: 'too_large', retryable: false });
    expect(await refusal(`http://127.0.0.1:${port}/huge`, { ...dev, maxBytes: 100_000 })).toMatchObject({ code: 'too_large' });
    expect(await refusal(`http://127.0.0.1:${port}/declared-huge`, dev)).toMatchObject({ code: 'too_large' });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test('gives up on a slow body after timeoutMs, retryably', async () => {
    const err = await refusal(`http://127.0.0.1:${port}/slow`, { ...dev, timeoutMs: 300 });
    expect(err).toMatchObject({ code: 'timeout', retryable: true });
  });

  test('refuses HTML, whether it admits it or claims to be a PNG; trusts the bytes of a mislabelled image', async () => {
    expect(await refusal(`http://127.0.0.1:${port}/html`, dev)).toMatchObject({ code: 'not_image', retryable: false });
    expect(await refusal(`http://127.0.0.1:${port}/html-as-png`, dev)).toMatchObject({ code: 'not_image' });
    expect((await safeFetchImage(`http://127.0.0.1:${port}/mislabelled`, dev)).contentType).toBe('image/png');
  });

  test('tells retryable statuses from permanent ones and keeps Retry-After', async () => {
    expect(await refusal(`http://127.0.0.1:${port}/503`, dev)).toMatchObject({ code: 'http_status', status: 503, retryable: true, retryAfterMs: 7000 });
    expect(await refusal(`http://127.0.0.1:${port}/404`, dev)).toMatchObject({ code: 'http_status', status: 404, retryable: false });
  });

  test('a refused connection is a retryable network failure', async () => {
    const spare = http.createServer();
    const sparePort = await listen(spare, '127.0.0.1');
    await close(spare);
    expect(await refusal(`http://127.0.0.1:${sparePort}/`, dev)).toMatchObject({ code: 'network', retryable: true });
  });

  test('errors name the host and path of a presigned URL, never its signature or credentials', async () => {
    const spare = http.createServer();
    const sparePort = await listen(spare, '127.0.0.1');
    await close(spare);
    const secret = 'X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=0123456789abcdef#frag';
    const down = await refusal(`http://alice:pw@127.0.0.1:${sparePort}/bucket/receipt.png?${secret}`, dev);
    expect(down).toMatchObject({ code: 'network', url: `http://127.0.0.1:${sparePort}/bucket/receipt.png` });
    expect(down.message).toBe(`cannot fetch http://127.0.0.1:${sparePort}/bucket/receipt.png: ECONNREFUSED`);
    for (const path of ['/404', '/html', '/redirect/4', '/declared-huge']) {
      const err = await refusal(`http://127.0.0.1:${port}${path}?${secret}`, dev);
      expect(JSON.stringify({ message: err.message, url: err.url })).not.toMatch(/Signature|AKIA|frag|alice/);
    }
    const bad = await refusal(`http://alice:pw@exa mple.com/receipt.png?${secret}`, dev);
    expect(bad.message).toBe('"http://exa mple.com/receipt.png" is not a valid URL');
  });

  test('a caller abort is rethrown as the caller’s own reason', async () => {
    const reason = new Error('lease lost');
    const controller = new AbortController();
    setTimeout(() => controller.abort(reason), 50);
    await expect(safeFetchImage(`http://127.0.0.1:${port}/slow`, { ...dev, signal: controller.signal })).rejects.toBe(reason);
  });
});

describe('without allowPrivate', () => {
  test.each([
    ['loopback', 'http://127.0.0.1:PORT/image.png'],
    ['10/8', 'http://10.0.0.1/image.png'],
    ['172.16/12', 'http://172.16.0.1/image.png'],
    ['192.168/16', 'http://192.168.1.1/image.png'],
    ['the metadata service', 'http://169.254.169.254/latest/meta-data/'],
    ['CGNAT', 'http://100.64.0.1/'],
    ['0.0.0.0', 'http://0.0.0.0:PORT/image.png'],
    ['IPv6 loopback', 'http://[::1]:PORT/image.png'],
    ['IPv4-mapped IPv6 loopback', 'http://[::ffff:127.0.0.1]:PORT/image.png'],
    ['AWS metadata over IPv6', 'http://[fd00:ec2::254]/'],
    ['IPv6 link-local', 'http://[fe80::1]/'],
    ['decimal 2130706433', 'http://2130706433:PORT/image.png'],
    ['octal 0177.0.0.1', 'http://0177.0.0.1:PORT/image.png'],
    ['hex short 0x7f.1', 'http://0x7f.1:PORT/image.png'],
    ['localhost', 'http://localhost:PORT/image.png'],
    ['a localhost subdomain', 'http://api.localhost:PORT/image.png'],
  ])('refuses %s', async (_name, template) => {
    const err = await refusal(template.replace('PORT', String(port)), { lookup: () => Promise.reject(new Error('must not resolve')) });
    expect(err).toMatchObject({ code: 'private_address', retryable: false });
    expect(err.message).toMatch(/is not a public address \((loopback|private|metadata|cgnat|unspecified|link_local)\)/);
  });

  test('refuses a name when any of its addresses is not public, and never connects', async () => {
    hosts.length = 0;
    const lookup = async () => [{ address: '93.184.215.14', family: 4 }, { address: '127.0.0.1', family: 4 }];
    const err = await refusal(`http://images.example:${port}/image.png`, { lookup });
    expect(err.message).toBe('images.example resolves to 127.0.0.1, which is not a public address (loopback): server-side fetches stay off private networks');
    expect(hosts).toEqual([]);
  });

  test('connects to the address it checked, resolving each host once (no DNS rebinding)', async () => {
    hosts.length = 0;
    let calls = 0;
    const lookup = async () => [{ address: calls++ === 0 ? '127.0.0.1' : '127.0.0.2', family: 4 }];
    const image = await safeFetchImage(`http://images.example:${port}/image.png`, { ...onlyMain, lookup });
    expect(image.bytes).toEqual(PNG);
    expect(calls).toBe(1);
    expect(hosts).toEqual([`images.example:${port}`]);
  });

  test('re-checks every redirect target: a literal loopback address, a name resolving to one, a file: URL', async () => {
    const lookup = async () => [{ address: '127.0.0.2', family: 4 }];
    expect(await refusal(`http://127.0.0.1:${port}/to-private`, onlyMain)).toMatchObject({ code: 'private_address', url: `http://127.0.0.2:${otherPort}/image.png` });
    expect(await refusal(`http://127.0.0.1:${port}/to-name`, { ...onlyMain, lookup })).toMatchObject({ code: 'private_address' });
    expect(await refusal(`http://127.0.0.1:${port}/to-file`, dev)).toMatchObject({ code: 'scheme' });
    expect((await safeFetchImage(`http://127.0.0.1:${port}/to-private`, dev)).finalUrl).toBe(`http://127.0.0.2:${otherPort}/image.png`);
  });

  test.each(['ftp://example.com/a.png', 'file:///etc/passwd', 'data:image/png;base64,AAAA', 'gopher://example.com/', 'not a url'])(
    'refuses %s by scheme',
    async (url) => expect(await refusal(url)).toMatchObject({ code: 'scheme', retryable: false }),
  );

  test('DNS failures: NXDOMAIN is permanent, a temporary failure retryable', async () => {
    const failing = (code: string) => async () => Promise.reject(Object.assign(new Error(code), { code }));
    expect(await refusal('https://gone.example/a.png', { lookup: failing('ENOTFOUND') })).toMatchObject({ code: 'dns', retryable: false });
    expect(await refusal('https://flaky.example/a.png', { lookup: failing('EAI_AGAIN') })).toMatchObject({ code: 'dns', retryable: true });
  });
});
