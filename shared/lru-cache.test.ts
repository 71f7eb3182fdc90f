import { describe, expect, it } from 'vitest';
import { LruCache } from './lru-cache.js';

describe('LruCache', () => {
  it('drops the least recently used entry past its capacity, a read counting as a use, and says which', () => {
    const dropped: string[] = [];
    const cache = new LruCache<string, number>(2, (value, key) => dropped.push(`${key}=${value}`));
    cache.set('a', 1);
    cache.set('b', 2);
    expect(cache.get('a')).toBe(1);
    cache.set('c', 3);
    expect([cache.get('b'), cache.get('a'), cache.get('c'), cache.size]).toEqual([undefined, 1, 3, 2]);
    expect(dropped).toEqual(['b=2']);
  });

  it('replacing an entry neither grows it nor drops another', () => {
    const dropped: string[] = [];
    const cache = new LruCache<string, number>(2, (_, key) => dropped.push(key));
    cache.set('a', 1);
    cache.set('b', 2);
    cache.set('a', 10);
    cache.set('c', 3);
    expect([cache.get('a'), cache.get('b'), cache.size, dropped]).toEqual([10, undefined, 2, ['b']]);
  });
});
