import { createHash } from 'node:crypto';
import { PermanentError } from '#shared/jobs/job-errors.js';
import { fakeNumber } from './fake-number.js';
import { SeededRandom, fakeFormat, fakeString } from './fake-values.js';
import { PatternSampleError, samplePattern } from './sample-pattern.js';
import { EXPANSION_LIMITS } from '../patterns/schema-expansion.js';
import { resolveLocalRef } from '../json-pointer.js';
import { PatternBudgetError, PatternError, StepBudget, compileLinearRegExp, type LinearRegExp } from '../patterns/linear-regexp.js';

/** The provider name stored with every result the fake provider made (`result.provider`). */
export const FAKE_PROVIDER = 'fake' as const;

/** Tuning for fakeManifest; the defaults suit demos. */
export interface FakeManifestOptions {
  /** Most items in an array whose schema allows more (its minItems still wins). */
  maxArrayItems?: number;
}

/** Token counts the fake provider reports: estimated from sizes, never measured, and marked so. */
export interface FakeUsage {
  provider: typeof FAKE_PROVIDER;
  estimated: true;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

type Schema = Record<string, unknown>;

const isSchema = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNullSchema = (v: unknown) => isSchema(v) && (v.type === 'null' || ('const' in v && v.const === null));
// Past this many $ref hops a recursive schema takes its shortest way out (null, fewest items).
const MAX_REF_HOPS = 6;
// Schema levels walked before giving up on a schema that recurses with no way out.
const MAX_NESTING = EXPANSION_LIMITS.nesting;
// How often a nullable value is null: some, to show the shape, but mostly filled in.
const NULL_CHANCE = 0.15;
// Values in one manifest. A model's answer holds far fewer: 16,384 output tokens, a few per
// value. Without a bound, objects that each hold two copies of the next (through $ref), or a
// minItems of 10^9, would fill the heap and take the worker down with every job it holds.
const MAX_VALUES = 50_000;

/** JSON with object keys sorted, so two spellings of one schema seed the same output. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isSchema(v)) return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

/** `items` → `item`, `categories` → `category`: an array's property name as a hint for its items. */
function singular(name: string): string {
  if (/ies$/.test(name)) return `${name.slice(0, -3)}y`;
  return /[^s]s$/.test(name) ? name.slice(0, -1) : name;
}

/** The failure of a schema the fake provider cannot fill within its bounds. */
const tooLarge = (what: string) => new PermanentError(`the fake provider cannot fill this schema: ${what}`, 'schema_too_large');

class Faker {
  private values = 0;
  private readonly patterns = new Map<string, LinearRegExp | null>();
  // Candidates are checked with the linear-time engine: a stored pattern may be hostile.
  private readonly budget = new StepBudget();

  constructor(private readonly root: Schema, private readonly r: SeededRandom, private readonly maxItems: number) {}

  value(s: unknown, hint: string, hops: number, nesting: number): unknown {
    if (nesting > MAX_NESTING) throw new PermanentError(`the schema recurses more than ${MAX_NESTING} levels with no way out`, 'schema_unsatisfiable');
    if (++this.values > MAX_VALUES) throw tooLarge(`it asks for more than ${MAX_VALUES} values`);
    if (!isSchema(s)) return null;
    const short = hops >= MAX_REF_HOPS;
    if (typeof s.$ref === 'string') return this.value(this.resolve(s.$ref), hint, hops + 1, nesting + 1);
    if ('const' in s) return s.const;
    if (Array.isArray(s.enum) && s.enum.length > 0) {
      const filled = s.enum.filter((v) => v !== null);
      const takeNull = filled.length < s.enum.length && (filled.length === 0 || short || this.r.chance(NULL_CHANCE));
      return takeNull ? null : this.r.pick(filled);
    }
    if (Array.isArray(s.anyOf) && s.anyOf.length > 0) {
      const filled = s.anyOf.filter((b) => !isNullSchema(b));
      const nullable = filled.length < s.anyOf.length;
      const takeNull = filled.length === 0 || (nullable && (short || this.r.chance(NULL_CHANCE)));
      return takeNull ? null : this.value(this.r.pick(filled), hint, hops, nesting + 1);
    }
    const types = typeof s.type === 'string' ? [s.type] : Array.isArray(s.type) ? (s.type as string[]) : 'properties' in s ? ['object'] : [];
    const filled = types.filter((t) => t !== 'null');
    if (filled.length === 0 || (filled.length < types.length && (short || this.r.chance(NULL_CHANCE)))) return null;
    return this.typed(s, this.r.pick(filled), hint, hops, nesting);
  }

