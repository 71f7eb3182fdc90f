import { createReadStream, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Readable } from 'node:stream';
import { OpenAPIHono } from '@hono/zod-openapi';
import { Scalar } from '@scalar/hono-api-reference';
import type { ApiEnv } from '../context.js';

// The package exports no browser entry, so the bundle is found beside its main module.
const STANDALONE_JS = path.join(
  path.dirname(createRequire(import.meta.url).resolve('@scalar/api-reference')),
  'browser',
  'standalone.js',
);

/** Where the reference page loads its script from: this server, never a CDN. */
export const SCALAR_SCRIPT_PATH = '/docs/scalar.js';

/**
 * GET /docs, an interactive API reference (Scalar) over /openapi.json, and the ~3 MB script it
 * runs, streamed from node_modules so that the page works offline and behind strict egress.
 */
export function docsRoutes(): OpenAPIHono<ApiEnv> {
  const app = new OpenAPIHono<ApiEnv>();
  const script = statSync(STANDALONE_JS);
  const etag = `"${script.size.toString(16)}-${Math.floor(script.mtimeMs).toString(16)}"`;

  app.get(
    '/docs',
    Scalar<ApiEnv>({
      url: '/openapi.json',
      cdn: SCALAR_SCRIPT_PATH,
      pageTitle: 'Leasehold API reference',
      // The default fonts come from fonts.scalar.com; the system fonts need no network.
      withDefaultFonts: false,
    }),
  );

  app.get(SCALAR_SCRIPT_PATH, (c) => {
    const headers = { etag, 'cache-control': 'public, max-age=86400' };
    if (c.req.header('if-none-match') === etag) return c.body(null, 304, headers);
    const body = Readable.toWeb(createReadStream(STANDALONE_JS)) as ReadableStream<Uint8Array>;
    return c.body(body, 200, {
      ...headers,
      'content-type': 'text/javascript; charset=utf-8',
      'content-length': String(script.size),
    });
  });

  return app;
}
