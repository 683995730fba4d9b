/**
 * PromQL series selectors (`metric{label="value", other=~"re.*"}`) as promtool and the Prometheus
 * API (`match[]`) accept them, and matching of label sets against them.
 *
 * Syntax (Prometheus 3.x `promql/parser`, start symbol `START_METRIC_SELECTOR`): an optional metric
 * name (letters, digits, `_` and `:`, not starting with a digit), then optionally `{`, matchers
 * separated by commas (a trailing comma is allowed), `}`. A matcher is `name op "value"` with `op`
 * one of `=`, `!=`, `=~`, `!~`; the label name may be quoted to hold any UTF-8 (`{"a.b"="c"}`),
 * and a lone quoted string names the metric (`{"my.metric"}`). Strings take double or single
 * quotes with Go escapes, or backticks without escapes. Whitespace and `#` comments may appear
 * between tokens. A selector whose matchers all match the empty string (`{a=""}`, `{a=~".*"}`) is
 * refused, as Prometheus refuses it: it would select every series.
 *
 * Regexes are RE2, fully anchored, and `.` matches a newline as in Prometheus ≥ 3.0
 * (`model/labels/regexp.go` compiles `^(?s:re)$`; 2.x compiled `^(?:re)$`, where `.` does not
 * match `\n`). They are parsed here the way Go's `regexp/syntax` parses them (in the version
 * Prometheus 3.5 vendors, `github.com/grafana/regexp`) and rewritten into a JavaScript regex with
 * the `u` flag: RE2-only syntax is translated (`(?i)` flag runs become `(?i:…)` groups, `(?m)`
 * anchors become lookarounds on `\n`, `\s` becomes `[\t\n\f\r ]`, `\pL` becomes `\p{gc=L}`,
 * `\Q…\E`, POSIX classes), and what RE2 rejects (lookarounds, backreferences, `a**`, repeat counts
 * over 1000, unknown escapes, …) is rejected with Go's message.
 *
 * @example
 * ```ts
 * const sel = parseSelector('http_requests_total{code=~"5..", job!="test"}');
 * matchesSelector([{ name: "__name__", value: "http_requests_total" }, { name: "code", value: "503" }], sel); // true
 * formatSelector(sel); // 'http_requests_total{code=~"5..",job!="test"}'
 * ```
 *
 * @module
 */

import { usageError } from "./errors.ts";
import { compareUtf8 } from "./tsdb/encoding.ts";
import { goQuote } from "./tsdb/dump.ts";
import type { Label } from "./tsdb/index.ts";

/** The label that holds the metric name. */
export const METRIC_NAME_LABEL = "__name__";

/** How a matcher compares a label value: equal, not equal, regex match, regex non-match. */
export type MatchType = "=" | "!=" | "=~" | "!~";

/** One label matcher of a selector. */
export interface LabelMatcher {
  /** Label name (`__name__` for the metric name). */
  readonly name: string;
  /** The comparison. */
  readonly type: MatchType;
  /** The value, or the RE2 regex for `=~` and `!~`, unquoted. */
  readonly value: string;
  /** For `=~` and `!~`: the anchored JavaScript translation of `value`. */
  readonly regex?: RegExp;
}

/** A parsed series selector: a series matches when every matcher matches. */
export interface Selector {
  /** The matchers, in the order Prometheus keeps them (a name outside the braces comes last). */
  readonly matchers: readonly LabelMatcher[];
}

/**
 * Parses a series selector. Throws a usage error naming the problem and its position (1-based, in
 * characters) when the text is not one, when a regex is invalid, or when every matcher matches the
 * empty string.
 */
export function parseSelector(text: string): Selector {
  return new _SelectorParser(text).parse();
}

/** Whether `value` (a label's value, "" when the label is missing) satisfies `matcher`. */
export function matchesLabelValue(matcher: LabelMatcher, value: string): boolean {
  switch (matcher.type) {
    case "=":
      return value === matcher.value;
    case "!=":
      return value !== matcher.value;
    case "=~":
      return matcher.regex!.test(value);
    case "!~":
      return !matcher.regex!.test(value);
  }
}

/** Whether a series with these labels is selected (a missing label has the value ""). */
export function matchesSelector(labels: readonly Label[], sel: Selector): boolean {
  for (const matcher of sel.matchers) {
    let value = "";
    for (const label of labels) {
      if (label.name === matcher.name) {
        value = label.value;
        break;
      }
    }
    if (!matchesLabelValue(matcher, value)) return false;
  }
  return true;
}

/**
 * Prints a selector canonically, the way Prometheus prints a vector selector: the metric name in
 * front when it is a plain name (else as a quoted `{"my.metric"}` first inside the braces), the
 * other matchers sorted, values quoted as Go's `strconv.Quote` does. Parsing the result gives the
 * same matchers.
 */
