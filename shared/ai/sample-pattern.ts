/** The randomness a sampler draws on: a whole number from `lo` to `hi`, both included. */
export interface Draw {
  int(lo: number, hi: number): number;
}

const DIGITS = '0123456789';
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const WORD = `${UPPER}${LOWER}${DIGITS}_`;
// What a negated class or `.` may emit: printable ASCII, drawn from until one fits.
const PRINTABLE = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('');
const CLASS_ESCAPES: Record<string, string> = { d: DIGITS, w: WORD, s: ' ', D: `${UPPER}${LOWER}`, W: '-', S: WORD };
const CONTROL_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', f: '\f', v: '\v', '0': '\0' };
// Open-ended quantifiers repeat a little beyond their minimum: enough to look real, short to read.
const EXTRA_REPEATS = 2;

/**
 * Bounds on one sample. A pattern check at creation keeps repeats to 1,000 (linear-regexp.ts),
 * but a stored pattern may be anything: `^(x{100000}){100000}$` once filled the heap in 6 s.
 */
export const SAMPLE_LIMITS = {
  /** Characters in one sample; the longest match of a pattern the check accepts is shorter. */
  chars: 10_000,
  /**
   * Atoms parsed and emitted, and class members listed, so `(){1000000}`, which emits nothing,
   * is bounded too. 250,000 steps take 20–200 ms here; a pattern from the tests needs under 100.
   */
  steps: 250_000,
  /** Groups inside groups. */
  groupDepth: 100,
} as const;

/** Thrown when a pattern asks for more than SAMPLE_LIMITS allow. */
export class PatternSampleError extends Error {
  override name = 'PatternSampleError';
}

/** The work left for one sample, shared by the samplers of its nested groups. */
interface Work {
  steps: number;
}

// A small recursive-descent walk over the regular expressions JSON Schema `pattern` uses in
// practice (literals, classes, escapes, groups, alternation, quantifiers), emitting one random
// match as it goes. Lookarounds and backreferences emit nothing; the caller checks the result.
class Sampler {
  private i = 0;
  // Groups this sampler is inside of while it skips over their source.
  private open = 0;

  constructor(
    private readonly src: string,
    private readonly draw: Draw,
    private readonly work: Work,
    private readonly depth: number,
  ) {}

  private step(): void {
    if (--this.work.steps < 0) throw new PatternSampleError(`sampling the pattern takes more than ${SAMPLE_LIMITS.steps} steps`);
  }

  // Appends to a sample, refusing to grow it past SAMPLE_LIMITS.chars.
  private append(out: string, more: string): string {
    if (out.length + more.length > SAMPLE_LIMITS.chars) {
      throw new PatternSampleError(`the pattern asks for strings longer than ${SAMPLE_LIMITS.chars} characters`);
    }
    return out + more;
  }

  run(): string {
    return this.alternation();
  }

  private alternation(): string {
    const branches: string[] = [this.sequence()];
    while (this.src[this.i] === '|') {
      this.i++;
      branches.push(this.sequence());
    }
    return branches[this.draw.int(0, branches.length - 1)]!;
  }

  private sequence(): string {
    let out = '';
    while (this.i < this.src.length && this.src[this.i] !== '|' && this.src[this.i] !== ')') {
      const start = this.i;
      this.step();
      const atom = this.atom();
      const [min, max] = this.quantifier();
      for (let n = min === 1 && max === 1 ? 1 : this.draw.int(min, max); n > 0; n--) {
        this.step();
        out = this.append(out, atom());
      }
      if (this.i === start) this.i++;
    }
    return out;
  }

