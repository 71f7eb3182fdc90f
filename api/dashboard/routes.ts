import { randomBytes } from 'node:crypto';
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { streamSSE } from 'hono/streaming';
import { verifyApiKey } from '#shared/auth/api-keys.js';
import { AppError } from '#shared/errors.js';
import type { Metrics } from '#shared/metrics/metrics.js';
import type { AppDeps, ApiEnv } from '../context.js';
import { problem } from '../middleware/problems.js';
import { requeueDeadLetter } from '../requeue-dead-letter.js';
import { DashboardPage, LoginPage } from './page.js';
import { SESSION_COOKIE, SESSION_MS, Sessions, type Session } from './session.js';
import { SnapshotHub } from './snapshot-hub.js';

// The login form is one key; nothing legitimate posted here comes near this.
const MAX_FORM_BYTES = 16 * 1024;

/** Content-Security-Policy of every dashboard page: only this response's nonce runs or styles. */
function securityHeaders(c: Context<ApiEnv>): string {
  const nonce = randomBytes(16).toString('base64');
  c.header(
    'content-security-policy',
    `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; ` +
      `img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  );
  c.header('cache-control', 'no-store');
  // Not no-referrer: under it browsers send `Origin: null` with the page's own form posts.
  c.header('referrer-policy', 'same-origin');
  c.header('x-content-type-options', 'nosniff');
  return nonce;
}

/** Secure cookies when the page was reached over HTTPS (directly or through a TLS-terminating proxy). */
function isHttps(c: Context<ApiEnv>): boolean {
  return new URL(c.req.url).protocol === 'https:' || c.req.header('x-forwarded-proto') === 'https';
}

/**
 * Refuses a state-changing request sent from another site. The cookie is SameSite=Strict already;
 * this also covers browsers that ignore that: the Origin (sent with every POST by current browsers)
 * must name this host, and Fetch Metadata, when present, must say same-origin.
 */
function assertSameOrigin(c: Context<ApiEnv>): void {
  const origin = c.req.header('origin');
  const site = c.req.header('sec-fetch-site');
  // A proxy that rewrites Host passes the one the browser used in X-Forwarded-Host.
  const hosts = [c.req.header('host'), c.req.header('x-forwarded-host')].filter((h) => h !== undefined);
  let sameHost = true;
  if (origin !== undefined) {
    try {
      sameHost = hosts.includes(new URL(origin).host);
    } catch {
      sameHost = false; // `Origin: null` (a sandboxed frame, a no-referrer page) is never the dashboard
    }
  }
  if (!sameHost || (site !== undefined && site !== 'same-origin')) {
    throw new AppError('forbidden', 'dashboard actions are accepted only from the dashboard page itself');
  }
}

/**
 * The operator dashboard under /dashboard: log in with an admin API key (a signed HttpOnly cookie
 * names the key, never holds it), a server-rendered page kept live by an SSE stream of snapshots,
 * and requeueing dead letters. It shows and acts on every tenant.
 */
export function dashboardRoutes(deps: AppDeps, metrics: Metrics): OpenAPIHono<ApiEnv> {
  const { sql, config, governor } = deps;
  const app = new OpenAPIHono<ApiEnv>();
  const sessions = new Sessions(sql, config.DASHBOARD_SESSION_SECRET);
  const hub = new SnapshotHub(sql, deps.log);

  const sessionOf = (c: Context<ApiEnv>): Promise<Session | undefined> => sessions.verify(getCookie(c, SESSION_COOKIE));
  const requireSession = async (c: Context<ApiEnv>): Promise<Session> => {
    const session = await sessionOf(c);
    if (!session) throw new AppError('unauthorized', 'log in at /dashboard first (or the session has ended)');
    c.set('log', c.get('log').child({ operator_key_id: session.keyId }));
    return session;
  };

  app.use(
    '/dashboard/*',
    bodyLimit({
      maxSize: MAX_FORM_BYTES,
      onError: (c) => problem(c, new AppError('payload_too_large', `dashboard requests are limited to ${MAX_FORM_BYTES} bytes`)),
    }),
  );

  app.get('/dashboard', async (c) => {
    const nonce = securityHeaders(c);
    const session = await sessionOf(c);
    if (!session) return c.html(LoginPage({ nonce }));
    return c.html(DashboardPage({ nonce, csrf: sessions.csrfToken(session), snapshot: await hub.current() }));
  });

  app.post('/dashboard/login', async (c) => {
    assertSameOrigin(c);
    const nonce = securityHeaders(c);
    const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
    const key = typeof form.key === 'string' ? form.key.trim() : '';
    const owner = key ? await verifyApiKey(sql, key) : undefined;
    if (!owner || !owner.scopes.includes('admin')) {
      c.get('log').warn({ reason: owner ? 'not_admin' : 'unknown_key' }, 'dashboard: login refused');
      const error = owner ? 'This key lacks the admin scope.' : 'Unknown or revoked API key.';
      return c.html(LoginPage({ nonce, error }), owner ? 403 : 401);
    }
    const { cookie } = sessions.issue(owner.keyId);
    setCookie(c, SESSION_COOKIE, cookie, {
      path: '/dashboard',
      httpOnly: true,
      sameSite: 'Strict',
      secure: isHttps(c),
      maxAge: SESSION_MS / 1000,
    });
    c.get('log').info({ key_id: owner.keyId, tenant_id: owner.tenantId }, 'dashboard: logged in');
    return c.redirect('/dashboard', 303);
  });

  app.post('/dashboard/logout', async (c) => {
    assertSameOrigin(c);
    const session = await sessionOf(c);
    const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
    if (session && !sessions.checkCsrf(session, typeof form.csrf === 'string' ? form.csrf : undefined)) {
      throw new AppError('forbidden', 'missing or wrong CSRF token');
    }
    deleteCookie(c, SESSION_COOKIE, { path: '/dashboard', secure: isHttps(c) });
    return c.redirect('/dashboard', 303);
  });

  app.get('/dashboard/stream', async (c) => {
    await requireSession(c);
    c.header('cache-control', 'no-store');
    return streamSSE(c, async (stream) => {
      const subscribers = metrics.eventStreamSubscribers.labels('dashboard');
      subscribers.inc();
      let id = 0;
      let ended = false;
      await new Promise<void>((resolve) => {
        const stop = () => {
          if (ended) return;
          ended = true;
          unsubscribe();
          subscribers.dec();
          resolve();
        };
        const unsubscribe = hub.subscribe((snapshot) => {
          void (async () => {
            // A revoked key or an expired session ends the stream at the next snapshot.
            if (!(await sessionOf(c))) return stop();
            await stream.writeSSE({ event: 'snapshot', id: String(++id), data: JSON.stringify(snapshot) });
          })().catch(stop);
        });
        stream.onAbort(stop);
      });
    });
  });

  app.post('/dashboard/dead-letters/:id/requeue', async (c) => {
    const session = await requireSession(c);
    assertSameOrigin(c);
    if (!sessions.checkCsrf(session, c.req.header('x-csrf-token'))) throw new AppError('forbidden', 'missing or wrong CSRF token');
    const id = c.req.param('id');
    // Any admin key logs in here, a tenant's included: requeues pass the governor as the API's do.
    const job = await requeueDeadLetter(sql, governor, id, null, `dashboard:key:${session.keyId}`);
    c.get('log').info(
      { key_id: session.keyId, dead_letter_id: id, job_id: job.jobId, kind: job.kind, tenant_id: job.tenantId },
      'dashboard: dead letter requeued',
    );
    return c.json({ job_id: job.jobId }, 202);
  });

  return app;
}
