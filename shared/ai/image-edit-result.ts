import type { EditResult } from './provider.js';

/** What an image.edit job stores as its result. */
export interface ImageEditResult {
  storage_key: string;
  /** A signed download URL (relative to the API for the local store), valid until url_expires_at. */
  url: string;
  url_expires_at: string;
  content_type: string;
  bytes: number;
  provider: string;
  model: string;
  usage?: EditResult['usage'];
  latency_ms: number;
}
