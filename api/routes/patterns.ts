import { OpenAPIHono, createRoute, z, type RouteConfig } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { AppError, type FieldError } from '#shared/errors.js';
import {
  MAX_PATTERN_CONTENT_BYTES,
  MAX_PATTERN_VERSIONS,
  MAX_PATTERNS_PER_TENANT,
  PATTERN_FORMATS,
  createPattern,
  deletePattern,
  getPattern,
  listPatternVersions,
  listPatterns,
  rollbackPattern,
  updatePattern,
  type Pattern,
  type PatternContent,
  type PatternVersion,
} from '#shared/patterns/patterns.js';
import { checkStrictSchema, normalizeSchema } from '#shared/patterns/strict-schema.js';
import type { AppDeps, ApiEnv } from '../context.js';
import { requireScope } from '../middleware/authenticate.js';
import { problemResponses } from '../openapi-problems.js';

// A schema with thousands of problems, or huge property names, would make the answer far larger
// than the request: list at most this many problems, paths cut to this length, this much text.
const MAX_LISTED_PROBLEMS = 1_000;
const MAX_PATH_CHARS = 1_000;
const MAX_LISTED_CHARS = 100_000;
const KIB = MAX_PATTERN_CONTENT_BYTES / 1024;

// PostgreSQL text cannot hold U+0000 (SQLSTATE 22021): refuse it here rather than fail the insert.
const text = (min: number, max: number) => z.string().min(min).max(max).regex(/^[^\u0000]*$/, 'must not contain NUL (\\u0000) characters');
const fields = {
  name: text(1, 200).openapi({ example: 'Invoice' }),
  instructions: text(0, 20_000).openapi({ description: 'What the vision model is told to extract.' }),
  json_schema: z.record(z.string(), z.unknown()).openapi({
    description:
      'A JSON Schema that OpenAI Structured Outputs accepts in strict mode (see `?normalize=true`). ' +
      `Its JSON and the instructions may take ${KIB} KiB of UTF-8 together.`,
  }),
  format: z.enum(PATTERN_FORMATS).openapi({ description: 'How manifests are served.' }),
  model: text(1, 200).nullable().openapi({ description: 'The vision model; null means the server default (OPENAI_MODEL).' }),
  is_active: z.boolean().openapi({ description: 'Whether new work may use this pattern.' }),
};
const CreateBody = z.strictObject({
  ...fields,
  format: fields.format.default('json'),
  model: fields.model.optional(),
  is_active: fields.is_active.default(true),
});
const UpdateBody = z
  .strictObject({
    name: fields.name.optional(),
    instructions: fields.instructions.optional(),
    json_schema: fields.json_schema.optional(),
    format: fields.format.optional(),
    model: fields.model.optional(),
    is_active: fields.is_active.optional(),
  })
  .refine((b) => Object.values(b).some((v) => v !== undefined), 'give at least one field to change');

const dateTime = z.string().openapi({ format: 'date-time' });
const PatternSchema = z
  .object({ id: z.uuid(), ...fields, version: z.number().int().openapi({ description: 'The current version.' }), created_at: dateTime, updated_at: dateTime })
  .openapi('Pattern');
const VersionSchema = z.object({ pattern_id: z.uuid(), version: z.number().int(), ...fields, created_at: dateTime }).openapi('PatternVersion');
const page = <T extends z.ZodType>(item: T) =>
  z.object({ data: z.array(item), next_cursor: z.string().nullable().openapi({ description: 'Pass as `cursor` for the next page.' }) });

const IdParams = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' }, format: 'uuid' }) });
const NormalizeQuery = z.strictObject({
  normalize: z.enum(['true', 'false']).optional().openapi({
    description: 'true: add `additionalProperties: false` and `required` where missing (optional properties become nullable) before checking.',
  }),
});
const pageQuery = <C extends z.ZodType<string, string>>(cursor: C) =>
  z.strictObject({
    limit: z.coerce.number().int().min(1).max(100).default(20).openapi({ type: 'integer', description: 'Page size, 1–100.' }),
    cursor: cursor.optional().openapi({ description: 'The `next_cursor` of the previous page.' }),
  });

