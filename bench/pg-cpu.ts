import { readdirSync, readFileSync } from 'node:fs';
import { readPostmasterPid } from '#shared/db/embedded.js';

const USER_HZ = 100;

/** The postmaster's pid of a data directory (first line of postmaster.pid); throws when there is none. */
export function postmasterPid(dataDir: string): number {
  const pid = readPostmasterPid(dataDir);
  if (pid === undefined) throw new Error(`no postmaster.pid under ${dataDir}`);
  return pid;
}

/** CPU seconds a process has used so far (utime + stime); 0 once it has exited. Linux /proc only. */
export function processCpuSeconds(pid: number): number {
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / USER_HZ : 0;
}

/** Fields of /proc/<pid>/stat from the state field on (the command may hold spaces); undefined once gone. */
function statFields(pid: number | string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // exited meanwhile
  }
}

/**
 * CPU seconds used so far by a PostgreSQL cluster: the postmaster with its reaped children, plus
 * its live children (backends, walwriter, checkpointer…). Linux /proc only.
 *
 * A backend that exits and is reaped while /proc is walked would be missed: its own entry is gone
 * and the postmaster's count of reaped children was read before. A peer that closes its pool at the
 * end of a round (200 backends at c=200) lost up to 0.6 s of a round's CPU that way. So the walk is
 * repeated until the reaped children's count is the same before and after it.
 */
export function pgCpuSeconds(pgPid: number): number {
  // Fields 14–17 of stat (utime, stime, cutime, cstime), counted from the state field here.
  const reaped = (f: string[]) => Number(f[13]) + Number(f[14]);
  for (let attempt = 0; ; attempt++) {
    const before = statFields(pgPid);
    if (!before) return 0;
    let ticks = 0;
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry) || Number(entry) === pgPid) continue;
      const f = statFields(entry);
      if (f && Number(f[1]) === pgPid) ticks += Number(f[11]) + Number(f[12]);
    }
    const after = statFields(pgPid);
    if (!after) return 0;
    if (reaped(after) === reaped(before) || attempt === 50) return (ticks + Number(after[11]) + Number(after[12]) + reaped(after)) / USER_HZ;
  }
}
