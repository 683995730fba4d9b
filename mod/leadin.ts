/**
 * The lead-in: how much data before the incident window an export ships. Dashboards and rules are
 * full of range queries (`rate(x[5m])`, `increase(x[1h])`, `$__rate_interval`, subqueries); at the
 * window's first minutes they look back before the window, and an archive cut exactly to the
 * window answers them empty or wrong (`rate` extrapolates from the few samples it finds). So export
 * ships a lead-in before the window: 15 minutes by default (which also covers the 5 minute lookback
 * of plain selectors), raised to the longest lookback of a range selector found in the captured
 * rules and dashboards, up to an hour. The manifest keeps the incident window and the shipped range
 * apart; `view` still opens dashboards on the incident window.
 *
 * The scan is a careful lexer, not a PromQL parser: string literals and comments are skipped, every
 * `[range]` and `[range:resolution]` is read, offsets are added, and an expression's lookback is its
 * subquery ranges added up, plus its longest range selector, plus its largest offset (an upper
 * bound, exact for the usual shapes).
 *
 * @module
 */

import type { ContextFile } from "./context.ts";
import { formatDuration, parseDuration } from "./window.ts";

/** The lead-in when nothing asks for more: 15 minutes. */
export const DEFAULT_LEAD_IN_MS = 15n * 60_000n;
/** The most the captured rules and dashboards can raise the lead-in to: 1 hour. */
export const MAX_LEAD_IN_MS = 60n * 60_000n;
/**
 * What `$__rate_interval` and `$__interval` count as: 4 times Grafana's default scrape interval
 * (15s), the least `$__rate_interval` ever is (Grafana: max($__interval + scrape interval,
 * 4 x scrape interval)). `$__interval` is the dashboard range over the panel's width in points: for
 * windows up to days it stays a few minutes, below the 15 minute default, so counting either at
 * this minimum never changes the lead-in; they are counted so that they show as found.
 */
export const GRAFANA_INTERVAL_MS = 4n * 15_000n;

/** The longest lookback found, and where. */
export interface RangeSelectorUse {
  /** How far before its evaluation time the expression reads, in ms. */
  lookbackMs: bigint;
  /** The expression (shortened to 200 characters). */
  expr: string;
  /** The context file it was found in (`context/prometheus/rules.json`, a dashboard's path). */
  where: string;
}

/** What {@link scanRangeSelectors} found. */
export interface RangeSelectorScan {
  /** The expression that looks back furthest, or null when none has a range. */
  longest: RangeSelectorUse | null;
  /** Expressions with a range selector. */
  expressions: number;
  /**
   * Ranges that could not be counted, each once with why (`[$__range]`: a whole-dashboard range no
   * lead-in covers; unknown variables; duration arithmetic).
   */
  ignored: string[];
}

/** The lead-in an export ships, and why. */
export interface LeadIn {
  /** Milliseconds before the window's start. */
  ms: bigint;
  /** Why this much, for the manifest and the export's output. */
  reason: string;
}

/**
 * The lead-in: `explicit` (`--lead-in`, `0` for none) as given; otherwise the 15 minute default,
 * raised to the longest lookback found, at most 1 hour.
 */
export function computeLeadIn(explicit: bigint | undefined, scan?: RangeSelectorScan): LeadIn {
  if (explicit !== undefined) {
    return {
      ms: explicit,
      reason: explicit === 0n ? "--lead-in 0: none" : `--lead-in ${formatDuration(explicit)}`,
    };
  }
  const longest = scan?.longest;
  if (!longest || longest.lookbackMs <= DEFAULT_LEAD_IN_MS) {
    return {
      ms: DEFAULT_LEAD_IN_MS,
      reason: longest
        ? `default ${formatDuration(DEFAULT_LEAD_IN_MS)}; the longest range found is ` +
          `${formatDuration(longest.lookbackMs)} (${longest.expr} in ${longest.where})`
        : `default ${formatDuration(DEFAULT_LEAD_IN_MS)}`,
    };
  }
  const found = `${formatDuration(longest.lookbackMs)}: ${longest.expr} in ${longest.where}`;
  if (longest.lookbackMs > MAX_LEAD_IN_MS) {
    return {
      ms: MAX_LEAD_IN_MS,
      reason: `raised to the ${formatDuration(MAX_LEAD_IN_MS)} cap; the longest range found is ` +
        `${found} (--lead-in ${formatDuration(longest.lookbackMs)} ships all it reads)`,
    };
  }
  return {
    ms: longest.lookbackMs,
    reason: `raised to the longest range found in the captured rules and dashboards, ${found}`,
  };
}