export function formatSelector(sel: Selector): string {
  const nameAt = sel.matchers.findIndex((m) =>
    m.name === METRIC_NAME_LABEL && m.type === "=" && m.value !== ""
  );
  const name = nameAt < 0 ? undefined : sel.matchers[nameAt].value;
  const bare = name !== undefined && _isBareMetricName(name);
  const parts = sel.matchers
    .filter((_, i) => i !== nameAt)
    .map((m) => `${_formatLabelName(m.name)}${m.type}${goQuote(m.value)}`)
    .sort(compareUtf8);
  if (name !== undefined && !bare) parts.unshift(goQuote(name));
  const head = bare ? name : "";
  return parts.length === 0 ? head : `${head}{${parts.join(",")}}`;
}

/**
 * Compiles a Prometheus regex (RE2 syntax, matched against the whole value, `.` matching `\n`)
 * into an equivalent anchored JavaScript `RegExp`. Throws a `SyntaxError` with Go's message
 * (`error parsing regexp: missing closing ): ...`) for what RE2 rejects.
 */
export function compileRegex(source: string): RegExp {
  const js = translateRegex(source);
  try {
    return new RegExp(`^(?:${js})$`, "u");
  } catch (err) {
    // The translation only emits syntax that V8 accepts; reaching this is a bug, said plainly.
    const why = err instanceof Error ? err.message : String(err);
    throw new SyntaxError(`regexp cannot be run as a JavaScript regex (${why})`);
  }
}

/** The JavaScript (flag `u`) equivalent of an RE2 regex, not anchored; see {@link compileRegex}. */
export function translateRegex(source: string): string {
  return _emit(new _Re2Parser(source).parse());
}

// ---------------------------------------------------------------------------------------------
// Selector syntax
// ---------------------------------------------------------------------------------------------

// PromQL keywords that the grammar does not take as a metric name (the others, such as `sum` or
// `by`, are allowed as `metric_identifier`).
const _NOT_METRIC_NAMES = new Set(["on", "ignoring", "group_left", "group_right", "bool", "atan2"]);
const _MATCH_TYPES: readonly MatchType[] = ["=~", "!~", "!=", "="];

function _isAlpha(c: string): boolean {
  return c === "_" || (c >= "a" && c <= "z") || (c >= "A" && c <= "Z");
}

function _isAlnum(c: string): boolean {
  return _isAlpha(c) || (c >= "0" && c <= "9");
}

function _isBareMetricName(name: string): boolean {
  return /^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name) && !_NOT_METRIC_NAMES.has(name.toLowerCase());
}

function _formatLabelName(name: string): string {
  return /^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name) ? name : goQuote(name);
}

