import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import { AppError } from '#shared/errors.js';
import { PREPARED } from '#shared/jobs/queue-sql.js';
import { isUuid } from '#shared/jobs/uuid.js';
import type { Logger } from '#shared/log.js';
import type { AppDeps, ApiEnv } from '../context.js';
import { JobEventData, TERMINAL_STATUSES, TYPES_BY_STATUS, frame, type JobViewRow } from '../events/event-frame.js';
import type { EventHub } from '../events/event-hub.js';
import { READ_JOB_STREAM_START, REPLAY_EVENTS, REPLAY_JOB_EVENTS } from '../events/event-sql.js';
import { acceptsGzip } from '../events/gzip-segments.js';
import type { SseSubscriber, SubscriberFilter } from '../events/sse-subscriber.js';
import { JOB_STATUSES } from '../job-view.js';
import { requireScope } from '../middleware/authenticate.js';
import { problemResponses } from '../openapi-problems.js';

const EVENT_ID = /^\d{1,15}$/;
const eventId = z.string().regex(EVENT_ID, 'must be an event id (a non-negative integer)');
// Events per replay read. A page goes into its stream whole, and one page of a client that stopped
// reading then sits in the socket's buffer, outside SSE_BUFFER_BUDGET_BYTES: 100 events of ~300
// bytes keep that near 30 kB a stream (500 made it ~150 kB).
const REPLAY_PAGE = 100;

const StreamQuery = {
  last_event_id: eventId.optional().openapi({ description: 'For clients that cannot set the Last-Event-ID header; the header wins when both are sent.' }),
  access_token: z.string().optional().openapi({ description: "The API key or JWT, for browsers' EventSource, which cannot set headers. Accepted on event streams only." }),
};
const EventsQuery = z
  .object({
    kind: z.string().regex(/^[^\s\u0000]{1,200}$/, 'must be 1–200 characters without spaces').optional(),
    pattern_id: z.uuid().optional(),
    status: z.enum(JOB_STATUSES).optional().openapi({ description: 'Only events that put a job in this status (job.retrying counts as queued, job.progress as running).' }),
    ...StreamQuery,
  })
  .strict();
const JobEventsQuery = z.object(StreamQuery).strict();
const Headers = z.object({
  'last-event-id': eventId.optional().openapi({ description: 'Resume after this event: every later event is replayed before the stream goes live.' }),
});
const IdParam = z.object({ id: z.string().openapi({ format: 'uuid', description: 'A job id; anything else is a 404.' }) });

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  // nginx and similar proxies buffer responses unless told not to; events must go out as they come.
  'x-accel-buffering': 'no',
  vary: 'accept-encoding',
};
/** A client that accepts gzip gets it: a burst of JSON events shrinks about tenfold on the wire. */
const SSE_GZIP_HEADERS = { ...SSE_HEADERS, 'content-encoding': 'gzip' };
const stream = (description: string) => ({
  description,
  content: {
    'text/event-stream': {
      schema: z.string().openapi({
        description:
          'Server-sent events. Each has `id:` (the job_events id), `event:` (job.queued, job.running, job.progress, job.retrying, ' +
          'job.succeeded, job.failed, job.cancelled) and `data:` (a JobEvent as JSON). ' +
          'Comment lines keep the connection alive. A client that sends `Accept-Encoding: gzip` (browsers and fetch do) gets ' +
          'the stream gzip-compressed (`Content-Encoding: gzip`), flushed after every read of events.',
      }),
    },
  },
});

