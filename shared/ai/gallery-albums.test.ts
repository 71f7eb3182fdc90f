import { describe, expect, test } from 'vitest';
import { checkAlbums } from './gallery-albums.js';

const keys = ['a.png', 'b.png', 'c.png'];
const album = (title: string, images: string[]) => ({ title, description: `${title} shots`, images });

describe('checkAlbums: every image in exactly one album', () => {
  test('accepts a grouping that places each image once, and drops empty albums', () => {
    const r = checkAlbums({ albums: [album('Beach', ['c.png', 'a.png']), album('Empty', []), album('City', ['b.png'])] }, keys);
    expect(r).toEqual({ ok: true, albums: [album('Beach', ['c.png', 'a.png']), album('City', ['b.png'])] });
  });

  test.each([
    ['an image left out', { albums: [album('Beach', ['a.png', 'b.png'])] }, /1 image\(s\) are in no album: c\.png/],
    ['an image in two albums', { albums: [album('Beach', ['a.png', 'b.png']), album('City', ['b.png', 'c.png'])] }, /b\.png is in more than one album/],
    ['an image twice in one album', { albums: [album('Beach', ['a.png', 'a.png', 'b.png', 'c.png'])] }, /a\.png is in more than one album/],
    ['an image that was never sent', { albums: [album('Beach', ['a.png', 'b.png', 'c.png', 'z.png'])] }, /unknown image z\.png/],
    ['an answer of the wrong shape', { groups: [] }, /does not match the album schema/],
  ])('refuses %s', (_name, answer, reason) => {
    const r = checkAlbums(answer, keys);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(reason);
  });
});
