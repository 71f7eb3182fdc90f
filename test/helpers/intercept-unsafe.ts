import type { Sql } from '#shared/db/connect.js';

/**
 * `sql` with every `unsafe()` call handed to `intercept` first, which records it and runs it
 * (`run()`), or answers for it (a failure, say). Everything else goes to `sql` as it is.
 */
export function interceptUnsafe(sql: Sql, intercept: (text: string, params: unknown[] | undefined, run: () => unknown) => unknown): Sql {
  return new Proxy(sql, {
    get: (target, key, receiver) =>
      key === 'unsafe'
        ? (text: string, ...rest: unknown[]) => intercept(text, rest[0] as unknown[] | undefined, () => (target.unsafe as (...a: unknown[]) => unknown)(text, ...rest))
        : Reflect.get(target, key, receiver),
  }) as Sql;
}