/**
 * Scans captured context files for range selectors: the rules (`context/prometheus/rules.json`,
 * each rule's `query`) and the Grafana dashboards (`context/grafana/dashboards/…`, every `expr` and
 * `query`, with the dashboard's own variables resolved to their largest value). Other files and
 * files that are not JSON are passed over.
 */
export function scanRangeSelectors(files: readonly ContextFile[]): RangeSelectorScan {
  const out: RangeSelectorScan = { longest: null, expressions: 0, ignored: [] };
  const ignored = new Set<string>();
  for (const file of files) {
    const isRules = file.path === "context/prometheus/rules.json";
    if (!isRules && !file.path.startsWith("context/grafana/dashboards/")) continue;
    let value: unknown;
    try {
      value = JSON.parse(file.text);
    } catch {
      continue;
    }
    const variables = isRules ? new Map<string, bigint>() : _dashboardVariables(value);
    for (const expr of _queries(value)) {
      const found = exprLookback(expr, variables);
      for (const why of found.ignored) ignored.add(why);
      if (found.ms === null) continue;
      out.expressions++;
      if (!out.longest || found.ms > out.longest.lookbackMs) {
        const short = expr.replace(/\s+/g, " ").trim();
        out.longest = {
          lookbackMs: found.ms,
          expr: short.length > 200 ? `${short.slice(0, 197)}...` : short,
          where: file.path,
        };
      }
    }
  }
  out.ignored = [...ignored];
  return out;
}

/**
 * How far before its evaluation time a PromQL expression reads: its subquery ranges added up
 * (nested subqueries look back one after the other), plus its longest range selector, plus its
 * largest positive offset. `ms` is null when the expression has no range at all. Grafana variables
 * are resolved first: `$__rate_interval`/`$__interval` as {@link GRAFANA_INTERVAL_MS}, others from
 * `variables` (name without `$`, value in ms).
 *
 * @example
 * ```ts
 * exprLookback("max_over_time(rate(x[5m])[1h:1m])").ms; // 3_900_000n
 * ```
 */
export function exprLookback(
  expr: string,
  variables: ReadonlyMap<string, bigint> = new Map(),
): { ms: bigint | null; ignored: string[] } {
  const code = _substituteVariables(_stripStringsAndComments(expr), variables);
  const ignored: string[] = [];
  let subqueries = 0n;
  let range = 0n;
  let offset = 0n;
  let found = false;
  for (const match of code.matchAll(/\[([^\[\]]*)\]/g)) {
    const body = match[1];
    const colon = body.indexOf(":");
    const text = (colon >= 0 ? body.slice(0, colon) : body).trim();
    const ms = _durationMs(text);
    if (ms === null) {
      ignored.push(_whyIgnored(text));
      continue;
    }
    found = true;
    if (colon >= 0) subqueries += ms;
    else if (ms > range) range = ms;
  }
  for (const match of code.matchAll(/\boffset\s+(-?)\s*([0-9][0-9A-Za-z.]*)/gi)) {
    const ms = _durationMs(match[2]);
    if (ms !== null && match[1] !== "-" && ms > offset) offset = ms;
  }
  return { ms: found ? subqueries + range + offset : null, ignored };
}

/** Grafana's built-in variables that stand for a duration, as the scan counts them. */
const _BUILTIN: Record<string, string> = {
  __rate_interval: `${GRAFANA_INTERVAL_MS}ms`,
  __interval: `${GRAFANA_INTERVAL_MS}ms`,
  __interval_ms: `${GRAFANA_INTERVAL_MS}`,
  __rate_interval_ms: `${GRAFANA_INTERVAL_MS}`,
};