const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const versionsFull = problemResponses({ 409: `conflict: the pattern already has ${MAX_PATTERN_VERSIONS} versions` });

/** Declares a patterns route: tagged, bearer-authenticated, scope-checked, problems documented. */
function route<R extends Omit<RouteConfig, 'security' | 'tags' | 'middleware'>>(write: boolean, r: R) {
  const bodyProblems = r.request?.body ? problemResponses({ 400: 'Malformed JSON', 413: 'Body too large', 415: 'Not application/json' }) : {};
  const responses = {
    ...problemResponses({
      404: 'No such pattern for this tenant (or it was deleted)',
      422: `validation_failed (json_schema and instructions past ${KIB} KiB together among them), or invalid_schema (every problem strict mode finds)`,
    }),
    ...bodyProblems,
    ...r.responses,
  };
  return createRoute({ ...r, responses, tags: ['patterns'], security: [{ bearer: [] }], middleware: requireScope(write ? 'jobs:write' : 'jobs:read') });
}

/** The schema to store: normalised when asked, then refused with every problem unless strict mode accepts it. */
function strictSchema(schema: Record<string, unknown>, normalize: boolean): Record<string, unknown> {
  const out = (normalize ? normalizeSchema(schema) : schema) as Record<string, unknown>;
  const found = checkStrictSchema(out);
  if (found.length === 0) return out;
  const errors: FieldError[] = [];
  let chars = 0;
  for (const p of found) {
    const full = `body.json_schema${p.path.slice(1)}`;
    const path = full.length > MAX_PATH_CHARS ? `${full.slice(0, MAX_PATH_CHARS)}…` : full;
    chars += path.length + p.message.length;
    if (errors.length === MAX_LISTED_PROBLEMS || chars > MAX_LISTED_CHARS) break;
    errors.push({ path, message: p.message });
  }
  const listed = found.length > errors.length ? `; the first ${errors.length} are listed` : '';
  throw new AppError('invalid_schema', `json_schema has ${found.length} problem(s) for strict Structured Outputs${listed}`, { errors });
}

const notFound = (id: string) => new AppError('not_found', `no pattern ${id}`);
const iso = (d: Date) => d.toISOString();
const asResource = (p: Pattern) => ({ ...p, created_at: iso(p.created_at), updated_at: iso(p.updated_at) });
const asVersion = (v: PatternVersion) => ({ ...v, created_at: iso(v.created_at) });