/** How a selector is shown inside an error message. */
function _show(text: string): string {
  return /^[^'\p{Cc}]*$/u.test(text) ? `'${text}'` : JSON.stringify(text);
}

/** 1-based character (code point) position of the UTF-16 index `at`. */
function _column(text: string, at: number): number {
  return [...text.slice(0, at)].length + 1;
}

function _describe(text: string, at: number): string {
  if (at >= text.length) return "end of input";
  const ch = String.fromCodePoint(text.codePointAt(at)!);
  return /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u.test(ch) ? `'${ch}'` : JSON.stringify(ch);
}

const _utf8 = new TextDecoder("utf-8", { fatal: true });
const _encoder = new TextEncoder();

class _SelectorParser {
  #text: string;
  #pos = 0;

  constructor(text: string) {
    this.#text = text;
  }

  #fail(problem: string, at: number = this.#pos): never {
    throw usageError(
      `invalid series selector ${_show(this.#text)}: ${problem} at position ${
        _column(this.#text, at)
      }`,
    );
  }

  #peek(): string {
    return this.#text[this.#pos] ?? "";
  }

  parse(): Selector {
    const text = this.#text;
    const matchers: LabelMatcher[] = [];
    this.#skipSpace();
    if (this.#pos >= text.length) {
      this.#fail('empty selector: give a metric name and/or {label="value"} matchers');
    }
    let name: string | undefined;
    const c = this.#peek();
    if (_isAlpha(c) || c === ":") {
      const at = this.#pos;
      while (_isAlnum(this.#peek()) || this.#peek() === ":") this.#pos++;
      name = text.slice(at, this.#pos);
      if (_NOT_METRIC_NAMES.has(name.toLowerCase())) {
        this.#fail(
          `"${name}" is a PromQL keyword, not a metric name (write {__name__="${name}"})`,
          at,
        );
      }
      this.#skipSpace();
    }
    if (this.#peek() === "{") {
      this.#braces(matchers);
      this.#skipSpace();
    } else if (name === undefined) {
      this.#fail(`unexpected ${_describe(text, this.#pos)}: expected a metric name or "{"`);
    }
    if (this.#pos < text.length) {
      this.#fail(
        `unexpected ${_describe(text, this.#pos)} after the selector ` +
          "(only a series selector is allowed: no functions, operators, ranges or offsets)",
      );
    }
    if (name !== undefined) matchers.push({ name: METRIC_NAME_LABEL, type: "=", value: name });
    if (matchers.every((m) => matchesLabelValue(m, ""))) {
      throw usageError(
        `invalid series selector ${_show(text)}: vector selector must contain at least one ` +
          "non-empty matcher (these matchers all match the empty string, so they would select " +
          "every series)",
      );
    }
    return { matchers };
  }

  /** Skips whitespace and `#` comments, as the PromQL lexer does. */
  #skipSpace(): void {
    const text = this.#text;
    while (this.#pos < text.length) {
      const c = text[this.#pos];
      if (c === " " || c === "\t" || c === "\n" || c === "\r") {
        this.#pos++;
      } else if (c === "#") {
        while (this.#pos < text.length && text[this.#pos] !== "\n" && text[this.#pos] !== "\r") {
          this.#pos++;
        }
      } else {
        return;
      }
    }
  }

  #braces(matchers: LabelMatcher[]): void {
    this.#pos++; // {
    this.#skipSpace();
    if (this.#peek() === "}") {
      this.#pos++;
      return;
    }
    for (;;) {
      this.#skipSpace();
      const c = this.#peek();
      if (_isAlpha(c)) {
        const at = this.#pos;
        while (_isAlnum(this.#peek())) this.#pos++;
        const name = this.#text.slice(at, this.#pos);
        this.#skipSpace();
        const type = this.#matchType();
        if (type === undefined) {
          this.#fail(
            `unexpected ${_describe(this.#text, this.#pos)} after label name "${name}": ` +
              "expected one of =, !=, =~, !~",
          );
        }
        matchers.push(this.#matcher(name, type, `after ${name}${type}`));
      } else if (c === '"' || c === "'" || c === "`") {
        const quoted = this.#string();
        this.#skipSpace();
        const type = this.#matchType();
        if (type === undefined) {
          // A lone string names the metric (Prometheus 3 UTF-8 names).
          matchers.push({ name: METRIC_NAME_LABEL, type: "=", value: quoted.value });
        } else {
          matchers.push(this.#matcher(quoted.value, type, `after the label name and ${type}`));
        }
      } else if (c === "") {
        this.#fail("unexpected end of input inside braces");
      } else {
        this.#fail(
          `unexpected ${_describe(this.#text, this.#pos)} inside braces: ` +
            'expected a label name, a quoted name or "}"',
        );
      }
      this.#skipSpace();
      const d = this.#peek();
      if (d === ",") {
        this.#pos++;
        this.#skipSpace();
        if (this.#peek() === "}") {
          this.#pos++;
          return;
        }
      } else if (d === "}") {
        this.#pos++;
        return;
      } else if (d === "") {
        this.#fail("unexpected end of input inside braces");
      } else {
        this.#fail(`unexpected ${_describe(this.#text, this.#pos)}: expected "," or "}"`);
      }
    }
  }

  #matchType(): MatchType | undefined {
    const text = this.#text;
    if (text[this.#pos] === "!" && text[this.#pos + 1] !== "=" && text[this.#pos + 1] !== "~") {
      this.#fail(`unexpected ${_describe(text, this.#pos + 1)} after '!' inside braces`);
    }
    const type = _MATCH_TYPES.find((t) => text.startsWith(t, this.#pos));
    if (type !== undefined) this.#pos += type.length;
    return type;
  }

  #matcher(name: string, type: MatchType, where: string): LabelMatcher {
    this.#skipSpace();
    const c = this.#peek();
    if (c !== '"' && c !== "'" && c !== "`") {
      this.#fail(
        `unexpected ${_describe(this.#text, this.#pos)} ${where}: expected a quoted string`,
      );
    }
    const { value, at } = this.#string();
    if (type === "=" || type === "!=") return { name, type, value };
    try {
      return { name, type, value, regex: compileRegex(value) };
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      return this.#fail(`bad regex ${goQuote(value)} for label "${name}": ${err.message}`, at);
    }
  }

  /** Reads a quoted string at the current position: its unescaped value and where it started. */
  #string(): { value: string; at: number } {
    const text = this.#text;
    const at = this.#pos;
    const quote = text[at];
    if (quote === "`") {
      const end = text.indexOf("`", at + 1);
      if (end < 0) this.#fail("unterminated raw string", at);
      this.#pos = end + 1;
      return { value: text.slice(at + 1, end), at };
    }
    // Escapes may produce single bytes (\xNN, octal), so collect UTF-8 bytes and decode at the end.
    const bytes: number[] = [];
    let i = at + 1;
    for (;;) {
      if (i >= text.length || text[i] === "\n") this.#fail("unterminated quoted string", at);
      const ch = text[i];
      if (ch === quote) break;
      if (ch !== "\\") {
        const cp = text.codePointAt(i)!;
        const piece = String.fromCodePoint(cp);
        bytes.push(..._encoder.encode(piece));
        i += piece.length;
        continue;
      }
      i = this.#escape(i, quote, bytes);
    }
    this.#pos = i + 1;
    try {
      return { value: _utf8.decode(new Uint8Array(bytes)), at };
    } catch {
      return this.#fail("string is not valid UTF-8 after its \\x or octal escapes", at);
    }
  }

  /** Decodes the escape at `text[i]` (a backslash) into `bytes`; returns the index after it. */
  #escape(i: number, quote: string, bytes: number[]): number {
    const text = this.#text;
    const e = text[i + 1];
    const simple: Record<string, number> = {
      a: 7,
      b: 8,
      f: 12,
      n: 10,
      r: 13,
      t: 9,
      v: 11,
      "\\": 92,
    };
    if (e === undefined) this.#fail("escape sequence not terminated", i);
    if (e in simple) {
      bytes.push(simple[e]);
      return i + 2;
    }
    if (e === quote) {
      bytes.push(quote.charCodeAt(0));
      return i + 2;
    }
    let digits: number, base: number, max: number, start: number;
    if (e >= "0" && e <= "7") [digits, base, max, start] = [3, 8, 255, i + 1];
    else if (e === "x") [digits, base, max, start] = [2, 16, 255, i + 2];
    else if (e === "u") [digits, base, max, start] = [4, 16, 0x10ffff, i + 2];
    else if (e === "U") [digits, base, max, start] = [8, 16, 0x10ffff, i + 2];
    else return this.#fail(`unknown escape sequence \\${e}`, i);
    let value = 0;
    for (let k = 0; k < digits; k++) {
      const d = text[start + k];
      const v = d === undefined ? NaN : parseInt(d, 16);
      if (!(v < base)) {
        if (d === undefined || d === quote) this.#fail("escape sequence not terminated", i);
        this.#fail(`illegal character ${_describe(text, start + k)} in escape sequence`, i);
      }
      value = value * base + v;
    }
    if (value > max || (value >= 0xd800 && value < 0xe000)) {
      this.#fail("escape sequence is an invalid Unicode code point", i);
    }
    if (e === "u" || e === "U") bytes.push(..._encoder.encode(String.fromCodePoint(value)));
    else bytes.push(value); // \x and octal are single bytes, as in Go
    return start + digits;
  }
}

