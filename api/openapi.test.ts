import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { createRoute, z } from '@hono/zod-openapi';
import { validate } from '@scalar/openapi-parser';
import { afterAll, describe, expect, test } from 'vitest';
import { connect } from '#shared/db/connect.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';

// Neither /openapi.json nor /docs touches the database: a pool that never connects will do.
const idle = connect('postgres://leasehold@127.0.0.1:1/none', { max: 1 });
afterAll(() => idle.end({ timeout: 0 }));

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** `GET /v1/jobs/{id}` for every handler the app routes under /v1 (middleware excluded). */
function appOperations(api: TestApi): string[] {
  const ops = api.app.routes
    .filter((r) => r.method !== 'ALL' && r.path.startsWith('/v1/') && !r.path.includes('*'))
    // `:id` and `:id{[0-9a-f-]+}` are OpenAPI's `{id}`.
    .map((r) => `${r.method.toUpperCase()} ${r.path.replace(/:(\w+)(\{[^}]*\})?/g, '{$1}')}`);
  return [...new Set(ops)].sort();
}

/** `GET /v1/jobs/{id}` for every operation the spec documents under /v1. */
function specOperations(spec: { paths?: Record<string, Record<string, unknown>> }): string[] {
  return Object.entries(spec.paths ?? {})
    .filter(([p]) => p.startsWith('/v1/'))
    .flatMap(([p, item]) => Object.keys(item).filter((m) => HTTP_METHODS.includes(m)).map((m) => `${m.toUpperCase()} ${p}`))
    .sort();
}

/** GET /openapi.json, checked to be JSON. */
async function fetchSpec(api: TestApi): Promise<any> {
  const res = await api.app.request('/openapi.json');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  return res.json();
}

describe('GET /openapi.json', () => {
  test('is a valid OpenAPI 3.1 document with the bearer security scheme', async () => {
    const spec = await fetchSpec(createTestApi(idle));
    expect(spec.openapi).toBe('3.1.0');
    expect(spec.info).toMatchObject({ title: 'Leasehold', version: expect.any(String) });
    expect(spec.components?.securitySchemes?.bearer).toEqual({ type: 'http', scheme: 'bearer', description: expect.stringContaining("`admin` is the operators' scope") });
    // Whoever reads the document learns that admin acts on every tenant, and which routes need it.
    for (const [path, methods] of Object.entries(spec.paths ?? {})) {
      if (!path.startsWith('/v1/admin/')) continue;
      for (const op of Object.values(methods as Record<string, { description?: string }>)) expect(op.description, path).toMatch(/^Operators only/);
    }
    const { valid, errors } = await validate(spec);
    expect(errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  test('documents every route the app serves under /v1, and nothing it does not serve', async () => {
    const api = createTestApi(idle);
    expect(specOperations(await fetchSpec(api))).toEqual(appOperations(api));
  });

  test('every /v1 operation requires the bearer scheme, as the authenticate middleware does', async () => {
    const spec = await fetchSpec(createTestApi(idle));
    const unsecured = Object.entries(spec.paths ?? {})
      .filter(([p]) => p.startsWith('/v1/'))
      .flatMap(([p, item]) =>
        Object.entries(item as Record<string, { security?: unknown[] }>)
          .filter(([m, op]) => HTTP_METHODS.includes(m) && !JSON.stringify(op.security ?? spec.security ?? []).includes('{"bearer":[]}'))
          .map(([m]) => `${m.toUpperCase()} ${p}`),
      );
    expect(unsecured).toEqual([]);
  });

  test('the comparison notices a route registered without a spec (so the check above cannot pass vacuously)', async () => {
    const api = createTestApi(idle);
    api.app.openapi(
      createRoute({
        method: 'get',
        path: '/v1/documented/{id}',
        request: { params: z.object({ id: z.string() }) },
        responses: { 200: { description: 'ok', content: { 'application/json': { schema: z.object({ id: z.string() }) } } } },
      }),
      (c) => c.json({ id: c.req.valid('param').id }, 200),
    );
    api.app.delete('/v1/undocumented/:id', (c) => c.body(null, 204));
    const spec = await fetchSpec(api);
    expect(specOperations(spec)).toContain('GET /v1/documented/{id}');
    expect(appOperations(api)).toEqual(expect.arrayContaining(['GET /v1/documented/{id}', 'DELETE /v1/undocumented/{id}']));
    expect(appOperations(api).filter((op) => !specOperations(spec).includes(op))).toEqual(['DELETE /v1/undocumented/{id}']);
  });
});

describe('GET /docs', () => {
  const STANDALONE = path.join(
    path.dirname(createRequire(import.meta.url).resolve('@scalar/api-reference')),
    'browser/standalone.js',
  );

  test('serves the API reference page over /openapi.json, loading nothing from another origin', async () => {
    const res = await createTestApi(idle).app.request('/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toContain('<script src="/docs/scalar.js"></script>');
    expect(html).toMatch(/"url": "\/openapi.json"/);
    expect(html).toMatch(/"withDefaultFonts": false/);
    expect(html).not.toMatch(/https?:\/\//);
  });

  test('streams the Scalar bundle from node_modules with an ETag that answers 304', async () => {
    const api = createTestApi(idle);
    const res = await api.app.request('/docs/scalar.js');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const body = Buffer.from(await res.arrayBuffer());
    const file = readFileSync(STANDALONE);
    expect(res.headers.get('content-length')).toBe(String(file.length));
    expect(createHash('sha256').update(body).digest('hex')).toBe(createHash('sha256').update(file).digest('hex'));
    const etag = res.headers.get('etag')!;
    expect(etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    const again = await api.app.request('/docs/scalar.js', { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
  });

  test('over a real listening server, the page and the whole bundle arrive', async () => {
    const server = serve({ fetch: createTestApi(idle).app.fetch, port: 0, hostname: '127.0.0.1' });
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const page = await fetch(`${base}/docs`);
      expect(page.status).toBe(200);
      const src = /<script src="([^"]+)"><\/script>/.exec(await page.text())![1]!;
      const script = await fetch(new URL(src, base));
      expect(script.status).toBe(200);
      expect((await script.arrayBuffer()).byteLength).toBe(readFileSync(STANDALONE).length);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('GET /problems/:code', () => {
  test("a problem type's page describes it; an unknown one is a 404 problem like every other error", async () => {
    const api = createTestApi(idle);
    const known = await api.app.request('/problems/not_found');
    expect(known.status).toBe(200);
    expect(await known.json()).toMatchObject({ type: '/problems/not_found', code: 'not_found', status: 404 });
    const unknown = await api.app.request('/problems/no_such_thing');
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await unknown.json()).toMatchObject({ type: '/problems/not_found', status: 404, detail: 'no problem type no_such_thing' });
  });
});
