import { randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Sql } from '../db/connect.js';
import type { Logger } from '../log.js';
import { createApiKey, keyLookup, verifyApiKey, type Scope } from './api-keys.js';
import { DEV_TENANT_SLUG, ensureTenant, type Tenant } from './tenants.js';

const DEV_SCOPES: Scope[] = ['jobs:write', 'jobs:read', 'admin'];

/** The file under LEASEHOLD_DATA_DIR that keeps the generated development key from one `start` to the next. */
export const DEV_KEY_FILE = 'dev-api-key';

/** The development key `start` prints: LEASEHOLD_API_KEY, the one saved by an earlier start, or a new one. */
export interface DevKey {
  key: string;
  tenant: Tenant;
  source: 'LEASEHOLD_API_KEY' | 'saved' | 'created';
  /** Where the key is kept for the next start; unset for LEASEHOLD_API_KEY, or when saving failed. */
  file?: string;
}

/** LEASEHOLD_API_KEY names a key `start` must neither use nor change; the message says what to do. */
export class DevKeyConflict extends Error {
  override name = 'DevKeyConflict';
}

/**
 * What `start` does for a zero-configuration run. With LEASEHOLD_API_KEY (`configured`), makes
 * sure that exact key is an active admin key of the development tenant, creating it when no key
 * has its prefix. Otherwise returns the key saved under `dataDir` when it still verifies as one
 * here, or creates, saves and returns a new one. Other keys of the development tenant play no part.
 */
export async function ensureDevKey(sql: Sql, opts: { configured?: string; dataDir: string; log: Logger }): Promise<DevKey> {
  const tenant = await ensureTenant(sql, DEV_TENANT_SLUG, 'Development');
  if (opts.configured) {
    if (await ensureConfiguredKey(sql, tenant, opts.configured)) opts.log.info({ tenant: tenant.slug }, 'LEASEHOLD_API_KEY stored as an API key');
    return { key: opts.configured, tenant, source: 'LEASEHOLD_API_KEY' };
  }
  const file = path.join(opts.dataDir, DEV_KEY_FILE);
  const saved = readSaved(file, opts.log);
  if (saved?.dev_tenant_id === tenant.id) {
    const owner = await verifyApiKey(sql, saved.key);
    if (owner?.tenantId === tenant.id && owner.scopes.includes('admin')) return { key: saved.key, tenant, source: 'saved', file };
  }
  const { key } = await createApiKey(sql, { tenantId: tenant.id, name: 'development', scopes: DEV_SCOPES });
  opts.log.info({ tenant: tenant.slug }, 'development API key created');
  try {
    save(file, { key, dev_tenant_id: tenant.id });
    return { key, tenant, source: 'created', file };
  } catch (err) {
    opts.log.warn({ err, file }, 'could not save the development API key; the next start makes another');
    return { key, tenant, source: 'created' };
  }
}

/**
 * The key as it must be: same hash, active, development tenant, admin. True when it was just
 * created; a DevKeyConflict for a row with its prefix that is not that key.
 */
async function ensureConfiguredKey(sql: Sql, tenant: Tenant, key: string): Promise<boolean> {
  const lookup = keyLookup(key);
  // loadConfig refuses such a value already; this guards other callers.
  if (!lookup) throw new DevKeyConflict('LEASEHOLD_API_KEY must be 1 to 512 visible ASCII characters, with no spaces');
  const redo = 'set LEASEHOLD_API_KEY to another value, or unset it for a generated key';
  for (let attempt = 0; ; attempt++) {
    const [row] = await sql<{ id: string; tenant_id: string; slug: string; scopes: Scope[]; secret_sha256: Buffer; revoked_at: Date | null }[]>`
      select k.id, k.tenant_id, t.slug, k.scopes, k.secret_sha256, k.revoked_at
      from leasehold.api_keys k join leasehold.tenants t on t.id = k.tenant_id
      where k.prefix = ${lookup.prefix}`;
    if (!row) {
      try {
        await createApiKey(sql, { tenantId: tenant.id, name: 'LEASEHOLD_API_KEY', scopes: DEV_SCOPES, key });
        return true;
      } catch (err) {
        // 23505: another start stored it between the read and the insert; judge its row.
        if ((err as { code?: string }).code !== '23505' || attempt > 0) throw err;
        continue;
      }
    }
    if (!timingSafeEqual(row.secret_sha256, lookup.hash)) {
      throw new DevKeyConflict(`LEASEHOLD_API_KEY has the lookup prefix of another API key (key ${row.id}) but not its secret: ${redo}`);
    }
    // A revoked key stays revoked: someone revoked it (a leak?), and a restart must not undo that.
    if (row.revoked_at) {
      throw new DevKeyConflict(`LEASEHOLD_API_KEY was revoked at ${row.revoked_at.toISOString()} (key ${row.id}); start does not bring a revoked key back: ${redo}`);
    }
    if (row.tenant_id !== tenant.id) {
      throw new DevKeyConflict(`LEASEHOLD_API_KEY belongs to tenant "${row.slug}" (key ${row.id}), not to the development tenant "${tenant.slug}": ${redo}`);
    }
    if (!row.scopes.includes('admin')) {
      throw new DevKeyConflict(`LEASEHOLD_API_KEY lacks the admin scope (key ${row.id} has ${row.scopes.join(',')}); start does not widen a key's scopes: ${redo}`);
    }
    return false;
  }
}

/** What DEV_KEY_FILE holds: the key and the development tenant of the database it belongs to (a new database has a new one). */
interface SavedKey {
  key: string;
  dev_tenant_id: string;
}

function readSaved(file: string, log: Logger): SavedKey | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ err, file }, 'cannot read the saved development API key; making another');
    return undefined;
  }
  try {
    const saved = JSON.parse(text) as Partial<SavedKey>;
    if (typeof saved.key === 'string' && typeof saved.dev_tenant_id === 'string') return { key: saved.key, dev_tenant_id: saved.dev_tenant_id };
  } catch {
    // Not JSON: reported below like any other unusable content.
  }
  log.warn({ file }, 'the saved development API key is unusable; making another');
  return undefined;
}

/** Writes the file whole or not at all (a temporary file renamed over it), readable by its owner only. */
function save(file: string, saved: SavedKey): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify(saved)}\n`, { flag: 'wx', mode: 0o600 });
    renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
  }
}