/** /v1 routes for patterns: instructions plus a strict JSON Schema, every change a new version. */
export function patternsRoutes({ sql }: AppDeps): OpenAPIHono<ApiEnv> {
  const app = new OpenAPIHono<ApiEnv>();
  const tenant = (c: Context<ApiEnv>) => c.get('principal').tenantId;

  const create = route(true, {
    method: 'post',
    path: '/patterns',
    summary: 'Create a pattern',
    description:
      'Creates a pattern and its version 1. The schema must be accepted by Structured Outputs in strict mode; `?normalize=true` fixes what can be fixed first. ' +
      `A tenant may have ${MAX_PATTERNS_PER_TENANT} patterns (deleted ones do not count).`,
    request: { query: NormalizeQuery, body: { required: true, content: { 'application/json': { schema: CreateBody } } } },
    responses: { 201: json(PatternSchema, 'The new pattern'), ...problemResponses({ 409: `conflict: the tenant already has ${MAX_PATTERNS_PER_TENANT} patterns` }) },
  });
  app.openapi(create, async (c) => {
    const body = c.req.valid('json');
    const content: PatternContent = { ...body, model: body.model ?? null, json_schema: strictSchema(body.json_schema, c.req.valid('query').normalize === 'true') };
    return c.json(asResource(await createPattern(sql, tenant(c), content)), 201);
  });

  const list = route(false, {
    method: 'get',
    path: '/patterns',
    summary: 'List patterns',
    description: "The caller's patterns, newest first, a page at a time; `next_cursor` is null on the last page.",
    request: { query: pageQuery(z.uuid()) },
    responses: { 200: json(page(PatternSchema), 'One page of patterns') },
  });
  app.openapi(list, async (c) => {
    const result = await listPatterns(sql, tenant(c), c.req.valid('query'));
    return c.json({ data: result.data.map(asResource), next_cursor: result.next_cursor }, 200);
  });

  const get = route(false, {
    method: 'get',
    path: '/patterns/{id}',
    summary: 'Get a pattern',
    description: 'The pattern with the content of its current version.',
    request: { params: IdParams },
    responses: { 200: json(PatternSchema, 'The pattern') },
  });
  app.openapi(get, async (c) => {
    const { id } = c.req.valid('param');
    const found = await getPattern(sql, tenant(c), id);
    if (!found) throw notFound(id);
    return c.json(asResource(found), 200);
  });

  const update = route(true, {
    method: 'patch',
    path: '/patterns/{id}',
    summary: 'Change a pattern',
    description:
      'Makes a new version with the given fields changed and the others copied; concurrent changes get consecutive versions. ' +
      `A pattern may have ${MAX_PATTERN_VERSIONS} versions; past that, create a new pattern.`,
    request: { params: IdParams, query: NormalizeQuery, body: { required: true, content: { 'application/json': { schema: UpdateBody } } } },
    responses: { 200: json(PatternSchema, 'The pattern at its new version'), ...versionsFull },
  });
  app.openapi(update, async (c) => {
    const { id } = c.req.valid('param');
    const patch: Partial<PatternContent> = { ...c.req.valid('json') };
    if (patch.json_schema) patch.json_schema = strictSchema(patch.json_schema, c.req.valid('query').normalize === 'true');
    const updated = await updatePattern(sql, tenant(c), id, patch);
    if (!updated) throw notFound(id);
    return c.json(asResource(updated), 200);
  });

  const remove = route(true, {
    method: 'delete',
    path: '/patterns/{id}',
    summary: 'Delete a pattern',
    description:
      'Soft-deletes the pattern: it is not found any more, and its versions stay for the jobs that ran with them. ' +
      'Retention deletes it with its versions once no job names it (docs/operators.md).',
    request: { params: IdParams },
    responses: { 204: { description: 'Deleted' } },
  });
  app.openapi(remove, async (c) => {
    const { id } = c.req.valid('param');
    if (!(await deletePattern(sql, tenant(c), id))) throw notFound(id);
    return c.body(null, 204);
  });

  const versions = route(false, {
    method: 'get',
    path: '/patterns/{id}/versions',
    summary: "List a pattern's versions",
    description: 'Every version, oldest first, a page at a time; versions never change once written.',
    request: { params: IdParams, query: pageQuery(z.string().regex(/^[0-9]{1,10}$/).refine((v) => Number(v) < 2 ** 31, 'must be a version number')) },
    responses: { 200: json(page(VersionSchema), 'One page of versions') },
  });
  app.openapi(versions, async (c) => {
    const { id } = c.req.valid('param');
    const { limit, cursor } = c.req.valid('query');
    const result = await listPatternVersions(sql, tenant(c), id, { limit, cursor: cursor === undefined ? undefined : Number(cursor) });
    if (!result) throw notFound(id);
    return c.json({ data: result.data.map(asVersion), next_cursor: result.next_cursor }, 200);
  });

  const rollback = route(true, {
    method: 'post',
    path: '/patterns/{id}/rollback',
    summary: 'Roll a pattern back',
    description: `Makes a new version whose content equals the given version's; history is never rewritten. A pattern may have ${MAX_PATTERN_VERSIONS} versions.`,
    request: {
      params: IdParams,
      body: { required: true, content: { 'application/json': { schema: z.strictObject({ version: z.number().int().min(1).max(2 ** 31 - 1) }) } } },
    },
    responses: { 200: json(PatternSchema, 'The pattern at its new version'), ...versionsFull },
  });
  app.openapi(rollback, async (c) => {
    const { id } = c.req.valid('param');
    const { version } = c.req.valid('json');
    const result = await rollbackPattern(sql, tenant(c), id, version);
    if (result === 'no_pattern') throw notFound(id);
    if (result === 'no_version') {
      throw new AppError('validation_failed', `pattern ${id} has no version ${version}`, { errors: [{ path: 'body.version', message: 'no such version' }] });
    }
    return c.json(asResource(result), 200);
  });

  return app;
}
