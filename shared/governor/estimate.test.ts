import { describe, expect, test } from 'vitest';
import { loadConfig } from '../config.js';
import { AppError } from '../errors.js';
import { callCost, chatTokens, imageApiTokens } from './cost.js';
import { MAX_TILES, estimateEdit, estimateVision, imageTiles, imageTokens } from './estimate.js';
import { Governor, usdText } from './governor.js';
import { DEFAULT_PRICES, priceOf, priceTable } from './pricing.js';

const GPT4O = DEFAULT_PRICES.models['gpt-4o']!;
const MINI = DEFAULT_PRICES.models['gpt-4o-mini']!;

describe('image tokens, against OpenAI\'s published examples', () => {
  test('gpt-4o: 1024×1024 at high detail is 765 tokens (768×768, four tiles)', () => {
    expect(imageTiles({ width: 1024, height: 1024 })).toBe(4);
    expect(imageTokens({ width: 1024, height: 1024 }, 'high', GPT4O.tile)).toBe(765);
  });

  test('gpt-4o: 2048×4096 at high detail is 1,105 tokens (1024×2048 → 768×1536, six tiles)', () => {
    expect(imageTiles({ width: 2048, height: 4096 })).toBe(6);
    expect(imageTokens({ width: 2048, height: 4096 }, 'high', GPT4O.tile)).toBe(1105);
  });

  test('gpt-4o: 4096×8192 at low detail is 85 tokens, whatever the size', () => {
    expect(imageTokens({ width: 4096, height: 8192 }, 'low', GPT4O.tile)).toBe(85);
  });

  test('gpt-4o-mini: 2,833 + 5,667 per tile (1024×1024 high: 25,501; low: 2,833)', () => {
    expect(imageTokens({ width: 1024, height: 1024 }, 'high', MINI.tile)).toBe(2_833 + 4 * 5_667);
    expect(imageTokens({ width: 1024, height: 1024 }, 'low', MINI.tile)).toBe(2_833);
  });

  test('an unknown size reserves the worst case: no image becomes more than 8 tiles, and auto may pick high', () => {
    expect(MAX_TILES).toBe(8);
    expect(imageTiles({ width: 768, height: 2048 })).toBe(8);
    expect(imageTiles({ width: 1200, height: 3000 })).toBe(8);
    for (const [w, h] of [[1, 1], [512, 512], [100, 5000], [3000, 3000], [2048, 768], [6000, 4000]] as const) {
      expect(imageTiles({ width: w, height: h })).toBeLessThanOrEqual(MAX_TILES);
    }
    expect(imageTokens(undefined, 'auto', GPT4O.tile)).toBe(85 + 170 * 8);
    expect(imageTokens(undefined, 'high', MINI.tile)).toBe(2_833 + 5_667 * 8);
  });
});

describe('estimates', () => {
  test('a vision call: prompt and schema text, image tokens and the output bound, at the model\'s prices, rounded up', () => {
    const e = estimateVision(DEFAULT_PRICES, { model: 'gpt-4o-mini', detail: 'auto', promptChars: 300, images: [undefined], maxOutputTokens: 4_096 });
    // 300 characters at 3 per token + 50 framing; 48,169 image tokens; 4,096 output. $0.15 and $0.60 per million.
    expect(e).toEqual({ pricedAs: 'gpt-4o-mini', textTokens: 150, imageTokens: 48_169, outputTokens: 4_096, micros: Math.ceil((150 * 0.15 + 48_169 * 0.15 + 4_096 * 0.6)) });
    expect(e.micros).toBe(9_706);
  });

  test('the output bound never exceeds the model\'s own maximum', () => {
    const e = estimateVision(DEFAULT_PRICES, { model: 'gpt-4o', detail: 'low', promptChars: 0, images: [], maxOutputTokens: 1_000_000 });
    expect(e.outputTokens).toBe(16_384);
  });

  test('an image edit reserves a high-quality output: 4,160 tokens square, 6,240 for auto or portrait', () => {
    const square = estimateEdit(DEFAULT_PRICES, { model: 'gpt-image-1', promptChars: 30, images: [undefined], size: '1024x1024' });
    const auto = estimateEdit(DEFAULT_PRICES, { model: 'gpt-image-1', promptChars: 30, images: [undefined], size: 'auto' });
    expect(square.outputTokens).toBe(4_160);
    expect(auto.outputTokens).toBe(6_240);
    // 60 text tokens at $5, 1,445 image tokens at $10, 6,240 output tokens at $40 per million.
    expect(auto.micros).toBe(Math.ceil(60 * 5 + 1_445 * 10 + 6_240 * 40));
  });
});