  typed(s: Schema, type: string, hint: string, hops: number, nesting: number): unknown {
    switch (type) {
      case 'object': {
        const props = isSchema(s.properties) ? s.properties : {};
        // Drawn in sorted order, so the seed alone decides the values; emitted in the schema's order.
        const drawn = new Map(Object.keys(props).sort().map((k) => [k, this.value(props[k], k, hops, nesting + 1)]));
        return Object.fromEntries(Object.keys(props).map((k) => [k, drawn.get(k)]));
      }
      case 'array': {
        const min = typeof s.minItems === 'number' ? s.minItems : 0;
        const max = typeof s.maxItems === 'number' ? s.maxItems : Infinity;
        const lo = Math.max(min, Math.min(1, max));
        const n = hops >= MAX_REF_HOPS ? min : this.r.int(lo, Math.max(lo, Math.min(max, this.maxItems)));
        if (n > MAX_VALUES - this.values) throw tooLarge(`minItems ${min} makes it ask for more than ${MAX_VALUES} values`);
        return Array.from({ length: n }, () => this.value(s.items, singular(hint), hops, nesting + 1));
      }
      case 'string':
        return this.string(s, hint);
      case 'integer':
        return fakeNumber(s, hint, true, this.r);
      case 'number':
        return fakeNumber(s, hint, false, this.r);
      case 'boolean':
        return this.r.chance(0.5);
      default:
        return null;
    }
  }

  string(s: Schema, hint: string): string {
    const formatted = typeof s.format === 'string' ? fakeFormat(s.format, this.r) : undefined;
    if (typeof s.pattern !== 'string') return formatted ?? fakeString(hint, this.r);
    const re = this.pattern(s.pattern);
    if (!re) return formatted ?? fakeString(hint, this.r);
    // The plausible value first (a date, "Cedar Atlas"), then samples of the pattern itself.
    let candidate = formatted ?? fakeString(hint, this.r);
    try {
      for (let attempt = 0; attempt < 8 && !re.test(candidate, this.budget); attempt++) candidate = samplePattern(s.pattern, this.r);
    } catch (err) {
      if (err instanceof PatternSampleError || err instanceof PatternBudgetError) throw tooLarge(`pattern ${JSON.stringify(s.pattern.slice(0, 100))}: ${err.message}`);
      throw err;
    }
    return candidate;
  }

  /** The compiled pattern; undefined for one that does not compile (validation will say why). */
  pattern(source: string): LinearRegExp | undefined {
    if (!this.patterns.has(source)) {
      try {
        this.patterns.set(source, compileLinearRegExp(source));
      } catch (err) {
        if (!(err instanceof PatternError)) throw err;
        this.patterns.set(source, null);
      }
    }
    return this.patterns.get(source) ?? undefined;
  }

  resolve(ref: string): unknown {
    return resolveLocalRef(this.root, ref);
  }
}

/**
 * A manifest valid under a strict Structured Outputs schema, made up from the schema and the image
 * alone: the same schema and bytes always give the same manifest, other bytes (almost always) another.
 */
export function fakeManifest(schema: unknown, imageBytes: Uint8Array, opts: FakeManifestOptions = {}): unknown {
  const seed = createHash('sha256').update(canonicalJson(schema)).update('\n').update(imageBytes).digest();
  const root = isSchema(schema) ? schema : {};
  return new Faker(root, new SeededRandom(seed), opts.maxArrayItems ?? 4).value(root, 'manifest', 0, 0);
}

// About four characters of JSON per token, and OpenAI's vision tiling (85 + 170 per 512-px tile),
// with the tile count guessed from the file size because the fake provider never decodes the image.
const CHARS_PER_TOKEN = 4;
const BYTES_PER_TILE = 128 * 1024;

/** Token counts for a fake call, estimated from the sizes of schema, image and output (not billed by anyone). */
export function fakeUsage(schema: unknown, imageBytes: Uint8Array, output: unknown): FakeUsage {
  const tiles = Math.min(16, Math.max(1, Math.ceil(imageBytes.byteLength / BYTES_PER_TILE)));
  const prompt = Math.ceil((JSON.stringify(schema) ?? '').length / CHARS_PER_TOKEN) + 85 + 170 * tiles;
  const completion = Math.ceil((JSON.stringify(output) ?? '').length / CHARS_PER_TOKEN);
  return { provider: FAKE_PROVIDER, estimated: true, prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}
