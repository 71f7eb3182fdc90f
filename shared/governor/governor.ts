import type { Config } from '../config.js';
import type { Sql, Tx } from '../db/connect.js';
import { AppError } from '../errors.js';
import { GALLERY_INSTRUCTIONS, GALLERY_SCHEMA } from '../ai/gallery-albums.js';
import { KINDS, isKind, type KindSpec, type PayloadOf } from '../jobs/kinds.js';
import { estimateEdit, estimateVision, type Estimate } from './estimate.js';
import { priceTable, type PriceTable } from './pricing.js';

/** The settings the governor reads. */
export type GovernorConfig = Pick<
  Config,
  'GOVERNOR_MARGIN_FLOOR' | 'GOVERNOR_CREDIT_USD' | 'GOVERNOR_PRICES' | 'GOVERNOR_KIND_PRICES' | 'GOVERNOR_MAX_OUTPUT_TOKENS' |
  'OPENAI_MODEL' | 'OPENAI_IMAGE_MODEL' | 'OPENAI_IMAGE_DETAIL'
>;

/** What a pattern version contributes to an estimate: its model and the characters of its prompt. */
export interface PatternCostInputs {
  model: string | null;
  promptChars: number;
}

// A pattern's current version is re-read at most this often per API process. A version changed
// meanwhile only shifts the estimate; settlement charges what the call actually cost.
const PATTERN_TTL_MS = 5_000;
const PATTERN_CACHE_MAX = 10_000;
const GALLERY_PROMPT_CHARS = GALLERY_INSTRUCTIONS.length + JSON.stringify(GALLERY_SCHEMA).length;
// "Image 12: uploads/<uuid>/<name>" before each image of a gallery call.
const GALLERY_LABEL_CHARS = 120;

/** Micro-dollars as USD text for messages: 1234567 → "$1.234567". */
export function usdText(micros: number | bigint): string {
  const m = BigInt(micros);
  const sign = m < 0n ? '-' : '';
  const abs = m < 0n ? -m : m;
  return `${sign}$${abs / 1_000_000n}.${(abs % 1_000_000n).toString().padStart(6, '0')}`;
}

/** USD as micro-dollars, exactly for up to six decimals. */
export function usdToMicros(usd: number): number {
  return Math.round(usd * 1_000_000);
}

/** A refusal as governor_reserve returns it. */
export interface Refusal {
  code: 'budget_exceeded';
  ceiling: string;
  limit_micros: number;
  used_micros: number;
  requested_micros: number;
  exceeded_by_micros: number;
}

/** The 402 problem for a refusal: which ceiling, its limit, what is used, what was asked, and by how much it is exceeded. */
export function refusalError(r: Refusal): AppError {
  const detail =
    `the ${r.ceiling.replace('_', ' ')} ceiling of ${usdText(r.limit_micros)} would be exceeded by ${usdText(r.exceeded_by_micros)}: ` +
    `${usdText(r.used_micros)} already spent or reserved, ${usdText(r.requested_micros)} requested`;
  return new AppError('budget_exceeded', detail, {
    ceiling: r.ceiling,
    limit_micros: Number(r.limit_micros),
    used_micros: Number(r.used_micros),
    requested_micros: Number(r.requested_micros),
    exceeded_by_micros: Number(r.exceeded_by_micros),
  });
}

/**
 * Prices, estimates and the margin floor, for the API's enqueue paths. The database does the rest
 * (reservations, settlement, the brake) in leasehold.governor_* functions.
 */
export class Governor {
  readonly prices: PriceTable;
  readonly #config: GovernorConfig;
  readonly #patterns = new Map<string, { at: number; value: Promise<PatternCostInputs | undefined> }>();

  constructor(config: GovernorConfig) {
    this.#config = config;
    this.prices = priceTable(config.GOVERNOR_PRICES);
  }

