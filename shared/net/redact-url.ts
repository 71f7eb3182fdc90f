/**
 * A URL as error messages and logs may show it: scheme, host, port and path, without the
 * userinfo, query string or fragment. Tenants' image URLs are often presigned (S3's
 * `X-Amz-Signature`, GCS's `X-Goog-Signature`, SAS tokens): anything after `?` may be a bearer
 * credential, and these messages end up in worker logs, `jobs.last_error` and `dead_letters`.
 * Text that does not parse as a URL is cut the same way, by its characters.
 */
export function redactUrl(url: string | URL): string {
  if (typeof url !== 'string' || URL.canParse(url)) {
    const u = typeof url === 'string' ? new URL(url) : url;
    // Opaque URLs (data:, mailto:) have no host; their whole body may be the secret.
    if (u.host === '' && u.protocol !== 'file:') return u.protocol;
    return `${u.protocol}//${u.host}${u.pathname}`;
  }
  return url.replace(/[?#].*$/s, '').replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/]*@/i, '$1');
}
