/**
 * Decoders of the native histogram chunks: integer histograms (encoding 2,
 * `tsdb/chunkenc/histogram.go`) and float histograms (encoding 3, `float_histogram.go`), with the
 * shared layout of `histogram_meta.go`.
 *
 * Header: BE16 sample count, then a flags byte whose top two bits are the counter-reset header.
 * The bit stream starts with the layout (zero threshold, schema, positive and negative spans and,
 * for schema -53, the custom bucket bounds), then the samples.
 *
 * The same chunks with start timestamps (encodings 5 and 6, `histogram_st.go` and
 * `float_histogram_st.go`, Prometheus 3.14+) differ only in the header and in the bits that
 * follow each sample: the counter-reset header moves to the top two bits of byte 0 (the sample
 * count keeps the low 14 bits of bytes 0–1), byte 2 is the ST header, and each sample's ST bits
 * (`st.ts`) come after its last field (after the sum for a stale marker).
 *
 * Samples decode into plain objects shaped like Go's `histogram.Histogram` and
 * `histogram.FloatHistogram`: `t` and integer counts are `bigint`, floats are raw IEEE-754 bit
 * patterns (`bigint`), and integer bucket counts are stored as in Go, each a delta to the previous
 * bucket of the same sign.
 *
 * @module
 */

import { FormatError } from "../encoding.ts";
import { BitReader, joinBig } from "./bstream.ts";
import { readVarbitInt, readVarbitUint, readVarbitUintNumber } from "./varbit.ts";
import { STReader } from "./st.ts";
import { STALE_NAN_BITS, XorValueReader } from "./xor.ts";

/** A run of consecutive buckets: `offset` buckets after the previous span, `length` buckets. */
export interface HistogramSpan {
  /** Gap in bucket indices to the previous span's end (or the start index for the first span). */
  offset: number;
  /** Number of consecutive buckets. */
  length: number;
}

/** Go's `histogram.CounterResetHint`. */
export const CounterResetHint = {
  /** Nothing known (Go's UnknownCounterReset, 0). */
  unknown: 0,
  /** A counter reset happened before this histogram (CounterReset, 1). */
  reset: 1,
  /** No counter reset (NotCounterReset, 2). */
  notReset: 2,
  /** A gauge histogram (GaugeType, 3). */
  gauge: 3,
} as const;

/** Values of {@link CounterResetHint}. */
export type CounterResetHintValue = typeof CounterResetHint[keyof typeof CounterResetHint];

/** The counter-reset header in the top two bits of a histogram chunk's flags byte. */
export const CounterResetHeader = {
  /** 0b00: unknown. */
  unknown: 0b00,
  /** 0b10: the chunk starts with a counter reset. */
  reset: 0b10,
  /** 0b01: the chunk does not start with a counter reset. */
  notReset: 0b01,
  /** 0b11: the chunk holds gauge histograms. */
  gauge: 0b11,
} as const;

/** Fields shared by integer and float histogram samples. */
export interface HistogramBase {
  /** Timestamp (ms). */
  t: bigint;
  /** Counter reset hint, as Go's chunk iterator reports it (see {@link CounterResetHint}). */
  counterResetHint: CounterResetHintValue;
  /** Resolution: -4 to 8 for exponential buckets, -53 for custom buckets. */
  schema: number;
  /** Width of the zero bucket (raw float64 bits). */
  zeroThreshold: bigint;
  /** Sum of observations (raw float64 bits; the stale marker for stale samples). */
  sum: bigint;
  /** Positive bucket spans. */
  positiveSpans: HistogramSpan[];
  /** Negative bucket spans. */
  negativeSpans: HistogramSpan[];
  /** Upper bounds of custom buckets (schema -53 only; raw float64 bits). */
  customValues: bigint[];
}

/** One sample of an integer histogram chunk (Go's `histogram.Histogram`). */
export interface HistogramSample extends HistogramBase {
  /** Observations in the zero bucket (uint64). */
  zeroCount: bigint;
  /** Total observations (uint64). */
  count: bigint;
  /** Positive bucket counts as deltas: the first absolute, each later one minus its predecessor. */
  positiveBuckets: bigint[];
  /** Negative bucket counts as deltas, like {@link HistogramSample.positiveBuckets}. */
  negativeBuckets: bigint[];
}

