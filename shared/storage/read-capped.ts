/**
 * Reads a byte stream into one Buffer, giving up as soon as it has held more than `maxBytes`:
 * `tooLarge(bytesSeen)` is thrown, and leaving the loop early destroys a Node stream (or cancels a
 * web one), so the rest is never read. The declared size of an object is checked before this;
 * counting here covers a body that declared none or more than it said.
 */
export async function readCapped(
  body: AsyncIterable<Uint8Array>,
  maxBytes: number,
  tooLarge: (bytesSeen: number) => Error,
  signal?: AbortSignal,
): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    signal?.throwIfAborted();
    total += chunk.byteLength;
    if (total > maxBytes) throw tooLarge(total);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}
