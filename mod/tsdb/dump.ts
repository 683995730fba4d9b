/**
 * Text of `promtool tsdb dump`: one line per sample, `{labels} value timestamp`, formatted as
 * Go's `labels.Labels.String()`, `fmt` `%g` and `histogram.(Float)Histogram.String()` do.
 *
 * Histogram bucket bounds are computed here correctly rounded; Prometheus takes them from a
 * precomputed table whose entries are sometimes one unit in the last place lower, so a bound can
 * differ from promtool's in its last digit.
 *
 * @module
 */

import type { BlockReader } from "./block.ts";
import type { FloatHistogramSample, HistogramSample, HistogramSpan } from "./chunkenc/histogram.ts";
import { decodeChunk } from "./chunkenc/mod.ts";
import type { Label } from "./index.ts";
import { isDeleted } from "./tombstones.ts";

const _f64 = new Float64Array(1);
const _u64 = new BigUint64Array(_f64.buffer);

/** The float64 of a raw bit pattern (NaN payloads are lost, which formatting does not need). */
export function floatFromBits(bits: bigint): number {
  _u64[0] = BigInt.asUintN(64, bits);
  return _f64[0];
}

/** Formats a float64 as Go's `fmt` `%g` (and `%v`) does: shortest digits, `e+06` exponents. */
export function formatGoFloat(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "+Inf";
  if (x === -Infinity) return "-Inf";
  if (x === 0) return Object.is(x, -0) ? "-0" : "0";
  // toExponential() without digits gives the shortest digits that round-trip, as Go does.
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(x.toExponential());
  if (!m) throw new Error(`cannot format ${x}`);
  const [, sign, first, rest = "", expText] = m;
  const digits = first + rest;
  const exp = Number(expText);
  // Go uses %e when the exponent is < -4 or >= 6 (the "shortest" precision rule).
  if (exp < -4 || exp >= 6) {
    const mant = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp);
    return `${sign}${mant}e${exp < 0 ? "-" : "+"}${e < 10 ? "0" : ""}${e}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  if (digits.length <= exp + 1) return `${sign}${digits}${"0".repeat(exp + 1 - digits.length)}`;
  return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
}

/** Formats raw float64 bits with {@link formatGoFloat}. */
export function formatGoFloatBits(bits: bigint): string {
  return formatGoFloat(floatFromBits(bits));
}

const _PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;

/** Go's `strconv.Quote`: double quotes, Go escapes for control and non-printable characters. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    switch (ch) {
      case '"':
        out += '\\"';
        continue;
      case "\\":
        out += "\\\\";
        continue;
      case "\x07":
        out += "\\a";
        continue;
      case "\b":
        out += "\\b";
        continue;
      case "\f":
        out += "\\f";
        continue;
      case "\n":
        out += "\\n";
        continue;
      case "\r":
        out += "\\r";
        continue;
      case "\t":
        out += "\\t";
        continue;
      case "\v":
        out += "\\v";
        continue;
    }
    if (_PRINTABLE.test(ch)) out += ch;
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, "0")}`;
    else if (cp < 0x10000) out += `\\u${cp.toString(16).padStart(4, "0")}`;
    else out += `\\U${cp.toString(16).padStart(8, "0")}`;
  }
  return out + '"';
}

/** Go's `labels.Labels.String()`: `{name="value", …}`; names quoted unless legacy-valid. */
export function formatLabels(labels: readonly Label[]): string {
  const parts = labels.map((l) => {
    const name = /^[a-zA-Z_][a-zA-Z0-9_]*$/.test(l.name) ? l.name : goQuote(l.name);
    return `${name}=${goQuote(l.value)}`;
  });
  return `{${parts.join(", ")}}`;
}

/** Multiplies by 2^exp with a single rounding, as Go's `math.Ldexp`. */
function _ldexp(frac: number, exp: number): number {
  if (exp > 1023) return frac * 2 ** 1023 * 2 ** (exp - 1023);
  if (exp < -1074) return frac * 2 ** -1074 * 2 ** (exp + 1074);
  return frac * 2 ** exp;
}

