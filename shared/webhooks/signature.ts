import { createHmac } from 'node:crypto';
import { secretKeyBytes } from './secrets.js';

/** The headers that sign one webhook attempt. */
export interface SignatureHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
  'x-leasehold-signature': string;
}

/**
 * Signs a body per Standard Webhooks: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one
 * space-separated entry per secret (the current one first; a rotated-out one during its grace
 * period), plus `X-Leasehold-Signature: sha256=<hex HMAC of the body>` under the same secrets,
 * comma-separated.
 */
export function signWebhook(opts: { id: string; timestamp: number; body: string; secrets: readonly string[] }): SignatureHeaders {
  const { id, timestamp, body, secrets } = opts;
  if (secrets.length === 0) throw new Error('no secret to sign with');
  const keys = secrets.map(secretKeyBytes);
  const v1 = keys.map((k) => `v1,${createHmac('sha256', k).update(`${id}.${timestamp}.${body}`).digest('base64')}`);
  const hex = keys.map((k) => `sha256=${createHmac('sha256', k).update(body).digest('hex')}`);
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': v1.join(' '),
    'x-leasehold-signature': hex.join(','),
  };
}
