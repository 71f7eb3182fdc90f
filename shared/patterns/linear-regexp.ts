// JSON Schema `pattern`s evaluated in time linear in the input. V8's backtracking engine takes
// 60 s for `^(a|a)*$` on 31 characters (measured here, Node 20), and a tenant chooses both the
// pattern and, through the instructions, much of the text it is tested on. Lookarounds and
// backreferences are refused: OpenAI answers "regex lookaround is not supported" (a 400), and
// neither fits an automaton. What is left is a regular language, matched by a Thompson NFA with
// each character class tested by V8 itself on one code point, so class syntax means what it does
// in `new RegExp(pattern, 'u')` (ajv's flags), which also vets the syntax first.

/** Bounds on one pattern, checked when it is compiled. */
export const PATTERN_LIMITS = {
  /** Characters in the pattern. */
  chars: 5_000,
  /** The largest count in `{n}`, `{n,}`, `{n,m}`: RE2's and Go's limit. */
  repeat: 1_000,
  /** NFA states once counted repeats are unrolled (`(a{100}){100}` needs 10,000). */
  states: 10_000,
  /** Groups inside groups. */
  groupDepth: 100,
} as const;

/** Steps (NFA states visited) one test may take by default: about 0.1 s of work. */
export const DEFAULT_REGEXP_STEPS = 10_000_000;

/** A pattern this engine does not take: invalid, lookaround or backreference, or too large. */
export class PatternError extends Error {
  override name = 'PatternError';
}

/** Thrown by `test` when matching would take more steps than its budget holds. */
export class PatternBudgetError extends Error {
  override name = 'PatternBudgetError';
}

/** Steps left for matching; one budget may be shared by every test over one document. */
export class StepBudget {
  constructor(public remaining: number = DEFAULT_REGEXP_STEPS) {}
}

type Node =
  | { t: 'char'; test: (cp: number) => boolean }
  | { t: 'assert'; kind: '^' | '$' | 'b' | 'B' }
  | { t: 'seq'; items: Node[] }
  | { t: 'alt'; options: Node[] }
  | { t: 'repeat'; node: Node; min: number; max: number };

type State =
  | { t: 'char'; test: (cp: number) => boolean; next: number }
  | { t: 'assert'; kind: '^' | '$' | 'b' | 'B'; next: number }
  | { t: 'split'; a: number; b: number }
  | { t: 'match' };

// Without the `s` flag, `.` matches anything but these line terminators.
const LINE_TERMINATORS = new Set([0x0a, 0x0d, 0x2028, 0x2029]);
// The class escapes and `\b` read ASCII word characters when the `i` flag is off.
const isWord = (cp: number) => (cp >= 48 && cp <= 57) || (cp >= 65 && cp <= 90) || (cp >= 97 && cp <= 122) || cp === 95;
const HEX = /^[0-9A-Fa-f]{4}$/;
// Each class's verdicts are cached up to this many code points; past that they are recomputed.
const CLASS_CACHE = 4_096;

/** A test of one code point against a class or escape, decided by V8 on that code point alone. */
function nativeTest(source: string): (cp: number) => boolean {
  const re = new RegExp(`^(?:${source})$`, 'u');
  const cache = new Map<number, boolean>();
  return (cp) => {
    let hit = cache.get(cp);
    if (hit === undefined) {
      hit = re.test(String.fromCodePoint(cp));
      if (cache.size < CLASS_CACHE) cache.set(cp, hit);
    }
    return hit;
  };
}

// Recursive descent over ECMAScript's u-mode Pattern grammar (ECMA-262 §22.2.1), run only on
// sources `new RegExp(source, 'u')` accepted, so every construct below is known to be well formed.
class Parser {
  private i = 0;
  private depth = 0;

  constructor(private readonly src: string) {}

  parse(): Node {
    const node = this.alternation();
    if (this.i !== this.src.length) throw new PatternError(`unexpected ${JSON.stringify(this.src[this.i])} at ${this.i}`);
    return node;
  }

  private alternation(): Node {
    const options = [this.sequence()];
    while (this.src[this.i] === '|') {
      this.i++;
      options.push(this.sequence());
    }
    return options.length === 1 ? options[0]! : { t: 'alt', options };
  }

  private sequence(): Node {
    const items: Node[] = [];
    while (this.i < this.src.length && this.src[this.i] !== '|' && this.src[this.i] !== ')') items.push(this.term());
    return { t: 'seq', items };
  }

