import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { DEFAULT_REGEXP_STEPS, PatternBudgetError, StepBudget, compileLinearRegExp } from '../patterns/linear-regexp.js';
import { expansionProblem } from '../patterns/schema-expansion.js';
import { childPath, pointerTokens } from '../json-pointer.js';
import { LruCache } from '../lru-cache.js';

/** One way a manifest breaks its schema: where (`$.items[2].price`) and why. */
export interface OutputProblem {
  path: string;
  message: string;
}

/** The verdict on a model's output. */
export type ManifestVerdict = { ok: true } | { ok: false; errors: OutputProblem[] };

/** Thrown when a pattern's schema cannot be compiled at all (the job can never succeed with it). */
export class SchemaCompileError extends Error {
  override name = 'SchemaCompileError';
}

// Steps every `pattern` test in one manifest may take together (linear-regexp.ts): about 0.1 s.
const PATTERN_STEPS_PER_MANIFEST = DEFAULT_REGEXP_STEPS;
// The budget of the validateManifest call running now (validation is synchronous, so there is
// at most one); a validator called some other way gets a budget per test.
let manifestBudget: StepBudget | undefined;

// `pattern` is matched by the linear-time engine, never by V8's backtracking one: a tenant picks
// the pattern, and `^(a|a)*$` on 31 characters blocked V8 for 62 s here. A pattern the engine
// refuses (lookaround, backreference, too large) makes the schema fail to compile.
const linearRegExp = Object.assign((pattern: string) => {
  const re = compileLinearRegExp(pattern);
  return { test: (s: string) => re.test(s, manifestBudget ?? new StepBudget(PATTERN_STEPS_PER_MANIFEST)), toString: () => re.toString() };
}, { code: 'linearRegExp' });

// Strict where it catches mistakes (unknown keywords and formats throw), relaxed where strict
// Structured Outputs are legitimately loose: `type: ["string", "null"]` unions, and `properties`
// inside anyOf branches. multipleOfPrecision: 0.3 is a multiple of 0.1 (plain JS says 2.9999…).
const ajv = new Ajv({
  code: { regExp: linearRegExp },
  strict: true,
  strictTypes: false,
  strictTuples: false,
  strictRequired: false,
  allowUnionTypes: true,
  allErrors: true,
  multipleOfPrecision: 9,
  logger: false,
});
// The string formats strict mode accepts (see shared/patterns/strict-schema.ts).
addFormats.default(ajv, ['date-time', 'time', 'date', 'duration', 'email', 'hostname', 'ipv4', 'ipv6', 'uuid']);

// Patterns are few and reused for every job: a small LRU keeps their compiled validators. Evicted
// schemas are also removed from ajv's own cache, which would otherwise hold every one forever.
const cache = new LruCache<string, { validate: ValidateFunction; schema: object }>(128, (entry) => ajv.removeSchema(entry.schema));
// Enough to fix an output; an output that breaks its schema everywhere need not list every break.
const MAX_PROBLEMS = 50;

/** The compiled validator for a schema (an object or its JSON text), from the cache when it was seen before. */
export function compileSchema(schema: unknown): ValidateFunction {
  const text = typeof schema === 'string' ? schema : JSON.stringify(schema);
  const hit = cache.get(text);
  if (hit) return hit.validate;
  let validate: ValidateFunction;
  let parsed: object;
  try {
    parsed = typeof schema === 'string' ? JSON.parse(schema) : structuredClone(schema);
    // ajv compiles each $ref once, but a value that fails tries every anyOf branch of the expansion.
    const tooLarge = expansionProblem(parsed);
    if (tooLarge) throw new Error(tooLarge);
    validate = ajv.compile(parsed);
  } catch (err) {
    throw new SchemaCompileError(`the schema does not compile: ${(err as Error).message}`, { cause: err });
  }
  cache.set(text, { validate, schema: parsed });
  return validate;
}

/** A JSON pointer into `value` (ajv's instancePath) as a JSON path; the value tells indexes from keys like "2". */
function pointerToPath(pointer: string, value: unknown): string {
  let path = '$';
  let at = value;
  for (const token of pointerTokens(pointer)) {
    if (Array.isArray(at) && /^\d+$/.test(token)) {
      path = childPath(path, Number(token));
      at = at[Number(token)];
    } else {
      path = childPath(path, token);
      at = at !== null && typeof at === 'object' ? (at as Record<string, unknown>)[token] : undefined;
    }
  }
  return path;
}

function short(values: unknown): string {
  const text = JSON.stringify(values);
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

/** One ajv error as a problem a person can act on. */
function problem(e: ErrorObject, value: unknown): OutputProblem {
  const path = pointerToPath(e.instancePath, value);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return { path: childPath(path, String(p.missingProperty)), message: 'is required' };
    case 'additionalProperties':
      return { path: childPath(path, String(p.additionalProperty)), message: 'is not a property of this object' };
    case 'enum':
      return { path, message: `must be one of ${short(p.allowedValues)}` };
    case 'const':
      return { path, message: `must be ${short(p.allowedValue)}` };
    default:
      return { path, message: e.message ?? `fails ${e.keyword}` };
  }
}

/**
 * Checks a model's output against the pattern's schema; throws SchemaCompileError when the schema
 * itself is broken, so a bad pattern is not mistaken for a bad answer.
 */
export function validateManifest(schema: unknown, value: unknown): ManifestVerdict {
  const validate = compileSchema(schema);
  manifestBudget = new StepBudget(PATTERN_STEPS_PER_MANIFEST);
  try {
    if (validate(value)) return { ok: true };
  } catch (err) {
    if (!(err instanceof PatternBudgetError)) throw err;
    return { ok: false, errors: [{ path: '$', message: `its strings took more than ${PATTERN_STEPS_PER_MANIFEST} steps to match against the schema's patterns` }] };
  } finally {
    manifestBudget = undefined;
  }
  const seen = new Set<string>();
  const errors: OutputProblem[] = [];
  for (const e of validate.errors ?? []) {
    const p = problem(e, value);
    const key = `${p.path}\u0000${p.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    errors.push(p);
    if (errors.length === MAX_PROBLEMS) break;
  }
  return { ok: false, errors };
}
