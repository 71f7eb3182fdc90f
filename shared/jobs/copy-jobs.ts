import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
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

// COPY's text format: backslash, tab, newline and carriage return must be escaped in values.
const SPECIAL = /[\\\t\n\r]/;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
function text(value: string): string {
  return SPECIAL.test(value) ? value.replace(/[\\\t\n\r]/g, (c) => ESCAPES[c]!) : value;
}

const LINES_PER_WRITE = 2_000;

function* lines(rows: Iterable<CopyRow>): Generator<string> {
  let out = '';
  let n = 0;
  for (const r of rows) {
    // 'now' is PostgreSQL's documented special input for the transaction's start time: the
    // column default cannot be asked for per row in COPY before PostgreSQL 16.
    out += `${r.id}\t${r.tenant_id}\t${text(r.kind)}\t${text(r.queue)}\t${text(r.payload)}\t${r.priority}\t${r.run_at ?? 'now'}\t${r.max_attempts}\t${r.pattern_id ?? '\\N'}\t${r.pattern_version ?? '\\N'}\n`;
    if (++n % LINES_PER_WRITE === 0) {
      yield out;
      out = '';
    }
  }
  if (out) yield out;
}

/**
 * Inserts jobs with one COPY statement, streamed while it is written: ~1.5× the rows per second
 * of INSERT … SELECT unnest(…) here (143–148k vs 91–104k jobs/s for 100,000 no-op jobs). The
 * jobs_inserted trigger writes their `job.queued` events. Atomic: the rows land all or none; rows
 * are produced lazily, so one that throws mid-stream aborts the COPY (CopyFail) and nothing lands.
 */
export async function copyJobs(db: Sql | Tx, rows: Iterable<CopyRow>): Promise<void> {
  const target = await db`
    copy leasehold.jobs (id, tenant_id, kind, queue, payload, priority, run_at, max_attempts, pattern_id, pattern_version)
    from stdin`.writable();
  await pipeline(Readable.from(lines(rows)), target);
}
