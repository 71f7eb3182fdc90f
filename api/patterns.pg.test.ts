import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runRetention } from '#shared/maintenance/retention.js';
import { MAX_PATTERN_CONTENT_BYTES, MAX_PATTERN_VERSIONS, MAX_PATTERNS_PER_TENANT } from '#shared/patterns/patterns.js';
import { anyOfChain } from '../test/helpers/schema-fixtures.js';
import { checkStrictSchema } from '#shared/patterns/strict-schema.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { daysAgo, uuidv7At } from '../test/helpers/uuid-at.js';

const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

const strictObject = (properties: Record<string, unknown>) => ({
  type: 'object',
  properties,
  required: Object.keys(properties),
  additionalProperties: false,
});
const SCHEMA = strictObject({
  vendor: { type: 'string' },
  total: { type: ['number', 'null'] },
  lines: { type: 'array', items: strictObject({ sku: { type: 'string' }, qty: { type: 'integer' } }) },
});
const NEW = { name: 'Invoice', instructions: 'Read the invoice.', json_schema: SCHEMA };

let db: TestDatabase;
let api: TestApi;
let a: string; // tenant A, jobs:read + jobs:write
let b: string; // tenant B, jobs:read + jobs:write
beforeAll(async () => {
  db = await createTestDatabase();
  // Rate limits have their own tests; here they would only make the concurrency test flaky.
  api = createTestApi(db.sql, { RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000' });
  a = (await api.tenant('pat-a')).key;
  b = (await api.tenant('pat-b')).key;
});
afterAll(() => db.drop());

type Json = Record<string, any>;
async function call(key: string | undefined, method: string, path: string, body?: unknown): Promise<{ status: number; body: Json; type: string | null }> {
  const res = await api.request(key, method, path, body);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {}, type: res.headers.get('content-type') };
}
async function create(key = a, body: Json = NEW): Promise<Json> {
  const res = await call(key, 'POST', '/v1/patterns', body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

describe('happy paths', () => {
  test('POST creates version 1 with defaults; GET returns it; both rows are in the database', async () => {
    const p = await create();
    expect(p).toEqual({
      id: expect.stringMatching(UUIDV7),
      ...NEW,
      format: 'json',
      model: null,
      is_active: true,
      version: 1,
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });
    expect((await call(a, 'GET', `/v1/patterns/${p.id}`)).body).toEqual(p);
    const rows = await db.sql`
      select v.version, v.name, v.format, json_typeof(v.json_schema) as schema_type, p.tenant_id = v.tenant_id as same_tenant
      from leasehold.pattern_versions v join leasehold.patterns p on p.id = v.pattern_id where v.pattern_id = ${p.id}`;
    expect(rows).toEqual([{ version: 1, name: 'Invoice', format: 'json', schema_type: 'object', same_tenant: true }]);
  });

  test('the schema keeps the key order it was written in (manifests follow it)', async () => {
    const json_schema = {
      type: 'object',
      properties: { zebra: { type: 'string' }, apple: { type: 'number' }, mango: { type: 'boolean' } },
      required: ['zebra', 'apple', 'mango'],
      additionalProperties: false,
    };
    const p = await create(a, { ...NEW, json_schema });
    const got = (await call(a, 'GET', `/v1/patterns/${p.id as string}`)).body as { json_schema: { properties: object } };
    expect(Object.keys(got.json_schema.properties)).toEqual(['zebra', 'apple', 'mango']);
    expect(Object.keys(got.json_schema)).toEqual(['type', 'properties', 'required', 'additionalProperties']);
  });

  test('PATCH makes a new version, copying the fields it does not change', async () => {
    const p = await create(a, { ...NEW, format: 'csv', model: 'gpt-4o-mini', is_active: false });
    const res = await call(a, 'PATCH', `/v1/patterns/${p.id}`, { name: 'Receipt', model: null });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: p.id, version: 2, name: 'Receipt', model: null, format: 'csv', is_active: false, instructions: NEW.instructions, json_schema: SCHEMA });
    expect(res.body.created_at).toBe(p.created_at);
  });

  test('DELETE is a soft delete: 204, then 404 on every route and gone from the list', async () => {
    const p = await create();
    expect((await call(a, 'DELETE', `/v1/patterns/${p.id}`)).status).toBe(204);
    for (const [method, path, body] of routesOf(p.id)) {
      const res = await call(a, method, path, body);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body.code).toBe('not_found');
    }
    expect((await listAll(a)).map((x) => x.id)).not.toContain(p.id);
    const [row] = await db.sql`select deleted_at from leasehold.patterns where id = ${p.id}`;
    expect(row!.deleted_at).toBeInstanceOf(Date);
  });

  test('GET /patterns pages newest first by cursor; a pattern made mid-way does not shift later pages', async () => {
    const { key } = await api.tenant('pat-list');
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.push((await create(key, { ...NEW, name: `p${i}` })).id);
    const first = await call(key, 'GET', '/v1/patterns?limit=2');
    expect(first.body.data.map((p: Json) => p.id)).toEqual([made[4], made[3]]);
    await create(key, { ...NEW, name: 'late' });
    const second = await call(key, 'GET', `/v1/patterns?limit=2&cursor=${first.body.next_cursor}`);
    expect(second.body.data.map((p: Json) => p.id)).toEqual([made[2], made[1]]);
    const third = await call(key, 'GET', `/v1/patterns?limit=2&cursor=${second.body.next_cursor}`);
    expect(third.body).toEqual({ data: [expect.objectContaining({ id: made[0], name: 'p0' })], next_cursor: null });
    expect((await call(key, 'GET', '/v1/patterns')).body.data).toHaveLength(6);
  });

  test('bad list parameters are 422s naming the query field', async () => {
    for (const q of ['limit=0', 'limit=101', 'limit=x', 'cursor=nope']) {
      const res = await call(a, 'GET', `/v1/patterns?${q}`);
      expect(res.status, q).toBe(422);
      expect(res.body.errors[0].path).toBe(`query.${q.split('=')[0]}`);
    }
  });
});

