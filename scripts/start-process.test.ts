import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { connect } from '#shared/db/connect.js';
import { waitFor } from '../test/helpers/wait.js';
import { freePort } from '#shared/db/free-port.js';

// `leasehold start` as users run it: a real child process with its own embedded PostgreSQL (not
// the suite's cluster), stopped by SIGTERM, and killed by SIGKILL.
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DATA = path.join(ROOT, '.data', `test-start-${process.pid}`);
const children: ChildProcess[] = [];


function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The URL the running `start` recorded for its embedded PostgreSQL. */
const embeddedUrl = () => (JSON.parse(readFileSync(path.join(DATA, 'pg.owner.json'), 'utf8')) as { url: string }).url;

const postmasterPid = () => Number(readFileSync(path.join(DATA, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);

/** Pids of watchdogs guarding the given postgres pid. */
function watchdogsOf(pgPid: number): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
        return argv.some((a) => a.endsWith('embedded-watchdog.mjs')) && argv.includes(String(pgPid));
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function start(): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const [pgPort, httpPort] = [await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = { ...process.env, LEASEHOLD_DATA_DIR: DATA, EMBEDDED_PG_PORT: String(pgPort), PORT: String(httpPort), LOG_LEVEL: 'info' };
  delete env.DATABASE_URL;
  const child = spawn(process.execPath, ['scripts/leasehold.mjs', 'start'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const url = await waitFor(() => /Leasehold is running at (\S+)/.exec(out)?.[1], `leasehold start to listen (output: ${out})`, 90_000);
  return { child, url, output: () => out };
}

/** The development API key a start printed. */
const keyOf = (output: string) => /^ {2}API key: +(\S+)/m.exec(output)?.[1];

const exited = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code))));

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});
afterAll(async () => {
  if (readdirSync(path.join(DATA, 'pg')).includes('postmaster.pid')) {
    const pid = postmasterPid();
    if (alive(pid)) process.kill(pid, 'SIGINT');
    await waitFor(() => !alive(pid), 'cleanup of postgres', 15_000).catch(() => {});
  }
  rmSync(DATA, { recursive: true, force: true });
});

describe('leasehold start (child process)', () => {
  test('serves, then on SIGTERM stops the worker and its PostgreSQL and exits 0', async () => {
    const { child, url } = await start();
    expect((await fetch(`${url}/health`)).status).toBe(200);
    expect(await (await fetch(`${url}/ready`)).json()).toMatchObject({ status: 'ready', checks: { migrations: 'current', workers: 1 } });
    const pgPid = postmasterPid();
    expect(alive(pgPid)).toBe(true);
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
    expect(alive(pgPid)).toBe(false);
  }, 180_000);

  test("GET /metrics of the all-in-one start shows its worker's series next to the API's", async () => {
    const { child, url, output } = await start();
    // Every start prints the development key (admin scope).
    const key = keyOf(output());
    expect(key, output()).toBeTruthy();
    const auth = { authorization: `Bearer ${key}` };
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    const job = await fetch(`${url}/v1/jobs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'system.noop', queue: 'start-metrics' }),
    });
    expect(job.status).toBe(202);
    const text = await waitFor(async () => {
      const body = await (await fetch(`${url}/metrics`, { headers: auth })).text();
      return body.includes('leasehold_job_attempts_total{queue="start-metrics",kind="system.noop",outcome="succeeded"} 1') && body;
    }, 'the worker to count the job on the API port');
    expect(text).toMatch(/^leasehold_http_requests_total\{method="POST",route="\/v1\/jobs",status="202"\} 1$/m);
    expect(text).toMatch(/^leasehold_workers_live 1$/m);
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
  }, 180_000);

  test('SIGKILL of the parent leaves no PostgreSQL behind (the watchdog stops it)', async () => {
    const { child } = await start();
    const pgPid = postmasterPid();
    expect(watchdogsOf(pgPid)).toHaveLength(1);
    child.kill('SIGKILL');
    await exited(child);
    await waitFor(() => !alive(pgPid), 'the orphaned postgres to be stopped by its watchdog', 45_000);
  }, 180_000);

  test('a PostgreSQL orphaned without its watchdog is stopped at the next start, and the data survives', async () => {
    const first = await start();
    const pgPid = postmasterPid();
    const before = connect(embeddedUrl(), { max: 1 });
    await before`insert into leasehold.tenants (id, slug, name) values ('00000000-0000-7000-8000-00000000beef', 'survivor', 'Survivor')`;
    await before.end();
    for (const w of watchdogsOf(pgPid)) process.kill(w, 'SIGKILL');
    first.child.kill('SIGKILL');
    await exited(first.child);
    expect(alive(pgPid)).toBe(true); // orphaned now

    const second = await start();
    expect(alive(pgPid)).toBe(false);
    expect(postmasterPid()).not.toBe(pgPid);
    expect(second.output()).toMatch(/stopping an orphaned embedded PostgreSQL/);
    expect((await fetch(`${second.url}/ready`)).status).toBe(200);
    // The data directory keeps the development key with the database: the same one is printed.
    expect(keyOf(second.output())).toBe(keyOf(first.output()));
    expect((await fetch(`${second.url}/v1/jobs`, { headers: { authorization: `Bearer ${keyOf(first.output())}` } })).status).toBe(200);
    const after = connect(embeddedUrl(), { max: 1 });
    expect(await after`select slug from leasehold.tenants where slug = 'survivor'`).toHaveLength(1);
    await after.end();
    second.child.kill('SIGINT');
    expect(await exited(second.child)).toBe(0);
  }, 180_000);
});
