import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, toFile } from 'openai';
import type { ChatCompletion } from 'openai/resources/chat/completions';
import { PermanentError, RetryError } from '../jobs/job-errors.js';
import { parseRetryAfter } from '../net/fetch-refused.js';
import type { EditRequest, EditResult, GroupRequest, VisionProvider, VisionRequest, VisionResult } from './provider.js';

/** The provider name stored with every result the OpenAI SDK produced. */
export const OPENAI_PROVIDER = 'openai' as const;

/** How to reach an OpenAI-compatible server. */
export interface OpenAIProviderOptions {
  apiKey: string;
  /** OPENAI_BASE_URL (vLLM, Ollama, LM Studio…); OpenAI's own API when unset. */
  baseURL?: string | undefined;
  /** Time for one call, response body included. */
  timeoutMs: number;
}

const OPENAI_API = 'https://api.openai.com/v1';
// Low enough for faithful extraction, not 0: some compatible servers treat 0 as "greedy with quirks".
const TEMPERATURE = 0.2;
// A server asking for hours is honoured up to an hour; the queue's own backoff takes it from there.
const MAX_RETRY_AFTER_MS = 60 * 60_000;
// response_format names must match ^[a-zA-Z0-9_-]{1,64}$ (OpenAI API reference); pattern names are free text.
const NAME_CHARS = /[^a-zA-Z0-9_-]+/g;

/** A pattern's free-text name as a valid `json_schema.name`. */
export function jsonSchemaName(name: string): string {
  return name.replace(NAME_CHARS, '_').replace(/^_+|_+$/g, '').slice(0, 64) || 'manifest';
}

/** How long a 429 or 5xx asked us to wait: `retry-after-ms` (OpenAI's) first, then RFC 9110 `retry-after`. */
function retryAfterMs(headers: Headers | undefined): number | undefined {
  const ms = Number.parseFloat(headers?.get('retry-after-ms') ?? '');
  const header = headers?.get('retry-after') ?? undefined;
  const seconds = header !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(header) ? Number(header) * 1000 : undefined;
  const wait = Number.isFinite(ms) ? ms : (seconds ?? parseRetryAfter(header));
  return wait === undefined ? undefined : Math.min(Math.max(0, wait), MAX_RETRY_AFTER_MS);
}

/** An SDK failure in the queue's terms: RetryError for what may clear by itself, PermanentError otherwise. */
export function classifyOpenAIError(err: unknown, signal?: AbortSignal): unknown {
  // Whatever the SDK made of an abort (APIUserAbortError, an AbortError mid-body), the caller's reason wins.
  if (signal?.aborted) return signal.reason;
  if (err instanceof APIConnectionTimeoutError) return new RetryError('the model did not answer in time', {}, 'provider_timeout');
  if (err instanceof APIConnectionError) {
    const cause = err.cause instanceof Error ? `: ${(err.cause as NodeJS.ErrnoException).code ?? err.cause.message}` : '';
    return new RetryError(`cannot reach the model server${cause}`, {}, 'provider_unreachable');
  }
  if (!(err instanceof APIError) || err.status === undefined) return err;
  const { status, code, param } = err;
  const after = { afterMs: retryAfterMs(err.headers) };
  const detail = err.message;
  if (status === 429 && code === 'insufficient_quota') {
    return new PermanentError(`the model account is out of quota (insufficient_quota): ${detail}`, 'insufficient_quota');
  }
  if (status === 429) return new RetryError(`rate limited by the model server: ${detail}`, after, 'rate_limited');
  if (status >= 500 || status === 408 || status === 409) {
    return new RetryError(`the model server failed (${status}): ${detail}`, after, 'provider_unavailable');
  }
  if (status === 400 && (code === 'invalid_json_schema' || (typeof param === 'string' && param.startsWith('response_format')))) {
    return new PermanentError(`the model server rejected the pattern's schema: ${detail}`, 'invalid_schema');
  }
  if (status === 400 && (code === 'moderation_blocked' || code === 'content_policy_violation')) {
    return new PermanentError(`the model server's content policy refused the request: ${detail}`, 'content_policy');
  }
  if (status === 401 || status === 403) return new PermanentError(`the model server refused our credentials (${status}): ${detail}`, 'provider_auth');
  if (status === 404) return new PermanentError(`the model or endpoint does not exist (404): ${detail}`, 'model_not_found');
  return new PermanentError(`the model server rejected the request (${status}): ${detail}`, 'invalid_request');
}

