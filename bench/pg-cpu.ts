import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const USER_HZ = 100;

/** The postmaster's pid of a data directory (first line of postmaster.pid). */
export function postmasterPid(dataDir: string): number {
  return Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
}

/** CPU seconds a process has used so far (utime + stime); 0 once it has exited. Linux /proc only. */
export function processCpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / USER_HZ;
  } catch {
    return 0;
  }
}

/**
 * CPU seconds used so far by a PostgreSQL cluster: the postmaster with its reaped children, plus
 * its live children (backends, walwriter, checkpointer…). Linux /proc only.
 */
export function pgCpuSeconds(pgPid: number): number {
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pid = Number(entry);
    // Fields 14–17 of stat (utime, stime, cutime, cstime), counted from the state field here.
    if (pid === pgPid) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    else if (Number(f[1]) === pgPid) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / USER_HZ;
}