/** One sample of a float histogram chunk (Go's `histogram.FloatHistogram`). */
export interface FloatHistogramSample extends HistogramBase {
  /** Observations in the zero bucket (raw float64 bits). */
  zeroCount: bigint;
  /** Total observations (raw float64 bits). */
  count: bigint;
  /** Absolute positive bucket counts (raw float64 bits). */
  positiveBuckets: bigint[];
  /** Absolute negative bucket counts (raw float64 bits). */
  negativeBuckets: bigint[];
}

/** The layout written once at the start of a histogram chunk. */
export interface HistogramLayout {
  /** Schema. */
  schema: number;
  /** Zero threshold (raw float64 bits). */
  zeroThreshold: bigint;
  /** Positive spans. */
  positiveSpans: HistogramSpan[];
  /** Negative spans. */
  negativeSpans: HistogramSpan[];
  /** Custom bucket bounds (raw float64 bits), for schema -53. */
  customValues: bigint[];
}

const _HEADER_SIZE = 3;
const _CUSTOM_BUCKETS_SCHEMA = -53;
const _f64 = new Float64Array(1);
const _u64 = new BigUint64Array(_f64.buffer);

// Bits of a finite, non-NaN double (safe through Float64Array: no NaN canonicalisation).
function _bitsOf(x: number): bigint {
  _f64[0] = x;
  return _u64[0];
}

/** The sample count of a histogram chunk (same header for both histogram encodings). */
export function histogramNumSamples(data: Uint8Array): number {
  if (data.length < _HEADER_SIZE) {
    throw new FormatError(`histogram chunk of ${data.length} bytes has no header`);
  }
  return (data[0] << 8) | data[1];
}

/**
 * The sample count of a histogram chunk with start timestamps (encodings 5 and 6): the low 14
 * bits of the first two bytes (the top two bits of byte 0 are the counter-reset header there,
 * byte 2 is the ST header).
 */
export function histogramSTNumSamples(data: Uint8Array): number {
  return histogramNumSamples(data) & 0x3fff;
}

/** The counter-reset header of a histogram chunk with start timestamps (top bits of byte 0). */
export function histogramSTCounterResetHeader(data: Uint8Array): number {
  histogramNumSamples(data);
  return data[0] >>> 6;
}

/** The samples of a histogram chunk with start timestamps, and each one's start timestamp. */
export interface HistogramSTSamples<H> {
  /** The samples, as the chunk without start timestamps would hold them. */
  samples: H[];
  /** Start timestamps (ms), one per sample; 0 where the chunk has none. */
  st: bigint[];
}

/** The counter-reset header (see {@link CounterResetHeader}) of a histogram chunk. */
export function histogramCounterResetHeader(data: Uint8Array): number {
  histogramNumSamples(data);
  return data[2] >>> 6;
}

// Go's `counterResetHint`: only gauge chunks and samples after the first carry a known hint.
function _hint(header: number, index: number): CounterResetHintValue {
  if (header === CounterResetHeader.gauge) return CounterResetHint.gauge;
  return index > 0 ? CounterResetHint.notReset : CounterResetHint.unknown;
}

function _readSpans(r: BitReader): HistogramSpan[] {
  const n = readVarbitUintNumber(r);
  const spans: HistogramSpan[] = [];
  for (let i = 0; i < n; i++) {
    const length = readVarbitUintNumber(r);
    const offset = Number(readVarbitInt(r));
    if (length > 0xffffffff || offset < -0x80000000 || offset > 0x7fffffff) {
      throw new FormatError(`histogram span out of range: offset ${offset}, length ${length}`);
    }
    spans.push({ offset, length });
  }
  return spans;
}

function _readZeroThreshold(r: BitReader): bigint {
  const b = r.readByte();
  if (b === 0) return 0n;
  if (b === 255) return r.readBigBits(64);
  return _bitsOf(2 ** (b - 244)); // Go: math.Ldexp(0.5, b-243)
}

function _readCustomBound(r: BitReader): bigint {
  const b = readVarbitUint(r);
  if (b === 0n) return r.readBigBits(64);
  return _bitsOf(Number(b - 1n) / 1000);
}