describe('version history', () => {
  test('PATCH twice gives versions 1..3; rollback to 1 makes version 4 equal to 1', async () => {
    const p = await create();
    await call(a, 'PATCH', `/v1/patterns/${p.id}`, { instructions: 'second' });
    await call(a, 'PATCH', `/v1/patterns/${p.id}`, { format: 'yaml', is_active: false });
    const rolled = await call(a, 'POST', `/v1/patterns/${p.id}/rollback`, { version: 1 });
    expect(rolled.status).toBe(200);
    expect(rolled.body).toMatchObject({ id: p.id, version: 4, instructions: NEW.instructions, format: 'json', is_active: true });
    const versions = await call(a, 'GET', `/v1/patterns/${p.id}/versions`);
    expect(versions.status).toBe(200);
    expect(versions.body.next_cursor).toBeNull();
    const data: Json[] = versions.body.data;
    expect(data.map((v) => v.version)).toEqual([1, 2, 3, 4]);
    expect(data.map((v) => [v.instructions, v.format, v.is_active])).toEqual([
      [NEW.instructions, 'json', true],
      ['second', 'json', true],
      ['second', 'yaml', false],
      [NEW.instructions, 'json', true],
    ]);
    const content = ({ pattern_id, version, created_at, ...rest }: Json) => rest;
    expect(content(data[3]!)).toEqual(content(data[0]!));
    expect(data[0]).toMatchObject({ pattern_id: p.id, created_at: expect.stringMatching(ISO) });
    const page = await call(a, 'GET', `/v1/patterns/${p.id}/versions?limit=3`);
    expect([page.body.data.length, page.body.next_cursor]).toEqual([3, '3']);
    const rest = await call(a, 'GET', `/v1/patterns/${p.id}/versions?limit=3&cursor=3`);
    expect(rest.body).toMatchObject({ data: [{ version: 4 }], next_cursor: null });
  });

  test('rollback to a version that does not exist is a 422 on body.version', async () => {
    const p = await create();
    const res = await call(a, 'POST', `/v1/patterns/${p.id}/rollback`, { version: 7 });
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({ code: 'validation_failed', errors: [{ path: 'body.version' }] });
  });

  test('10 concurrent PATCHes make versions 2..11, no gaps, no duplicates', async () => {
    const p = await create();
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => call(a, 'PATCH', `/v1/patterns/${p.id}`, { instructions: `edit ${i}` })),
    );
    expect(results.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(results.map((r) => r.body.version).sort((x, y) => x - y)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const rows = await db.sql<{ version: number }[]>`select version from leasehold.pattern_versions where pattern_id = ${p.id} order by version`;
    expect(rows.map((r) => r.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect((await call(a, 'GET', `/v1/patterns/${p.id}`)).body.version).toBe(11);
  });
});

function routesOf(id: string): [string, string, unknown?][] {
  return [
    ['GET', `/v1/patterns/${id}`],
    ['PATCH', `/v1/patterns/${id}`, { name: 'stolen' }],
    ['DELETE', `/v1/patterns/${id}`],
    ['GET', `/v1/patterns/${id}/versions`],
    ['POST', `/v1/patterns/${id}/rollback`, { version: 1 }],
  ];
}
async function listAll(key: string): Promise<Json[]> {
  return (await call(key, 'GET', '/v1/patterns?limit=100')).body.data;
}

describe('schemas strict mode would refuse', () => {
  let deep: Json = strictObject({ leaf: { type: 'string' } });
  for (let i = 0; i < 10; i++) deep = strictObject({ child: deep });
  const many = (n: number) => strictObject(Object.fromEntries(Array.from({ length: n }, (_, i) => [`p${i}`, { type: 'string' }])));
  const cases: [string, unknown, string[]][] = [
    ['a root that is not an object', { type: 'array', items: { type: 'string' } }, ['body.json_schema']],
    ['anyOf at the root', { anyOf: [SCHEMA] }, ['body.json_schema', 'body.json_schema.anyOf']],
    ['an object without additionalProperties: false', strictObject({ x: { type: 'object', properties: {}, required: [] } }), ['body.json_schema.properties.x']],
    ['additionalProperties: true', strictObject({ x: { ...strictObject({}), additionalProperties: true } }), ['body.json_schema.properties.x.additionalProperties']],
    [
      'a property missing from required',
      strictObject({ items: { type: 'array', items: { ...strictObject({ sku: { type: 'string' } }), required: [] } } }),
      ['body.json_schema.properties.items.items.properties.sku'],
    ],
    ['allOf', strictObject({ x: { type: 'string', allOf: [{ pattern: '^a' }] } }), ['body.json_schema.properties.x.allOf']],
    ['not', strictObject({ x: { type: 'string', not: { const: 'a' } } }), ['body.json_schema.properties.x.not']],
    ['if/then/else', strictObject({ x: { type: 'string', if: {}, then: {}, else: {} } }), ['if', 'then', 'else'].map((k) => `body.json_schema.properties.x.${k}`)],
    ['oneOf', strictObject({ x: { oneOf: [{ type: 'string' }] } }), ['body.json_schema.properties.x.oneOf', 'body.json_schema.properties.x']],
    ['patternProperties', { ...strictObject({}), patternProperties: {} }, ['body.json_schema.patternProperties']],
    ['an unsupported format', strictObject({ x: { type: 'string', format: 'uri' } }), ['body.json_schema.properties.x.format']],
    ['11 levels of objects', deep, [`body.json_schema${'.properties.child'.repeat(10)}`]],
    ['5,001 properties', many(5001), ['body.json_schema']],
    ['1,001 enum values', strictObject({ e: { type: 'integer', enum: [...Array(1001).keys()] } }), ['body.json_schema']],
    ['120,001 characters of names and values', strictObject({ ['n'.repeat(60_000)]: { const: 'v'.repeat(60_001) } }), ['body.json_schema']],
  ];
  test.each(cases)('%s → 422 invalid_schema at the right paths', async (_, json_schema, expected) => {
    const res = await call(a, 'POST', '/v1/patterns', { ...NEW, json_schema });
    expect(res.status).toBe(422);
    expect(res.type).toBe('application/problem+json');
    expect(res.body).toMatchObject({ code: 'invalid_schema', type: '/problems/invalid_schema', status: 422 });
    expect(res.body.errors.map((e: Json) => e.path)).toEqual(expected);
    for (const e of res.body.errors) expect(e.message).toEqual(expect.any(String));
  });

  test('PATCH checks a new schema the same way and keeps the old version', async () => {
    const p = await create();
    const res = await call(a, 'PATCH', `/v1/patterns/${p.id}`, { json_schema: { type: 'object', properties: {} } });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([{ path: 'body.json_schema', message: 'objects must set additionalProperties: false' }]);
    expect((await call(a, 'GET', `/v1/patterns/${p.id}`)).body.version).toBe(1);
  });
});

describe('?normalize=true', () => {
  const loose = {
    type: 'object',
    properties: { vendor: { type: 'string' }, total: { type: 'number' }, address: { type: 'object', properties: { city: { type: 'string' } } } },
    required: ['vendor'],
  };

  test('POST stores a strict schema; optional properties become nullable; without it the schema is refused', async () => {
    expect((await call(a, 'POST', '/v1/patterns', { ...NEW, json_schema: loose })).status).toBe(422);
    const res = await call(a, 'POST', '/v1/patterns?normalize=true', { ...NEW, json_schema: loose });
    expect(res.status).toBe(201);
    const [row] = await db.sql<{ json_schema: Json }[]>`select json_schema from leasehold.pattern_versions where pattern_id = ${res.body.id}`;
    expect(checkStrictSchema(row!.json_schema)).toEqual([]);
    expect(row!.json_schema).toEqual(res.body.json_schema);
    expect(row!.json_schema.required).toEqual(['vendor', 'total', 'address']);
    expect(row!.json_schema.properties.total).toEqual({ type: ['number', 'null'] });
  });

  test('PATCH normalises too', async () => {
    const p = await create();
    const res = await call(a, 'PATCH', `/v1/patterns/${p.id}?normalize=true`, { json_schema: loose });
    expect(res.status).toBe(200);
    expect(checkStrictSchema(res.body.json_schema)).toEqual([]);
  });

  test('what it cannot fix is still refused, with its path', async () => {
    const res = await call(a, 'POST', '/v1/patterns?normalize=true', { ...NEW, json_schema: { type: 'object', properties: { x: { type: 'string', minLength: 1 } } } });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([{ path: 'body.json_schema.properties.x.minLength', message: expect.any(String) }]);
  });
});

describe('strict input', () => {
  test('unknown fields anywhere are 422 validation_failed, each at its own path', async () => {
    const p = await create();
    const cases: [string, string, unknown, string[]][] = [
      ['POST', '/v1/patterns', { ...NEW, colour: 'red', size: 1 }, ['body.colour', 'body.size']],
      ['PATCH', `/v1/patterns/${p.id}`, { name: 'x', colour: 'red' }, ['body.colour']],
      ['POST', `/v1/patterns/${p.id}/rollback`, { version: 1, force: true }, ['body.force']],
      ['GET', '/v1/patterns?colour=red', undefined, ['query.colour']],
      ['POST', '/v1/patterns?normalise=true', NEW, ['query.normalise']],
    ];
    for (const [method, path, body, expected] of cases) {
      const res = await call(a, method, path, body);
      expect(res.status, `${method} ${path}`).toBe(422);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.errors).toEqual(expected.map((p) => ({ path: p, message: 'unknown field' })));
    }
  });

  test('wrong types and sizes list every path', async () => {
    const res = await call(a, 'POST', '/v1/patterns', { name: '', instructions: 'x'.repeat(20_001), json_schema: [], format: 'pdf', is_active: 'yes' });
    expect(res.status).toBe(422);
    expect(res.body.errors.map((e: Json) => e.path).sort()).toEqual(['body.format', 'body.instructions', 'body.is_active', 'body.json_schema', 'body.name']);
    const empty = await call(a, 'PATCH', `/v1/patterns/${(await create()).id}`, {});
    expect([empty.status, empty.body.code]).toEqual([422, 'validation_failed']);
  });
});

describe('hostile input never reaches PostgreSQL half-checked', () => {
  test('NUL characters are 422s at their paths, not database errors', async () => {
    const res = await call(a, 'POST', '/v1/patterns', { ...NEW, name: 'a\u0000b' });
    expect([res.status, res.body.errors]).toEqual([422, [{ path: 'body.name', message: expect.stringContaining('NUL') }]]);
    const schema = strictObject({ x: { type: 'string', description: 'nul\u0000here' } });
    const bad = await call(a, 'POST', '/v1/patterns', { ...NEW, json_schema: schema });
    // Refused at the edge with every other body (refuseUnstorableText), before the schema checks.
    expect([bad.status, bad.body.code, bad.body.errors[0].path]).toEqual([422, 'validation_failed', 'body.json_schema.properties.x.description']);
  });

  test('a 24-deep anyOf chain (2^25 nodes once its $refs are expanded) is a 422 naming the rule, at once', async () => {
    const start = Date.now();
    const res = await call(a, 'POST', '/v1/patterns', { ...NEW, json_schema: anyOfChain(24) });
    expect([res.status, res.type, res.body.code]).toEqual([422, 'application/problem+json', 'invalid_schema']);
    expect(res.body.errors).toEqual([{ path: 'body.json_schema', message: expect.stringMatching(/^at most 50000 schema nodes once \$refs are expanded/) }]);
    const deep = await call(a, 'POST', '/v1/patterns', { ...NEW, json_schema: anyOfChain(40) });
    expect([deep.status, deep.body.errors[0].message]).toEqual([422, 'schemas nest more than 64 levels counting through $refs']);
    expect(Date.now() - start).toBeLessThan(3_000);
  });

  test('patterns: lookarounds, backreferences and repeats past 1,000 are 422s at their paths', async () => {
    const json_schema = strictObject({
      a: { type: 'string', pattern: '^(x{100000}){100000}$' },
      b: { type: 'string', pattern: '(?:a{40})?(a|a)*(?!)' },
      c: { type: 'string', pattern: '^(\\w)\\1$' },
      d: { type: 'string', pattern: '^[A-Z]{3}-\\d{4}$' },
    });
    const res = await call(a, 'POST', '/v1/patterns', { ...NEW, json_schema });
    expect([res.status, res.body.code]).toEqual([422, 'invalid_schema']);
    expect(res.body.errors).toEqual([
      { path: 'body.json_schema.properties.a.pattern', message: '{100000} repeats more than 1000 times' },
      { path: 'body.json_schema.properties.b.pattern', message: 'lookarounds ((?=, (?!, (?<=, (?<!) are not supported' },
      { path: 'body.json_schema.properties.c.pattern', message: 'backreferences (\\1, \\k<name>) are not supported' },
    ]);
  });

  test('a schema with thousands of problems under a huge name answers with a bounded list', async () => {
    const props = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`p${i}`, { type: 'string' }]));
    const json_schema = strictObject({ ['k'.repeat(200_000)]: { type: 'object', properties: props } });
    const res = await api.request(a, 'POST', '/v1/patterns', { ...NEW, json_schema });
    const text = await res.text();
    expect(res.status).toBe(422);
    expect(text.length).toBeLessThan(200_000);
    expect(JSON.parse(text).detail).toMatch(/^json_schema has 3002 problem\(s\).*the first \d+ are listed$/);
  });

  test('a version cursor past the integer range and a malformed body are 4xx problems', async () => {
    const p = await create();
    expect((await call(a, 'GET', `/v1/patterns/${p.id}/versions?cursor=9999999999`)).status).toBe(422);
    const res = await call(a, 'POST', '/v1/patterns', '{"name":');
    expect([res.status, res.type]).toEqual([400, 'application/problem+json']);
  });
});

