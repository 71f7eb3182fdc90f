import { Histogram, Registry } from 'prom-client';
import { expect, test } from 'vitest';
import { JobHistogram } from './job-histogram.js';

test("exposes exactly what prom-client's own histogram does for the same observations", async () => {
  const buckets = [0.001, 0.01, 0.1, 1, 10];
  const theirs = new Registry();
  const ours = new Registry();
  const reference = new Histogram({ name: 'h_seconds', help: 'a histogram', labelNames: ['queue', 'kind'], buckets, registers: [theirs] });
  const fast = new JobHistogram({ name: 'h_seconds', help: 'a histogram', labelNames: ['queue', 'kind'], buckets, registers: [ours] });
  // Bounds themselves (le is inclusive), values between them, past the last, and zero.
  const values = [0, 0.001, 0.0011, 0.01, 0.5, 1, 9.99, 10, 11, 1e6];
  for (const [i, v] of values.entries()) {
    const labels = i % 3 === 0 ? ['default', 'system.noop'] : ['ai', 'manifest.extract'];
    reference.labels(...labels).observe(v);
    fast.labels(...labels).observe(v);
  }
  expect(await ours.metrics()).toBe(await theirs.metrics());
  expect(() => fast.labels('only-one')).toThrow(RangeError);
  fast.reset();
  expect(await ours.metrics()).toBe('# HELP h_seconds a histogram\n# TYPE h_seconds histogram\n');
});
