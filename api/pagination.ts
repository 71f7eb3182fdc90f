import { z } from '@hono/zod-openapi';

// Cursor pagination by id, newest first: ids are time-ordered (UUIDv7), so rows inserted meanwhile
// land before the first page and never shift or repeat the pages after it.

/** The query parameters of a cursor-paginated list. */
export const pageQuery = {
  cursor: z.uuid().optional().openapi({ description: '`next_cursor` of the previous page.' }),
  limit: z.coerce.number().int().min(1).max(100).default(50).openapi({ description: '1–100, default 50.' }),
};

/** A page of a list: `next_cursor` is null on the last page. */
export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({ data: z.array(item), next_cursor: z.uuid().nullable() });
}

/** The page in `rows`, fetched with `limit + 1` so that one row more means another page follows. */
export function pageFrom<R, T extends { id: string }>(rows: R[], limit: number, view: (row: R) => T): { data: T[]; next_cursor: string | null } {
  const data = rows.slice(0, limit).map((row) => view(row));
  return { data, next_cursor: rows.length > limit ? data.at(-1)!.id : null };
}