// 2^(k/2^schema)/2 for schema 0..8, correctly rounded: computed in 192-bit fixed point from
// repeated integer square roots of 2.
const _BOUNDS: number[][] = (() => {
  const P = 192n;
  const isqrt = (n: bigint): bigint => {
    let x = 1n << (BigInt(n.toString(2).length) / 2n + 1n);
    for (;;) {
      const y = (x + n / x) >> 1n;
      if (y >= x) return x;
      x = y;
    }
  };
  const roots = [2n << P]; // roots[m] = 2^(1/2^m) in fixed point
  for (let m = 1; m <= 8; m++) roots.push(isqrt(roots[m - 1] << P));
  const table: number[][] = [];
  for (let s = 0; s <= 8; s++) {
    const row: number[] = [];
    for (let k = 0; k < 1 << s; k++) {
      let r = 1n << P;
      for (let j = 0; j < s; j++) if ((k >> j) & 1) r = (r * roots[s - j]) >> P;
      const shift = P - 52n;
      row.push(Number((r + (1n << (shift - 1n))) >> shift) / 2 ** 53);
    }
    table.push(row);
  }
  return table;
})();

/** Upper bound of bucket `idx` (Go's `getBound`). */
export function bucketBound(idx: number, schema: number, customValues: readonly number[]): number {
  if (schema === -53) {
    if (idx === customValues.length) return Infinity;
    if (idx === -1) return -Infinity;
    if (idx < -1 || idx > customValues.length) {
      throw new RangeError(`bucket index ${idx} out of custom bounds`);
    }
    return customValues[idx];
  }
  if (schema < 0) {
    const exp = idx * 2 ** -schema;
    if (exp === 1024) return Number.MAX_VALUE; // the last finite bucket's bound
    return _ldexp(1, exp);
  }
  const frac = _BOUNDS[schema][idx & ((1 << schema) - 1)];
  const exp = (idx >> schema) + 1;
  if (frac === 0.5 && exp === 1025) return Number.MAX_VALUE;
  return _ldexp(frac, exp);
}

interface _Bucket {
  lower: number;
  upper: number;
  lowerInclusive: boolean;
  upperInclusive: boolean;
  count: string;
}

function _buckets<T>(
  spans: readonly HistogramSpan[],
  counts: readonly T[],
  positive: boolean,
  schema: number,
  custom: readonly number[],
  toCount: (v: T, acc: T | undefined) => { acc: T; text: string; zero: boolean },
): _Bucket[] {
  const out: _Bucket[] = [];
  let b = 0;
  let idx = 0;
  let acc: T | undefined;
  for (let s = 0; s < spans.length; s++) {
    idx += spans[s].offset;
    for (let i = 0; i < spans[s].length; i++, idx++, b++) {
      const c = toCount(counts[b], acc);
      acc = c.acc;
      if (c.zero) continue;
      const hi = bucketBound(idx, schema, custom);
      const lo = bucketBound(idx - 1, schema, custom);
      const [lower, upper] = positive ? [lo, hi] : [-hi, -lo];
      out.push({
        lower,
        upper,
        lowerInclusive: schema === -53 ? idx === 0 : lower < 0,
        upperInclusive: schema === -53 ? true : upper > 0,
        count: c.text,
      });
    }
  }
  return out;
}

function _bucketText(b: _Bucket): string {
  return `${b.lowerInclusive ? "[" : "("}${formatGoFloat(b.lower)},${formatGoFloat(b.upper)}${
    b.upperInclusive ? "]" : ")"
  }:${b.count}`;
}

function _histogramText(
  count: string,
  sum: bigint,
  negative: _Bucket[],
  zeroCount: string | undefined,
  zeroThreshold: bigint,
  positive: _Bucket[],
): string {
  const parts = [`{count:${count}, sum:${formatGoFloatBits(sum)}`];
  for (let i = negative.length - 1; i >= 0; i--) parts.push(_bucketText(negative[i]));
  if (zeroCount !== undefined) {
    const z = formatGoFloatBits(zeroThreshold);
    parts.push(`[${formatGoFloat(-floatFromBits(zeroThreshold))},${z}]:${zeroCount}`);
  }
  for (const b of positive) parts.push(_bucketText(b));
  return parts.join(", ") + "}";
}

/** Go's `histogram.Histogram.String()`. */
export function formatHistogram(h: HistogramSample): string {
  const custom = h.customValues.map(floatFromBits);
  const intCount = (v: bigint, acc: bigint | undefined) => {
    const a = BigInt.asIntN(64, (acc ?? 0n) + v);
    return { acc: a, text: BigInt.asUintN(64, a).toString(), zero: a === 0n };
  };
  const neg = _buckets(h.negativeSpans, h.negativeBuckets, false, h.schema, custom, intCount);
  const pos = _buckets(h.positiveSpans, h.positiveBuckets, true, h.schema, custom, intCount);
  const zc = h.zeroCount !== 0n ? h.zeroCount.toString() : undefined;
  return _histogramText(h.count.toString(), h.sum, neg, zc, h.zeroThreshold, pos);
}

