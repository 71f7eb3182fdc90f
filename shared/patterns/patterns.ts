import type { Sql, Tx } from '../db/connect.js';
import { AppError } from '../errors.js';
import { isUuid, uuidv7 } from '../jobs/uuid.js';
import { lockTenantForCap } from '../auth/tenants.js';

/**
 * Live (not deleted) patterns one tenant may have: a live pattern keeps every version it made, so
 * without a bound one tenant could grow the tables forever.
 */
export const MAX_PATTERNS_PER_TENANT = 1_000;
/** Versions one pattern may have: every change writes one, and versions are kept as long as the pattern. */
export const MAX_PATTERN_VERSIONS = 1_000;
/**
 * Bytes of UTF-8 a version's json_schema (as stored JSON text) and instructions may take together.
 * Without it only the 1 MiB body limit bounds a version, and a schema's descriptions are free text.
 */
export const MAX_PATTERN_CONTENT_BYTES = 256 * 1024;

/** The output formats a pattern's manifest can be served in. */
export const PATTERN_FORMATS = ['json', 'yaml', 'xml', 'csv', 'text'] as const;
/** One of PATTERN_FORMATS. */
export type PatternFormat = (typeof PATTERN_FORMATS)[number];

/** What every version of a pattern stores; a change to any field makes a new version. */
export interface PatternContent {
  name: string;
  instructions: string;
  json_schema: Record<string, unknown>;
  format: PatternFormat;
  model: string | null;
  is_active: boolean;
}

/** A pattern as callers see it: its current version's content under the pattern's id. */
export interface Pattern extends PatternContent {
  id: string;
  version: number;
  created_at: Date;
  updated_at: Date;
}

/** One immutable version of a pattern. */
export interface PatternVersion extends PatternContent {
  pattern_id: string;
  version: number;
  created_at: Date;
}

/** One page of a list and the cursor of the next one (null on the last page). */
export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

// The API's view of a pattern, from `patterns p` and its current `pattern_versions v`.
const patternColumns = (sql: Sql | Tx) =>
  sql`p.id, p.current_version as version, p.created_at, p.updated_at, v.name, v.instructions, v.json_schema, v.format, v.model, v.is_active`;

/**
 * The schema's JSON text, sent as text and cast to json (sql.json() would send jsonb, which re-sorts
 * keys on the way in); refuses content past MAX_PATTERN_CONTENT_BYTES (422 on the body).
 */
function schemaText(c: PatternContent): string {
  const schema = JSON.stringify(c.json_schema);
  const bytes = Buffer.byteLength(schema) + Buffer.byteLength(c.instructions);
  if (bytes <= MAX_PATTERN_CONTENT_BYTES) return schema;
  const message = `json_schema and instructions take ${bytes} bytes together; at most ${MAX_PATTERN_CONTENT_BYTES} (${MAX_PATTERN_CONTENT_BYTES / 1024} KiB)`;
  throw new AppError('validation_failed', `the pattern is too large: ${message}`, { errors: [{ path: 'body', message }] });
}

/**
 * Creates a pattern and its version 1 in one transaction; a 409 once the tenant has
 * MAX_PATTERNS_PER_TENANT live patterns.
 */
export function createPattern(sql: Sql, tenantId: string, content: PatternContent): Promise<Pattern> {
  const schema = schemaText(content);
  return sql.begin(async (tx) => {
    await lockTenantForCap(tx, tenantId);
    const [live] = await tx<{ n: number }[]>`
      select count(*)::int as n from leasehold.patterns where tenant_id = ${tenantId}::uuid and deleted_at is null`;
    if (live!.n >= MAX_PATTERNS_PER_TENANT) {
      throw new AppError('conflict', `a tenant may have at most ${MAX_PATTERNS_PER_TENANT} patterns; delete one first`);
    }
    const c = content;
    const [row] = await tx<Pattern[]>`
      with p as (
        insert into leasehold.patterns (id, tenant_id) values (${uuidv7()}, ${tenantId})
        returning id, current_version, created_at, updated_at
      ), v as (
        insert into leasehold.pattern_versions (pattern_id, version, tenant_id, name, instructions, json_schema, format, model, is_active)
        select p.id, 1, ${tenantId}, ${c.name}, ${c.instructions}, ${schema}::text::json, ${c.format}, ${c.model}, ${c.is_active}
        from p
        returning *
      )
      select ${patternColumns(tx)} from p, v`;
    return row!;
  });
}

/** The tenant's pattern with its current version; undefined when missing, deleted or another tenant's. */
export async function getPattern(sql: Sql | Tx, tenantId: string, id: string): Promise<Pattern | undefined> {
  if (!isUuid(id)) return undefined;
  const [row] = await sql<Pattern[]>`
    select ${patternColumns(sql)}
    from leasehold.patterns p
    join leasehold.pattern_versions v on v.pattern_id = p.id and v.version = p.current_version
    where p.tenant_id = ${tenantId} and p.id = ${id} and p.deleted_at is null`;
  return row;
}

/**
 * The tenant's patterns, newest first. The cursor is the last id of the previous page: ids are
 * time-ordered, so patterns created while a client pages sort before its cursor and never shift
 * the pages after it.
 */