/** Reads the layout at the start of a histogram chunk's bit stream. */
export function readHistogramLayout(r: BitReader): HistogramLayout {
  const zeroThreshold = _readZeroThreshold(r);
  const schema = Number(readVarbitInt(r));
  const positiveSpans = _readSpans(r);
  const negativeSpans = _readSpans(r);
  const customValues: bigint[] = [];
  if (schema === _CUSTOM_BUCKETS_SCHEMA) {
    const n = readVarbitUintNumber(r);
    for (let i = 0; i < n; i++) customValues.push(_readCustomBound(r));
  }
  // Go accepts the custom-buckets schema and the exponential schemas -9 to 52 (the ones above 8
  // are reserved for newer versions, which reduce them when reading).
  if (schema !== _CUSTOM_BUCKETS_SCHEMA && (schema < -9 || schema > 52)) {
    throw new FormatError(`unknown histogram schema ${schema}`);
  }
  return { schema, zeroThreshold, positiveSpans, negativeSpans, customValues };
}

function _countSpans(spans: HistogramSpan[]): number {
  let n = 0;
  for (const s of spans) n += s.length;
  return n;
}

/** Go's answer for a stale sample: only the sum (the stale marker) is set. */
/** A decoded sample: the chunk's layout with this sample's counts (integers or float bits). */
function _sample(
  t: bigint,
  counterResetHint: CounterResetHintValue,
  layout: HistogramLayout,
  zeroCount: bigint,
  count: bigint,
  sum: bigint,
  positiveBuckets: bigint[],
  negativeBuckets: bigint[],
): HistogramSample & FloatHistogramSample {
  return {
    t,
    counterResetHint,
    schema: layout.schema,
    zeroThreshold: layout.zeroThreshold,
    zeroCount,
    count,
    sum,
    positiveSpans: layout.positiveSpans,
    negativeSpans: layout.negativeSpans,
    positiveBuckets,
    negativeBuckets,
    customValues: layout.customValues,
  };
}

function _staleSample(t: bigint): HistogramSample & FloatHistogramSample {
  return {
    t,
    counterResetHint: CounterResetHint.unknown,
    schema: 0,
    zeroThreshold: 0n,
    zeroCount: 0n,
    count: 0n,
    sum: STALE_NAN_BITS,
    positiveSpans: [],
    negativeSpans: [],
    positiveBuckets: [],
    negativeBuckets: [],
    customValues: [],
  };
}

/** Decodes every sample of an integer histogram chunk (encoding 2). */
export function decodeHistogram(data: Uint8Array): HistogramSample[] {
  return _decodeInt(data, histogramNumSamples(data), data[2] >>> 6, null);
}

/**
 * Decodes every sample of an integer histogram chunk with start timestamps (encoding 5,
 * `histogram_st.go`, Prometheus 3.14+): the samples as {@link decodeHistogram} gives them, and
 * each one's start timestamp.
 */
export function decodeHistogramST(data: Uint8Array): HistogramSTSamples<HistogramSample> {
  const st: bigint[] = [];
  const samples = _decodeInt(data, histogramSTNumSamples(data), data[0] >>> 6, st);
  return { samples, st };
}

function _decodeInt(
  data: Uint8Array,
  n: number,
  header: number,
  sts: bigint[] | null,
): HistogramSample[] {
  const out: HistogramSample[] = [];
  if (n === 0) return out;
  const r = new BitReader(data, _HEADER_SIZE * 8);
  const st = sts && new STReader(data[2]);
  const layout = readHistogramLayout(r);
  const np = _countSpans(layout.positiveSpans);
  const nn = _countSpans(layout.negativeSpans);
  const pBuckets: bigint[] = new Array(np).fill(0n);
  const nBuckets: bigint[] = new Array(nn).fill(0n);
  const pDelta: bigint[] = new Array(np).fill(0n);
  const nDelta: bigint[] = new Array(nn).fill(0n);
  const sum = new XorValueReader();

  let t = readVarbitInt(r);
  let cnt = readVarbitUint(r);
  let zCnt = readVarbitUint(r);
  r.readHiLo(64);
  sum.set(r.hi, r.lo);
  for (let i = 0; i < np; i++) pBuckets[i] = readVarbitInt(r);
  for (let i = 0; i < nn; i++) nBuckets[i] = readVarbitInt(r);
  if (st) sts!.push(st.read(r, 0, t, 0n));
  let tDelta = 0n;
  let cntDelta = 0n;
  let zCntDelta = 0n;

  for (let i = 0;;) {
    const sumBits = sum.bits;
    out.push(
      sumBits === STALE_NAN_BITS ? _staleSample(t) : _sample(
        t,
        _hint(header, i),
        layout,
        zCnt,
        cnt,
        sumBits,
        pBuckets.slice(),
        nBuckets.slice(),
      ),
    );
    if (++i === n) break;

    // The second sample is encoded as a delta of delta too (the previous deltas are zero).
    const prevT = t;
    tDelta = BigInt.asIntN(64, tDelta + readVarbitInt(r));
    t = BigInt.asIntN(64, t + tDelta);
    cntDelta = BigInt.asIntN(64, cntDelta + readVarbitInt(r));
    cnt = BigInt.asUintN(64, cnt + cntDelta);
    zCntDelta = BigInt.asIntN(64, zCntDelta + readVarbitInt(r));
    zCnt = BigInt.asUintN(64, zCnt + zCntDelta);
    sum.read(r);
    // A stale sample has no buckets (its ST bits follow the sum).
    if (sum.hi !== 0x7ff00000 || sum.lo !== 2) {
      for (let b = 0; b < np; b++) {
        pDelta[b] = BigInt.asIntN(64, pDelta[b] + readVarbitInt(r));
        pBuckets[b] = BigInt.asIntN(64, pBuckets[b] + pDelta[b]);
      }
      for (let b = 0; b < nn; b++) {
        nDelta[b] = BigInt.asIntN(64, nDelta[b] + readVarbitInt(r));
        nBuckets[b] = BigInt.asIntN(64, nBuckets[b] + nDelta[b]);
      }
    }
    if (st) sts!.push(st.read(r, i, t, prevT));
  }
  return out;
}

