import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import type { Sql, Tx } from '../db/connect.js';

/** A job row ready for COPY: every default applied, payload already JSON text. */
export interface CopyRow {
  id: string;
  tenant_id: string;
  kind: string;
  queue: string;
  payload: string;
  priority: number;
  /** ISO time, or null for the database's now(). */
  run_at: string | null;
  max_attempts: number;
  pattern_id: string | null;
  pattern_version: number | null;
}

/**
 * Which optional columns a COPY sends. A column every row of the bulk leaves at the table's own
 * default (system tenant, priority 100, now(), no pattern) is left out and filled in by the
 * table: fewer values to parse, ~0.3–0.4 µs of PostgreSQL CPU a job for a bulk of plain jobs.
 */
export interface CopyColumns {
  tenant_id: boolean;
  priority: boolean;
  run_at: boolean;
  /** pattern_id and pattern_version. */
  pattern: boolean;
}

// COPY's text format: backslash, tab, newline and carriage return must be escaped in values.
const SPECIAL = /[\\\t\n\r]/;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
function text(value: string): string {
  return SPECIAL.test(value) ? value.replace(/[\\\t\n\r]/g, (c) => ESCAPES[c]!) : value;
}

function columnList(c: CopyColumns): string {
  return [
    'id, kind, queue, payload, max_attempts',
    c.tenant_id && 'tenant_id',
    c.priority && 'priority',
    c.run_at && 'run_at',
    c.pattern && 'pattern_id, pattern_version',
  ].filter(Boolean).join(', ');
}

function line(r: CopyRow, c: CopyColumns): string {
  let s = `${r.id}\t${text(r.kind)}\t${text(r.queue)}\t${text(r.payload)}\t${r.max_attempts}`;
  if (c.tenant_id) s += `\t${r.tenant_id}`;
  if (c.priority) s += `\t${r.priority}`;
  // 'now' is PostgreSQL's documented special input for the transaction's start time, which is
  // what the column default gives: COPY cannot ask for the default per row before PostgreSQL 16.
  if (c.run_at) s += `\t${r.run_at ?? 'now'}`;
  if (c.pattern) s += `\t${r.pattern_id ?? '\\N'}\t${r.pattern_version ?? '\\N'}`;
  return s + '\n';
}

// ~30 KB a write: well under the socket's buffer (208 KB here), so the kernel always holds some
// rows for PostgreSQL while the next ones are built.
const ROWS_PER_WRITE = 256;
// How far ahead of PostgreSQL the rows may run before building pauses.
const MAX_BUFFERED_BYTES = 1 << 20;

/**
 * Inserts jobs with one COPY statement, built while PostgreSQL consumes it. The jobs_inserted
 * trigger writes their `job.queued` events. Atomic: the rows land all or none; rows are produced
 * lazily, so one that throws mid-stream aborts the COPY (CopyFail) and nothing lands.
 *
 * Building and parsing overlap only if this process keeps writing while PostgreSQL reads: rows go
 * out in small writes with a turn of the event loop between them, and building waits only when
 * far ahead. Big writes awaited one by one (a stream pipeline of 2,000-line chunks) left each side
 * idle while the other worked: wall time came close to the sum of both sides' CPU.
 */
export async function copyJobs(db: Sql | Tx, rows: Iterable<CopyRow>, columns: CopyColumns): Promise<void> {
  const target = await db.unsafe(`copy leasehold.jobs (${columnList(columns)}) from stdin`).writable();
  // Settles once PostgreSQL has taken the whole COPY or refused it (then with its error).
  const outcome = finished(target).then(
    () => undefined,
    (err: unknown) => err,
  );
  try {
    let out = '';
    let n = 0;
    for (const r of rows) {
      out += line(r, columns);
      if (++n % ROWS_PER_WRITE !== 0) continue;
      // Refused mid-stream (the server's error is in `outcome`): building the rest is wasted.
      if (target.destroyed) break;
      target.write(out);
      out = '';
      await (target.writableLength > MAX_BUFFERED_BYTES
        ? Promise.race([once(target, 'drain'), outcome])
        : new Promise((resolve) => setImmediate(resolve)));
    }
    if (!target.destroyed) {
      if (out) target.write(out);
      target.end();
    }
  } catch (err) {
    // CopyFail: PostgreSQL discards every row of the statement.
    target.destroy(err as Error);
    await outcome;
    throw err;
  }
  const err = await outcome;
  if (err !== undefined) throw err;
}