  private term(): Node {
    const c = this.src[this.i]!;
    if (c === '^' || c === '$') {
      this.i++;
      return { t: 'assert', kind: c };
    }
    if (c === '\\' && (this.src[this.i + 1] === 'b' || this.src[this.i + 1] === 'B')) {
      this.i += 2;
      return { t: 'assert', kind: this.src[this.i - 1] as 'b' | 'B' };
    }
    return this.quantified(c === '(' ? this.group() : this.atom());
  }

  private group(): Node {
    const rest = this.src.slice(this.i, this.i + 4);
    if (/^\(\?(?:=|!|<=|<!)/.test(rest)) throw new PatternError('lookarounds ((?=, (?!, (?<=, (?<!) are not supported');
    if (++this.depth > PATTERN_LIMITS.groupDepth) throw new PatternError(`groups nest more than ${PATTERN_LIMITS.groupDepth} deep`);
    if (rest.startsWith('(?:')) this.i += 3;
    else if (rest.startsWith('(?<')) this.i = this.src.indexOf('>', this.i) + 1;
    else this.i++;
    const node = this.alternation();
    this.i++; // the closing parenthesis
    this.depth--;
    return node;
  }

  private quantified(node: Node): Node {
    const q = this.src[this.i];
    let min: number;
    let max: number;
    if (q === '*') [min, max] = [0, Infinity];
    else if (q === '+') [min, max] = [1, Infinity];
    else if (q === '?') [min, max] = [0, 1];
    else if (q === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i))!;
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] ? Number(m[3]) : Infinity;
      const largest = Math.max(min, Number.isFinite(max) ? max : 0);
      if (largest > PATTERN_LIMITS.repeat) throw new PatternError(`${m[0]} repeats more than ${PATTERN_LIMITS.repeat} times`);
      this.i += m[0].length - 1;
    } else return node;
    this.i++;
    if (this.src[this.i] === '?') this.i++; // lazy or greedy, the same strings match
    return { t: 'repeat', node, min, max };
  }

  private atom(): Node {
    const start = this.i;
    const c = this.src[this.i]!;
    if (c === '.') {
      this.i++;
      return { t: 'char', test: (cp) => !LINE_TERMINATORS.has(cp) };
    }
    if (c === '[') {
      // Without the `v` flag classes do not nest: the first unescaped `]` closes it.
      for (this.i++; this.src[this.i] !== ']'; this.i++) if (this.src[this.i] === '\\') this.i++;
      this.i++;
      return { t: 'char', test: nativeTest(this.src.slice(start, this.i)) };
    }
    if (c === '\\') return this.escape();
    const cp = this.src.codePointAt(this.i)!;
    this.i += cp > 0xffff ? 2 : 1;
    return { t: 'char', test: (x) => x === cp };
  }

  private escape(): Node {
    const start = this.i;
    const e = this.src[this.i + 1]!;
    if (/[1-9]/.test(e) || e === 'k') throw new PatternError('backreferences (\\1, \\k<name>) are not supported');
    if (e === 'p' || e === 'P' || (e === 'u' && this.src[this.i + 2] === '{')) this.i = this.src.indexOf('}', this.i) + 1;
    else if (e === 'u') {
      this.i += 6;
      // In u-mode an escaped surrogate pair is one code point.
      const lead = parseInt(this.src.slice(start + 2, start + 6), 16);
      const trail = this.src.slice(this.i, this.i + 6);
      if (lead >= 0xd800 && lead <= 0xdbff && trail.startsWith('\\u') && HEX.test(trail.slice(2))) {
        const low = parseInt(trail.slice(2), 16);
        if (low >= 0xdc00 && low <= 0xdfff) this.i += 6;
      }
    } else if (e === 'x') this.i += 4;
    else if (e === 'c') this.i += 3;
    else this.i += 2;
    return { t: 'char', test: nativeTest(this.src.slice(start, this.i)) };
  }
}

/** Builds the NFA backwards: each node is compiled knowing the state it continues to. */
class Builder {
  readonly states: State[] = [{ t: 'match' }];
  // Calls of compile: an empty group repeated, `((){1000}){1000}`, adds no state but still costs.
  private calls = 0;

  private tooLarge(): PatternError {
    return new PatternError(`the pattern needs more than ${PATTERN_LIMITS.states} states once its repeats are counted out`);
  }

  private push(s: State): number {
    if (this.states.length >= PATTERN_LIMITS.states) throw this.tooLarge();
    this.states.push(s);
    return this.states.length - 1;
  }