describe('limits', () => {
  /** `n` live patterns of the tenant straight in SQL, each with its version 1. */
  const bulkPatterns = (tenantId: string, n: number) => db.sql`
    with p as (insert into leasehold.patterns (id, tenant_id) select gen_random_uuid(), ${tenantId} from generate_series(1, ${n}) returning id)
    insert into leasehold.pattern_versions (pattern_id, version, tenant_id, name, instructions, json_schema, format, is_active)
    select id, 1, ${tenantId}, 'bulk', '', '{}', 'json', true from p`;
  const live = async (tenantId: string) =>
    (await db.sql<{ n: number }[]>`select count(*)::int as n from leasehold.patterns where tenant_id = ${tenantId} and deleted_at is null`)[0]!.n;

  test(`a tenant may have ${MAX_PATTERNS_PER_TENANT} live patterns: concurrent creates past that are 409s; a deleted one frees its place`, async () => {
    const { tenantId, key } = await api.tenant('pat-cap');
    await bulkPatterns(tenantId, MAX_PATTERNS_PER_TENANT - 5);
    const results = await Promise.all(Array.from({ length: 10 }, () => call(key, 'POST', '/v1/patterns', NEW)));
    expect(results.map((r) => r.status).sort()).toEqual([...Array(5).fill(201), ...Array(5).fill(409)]);
    const refused = results.find((r) => r.status === 409)!;
    expect([refused.type, refused.body.code]).toEqual(['application/problem+json', 'conflict']);
    expect(refused.body.detail).toBe(`a tenant may have at most ${MAX_PATTERNS_PER_TENANT} patterns; delete one first`);
    expect(await live(tenantId)).toBe(MAX_PATTERNS_PER_TENANT);
    // Another tenant is not held back.
    await create((await api.tenant('pat-cap-other')).key);
    const made = results.find((r) => r.status === 201)!.body;
    expect((await call(key, 'DELETE', `/v1/patterns/${made.id}`)).status).toBe(204);
    await create(key);
    expect((await call(key, 'POST', '/v1/patterns', NEW)).status).toBe(409);
  });

  test(`a pattern may have ${MAX_PATTERN_VERSIONS} versions: a PATCH or rollback past that is a 409 and writes nothing`, async () => {
    const p = await create();
    await db.sql`
      insert into leasehold.pattern_versions (pattern_id, version, tenant_id, name, instructions, json_schema, format, is_active)
      select p.id, v, p.tenant_id, 'old', '', '{}', 'json', true
      from leasehold.patterns p, generate_series(2, ${MAX_PATTERN_VERSIONS - 1}) v where p.id = ${p.id}`;
    await db.sql`update leasehold.patterns set current_version = ${MAX_PATTERN_VERSIONS - 1} where id = ${p.id}`;
    const last = await call(a, 'PATCH', `/v1/patterns/${p.id}`, { name: 'last' });
    expect([last.status, last.body.version]).toEqual([200, MAX_PATTERN_VERSIONS]);
    const detail = `pattern ${p.id} has ${MAX_PATTERN_VERSIONS} versions, the most a pattern may have; create a new pattern for further changes`;
    for (const [method, path, body] of [['PATCH', `/v1/patterns/${p.id}`, { name: 'one more' }], ['POST', `/v1/patterns/${p.id}/rollback`, { version: 1 }]] as const) {
      const res = await call(a, method, path, body);
      expect([res.status, res.type, res.body.code, res.body.detail], `${method} ${path}`).toEqual([409, 'application/problem+json', 'conflict', detail]);
    }
    expect((await call(a, 'GET', `/v1/patterns/${p.id}`)).body).toMatchObject({ version: MAX_PATTERN_VERSIONS, name: 'last' });
    const [n] = await db.sql<{ n: number }[]>`select count(*)::int as n from leasehold.pattern_versions where pattern_id = ${p.id}`;
    expect(n!.n).toBe(MAX_PATTERN_VERSIONS);
  });

  test('json_schema and instructions may take 256 KiB of UTF-8 together, counted in bytes, on create and on change', async () => {
    expect(MAX_PATTERN_CONTENT_BYTES).toBe(262_144);
    // Descriptions are free text to strict mode: only the byte cap bounds them. 'é' is two bytes.
    const described = (chars: number) => strictObject({ x: { type: 'string', description: 'é'.repeat(chars) } });
    const over = await call(a, 'POST', '/v1/patterns', { ...NEW, json_schema: described(131_072) });
    expect([over.status, over.type, over.body.code]).toEqual([422, 'application/problem+json', 'validation_failed']);
    expect(over.body.errors).toEqual([{ path: 'body', message: expect.stringMatching(/^json_schema and instructions take 26\d{4} bytes together; at most 262144 \(256 KiB\)$/) }]);
    const p = await create(a, { ...NEW, json_schema: described(120_000) });
    // The change is checked on the version it would make: 240 kB of schema plus 40 kB of instructions.
    const patched = await call(a, 'PATCH', `/v1/patterns/${p.id}`, { instructions: 'ü'.repeat(20_000) });
    expect([patched.status, patched.body.code, patched.body.errors[0].path]).toEqual([422, 'validation_failed', 'body']);
    expect((await call(a, 'GET', `/v1/patterns/${p.id}`)).body.version).toBe(1);
    expect((await call(a, 'PATCH', `/v1/patterns/${p.id}`, { instructions: 'ü'.repeat(5_000) })).status).toBe(200);
  });

  test("retention deletes a deleted pattern with its versions once no job or schedule names it; until then its jobs' csv manifests still render", async () => {
    const { tenantId, key } = await api.tenant('pat-retention');
    const policy = { jobsDays: 14, deadLettersDays: 90 };
    const deleted = async (body: Json = NEW, hoursAgo = 2) => {
      const p = await create(key, body);
      expect((await call(key, 'DELETE', `/v1/patterns/${p.id}`)).status).toBe(204);
      await db.sql`update leasehold.patterns set deleted_at = now() - make_interval(hours => ${hoursAgo}) where id = ${p.id}`;
      return p.id as string;
    };
    const versionsOf = async (id: string) =>
      (await db.sql<{ n: number }[]>`select count(*)::int as n from leasehold.pattern_versions where pattern_id = ${id}`)[0]!.n;
    // Named by a job that finished an hour ago, made 20 days ago: it has two versions.
    const withJob = await create(key, { ...NEW, format: 'csv' });
    await call(key, 'PATCH', `/v1/patterns/${withJob.id}`, { name: 'Invoice v2' });
    const jobId = uuidv7At(daysAgo(20));
    const manifest = { vendor: 'ACME', total: 12.5, lines: [{ sku: 'A-1', qty: 2 }] };
    await db.sql`
      insert into leasehold.jobs (id, tenant_id, kind, status, payload, attempts, pattern_id, pattern_version, result, created_at, run_at, started_at, finished_at)
      values (${jobId}, ${tenantId}, 'manifest.extract', 'succeeded', '{}', 1, ${withJob.id}, 1, ${db.sql.json({ manifest })},
              ${daysAgo(20)}, ${daysAgo(20)}, now() - interval '1 hour', now() - interval '1 hour')`;
    expect((await call(key, 'DELETE', `/v1/patterns/${withJob.id}`)).status).toBe(204);
    await db.sql`update leasehold.patterns set deleted_at = now() - interval '2 hours' where id = ${withJob.id}`;
    const unnamed = await deleted();
    const justNow = await deleted(NEW, 0);
    const scheduled = await deleted();
    await db.sql`
      insert into leasehold.schedules (name, cron, kind, payload, tenant_id)
      values ('nightly', '0 3 * * *', 'manifest.extract', ${db.sql.json({ pattern_id: scheduled, pattern_version: 1, image: { url: 'https://example.com/a.jpg' } })}, ${tenantId})`;

    const first = await runRetention(db.sql, policy);
    expect(first).toMatchObject({ patterns: 1, patternVersions: 1 });
    expect(await versionsOf(unnamed)).toBe(0);
    expect((await db.sql`select 1 from leasehold.patterns where id = ${unnamed}`).length).toBe(0);
    for (const id of [justNow, scheduled]) expect(await versionsOf(id), id).toBe(1);
    expect(await versionsOf(withJob.id)).toBe(2);
    const csv = await api.request(key, 'GET', `/v1/jobs/${jobId}/manifest?format=csv`);
    expect(csv.status).toBe(200);
    expect((await csv.text()).split('\r\n')[0]).toBe('vendor,total,lines.sku,lines.qty');

    // Once the job is past retention, the pattern goes in the same pass.
    await db.sql`update leasehold.jobs set finished_at = ${daysAgo(15)} where id = ${jobId}`;
    const second = await runRetention(db.sql, policy);
    expect(second).toMatchObject({ jobs: 1, patterns: 1, patternVersions: 2 });
    expect(await versionsOf(withJob.id)).toBe(0);
    for (const id of [justNow, scheduled]) expect(await versionsOf(id), id).toBe(1);
  });
});

