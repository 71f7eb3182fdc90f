import type { Sql, Tx } from '#shared/db/connect.js';
import { AppError } from '#shared/errors.js';

/**
 * The pattern's current version, for the caller's transaction: 404 when the tenant has no such
 * pattern (or it was deleted), 409 when it is inactive, 422 when `version` is given and the pattern
 * never had it. No row lock: a change committed meanwhile is simply later than this ingest, and
 * share-locking one hot pattern row from every concurrent ingest would create a MultiXact each time.
 */
export async function currentPattern(db: Sql | Tx, tenantId: string, patternId: string, version?: number): Promise<number> {
  const [p] = await db<{ current_version: number; is_active: boolean; has_version: boolean }[]>`
    select p.current_version, v.is_active,
           exists (select 1 from leasehold.pattern_versions o where o.pattern_id = p.id and o.version = ${version ?? 0}::int) as has_version
    from leasehold.patterns p
    join leasehold.pattern_versions v on v.pattern_id = p.id and v.version = p.current_version
    where p.id = ${patternId}::uuid and p.tenant_id = ${tenantId}::uuid and p.deleted_at is null`;
  if (!p) throw new AppError('not_found', `no pattern ${patternId}`);
  if (!p.is_active) throw new AppError('invalid_state', `pattern ${patternId} is inactive (version ${p.current_version}); activate it before sending images to it`);
  if (version !== undefined && !p.has_version) {
    throw new AppError('validation_failed', `pattern ${patternId} has no version ${version}`, {
      errors: [{ path: 'body.payload.pattern_version', message: `pattern ${patternId} has no version ${version} (current: ${p.current_version})` }],
    });
  }
  return p.current_version;
}