/** GET /v1/events and GET /v1/jobs/:id/events: live job status over SSE, resumable by Last-Event-ID. */
export function eventsRoutes(deps: AppDeps): OpenAPIHono<ApiEnv> {
  const { sql } = deps;
  const app = new OpenAPIHono<ApiEnv>();
  app.openAPIRegistry.register('JobEvent', JobEventData);
  const read = requireScope('jobs:read');
  const hubOf = (): EventHub => {
    if (!deps.events) throw new AppError('unavailable', 'this process does not serve event streams');
    return deps.events;
  };
  // Every open stream is counted on /metrics until it goes, however it goes.
  const subscribers = deps.metrics?.eventStreamSubscribers.labels('events');
  const subscribe = (hub: EventHub, tenantId: string, filter: SubscriberFilter, endOnTerminal: boolean, acceptEncoding: string | undefined): SseSubscriber => {
    // Each stream holds memory here (up to SSE_CLIENT_BUFFER_BYTES when its client is slow, all of
    // them SSE_BUFFER_BUDGET_BYTES) and a socket: the process has a ceiling, and one tenant may not
    // take the process's all. A 503 tells a load balancer or client to try again, elsewhere or later.
    const total = deps.config.SSE_MAX_STREAMS;
    if (hub.size >= total) {
      throw new AppError('unavailable', `this server already has ${total} event streams open; try again shortly`, {}, { 'retry-after': '5' });
    }
    const max = deps.config.SSE_MAX_STREAMS_PER_TENANT;
    if (hub.tenantSize(tenantId) >= max) {
      throw new AppError('rate_limited', `this tenant already has ${max} event streams open on this server; close one first`, {}, { 'retry-after': '5' });
    }
    const sub = hub.subscribe(tenantId, filter, { endOnTerminal, acceptsGzip: acceptsGzip(acceptEncoding), ...(subscribers && { onGone: () => subscribers.dec() }) });
    subscribers?.inc();
    return sub;
  };
  const open = (sub: SseSubscriber) => new Response(sub.stream, { status: 200, headers: sub.gzip ? SSE_GZIP_HEADERS : SSE_HEADERS });

  const all = createRoute({
    method: 'get',
    path: '/events',
    tags: ['events'],
    summary: "Every event of the caller's jobs, live (SSE)",
    description:
      'With Last-Event-ID (or `?last_event_id=`), every later event is replayed from the table before the stream goes live, ' +
      'with no gap and no duplicate at the seam. A client that falls too far behind is disconnected and resumes the same way.',
    security: [{ bearer: [] }],
    middleware: [read] as const,
    request: { query: EventsQuery, headers: Headers },
    responses: {
      200: stream('The event stream; `data:` is a JobEvent.'),
      ...problemResponses({ 422: 'A bad filter or event id', 429: 'SSE_MAX_STREAMS_PER_TENANT streams of this tenant are open on this server', 503: 'SSE_MAX_STREAMS streams are open on this server (see Retry-After), or it does not serve event streams' }),
    },
  });
  app.openapi(all, async (c) => {
    const hub = hubOf();
    const q = c.req.valid('query');
    const after = lastEventId(c.req.valid('header')['last-event-id'] ?? q.last_event_id);
    const { tenantId } = c.get('principal');
    const types = q.status && TYPES_BY_STATUS[q.status];
    const filter = { ...(q.kind && { kind: q.kind }), ...(q.pattern_id && { patternId: q.pattern_id }), ...(types && { types }) };
    const sub = subscribe(hub, tenantId, filter, false, c.req.header('accept-encoding'));
    if (after === undefined) sub.goLive();
    else {
      sub.skipUpTo(after);
      startReplay(hub, sub, after, c.get('log'), (from, to) =>
        sql.unsafe<ReplayRow[]>(REPLAY_EVENTS, [tenantId, from, to, REPLAY_PAGE, q.kind ?? null, q.pattern_id ?? null, types ?? null], PREPARED),
      );
    }
    return open(sub) as never;
  });

  const one = createRoute({
    method: 'get',
    path: '/jobs/{id}/events',
    tags: ['events'],
    summary: "One job's events, live (SSE); ends after its terminal event",
    description:
      "Replays the job's current run from its first event (job.queued), then sends its events as they happen, and ends after " +
      'job.succeeded, job.failed or job.cancelled: a job already over sends its run and ends. With Last-Event-ID only the later ' +
      'events are replayed; a reconnect after the terminal event gets 204, which tells EventSource to stop.',
    security: [{ bearer: [] }],
    middleware: [read] as const,
    request: { params: IdParam, query: JobEventsQuery, headers: Headers },
    responses: {
      200: stream('The event stream; `data:` is a JobEvent.'),
      204: { description: 'The job has ended and the client has seen its terminal event: nothing more will come.' },
      ...problemResponses({ 404: 'No such job for this tenant', 422: 'A bad event id', 429: 'SSE_MAX_STREAMS_PER_TENANT streams of this tenant are open on this server', 503: 'SSE_MAX_STREAMS streams are open on this server (see Retry-After), or it does not serve event streams' }),
    },
  });
  app.openapi(one, async (c) => {
    const hub = hubOf();
    const { id } = c.req.valid('param');
    const after = lastEventId(c.req.valid('header')['last-event-id'] ?? c.req.valid('query').last_event_id);
    const { tenantId } = c.get('principal');
    if (!isUuid(id)) throw new AppError('not_found', `no job ${id}`);
    // Subscribe before reading where to start: an event committed in between is then delivered, not lost.
    const sub = subscribe(hub, tenantId, { jobId: id }, true, c.req.header('accept-encoding'));
    let start: JobStreamStart | undefined;
    try {
      [start] = await sql.unsafe<JobStreamStart[]>(READ_JOB_STREAM_START, [id, tenantId], PREPARED);
    } catch (err) {
      sub.close();
      throw err;
    }
    if (!start) {
      sub.close();
      throw new AppError('not_found', `no job ${id}`);
    }
    const ended = TERMINAL_STATUSES.has(start.status);
    if (ended && after !== undefined && start.terminal_event_id !== null && start.terminal_event_id <= after) {
      sub.close();
      return c.body(null, 204) as never;
    }
    // Without Last-Event-ID: the job's current run from its first event, so a job already over
    // sends its whole run and ends, and one retried after it ended does not end at the old run's end.
    const from = after ?? (ended ? start.previous_terminal_event_id : start.terminal_event_id) ?? 0;
    const response = open(sub);
    sub.skipUpTo(from);
    startReplay(hub, sub, from, c.get('log'), (lo, hi) =>
      sql.unsafe<ReplayRow[]>(REPLAY_JOB_EVENTS, [id, lo, hi, REPLAY_PAGE, tenantId], PREPARED),
    );
    return response as never;
  });

  return app;
}

