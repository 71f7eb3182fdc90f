import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseToml } from 'smol-toml';
import { describe, expect, test } from 'vitest';
import { loadConfig } from '#shared/config.js';
import { DEFAULT_SETTINGS } from '../worker/worker-settings.js';
import { runCli } from '../test/helpers/cli.js';

// No Docker engine runs here: these checks read Dockerfile, .dockerignore and fly.toml and hold
// them against the repository, the CLI and package.json.
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (f: string) => readFileSync(path.join(ROOT, f), 'utf8');
const pkg = JSON.parse(read('package.json')) as {
  bin: Record<string, string>;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** Dockerfile instructions, line continuations joined, comments dropped, split into stages. */
function dockerStages(): { from: string; steps: { op: string; args: string }[] }[] {
  const lines = read('Dockerfile').replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages: { from: string; steps: { op: string; args: string }[] }[] = [];
  for (const line of lines) {
    const [, op, args] = /^(\w+)\s+(.*)$/.exec(line)!;
    if (op!.toUpperCase() === 'FROM') stages.push({ from: args!, steps: [] });
    else stages.at(-1)!.steps.push({ op: op!.toUpperCase(), args: args! });
  }
  return stages;
}
const stages = dockerStages();
const runtime = stages.at(-1)!;
const execForm = (args: string) => JSON.parse(args) as string[];

/** .dockerignore patterns as regular expressions over repository paths (no negations needed here). */
function ignored(): (file: string) => boolean {
  const patterns = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#') && !l.startsWith('!'));
  const res = patterns.map((p) => {
    const body = p.replace(/\/$/, '').replace(/[.+^${}()|[\]]/g, '\\$&').replace(/\*\*\//g, '(.*/)?').replace(/\*/g, '[^/]*');
    return new RegExp(`^${body}(/.*)?$`);
  });
  return (file) => res.some((r) => r.test(file));
}

/**
 * Every repository file the `leasehold` binary can load, following static and dynamic imports
 * from package.json's bin, and every package it imports by name.
 */
function reachable(): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [path.normalize(pkg.bin.leasehold!)];
  while (queue.length) {
    const file = queue.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const text = read(file);
    for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^import\s+)'([^']+)'/gm)) {
      const spec = m[1]!;
      if (spec.startsWith('node:')) continue;
      let target: string | undefined;
      if (spec.startsWith('#shared/')) target = path.join('shared', spec.slice('#shared/'.length));
      else if (spec.startsWith('.')) target = path.normalize(path.join(path.dirname(file), spec));
      else {
        packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
        continue;
      }
      // `./x.js` is x.ts, or x.tsx for JSX (the dashboard's pages).
      const source = ['.ts', '.tsx'].map((ext) => target!.replace(/\.js$/, ext)).find((f) => existsSync(path.join(ROOT, f)));
      queue.push(source ?? target);
    }
  }
  return { files, packages };
}

