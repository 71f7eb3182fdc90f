import type { ImageDetail } from '../ai/provider.js';
import { IMAGE_OUTPUT_TOKENS, priceOf, type PriceTable, type Priced } from './pricing.js';

/** Pixel size of an image, when known. */
export interface ImageSize {
  width: number;
  height: number;
}

/** Tokens and cost of one model call, estimated before it is made. */
export interface Estimate {
  /** The price-table entry the model was priced as. */
  pricedAs: string;
  textTokens: number;
  imageTokens: number;
  outputTokens: number;
  /** Rounded up to the micro-dollar. */
  micros: number;
}

// Short of a tokenizer: JSON Schemas and instructions run 3–4 characters per token in OpenAI's
// tokenizers; 3 keeps the estimate above what is billed. Each call also carries message framing.
const CHARS_PER_TOKEN = 3;
const FRAMING_TOKENS = 50;
const TILE_PX = 512;

/** Tokens of `chars` characters of prompt text (instructions, schema, image labels), rounded up. */
export function textTokens(chars: number): number {
  return Math.ceil(chars / CHARS_PER_TOKEN);
}

/** How many 512-px tiles an image becomes: fitted into 2048×2048, then its short side brought down to 768. */
export function imageTiles({ width, height }: ImageSize): number {
  let w = width;
  let h = height;
  const fit = Math.min(1, 2048 / Math.max(w, h));
  w *= fit;
  h *= fit;
  const shrink = Math.min(1, 768 / Math.min(w, h));
  w *= shrink;
  h *= shrink;
  return Math.ceil(Math.round(w) / TILE_PX) * Math.ceil(Math.round(h) / TILE_PX);
}

/** The most tiles any image can become (768×2048 after scaling: 2 × 4). */
export const MAX_TILES = 8;

/**
 * Image input tokens as OpenAI counts them: `low` detail is the base alone; `high` (and `auto`,
 * which may pick high) is the base plus a cost per tile. An unknown size counts the worst case.
 */
export function imageTokens(size: ImageSize | undefined, detail: ImageDetail, tile: Priced['price']['tile']): number {
  if (detail === 'low') return tile.base;
  return tile.base + tile.perTile * (size ? imageTiles(size) : MAX_TILES);
}

/** Micro-dollars for disjoint token counts at a model's prices, rounded up. */
export function microsFor(price: Priced['price'], t: { text: number; cached?: number; image: number; output: number }): number {
  return Math.ceil((t.text * price.input + (t.cached ?? 0) * price.cachedInput + t.image * price.imageInput + t.output * price.output) / 1_000_000);
}

/** What a vision call (manifest.extract, gallery.group) sends: prompt text, images, an output bound. */
export interface VisionCall {
  model: string;
  detail: ImageDetail;
  /** Characters of instructions, schema and any text parts. */
  promptChars: number;
  /** One entry per image; undefined where the size is unknown (the worst case is reserved). */
  images: (ImageSize | undefined)[];
  /** The output tokens to reserve; the model's own maximum when larger is not possible. */
  maxOutputTokens: number;
}

/** The cost of a vision call: prompt and schema tokens, image tokens, and the maximum output. */
export function estimateVision(table: PriceTable, call: VisionCall): Estimate {
  const priced = priceOf(table, call.model, 'gpt-4o');
  const text = textTokens(call.promptChars) + FRAMING_TOKENS;
  const image = call.images.reduce<number>((sum, size) => sum + imageTokens(size, call.detail, priced.price.tile), 0);
  const output = Math.min(call.maxOutputTokens, priced.price.maxOutput);
  return { pricedAs: priced.name, textTokens: text, imageTokens: image, outputTokens: output, micros: microsFor(priced.price, { text, image, output }) };
}

/** What an image edit sends: the prompt, the image (and mask), and the size asked for. */
export interface EditCall {
  model: string;
  promptChars: number;
  images: (ImageSize | undefined)[];
  size: '1024x1024' | '1536x1024' | '1024x1536' | 'auto';
}

/**
 * The cost of an image edit: prompt tokens, the input images tiled like gpt-4o's (high detail),
 * and the output image at high quality (the API's `auto` quality may choose it); `auto` size
 * reserves the larger portrait/landscape output.
 */
export function estimateEdit(table: PriceTable, call: EditCall): Estimate {
  const priced = priceOf(table, call.model, 'gpt-image-1');
  const text = textTokens(call.promptChars) + FRAMING_TOKENS;
  const image = call.images.reduce<number>((sum, size) => sum + imageTokens(size, 'high', priced.price.tile), 0);
  const output = IMAGE_OUTPUT_TOKENS[call.size === '1024x1024' ? 'square' : 'portrait'].high;
  return { pricedAs: priced.name, textTokens: text, imageTokens: image, outputTokens: output, micros: microsFor(priced.price, { text, image, output }) };
}