// ---------------------------------------------------------------------------------------------
// RE2 → JavaScript
// ---------------------------------------------------------------------------------------------

/** The parse flags of Go's regexp/syntax that matter here. */
interface _Flags {
  /** `(?i)`: case-insensitive. */
  fold: boolean;
  /** `(?m)`: `^` and `$` match at line breaks. */
  multiLine: boolean;
  /** `(?s)`: `.` matches `\n` (on by default in Prometheus ≥ 3.0). */
  dotNL: boolean;
  /** `(?U)`: repetitions are lazy by default. */
  nonGreedy: boolean;
}

/** One part of a character class: code point ranges, or a Unicode property (JS name). */
interface _ClassItem {
  /** Pairs `lo, hi` (inclusive). */
  ranges?: number[];
  /** Body of a JS `\p{…}`, e.g. `gc=Lu` or `sc=Greek`. */
  prop?: string;
  /** Whether the item stands for the complement. */
  neg: boolean;
}

type _Node =
  | { t: "lit"; cp: number; fold: boolean }
  | { t: "class"; items: _ClassItem[]; neg: boolean; fold: boolean }
  | { t: "any"; nl: boolean }
  | { t: "assert"; js: string }
  | { t: "rep"; min: number; max: number; lazy: boolean; counted: boolean; sub: _Node }
  | { t: "group"; sub: _Node }
  | { t: "concat"; subs: _Node[] }
  | { t: "alt"; subs: _Node[] };

const _MAX_REPEAT = 1000;
const _MAX_RUNE = 0x10ffff;

const _PERL_GROUPS: Record<string, number[]> = {
  d: [0x30, 0x39],
  s: [0x09, 0x0a, 0x0c, 0x0d, 0x20, 0x20],
  w: [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a],
};

const _POSIX_GROUPS: Record<string, number[]> = {
  alnum: [0x30, 0x39, 0x41, 0x5a, 0x61, 0x7a],
  alpha: [0x41, 0x5a, 0x61, 0x7a],
  ascii: [0x00, 0x7f],
  blank: [0x09, 0x09, 0x20, 0x20],
  cntrl: [0x00, 0x1f, 0x7f, 0x7f],
  digit: [0x30, 0x39],
  graph: [0x21, 0x7e],
  lower: [0x61, 0x7a],
  print: [0x20, 0x7e],
  punct: [0x21, 0x2f, 0x3a, 0x40, 0x5b, 0x60, 0x7b, 0x7e],
  space: [0x09, 0x0d, 0x20, 0x20],
  upper: [0x41, 0x5a],
  word: [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a],
  xdigit: [0x30, 0x39, 0x41, 0x46, 0x61, 0x66],
};

// Go's unicode.Categories keys (exact names, as Prometheus 3.5 looks them up); anything else after
// \p must be "Any" or a script name.
const _CATEGORIES = new Set(
  ("C Cc Cf Cn Co Cs L LC Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm " +
    "So Z Zl Zp Zs").split(" "),
);
// Script long names of four letters; other four-letter names are ISO 15924 codes (Grek, Hira),
// which JS accepts as aliases and Go does not.
const _FOUR_LETTER_SCRIPTS = new Set([
  "Ahom",
  "Cham",
  "Kawi",
  "Lisu",
  "Modi",
  "Newa",
  "Thai",
  "Toto",
]);

