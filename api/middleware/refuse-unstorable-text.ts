import type { MiddlewareHandler } from 'hono';
import { UNSTORABLE, UNSTORABLE_ALL, UNSTORABLE_ESCAPE } from '#shared/db/storable-json.js';
import { jsonPath, type FieldError } from '#shared/errors.js';
import type { ApiEnv } from '../context.js';
import { invalidFields } from './problems.js';

// Text PostgreSQL cannot store (UNSTORABLE): U+0000 (in text, SQLSTATE 22021; in jsonb, 22P05) and
// an unpaired UTF-16 surrogate (in jsonb, 22P02; in text it is turned into U+FFFD on the way).
// JSON.parse makes both from `\u` escapes, and percent-decoding makes U+0000 from `%00`. A body
// without such an escape (UNSTORABLE_ESCAPE; nearly all) is not parsed again.
// The media types Hono's json validator reads.
const JSON_TYPE = /^application\/([\w.-]+\+)?json$/i;
// A body can hold thousands of offending strings, or one nested 500,000 deep in 1 MiB: the first
// ones, and the start of each path, say enough without making the answer larger than the request.
const MAX_REPORTED = 20;
const MAX_PATH_CHARS = 1_000;

const reason = (text: string) =>
  text.includes('\u0000')
    ? 'must not contain U+0000 (NUL): PostgreSQL cannot store it'
    : 'must be valid Unicode: an unpaired UTF-16 surrogate (\\ud800–\\udfff) cannot be stored';

/** A path segment with the offending characters written as `\uXXXX`, so the problem body shows them. */
const visible = (key: string | number) =>
  typeof key === 'number' ? key : key.replace(UNSTORABLE_ALL, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);

interface Node {
  value: unknown;
  parent?: Node;
  key?: string | number;
}

/** The JSON path of `node` under `root`, cut to MAX_PATH_CHARS. */
function pathOf(root: string, node: Node): string {
  const keys: (string | number)[] = [];
  for (let n: Node | undefined = node; n?.key !== undefined; n = n.parent) keys.push(visible(n.key));
  const path = jsonPath(root, keys.reverse());
  return path.length > MAX_PATH_CHARS ? `${path.slice(0, MAX_PATH_CHARS)}…` : path;
}

/** Every string and object key in `value` that PostgreSQL cannot store, at its path under `root`. */
export function unstorableText(value: unknown, root: string): FieldError[] {
  const errors: FieldError[] = [];
  // Depth first with an explicit stack and parent links: bodies may nest thousands of levels deep,
  // and a path is only built for what is reported.
  const stack: Node[] = [{ value }];
  while (stack.length && errors.length < MAX_REPORTED) {
    const node = stack.pop()!;
    if (typeof node.key === 'string' && UNSTORABLE.test(node.key)) errors.push({ path: pathOf(root, node), message: `this key ${reason(node.key)}` });
    const v = node.value;
    if (typeof v === 'string') {
      if (UNSTORABLE.test(v)) errors.push({ path: pathOf(root, node), message: reason(v) });
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], parent: node, key: i });
    } else if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v);
      for (let i = entries.length - 1; i >= 0; i--) stack.push({ value: entries[i]![1], parent: node, key: entries[i]![0] });
    }
  }
  return errors.slice(0, MAX_REPORTED);
}

/**
 * Refuses, as one 422 `validation_failed` naming each path, a request whose query string or JSON
 * body holds text PostgreSQL cannot store, wherever it is: every string in a body may end up in a
 * jsonb or text column, and checking them here covers fields added later. Path segments are left
 * to each route, which matches its ids and slugs by shape before they reach SQL. Header values
 * cannot carry U+0000 (the HTTP parser refuses it), and the only one stored, Idempotency-Key, is
 * checked to be printable ASCII.
 */
export function refuseUnstorableText(): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const errors: FieldError[] = [];
    for (const [name, values] of Object.entries(c.req.queries())) {
      if (UNSTORABLE.test(name)) errors.push({ path: jsonPath('query', [visible(name)]), message: `this parameter name ${reason(name)}` });
      for (const v of values) if (UNSTORABLE.test(v)) errors.push({ path: jsonPath('query', [visible(name)]), message: reason(v) });
    }
    const type = c.req.header('content-type')?.split(';')[0]!.trim() ?? '';
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD' && JSON_TYPE.test(type)) {
      // Read through Hono's body cache, so the route's validator reads the same text again.
      const text = await c.req.text().catch(() => undefined);
      if (text !== undefined && UNSTORABLE_ESCAPE.test(text)) {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          // Malformed (or nested past the parser's stack): the route's validator answers 400.
        }
        if (body !== undefined) errors.push(...unstorableText(body, 'body'));
      }
    }
    if (errors.length) {
      const roots = new Set(errors.map((e) => e.path.split(/[.[]/)[0]));
      throw invalidFields(errors.slice(0, MAX_REPORTED), roots.size === 1 ? [...roots][0]! : 'request');
    }
    await next();
  };
}