/** Replaces `$name`, `${name}`, `${name:format}` and `[[name]]` with a duration the scan reads. */
function _substituteVariables(code: string, variables: ReadonlyMap<string, bigint>): string {
  const value = (name: string, whole: string) => {
    if (name in _BUILTIN) return _BUILTIN[name];
    const ms = variables.get(name);
    return ms === undefined ? whole : `${ms}ms`;
  };
  return code
    .replace(/\[\[(\w+)(?::\w+)?\]\]/g, (_whole, name) => value(name, `$${name}`))
    .replace(/\$\{(\w+)(?::[^}]*)?\}|\$(\w+)/g, (whole, a, b) => value(a ?? b, whole));
}

/** Blanks out string literals and `#` comments, so that a `[5m]` inside them is not read. */
function _stripStringsAndComments(expr: string): string {
  let out = "";
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (c === '"' || c === "'" || c === "`") {
      const end = _stringEnd(expr, i);
      out += '""';
      i = end;
    } else if (c === "#") {
      const end = expr.indexOf("\n", i);
      if (end < 0) break;
      i = end - 1;
    } else {
      out += c;
    }
  }
  return out;
}

/** Index of the quote closing the string that opens at `start` (backticks have no escapes). */
function _stringEnd(expr: string, start: number): number {
  const quote = expr[start];
  for (let i = start + 1; i < expr.length; i++) {
    if (expr[i] === "\\" && quote !== "`") i++;
    else if (expr[i] === quote) return i;
  }
  return expr.length;
}

/**
 * A PromQL duration in ms: a duration literal (units y, w, d, h, m, s, ms, each at most once, in
 * that order, as Prometheus' model.ParseDuration takes them), or a plain number of seconds (`[300]`:
 * numbers and durations are interchangeable in PromQL since 2.54, experimental, stable in 3.0, see
 * Prometheus' CHANGELOG.md, #9138 and #15111), or null.
 */
function _durationMs(text: string): bigint | null {
  if (/^\d+(\.\d+)?$/.test(text)) return BigInt(Math.round(Number(text) * 1000));
  try {
    return parseDuration(text);
  } catch {
    return null;
  }
}

function _whyIgnored(text: string): string {
  if (/\$\{?__range/.test(text)) {
    return `[${text}]: the whole dashboard range, which no lead-in covers (instant queries of it ` +
      `read the window itself)`;
  }
  if (text.includes("$")) return `[${text}]: a variable the dashboard does not define`;
  return `[${text}]: not a duration the scan reads`;
}

/** Every string under an `expr` or `query` key, however deep (panels in rows, templating). */
function* _queries(value: unknown, key = ""): Generator<string> {
  if (typeof value === "string") {
    if (key === "expr" || key === "query") yield value;
  } else if (Array.isArray(value)) {
    for (const v of value) yield* _queries(v, key);
  } else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) yield* _queries(v, k);
  }
}

/**
 * A dashboard's variables that hold durations (interval variables, custom ones like `1m,5m,1h`),
 * each at the largest value it can take: the support engineer may pick any.
 */
function _dashboardVariables(dashboard: unknown): Map<string, bigint> {
  const out = new Map<string, bigint>();
  const list = (dashboard as { templating?: { list?: unknown } })?.templating?.list;
  if (!Array.isArray(list)) return out;
  for (const variable of list) {
    if (typeof variable?.name !== "string") continue;
    const candidates: unknown[] = [];
    const current = variable.current?.value;
    candidates.push(...(Array.isArray(current) ? current : [current]));
    for (const option of Array.isArray(variable.options) ? variable.options : []) {
      candidates.push(option?.value);
    }
    if (typeof variable.query === "string" && variable.type !== "query") {
      candidates.push(...variable.query.split(","));
    }
    let max: bigint | null = null;
    for (const candidate of candidates) {
      const ms = typeof candidate === "string" ? _durationMs(candidate.trim()) : null;
      if (ms !== null && (max === null || ms > max)) max = ms;
    }
    if (max !== null) out.set(variable.name, max);
  }
  return out;
}