  // Returns a generator for the atom (so `[a-z]{3}` draws three different letters).
  private atom(): () => string {
    const c = this.src[this.i++]!;
    if (c === '^' || c === '$') return () => '';
    if (c === '.') return () => this.pick(WORD);
    if (c === '[') return this.charClass();
    if (c === '\\') {
      const e = this.src[this.i++] ?? '';
      if (e in CLASS_ESCAPES) return () => this.pick(CLASS_ESCAPES[e]!);
      if (e === 'b' || e === 'B' || /[1-9]/.test(e)) return () => '';
      return () => this.escaped(e);
    }
    if (c === '(') {
      if (this.depth + this.open >= SAMPLE_LIMITS.groupDepth) throw new PatternSampleError(`the pattern's groups nest more than ${SAMPLE_LIMITS.groupDepth} deep`);
      const silent = this.groupPrefix();
      const start = this.i;
      this.open++;
      this.alternation();
      this.open--;
      const end = this.i;
      this.i++;
      const depth = this.depth + this.open + 1;
      return () => (silent ? '' : new Sampler(this.src.slice(start, end), this.draw, this.work, depth).run());
    }
    return () => c;
  }

  // Skips `?:`, `?<name>`, and lookarounds (`?=`, `?!`, `?<=`, `?<!`); true for a lookaround.
  private groupPrefix(): boolean {
    const m = /^\?(?::|<[A-Za-z_$][\w$]*>|(=|!|<=|<!))/.exec(this.src.slice(this.i));
    if (!m) return false;
    this.i += m[0].length;
    return m[1] !== undefined;
  }

  private escaped(e: string): string {
    if (e === 'u' || e === 'x') {
      const hex = this.src.slice(this.i, this.i + (e === 'u' ? 4 : 2));
      this.i += hex.length;
      return String.fromCharCode(parseInt(hex, 16));
    }
    return CONTROL_ESCAPES[e] ?? e;
  }

  // One member of a character class: a character, an escaped one, or a class escape's expansion.
  private classAtom(): string {
    const c = this.src[this.i++]!;
    if (c !== '\\') return c;
    const e = this.src[this.i++] ?? '';
    return CLASS_ESCAPES[e] ?? this.escaped(e);
  }

  private charClass(): () => string {
    const negated = this.src[this.i] === '^';
    if (negated) this.i++;
    let members = '';
    // A `]` right after `[` or `[^` is a literal member.
    for (let first = true; this.i < this.src.length && (this.src[this.i] !== ']' || first); first = false) {
      const from = this.classAtom();
      if (from.length === 1 && this.src[this.i] === '-' && this.i + 1 < this.src.length && this.src[this.i + 1] !== ']') {
        this.i++;
        const to = this.classAtom();
        const [lo, hi] = [from.charCodeAt(0), to.charCodeAt(0)];
        for (let code = lo; code <= hi && code - lo < 512; code++) members += String.fromCharCode(code);
      } else members += from;
    }
    this.i++;
    // A member costs a step: a group re-parses its classes each time it is emitted.
    this.work.steps -= members.length;
    this.step();
    const excluded = new Set(members);
    const pool = negated ? [...PRINTABLE].filter((ch) => !excluded.has(ch)).join('') : members;
    return () => this.pick(pool || 'x');
  }

  private quantifier(): [number, number] {
    const q = this.src[this.i];
    let range: [number, number] = [1, 1];
    if (q === '*') range = [0, EXTRA_REPEATS];
    else if (q === '+') range = [1, 1 + EXTRA_REPEATS];
    else if (q === '?') range = [0, 1];
    else if (q === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i));
      if (!m) return range;
      const min = Number(m[1]);
      range = [min, m[2] === undefined ? min : m[3] ? Number(m[3]) : min + EXTRA_REPEATS];
      this.i += m[0].length - 1;
    } else return range;
    this.i++;
    if (this.src[this.i] === '?') this.i++;
    return range;
  }

  private pick(pool: string): string {
    return pool[this.draw.int(0, pool.length - 1)]!;
  }
}

/**
 * A random string meant to match the regular expression `pattern` (the caller checks that it
 * does). Throws PatternSampleError when the pattern asks for more than SAMPLE_LIMITS allow.
 */
export function samplePattern(pattern: string, draw: Draw): string {
  return new Sampler(pattern, draw, { steps: SAMPLE_LIMITS.steps }, 0).run();
}
