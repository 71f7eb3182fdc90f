import { Readable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { readCapped } from './read-capped.js';

const tooLarge = (seen: number) => new Error(`too large at ${seen}`);

describe('readCapped', () => {
  test('joins a body of up to maxBytes', async () => {
    const body = Readable.from([Buffer.from('ab'), Buffer.from('cd')]);
    expect(await readCapped(body, 4, tooLarge)).toEqual(Buffer.from('abcd'));
    expect(await readCapped(Readable.from([]), 0, tooLarge)).toEqual(Buffer.alloc(0));
  });

  test('stops at the first chunk past maxBytes and destroys the stream, never reading the rest', async () => {
    let pulled = 0;
    const body = new Readable({
      highWaterMark: 1,
      read() {
        pulled++;
        this.push(Buffer.alloc(1000));
      },
    });
    await expect(readCapped(body, 2500, tooLarge)).rejects.toThrow('too large at 3000');
    expect(body.destroyed).toBe(true);
    expect(pulled).toBeLessThan(10);
  });

  test('stops when the signal aborts', async () => {
    const controller = new AbortController();
    const reason = new Error('lease lost');
    async function* chunks() {
      yield Buffer.alloc(1);
      controller.abort(reason);
      yield Buffer.alloc(1);
    }
    await expect(readCapped(chunks(), 10, tooLarge, controller.signal)).rejects.toBe(reason);
  });
});
