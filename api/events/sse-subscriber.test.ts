import { constants, gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { Frame } from './event-frame.js';
import { SseSubscriber } from './sse-subscriber.js';

const frameOf = (id: number, type = 'job.queued'): Frame => {
  const bytes = Buffer.from(`id: ${id}\nevent: ${type}\ndata: {"id":"job-${id % 3}","n":${id}}\n\n`);
  return { id, jobId: `job-${id % 3}`, type, bytes };
};
const chunkOf = (frames: Frame[]) => ({ frames, bytes: Buffer.concat(frames.map((f) => f.bytes)), late: false });

/** Reads the subscriber's stream to its end (or until `stopAfter` chunks), as the HTTP server would. */
async function drain(sub: SseSubscriber, stopAfter = Infinity): Promise<Buffer> {
  const reader = sub.stream.getReader();
  const out: Buffer[] = [];
  for (let n = 0; n < stopAfter; n++) {
    const { value, done } = await reader.read();
    if (done) break;
    out.push(Buffer.from(value));
  }
  reader.releaseLock();
  return Buffer.concat(out);
}

function subscriber(opts: { gzip: boolean; endOnTerminal?: boolean; maxBufferedBytes?: number }) {
  return new SseSubscriber('t', {}, 0, {
    preamble: Buffer.from('retry: 2000\n\n'),
    maxBufferedBytes: opts.maxBufferedBytes ?? 1 << 20,
    endOnTerminal: opts.endOnTerminal ?? false,
    gzip: opts.gzip,
    onClose: () => {},
  });
}

describe('SseSubscriber with gzip', () => {
  it('writes the same text as a plain stream, and a stream ended by its terminal event is a complete gzip member', async () => {
    const frames = [1, 2, 3, 4].map((id) => frameOf(id, id === 4 ? 'job.succeeded' : 'job.running'));
    const zipped = subscriber({ gzip: true, endOnTerminal: true });
    const plain = subscriber({ gzip: false, endOnTerminal: true });
    for (const s of [zipped, plain]) {
      s.goLive();
      s.deliver(chunkOf(frames.slice(0, 2)));
      s.send(Buffer.from(':\n\n'));
      s.deliver(chunkOf(frames.slice(2)));
    }
    const [z, p] = await Promise.all([drain(zipped), drain(plain)]);
    expect(p.toString()).toMatch(/^retry: 2000\n\nid: 1\n/);
    expect(p.toString()).toContain('event: job.succeeded');
    // Strict: a wrong CRC or length in the trailer throws.
    expect(gunzipSync(z).toString()).toBe(p.toString());
  });

  it('a stream the server closes (shutdown, a lagging client) still ends with a true trailer over what was written', async () => {
    const sub = subscriber({ gzip: true, maxBufferedBytes: 65_536 });
    sub.goLive();
    const head = drain(sub, 3); // header, preamble, first chunk
    sub.deliver(chunkOf([frameOf(1), frameOf(2)]));
    const first = await head;
    // Then more than the budget waits unread: the client is dropped, the queued bytes with it.
    for (let id = 3; id < 3_000; id++) sub.deliver(chunkOf([frameOf(id)]));
    expect(sub.closed).toBe(true);
    expect(sub.endedBy).toBe('lagging');
    const rest = await drain(sub);
    const text = gunzipSync(Buffer.concat([first, rest])).toString();
    expect(text).toBe(`retry: 2000\n\n${frameOf(1).bytes}${frameOf(2).bytes}`);
  });

  it('a chunk shared by a group is deflated once: every subscriber writes the same bytes', async () => {
    const chunk = chunkOf([frameOf(1), frameOf(2)]);
    const subs = [subscriber({ gzip: true }), subscriber({ gzip: true })];
    const bodies = await Promise.all(
      subs.map(async (s) => {
        s.goLive();
        const got = drain(s, 3);
        s.deliver(chunk);
        return got;
      }),
    );
    expect(bodies[0]!.equals(bodies[1]!)).toBe(true);
    expect(gunzipSync(bodies[0]!, { finishFlush: constants.Z_SYNC_FLUSH }).toString()).toBe(`retry: 2000\n\n${chunk.bytes}`);
  });
});
