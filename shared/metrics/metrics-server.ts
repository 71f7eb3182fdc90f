import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../log.js';

/**
 * A listener that serves only `GET /metrics`, for processes without the HTTP API (`leasehold
 * worker` with WORKER_METRICS_PORT). `authorize` gets the Authorization header.
 */
export async function startMetricsServer(opts: {
  registry: Registry;
  port: number;
  host: string;
  log: Logger;
  authorize: (authorization: string | undefined) => Promise<boolean>;
}): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    void (async () => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
        return;
      }
      if (!(await opts.authorize(req.headers.authorization))) {
        res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer realm="leasehold"' });
        res.end('send Authorization: Bearer <METRICS_TOKEN or an admin API key>\n');
        return;
      }
      const body = await opts.registry.metrics();
      res.writeHead(200, { 'content-type': opts.registry.contentType }).end(body);
    })().catch((err: unknown) => {
      opts.log.error({ err }, 'metrics: scrape failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('scrape failed\n');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  opts.log.info({ port, host: opts.host }, 'metrics listening');
  return { port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
