import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { startModelDouble, successWith, type DoubleAnswer, type ModelDouble } from '../../test/fixtures/model-double.js';
import { PermanentError, RetryError } from '../jobs/job-errors.js';
import { createOpenAIProvider, jsonSchemaName } from './openai-provider.js';
import { createProvider, fakeProvider, type VisionProvider, type VisionRequest } from './provider.js';

// A real 1×1 PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const SCHEMA = {
  type: 'object',
  properties: { title: { type: 'string' }, count: { type: ['integer', 'null'] } },
  required: ['title', 'count'],
  additionalProperties: false,
};
const TIMEOUT_MS = 400;

let double: ModelDouble;
let provider: VisionProvider;
beforeAll(async () => {
  double = await startModelDouble();
  provider = createOpenAIProvider({ apiKey: 'sk-test-double', baseURL: double.baseURL, timeoutMs: TIMEOUT_MS });
});
beforeEach(() => double.reset());
afterAll(() => double.close());

function request(over: Partial<VisionRequest> = {}): VisionRequest {
  return {
    schema: SCHEMA,
    schemaName: 'receipt',
    instructions: 'Read the receipt.',
    image: { bytes: PNG, contentType: 'image/png' },
    model: 'gpt-4o-mini',
    detail: 'high',
    ...over,
  };
}

/** The error `extract` rejects with when the double gives `answer`. */
async function failureOn(answer: DoubleAnswer, p?: VisionProvider): Promise<unknown> {
  double.reply(answer);
  return (p ?? provider).extract(request()).then(
    () => expect.fail('extract should have failed'),
    (err: unknown) => err,
  );
}

