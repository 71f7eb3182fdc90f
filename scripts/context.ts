import { userInfo } from 'node:os';
import { loadConfig, ConfigError, type Config } from '#shared/config.js';
import { connect, type Sql } from '#shared/db/connect.js';
import { openDatabase, type DatabaseHandle } from '#shared/db/open-database.js';
import { migrate, readMigrations } from '#shared/db/migrator.js';
import { createLogger, type Logger } from '#shared/log.js';

/** What every command gets: config, logger, and (when it asks) a database. */
export interface CommandContext {
  config: Config;
  log: Logger;
  json: boolean;
}

/**
 * Reads the environment once; a bad value ends the process with every bad key named. `logFd` 2
 * keeps log lines off stdout, where a one-shot command prints its result.
 */
export function commandContext(json: boolean, env = process.env, logFd: 1 | 2 = 2): CommandContext {
  try {
    const config = loadConfig(env);
    return { config, log: createLogger(config.LOG_LEVEL, 'leasehold', logFd), json };
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
}

/** Opens the database for one command and closes everything after, whatever happens. */
export async function withDatabase<T>(
  ctx: CommandContext,
  fn: (sql: Sql, db: DatabaseHandle) => Promise<T>,
  opts: { migrate?: 'always' | 'embedded' | 'never'; poolMax?: number } = {},
): Promise<T> {
  const db = await openDatabase(ctx.config, ctx.log);
  const sql = connect(db.url, { max: opts.poolMax ?? 4, application: 'leasehold-cli' });
  try {
    const mode = opts.migrate ?? 'embedded';
    if (mode === 'always' || (mode === 'embedded' && db.embedded)) await migrate(sql);
    else if (mode === 'embedded') await assertMigrated(sql);
    return await fn(sql, db);
  } finally {
    await sql.end({ timeout: 5 });
    await db.close();
  }
}

/** Fails fast when the schema is behind this release, naming the fix. */
export async function assertMigrated(sql: Sql): Promise<void> {
  const known = readMigrations().map((m) => m.version);
  // No schema (3F000) or no table (42P01) yet means nothing is applied; any other error (the
  // database is unreachable) is reported as itself, not as pending migrations.
  const rows = await sql<{ version: string }[]>`select version from leasehold.schema_migrations`.catch((err: { code?: string }) => {
    if (err.code === '42P01' || err.code === '3F000') return [];
    throw err;
  });
  const applied = new Set(rows.map((r) => r.version));
  const pending = known.filter((v) => !applied.has(v));
  if (pending.length) throw new Error(`database schema is behind (pending: ${pending.join(', ')}); run "leasehold migrate"`);
}

/** A command line the command cannot act on; the CLI prints it and exits 64 (EX_USAGE). */
export class UsageError extends Error {
  override name = 'UsageError';
  /** Set when the error is the command's usage line (`usage: leasehold …`), printed as it is. */
  constructor(message: string, readonly isUsageLine = false) {
    super(message);
  }
}

/** The job states a `--status` filter may name (DESIGN.md, job lifecycle). */
export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;

/** `--limit n`: a whole number from 1 to `max`, 50 when absent. */
export function limitFlag(value: string | boolean | undefined, max = 1000): number {
  if (value === undefined) return 50;
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= max)) throw new UsageError(`--limit must be a whole number from 1 to ${max}`);
  return n;
}

/** `--status s`: one of JOB_STATUSES, or null when absent. */
export function statusFlag(value: string | boolean | undefined): string | null {
  if (value === undefined) return null;
  if (typeof value !== 'string' || !(JOB_STATUSES as readonly string[]).includes(value)) {
    throw new UsageError(`--status must be one of ${JOB_STATUSES.join(', ')}`);
  }
  return value;
}

/** Who the admin functions record as the caller: `cli:<os user>`. */
export function cliActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return `cli:${process.env.USER ?? 'unknown'}`;
  }
}

/** A value of a flag that takes one, or undefined; a bare `--flag` is a usage error. */
export function textFlag(flags: Record<string, string | boolean | undefined>, name: string): string | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} needs a value`);
  return v;
}

/** An integer flag within bounds, or undefined when absent. */
export function intFlag(flags: Record<string, string | boolean | undefined>, name: string, min: number, max: number): number | undefined {
  const v = textFlag(flags, name);
  if (v === undefined) return undefined;
  const n = /^-?\d+$/.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}`);
  return n;
}
