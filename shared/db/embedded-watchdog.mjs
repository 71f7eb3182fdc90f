// Stops an embedded PostgreSQL when the process that started it dies, however it dies.
// The parent holds our stdin open; the kernel closes it when the parent exits, even on SIGKILL,
// which no signal handler can catch. Plain JS so it starts without a TypeScript loader.
const pgPid = Number(process.argv[2]);
const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

function stopPostgres() {
  if (!alive(pgPid)) process.exit(0);
  // SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit.
  try { process.kill(pgPid, 'SIGINT'); } catch { process.exit(0); }
  const started = Date.now();
  const timer = setInterval(() => {
    if (!alive(pgPid)) process.exit(0);
    if (Date.now() - started > 20_000) {
      try { process.kill(pgPid, 'SIGQUIT'); } catch { /* already gone */ }
      process.exit(0);
    }
  }, 50);
  timer.unref?.();
}

if (!Number.isInteger(pgPid) || pgPid <= 0) process.exit(2);
process.stdin.on('data', () => {});
process.stdin.on('end', stopPostgres);
process.stdin.on('close', stopPostgres);
process.stdin.on('error', stopPostgres);
