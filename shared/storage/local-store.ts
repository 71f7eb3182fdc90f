import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ObjectInfo, ObjectStore, PresignedUpload } from './object-store.js';
import { ObjectMissing, ObjectTooLarge, assertStorageKey } from './keys.js';
import { readCapped } from './read-capped.js';
import { sign, verify } from './signing.js';

/** Where the local store keeps its files and how it signs its URLs. */
export interface LocalStoreOptions {
  dataDir: string;
  /** The HMAC secret, or how to get it on first use (so a store that never signs makes none). */
  secret: string | (() => string);
  /** Prefix of upload and download URLs (the API's public URL); relative URLs when absent. */
  publicBaseUrl?: string;
  /** The clock, in ms; tests move it. */
  now?: () => number;
}

/** A signed upload's parameters once its signature and expiry have been checked. */
export interface VerifiedUpload {
  key: string;
  contentType: string;
  size: number;
}

const uploadFields = (p: { key: string; exp: string; ct: string; size: string }) => ['PUT', p.key, p.exp, p.ct, p.size];
const downloadFields = (p: { key: string; exp: string }) => ['GET', p.key, p.exp];

/**
 * Objects as files under `<dataDir>/objects/<key>` (content types in `<dataDir>/objects/.meta/`),
 * uploaded and downloaded through the API's /storage routes with HMAC-signed, expiring URLs.
 */
export class LocalObjectStore implements ObjectStore {
  readonly root: string;
  readonly #secretSource: string | (() => string);
  #secretValue: string | undefined;
  readonly #base: string;
  readonly #now: () => number;

  constructor(opts: LocalStoreOptions) {
    this.root = path.resolve(opts.dataDir, 'objects');
    this.#secretSource = opts.secret;
    this.#base = (opts.publicBaseUrl ?? '').replace(/\/+$/, '');
    this.#now = opts.now ?? Date.now;
  }

  get #secret(): string {
    const source = this.#secretSource;
    return (this.#secretValue ??= typeof source === 'string' ? source : source());
  }

  /** The file of a key; throws for keys of the wrong shape or that would leave the root. */
  #file(key: string, meta = false): string {
    assertStorageKey(key);
    const base = meta ? path.join(this.root, '.meta') : this.root;
    const file = path.resolve(base, meta ? `${key}.json` : key);
    if (!file.startsWith(base + path.sep)) throw new Error(`storage key escapes the store: ${key}`);
    return file;
  }

  async presignUpload(req: { key: string; contentType: string; size: number; expiresInS: number }): Promise<PresignedUpload> {
    this.#file(req.key);
    const p = { key: req.key, exp: String(Math.floor(this.#now() / 1000) + req.expiresInS), ct: req.contentType, size: String(req.size) };
    const query = new URLSearchParams({ ...p, sig: sign(this.#secret, uploadFields(p)) });
    return {
      url: `${this.#base}/storage/upload?${query}`,
      method: 'PUT',
      headers: { 'content-type': req.contentType },
      expires_at: new Date(Number(p.exp) * 1000).toISOString(),
    };
  }

  async signedDownloadUrl(key: string, expiresInS: number): Promise<string> {
    this.#file(key);
    const p = { key, exp: String(Math.floor(this.#now() / 1000) + expiresInS) };
    return `${this.#base}/storage/object?${new URLSearchParams({ ...p, sig: sign(this.#secret, downloadFields(p)) })}`;
  }

  /** Checks an upload URL's query: the signed parameters, or why they are refused. */
  verifyUpload(q: Record<string, string | undefined>): VerifiedUpload | { refused: string } {
    const p = { key: q.key ?? '', exp: q.exp ?? '', ct: q.ct ?? '', size: q.size ?? '' };
    if (!verify(this.#secret, uploadFields(p), q.sig ?? '')) return { refused: 'the signature does not match' };
    if (!(Number(p.exp) * 1000 > this.#now())) return { refused: 'the upload URL has expired' };
    return { key: p.key, contentType: p.ct, size: Number(p.size) };
  }

  /** Checks a download URL's query: the key, or why it is refused. */
  verifyDownload(q: Record<string, string | undefined>): { key: string } | { refused: string } {
    const p = { key: q.key ?? '', exp: q.exp ?? '' };
    if (!verify(this.#secret, downloadFields(p), q.sig ?? '')) return { refused: 'the signature does not match' };
    if (!(Number(p.exp) * 1000 > this.#now())) return { refused: 'the download URL has expired' };
    return { key: p.key };
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const [s, meta] = await Promise.all([stat(this.#file(key)), readFile(this.#file(key, true), 'utf8')]);
      return { size: s.size, contentType: (JSON.parse(meta) as { contentType: string }).contentType };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async get(key: string, opts: { maxBytes: number; signal?: AbortSignal }): Promise<Buffer> {
    let handle;
    try {
      handle = await open(this.#file(key), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ObjectMissing(key);
      throw err;
    }
    // The open handle pins the file, so its size and its bytes are of the same object.
    const { size } = await handle.stat().catch(async (err: unknown) => {
      await handle.close();
      throw err;
    });
    if (size > opts.maxBytes) {
      await handle.close();
      throw new ObjectTooLarge(key, opts.maxBytes, size, true);
    }
    // The stream closes the handle when it ends or is destroyed.
    return readCapped(handle.createReadStream(), opts.maxBytes, (seen) => new ObjectTooLarge(key, opts.maxBytes, seen, false), opts.signal);
  }

  async put(key: string, bytes: Uint8Array, contentType: string): Promise<void> {
    const file = this.#file(key);
    const meta = this.#file(key, true);
    await Promise.all([mkdir(path.dirname(file), { recursive: true }), mkdir(path.dirname(meta), { recursive: true })]);
    // Written aside and renamed into place: a reader never sees half an object.
    const tmp = `${file}.${randomUUID()}.tmp`;
    try {
      await writeFile(tmp, bytes);
      await writeFile(meta, JSON.stringify({ contentType }));
      await rename(tmp, file);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async check(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await access(this.root, constants.W_OK);
  }
}
