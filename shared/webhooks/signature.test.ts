import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, test } from 'vitest';
import { DEFAULT_WEBHOOK_SCHEDULE, parseSchedule, retryDelayMs } from './schedule.js';
import { SecretUnavailable, newSigningSecret, openSecret, sealSecret, secretKeyBytes } from './secrets.js';
import { signWebhook } from './signature.js';

describe('signWebhook', () => {
  const body = JSON.stringify({ event: 'job.succeeded', job_id: 'j1' });
  const now = Math.floor(Date.now() / 1000);

  test('verifies with the standardwebhooks package, and the hex header is the HMAC of the body', () => {
    const secret = newSigningSecret();
    const h = signWebhook({ id: 'd1', timestamp: now, body, secrets: [secret] });
    expect(new Webhook(secret).verify(body, h)).toEqual(JSON.parse(body));
    expect(h['x-leasehold-signature']).toBe(`sha256=${createHmac('sha256', secretKeyBytes(secret)).update(body).digest('hex')}`);
    expect(() => new Webhook(secret).verify(`${body} `, h)).toThrow();
    expect(() => new Webhook(secret).verify(body, { ...h, 'webhook-id': 'd2' })).toThrow();
    expect(() => new Webhook(newSigningSecret()).verify(body, h)).toThrow();
  });

  test('two secrets give two space-separated signatures, either of which verifies', () => {
    const [a, b] = [newSigningSecret(), newSigningSecret()];
    const h = signWebhook({ id: 'd1', timestamp: now, body, secrets: [a, b] });
    expect(h['webhook-signature'].split(' ')).toHaveLength(2);
    expect(h['x-leasehold-signature'].split(',')).toHaveLength(2);
    expect(() => new Webhook(a).verify(body, h)).not.toThrow();
    expect(() => new Webhook(b).verify(body, h)).not.toThrow();
  });
});

describe('stored secrets', () => {
  test('sealed under a key they open only under that key; without one they are kept as they are', () => {
    const secret = newSigningSecret();
    const sealed = sealSecret(secret, 'sixteen-chars-or-more');
    expect(sealed).toMatch(/^v1:/);
    expect(sealed).not.toContain(secret.slice(6));
    expect(sealSecret(secret, 'sixteen-chars-or-more')).not.toBe(sealed);
    expect(openSecret(sealed, 'sixteen-chars-or-more')).toBe(secret);
    expect(() => openSecret(sealed, 'another-key-entirely')).toThrow(SecretUnavailable);
    expect(() => openSecret(sealed, undefined)).toThrow(/WEBHOOK_SECRET_KEY/);
    expect(openSecret(sealSecret(secret, undefined), 'any-key-at-all-123')).toBe(secret);
  });
});

describe('retry schedule', () => {
  test("the default is Standard Webhooks' schedule stretched to about three days", () => {
    const delays = parseSchedule(DEFAULT_WEBHOOK_SCHEDULE)!;
    expect(delays.slice(0, 7)).toEqual([5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]);
    const hours = delays.reduce((a, b) => a + b, 0) / 3_600_000;
    expect(hours).toBeGreaterThan(60);
    expect(hours).toBeLessThan(80);
    expect(retryDelayMs(delays, 1)).toBe(5_000);
    expect(retryDelayMs(delays, delays.length + 1)).toBeUndefined();
  });

  test('accepts units and refuses anything else', () => {
    expect(parseSchedule('100ms, 1.5s,2m,1h,1d')).toEqual([100, 1_500, 120_000, 3_600_000, 86_400_000]);
    for (const bad of ['', ',', '5', '5x', '-1s', 'soon']) expect(parseSchedule(bad), bad).toBeUndefined();
  });
});