describe('openai provider against an OpenAI-compatible double', () => {
  test('sends strict Structured Outputs with the image inline, and returns the parsed manifest with usage', async () => {
    double.reply(successWith({ title: 'Café', count: 3 }, { prompt_tokens: 1200, completion_tokens: 30 }));
    const result = await provider.extract(request());
    expect(result).toEqual({
      manifest: { title: 'Café', count: 3 },
      usage: { prompt_tokens: 1200, completion_tokens: 30, total_tokens: 1230 },
      model: 'gpt-4o-mini-2026-01-01',
      provider: 'openai',
    });
    expect(double.requests).toHaveLength(1);
    const [sent] = double.requests;
    expect(sent!.method).toBe('POST');
    expect(sent!.path).toBe('/v1/chat/completions');
    expect(sent!.headers.authorization).toBe('Bearer sk-test-double');
    expect(sent!.body).toEqual({
      model: 'gpt-4o-mini',
      temperature: 0.2,
      messages: [
        { role: 'system', content: 'Read the receipt.' },
        { role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${PNG.toString('base64')}`, detail: 'high' } }] },
      ],
      response_format: { type: 'json_schema', json_schema: { name: 'receipt', schema: SCHEMA, strict: true } },
    });
  });

  test('keeps the schema key order and makes free-text pattern names valid schema names', async () => {
    double.reply(successWith({ title: 't', count: null }));
    await provider.extract(request({ schemaName: 'Receipt lines (v2) — ÜK' }));
    const sent = double.requests[0]!.body.response_format.json_schema;
    expect(sent.name).toBe('Receipt_lines_v2_K');
    expect(Object.keys(sent.schema)).toEqual(Object.keys(SCHEMA));
    expect(jsonSchemaName('***')).toBe('manifest');
    expect(jsonSchemaName('x'.repeat(100))).toHaveLength(64);
  });

  test('a refusal fails for good with the model’s words', async () => {
    const err = await failureOn({ type: 'refusal', refusal: "I can't help with that." });
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: 'refused', message: "the model refused: I can't help with that." });
  });

  test('a 429 retries at the time retry-after asks, with no retry inside the SDK', async () => {
    const before = Date.now();
    const err = await failureOn({ type: 'rate_limit', retryAfter: '7' });
    expect(err).toBeInstanceOf(RetryError);
    expect(err).toMatchObject({ code: 'rate_limited' });
    const waitMs = (err as RetryError).at!.getTime() - before;
    expect(waitMs).toBeGreaterThanOrEqual(7_000);
    expect(waitMs).toBeLessThan(8_000);
    expect(double.requests).toHaveLength(1);
  });

  test('retry-after-ms wins over retry-after, and a 429 without either leaves the wait to the backoff', async () => {
    const before = Date.now();
    const err = (await failureOn({ type: 'rate_limit', retryAfter: '30', retryAfterMs: '250' })) as RetryError;
    expect(err.at!.getTime() - before).toBeGreaterThanOrEqual(250);
    expect(err.at!.getTime() - before).toBeLessThan(1_000);
    const bare = await failureOn({ type: 'rate_limit' });
    expect(bare).toBeInstanceOf(RetryError);
    expect((bare as RetryError).at).toBeUndefined();
  });

  test('insufficient_quota is a 429 that never clears by itself', async () => {
    const err = await failureOn({ type: 'insufficient_quota' });
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: 'insufficient_quota' });
    expect(double.requests).toHaveLength(1);
  });

  test.each([500, 502, 503])('a %i retries, once per attempt', async (status) => {
    const err = await failureOn({ type: 'server_error', status });
    expect(err).toBeInstanceOf(RetryError);
    expect(err).toMatchObject({ code: 'provider_unavailable' });
    expect((err as Error).message).toContain(String(status));
    expect(double.requests).toHaveLength(1);
  });

  test('a schema the server rejects fails for good', async () => {
    const err = await failureOn({ type: 'bad_schema' });
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: 'invalid_schema' });
    expect((err as Error).message).toContain('Invalid schema for response_format');
  });

  test('an answer slower than the client timeout retries', async () => {
    const err = await failureOn({ type: 'slow', ms: TIMEOUT_MS * 5, content: '{}' });
    expect(err).toBeInstanceOf(RetryError);
    expect(err).toMatchObject({ code: 'provider_timeout' });
  });

  test.each([
    [{ type: 'truncated', content: '{"title": "Caf' } as DoubleAnswer, 'truncated', 'finish_reason: length'],
    [{ type: 'content_filter' } as DoubleAnswer, 'content_filter', 'content filter'],
    [{ type: 'invalid_json' } as DoubleAnswer, 'invalid_json', 'not JSON'],
  ])('%o fails for good', async (answer, code, words) => {
    const err = await failureOn(answer);
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code });
    expect((err as Error).message).toContain(words);
  });

  test('a server that cannot be reached retries', async () => {
    const gone = await startModelDouble();
    await gone.close();
    const unreachable = createOpenAIProvider({ apiKey: 'k', baseURL: gone.baseURL, timeoutMs: TIMEOUT_MS });
    const err = await unreachable.extract(request()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryError);
    expect(err).toMatchObject({ code: 'provider_unreachable' });
  });

  test('an abort stops the call and rejects with the signal’s own reason', async () => {
    double.reply({ type: 'slow', ms: 5_000, content: '{}' });
    const slowClient = createOpenAIProvider({ apiKey: 'k', baseURL: double.baseURL, timeoutMs: 10_000 });
    const controller = new AbortController();
    const reason = new Error('lease lost');
    const pending = slowClient.extract(request({ signal: controller.signal }));
    setTimeout(() => controller.abort(reason), 50);
    await expect(pending).rejects.toBe(reason);
  });
});

describe('createProvider', () => {
  test('fake without a key or when asked for, openai with a key, and no quiet fake when openai was asked for without one', () => {
    expect(createProvider({ AI_PROVIDER: 'fake', OPENAI_API_KEY: undefined, OPENAI_BASE_URL: undefined })).toBe(fakeProvider);
    expect(createProvider({ AI_PROVIDER: 'fake', OPENAI_API_KEY: 'sk-x', OPENAI_BASE_URL: undefined })).toBe(fakeProvider);
    expect(createProvider({ AI_PROVIDER: 'openai', OPENAI_API_KEY: 'sk-x', OPENAI_BASE_URL: double.baseURL }).name).toBe('openai');
    expect(() => createProvider({ AI_PROVIDER: 'openai', OPENAI_API_KEY: undefined, OPENAI_BASE_URL: undefined })).toThrow(/needs OPENAI_API_KEY/);
  });

  test('the fake provider answers with a schema-shaped manifest and estimated usage', async () => {
    const result = await fakeProvider.extract(request());
    expect(result.provider).toBe('fake');
    expect(Object.keys(result.manifest as object)).toEqual(['title', 'count']);
    expect(result.usage).toMatchObject({ estimated: true });
    expect(result.usage.total_tokens).toBe(result.usage.prompt_tokens + result.usage.completion_tokens);
  });
});
