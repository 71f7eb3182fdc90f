import type { Config } from '../config.js';
import { fakeGrouping } from './fake-group.js';
import { fakeEdit } from './fake-image.js';
import { IMAGE_OUTPUT_TOKENS } from '../governor/pricing.js';
import { FAKE_PROVIDER, fakeManifest, fakeUsage } from './fake-provider.js';
import { createOpenAIProvider } from './openai-provider.js';

/** How closely the model looks at the image (OpenAI: low is a flat 85 tokens, high tiles it). */
export type ImageDetail = 'auto' | 'low' | 'high';

/** Token counts of one model call. */
export interface VisionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Prompt tokens served from the provider's prompt cache (billed at the cached-input price). */
  cached_tokens?: number;
  /** Present (true) when the counts were estimated rather than reported by the provider. */
  estimated?: true;
}

/** One structured extraction: a pattern's instructions and strict JSON Schema applied to one image. */
export interface VisionRequest {
  /** A strict Structured Outputs schema (object root, every property required). */
  schema: Record<string, unknown>;
  /** The schema's name as the provider sees it (the pattern's name). */
  schemaName: string;
  /** The system message: what to extract and how. */
  instructions: string;
  image: { bytes: Uint8Array; contentType: string };
  model: string;
  detail: ImageDetail;
  /** Aborts the call (lease lost, cancelled, shutting down); the provider rethrows its reason. */
  signal?: AbortSignal;
}

/** One image of a grouping request, named by the storage key the model answers with. */
export interface GroupImage {
  key: string;
  bytes: Uint8Array;
  contentType: string;
}

/** Several images sorted into albums in one call, under a fixed strict schema. */
export interface GroupRequest extends Omit<VisionRequest, 'image'> {
  images: GroupImage[];
}

/** What the model answered: the parsed manifest (not yet validated), its cost in tokens, who made it. */
export interface VisionResult {
  manifest: unknown;
  usage: VisionUsage;
  /** The model that answered, as the provider names it (may be a dated snapshot of the one asked for). */
  model: string;
  provider: string;
}

/** One image edit: an image (and optional mask) changed as the prompt says. */
export interface EditRequest {
  image: { bytes: Uint8Array; contentType: string };
  /** Transparent areas mark where the image may change. */
  mask?: { bytes: Uint8Array; contentType: string } | undefined;
  prompt: string;
  model: string;
  size: '1024x1024' | '1536x1024' | '1024x1536' | 'auto';
  signal?: AbortSignal;
}

/** The edited image, its cost when the provider reported one, and who made it. */
export interface EditResult {
  bytes: Buffer;
  contentType: string;
  usage?: { input_tokens: number; output_tokens: number; total_tokens: number; text_tokens?: number; image_tokens?: number };
  model: string;
  provider: string;
}

/**
 * A vision model behind Structured Outputs. Failures are the queue's terms: RetryError for what
 * may clear by itself, PermanentError (with a code) for what never will.
 */
export interface VisionProvider {
  /** `openai` or `fake`: stored as `result.provider`. */
  readonly name: string;
  /** Extracts a manifest from one image. */
  extract(request: VisionRequest): Promise<VisionResult>;
  /** Sorts several images into albums in one call; `manifest` holds the (unvalidated) answer. */
  group(request: GroupRequest): Promise<VisionResult>;
  /** Edits one image as the prompt says; the result is a PNG. */
  edit(request: EditRequest): Promise<EditResult>;
}

/** The provider that answers without a model: deterministic, schema-valid output from the schema and the image bytes. */
export const fakeProvider: VisionProvider = {
  name: FAKE_PROVIDER,
  async extract({ schema, image, signal }) {
    signal?.throwIfAborted();
    const manifest = fakeManifest(schema, image.bytes);
    const { provider: _provider, ...usage } = fakeUsage(schema, image.bytes, manifest);
    return { manifest, usage, model: FAKE_PROVIDER, provider: FAKE_PROVIDER };
  },
  async group({ schema, images, signal }) {
    signal?.throwIfAborted();
    const manifest = fakeGrouping(images);
    const bytes = Buffer.concat(images.map((i) => i.bytes));
    const { provider: _provider, ...usage } = fakeUsage(schema, bytes, manifest);
    return { manifest, usage, model: FAKE_PROVIDER, provider: FAKE_PROVIDER };
  },
  async edit({ image, mask, prompt, size, signal }) {
    signal?.throwIfAborted();
    // What gpt-image-1 would bill, deterministically: the prompt's text, each input image as four
    // tiles (85 + 4 × 170), and a medium-quality output of the size asked for.
    const text = Math.ceil(prompt.length / 4);
    const images = (mask ? 2 : 1) * 765;
    const output = IMAGE_OUTPUT_TOKENS[size === '1024x1024' ? 'square' : 'portrait'].medium;
    const usage = { input_tokens: text + images, output_tokens: output, total_tokens: text + images + output, text_tokens: text, image_tokens: images };
    return { bytes: fakeEdit(image.bytes, prompt, mask?.bytes), contentType: 'image/png', usage, model: FAKE_PROVIDER, provider: FAKE_PROVIDER };
  },
};

/** How long one model call may take; the kind's 3-minute timeout still bounds the whole attempt. */
const OPENAI_TIMEOUT_MS = 120_000;

/**
 * The configured provider: `fake` when AI_PROVIDER says so (its default without a key), the
 * official OpenAI SDK otherwise. An explicit AI_PROVIDER=openai without a key is refused rather
 * than quietly faked (a local server that ignores keys still needs some value).
 */
export function createProvider(
  config: Pick<Config, 'AI_PROVIDER' | 'OPENAI_API_KEY' | 'OPENAI_BASE_URL'>,
): VisionProvider {
  if (config.AI_PROVIDER === 'fake') return fakeProvider;
  if (!config.OPENAI_API_KEY) {
    throw new Error('AI_PROVIDER=openai needs OPENAI_API_KEY (any value for a local server that ignores it)');
  }
  return createOpenAIProvider({ apiKey: config.OPENAI_API_KEY, baseURL: config.OPENAI_BASE_URL, timeoutMs: OPENAI_TIMEOUT_MS });
}
