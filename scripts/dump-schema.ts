// `npm run db:dump`: applies every migration to an empty database and writes sql/schema.sql from
// the catalogs (see shared/db/schema-dump.ts for why not pg_dump). With DATABASE_URL set it uses a
// scratch database on that server; otherwise a throwaway embedded PostgreSQL.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from '#shared/config.js';
import { connect } from '#shared/db/connect.js';
import { startEmbeddedPostgres } from '#shared/db/embedded.js';
import { migrate } from '#shared/db/migrator.js';
import { dumpSchema } from '#shared/db/schema-dump.js';
import { createLogger } from '#shared/log.js';
import { freePort } from '#shared/db/free-port.js';

const SCHEMA_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../sql/schema.sql');


function inDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Migrates a scratch database on the server at `adminUrl`, dumps it, and drops it. */
async function dumpFresh(adminUrl: string): Promise<string> {
  const name = `leasehold_dump_${randomBytes(6).toString('hex')}`;
  const admin = connect(adminUrl, { max: 1, application: 'leasehold-db-dump' });
  try {
    await admin.unsafe(`create database ${name} template template0`);
    const sql = connect(inDatabase(adminUrl, name), { max: 1, application: 'leasehold-db-dump' });
    try {
      await migrate(sql);
      return await dumpSchema(sql);
    } finally {
      await sql.end();
      await admin.unsafe(`drop database if exists ${name} with (force)`);
    }
  } finally {
    await admin.end();
  }
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  let text: string;
  if (config.DATABASE_URL) text = await dumpFresh(config.DATABASE_URL);
  else {
    // Under the temp dir, opened to all: as root the server runs as `postgres`, which must traverse it.
    const rootDir = mkdtempSync(path.join(tmpdir(), 'leasehold-dump-'));
    try {
      chmodSync(rootDir, 0o755);
      const log = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL, 'db-dump', 2);
      const embedded = await startEmbeddedPostgres({ rootDir, port: await freePort(), log });
      try {
        text = await dumpFresh(embedded.url);
      } finally {
        await embedded.stop();
      }
    } finally {
      rmSync(rootDir, { recursive: true, force: true });
    }
  }
  writeFileSync(SCHEMA_FILE, text);
  process.stdout.write(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)}
`);
}

try {
  await main();
} catch (err) {
  process.stderr.write(`db:dump: ${err instanceof ConfigError || err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