describe('Dockerfile', () => {
  test('is multi-stage, runs as a non-root user, listens on 0.0.0.0 and has a HEALTHCHECK', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const user = runtime.steps.filter((s) => s.op === 'USER').at(-1)?.args;
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    expect(runtime.steps.some((s) => s.op === 'ENV' && /\bHOST=0\.0\.0\.0\b/.test(s.args))).toBe(true);
    const health = runtime.steps.find((s) => s.op === 'HEALTHCHECK');
    expect(health?.args).toMatch(/\bCMD\s+\[/);
    const cmd = execForm(health!.args.slice(health!.args.indexOf('[')));
    expect(cmd[0]).toBe('node');
    expect(existsSync(path.join(ROOT, cmd[1]!))).toBe(true);
  });

  test('installs production dependencies only, with the lockfile and the patches postinstall applies', () => {
    const deps = stages.find((s) => s.steps.some((x) => x.op === 'RUN' && /\bnpm ci\b/.test(x.args)))!;
    expect(deps).toBeDefined();
    const ciAt = deps.steps.findIndex((x) => x.op === 'RUN' && /\bnpm ci\b/.test(x.args));
    expect(deps.steps[ciAt]!.args).toMatch(/--omit=dev\b/);
    const copiedBefore = deps.steps.slice(0, ciAt).filter((x) => x.op === 'COPY').flatMap((x) => x.args.split(/\s+/).slice(0, -1));
    expect(copiedBefore).toEqual(expect.arrayContaining(['package.json', 'package-lock.json']));
    // The postinstall (patch-package) needs patches/ when `npm ci` runs, and must itself be a production dependency.
    if (/patch-package/.test(pkg.scripts.postinstall ?? '')) {
      expect(copiedBefore.some((f) => f.replace(/\/$/, '') === 'patches')).toBe(true);
      expect(pkg.dependencies['patch-package']).toBeDefined();
    }
    // Every `npm run x` in a RUN names a script package.json has.
    for (const s of stages.flatMap((st) => st.steps).filter((x) => x.op === 'RUN')) {
      for (const m of s.args.matchAll(/\bnpm run(?:-script)?\s+([\w:.-]+)/g)) expect(pkg.scripts[m[1]!], `npm run ${m[1]}`).toBeDefined();
    }
  });

  test('every file it COPYs exists and is not excluded by .dockerignore', () => {
    const isIgnored = ignored();
    for (const s of stages.flatMap((st) => st.steps).filter((x) => x.op === 'COPY' && !x.args.startsWith('--from'))) {
      const sources = s.args.split(/\s+/).filter((a) => !a.startsWith('--')).slice(0, -1);
      for (const src of sources) {
        expect(existsSync(path.join(ROOT, src)), `COPY ${src}`).toBe(true);
        expect(isIgnored(src.replace(/\/$/, '')), `COPY ${src} is in .dockerignore`).toBe(false);
      }
    }
  });

  test('the image holds every file the leasehold binary loads, and every package it imports is a production dependency', () => {
    const { files, packages } = reachable();
    expect(files.size).toBeGreaterThan(50);
    const copied = runtime.steps
      .filter((s) => s.op === 'COPY' && !s.args.startsWith('--from'))
      .flatMap((s) => s.args.split(/\s+/).filter((a) => !a.startsWith('--')).slice(0, -1))
      .map((f) => f.replace(/\/$/, ''));
    const isIgnored = ignored();
    for (const file of files) {
      const inImage = copied.some((c) => file === c || (statSync(path.join(ROOT, c)).isDirectory() && file.startsWith(`${c}/`)));
      expect(inImage && !isIgnored(file), `${file} is not in the image`).toBe(true);
    }
    // Migrations are read from disk, not imported.
    expect(copied).toContain('sql');
    // The embedded PostgreSQL is removed from the image on purpose (DATABASE_URL is required there).
    for (const name of packages) expect(pkg.dependencies[name], `${name} must be a production dependency`).toBeDefined();
  });

  test('ENTRYPOINT is the leasehold CLI and CMD a command it accepts; .dockerignore keeps secrets and local data out', () => {
    const entry = execForm(runtime.steps.find((s) => s.op === 'ENTRYPOINT')!.args);
    expect(entry).toEqual(['node', pkg.bin.leasehold!.replace(/^\.\//, '')]);
    expect(execForm(runtime.steps.find((s) => s.op === 'CMD')!.args)).toEqual(['api']);
    const isIgnored = ignored();
    for (const f of ['node_modules', '.data', '.env', '.git', 'api/jobs.pg.test.ts']) expect(isIgnored(f), f).toBe(true);
    for (const f of ['package.json', 'package-lock.json', 'patches', 'api/app.ts', 'sql/migrations/0001_create_queue.sql']) expect(isIgnored(f), f).toBe(false);
  });
});

describe('fly.toml', () => {
  const fly = parseToml(read('fly.toml')) as any;

  test('has the app and worker process groups, migrations as the release command, and /ready checks on the app', () => {
    expect(Object.keys(fly.processes).sort()).toEqual(['app', 'worker']);
    expect(fly.processes.app).toBe('api');
    expect(fly.processes.worker).toBe('worker');
    expect(fly.deploy.release_command).toBe('migrate');
    expect(fly.http_service.processes).toEqual(['app']);
    expect(fly.http_service.internal_port).toBe(Number(fly.env.PORT));
    expect(fly.env.HOST).toBe('0.0.0.0');
    expect(fly.http_service.checks.map((c: { path: string }) => c.path)).toContain('/ready');
    // Every environment value it sets is one the configuration accepts.
    expect(() => loadConfig(fly.env)).not.toThrow();
  });

  test("kill_timeout covers the worker's whole graceful stop", () => {
    expect(fly.kill_signal).toBe('SIGTERM');
    const killS = Number(/^(\d+)s$/.exec(String(fly.kill_timeout))?.[1] ?? fly.kill_timeout);
    const graceMs = loadConfig(fly.env).WORKER_SHUTDOWN_GRACE_MS;
    // Grace, then aborted handlers get abortGraceMs + 1 s, then the pools get 5 s to close.
    const stopMs = graceMs + DEFAULT_SETTINGS.abortGraceMs + 1_000 + 5_000;
    expect(killS * 1000).toBeGreaterThan(stopMs);
    expect(killS).toBeLessThanOrEqual(300); // Fly's ceiling
  });

  test('every process and release command is a command the image entrypoint runs', async () => {
    const commands = new Set([...Object.values(fly.processes as Record<string, string>), fly.deploy.release_command as string]);
    // A closed port: each command gets as far as the database and fails there, not on its name.
    const env = { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', LOG_LEVEL: 'silent' };
    const unknown = await runCli(['no-such-command'], env);
    expect(unknown.code).toBe(64);
    for (const command of commands) {
      const run = await runCli(command.split(' '), env);
      expect(run.stderr, command).not.toMatch(/unknown command/);
      expect(run.code, `${command}: ${run.stderr}`).not.toBe(64);
      expect(run.code, `${command} should fail on the database only`).not.toBe(0);
    }
  });
});