/** Go's `histogram.FloatHistogram.String()`. */
export function formatFloatHistogram(h: FloatHistogramSample): string {
  const custom = h.customValues.map(floatFromBits);
  const floatCount = (v: bigint) => {
    const x = floatFromBits(v);
    return { acc: v, text: formatGoFloat(x), zero: x === 0 };
  };
  const neg = _buckets(h.negativeSpans, h.negativeBuckets, false, h.schema, custom, floatCount);
  const pos = _buckets(h.positiveSpans, h.positiveBuckets, true, h.schema, custom, floatCount);
  const zc = floatFromBits(h.zeroCount) !== 0 ? formatGoFloatBits(h.zeroCount) : undefined;
  return _histogramText(formatGoFloatBits(h.count), h.sum, neg, zc, h.zeroThreshold, pos);
}

/** One `promtool tsdb dump` line for a float sample. */
export function formatFloatLine(labels: readonly Label[], t: bigint, v: bigint): string {
  return `${formatLabels(labels)} ${formatGoFloatBits(v)} ${t}`;
}

/** Which `promtool tsdb dump` output loop to reproduce. */
export type DumpFlavor =
  /** Prometheus 2.42 and older: the float samples of each series up to its first non-float. */
  | "floats"
  /**
   * 2.43 to 3.x: three loops (floats, then float histograms, then integer histograms), each of
   * which swallows the sample that ends it. A pure histogram series therefore loses its first
   * sample (float histograms) or first two samples (integer histograms), as promtool prints it.
   */
  | "three-loops";

/** Options of {@link dumpBlock}. */
export interface DumpOptions {
  /** First timestamp to dump (default: all). */
  minTime?: bigint;
  /** Last timestamp to dump, inclusive (default: all). */
  maxTime?: bigint;
  /** promtool version behaviour (default "three-loops"). */
  flavor?: DumpFlavor;
}

type _DumpSample =
  | { kind: "float"; t: bigint; v: bigint }
  | { kind: "histogram"; t: bigint; h: HistogramSample }
  | { kind: "floatHistogram"; t: bigint; h: FloatHistogramSample };

/**
 * The lines `promtool tsdb dump` prints for one block (series in label order, samples in time
 * order, deleted samples left out), including promtool's sample-swallowing loops (see
 * {@link DumpFlavor}).
 */
export async function* dumpBlock(
  block: BlockReader,
  options: DumpOptions = {},
): AsyncGenerator<string> {
  const flavor = options.flavor ?? "three-loops";
  for await (const s of block.series()) {
    const samples: _DumpSample[] = [];
    const keep = (t: bigint) =>
      (options.minTime === undefined || t >= options.minTime) &&
      (options.maxTime === undefined || t <= options.maxTime) &&
      !isDeleted(s.tombstones, t);
    for (const c of s.chunks) {
      const d = decodeChunk(c.encoding, c.data);
      if (d.kind === "float") {
        const { t, v } = d.samples;
        for (let i = 0; i < t.length; i++) {
          if (keep(t[i])) samples.push({ kind: "float", t: t[i], v: v[i] });
        }
      } else if (d.kind === "histogram") {
        for (const h of d.samples) if (keep(h.t)) samples.push({ kind: "histogram", t: h.t, h });
      } else {
        for (const h of d.samples) {
          if (keep(h.t)) samples.push({ kind: "floatHistogram", t: h.t, h });
        }
      }
    }
    const labels = formatLabels(s.labels);
    let i = 0;
    const loops: _DumpSample["kind"][] = flavor === "floats"
      ? ["float"]
      : ["float", "floatHistogram", "histogram"];
    for (const kind of loops) {
      for (; i < samples.length && samples[i].kind === kind; i++) {
        const x = samples[i];
        const text = x.kind === "float"
          ? formatGoFloatBits(x.v)
          : x.kind === "histogram"
          ? formatHistogram(x.h)
          : formatFloatHistogram(x.h);
        yield `${labels} ${text} ${x.t}`;
      }
      i++; // the sample that ended the loop was read by its Next() and is lost
    }
  }
}