  compile(node: Node, next: number): number {
    if (++this.calls > 4 * PATTERN_LIMITS.states) throw this.tooLarge();
    switch (node.t) {
      case 'char':
        return this.push({ t: 'char', test: node.test, next });
      case 'assert':
        return this.push({ t: 'assert', kind: node.kind, next });
      case 'seq':
        for (let k = node.items.length - 1; k >= 0; k--) next = this.compile(node.items[k]!, next);
        return next;
      case 'alt': {
        const starts = node.options.map((o) => this.compile(o, next));
        let start = starts[starts.length - 1]!;
        for (let k = starts.length - 2; k >= 0; k--) start = this.push({ t: 'split', a: starts[k]!, b: start });
        return start;
      }
      case 'repeat': {
        let tail = next;
        if (node.max === Infinity) {
          const loop = this.push({ t: 'split', a: -1, b: next });
          (this.states[loop] as { a: number }).a = this.compile(node.node, loop);
          tail = loop;
        } else {
          for (let k = node.min; k < node.max; k++) {
            const optional = this.push({ t: 'split', a: -1, b: next });
            (this.states[optional] as { a: number }).a = this.compile(node.node, tail);
            tail = optional;
          }
        }
        for (let k = 0; k < node.min; k++) tail = this.compile(node.node, tail);
        return tail;
      }
    }
  }
}

/** A compiled pattern with RegExp's `test`, in time linear in the input. */
export class LinearRegExp {
  private readonly mark: Int32Array;
  private generation = 0;

  constructor(readonly source: string, private readonly states: State[], private readonly start: number) {
    this.mark = new Int32Array(states.length).fill(-1);
  }

  /** The pattern as a RegExp literal; ajv keys its compiled patterns by this. */
  toString(): string {
    return `/${this.source}/u`;
  }

  /**
   * True when the pattern matches somewhere in `input`, as `RegExp.prototype.test` would say.
   * Throws PatternBudgetError when `budget` runs out first.
   */
  test(input: string, budget: StepBudget = new StepBudget()): boolean {
    const cps = Array.from(input, (ch) => ch.codePointAt(0)!);
    let current: number[] = [];
    for (let pos = 0; pos <= cps.length; pos++) {
      // An unanchored search: a match may also start here.
      this.generation++;
      const listed = current;
      current = [];
      for (const s of listed) if (this.add(s, pos, cps, current, budget)) return true;
      if (this.add(this.start, pos, cps, current, budget)) return true;
      if (pos === cps.length) break;
      const cp = cps[pos]!;
      const next: number[] = [];
      for (const s of current) {
        const state = this.states[s] as Extract<State, { t: 'char' }>;
        if (state.test(cp)) next.push(state.next);
      }
      current = next;
    }
    return false;
  }

  // Adds `s` and every state reachable from it without reading a character to `list` (char
  // states only); true when the match state is among them.
  private add(s: number, pos: number, cps: number[], list: number[], budget: StepBudget): boolean {
    const stack = [s];
    while (stack.length > 0) {
      const i = stack.pop()!;
      if (this.mark[i] === this.generation) continue;
      this.mark[i] = this.generation;
      if (--budget.remaining < 0) throw new PatternBudgetError(`matching /${this.source}/ took more than its step budget`);
      const state = this.states[i]!;
      switch (state.t) {
        case 'match':
          return true;
        case 'char':
          list.push(i);
          break;
        case 'split':
          stack.push(state.b, state.a);
          break;
        case 'assert':
          if (this.holds(state.kind, pos, cps)) stack.push(state.next);
          break;
      }
    }
    return false;
  }

  private holds(kind: '^' | '$' | 'b' | 'B', pos: number, cps: number[]): boolean {
    if (kind === '^') return pos === 0;
    if (kind === '$') return pos === cps.length;
    const before = pos > 0 && isWord(cps[pos - 1]!);
    const after = pos < cps.length && isWord(cps[pos]!);
    return (before !== after) === (kind === 'b');
  }
}

/** Compiles a JSON Schema `pattern`; throws PatternError when it is invalid, unsupported or too large. */
export function compileLinearRegExp(source: string): LinearRegExp {
  if (source.length > PATTERN_LIMITS.chars) throw new PatternError(`patterns may be at most ${PATTERN_LIMITS.chars} characters long`);
  try {
    new RegExp(source, 'u');
  } catch (err) {
    throw new PatternError(`not a valid regular expression: ${(err as Error).message}`);
  }
  const builder = new Builder();
  const start = builder.compile(new Parser(source).parse(), 0);
  return new LinearRegExp(source, builder.states, start);
}
