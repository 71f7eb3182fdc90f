#!/usr/bin/env node
// The image's HEALTHCHECK. The container's PID 1 is `leasehold <command>`: the serving commands
// (`api`, `start`) must answer GET /health; a `worker` has no HTTP server and is healthy while
// PID 1 lives (it exits non-zero when it cannot go on, and the orchestrator restarts it).
import { readFileSync } from 'node:fs';

let argv = [];
try {
  argv = readFileSync('/proc/1/cmdline', 'utf8').split('\0');
} catch {
  // No /proc (not Linux): assume the default command, `api`.
}
const at = argv.findIndex((a) => a.endsWith('leasehold.mjs'));
// Under an init process (docker run --init) PID 1 is not the CLI: probe HTTP, as for `api`.
const command = at < 0 ? 'api' : (argv.slice(at + 1).find((a) => !a.startsWith('-')) ?? 'help');
if (command !== 'api' && command !== 'start') process.exit(0);
const port = process.env.PORT || '8080';
try {
  const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2_500) });
  process.exit(res.ok ? 0 : 1);
} catch {
  process.exit(1);
}