describe('tenants, scopes and auth', () => {
  test("another tenant's pattern is 404 on every route, unchanged, and absent from its list", async () => {
    const p = await create(a);
    for (const [method, path, body] of [...routesOf(p.id), ...routesOf('not-a-uuid')]) {
      const res = await call(b, method, path, body);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body.code).toBe('not_found');
    }
    expect((await call(a, 'GET', `/v1/patterns/${p.id}`)).body).toEqual(p);
    const mine = await create(b);
    expect((await listAll(b)).map((x) => x.id)).toEqual([mine.id]);
    expect((await listAll(a)).map((x) => x.id)).not.toContain(mine.id);
  });

  test('a jobs:read key reads but cannot write (403); a jobs:write key cannot read', async () => {
    const p = await create(a);
    const { key: reader } = await api.tenant('pat-a', ['jobs:read']);
    const { key: writer } = await api.tenant('pat-a', ['jobs:write']);
    expect((await call(reader, 'GET', `/v1/patterns/${p.id}`)).status).toBe(200);
    expect((await call(reader, 'GET', `/v1/patterns/${p.id}/versions`)).status).toBe(200);
    for (const [method, path, body] of [['POST', '/v1/patterns', NEW], ...routesOf(p.id).filter(([m]) => m !== 'GET')] as const) {
      const res = await call(reader, method, path, body);
      expect(res.status, `${method} ${path}`).toBe(403);
      expect([res.type, res.body.code]).toEqual(['application/problem+json', 'forbidden']);
    }
    expect((await call(writer, 'GET', '/v1/patterns')).status).toBe(403);
    expect((await call(writer, 'PATCH', `/v1/patterns/${p.id}`, { name: 'w' })).status).toBe(200);
    const admin = (await api.tenant('pat-a', ['admin'])).key;
    expect((await call(admin, 'GET', `/v1/patterns/${p.id}`)).body.name).toBe('w');
  });

  test('missing or invalid credentials are 401 problems on every route', async () => {
    const p = await create(a);
    for (const key of [undefined, 'lh_0123456789_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'garbage']) {
      for (const [method, path, body] of [['POST', '/v1/patterns', NEW], ['GET', '/v1/patterns'], ...routesOf(p.id)] as const) {
        const res = await call(key, method, path, body);
        expect(res.status, `${key} ${method} ${path}`).toBe(401);
        expect([res.type, res.body.code]).toEqual(['application/problem+json', 'unauthorized']);
      }
    }
  });
});

test('/openapi.json documents every route with a summary, the bearer scheme and the schemas', async () => {
  const doc = (await call(undefined, 'GET', '/openapi.json')).body;
  const ops = [
    ['/v1/patterns', 'post'], ['/v1/patterns', 'get'], ['/v1/patterns/{id}', 'get'], ['/v1/patterns/{id}', 'patch'],
    ['/v1/patterns/{id}', 'delete'], ['/v1/patterns/{id}/versions', 'get'], ['/v1/patterns/{id}/rollback', 'post'],
  ] as const;
  for (const [path, method] of ops) {
    const op = doc.paths[path]?.[method];
    expect(op, `${method} ${path}`).toMatchObject({ summary: expect.any(String), description: expect.any(String), security: [{ bearer: [] }] });
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['401', '403', '404', '422']));
  }
  expect(doc.components.schemas.Pattern.properties).toHaveProperty('json_schema');
  expect(doc.paths['/v1/patterns'].post.requestBody.content['application/json'].schema.additionalProperties).toBe(false);
});