  /** Micro-dollars one credit is worth. */
  get creditMicros(): number {
    return usdToMicros(this.#config.GOVERNOR_CREDIT_USD);
  }

  /** A paid kind's price in credits (GOVERNOR_KIND_PRICES over the registry), undefined for a free kind. */
  priceCredits(kind: string): number | undefined {
    if (!isKind(kind)) return undefined;
    const base = (KINDS[kind] as KindSpec).priceCredits;
    return base === undefined ? undefined : (this.#config.GOVERNOR_KIND_PRICES?.[kind] ?? base);
  }

  /** Refuses (402 margin_floor) a job whose estimated cost leaves less than the margin floor of its price. */
  checkMargin(kind: string, estimateMicros: number): void {
    const credits = this.priceCredits(kind);
    if (credits === undefined) return;
    const floor = this.#config.GOVERNOR_MARGIN_FLOOR;
    const price = credits * this.creditMicros;
    const limit = Math.floor(price * (1 - floor));
    if (estimateMicros <= limit) return;
    throw new AppError(
      'margin_floor',
      `a ${kind} job is estimated at ${usdText(estimateMicros)}, more than ${usdText(limit)} ` +
        `(its price of ${credits} credits, ${usdText(price)}, less the ${floor * 100} % margin floor) by ${usdText(estimateMicros - limit)}`,
      { ceiling: 'margin_floor', limit_micros: limit, used_micros: 0, requested_micros: estimateMicros, exceeded_by_micros: estimateMicros - limit, price_micros: price },
    );
  }

  /** One manifest.extract call with the pattern version's prompt, for an image of unknown size (the worst case). */
  manifestEstimate(pattern: PatternCostInputs | undefined): Estimate {
    return estimateVision(this.prices, {
      model: pattern?.model ?? this.#config.OPENAI_MODEL,
      detail: this.#config.OPENAI_IMAGE_DETAIL,
      promptChars: pattern?.promptChars ?? 0,
      images: [undefined],
      maxOutputTokens: this.#config.GOVERNOR_MAX_OUTPUT_TOKENS,
    });
  }

  /** One gallery.group call (images at low detail, as the handler sends them). */
  galleryEstimate(payload: PayloadOf<'gallery.group'>): Estimate {
    return estimateVision(this.prices, {
      model: this.#config.OPENAI_MODEL,
      detail: 'low',
      promptChars: GALLERY_PROMPT_CHARS + (payload.hint?.length ?? 0) + GALLERY_LABEL_CHARS * payload.images.length,
      images: payload.images.map(() => undefined),
      maxOutputTokens: this.#config.GOVERNOR_MAX_OUTPUT_TOKENS,
    });
  }

  /** One image.edit call. */
  editEstimate(payload: PayloadOf<'image.edit'>): Estimate {
    return estimateEdit(this.prices, {
      model: payload.model ?? this.#config.OPENAI_IMAGE_MODEL,
      promptChars: payload.prompt.length,
      images: payload.mask === undefined ? [undefined] : [undefined, undefined],
      size: payload.size ?? 'auto',
    });
  }

  /** The estimate of one job of a paid kind (undefined for a free kind). */
  async estimateJob(db: Sql | Tx, tenantId: string, kind: string, payload: unknown): Promise<Estimate | undefined> {
    switch (kind) {
      case 'manifest.extract': {
        const p = payload as PayloadOf<'manifest.extract'>;
        return this.manifestEstimate(await this.patternInputs(db, tenantId, p.pattern_id, p.pattern_version));
      }
      case 'gallery.group':
        return this.galleryEstimate(payload as PayloadOf<'gallery.group'>);
      case 'image.edit':
        return this.editEstimate(payload as PayloadOf<'image.edit'>);
      default:
        return undefined;
    }
  }

  /**
   * A pattern version's model and prompt size: the current version (cached a few seconds per
   * process, so the hot ingest path adds no round trip), or the named one.
   */
  patternInputs(db: Sql | Tx, tenantId: string, patternId: string, version?: number): Promise<PatternCostInputs | undefined> {
    const key = `${tenantId}/${patternId}/${version ?? 'current'}`;
    const now = Date.now();
    const hit = this.#patterns.get(key);
    if (hit && now - hit.at < PATTERN_TTL_MS) return hit.value;
    if (this.#patterns.size >= PATTERN_CACHE_MAX) this.#patterns.clear();
    const value = db<{ model: string | null; chars: number }[]>`
      select v.model, (length(v.name) + length(v.instructions) + length(v.json_schema::text))::int as chars
      from leasehold.patterns p
      join leasehold.pattern_versions v on v.pattern_id = p.id and v.version = coalesce(${version ?? null}::int, p.current_version)
      where p.id = ${patternId}::uuid and p.tenant_id = ${tenantId}::uuid and p.deleted_at is null`.then(
      ([row]) => (row ? { model: row.model, promptChars: row.chars } : undefined),
    );
    this.#patterns.set(key, { at: now, value });
    value.catch(() => this.#patterns.delete(key));
    return value;
  }
}
