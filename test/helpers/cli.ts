import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = fileURLToPath(new URL('../../scripts/leasehold.mjs', import.meta.url));

/** What one CLI run left behind. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON; throws (showing stdout) when it is not exactly one JSON document. */
  json(): any;
}

/**
 * Runs the real `leasehold` binary (`node scripts/leasehold.mjs …`) as a child process, with
 * `env` over this process's environment, and waits for it to exit (SIGKILL after `timeoutMs`).
 */
export function runCli(args: string[], env: Record<string, string | undefined>, timeoutMs = 90_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({
        code,
        stdout,
        stderr,
        json() {
          try {
            return JSON.parse(stdout);
          } catch {
            throw new Error(`leasehold ${args.join(' ')} printed no single JSON document:\n${stdout}\nstderr:\n${stderr}`);
          }
        },
      });
    });
  });
}
