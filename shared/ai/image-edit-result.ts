import type { EditResult } from './provider.js';

/** What an image.edit job stores as its result. */
export interface ImageEditResult {
  storage_key: string;
  content_type: string;
  bytes: number;
  provider: string;
  model: string;
  usage?: EditResult['usage'];
  latency_ms: number;
}