/** Decodes every sample of a float histogram chunk (encoding 3). */
export function decodeFloatHistogram(data: Uint8Array): FloatHistogramSample[] {
  return _decodeFloat(data, histogramNumSamples(data), data[2] >>> 6, null);
}

/**
 * Decodes every sample of a float histogram chunk with start timestamps (encoding 6,
 * `float_histogram_st.go`, Prometheus 3.14+); see {@link decodeHistogramST}.
 */
export function decodeFloatHistogramST(
  data: Uint8Array,
): HistogramSTSamples<FloatHistogramSample> {
  const st: bigint[] = [];
  const samples = _decodeFloat(data, histogramSTNumSamples(data), data[0] >>> 6, st);
  return { samples, st };
}

function _decodeFloat(
  data: Uint8Array,
  n: number,
  header: number,
  sts: bigint[] | null,
): FloatHistogramSample[] {
  const out: FloatHistogramSample[] = [];
  if (n === 0) return out;
  const r = new BitReader(data, _HEADER_SIZE * 8);
  const st = sts && new STReader(data[2]);
  const layout = readHistogramLayout(r);
  const np = _countSpans(layout.positiveSpans);
  const nn = _countSpans(layout.negativeSpans);
  // Every field has its own XOR window.
  const cnt = new XorValueReader();
  const zCnt = new XorValueReader();
  const sum = new XorValueReader();
  const pBuckets = Array.from({ length: np }, () => new XorValueReader());
  const nBuckets = Array.from({ length: nn }, () => new XorValueReader());

  let t = readVarbitInt(r);
  for (const v of [cnt, zCnt, sum, ...pBuckets, ...nBuckets]) {
    r.readHiLo(64);
    v.set(r.hi, r.lo);
  }
  if (st) sts!.push(st.read(r, 0, t, 0n));
  let tDelta = 0n;

  for (let i = 0;;) {
    const sumBits = sum.bits;
    out.push(
      sumBits === STALE_NAN_BITS ? _staleSample(t) : _sample(
        t,
        _hint(header, i),
        layout,
        zCnt.bits,
        cnt.bits,
        sumBits,
        pBuckets.map((b) => joinBig(b.hi, b.lo)),
        nBuckets.map((b) => joinBig(b.hi, b.lo)),
      ),
    );
    if (++i === n) break;

    const prevT = t;
    tDelta = BigInt.asIntN(64, tDelta + readVarbitInt(r));
    t = BigInt.asIntN(64, t + tDelta);
    cnt.read(r);
    zCnt.read(r);
    sum.read(r);
    // A stale sample has no buckets (its ST bits follow the sum).
    if (sum.hi !== 0x7ff00000 || sum.lo !== 2) {
      for (const b of pBuckets) b.read(r);
      for (const b of nBuckets) b.read(r);
    }
    if (st) sts!.push(st.read(r, i, t, prevT));
  }
  return out;
}
