import { z } from 'zod';

/** Prices of one model, in micro-dollars per million tokens (USD 2.50 per million = 2_500_000). */
export interface ModelPrice {
  input: number;
  cachedInput: number;
  /** Image input tokens, where the model bills them apart from text (image models); else = input. */
  imageInput: number;
  output: number;
  /** How image tokens are counted for vision input: OpenAI's 512-px tiles with this base and per-tile cost. */
  tile: { base: number; perTile: number };
  /** The most output tokens the model may produce in one call. */
  maxOutput: number;
}

/** The price table and the date it was taken from the provider's published prices. */
export interface PriceTable {
  date: string;
  models: Record<string, ModelPrice>;
}

const usd = (perMillion: number) => Math.round(perMillion * 1_000_000);
const GPT4O_TILES = { base: 85, perTile: 170 };

/**
 * OpenAI's published prices per million tokens, as read on 2026-11-05 (developers.openai.com
 * pricing and model pages). gpt-image-1 bills text input at $5,
 * image input at $10 and image output at $40 per million; an output image is 272 / 1,056 / 4,160
 * tokens at low / medium / high quality for 1024×1024, and 408 / 1,584 / 6,240 for 1024×1536 or
 * 1536×1024 (its per-image prices $0.011–$0.25 are those tokens at $40 per million).
 */
export const DEFAULT_PRICES: PriceTable = {
  date: '2026-11-05',
  models: {
    'gpt-4o': { input: usd(2.5), cachedInput: usd(1.25), imageInput: usd(2.5), output: usd(10), tile: GPT4O_TILES, maxOutput: 16_384 },
    // The mini model counts far more tokens per image at a lower price: 2,833 + 5,667 per tile.
    'gpt-4o-mini': { input: usd(0.15), cachedInput: usd(0.075), imageInput: usd(0.15), output: usd(0.6), tile: { base: 2_833, perTile: 5_667 }, maxOutput: 16_384 },
    'gpt-4.1': { input: usd(2), cachedInput: usd(0.5), imageInput: usd(2), output: usd(8), tile: GPT4O_TILES, maxOutput: 32_768 },
    'gpt-4.1-mini': { input: usd(0.4), cachedInput: usd(0.1), imageInput: usd(0.4), output: usd(1.6), tile: GPT4O_TILES, maxOutput: 32_768 },
    'gpt-image-1': { input: usd(5), cachedInput: usd(1.25), imageInput: usd(10), output: usd(40), tile: GPT4O_TILES, maxOutput: 6_240 },
  },
};

/** Output tokens of one gpt-image-1 image by size and quality (OpenAI's image generation pricing). */
export const IMAGE_OUTPUT_TOKENS: Record<'square' | 'portrait', Record<'low' | 'medium' | 'high', number>> = {
  square: { low: 272, medium: 1_056, high: 4_160 },
  portrait: { low: 408, medium: 1_584, high: 6_240 },
};

const perMillion = z.number().nonnegative().max(1_000_000);
/** GOVERNOR_PRICES: `{"model": {"input": 2.5, "cached_input": 1.25, "output": 10, "image_input"?: …}}` in USD per million tokens. */
export const PriceOverrides = z.record(
  z.string().min(1),
  z
    .object({
      input: perMillion,
      cached_input: perMillion.optional(),
      image_input: perMillion.optional(),
      output: perMillion,
      tile_base: z.number().int().nonnegative().optional(),
      tile_tokens: z.number().int().nonnegative().optional(),
      max_output_tokens: z.number().int().positive().optional(),
    })
    .strict(),
);

/** The default table with GOVERNOR_PRICES applied (a model not in the table is added). */
export function priceTable(overrides: z.output<typeof PriceOverrides> = {}): PriceTable {
  const models = { ...DEFAULT_PRICES.models };
  for (const [name, o] of Object.entries(overrides)) {
    const base = models[name];
    models[name] = {
      input: usd(o.input),
      cachedInput: usd(o.cached_input ?? o.input),
      imageInput: usd(o.image_input ?? o.input),
      output: usd(o.output),
      tile: { base: o.tile_base ?? base?.tile.base ?? GPT4O_TILES.base, perTile: o.tile_tokens ?? base?.tile.perTile ?? GPT4O_TILES.perTile },
      maxOutput: o.max_output_tokens ?? base?.maxOutput ?? 16_384,
    };
  }
  return { date: Object.keys(overrides).length ? new Date().toISOString().slice(0, 10) : DEFAULT_PRICES.date, models };
}

/** The table's entry a model is priced as, and that entry's name. */
export interface Priced {
  name: string;
  price: ModelPrice;
}

/**
 * The price of a model: its own entry, else the longest entry its name starts with (a dated
 * snapshot such as `gpt-4o-mini-2024-07-18` is priced as `gpt-4o-mini`), else `fallback` (the
 * dearest model of its sort, so an unknown model is never priced as cheap; GOVERNOR_PRICES names it).
 */
export function priceOf(table: PriceTable, model: string, fallback: 'gpt-4o' | 'gpt-image-1'): Priced {
  const exact = table.models[model];
  if (exact) return { name: model, price: exact };
  const prefix = Object.keys(table.models)
    .filter((name) => model.startsWith(`${name}-`))
    .sort((a, b) => b.length - a.length)[0];
  const name = prefix ?? fallback;
  return { name, price: table.models[name] ?? DEFAULT_PRICES.models[fallback]! };
}
