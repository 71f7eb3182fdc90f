import { describe, expect, test } from 'vitest';
import { redactUrl } from './redact-url.js';

describe('redactUrl', () => {
  test.each([
    ['an S3 presigned URL', 'https://bucket.s3.amazonaws.com/a/b.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=deadbeef', 'https://bucket.s3.amazonaws.com/a/b.png'],
    ['a GCS signed URL with a fragment', 'https://storage.googleapis.com/b/o.jpg?X-Goog-Signature=abc#frag', 'https://storage.googleapis.com/b/o.jpg'],
    ['userinfo and a port', 'http://alice:s3cret@images.example:8080/p/q.webp?token=t', 'http://images.example:8080/p/q.webp'],
    ['a URL with nothing to strip', 'https://images.example/receipt.png', 'https://images.example/receipt.png'],
    ['an opaque data: URL', 'data:image/png;base64,AAAA', 'data:'],
    ['a file: URL', 'file:///etc/passwd', 'file:///etc/passwd'],
    ['text that is not a URL', 'http://bob:pw@exa mple.com/x.png?sig=1#f', 'http://exa mple.com/x.png'],
  ])('%s', (_name, url, shown) => {
    expect(redactUrl(url)).toBe(shown);
    if (URL.canParse(url)) expect(redactUrl(new URL(url))).toBe(shown);
  });
});