/** The manifest in a completion, or the PermanentError that says why there is none. */
export function readCompletion(completion: ChatCompletion): unknown {
  const choice = completion.choices?.[0];
  if (!choice) throw new PermanentError('the model server answered with no choices', 'empty_output');
  const { message, finish_reason: finish } = choice;
  if (message?.refusal) throw new PermanentError(`the model refused: ${message.refusal}`, 'refused');
  if (finish === 'content_filter') throw new PermanentError('the model stopped: its content filter blocked the output', 'content_filter');
  if (finish === 'length') {
    throw new PermanentError('the model output was truncated (finish_reason: length) before the manifest was complete', 'truncated');
  }
  const content = message?.content;
  if (!content) throw new PermanentError(`the model answered with no content (finish_reason: ${finish})`, 'empty_output');
  try {
    return JSON.parse(content);
  } catch (err) {
    const start = JSON.stringify(content.slice(0, 80));
    throw new PermanentError(`the model output is not JSON (${(err as Error).message}); it starts ${start}`, 'invalid_json');
  }
}

/**
 * A VisionProvider on the official SDK: Chat Completions with the image inline as a base64 data
 * URL (the provider never downloads anything) and strict Structured Outputs. The SDK's own
 * retries are off (maxRetries: 0): the queue owns retries, with backoff and attempt counting.
 */
export function createOpenAIProvider(opts: OpenAIProviderOptions): VisionProvider {
  // organization/project null and an explicit baseURL: the SDK would otherwise read process.env itself.
  const client = new OpenAI({
    apiKey: opts.apiKey,
    baseURL: opts.baseURL ?? OPENAI_API,
    organization: null,
    project: null,
    maxRetries: 0,
    timeout: opts.timeoutMs,
  });
  type Part = { type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string; detail: VisionRequest['detail'] } };
  const imagePart = (image: { bytes: Uint8Array; contentType: string }, detail: VisionRequest['detail']): Part => ({
    type: 'image_url',
    image_url: { url: `data:${image.contentType};base64,${Buffer.from(image.bytes).toString('base64')}`, detail },
  });
  // One strict Structured Outputs call: the system message, then the user's parts.
  async function complete(req: Omit<VisionRequest, 'image'>, parts: Part[]): Promise<VisionResult> {
    let completion: ChatCompletion;
    try {
      completion = await client.chat.completions.create(
        {
          model: req.model,
          temperature: TEMPERATURE,
          messages: [
            { role: 'system', content: req.instructions },
            { role: 'user', content: parts },
          ],
          response_format: {
            type: 'json_schema',
            json_schema: { name: jsonSchemaName(req.schemaName), schema: req.schema, strict: true },
          },
        },
        { signal: req.signal },
      );
    } catch (err) {
      throw classifyOpenAIError(err, req.signal);
    }
    const manifest = readCompletion(completion);
    // Some compatible servers omit usage; their calls count as zero tokens rather than a guess.
    const u = completion.usage;
    const cached = u?.prompt_tokens_details?.cached_tokens;
    const usage = {
      prompt_tokens: u?.prompt_tokens ?? 0,
      completion_tokens: u?.completion_tokens ?? 0,
      total_tokens: u?.total_tokens ?? 0,
      ...(cached ? { cached_tokens: cached } : {}),
    };
    return { manifest, usage, model: completion.model || req.model, provider: OPENAI_PROVIDER };
  }
  // One images.edit call (multipart), answered with base64 PNG bytes.
  async function edit(req: EditRequest): Promise<EditResult> {
    const file = (img: { bytes: Uint8Array; contentType: string }, name: string) => toFile(Buffer.from(img.bytes), name, { type: img.contentType });
    let response;
    try {
      const image = await file(req.image, 'image');
      const mask = req.mask && (await file(req.mask, 'mask'));
      response = await client.images.edit(
        { model: req.model, prompt: req.prompt, image, size: req.size, n: 1, ...(mask && { mask }) },
        { signal: req.signal },
      );
    } catch (err) {
      throw classifyOpenAIError(err, req.signal);
    }
    const b64 = response.data?.[0]?.b64_json;
    if (!b64) throw new PermanentError('the model server answered with no image (no b64_json)', 'empty_output');
    const u = response.usage;
    const details = u?.input_tokens_details;
    const usage = u && {
      input_tokens: u.input_tokens,
      output_tokens: u.output_tokens,
      total_tokens: u.total_tokens,
      ...(details && { text_tokens: details.text_tokens, image_tokens: details.image_tokens }),
    };
    return { bytes: Buffer.from(b64, 'base64'), contentType: 'image/png', model: req.model, provider: OPENAI_PROVIDER, ...(usage && { usage }) };
  }
  return {
    name: OPENAI_PROVIDER,
    edit,
    extract: (req: VisionRequest) => complete(req, [imagePart(req.image, req.detail)]),
    // Each image follows a text part naming its storage key: the key is how the answer refers to it.
    group: (req: GroupRequest) =>
      complete(req, req.images.flatMap((image, i): Part[] => [{ type: 'text', text: `Image ${i + 1}: ${image.key}` }, imagePart(image, req.detail)])),
  };
}