export async function listPatterns(sql: Sql, tenantId: string, opts: { limit: number; cursor?: string }): Promise<Page<Pattern>> {
  const cursor = opts.cursor ?? null;
  const rows = await sql<Pattern[]>`
    select ${patternColumns(sql)}
    from leasehold.patterns p
    join leasehold.pattern_versions v on v.pattern_id = p.id and v.version = p.current_version
    where p.tenant_id = ${tenantId} and p.deleted_at is null and (${cursor}::uuid is null or p.id < ${cursor}::uuid)
    order by p.id desc
    limit ${opts.limit + 1}`;
  const data = rows.slice(0, opts.limit);
  return { data, next_cursor: rows.length > opts.limit ? data.at(-1)!.id : null };
}

/**
 * Locks the pattern row for the rest of the transaction and returns its current content, so
 * concurrent changes queue up behind each other and each makes the next version number. The lock
 * is taken on `patterns` alone: a locking join would be rechecked against the version row of the
 * old snapshot after waiting, and miss the pattern another transaction just moved on.
 */
async function lockPattern(tx: Tx, tenantId: string, id: string): Promise<Pattern | undefined> {
  if (!isUuid(id)) return undefined;
  const [locked] = await tx`
    select id from leasehold.patterns
    where tenant_id = ${tenantId} and id = ${id} and deleted_at is null
    for update`;
  return locked && getPattern(tx, tenantId, id);
}

/**
 * Writes `content` as the version after `current` and points the pattern at it; a 409 once the
 * pattern has MAX_PATTERN_VERSIONS versions (numbered 1 up, so the current one is the count).
 */
async function appendVersion(tx: Tx, tenantId: string, current: Pattern, c: PatternContent): Promise<Pattern> {
  if (current.version >= MAX_PATTERN_VERSIONS) {
    throw new AppError(
      'conflict',
      `pattern ${current.id} has ${current.version} versions, the most a pattern may have; create a new pattern for further changes`,
    );
  }
  const schema = schemaText(c);
  const next = current.version + 1;
  const [row] = await tx<Pattern[]>`
    with v as (
      insert into leasehold.pattern_versions (pattern_id, version, tenant_id, name, instructions, json_schema, format, model, is_active)
      values (${current.id}, ${next}, ${tenantId}, ${c.name}, ${c.instructions}, ${schema}::text::json, ${c.format}, ${c.model}, ${c.is_active})
      returning *
    ), p as (
      update leasehold.patterns set current_version = ${next}, updated_at = now()
      where id = ${current.id} and tenant_id = ${tenantId}
      returning id, current_version, created_at, updated_at
    )
    select ${patternColumns(tx)} from p, v`;
  return row!;
}

const contentOf = (p: PatternContent): PatternContent => ({
  name: p.name,
  instructions: p.instructions,
  json_schema: p.json_schema,
  format: p.format,
  model: p.model,
  is_active: p.is_active,
});

/** Applies a partial change as a new version (unchanged fields copied); undefined when not found. */
export function updatePattern(sql: Sql, tenantId: string, id: string, patch: Partial<PatternContent>): Promise<Pattern | undefined> {
  return sql.begin(async (tx) => {
    const current = await lockPattern(tx, tenantId, id);
    if (!current) return undefined;
    const changed = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
    return appendVersion(tx, tenantId, current, { ...contentOf(current), ...changed });
  });
}

/**
 * Makes a new version whose content equals `version`'s and points the pattern at it; history is
 * never rewritten. `no_pattern` and `no_version` say what was not found.
 */
export function rollbackPattern(sql: Sql, tenantId: string, id: string, version: number): Promise<Pattern | 'no_pattern' | 'no_version'> {
  return sql.begin(async (tx) => {
    const current = await lockPattern(tx, tenantId, id);
    if (!current) return 'no_pattern' as const;
    const [old] = await tx<PatternContent[]>`
      select name, instructions, json_schema, format, model, is_active from leasehold.pattern_versions
      where pattern_id = ${id} and tenant_id = ${tenantId} and version = ${version}`;
    if (!old) return 'no_version' as const;
    return appendVersion(tx, tenantId, current, contentOf(old));
  });
}

/** Soft-deletes a pattern: it stays for the jobs that ran with it, but is not found any more. */
export async function deletePattern(sql: Sql, tenantId: string, id: string): Promise<boolean> {
  if (!isUuid(id)) return false;
  const rows = await sql`
    update leasehold.patterns set deleted_at = now(), updated_at = now()
    where tenant_id = ${tenantId} and id = ${id} and deleted_at is null
    returning id`;
  return rows.length > 0;
}

/** A pattern's versions, oldest first, after version `cursor`; undefined when the pattern is not found. */
export async function listPatternVersions(
  sql: Sql,
  tenantId: string,
  id: string,
  opts: { limit: number; cursor?: number },
): Promise<Page<PatternVersion> | undefined> {
  if (!(await getPattern(sql, tenantId, id))) return undefined;
  const rows = await sql<PatternVersion[]>`
    select pattern_id, version, name, instructions, json_schema, format, model, is_active, created_at
    from leasehold.pattern_versions
    where pattern_id = ${id} and tenant_id = ${tenantId} and version > ${opts.cursor ?? 0}
    order by version
    limit ${opts.limit + 1}`;
  const data = rows.slice(0, opts.limit);
  return { data, next_cursor: rows.length > opts.limit ? String(data.at(-1)!.version) : null };
}
