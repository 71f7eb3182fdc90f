/**
 * A share of bench:sse's tenant-stream clients, in a worker thread: a load generator on one thread
 * would leave one of the two cores idle while it reads, and measure itself rather than the server.
 * Each client only counts bytes and notes when each chunk arrived (every client of the stream
 * receives the same bytes); the thread's first client also keeps them when asked, so the main
 * thread can find where each event ends once for all.
 */
import { request, type IncomingMessage } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

export interface ClientsData {
  url: string;
  key: string;
  encoding: string;
  count: number;
}
/** Requests from the main thread; each gets one reply of the same `type`. */
export type ClientsRequest = { type: 'connect' } | { type: 'mark'; keep: boolean } | { type: 'status' } | { type: 'collect' };
export interface ClientsStatus {
  type: 'status';
  /** Bytes since the mark of the client that has fewest. */
  minBytes: number;
  /** The first client's bytes since the mark, when it keeps them. */
  kept?: Buffer;
}
/** Per client: when each chunk came since the mark, and the byte count since the mark after it. */
export interface ClientsCollected {
  type: 'collect';
  clients: { times: number[]; ends: number[] }[];
}

interface Client {
  times: number[];
  ends: number[];
  bytes: number;
  base: number;
  kept?: Buffer[];
  res?: IncomingMessage;
}

const data = workerData as ClientsData;
const clients: Client[] = [];

function connect(c: Client): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(data.url, { agent: false, headers: { authorization: `Bearer ${data.key}`, 'accept-encoding': data.encoding } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`stream answered ${res.statusCode}`));
      const gzip = res.headers['content-encoding'] === 'gzip';
      if (gzip !== (data.encoding === 'gzip')) return reject(new Error(`asked for ${data.encoding}, got ${res.headers['content-encoding'] ?? 'identity'}`));
      c.res = res;
      res.on('data', (chunk: Buffer) => {
        c.bytes += chunk.length;
        c.times.push(Date.now());
        c.ends.push(c.bytes - c.base);
        c.kept?.push(chunk);
      });
      // The stream's opening arrives first: it is open.
      res.once('data', () => resolve());
    });
    req.on('error', reject);
    req.end();
  });
}

parentPort!.on('message', async (m: ClientsRequest) => {
  switch (m.type) {
    case 'connect':
      for (let i = 0; i < data.count; i += 100) {
        const batch = Array.from({ length: Math.min(100, data.count - i) }, (): Client => ({ times: [], ends: [], bytes: 0, base: 0 }));
        clients.push(...batch);
        await Promise.all(batch.map(connect));
      }
      parentPort!.postMessage({ type: 'connect' });
      break;
    case 'mark':
      for (const c of clients) (c.base = c.bytes), (c.times = []), (c.ends = []), delete c.kept;
      if (m.keep && clients[0]) clients[0].kept = [];
      parentPort!.postMessage({ type: 'mark' });
      break;
    case 'status': {
      let minBytes = Infinity;
      for (const c of clients) minBytes = Math.min(minBytes, c.bytes - c.base);
      const kept = clients[0]?.kept;
      parentPort!.postMessage({ type: 'status', minBytes, ...(kept && { kept: Buffer.concat(kept) }) } satisfies ClientsStatus);
      break;
    }
    case 'collect':
      parentPort!.postMessage({ type: 'collect', clients: clients.map((c) => ({ times: c.times, ends: c.ends })) } satisfies ClientsCollected);
      for (const c of clients) c.res?.destroy();
      break;
  }
});
