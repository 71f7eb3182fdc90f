import type { Sql, Tx } from '../db/connect.js';
import { KINDS, type PayloadOf } from '../jobs/kinds.js';
import { INGEST_JOBS, PREPARED } from '../jobs/queue-sql.js';
import { uuidv7 } from '../jobs/uuid.js';
import type { Refusal } from '../governor/governor.js';

/** One image to extract a manifest from. */
export type IngestImage = PayloadOf<'manifest.extract'>['image'];

/** What an ingest asked for, beyond the pattern and the images. */
export interface IngestOptions {
  webhookUrl?: string;
  metadata?: Record<string, unknown>;
  priority?: number;
  /** The estimated cost of each job in micro-dollars: recorded on it, and reserved when the governor meters the tenant. */
  estimateMicros?: number;
}

/** The outcome: the pattern was missing, inactive, or its jobs were inserted with their ids. */
export type IngestResult =
  | { outcome: 'not_found' }
  | { outcome: 'inactive'; version: number }
  | { outcome: 'refused'; refusal: Refusal }
  | { outcome: 'queued'; version: number; ids: string[]; queue: string };

const SPEC = KINDS['manifest.extract'];

/**
 * Inserts one manifest.extract job per image for a pattern's current version, all or none, in
 * one statement (INGEST_JOBS) that also reserves their estimated cost when the governor meters the
 * tenant (or a global ceiling is set): a refusal inserts none. The payloads are checked against the kind's schema here; the
 * database stamps the version it read into each of them.
 */
export async function enqueueIngest(
  db: Sql | Tx,
  tenantId: string,
  patternId: string,
  images: IngestImage[],
  opts: IngestOptions = {},
): Promise<IngestResult> {
  const ids = images.map(() => uuidv7());
  const payloads = images.map((image) =>
    JSON.stringify(
      // pattern_version 1 stands in for the version the statement reads and writes in.
      SPEC.payload.parse({
        pattern_id: patternId,
        pattern_version: 1,
        image,
        ...(opts.webhookUrl !== undefined && { webhook_url: opts.webhookUrl }),
        ...(opts.metadata !== undefined && { metadata: opts.metadata }),
      }),
    ),
  );
  const [row] = await db.unsafe<{ version: number | null; is_active: boolean | null; refusal: Refusal | null; inserted: number }[]>(
    INGEST_JOBS,
    [patternId, tenantId, SPEC.queue, opts.priority ?? 100, SPEC.maxAttempts, ids, payloads, opts.estimateMicros ?? null],
    PREPARED,
  );
  if (row!.version === null) return { outcome: 'not_found' };
  if (!row!.is_active) return { outcome: 'inactive', version: row!.version };
  if (row!.refusal) return { outcome: 'refused', refusal: row!.refusal };
  return { outcome: 'queued', version: row!.version, ids, queue: SPEC.queue };
}
