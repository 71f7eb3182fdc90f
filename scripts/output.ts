import { UsageError } from './context.js';

/** Prints rows as an aligned table, or as JSON with --json. */
export function printTable(rows: Record<string, unknown>[], json: boolean, columns?: string[]): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const cols = columns ?? Object.keys(rows[0]!);
  const cell = (v: unknown) => (v === null || v === undefined ? '' : v instanceof Date ? v.toISOString() : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const widths = cols.map((c) => Math.min(60, Math.max(c.length, ...rows.map((r) => cell(r[c]).length))));
  const line = (vals: string[]) => vals.map((v, i) => v.slice(0, 60).padEnd(widths[i]!)).join('  ').trimEnd();
  process.stdout.write(`${line(cols)}\n${rows.map((r) => line(cols.map((c) => cell(r[c])))).join('\n')}\n`);
}

/** Prints one object as `key: value` lines, or as JSON with --json. */
export function printObject(obj: Record<string, unknown>, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(obj, null, 2)}\n`);
    return;
  }
  const width = Math.max(...Object.keys(obj).map((k) => k.length));
  for (const [k, v] of Object.entries(obj)) {
    const text = v === null || v === undefined ? '' : v instanceof Date ? v.toISOString() : typeof v === 'object' ? JSON.stringify(v) : String(v);
    process.stdout.write(`${k.padEnd(width)}  ${text}\n`);
  }
}

/** A malformed command line: main() prints the usage line (and, with --json, `{"error": …}`) and exits 64. */
export function usage(text: string): never {
  throw new UsageError(`usage: leasehold ${text}`, true);
}

/**
 * Reports an error about the database's state (not the command line): `{"error": …}` on stdout with
 * --json, `leasehold <where>: <message>` on stderr always; returns 1.
 */
export function fail(json: boolean, where: string, message: string): number {
  if (json) process.stdout.write(`${JSON.stringify({ error: message })}\n`);
  process.stderr.write(`leasehold ${where}: ${message}\n`);
  return 1;
}

/**
 * An action that found nothing to do (`reason` says why): prints its outcome as printObject does,
 * says the reason on stderr as every exit 1 does, and returns 1.
 */
export function unchanged(obj: Record<string, unknown> & { reason: string }, json: boolean, where: string): number {
  printObject(obj, json);
  process.stderr.write(`leasehold ${where}: ${obj.reason}\n`);
  return 1;
}
