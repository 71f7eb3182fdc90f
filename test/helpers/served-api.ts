import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import type { TestApi } from './api.js';

/** A JSON answer: status and parsed body. */
export interface JsonReply {
  status: number;
  body: Record<string, any>;
}

/** The test API behind a real listening server, for flows whose URLs clients follow (presigned uploads). */
export interface ServedApi {
  base: string;
  /** A JSON request to the real server as the holder of `key`. */
  call(method: string, path: string, key: string, body?: unknown): Promise<JsonReply>;
  /** Presigns one PNG upload as the holder of `key` and PUTs the bytes; returns its storage key. */
  uploadPng(key: string, bytes: Uint8Array): Promise<string>;
  close(): Promise<void>;
}

/** Starts `api` on 127.0.0.1 and a free port. */
export async function serveTestApi(api: TestApi): Promise<ServedApi> {
  const server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: api.app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const call = async (method: string, path: string, key: string, body?: unknown): Promise<JsonReply> => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  return {
    base,
    call,
    async uploadPng(key, bytes) {
      const p = await call('POST', '/v1/uploads', key, { content_type: 'image/png', size: bytes.byteLength, filename: 'photo.png' });
      if (p.status !== 201) throw new Error(`presign answered ${p.status}: ${JSON.stringify(p.body)}`);
      const put = await fetch(p.body.url, { method: p.body.method, headers: p.body.headers, body: bytes });
      if (put.status !== 200) throw new Error(`upload answered ${put.status}`);
      return p.body.storage_key as string;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
