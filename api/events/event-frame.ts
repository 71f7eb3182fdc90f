import { z } from '@hono/zod-openapi';
import { JobView } from '../job-view.js';

/** Event types that end a per-job stream. */
export const TERMINAL_TYPES: ReadonlySet<string> = new Set(['job.succeeded', 'job.failed', 'job.cancelled']);
/** Job statuses after which a job runs no more (unless retried). */
export const TERMINAL_STATUSES: ReadonlySet<string> = new Set(['succeeded', 'failed', 'cancelled']);

/** The event types that put a job in each status: what the `status` filter of a stream selects. */
export const TYPES_BY_STATUS: Record<string, string[]> = {
  queued: ['job.queued', 'job.retrying'],
  running: ['job.running', 'job.progress'],
  succeeded: ['job.succeeded'],
  failed: ['job.failed'],
  cancelled: ['job.cancelled'],
};

/** A job's columns as the event statements read them (api/events/event-sql.ts VIEW_COLUMNS). */
export interface JobViewRow {
  id: string;
  tenant_id: string;
  kind: string;
  status: string;
  attempts: number;
  max_attempts: number;
  progress: number | null;
  progress_message: string | null;
  last_error: string | null;
  pattern_id: string | null;
}

/** What an event row adds to its job's view. */
export interface EventFacts {
  id: number;
  type: string;
  attempt: number | null;
  data: Record<string, unknown> | null;
  created_at: Date;
}

/**
 * The `data:` of every stream event: the job as it stands when the event is sent (the fields a
 * status display needs; GET /v1/jobs/:id has the rest), and when the event happened. Kept small on
 * purpose: a burst to 2,000 clients writes every byte 2,000 times.
 */
export const JobEventData = JobView.pick({
  id: true,
  kind: true,
  status: true,
  attempts: true,
  max_attempts: true,
  progress: true,
  progress_message: true,
  last_error: true,
  pattern_id: true,
})
  .extend({
    result_url: z.string().nullable().openapi({ description: 'Where the output is, once the job has succeeded: GET it with the same credentials.' }),
    at: z.iso.datetime({ offset: true }).openapi({ description: 'When the event happened.' }),
    attempt: z.number().int().nullable().optional().openapi({ description: 'The attempt the event belongs to.' }),
    detail: z.record(z.string(), z.unknown()).optional().openapi({ description: 'Per type, when there is one: {progress, message}, {error, run_at}, {reason}.' }),
  })
  .openapi('JobEvent');

/** One SSE event, encoded once and written to every subscriber that wants it. */
export interface Frame {
  id: number;
  jobId: string;
  type: string;
  bytes: Buffer;
}

/** The bytes of `frames` in order: the one frame's own buffer when there is only one. */
export function frameBytes(frames: readonly Frame[]): Buffer {
  return frames.length === 1 ? frames[0]!.bytes : Buffer.concat(frames.map((f) => f.bytes));
}

/** The JSON of `data:` for a job and one of its events. */
export function eventData(view: JobViewRow, event: EventFacts | null): z.output<typeof JobEventData> {
  return {
    id: view.id,
    kind: view.kind,
    status: view.status as z.output<typeof JobEventData>['status'],
    attempts: view.attempts,
    max_attempts: view.max_attempts,
    progress: view.progress,
    progress_message: view.progress_message,
    last_error: view.last_error,
    pattern_id: view.pattern_id,
    result_url: view.status === 'succeeded' ? `/v1/jobs/${view.id}/manifest` : null,
    at: (event ? event.created_at : new Date()).toISOString(),
    ...(event && { attempt: event.attempt }),
    ...(event?.data ? { detail: event.data } : {}),
  };
}

/** `id:`/`event:`/`data:` lines of one event (the JSON holds no raw newline, so one data line). */
export function frame(view: JobViewRow, event: EventFacts): Frame {
  const text = `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(eventData(view, event))}\n\n`;
  return { id: event.id, jobId: view.id, type: event.type, bytes: Buffer.from(text) };
}
