import { EventSource } from 'eventsource';
import { waitFor } from './wait.js';

/** Every event type a stream sends. */
export const EVENT_TYPES = ['job.queued', 'job.running', 'job.progress', 'job.retrying', 'job.succeeded', 'job.failed', 'job.cancelled'];

/** One event as an EventSource client received it. */
export interface Received {
  id: string;
  type: string;
  data: Record<string, any>;
}

/** A real EventSource (the `eventsource` package) on a stream, collecting what it receives. */
export interface StreamClient {
  es: EventSource;
  events: Received[];
  /** Ids of the events that carry one, as numbers, in arrival order. */
  ids(): number[];
  /** Waits until `check(events)` holds. */
  until(check: (events: Received[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
  close(): void;
}

/**
 * Opens `path` on `base` with `Authorization: Bearer <key>` (or none, when the key is in the
 * URL), and `Last-Event-ID` on the first request when given; reconnects send the last id seen,
 * as browsers do.
 */
export function openStream(base: string, path: string, opts: { key?: string; lastEventId?: string } = {}): StreamClient {
  const events: Received[] = [];
  let first = true;
  const es = new EventSource(`${base}${path}`, {
    fetch: (url, init) => {
      const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
      if (opts.key) headers.authorization = `Bearer ${opts.key}`;
      if (first && opts.lastEventId !== undefined) headers['last-event-id'] = opts.lastEventId;
      first = false;
      return fetch(url, { ...init, headers });
    },
  });
  for (const type of EVENT_TYPES) {
    es.addEventListener(type, (e: MessageEvent) => events.push({ id: e.lastEventId, type, data: JSON.parse(e.data as string) }));
  }
  return {
    es,
    events,
    ids: () => events.map((e) => Number(e.id)),
    until: async (check, what, timeoutMs = 30_000) => {
      await waitFor(() => check(events), what, timeoutMs);
    },
    close: () => es.close(),
  };
}