describe('prices', () => {
  test('dated snapshots are priced as their model; unknown models as the dearest of their sort', () => {
    expect(priceOf(DEFAULT_PRICES, 'gpt-4o-mini-2024-07-18', 'gpt-4o').name).toBe('gpt-4o-mini');
    expect(priceOf(DEFAULT_PRICES, 'gpt-4o-2024-08-06', 'gpt-4o').name).toBe('gpt-4o');
    expect(priceOf(DEFAULT_PRICES, 'gpt-4.1-mini-2025-04-14', 'gpt-4o').name).toBe('gpt-4.1-mini');
    expect(priceOf(DEFAULT_PRICES, 'llava-13b', 'gpt-4o').name).toBe('gpt-4o');
    expect(priceOf(DEFAULT_PRICES, 'someone-elses-image-model', 'gpt-image-1').name).toBe('gpt-image-1');
  });

  test('GOVERNOR_PRICES overrides and adds models, in USD per million tokens, and dates the table today', () => {
    const config = loadConfig({ GOVERNOR_PRICES: '{"gpt-4o":{"input":3,"output":12},"llava-13b":{"input":0.1,"output":0.2}}' });
    const table = priceTable(config.GOVERNOR_PRICES);
    expect(table.models['gpt-4o']).toMatchObject({ input: 3_000_000, cachedInput: 3_000_000, output: 12_000_000, tile: { base: 85, perTile: 170 } });
    expect(priceOf(table, 'llava-13b', 'gpt-4o').price.output).toBe(200_000);
    expect(table.date).toBe(new Date().toISOString().slice(0, 10));
    expect(() => loadConfig({ GOVERNOR_PRICES: '{"gpt-4o":{"input":"cheap"}}' })).toThrow(/GOVERNOR_PRICES/);
    expect(() => loadConfig({ GOVERNOR_PRICES: 'not json' })).toThrow(/GOVERNOR_PRICES: must be JSON/);
  });

  test('a call\'s cost: cached prompt tokens at the cached price, image-API input split into text and image', () => {
    const chat = callCost(DEFAULT_PRICES, 'gpt-4o-2024-08-06', 'gpt-4o', chatTokens({ prompt_tokens: 1_000, completion_tokens: 200, cached_tokens: 400 }));
    // 600 × $2.50 + 400 × $1.25 + 200 × $10 per million = 1,500 + 500 + 2,000 micro-dollars.
    expect(chat).toMatchObject({ text: 600, cached: 400, output: 200, pricedAs: 'gpt-4o', micros: 4_000 });
    const edit = callCost(DEFAULT_PRICES, 'gpt-image-1', 'gpt-image-1', imageApiTokens({ input_tokens: 50, output_tokens: 200, text_tokens: 10, image_tokens: 40 }));
    expect(edit.micros).toBe(Math.ceil((10 * 5 + 40 * 10 + 200 * 40) / 1));
    expect(callCost(DEFAULT_PRICES, 'gpt-4o-mini', 'gpt-4o', chatTokens({ prompt_tokens: 321, completion_tokens: 45 })).micros).toBe(Math.ceil(321 * 0.15 + 45 * 0.6));
  });
});

describe('margin floor', () => {
  const governor = (env: Record<string, string> = {}) => new Governor(loadConfig(env));

  test('refuses a paid job estimated above price × (1 − floor) with a 402 naming the limit and the excess', () => {
    const g = governor({ GOVERNOR_KIND_PRICES: '{"manifest.extract":10}' });
    // 10 credits × $0.001 = $0.01; 60 % of it is $0.006.
    expect(() => g.checkMargin('manifest.extract', 6_000)).not.toThrow();
    try {
      g.checkMargin('manifest.extract', 6_001);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe('margin_floor');
      expect((err as AppError).status).toBe(402);
      expect((err as AppError).extra).toMatchObject({ ceiling: 'margin_floor', limit_micros: 6_000, requested_micros: 6_001, exceeded_by_micros: 1 });
    }
  });

  test('the built-in prices leave every default model\'s worst case inside the floor, so a zero-config start runs every workload', () => {
    const g = governor();
    for (const model of ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'gpt-4.1-mini']) {
      const e = new Governor(loadConfig({ OPENAI_MODEL: model })).manifestEstimate({ model: null, promptChars: 2_000 });
      expect(() => g.checkMargin('manifest.extract', e.micros), model).not.toThrow();
    }
    const images = Array.from({ length: 50 }, (_, i) => `uploads/00000000-0000-0000-0000-000000000001/${i}.png`);
    expect(() => g.checkMargin('gallery.group', g.galleryEstimate({ images }).micros)).not.toThrow();
    expect(() => g.checkMargin('image.edit', g.editEstimate({ image: images[0]!, mask: images[1]!, prompt: 'x'.repeat(4000) }).micros)).not.toThrow();
    expect(() => g.checkMargin('system.noop', 1e12)).not.toThrow();
  });

  test('usdText prints micro-dollars exactly', () => {
    expect(usdText(1_234_567)).toBe('$1.234567');
    expect(usdText(5)).toBe('$0.000005');
    expect(usdText(-250_000)).toBe('-$0.250000');
  });
});
