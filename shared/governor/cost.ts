import { priceOf, type PriceTable } from './pricing.js';
import { microsFor } from './estimate.js';

/** Token counts a provider reported for one call, as disjoint parts. */
export interface CallTokens {
  /** Uncached text input (for chat models: every prompt token that was not cached, images included). */
  text: number;
  cached: number;
  /** Image input billed apart from text (image models). */
  image: number;
  output: number;
}

/** One call's cost, with what it was priced at: a cost_events row. */
export interface CallCost extends CallTokens {
  model: string;
  pricedAs: string;
  pricesDate: string;
  prices: { input: number; cachedInput: number; imageInput: number; output: number };
  micros: number;
}

/** Chat usage (prompt tokens include cached ones) as disjoint parts. */
export function chatTokens(u: { prompt_tokens: number; completion_tokens: number; cached_tokens?: number }): CallTokens {
  const cached = Math.min(u.cached_tokens ?? 0, u.prompt_tokens);
  return { text: u.prompt_tokens - cached, cached, image: 0, output: u.completion_tokens };
}

/** Image-API usage: text and image input when the provider splits them, else all input as image input (the dearer). */
export function imageApiTokens(u: { input_tokens: number; output_tokens: number; text_tokens?: number; image_tokens?: number }): CallTokens {
  if (u.text_tokens === undefined || u.image_tokens === undefined) return { text: 0, cached: 0, image: u.input_tokens, output: u.output_tokens };
  return { text: u.text_tokens, cached: 0, image: u.image_tokens, output: u.output_tokens };
}

/** What a call cost at the table's prices, rounded up to the micro-dollar. */
export function callCost(table: PriceTable, model: string, sort: 'gpt-4o' | 'gpt-image-1', tokens: CallTokens): CallCost {
  const { name, price } = priceOf(table, model, sort);
  return {
    ...tokens,
    model,
    pricedAs: name,
    pricesDate: table.date,
    prices: { input: price.input, cachedInput: price.cachedInput, imageInput: price.imageInput, output: price.output },
    micros: microsFor(price, tokens),
  };
}
