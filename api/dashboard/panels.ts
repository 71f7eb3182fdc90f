/** How a cell is shown: plain text, a status badge, a monospace id, or the requeue button. */
export type CellKind = 'text' | 'status' | 'mono' | 'requeue';

/** One column of a dashboard table; `key` names the field of each row. */
export interface Column {
  key: string;
  label: string;
  kind?: CellKind;
}

/** A table on the dashboard: the server renders it first, the page's script re-renders it live. */
export interface Panel {
  title: string;
  columns: Column[];
  /** Shown when there are no rows. */
  empty: string;
}

/** Rows of one panel, already formatted for display (every value a string). */
export interface PanelData {
  rows: Record<string, string>[];
  /** A line under the title: what the panel counts over, or why it is empty. */
  note?: string;
}

/** A time as panels show it: `YYYY-MM-DD hh:mm:ss`, UTC. */
export const utcTime = (d: Date) => d.toISOString().replace('T', ' ').slice(0, 19);

/** Every table, in page order. The same definitions drive the server render and the live one. */
export const PANELS = {
  queues: {
    title: 'Queues: depth and throughput',
    empty: 'No jobs queued or running, none finished in the last minute.',
    columns: [
      { key: 'queue', label: 'queue' },
      { key: 'kind', label: 'kind' },
      { key: 'ready', label: 'ready' },
      { key: 'scheduled', label: 'scheduled' },
      { key: 'running', label: 'running' },
      { key: 'succeeded_1m', label: 'succeeded / min' },
      { key: 'failed_1m', label: 'failed / min' },
      { key: 'retried_1m', label: 'retried / min' },
    ],
  },
  recent: {
    title: 'Latest jobs',
    empty: 'No jobs yet.',
    columns: [
      { key: 'id', label: 'job', kind: 'mono' },
      { key: 'tenant', label: 'tenant' },
      { key: 'queue', label: 'queue' },
      { key: 'kind', label: 'kind' },
      { key: 'status', label: 'status', kind: 'status' },
      { key: 'attempts', label: 'attempts' },
      { key: 'updated', label: 'updated (UTC)' },
    ],
  },
  leases: {
    title: 'Running leases',
    empty: 'No job is running.',
    columns: [
      { key: 'id', label: 'job', kind: 'mono' },
      { key: 'kind', label: 'kind' },
      { key: 'queue', label: 'queue' },
      { key: 'owner', label: 'worker' },
      { key: 'attempts', label: 'attempt' },
      { key: 'heartbeat_age', label: 'heartbeat age' },
      { key: 'expires_in', label: 'lease expires in' },
    ],
  },
  failures: {
    title: 'Recent failures',
    empty: 'No failed attempts recently.',
    columns: [
      { key: 'at', label: 'at' },
      { key: 'job_id', label: 'job', kind: 'mono' },
      { key: 'tenant', label: 'tenant' },
      { key: 'kind', label: 'kind' },
      { key: 'type', label: 'event', kind: 'status' },
      { key: 'error', label: 'error' },
    ],
  },
  deadLetters: {
    title: 'Dead letters',
    empty: 'The dead-letter queue is empty.',
    columns: [
      { key: 'failed_at', label: 'failed at' },
      { key: 'job_id', label: 'job', kind: 'mono' },
      { key: 'tenant', label: 'tenant' },
      { key: 'queue', label: 'queue' },
      { key: 'kind', label: 'kind' },
      { key: 'attempts', label: 'attempts' },
      { key: 'last_error', label: 'last error' },
      { key: 'id', label: '', kind: 'requeue' },
    ],
  },
  governor: {
    title: 'Governor: spend against ceilings',
    empty: 'No spend recorded.',
    columns: [
      { key: 'scope', label: 'ceiling' },
      { key: 'spent', label: 'spent (USD)' },
      { key: 'ceiling', label: 'ceiling (USD)' },
      { key: 'used', label: 'used' },
      { key: 'drift', label: 'estimate drift' },
    ],
  },
  webhooks: {
    title: 'Webhook delivery health',
    empty: 'No deliveries recorded.',
    columns: [
      { key: 'webhook', label: 'webhook' },
      { key: 'tenant', label: 'tenant' },
      { key: 'delivered', label: 'delivered (1 h)' },
      { key: 'failed', label: 'failed (1 h)' },
      { key: 'pending', label: 'pending' },
      { key: 'state', label: 'state' },
      { key: 'last_error', label: 'last error' },
    ],
  },
} satisfies Record<string, Panel>;

/** The name of one panel. */
export type PanelName = keyof typeof PANELS;
