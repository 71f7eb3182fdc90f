import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Sql } from '#shared/db/connect.js';

/** The dashboard's cookie: scoped to /dashboard, so no other route ever receives it. */
export const SESSION_COOKIE = 'leasehold_dashboard';
/** How long a login lasts. */
export const SESSION_MS = 12 * 60 * 60_000;
// A session's key is re-checked at most this often: revoking the key (or taking its admin scope)
// ends the session within it.
const KEY_CHECK_MS = 5_000;

/** A logged-in operator: which API key logged in, until when, and the per-session CSRF nonce. */
export interface Session {
  keyId: string;
  expiresAt: number;
  nonce: string;
}

/**
 * Signed, stateless sessions: the cookie holds `<base64url JSON>.<HMAC>`, naming the key by its id
 * (never the key itself), so any API process with the same secret accepts it. Each request checks
 * that the key still exists, is not revoked and still has the admin scope.
 */
export class Sessions {
  readonly #secret: Buffer;
  readonly #keys = new Map<string, { ok: boolean; at: number }>();

  constructor(
    private readonly sql: Sql,
    secret: string | undefined,
  ) {
    this.#secret = secret ? Buffer.from(secret) : randomBytes(32);
  }

  /** A new session for an admin key's id, as the cookie value. */
  issue(keyId: string, now = Date.now()): { cookie: string; session: Session } {
    const session: Session = { keyId, expiresAt: now + SESSION_MS, nonce: randomBytes(16).toString('base64url') };
    const body = Buffer.from(JSON.stringify(session)).toString('base64url');
    return { cookie: `${body}.${this.#sign(body)}`, session };
  }

  /** The session a cookie value carries, when its signature holds, it has not expired and its key is still an admin key. */
  async verify(cookie: string | undefined, now = Date.now()): Promise<Session | undefined> {
    const [body, mac, extra] = (cookie ?? '').split('.');
    if (!body || !mac || extra !== undefined) return undefined;
    const expected = Buffer.from(this.#sign(body));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    let session: Session;
    try {
      session = JSON.parse(Buffer.from(body, 'base64url').toString()) as Session;
    } catch {
      return undefined;
    }
    if (typeof session.expiresAt !== 'number' || session.expiresAt <= now || typeof session.keyId !== 'string') return undefined;
    return (await this.#keyIsAdmin(session.keyId)) ? session : undefined;
  }

  /** The CSRF token of a session: derived from its nonce, so only pages rendered for it know it. */
  csrfToken(session: Session): string {
    return this.#sign(`csrf:${session.nonce}`);
  }

  /** Whether `token` is the session's CSRF token (constant time). */
  checkCsrf(session: Session, token: string | undefined): boolean {
    const expected = Buffer.from(this.csrfToken(session));
    const given = Buffer.from(token ?? '');
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  #sign(text: string): string {
    return createHmac('sha256', this.#secret).update(text).digest('base64url');
  }

  async #keyIsAdmin(keyId: string): Promise<boolean> {
    const hit = this.#keys.get(keyId);
    if (hit && Date.now() - hit.at < KEY_CHECK_MS) return hit.ok;
    const [row] = await this.sql<{ ok: boolean }[]>`
      select revoked_at is null and 'admin' = any (scopes) as ok from leasehold.api_keys where id = ${keyId}::uuid`;
    const ok = row?.ok ?? false;
    if (this.#keys.size > 1_000) this.#keys.clear();
    this.#keys.set(keyId, { ok, at: Date.now() });
    return ok;
  }
}