function _unicodeProperty(name: string): string | undefined {
  if (name === "Any") return "Any";
  if (_CATEGORIES.has(name)) return `gc=${name}`;
  // Script names as Go spells them (Greek, Old_Italic); JS knows the same long names.
  if (!/^[A-Z][A-Za-z]*(?:_[A-Z][A-Za-z]*)*$/.test(name) || name === "Unknown") return undefined;
  if (name.length === 4 && !_FOUR_LETTER_SCRIPTS.has(name)) return undefined;
  try {
    new RegExp(`\\p{sc=${name}}`, "u");
    return `sc=${name}`;
  } catch {
    return undefined;
  }
}

function _reError(code: string, expr?: string): SyntaxError {
  return new SyntaxError(
    `error parsing regexp: ${code}${expr === undefined ? "" : `: \`${expr}\``}`,
  );
}

function _isHex(c: string | undefined): boolean {
  return c !== undefined && /^[0-9a-fA-F]$/.test(c);
}

function _isOctal(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "7";
}

/** A recursive-descent version of Go's `regexp/syntax` parser with `Perl` flags. */
class _Re2Parser {
  #src: string;
  #pos = 0;
  // Prometheus ≥ 3.0 parses with syntax.Perl|syntax.DotNL.
  #flags: _Flags = { fold: false, multiLine: false, dotNL: true, nonGreedy: false };

  constructor(src: string) {
    this.#src = src;
  }

  parse(): _Node {
    const node = this.#alternation();
    if (this.#pos < this.#src.length) throw _reError("unexpected )", this.#src);
    return node;
  }

  #alternation(): _Node {
    const subs = [this.#concat()];
    while (this.#src[this.#pos] === "|") {
      this.#pos++;
      subs.push(this.#concat());
    }
    return subs.length === 1 ? subs[0] : { t: "alt", subs };
  }

  #concat(): _Node {
    const src = this.#src;
    const items: _Node[] = [];
    let lastRepeat = -1; // start of the repetition operator just before, for `a**`
    while (this.#pos < src.length) {
      const c = src[this.#pos];
      if (c === "|" || c === ")") break;
      const start = this.#pos;
      let repeat = -1;
      switch (c) {
        case "(":
          if (src[this.#pos + 1] === "?") {
            const group = this.#perlGroup();
            if (group) items.push(group);
          } else {
            this.#pos++;
            items.push({ t: "group", sub: this.#groupBody({ ...this.#flags }) });
          }
          break;
        case "*":
        case "+":
        case "?": {
          this.#pos++;
          const [min, max] = c === "*" ? [0, -1] : c === "+" ? [1, -1] : [0, 1];
          this.#repeat(items, min, max, false, start, lastRepeat);
          repeat = start;
          break;
        }
        case "{": {
          const counts = this.#repeatCounts();
          if (!counts) {
            // Not a well-formed {n,m}: a literal brace, as in Go.
            this.#pos++;
            items.push(this.#literal(0x7b));
            break;
          }
          const { min, max, end } = counts;
          if (min < 0 || min > _MAX_REPEAT || max > _MAX_REPEAT || (max >= 0 && min > max)) {
            throw _reError("invalid repeat count", src.slice(start, end));
          }
          this.#pos = end;
          this.#repeat(items, min, max, true, start, lastRepeat);
          repeat = start;
          break;
        }
        case "^":
          this.#pos++;
          items.push({ t: "assert", js: this.#flags.multiLine ? "(?<![^\\n])" : "^" });
          break;
        case "$":
          this.#pos++;
          items.push({ t: "assert", js: this.#flags.multiLine ? "(?![^\\n])" : "$" });
          break;
        case ".":
          this.#pos++;
          items.push({ t: "any", nl: this.#flags.dotNL });
          break;
        case "[":
          items.push(this.#class());
          break;
        case "\\":
          this.#escapeAtom(items);
          break;
        default: {
          const cp = src.codePointAt(this.#pos)!;
          this.#pos += cp > 0xffff ? 2 : 1;
          items.push(this.#literal(cp));
        }
      }
      lastRepeat = repeat;
    }
    return items.length === 1 ? items[0] : { t: "concat", subs: items };
  }

  #literal(cp: number): _Node {
    return { t: "lit", cp, fold: this.#flags.fold };
  }

  /** Applies a repetition operator (already consumed) to the last item. */
  #repeat(
    items: _Node[],
    min: number,
    max: number,
    counted: boolean,
    start: number,
    lastRepeat: number,
  ): void {
    let lazy = this.#flags.nonGreedy;
    if (this.#src[this.#pos] === "?") {
      this.#pos++;
      lazy = !lazy;
    }
    if (lastRepeat >= 0) {
      throw _reError("invalid nested repetition operator", this.#src.slice(lastRepeat, this.#pos));
    }
    const sub = items.pop();
    if (sub === undefined) {
      throw _reError("missing argument to repetition operator", this.#src.slice(start, this.#pos));
    }
    const node: _Node = { t: "rep", min, max, lazy, counted, sub };
    items.push(node);
    if (counted && (min >= 2 || max >= 2) && !_repeatIsValid(node, _MAX_REPEAT)) {
      throw _reError("invalid repeat count", this.#src.slice(start, this.#pos));
    }
  }

  /** Parses `{n}`, `{n,}` or `{n,m}` at the current position (−1 for a number too large). */
  #repeatCounts(): { min: number; max: number; end: number } | undefined {
    const m = /^\{(0|[1-9][0-9]*)(?:(,)(0|[1-9][0-9]*)?)?\}/.exec(this.#src.slice(this.#pos));
    if (!m) return undefined;
    // Like Go's parseInt: more than 9 digits is "too large" (−1), which the caller rejects.
    const num = (s: string) => (s.length > 9 ? -1 : Number(s));
    let min = num(m[1]);
    const max = m[2] === undefined ? min : m[3] === undefined ? -1 : num(m[3]);
    if (m[3] !== undefined && max < 0) min = -1;
    return { min, max, end: this.#pos + m[0].length };
  }

  /** Parses the inside of a group up to its `)`; restores the flags of before the group. */
  #groupBody(saved: _Flags): _Node {
    const sub = this.#alternation();
    if (this.#src[this.#pos] !== ")") throw _reError("missing closing )", this.#src);
    this.#pos++;
    this.#flags = saved;
    return { t: "group", sub };
  }

  /** Parses `(?P<name>`, `(?flags)` (returns null) or `(?flags:`. */
  #perlGroup(): _Node | null {
    const src = this.#src;
    const start = this.#pos;
    // Named captures: (?P<name>re), and (?<name>re) as Go ≥ 1.22 and Prometheus 3.5 accept.
    const named = src.length - start > 4 && src.startsWith("(?P<", start)
      ? 4
      : src.length - start > 3 && src.startsWith("(?<", start)
      ? 3
      : 0;
    if (named > 0) {
      const end = src.indexOf(">", start);
      if (end < 0) throw _reError("invalid named capture", src.slice(start));
      if (!/^[A-Za-z0-9_]+$/.test(src.slice(start + named, end))) {
        throw _reError("invalid named capture", src.slice(start, end + 1));
      }
      this.#pos = end + 1;
      return this.#groupBody({ ...this.#flags });
    }
    this.#pos += 2;
    const flags = { ...this.#flags };
    let on = true;
    let sawFlag = false;
    while (this.#pos < src.length) {
      const cp = src.codePointAt(this.#pos)!;
      const c = String.fromCodePoint(cp);
      this.#pos += c.length;
      if (c === "i" || c === "m" || c === "s" || c === "U") {
        const key = ({ i: "fold", m: "multiLine", s: "dotNL", U: "nonGreedy" } as const)[c];
        flags[key] = on;
        sawFlag = true;
        continue;
      }
      if (c === "-" && on) {
        on = false;
        sawFlag = false;
        continue;
      }
      if ((c === ":" || c === ")") && (on || sawFlag)) {
        if (c === ")") {
          this.#flags = flags;
          return null;
        }
        const saved = this.#flags;
        this.#flags = flags;
        return this.#groupBody(saved);
      }
      break;
    }
    throw _reError("invalid or unsupported Perl syntax", src.slice(start, this.#pos));
  }

  /** A backslash outside a class: an assertion, `\Q…\E`, a class escape or a literal. */
  #escapeAtom(items: _Node[]): void {
    const src = this.#src;
    const c = src[this.#pos + 1];
    const asserts: Record<string, string> = { A: "^", z: "$", b: "\\b", B: "\\B" };
    if (c !== undefined && c in asserts) {
      this.#pos += 2;
      items.push({ t: "assert", js: asserts[c] });
      return;
    }
    if (c === "C") throw _reError("invalid escape sequence", "\\C");
    if (c === "Q") {
      this.#pos += 2;
      const end = src.indexOf("\\E", this.#pos);
      const text = end < 0 ? src.slice(this.#pos) : src.slice(this.#pos, end);
      this.#pos = end < 0 ? src.length : end + 2;
      for (const ch of text) items.push(this.#literal(ch.codePointAt(0)!));
      return;
    }
    if (c === "p" || c === "P") {
      items.push({ t: "class", items: [this.#unicodeClass()], neg: false, fold: this.#flags.fold });
      return;
    }
    const perl = this.#perlClass();
    if (perl) {
      items.push({ t: "class", items: [perl], neg: false, fold: this.#flags.fold });
      return;
    }
    items.push(this.#literal(this.#escapeChar()));
  }

  /** `\d`, `\D`, `\s`, `\S`, `\w`, `\W` at the current position, consumed; else undefined. */
  #perlClass(): _ClassItem | undefined {
    const c = this.#src[this.#pos + 1];
    if (this.#src[this.#pos] !== "\\" || c === undefined) return undefined;
    const ranges = _PERL_GROUPS[c.toLowerCase()];
    if (!ranges || !/[dswDSW]/.test(c)) return undefined;
    this.#pos += 2;
    return { ranges, neg: c !== c.toLowerCase() };
  }

  /** Go's parseEscape: a single-character escape at the current position (a backslash). */
  #escapeChar(): number {
    const src = this.#src;
    const start = this.#pos;
    if (start + 1 >= src.length) throw _reError("trailing backslash at end of expression", "");
    const cp = src.codePointAt(start + 1)!;
    const c = String.fromCodePoint(cp);
    let i = start + 1 + c.length;
    const invalid = () => _reError("invalid escape sequence", src.slice(start, i));
    if (cp < 0x80 && !/[0-9A-Za-z]/.test(c)) {
      // Escaped punctuation is itself.
      this.#pos = i;
      return cp;
    }
    if ((c >= "1" && c <= "7" && _isOctal(src[i])) || c === "0") {
      // Up to three octal digits; a lone \1-\7 would be a backreference, which RE2 lacks.
      let r = cp - 0x30;
      for (let k = 1; k < 3 && _isOctal(src[i]); k++) r = r * 8 + (src.charCodeAt(i++) - 0x30);
      this.#pos = i;
      return r;
    }
    if (c === "x") {
      if (src[i] === "{") {
        const end = src.indexOf("}", i);
        const hex = end < 0 ? "" : src.slice(i + 1, end);
        if (!/^[0-9a-fA-F]+$/.test(hex) || parseInt(hex, 16) > _MAX_RUNE) {
          i = end < 0 ? src.length : end + 1;
          throw invalid();
        }
        this.#pos = end + 1;
        return parseInt(hex, 16);
      }
      if (_isHex(src[i]) && _isHex(src[i + 1])) {
        this.#pos = i + 2;
        return parseInt(src.slice(i, i + 2), 16);
      }
      i = Math.min(i + 2, src.length);
      throw invalid();
    }
    const controls: Record<string, number> = { a: 7, f: 12, n: 10, r: 13, t: 9, v: 11 };
    if (c in controls) {
      this.#pos = i;
      return controls[c];
    }
    throw invalid();
  }

  /** `\pL`, `\p{Greek}`, `\P{…}`, `\p{^…}` at the current position. */
  #unicodeClass(): _ClassItem {
    const src = this.#src;
    const start = this.#pos;
    let neg = src[start + 1] === "P";
    let name: string;
    if (src[start + 2] !== "{") {
      const cp = src.codePointAt(start + 2);
      name = cp === undefined ? "" : String.fromCodePoint(cp);
      this.#pos = start + 2 + name.length;
    } else {
      const end = src.indexOf("}", start);
      if (end < 0) throw _reError("invalid character class range", src.slice(start));
      name = src.slice(start + 3, end);
      this.#pos = end + 1;
    }
    const seq = src.slice(start, this.#pos);
    if (name.startsWith("^")) {
      neg = !neg;
      name = name.slice(1);
    }
    const prop = _unicodeProperty(name);
    if (prop === undefined) throw _reError("invalid character class range", seq);
    return { prop, neg };
  }

  /** A bracketed class `[…]` at the current position. */
  #class(): _Node {
    const src = this.#src;
    const start = this.#pos;
    this.#pos++;
    const node = {
      t: "class" as const,
      items: [] as _ClassItem[],
      neg: false,
      fold: this.#flags.fold,
    };
    if (src[this.#pos] === "^") {
      node.neg = true;
      this.#pos++;
    }
    const ranges: number[] = [];
    const missing = () => _reError("missing closing ]", src.slice(start));
    let first = true; // `]` is a literal as the first character
    while (this.#pos >= src.length || src[this.#pos] !== "]" || first) {
      if (this.#pos >= src.length) throw missing();
      first = false;
      if (src.startsWith("[:", this.#pos)) {
        const end = src.indexOf(":]", this.#pos + 2);
        if (end >= 0) {
          const name = src.slice(this.#pos, end + 2);
          const neg = name[2] === "^";
          const group = _POSIX_GROUPS[name.slice(neg ? 3 : 2, -2)];
          if (!group) throw _reError("invalid character class range", name);
          node.items.push({ ranges: group, neg });
          this.#pos = end + 2;
          continue;
        }
      }
      if (src[this.#pos] === "\\" && (src[this.#pos + 1] === "p" || src[this.#pos + 1] === "P")) {
        node.items.push(this.#unicodeClass());
        continue;
      }
      const perl = this.#perlClass();
      if (perl) {
        node.items.push(perl);
        continue;
      }
      const rangeStart = this.#pos;
      const lo = this.#classChar(missing);
      let hi = lo;
      if (this.#pos + 1 < src.length && src[this.#pos] === "-" && src[this.#pos + 1] !== "]") {
        this.#pos++;
        hi = this.#classChar(missing);
        if (hi < lo) {
          throw _reError("invalid character class range", src.slice(rangeStart, this.#pos));
        }
      }
      ranges.push(lo, hi);
    }
    this.#pos++; // ]
    if (ranges.length > 0) node.items.unshift({ ranges, neg: false });
    return node;
  }

  #classChar(missing: () => SyntaxError): number {
    const src = this.#src;
    if (this.#pos >= src.length) throw missing();
    if (src[this.#pos] === "\\") return this.#escapeChar();
    const cp = src.codePointAt(this.#pos)!;
    this.#pos += cp > 0xffff ? 2 : 1;
    return cp;
  }
}

/** Go's repeatIsValid: nested counted repetitions may not multiply beyond `n` copies. */
function _repeatIsValid(node: _Node, n: number): boolean {
  if (node.t === "rep" && node.counted) {
    let m = node.max;
    if (m === 0) return true;
    if (m < 0) m = node.min;
    if (m > n) return false;
    if (m > 0) n = Math.floor(n / m);
  }
  const subs = node.t === "rep" || node.t === "group"
    ? [node.sub]
    : node.t === "concat" || node.t === "alt"
    ? node.subs
    : [];
  return subs.every((sub) => _repeatIsValid(sub, n));
}

/** A code point as a JS regex atom (flag `u`) outside a class. */
function _literalJs(cp: number): string {
  const c = String.fromCodePoint(cp);
  if (/^[A-Za-z0-9_ ]$/.test(c)) return c;
  if ("^$\\.*+?()[]{}|/".includes(c)) return `\\${c}`;
  return `\\u{${cp.toString(16)}}`;
}

function _rangesJs(ranges: readonly number[]): string {
  let out = "";
  for (let i = 0; i < ranges.length; i += 2) {
    const [lo, hi] = [ranges[i], ranges[i + 1]];
    out += lo === hi
      ? `\\u{${lo.toString(16)}}`
      : `\\u{${lo.toString(16)}}-\\u{${hi.toString(16)}}`;
  }
  return out;
}

/** The complement of a set of ranges within 0…U+10FFFF. */
function _complement(ranges: readonly number[]): number[] {
  const pairs: [number, number][] = [];
  for (let i = 0; i < ranges.length; i += 2) pairs.push([ranges[i], ranges[i + 1]]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  let next = 0;
  for (const [lo, hi] of pairs) {
    if (lo > next) out.push(next, lo - 1);
    next = Math.max(next, hi + 1);
  }
  if (next <= _MAX_RUNE) out.push(next, _MAX_RUNE);
  return out;
}

function _itemJs(item: _ClassItem, positive: boolean): string {
  const neg = item.neg && !positive;
  if (item.prop !== undefined) return `\\${neg ? "P" : "p"}{${item.prop}}`;
  return _rangesJs(neg ? _complement(item.ranges!) : item.ranges!);
}

/**
 * A class in JS. Without `(?i)` it is one JS class. With `(?i)`, RE2 folds every item and then
 * negates, while JS folds after complementing a negated item (`(?i)\W` would match `ſ` in JS, not
 * in RE2): negated items are therefore written as "one character not matching the folded item".
 */
function _classJs(node: Extract<_Node, { t: "class" }>): string {
  if (!node.fold) {
    return `[${node.neg ? "^" : ""}${node.items.map((item) => _itemJs(item, false)).join("")}]`;
  }
  const positive = node.items.filter((item) => !item.neg);
  const negative = node.items.filter((item) => item.neg);
  if (negative.length === 0) {
    return `(?i:[${node.neg ? "^" : ""}${positive.map((item) => _itemJs(item, true)).join("")}])`;
  }
  const alternatives = negative.map((item) => `(?![${_itemJs(item, true)}])[^]`);
  if (positive.length > 0) {
    alternatives.unshift(`[${positive.map((item) => _itemJs(item, true)).join("")}]`);
  }
  const union = `(?:${alternatives.join("|")})`;
  return `(?i:${node.neg ? `(?!${union})[^]` : union})`;
}

function _quantifierJs(node: Extract<_Node, { t: "rep" }>): string {
  const { min, max } = node;
  let q: string;
  if (!node.counted) q = max === 1 ? "?" : min === 0 ? "*" : "+";
  else if (max < 0) q = `{${min},}`;
  else if (min === max) q = `{${min}}`;
  else q = `{${min},${max}}`;
  return node.lazy ? `${q}?` : q;
}

function _emit(node: _Node): string {
  switch (node.t) {
    case "lit":
      return node.fold ? `(?i:${_literalJs(node.cp)})` : _literalJs(node.cp);
    case "class":
      return _classJs(node);
    case "any":
      return node.nl ? "[^]" : "[^\\n]";
    case "assert":
      return node.js;
    case "rep":
      // Always grouped: JS (flag u) cannot quantify an assertion, RE2 can.
      return `(?:${_emit(node.sub)})${_quantifierJs(node)}`;
    case "group":
      return `(?:${_emit(node.sub)})`;
    case "alt":
      return node.subs.map(_emit).join("|");
    case "concat": {
      // Runs of case-insensitive literals share one (?i:…) group.
      let out = "";
      let fold = "";
      for (const sub of node.subs) {
        if (sub.t === "lit" && sub.fold) {
          fold += _literalJs(sub.cp);
          continue;
        }
        if (fold) out += `(?i:${fold})`;
        fold = "";
        out += _emit(sub);
      }
      return fold ? `${out}(?i:${fold})` : out;
    }
  }
}
