import { constants, gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BufferBudget } from './buffer-budget.js';
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

const PREAMBLE = Buffer.from('retry: 2000\n\n');

function subscriber(opts: { gzip: boolean; endOnTerminal?: boolean; maxBufferedBytes?: number; budget?: BufferBudget; onClose?: () => void }) {
  return new SseSubscriber('t', {}, 0, {
    preamble: PREAMBLE,
    maxBufferedBytes: opts.maxBufferedBytes ?? 1 << 20,
    endOnTerminal: opts.endOnTerminal ?? false,
    gzip: opts.gzip,
    ...(opts.budget && { budget: opts.budget }),
    onClose: opts.onClose ?? (() => {}),
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

describe('SseSubscriber against the process buffer budget', () => {
  it.each([false, true])('a buffer many streams hold counts once, and leaves the budget when the last one has written it or gone (gzip: %s)', async (gzip) => {
    const budget = new BufferBudget(1 << 20, () => {});
    const [a, b] = [subscriber({ gzip, budget }), subscriber({ gzip, budget })];
    expect(budget.bytes).toBe(PREAMBLE.length);
    const chunk = chunkOf([frameOf(1), frameOf(2)]);
    for (const s of [a, b]) {
      s.goLive();
      s.deliver(chunk);
    }
    expect(budget.bytes).toBe(PREAMBLE.length + chunk.bytes.length);
    await drain(a, gzip ? 3 : 2);
    expect(a.queuedBytes).toBe(0);
    expect(budget.bytes).toBe(PREAMBLE.length + chunk.bytes.length);
    b.close();
    expect(budget.bytes).toBe(0);
  });

  it.each([false, true])('a stream its terminal event ended stays counted, and closable, until its last byte is written (gzip: %s)', async (gzip) => {
    const budget = new BufferBudget(1 << 20, () => {});
    let closes = 0;
    const frames = [1, 2, 3].map((id) => frameOf(id, id === 3 ? 'job.succeeded' : 'job.progress'));
    const read = subscriber({ gzip, budget, endOnTerminal: true, onClose: () => closes++ });
    const unread = subscriber({ gzip, budget, endOnTerminal: true, onClose: () => closes++ });
    const opening = budget.bytes; // shared by both
    for (const s of [read, unread]) {
      s.goLive();
      s.deliver(chunkOf(frames));
      expect(s.closed).toBe(true);
    }
    // Nothing written yet: both hold their bytes, and neither has left.
    expect(closes).toBe(0);
    expect(budget.bytes).toBe(opening + 2 * chunkOf(frames).bytes.length);

    // A client that reads to the end leaves once the end is written.
    const body = await drain(read);
    expect((gzip ? gunzipSync(body) : body).toString()).toBe(`retry: 2000\n\n${chunkOf(frames).bytes}`);
    expect(closes).toBe(1);
    expect(read.endedBy).toBeUndefined();

    // One that never reads keeps its bytes counted until the hub sheds it: then they go, and it
    // leaves once; its stream ends with nothing written.
    expect(unread.bufferedBytes).toBeGreaterThan(0);
    unread.close('lagging');
    expect(unread.endedBy).toBe('lagging');
    expect(budget.bytes).toBe(0);
    expect(closes).toBe(2);
    expect((await drain(unread)).length).toBe(0);
    unread.close('server');
    expect(closes).toBe(2);
  });

  it.each([false, true])('a client that keeps up writes straight through: its pieces never touch the budget (gzip: %s)', async (gzip) => {
    let holds = 0;
    const budget = new (class extends BufferBudget {
      override hold(item: object, bytes: number): void {
        holds++;
        super.hold(item, bytes);
      }
    })(1 << 20, () => {});
    const sub = subscriber({ gzip, budget });
    sub.goLive();
    const reader = sub.stream.getReader();
    const opening = [await reader.read(), ...(gzip ? [await reader.read()] : [])];
    const before = holds; // the opening waited for the first read
    const got: Buffer[] = [];
    // The server's read waits for each piece, as it does for a client whose socket takes them all.
    const written = async (put: () => void) => {
      const next = reader.read();
      await Promise.resolve();
      put();
      got.push(Buffer.from((await next).value!));
    };
    for (let id = 1; id <= 50; id++) {
      await written(() => sub.deliver(chunkOf([frameOf(id)])));
      await written(() => sub.send(Buffer.from(':\n\n')));
    }
    expect(holds - before).toBe(0);
    expect(budget.bytes).toBe(0);
    sub.end();
    const rest = [];
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest.push(Buffer.from(r.value));
    const body = Buffer.concat([...opening.map((r) => Buffer.from(r.value!)), ...got, ...rest]);
    const text = gzip ? gunzipSync(body).toString() : body.toString();
    expect(text).toBe(`retry: 2000\n\n${Array.from({ length: 50 }, (_, i) => `${frameOf(i + 1).bytes}:\n\n`).join('')}`);
  });

  it('live chunks held back during a replay count too, and go with the stream', () => {
    const budget = new BufferBudget(1 << 20, () => {});
    const sub = subscriber({ gzip: false, budget });
    const chunk = chunkOf([frameOf(1)]);
    sub.deliver(chunk);
    expect([sub.bufferedBytes, budget.bytes]).toEqual([PREAMBLE.length + chunk.bytes.length, PREAMBLE.length + chunk.bytes.length]);
    sub.close('lagging');
    expect(budget.bytes).toBe(0);
  });

  it("a replay waits for room below half of the stream's share of the budget, not half of its own cap", async () => {
    const budget = new BufferBudget(64 * 1024, () => {});
    budget.streams = 4; // a share of 16 kB
    const sub = subscriber({ gzip: false, maxBufferedBytes: 1 << 20, budget });
    const page = Array.from({ length: 40 }, (_, i) => frameOf(i + 1)); // ~2 kB
    sub.sendReplayed(page, () => false);
    await sub.whenRoom();
    const big = Array.from({ length: 200 }, (_, i) => frameOf(i + 41)); // ~10 kB: past 8 kB
    sub.sendReplayed(big, () => false);
    let roomy = false;
    const room = sub.whenRoom().then(() => (roomy = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(roomy).toBe(false);
    await drain(sub, 3);
    await room;
    expect(roomy).toBe(true);
  });

  it('passing the budget calls for shedding once, on the next turn of the event loop', async () => {
    let calls = 0;
    const budget = new BufferBudget(100, () => calls++);
    budget.hold(Buffer.alloc(60), 60);
    budget.hold(Buffer.alloc(60), 60);
    budget.hold(Buffer.alloc(60), 60);
    expect([budget.over, calls]).toEqual([true, 0]);
    await new Promise((r) => setImmediate(r));
    expect(calls).toBe(1);
  });
});
