import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { connect } from '#shared/db/connect.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '#shared/db/embedded.js';
import { migrate, readMigrations } from '#shared/db/migrator.js';
import { createLogger } from '#shared/log.js';
import { freePort } from '#shared/db/free-port.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A superuser URL of the test cluster (DATABASE_URL, or an embedded PostgreSQL). */
    pgAdminUrl: string;
    /** The migrated database every test database is cloned from. */
    pgTemplate: string;
  }
}


let embedded: EmbeddedPostgres | undefined;
let runDir: string | undefined;
const RUNS_DIR = '.data/test';

/** Removes clusters of earlier runs whose process is gone (their watchdog already stopped them). */
function sweepDeadRuns(): void {
  if (!existsSync(RUNS_DIR)) return;
  for (const entry of readdirSync(RUNS_DIR)) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) rmSync(path.join(RUNS_DIR, entry), { recursive: true, force: true });
  }
}

/** Starts one PostgreSQL for the whole run and migrates a template database. */
export async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = createLogger(process.env.LOG_LEVEL ?? 'warn', 'test-pg');
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    // One cluster per run, so parallel runs in one checkout never stop each other's server.
    sweepDeadRuns();
    runDir = path.join(RUNS_DIR, String(process.pid));
    embedded = await startEmbeddedPostgres({ rootDir: runDir, port: await freePort(), log });
    adminUrl = embedded.url;
  }
  const digest = createHash('sha256')
    .update(readMigrations().map((m) => m.checksum).join())
    .digest('hex')
    .slice(0, 12);
  const template = `leasehold_template_${digest}`;
  const admin = connect(adminUrl, { max: 1 });
  try {
    await admin.unsafe(`drop database if exists ${template} with (force)`);
    await admin.unsafe(`create database ${template}`);
  } finally {
    await admin.end();
  }
  const db = connect(withDatabase(adminUrl, template), { max: 1 });
  try {
    await migrate(db);
  } finally {
    await db.end();
  }
  project.provide('pgAdminUrl', adminUrl);
  project.provide('pgTemplate', template);
  return async () => {
    await embedded?.stop();
    if (runDir) rmSync(runDir, { recursive: true, force: true });
  };
}

/** The same server URL, another database. */
function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
