import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createApiKey, type Scope } from '#shared/auth/api-keys.js';
import { ensureTenant } from '#shared/auth/tenants.js';
import { loadConfig, type Config } from '#shared/config.js';
import type { Sql } from '#shared/db/connect.js';
import { Governor } from '#shared/governor/governor.js';
import { JobQueue } from '#shared/jobs/queue.js';
import { Notifier } from '#shared/jobs/notifier.js';
import { createObjectStore, type ObjectStore } from '#shared/storage/object-store.js';
import { createApp, type AppDeps } from '../../api/app.js';
import { testLog } from './engine.js';

/** The API over a test database, with helpers to make tenants and keys and send requests. */
export interface TestApi {
  app: ReturnType<typeof createApp>;
  config: Config;
  /** The app's object store: local, under a fresh temporary LEASEHOLD_DATA_DIR unless `env` names one or S3. */
  storage: ObjectStore;
  /** A tenant (created once per slug) and a fresh key for it with the given scopes. */
  tenant(slug: string, scopes?: Scope[]): Promise<{ tenantId: string; key: string }>;
  /** app.request with `Authorization: Bearer <key>` and a JSON body when `body` is given. */
  request(key: string | undefined, method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
}

/** Builds the app as `leasehold api` would, with config overrides from `env`; `deps` replaces its logger, metrics, governor or event hub. */
export function createTestApi(sql: Sql, env: Record<string, string> = {}, deps: Partial<AppDeps> = {}): TestApi {
  const config = loadConfig({ LOG_LEVEL: 'silent', LEASEHOLD_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'leasehold-api-')), ...env });
  const storage = createObjectStore(config, { dataDir: config.LEASEHOLD_DATA_DIR });
  const app = createApp({ sql, config, log: testLog, queue: new JobQueue(sql, new Notifier(sql)), governor: new Governor(config), storage, ...deps });
  return {
    app,
    config,
    storage,
    async tenant(slug, scopes = ['jobs:read', 'jobs:write']) {
      const t = await ensureTenant(sql, slug);
      const { key } = await createApiKey(sql, { tenantId: t.id, name: 'test', scopes });
      return { tenantId: t.id, key };
    },
    async request(key, method, path, body, headers = {}) {
      return app.request(path, {
        method,
        headers: {
          ...(key ? { authorization: `Bearer ${key}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      });
    },
  };
}