/** Where a per-job stream starts (READ_JOB_STREAM_START). */
interface JobStreamStart {
  status: string;
  terminal_event_id: number | null;
  previous_terminal_event_id: number | null;
}

/** A replayed event with its job's view. */
type ReplayRow = JobViewRow & { event_id: number; type: string; attempt: number | null; data: Record<string, unknown> | null; event_at: Date };

function lastEventId(raw: string | undefined): number | undefined {
  return raw === undefined ? undefined : Number(raw);
}

/** Replays in the background; a replay that fails (the database away) closes the stream, and the client resumes. */
function startReplay(hub: EventHub, sub: SseSubscriber, after: number, log: Logger, page: (from: number, to: number) => Promise<ReplayRow[]>): void {
  void replay(hub, sub, after, page).catch((err: unknown) => (log.warn({ err }, 'event replay failed; closing the stream'), sub.close()));
}

/**
 * Sends the events in (after, the subscriber's start] page by page, as fast as the client takes
 * them, then releases the live events that arrived meanwhile: ids above the start come only live,
 * ids at or below it only from here, so the seam has no gap and no duplicate.
 */
async function replay(
  hub: EventHub,
  sub: SseSubscriber,
  after: number,
  page: (from: number, to: number) => Promise<ReplayRow[]>,
): Promise<void> {
  let from = after;
  const to = sub.startCursor;
  while (from < to && !sub.closed) {
    const rows = await page(from, to);
    const frames = rows.map((r) => frame(r, { id: r.event_id, type: r.type, attempt: r.attempt, data: r.data, created_at: r.event_at }));
    sub.sendReplayed(frames, (id) => hub.isWatched(id));
    if (rows.length < REPLAY_PAGE) break;
    from = rows[rows.length - 1]!.event_id;
    await sub.whenRoom();
  }
  sub.goLive();
}
