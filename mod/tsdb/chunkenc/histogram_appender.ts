/**
 * Encoders of the native histogram chunks, bit for bit as Prometheus writes them: integer
 * histograms (encoding 2, `HistogramAppender` in `tsdb/chunkenc/histogram.go`) and float
 * histograms (encoding 3, `FloatHistogramAppender` in `float_histogram.go`), together with the
 * chunk-cutting rules of Prometheus' head (`tsdb/head_append.go`).
 *
 * Three levels:
 * - {@link HistogramAppender} / {@link FloatHistogramAppender} build one chunk. `append` refuses
 *   samples the chunk cannot hold faithfully (see `canAppend`); feeding a decoded chunk's samples
 *   to a fresh appender with that chunk's counter-reset header gives back the same bytes.
 * - {@link HistogramChunkEncoder} / {@link FloatHistogramChunkEncoder} turn a time-ordered stream
 *   of one series' samples into chunks, one finished chunk at a time (bounded memory).
 * - {@link encodeHistogramChunks} / {@link encodeFloatHistogramChunks} do that for an array.
 *
 * {@link HistogramSTAppender} / {@link FloatHistogramSTAppender} build the chunks with start
 * timestamps of Prometheus 3.14+ (encodings 5 and 6): the same bit stream with each sample's ST bits
 * after it (`st.ts`). They build one chunk and leave cutting to the caller. `appendDecoded` copies a
 * decoded chunk's samples as they are (what `convert.ts` needs to move chunks between encodings).
 *
 * The decisions when to start a new chunk and which counter-reset header it gets follow Go's
 * `AppendHistogram`/`AppendFloatHistogram` (counter reset detection of `appendable`, gauge handling
 * of `appendableGauge`, explicit hints, stale markers). Where Prometheus would rewrite the open
 * chunk to add buckets ("recoding", forward inserts) or pad the new sample with empty buckets
 * (backward inserts), the default is to cut a new chunk instead, so that decoding gives back
 * exactly the samples that went in; `recode: true` does what Prometheus does. The bucket merging
 * follows Prometheus 3.6+, which fixed wrong bucket indices of 3.5 when several empty buckets
 * vanish at once while new ones appear (prometheus/prometheus#16893).
 *
 * Stale markers (sum = the stale NaN) are stored as Prometheus stores them: only the timestamp and
 * the sum survive, and after a stale marker a chunk only takes further stale markers.
 *
 * @module
 */

import { keepHiddenClass } from "../_hidden_class.ts";
import { BitWriter, splitBig } from "./bstream.ts";
import {
  CounterResetHeader,
  CounterResetHint,
  decodeFloatHistogram,
  decodeHistogram,
  type FloatHistogramSample,
  type HistogramBase,
  type HistogramSample,
  type HistogramSpan,
} from "./histogram.ts";
import { STWriter } from "./st.ts";
import { putVarbitInt, putVarbitIntNumber, putVarbitUint } from "./varbit.ts";
import { STALE_NAN_BITS, XorValueWriter } from "./xor.ts";

/** Prometheus' size target for histogram chunks (`chunkenc.TargetBytesPerHistogramChunk`). */
export const TARGET_BYTES_PER_HISTOGRAM_CHUNK = 1024;

/** Fewest samples a histogram chunk gets before a size cut (`MinSamplesPerHistogramChunk`). */
export const MIN_SAMPLES_PER_HISTOGRAM_CHUNK = 10;

/** Most samples one histogram chunk can hold (the count is a BE16). */
export const MAX_HISTOGRAM_SAMPLES = 0xffff;

/** A chunk ready for a block: encoding byte (2 or 3), data, closed time range `[mint, maxt]`. */
export interface EncodedChunk {
  /** `Encoding.histogram` (2) or `Encoding.floatHistogram` (3). */
  encoding: number;
  /** Chunk data: header (count, counter-reset flags) and bit stream. */
  data: Uint8Array;
  /** First sample's timestamp. */
  mint: bigint;
  /** Last sample's timestamp. */
  maxt: bigint;
}

/** Options of the chunk encoders. */
export interface HistogramChunkOptions {
  /**
   * Handle new and vanished buckets as Prometheus' head does: rewrite the open chunk with the new
   * buckets added (empty in the earlier samples) and pad samples that lack empty buckets of the
   * chunk, instead of cutting a new chunk. The decoded samples then carry those extra empty
   * buckets. Default false: a new chunk (header "not reset") whenever the layout changes.
   */
  recode?: boolean;
  /**
   * Cut chunks exactly as Prometheus' head does for this chunk range in ms (the block range,
   * 7 200 000 by default): never across a range boundary, end times predicted from the first
   * quarter of the byte target, at least {@link MIN_SAMPLES_PER_HISTOGRAM_CHUNK} samples unless
   * the range ends. Without it, a chunk is cut once it holds at least
   * {@link TARGET_BYTES_PER_HISTOGRAM_CHUNK} bytes and {@link MIN_SAMPLES_PER_HISTOGRAM_CHUNK}
   * samples (Prometheus' target without the time prediction).
   */
  chunkRange?: bigint;
}

const _HEADER_SIZE = 3;
const _CUSTOM_BUCKETS_SCHEMA = -53;
const _f64 = new Float64Array(1);
const _u64 = new BigUint64Array(_f64.buffer);

/** The float64 of raw bits (reading is safe for NaNs: only comparisons use the result). */
function _num(bits: bigint): number {
  _u64[0] = bits;
  return _f64[0];
}

function _isStale(bits: bigint): boolean {
  return bits === STALE_NAN_BITS;
}

function _countSpans(spans: readonly HistogramSpan[]): number {
  let n = 0;
  for (const s of spans) n += s.length;
  return n;
}

function _copySpans(spans: readonly HistogramSpan[]): HistogramSpan[] {
  return spans.map((s) => ({ offset: s.offset, length: s.length }));
}

function _spansEqual(a: readonly HistogramSpan[], b: readonly HistogramSpan[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i].offset !== b[i].offset || a[i].length !== b[i].length) return false;
  }
  return true;
}

/** Go's `FloatBucketsMatch`: custom bounds compared bit for bit. */
function _boundsEqual(a: readonly bigint[], b: readonly bigint[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// --- layout -------------------------------------------------------------------------------------

/**
 * Go's `putZeroThreshold`: 0 as one zero byte, a power of two 2^k with -243 <= k <= 10 as the
 * byte k+244, anything else as 255 and the 64 raw bits.
 */
function _putZeroThreshold(w: BitWriter, bits: bigint): void {
  if (_num(bits) === 0) {
    w.writeByte(0);
    return;
  }
  const exp = Number((bits >> 52n) & 0x7ffn);
  const k = exp - 1023;
  // A positive normal number without mantissa bits is a power of two (Go: Frexp gives 0.5).
  if ((bits & 0xfffffffffffffn) === 0n && bits >> 63n === 0n && exp !== 0 && exp !== 0x7ff) {
    if (k >= -243 && k <= 10) {
      w.writeByte(k + 244);
      return;
    }
  }
  w.writeByte(255);
  w.writeBigBits(bits, 64);
}

/**
 * Go's `putCustomBound`: bounds that are whole multiples of 0.001 between 0 and 33554.430 as the
 * unsigned varbit of bound*1000+1, others as a zero bit and the 64 raw bits.
 */
function _putCustomBound(w: BitWriter, bits: bigint): void {
  const f = _num(bits);
  const tf = f * 1000;
  // Go's isWholeWhenMultiplied; math.Round equals Math.round for the non-negative values here.
  if (tf < 0 || tf > 33554430 || Math.round(tf) / 1000 !== f) {
    w.writeBit(0);
    w.writeBigBits(bits, 64);
    return;
  }
  putVarbitUint(w, BigInt(Math.round(tf)) + 1n);
}

function _putSpans(w: BitWriter, spans: readonly HistogramSpan[]): void {
  putVarbitUint(w, BigInt(spans.length));
  for (const s of spans) {
    putVarbitUint(w, BigInt(s.length));
    putVarbitInt(w, BigInt(s.offset));
  }
}

function _writeLayout(w: BitWriter, h: HistogramBase): void {
  _putZeroThreshold(w, h.zeroThreshold);
  putVarbitInt(w, BigInt(h.schema));
  _putSpans(w, h.positiveSpans);
  _putSpans(w, h.negativeSpans);
  if (h.schema === _CUSTOM_BUCKETS_SCHEMA) {
    putVarbitUint(w, BigInt(h.customValues.length));
    for (const b of h.customValues) _putCustomBound(w, b);
  }
}

// --- bucket layout merging (histogram_meta.go) ---------------------------------------------------

/** Go's `Insert`: `num` new buckets before the `pos`-th old one, the first at index `bucketIdx`. */
interface _Insert {
  pos: number;
  num: number;
  bucketIdx: number;
}

/** Go's `bucketIterator`: the absolute bucket indices covered by spans, in order. */
class _BucketIterator {
  #spans: readonly HistogramSpan[];
  #span = 0;
  #bucket = -1;
  #idx = -1;

  constructor(spans: readonly HistogramSpan[]) {
    this.#spans = spans;
    if (spans.length > 0) this.#idx += spans[0].offset;
  }

  /** The next bucket index, or undefined at the end. */
  next(): number | undefined {
    const spans = this.#spans;
    if (this.#span >= spans.length) return undefined;
    if (this.#bucket < spans[this.#span].length - 1) {
      this.#bucket++;
      return ++this.#idx;
    }
    while (this.#span < spans.length - 1) {
      this.#span++;
      this.#idx += spans[this.#span].offset + 1;
      this.#bucket = 0;
      if (spans[this.#span].length === 0) {
        this.#idx--;
        continue;
      }
      return this.#idx;
    }
    return undefined;
  }
}

/** Result of {@link _expandSpansAndBuckets}. */
interface _Expansion {
  /** Inserts into the chunk's buckets for buckets new in the sample. */
  readonly forward: readonly _Insert[];
  /** Inserts into the sample's buckets for empty chunk buckets the sample lacks. */
  readonly backward: readonly _Insert[];
}

/** The expansion of a sample with the chunk's spans: nothing to insert (shared, never changed). */
const _NO_INSERTS: _Expansion = Object.freeze({
  forward: Object.freeze([]),
  backward: Object.freeze([]),
});

/**
 * Go's `expandIntSpansAndBuckets`/`expandFloatSpansAndBuckets` (3.6+): how to merge the chunk's
 * layout `a` (absolute counts `aAbs`) with the sample's `b` (`bAbs`), or undefined for a counter
 * reset (a bucket shrank, or a bucket in use vanished).
 */
function _expandSpansAndBuckets<T extends number | bigint>(
  a: readonly HistogramSpan[],
  b: readonly HistogramSpan[],
  aAbs: readonly T[],
  bAbs: readonly T[],
  isZero: (x: T) => boolean,
): _Expansion | undefined {
  const ai = new _BucketIterator(a);
  const bi = new _BucketIterator(b);
  const forward: _Insert[] = [];
  const backward: _Insert[] = [];
  const aInter: _Insert = { pos: 0, num: 0, bucketIdx: 0 };
  const bInter: _Insert = { pos: 0, num: 0, bucketIdx: 0 };
  let aIdx = ai.next();
  let bIdx = bi.next();
  let aPos = 0;
  let bPos = 0;

  // A streak of inserts continues only over consecutive bucket indices.
  const addInsert = (list: _Insert[], ins: _Insert, otherIdx: number) => {
    if (ins.num === 0) {
      ins.bucketIdx = otherIdx;
    } else if (ins.bucketIdx + ins.num !== otherIdx) {
      list.push({ ...ins });
      ins.num = 0;
      ins.bucketIdx = otherIdx;
    }
    ins.num++;
  };
  const advanceA = () => {
    if (aInter.num > 0) {
      forward.push({ ...aInter });
      aInter.num = 0;
    }
    aIdx = ai.next();
    aInter.pos++;
    aPos++;
  };
  const advanceB = () => {
    if (bInter.num > 0) {
      backward.push({ ...bInter });
      bInter.num = 0;
    }
    bIdx = bi.next();
    bInter.pos++;
    bPos++;
  };

  for (;;) {
    if (aIdx !== undefined && bIdx !== undefined) {
      if (aIdx === bIdx) {
        if (aAbs[aPos] > bAbs[bPos]) return undefined;
        advanceA();
        advanceB();
      } else if (aIdx < bIdx) {
        // The sample lacks a chunk bucket: fine while that bucket is empty.
        if (!isZero(aAbs[aPos])) return undefined;
        addInsert(backward, bInter, aIdx);
        advanceA();
      } else {
        addInsert(forward, aInter, bIdx);
        advanceB();
      }
    } else if (aIdx !== undefined) {
      if (!isZero(aAbs[aPos])) return undefined;
      addInsert(backward, bInter, aIdx);
      advanceA();
    } else if (bIdx !== undefined) {
      addInsert(forward, aInter, bIdx);
      advanceB();
    } else {
      if (aInter.num > 0) forward.push({ ...aInter });
      if (bInter.num > 0) backward.push({ ...bInter });
      return { forward, backward };
    }
  }
}

/** Result of {@link _expandSpansBothWays}. */
interface _GaugeExpansion extends _Expansion {
  /** Spans covering the buckets of both. */
  merged: HistogramSpan[];
}

/** Go's `expandSpansBothWays` (gauge histograms: any bucket may come and go). */
function _expandSpansBothWays(
  a: readonly HistogramSpan[],
  b: readonly HistogramSpan[],
): _GaugeExpansion {
  const ai = new _BucketIterator(a);
  const bi = new _BucketIterator(b);
  const forward: _Insert[] = [];
  const backward: _Insert[] = [];
  const merged: HistogramSpan[] = [];
  let lastBucket = 0;
  const addBucket = (bucket: number) => {
    let offset = bucket - lastBucket - 1;
    if (offset === 0 && merged.length > 0) {
      merged[merged.length - 1].length++;
    } else {
      if (merged.length === 0) offset++;
      merged.push({ offset, length: 1 });
    }
    lastBucket = bucket;
  };
  const fInter: _Insert = { pos: 0, num: 0, bucketIdx: 0 };
  const bInter: _Insert = { pos: 0, num: 0, bucketIdx: 0 };
  let av = ai.next();
  let bv = bi.next();
  for (;;) {
    if (av !== undefined && bv !== undefined) {
      if (av === bv) {
        if (fInter.num > 0) {
          forward.push({ ...fInter });
          fInter.num = 0;
        }
        if (bInter.num > 0) {
          backward.push({ ...bInter });
          bInter.num = 0;
        }
        addBucket(av);
        av = ai.next();
        bv = bi.next();
        fInter.pos++;
        bInter.pos++;
      } else if (av < bv) {
        bInter.num++;
        if (fInter.num > 0) {
          forward.push({ ...fInter });
          fInter.num = 0;
        }
        addBucket(av);
        fInter.pos++;
        av = ai.next();
      } else {
        fInter.num++;
        if (bInter.num > 0) {
          backward.push({ ...bInter });
          bInter.num = 0;
        }
        addBucket(bv);
        bInter.pos++;
        bv = bi.next();
      }
    } else if (av !== undefined) {
      bInter.num++;
      addBucket(av);
      av = ai.next();
    } else if (bv !== undefined) {
      fInter.num++;
      addBucket(bv);
      bv = bi.next();
    } else {
      if (fInter.num > 0) forward.push({ ...fInter });
      if (bInter.num > 0) backward.push({ ...bInter });
      return { forward, backward, merged };
    }
  }
}

/**
 * Go's `insert` (3.6+): `input` with empty buckets inserted. Integer buckets are deltas, so an
 * inserted run starts with the negated running count and the next old bucket gets it back.
 */
function _insertIntBuckets(input: readonly bigint[], inserts: readonly _Insert[]): bigint[] {
  const out: bigint[] = [];
  let v = 0n;
  let ii = 0;
  for (let i = 0; i < input.length; i++) {
    const d = input[i];
    if (ii >= inserts.length || i !== inserts[ii].pos) {
      out.push(d);
      v = BigInt.asIntN(64, v + d);
      continue;
    }
    let first = true;
    while (ii < inserts.length && i === inserts[ii].pos) {
      out.push(first ? BigInt.asIntN(64, -v) : 0n);
      first = false;
      for (let x = 1; x < inserts[ii].num; x++) out.push(0n);
      ii++;
    }
    out.push(BigInt.asIntN(64, d + v));
    v = BigInt.asIntN(64, v + d);
  }
  for (; ii < inserts.length; ii++) {
    out.push(BigInt.asIntN(64, -v));
    for (let x = 1; x < inserts[ii].num; x++) out.push(0n);
    v = 0n;
  }
  return out;
}

/** Go's `insert` for absolute (float) buckets: inserted buckets are 0. */
function _insertFloatBuckets(input: readonly bigint[], inserts: readonly _Insert[]): bigint[] {
  const out: bigint[] = [];
  let ii = 0;
  for (let i = 0; i < input.length; i++) {
    while (ii < inserts.length && i === inserts[ii].pos) {
      for (let x = 0; x < inserts[ii].num; x++) out.push(0n);
      ii++;
    }
    out.push(input[i]);
  }
  for (; ii < inserts.length; ii++) for (let x = 0; x < inserts[ii].num; x++) out.push(0n);
  return out;
}

/** Go's `adjustForInserts`: spans that also cover the buckets of the inserts. */
function _adjustForInserts(
  spans: readonly HistogramSpan[],
  inserts: readonly _Insert[],
): HistogramSpan[] {
  if (inserts.length === 0) return _copySpans(spans);
  const merged: HistogramSpan[] = [];
  let lastBucket = 0;
  const addBucket = (bucket: number) => {
    let offset = bucket - lastBucket - 1;
    if (offset === 0 && merged.length > 0) {
      merged[merged.length - 1].length++;
    } else {
      if (merged.length === 0) offset++;
      merged.push({ offset, length: 1 });
    }
    lastBucket = bucket;
  };
  let i = 0;
  let insertIdx = inserts[0].bucketIdx;
  let insertNum = inserts[0].num;
  const consume = () => {
    insertNum--;
    if (insertNum === 0) {
      i++;
      if (i < inserts.length) {
        insertIdx = inserts[i].bucketIdx;
        insertNum = inserts[i].num;
      }
    } else {
      insertIdx++;
    }
  };
  const it = new _BucketIterator(spans);
  let bucket = it.next();
  while (bucket !== undefined) {
    if (i < inserts.length && insertIdx < bucket) {
      addBucket(insertIdx);
      consume();
    } else {
      addBucket(bucket);
      bucket = it.next();
    }
  }
  while (i < inserts.length) {
    addBucket(insertIdx);
    consume();
  }
  return merged;
}

// --- appenders ----------------------------------------------------------------------------------

/** Why Go's `appendable` refused a sample, or "ok". */
type _Verdict =
  | "ok" // appendable (possibly with inserts)
  | "gaugeChunk" // a non-gauge sample for a gauge chunk
  | "hintReset" // the sample says "counter reset"
  | "staleLast" // the chunk ends with a stale marker
  | "layout" // schema or zero threshold changed
  | "reset"; // a counter reset was detected

/** Go's `appendable` result. */
interface _Appendability {
  verdict: _Verdict;
  /** Inserts for the positive buckets (verdict "ok" only). */
  positive?: _Expansion;
  /** Inserts for the negative buckets (verdict "ok" only). */
  negative?: _Expansion;
}

/** What {@link _AppenderBase._appendAsPrometheus} did. */
interface _AppendOutcome<A> {
  /** The appender to continue with (a new one after a cut or a recode). */
  app: A;
  /** A new chunk was started; the receiver's chunk is complete. */
  cut: boolean;
  /** The receiver's chunk was rewritten into `app` (same first sample). */
  recoded: boolean;
}

/** What both sample types have: counts and buckets as bigints (values or float64 bits). */
interface _Sample extends HistogramBase {
  count: bigint;
  zeroCount: bigint;
  positiveBuckets: bigint[];
  negativeBuckets: bigint[];
}

/** Shared state and logic of both histogram appenders. */
abstract class _AppenderBase<H extends _Sample, A extends _AppenderBase<H, A>> {
  /** Chunk bytes (the three header bytes are filled in by `bytes()`). */
  protected _w: BitWriter = new BitWriter(_HEADER_SIZE);
  protected _n = 0;
  protected _header: number;
  // The layout, fixed by the first sample.
  protected _schema = 0;
  protected _zeroThreshold = 0n;
  protected _pSpans: HistogramSpan[] = [];
  protected _nSpans: HistogramSpan[] = [];
  protected _customValues: bigint[] = [];
  protected _t = 0n;
  protected _lastSum = 0n;

  /** A new, empty chunk with the given counter-reset header (default unknown). */
  constructor(header: number = CounterResetHeader.unknown) {
    this._header = header & 0b11;
  }

  /** The encoding byte of the chunks this appender builds. */
  abstract get encoding(): number;

  /** Samples appended so far. */
  get numSamples(): number {
    return this._n;
  }

  /** Size of the chunk data so far, in bytes (header included). */
  get byteLength(): number {
    return this._w.byteLength;
  }

  /** The counter-reset header (see {@link CounterResetHeader}). */
  get header(): number {
    return this._header;
  }

  set header(value: number) {
    this._header = value & 0b11;
  }

  /** The chunk data (count, counter-reset header, bit stream), as a copy. */
  bytes(): Uint8Array {
    const w = this._w;
    w.setByte(0, this._n >>> 8);
    w.setByte(1, this._n & 0xff);
    w.setByte(2, this._header << 6);
    return w.bytes().slice();
  }

  /**
   * Whether `h` can be appended without starting a new chunk, keeping every field of it when
   * decoded: room left; a stale marker always fits, but after one only stale markers do; a gauge
   * chunk takes gauge samples, other chunks non-gauge samples without a "counter reset" hint and
   * without a counter reset (a smaller count or zero count, a bucket that shrank or vanished,
   * other custom bounds); and the layout (schema, zero threshold, spans, custom bounds) is the
   * chunk's. An empty chunk takes any sample. Throws a RangeError for a malformed sample (bucket
   * counts that do not match the spans, custom bounds without schema -53).
   */
  canAppend(h: H): boolean {
    return this._whyNot(h) === undefined;
  }

  /**
   * Appends `h` (its `t` must be after the last sample's). Throws a RangeError when
   * {@link canAppend} says no (the message says why) or when the sample is malformed.
   */
  append(h: H): void {
    const why = this._whyNot(h);
    if (why !== undefined) throw new RangeError(`cannot append histogram at ${h.t}: ${why}`);
    this._appendRaw(h);
  }

  /** Why `h` cannot be appended, or undefined. */
  protected _whyNot(h: H): string | undefined {
    const stale = _isStale(h.sum);
    if (!stale) this._validate(h);
    if (this._n === 0) return undefined;
    if (this._n >= this._maxSamples) return "chunk is full";
    if (h.t <= this._t) return `timestamp not after ${this._t}`;
    if (stale) return undefined;
    if (_isStale(this._lastSum)) return "chunk ends with a stale marker";
    if (this._header === CounterResetHeader.gauge) {
      if (h.counterResetHint !== CounterResetHint.gauge) return "non-gauge sample in gauge chunk";
    } else {
      if (h.counterResetHint === CounterResetHint.gauge) return "gauge sample in counter chunk";
      if (h.counterResetHint === CounterResetHint.reset) return "sample hints a counter reset";
      const a = this._appendable(h);
      if (a.verdict !== "ok") return `not appendable (${a.verdict})`;
    }
    if (!this._sameLayout(h)) return "layout differs";
    return undefined;
  }

  /**
   * Appends a sample decoded from a chunk of this kind, as it is: none of {@link canAppend}'s
   * counter-reset and gauge checks (a chunk's own samples are kept as its writer wrote them).
   * Throws a RangeError when the chunk is full, the timestamp does not ascend, the layout is not
   * the chunk's or the sample is malformed.
   */
  appendDecoded(h: H): void {
    const stale = _isStale(h.sum);
    if (!stale) this._validate(h);
    if (this._n > 0) {
      if (this._n >= this._maxSamples) throw new RangeError("histogram chunk is full");
      if (h.t <= this._t) throw new RangeError(`histogram at ${h.t} not after ${this._t}`);
      if (!stale && !this._sameLayout(h)) {
        throw new RangeError(`histogram at ${h.t}: layout differs from the chunk's`);
      }
    }
    this._appendRaw(h);
  }

  /** Most samples a chunk of this kind holds. */
  protected get _maxSamples(): number {
    return MAX_HISTOGRAM_SAMPLES;
  }

  /** Throws a RangeError when the bucket counts do not match the spans. */
  protected _validate(h: H): void {
    if (h.positiveBuckets.length !== _countSpans(h.positiveSpans)) {
      throw new RangeError(
        `histogram at ${h.t}: ${h.positiveBuckets.length} positive buckets for spans of ` +
          `${_countSpans(h.positiveSpans)}`,
      );
    }
    if (h.negativeBuckets.length !== _countSpans(h.negativeSpans)) {
      throw new RangeError(
        `histogram at ${h.t}: ${h.negativeBuckets.length} negative buckets for spans of ` +
          `${_countSpans(h.negativeSpans)}`,
      );
    }
    if (h.schema !== _CUSTOM_BUCKETS_SCHEMA && h.customValues.length > 0) {
      throw new RangeError(`histogram at ${h.t}: custom bounds with schema ${h.schema}`);
    }
  }

  /** Same schema, zero threshold (as floats, like Go), spans and custom bounds as the chunk. */
  protected _sameLayout(h: HistogramBase): boolean {
    return h.schema === this._schema &&
      _num(h.zeroThreshold) === _num(this._zeroThreshold) &&
      _spansEqual(h.positiveSpans, this._pSpans) &&
      _spansEqual(h.negativeSpans, this._nSpans) &&
      (h.schema !== _CUSTOM_BUCKETS_SCHEMA || _boundsEqual(h.customValues, this._customValues));
  }

  /** Records the layout of the first sample and writes it. */
  protected _startLayout(h: HistogramBase): void {
    _writeLayout(this._w, h);
    this._schema = h.schema;
    this._zeroThreshold = h.zeroThreshold;
    this._pSpans = _copySpans(h.positiveSpans);
    this._nSpans = _copySpans(h.negativeSpans);
    this._customValues = h.schema === _CUSTOM_BUCKETS_SCHEMA ? h.customValues.slice() : [];
  }

  /** Go's `appendable`, the parts shared by both appenders. */
  protected _appendable(h: H): _Appendability {
    if (this._n > 0 && this._header === CounterResetHeader.gauge) return { verdict: "gaugeChunk" };
    if (h.counterResetHint === CounterResetHint.reset) return { verdict: "hintReset" };
    if (_isStale(h.sum)) return { verdict: "ok" };
    if (_isStale(this._lastSum)) return { verdict: "staleLast" };
    if (this._countDecreased(h)) return { verdict: "reset" };
    if (h.schema !== this._schema || _num(h.zeroThreshold) !== _num(this._zeroThreshold)) {
      return { verdict: "layout" };
    }
    if (
      h.schema === _CUSTOM_BUCKETS_SCHEMA && !_boundsEqual(h.customValues, this._customValues)
    ) {
      return { verdict: "reset" };
    }
    if (this._zeroCountDecreased(h)) return { verdict: "reset" };
    const positive = this._expand(this._pSpans, h.positiveSpans, true, h);
    if (!positive) return { verdict: "reset" };
    const negative = this._expand(this._nSpans, h.negativeSpans, false, h);
    if (!negative) return { verdict: "reset" };
    return { verdict: "ok", positive, negative };
  }

  /**
   * Go's `AppendHistogram`/`AppendFloatHistogram` with appendOnly=false: appends `h`, to this
   * chunk, to a recoded copy of it (`recode`), or to a new chunk with the header Prometheus gives
   * it. `prev` is the previous chunk's appender when this chunk was just cut by the caller.
   */
  _appendAsPrometheus(prev: A | undefined, h: H, recode: boolean): _AppendOutcome<A> {
    const self = this as unknown as A;
    const stale = _isStale(h.sum);
    if (!stale) this._validate(h);
    if (this._n === 0) {
      this._appendRaw(h);
      if (h.counterResetHint === CounterResetHint.gauge) {
        this._header = CounterResetHeader.gauge;
      } else if (h.counterResetHint === CounterResetHint.reset) {
        this._header = CounterResetHeader.reset;
      } else if (prev !== undefined && prev._n > 0) {
        this._header = this._headerAfterPrev(prev._appendable(h).verdict);
      }
      return { app: self, cut: false, recoded: false };
    }
    if (this._n >= MAX_HISTOGRAM_SAMPLES) throw new RangeError("histogram chunk is full");
    if (h.t <= this._t) throw new RangeError(`histogram at ${h.t} not after ${this._t}`);
    const cut = (header: number): _AppendOutcome<A> => {
      const app = this._new(header);
      app._appendRaw(h);
      return { app, cut: true, recoded: false };
    };

    let hh = h;
    let positive: _Expansion;
    let negative: _Expansion;
    let gaugeSpans: [HistogramSpan[], HistogramSpan[]] | undefined;
    if (h.counterResetHint !== CounterResetHint.gauge) {
      const a = this._appendable(h);
      if (a.verdict !== "ok") return cut(this._headerOnCut(a.verdict));
      if (stale) {
        this._appendRaw(h);
        return { app: self, cut: false, recoded: false };
      }
      positive = a.positive!;
      negative = a.negative!;
    } else {
      // Go's appendableGauge.
      if (this._header !== CounterResetHeader.gauge) return cut(CounterResetHeader.gauge);
      if (stale) {
        this._appendRaw(h);
        return { app: self, cut: false, recoded: false };
      }
      if (
        _isStale(this._lastSum) || h.schema !== this._schema ||
        _num(h.zeroThreshold) !== _num(this._zeroThreshold) ||
        (h.schema === _CUSTOM_BUCKETS_SCHEMA && !_boundsEqual(h.customValues, this._customValues))
      ) {
        return cut(CounterResetHeader.gauge);
      }
      const p = _expandSpansBothWays(this._pSpans, h.positiveSpans);
      const n = _expandSpansBothWays(this._nSpans, h.negativeSpans);
      positive = p;
      negative = n;
      gaugeSpans = [p.merged, n.merged];
    }

    const forward = positive.forward.length > 0 || negative.forward.length > 0;
    const backward = positive.backward.length > 0 || negative.backward.length > 0;
    if (!recode) {
      if (forward || backward || !this._sameLayout(h)) {
        return cut(gaugeSpans ? CounterResetHeader.gauge : CounterResetHeader.notReset);
      }
      this._appendRaw(h);
      return { app: self, cut: false, recoded: false };
    }

    if (backward) {
      // Pad the sample with the chunk's empty buckets it lacks.
      let pSpans: HistogramSpan[];
      let nSpans: HistogramSpan[];
      if (gaugeSpans) {
        [pSpans, nSpans] = gaugeSpans;
      } else if (!forward) {
        pSpans = _copySpans(this._pSpans);
        nSpans = _copySpans(this._nSpans);
      } else {
        pSpans = _adjustForInserts(h.positiveSpans, positive.backward);
        nSpans = _adjustForInserts(h.negativeSpans, negative.backward);
      }
      hh = this._padded(h, pSpans, nSpans, positive.backward, negative.backward);
    }
    if (forward) {
      const app = this._recoded(
        positive.forward,
        negative.forward,
        hh.positiveSpans,
        hh.negativeSpans,
      );
      app._appendRaw(hh);
      return { app, cut: false, recoded: true };
    }
    this._appendRaw(hh);
    return { app: self, cut: false, recoded: false };
  }

  /** A fresh appender of the same kind. */
  protected abstract _new(header: number): A;
  /** Go's appendHistogram: writes `h`, no checks beyond its shape. */
  protected abstract _appendRaw(h: H): void;
  /** Whether h's count is below the last sample's. */
  protected abstract _countDecreased(h: H): boolean;
  /** Whether h's zero count is below the last sample's. */
  protected abstract _zeroCountDecreased(h: H): boolean;
  /** Go's expand*SpansAndBuckets for one sign. */
  protected abstract _expand(
    a: readonly HistogramSpan[],
    b: readonly HistogramSpan[],
    positive: boolean,
    h: H,
  ): _Expansion | undefined;
  /** Header of a chunk the appender cut for `verdict`. */
  protected abstract _headerOnCut(verdict: _Verdict): number;
  /** Header of a chunk cut by the caller, given the previous chunk's verdict on its sample. */
  protected abstract _headerAfterPrev(verdict: _Verdict): number;
  /** This chunk's samples, decoded. */
  protected abstract _decoded(): H[];
  /** `buckets` with empty buckets inserted (in this encoding's terms: deltas or float bits). */
  protected abstract _insertBuckets(
    buckets: readonly bigint[],
    inserts: readonly _Insert[],
  ): bigint[];

  /** `h` with new spans and the backward inserts applied to its buckets. */
  protected _padded(
    h: H,
    pSpans: HistogramSpan[],
    nSpans: HistogramSpan[],
    pInserts: readonly _Insert[],
    nInserts: readonly _Insert[],
  ): H {
    return {
      ...h,
      positiveSpans: pSpans,
      negativeSpans: nSpans,
      positiveBuckets: pInserts.length > 0
        ? this._insertBuckets(h.positiveBuckets, pInserts)
        : h.positiveBuckets,
      negativeBuckets: nInserts.length > 0
        ? this._insertBuckets(h.negativeBuckets, nInserts)
        : h.negativeBuckets,
    };
  }

  /** Go's recode: this chunk rewritten with new spans and forward inserts. */
  protected _recoded(
    pInserts: readonly _Insert[],
    nInserts: readonly _Insert[],
    pSpans: HistogramSpan[],
    nSpans: HistogramSpan[],
  ): A {
    const app = this._new(this._header);
    for (const old of this._decoded()) {
      app._appendRaw(
        _isStale(old.sum) ? old : this._padded(old, pSpans, nSpans, pInserts, nInserts),
      );
    }
    return app;
  }
}

/** Go's stale histogram: only the sum survives. */
function _staleOf<H extends _Sample>(h: H): H {
  return {
    ...h,
    schema: 0,
    zeroThreshold: 0n,
    zeroCount: 0n,
    count: 0n,
    positiveSpans: [],
    negativeSpans: [],
    positiveBuckets: [],
    negativeBuckets: [],
    customValues: [],
  };
}

function _intRunningSums(deltas: readonly bigint[]): bigint[] {
  const out: bigint[] = new Array(deltas.length);
  let acc = 0n;
  for (let i = 0; i < deltas.length; i++) {
    acc = BigInt.asIntN(64, acc + deltas[i]);
    out[i] = acc;
  }
  return out;
}

const _isZeroBig = (x: bigint) => x === 0n;
const _isZeroNum = (x: number) => x === 0;

/**
 * Builds an integer histogram chunk (encoding 2) exactly as Prometheus' `HistogramAppender` does.
 * Bucket counts are deltas as in Go ({@link HistogramSample}).
 */
export class HistogramAppender extends _AppenderBase<HistogramSample, HistogramAppender> {
  #cnt = 0n; // uint64
  #zCnt = 0n; // uint64
  #tDelta = 0n; // int64, as all deltas
  #cntDelta = 0n;
  #zCntDelta = 0n;
  #pBuckets: bigint[] = [];
  #nBuckets: bigint[] = [];
  #pDeltas: bigint[] = [];
  #nDeltas: bigint[] = [];
  #sum = new XorValueWriter();

  /** 2 (`Encoding.histogram`). */
  get encoding(): number {
    return 2;
  }

  protected _new(header: number): HistogramAppender {
    return new HistogramAppender(header);
  }

  protected _appendRaw(sample: HistogramSample): void {
    const h = _isStale(sample.sum) ? _staleOf(sample) : sample;
    const w = this._w;
    const t = BigInt.asIntN(64, h.t);
    let tDelta = 0n;
    let cntDelta = 0n;
    let zCntDelta = 0n;
    if (this._n === 0) {
      this._startLayout(h);
      this.#pBuckets = new Array(h.positiveBuckets.length).fill(0n);
      this.#nBuckets = new Array(h.negativeBuckets.length).fill(0n);
      this.#pDeltas = new Array(h.positiveBuckets.length).fill(0n);
      this.#nDeltas = new Array(h.negativeBuckets.length).fill(0n);
      putVarbitInt(w, t);
      putVarbitUint(w, h.count);
      putVarbitUint(w, h.zeroCount);
      const [hi, lo] = splitBig(h.sum);
      w.writeHiLo(hi, lo, 64);
      this.#sum.set(hi, lo);
      for (const b of h.positiveBuckets) putVarbitInt(w, b);
      for (const b of h.negativeBuckets) putVarbitInt(w, b);
    } else {
      // The second sample's single deltas are delta-of-deltas against zero.
      tDelta = BigInt.asIntN(64, t - this._t);
      cntDelta = BigInt.asIntN(64, BigInt.asIntN(64, h.count) - BigInt.asIntN(64, this.#cnt));
      zCntDelta = BigInt.asIntN(
        64,
        BigInt.asIntN(64, h.zeroCount) - BigInt.asIntN(64, this.#zCnt),
      );
      let cntDod = BigInt.asIntN(64, cntDelta - this.#cntDelta);
      let zCntDod = BigInt.asIntN(64, zCntDelta - this.#zCntDelta);
      // Go writes zero count changes for a stale marker, but still keeps the deltas.
      if (_isStale(h.sum)) cntDod = zCntDod = 0n;
      putVarbitInt(w, BigInt.asIntN(64, tDelta - this.#tDelta));
      putVarbitInt(w, cntDod);
      putVarbitInt(w, zCntDod);
      const [hi, lo] = splitBig(h.sum);
      this.#sum.write(w, hi, lo);
      _writeBucketDods(w, h.positiveBuckets, this.#pBuckets, this.#pDeltas);
      _writeBucketDods(w, h.negativeBuckets, this.#nBuckets, this.#nDeltas);
    }
    this._n++;
    this._t = t;
    this.#cnt = BigInt.asUintN(64, h.count);
    this.#zCnt = BigInt.asUintN(64, h.zeroCount);
    this.#tDelta = tDelta;
    this.#cntDelta = cntDelta;
    this.#zCntDelta = zCntDelta;
    for (let i = 0; i < h.positiveBuckets.length; i++) this.#pBuckets[i] = h.positiveBuckets[i];
    for (let i = 0; i < h.negativeBuckets.length; i++) this.#nBuckets[i] = h.negativeBuckets[i];
    this._lastSum = h.sum;
  }

  protected _countDecreased(h: HistogramSample): boolean {
    return BigInt.asUintN(64, h.count) < this.#cnt;
  }

  protected _zeroCountDecreased(h: HistogramSample): boolean {
    return BigInt.asUintN(64, h.zeroCount) < this.#zCnt;
  }

  protected _expand(
    a: readonly HistogramSpan[],
    b: readonly HistogramSpan[],
    positive: boolean,
    h: HistogramSample,
  ): _Expansion | undefined {
    const chunk = positive ? this.#pBuckets : this.#nBuckets;
    const sample = positive ? h.positiveBuckets : h.negativeBuckets;
    if (_spansEqual(a, b) && chunk.length === sample.length) {
      // The same spans, as nearly every sample has: the merge below would only compare the
      // absolute counts bucket by bucket (a shrunk one is a reset), and insert nothing.
      const shrunk = _anyCountBelow(chunk, sample);
      return shrunk ? undefined : _NO_INSERTS;
    }
    return _expandSpansAndBuckets(
      a,
      b,
      _intRunningSums(chunk),
      _intRunningSums(sample),
      _isZeroBig,
    );
  }

  protected _headerOnCut(verdict: _Verdict): number {
    return _intHeader(verdict);
  }

  protected _headerAfterPrev(verdict: _Verdict): number {
    return _intHeader(verdict);
  }

  protected _decoded(): HistogramSample[] {
    return decodeHistogram(this.bytes());
  }

  protected _insertBuckets(buckets: readonly bigint[], inserts: readonly _Insert[]): bigint[] {
    return _insertIntBuckets(buckets, inserts);
  }
}

/** Writes each bucket's delta of delta and updates the running state (Go's int64 wrap-around). */
function _writeBucketDods(
  w: BitWriter,
  buckets: readonly bigint[],
  prev: bigint[],
  prevDeltas: bigint[],
): void {
  for (let i = 0; i < buckets.length; i++) {
    const b = buckets[i];
    const p = prev[i];
    const pd = prevDeltas[i];
    if (_isSmall(b) && _isSmall(p) && _isSmall(pd)) {
      // Within ±2^51 nothing wraps and doubles are exact: the same bits with no bigint garbage
      // but the delta kept (a bucket's counts usually move by little).
      const delta = Number(b) - Number(p);
      putVarbitIntNumber(w, delta - Number(pd));
      prevDeltas[i] = BigInt(delta);
      continue;
    }
    const delta = BigInt.asIntN(64, b - p);
    putVarbitInt(w, BigInt.asIntN(64, delta - pd));
    prevDeltas[i] = delta;
  }
}

/** Bigints within ±2^51, where sums and differences of three stay exact as doubles. */
const _SMALL = 2n ** 51n;
function _isSmall(x: bigint): boolean {
  return x <= _SMALL && x >= -_SMALL;
}

/**
 * Whether a running sum of `chunk`'s bucket deltas (the absolute counts) falls below the same of
 * `sample`'s at any bucket, in Go's wrapping int64 arithmetic. With doubles while the sums stay
 * within ±2^52 (every count of a real histogram), else with bigints from the start.
 */
function _anyCountBelow(chunk: readonly bigint[], sample: readonly bigint[]): boolean {
  let chunkAbs = 0;
  let sampleAbs = 0;
  let i = 0;
  for (; i < chunk.length; i++) {
    const c = chunk[i];
    const d = sample[i];
    if (!(_isSmall(c) && _isSmall(d))) break;
    chunkAbs += Number(c);
    sampleAbs += Number(d);
    if (Math.abs(chunkAbs) > 2 ** 52 || Math.abs(sampleAbs) > 2 ** 52) break;
    if (chunkAbs > sampleAbs) return true;
  }
  if (i === chunk.length) return false;
  let chunkBig = 0n;
  let sampleBig = 0n;
  for (let j = 0; j < chunk.length; j++) {
    chunkBig = BigInt.asIntN(64, chunkBig + chunk[j]);
    sampleBig = BigInt.asIntN(64, sampleBig + sample[j]);
    if (chunkBig > sampleBig) return true;
  }
  return false;
}

/** The integer appender's counter-reset header for an `appendable` verdict. */
function _intHeader(verdict: _Verdict): number {
  switch (verdict) {
    case "hintReset":
    case "reset":
      return CounterResetHeader.reset;
    case "staleLast":
    case "layout":
      return CounterResetHeader.unknown;
    default: // "ok", "gaugeChunk"
      return CounterResetHeader.notReset;
  }
}

/**
 * Builds a float histogram chunk (encoding 3) exactly as Prometheus' `FloatHistogramAppender`
 * does. All counts are absolute, as raw float64 bits ({@link FloatHistogramSample}).
 */
export class FloatHistogramAppender
  extends _AppenderBase<FloatHistogramSample, FloatHistogramAppender> {
  #tDelta = 0n;
  #cnt = new XorValueWriter();
  #zCnt = new XorValueWriter();
  #sum = new XorValueWriter();
  #cntBits = 0n;
  #zCntBits = 0n;
  #pBuckets: XorValueWriter[] = [];
  #nBuckets: XorValueWriter[] = [];
  #pBits: bigint[] = [];
  #nBits: bigint[] = [];

  /** 3 (`Encoding.floatHistogram`). */
  get encoding(): number {
    return 3;
  }

  protected _new(header: number): FloatHistogramAppender {
    return new FloatHistogramAppender(header);
  }

  protected _appendRaw(sample: FloatHistogramSample): void {
    const h = _isStale(sample.sum) ? _staleOf(sample) : sample;
    const w = this._w;
    const t = BigInt.asIntN(64, h.t);
    let tDelta = 0n;
    if (this._n === 0) {
      this._startLayout(h);
      putVarbitInt(w, t);
      for (
        const [v, bits] of [[this.#cnt, h.count], [this.#zCnt, h.zeroCount], [
          this.#sum,
          h.sum,
        ]] as const
      ) {
        const [hi, lo] = splitBig(bits);
        w.writeHiLo(hi, lo, 64);
        v.set(hi, lo);
      }
      this.#pBuckets = h.positiveBuckets.map(() => new XorValueWriter());
      this.#nBuckets = h.negativeBuckets.map(() => new XorValueWriter());
      this.#pBits = h.positiveBuckets.slice();
      this.#nBits = h.negativeBuckets.slice();
      for (
        const [vs, bs] of [[this.#pBuckets, h.positiveBuckets], [
          this.#nBuckets,
          h.negativeBuckets,
        ]] as const
      ) {
        for (let i = 0; i < bs.length; i++) {
          const [hi, lo] = splitBig(bs[i]);
          w.writeHiLo(hi, lo, 64);
          vs[i].set(hi, lo);
        }
      }
    } else {
      tDelta = BigInt.asIntN(64, t - this._t);
      putVarbitInt(w, BigInt.asIntN(64, tDelta - this.#tDelta));
      for (
        const [v, bits] of [[this.#cnt, h.count], [this.#zCnt, h.zeroCount], [
          this.#sum,
          h.sum,
        ]] as const
      ) {
        const [hi, lo] = splitBig(bits);
        v.write(w, hi, lo);
      }
      for (
        const [vs, bs, keep] of [[this.#pBuckets, h.positiveBuckets, this.#pBits], [
          this.#nBuckets,
          h.negativeBuckets,
          this.#nBits,
        ]] as const
      ) {
        for (let i = 0; i < bs.length; i++) {
          const [hi, lo] = splitBig(bs[i]);
          vs[i].write(w, hi, lo);
          keep[i] = bs[i];
        }
      }
    }
    this._n++;
    this._t = t;
    this.#tDelta = tDelta;
    this.#cntBits = h.count;
    this.#zCntBits = h.zeroCount;
    this._lastSum = h.sum;
  }

  protected _countDecreased(h: FloatHistogramSample): boolean {
    return _num(h.count) < _num(this.#cntBits);
  }

  protected _zeroCountDecreased(h: FloatHistogramSample): boolean {
    return _num(h.zeroCount) < _num(this.#zCntBits);
  }

  protected _expand(
    a: readonly HistogramSpan[],
    b: readonly HistogramSpan[],
    positive: boolean,
    h: FloatHistogramSample,
  ): _Expansion | undefined {
    const chunk = positive ? this.#pBits : this.#nBits;
    const sample = positive ? h.positiveBuckets : h.negativeBuckets;
    if (_spansEqual(a, b) && chunk.length === sample.length) {
      // As in the integer appender: the same spans only compare the counts bucket by bucket.
      for (let i = 0; i < chunk.length; i++) {
        if (_num(chunk[i]) > _num(sample[i])) return undefined;
      }
      return _NO_INSERTS;
    }
    return _expandSpansAndBuckets(a, b, chunk.map(_num), sample.map(_num), _isZeroNum);
  }

  protected _headerOnCut(verdict: _Verdict): number {
    // Go's float appender only marks detected resets; other new chunks keep "unknown".
    return verdict === "reset" || verdict === "hintReset"
      ? CounterResetHeader.reset
      : CounterResetHeader.unknown;
  }

  protected _headerAfterPrev(verdict: _Verdict): number {
    return verdict === "reset" || verdict === "hintReset"
      ? CounterResetHeader.reset
      : CounterResetHeader.notReset;
  }

  protected _decoded(): FloatHistogramSample[] {
    return decodeFloatHistogram(this.bytes());
  }

  protected _insertBuckets(buckets: readonly bigint[], inserts: readonly _Insert[]): bigint[] {
    return _insertFloatBuckets(buckets, inserts);
  }
}

// --- chunks with start timestamps (encodings 5 and 6) -------------------------------------------

/** Most samples a histogram chunk with start timestamps holds (the count has 14 bits). */
export const MAX_HISTOGRAM_ST_SAMPLES = 0x3fff;

/** The header of a histogram chunk with ST: counter-reset header and count in bytes 0–1. */
function _stHeader(w: BitWriter, header: number, n: number, st: STWriter): Uint8Array {
  w.setByte(0, (header << 6) | (n >>> 8));
  w.setByte(1, n & 0xff);
  w.setByte(2, st.header);
  return w.bytes().slice();
}

const _NO_CUTTING = "appenders of chunks with start timestamps do not cut or recode chunks";

/**
 * Builds an integer histogram chunk with start timestamps (encoding 5, Go's
 * `HistogramSTAppender`, Prometheus 3.14+): the chunk {@link HistogramAppender} builds, with each
 * sample's ST bits after it and the header of `histogram_st.go`. Samples go in with
 * {@link HistogramSTAppender.appendST} (or `appendDecodedST`); chunk cutting stays with the
 * caller.
 */
export class HistogramSTAppender extends HistogramAppender {
  #st = new STWriter();
  #next = 0n;

  /** 5 (`Encoding.histogramST`). */
  override get encoding(): number {
    return 5;
  }

  /** Appends `h` with start timestamp `st` (0 for none), as {@link HistogramAppender.append}. */
  appendST(st: bigint, h: HistogramSample): void {
    this.#next = st;
    this.append(h);
  }

  /** Appends a decoded sample with its start timestamp, as {@link HistogramAppender.appendDecoded}. */
  appendDecodedST(st: bigint, h: HistogramSample): void {
    this.#next = st;
    this.appendDecoded(h);
  }

  /** The chunk data (count and counter-reset header, ST header, bit stream), as a copy. */
  override bytes(): Uint8Array {
    return _stHeader(this._w, this._header, this._n, this.#st);
  }

  /** Not supported: cut and recode with plain chunks, then copy them with STs. */
  override _appendAsPrometheus(): never {
    throw new Error(_NO_CUTTING);
  }

  protected override get _maxSamples(): number {
    return MAX_HISTOGRAM_ST_SAMPLES;
  }

  protected override _appendRaw(sample: HistogramSample): void {
    const index = this._n;
    const prevT = this._t;
    super._appendRaw(sample);
    this.#st.write(this._w, index, this._t, prevT, this.#next);
  }
}

/**
 * Builds a float histogram chunk with start timestamps (encoding 6, Go's
 * `FloatHistogramSTAppender`); see {@link HistogramSTAppender}.
 */
export class FloatHistogramSTAppender extends FloatHistogramAppender {
  #st = new STWriter();
  #next = 0n;

  /** 6 (`Encoding.floatHistogramST`). */
  override get encoding(): number {
    return 6;
  }

  /** Appends `h` with start timestamp `st` (0 for none). */
  appendST(st: bigint, h: FloatHistogramSample): void {
    this.#next = st;
    this.append(h);
  }

  /** Appends a decoded sample with its start timestamp. */
  appendDecodedST(st: bigint, h: FloatHistogramSample): void {
    this.#next = st;
    this.appendDecoded(h);
  }

  /** The chunk data (count and counter-reset header, ST header, bit stream), as a copy. */
  override bytes(): Uint8Array {
    return _stHeader(this._w, this._header, this._n, this.#st);
  }

  /** Not supported: cut and recode with plain chunks, then copy them with STs. */
  override _appendAsPrometheus(): never {
    throw new Error(_NO_CUTTING);
  }

  protected override get _maxSamples(): number {
    return MAX_HISTOGRAM_ST_SAMPLES;
  }

  protected override _appendRaw(sample: FloatHistogramSample): void {
    const index = this._n;
    const prevT = this._t;
    super._appendRaw(sample);
    this.#st.write(this._w, index, this._t, prevT, this.#next);
  }
}

// --- chunk cutting ------------------------------------------------------------------------------

/** Go's `rangeForTimestamp`: the end of the chunk range holding `t`. */
function _rangeEnd(t: bigint, width: bigint): bigint {
  return (t / width) * width + width;
}

/** Go's `computeChunkEndTime`, in float64 as Go computes it. */
function _chunkEndTime(start: bigint, cur: bigint, maxT: bigint, ratioToFull: number): bigint {
  const n = Number(BigInt.asIntN(64, maxT - start)) /
    (Number(BigInt.asIntN(64, cur - start + 1n)) * ratioToFull);
  if (n <= 1) return maxT;
  return BigInt(
    Math.trunc(Number(start) + Number(BigInt.asIntN(64, maxT - start)) / Math.floor(n)),
  );
}

/** Shared chunk-cutting state machine (Go's `histogramsAppendPreprocessor` and friends). */
abstract class _ChunkEncoderBase<
  H extends _Sample,
  A extends _AppenderBase<H, A>,
> {
  #recode: boolean;
  #range: bigint | undefined;
  #app: A | undefined;
  #mint = 0n;
  #maxt = 0n;
  #nextAt = 0n;
  #computedEnd = false;
  #started = false;

  constructor(options: HistogramChunkOptions) {
    this.#recode = options.recode ?? false;
    this.#range = options.chunkRange;
    if (this.#range !== undefined && this.#range <= 0n) {
      throw new RangeError(`chunkRange must be positive, got ${this.#range}`);
    }
  }

  protected abstract _newAppender(): A;

  /**
   * Adds the next sample (its `t` must be after the previous one's). Returns the chunk this
   * finished, if any; that chunk is final.
   */
  add(h: H): EncodedChunk | undefined {
    const t = h.t;
    let finished: EncodedChunk | undefined;
    let app = this.#app;
    let prev: A | undefined = app;
    let created = false;
    const cutNew = () => {
      if (this.#app && this.#app.numSamples > 0) finished = this.#finish(this.#app);
      app = this._newAppender();
      this.#app = app;
      this.#mint = t;
      if (this.#range !== undefined) this.#nextAt = _rangeEnd(t, this.#range);
      created = true;
    };
    if (this.#started && t <= this.#maxt) {
      throw new RangeError(`histogram samples out of order: ${t} after ${this.#maxt}`);
    }
    this.#started = true;
    if (app === undefined) cutNew();
    const cur = app!;
    if (!created) {
      const n = cur.numSamples;
      const bytes = cur.byteLength;
      if (this.#range !== undefined) {
        const nextRangeStart = this.#computedEnd
          ? _rangeEnd(this.#mint, this.#range)
          : this.#nextAt;
        if (!this.#computedEnd && bytes >= TARGET_BYTES_PER_HISTOGRAM_CHUNK / 4) {
          this.#nextAt = _chunkEndTime(
            this.#mint,
            this.#maxt,
            this.#nextAt,
            TARGET_BYTES_PER_HISTOGRAM_CHUNK / bytes,
          );
          this.#computedEnd = true;
        }
        if (
          (t >= this.#nextAt || bytes >= 2 * TARGET_BYTES_PER_HISTOGRAM_CHUNK) &&
          (n >= MIN_SAMPLES_PER_HISTOGRAM_CHUNK || t >= nextRangeStart)
        ) {
          cutNew();
        }
      } else if (
        n >= MIN_SAMPLES_PER_HISTOGRAM_CHUNK && bytes >= TARGET_BYTES_PER_HISTOGRAM_CHUNK
      ) {
        cutNew();
      }
      if (!created && n >= MAX_HISTOGRAM_SAMPLES) cutNew();
    }
    if (created) this.#computedEnd = false;
    else prev = undefined;

    const out = app!._appendAsPrometheus(prev, h, this.#recode);
    if (out.cut) {
      finished = this.#finish(app!);
      this.#mint = t;
      if (this.#range !== undefined) this.#nextAt = _rangeEnd(t, this.#range);
    }
    this.#app = out.app;
    this.#maxt = t;
    return finished;
  }

  /** Finishes the open chunk (if it has samples); the encoder can go on afterwards. */
  flush(): EncodedChunk | undefined {
    const app = this.#app;
    this.#app = undefined;
    return app && app.numSamples > 0 ? this.#finish(app) : undefined;
  }

  /** The open chunk's samples so far. */
  get openSamples(): number {
    return this.#app?.numSamples ?? 0;
  }

  #finish(app: A): EncodedChunk {
    return { encoding: app.encoding, data: app.bytes(), mint: this.#mint, maxt: this.#maxt };
  }
}

/**
 * Cuts one series' integer histograms into chunks as Prometheus does (see
 * {@link HistogramChunkOptions}): a new chunk on a counter reset (detected, or hinted by the
 * sample: header "reset"), on a change of schema or zero threshold (header "unknown"), after a stale
 * marker (unknown), on a change between gauge and counter samples (gauge samples get the gauge
 * header), on a layout change (header "not reset"; unless `recode`) and by size.
 */
export class HistogramChunkEncoder extends _ChunkEncoderBase<HistogramSample, HistogramAppender> {
  /** A new encoder; see {@link HistogramChunkOptions}. */
  constructor(options: HistogramChunkOptions = {}) {
    super(options);
  }

  protected _newAppender(): HistogramAppender {
    return new HistogramAppender();
  }
}

/**
 * Cuts one series' float histograms into chunks as Prometheus does; as
 * {@link HistogramChunkEncoder}, except that Go's float appender leaves the header "unknown"
 * (not "not reset") on cuts that are not counter resets.
 */
export class FloatHistogramChunkEncoder
  extends _ChunkEncoderBase<FloatHistogramSample, FloatHistogramAppender> {
  /** A new encoder; see {@link HistogramChunkOptions}. */
  constructor(options: HistogramChunkOptions = {}) {
    super(options);
  }

  protected _newAppender(): FloatHistogramAppender {
    return new FloatHistogramAppender();
  }
}

function _encodeAll<H extends _Sample, A extends _AppenderBase<H, A>>(
  enc: _ChunkEncoderBase<H, A>,
  samples: readonly H[],
): EncodedChunk[] {
  const out: EncodedChunk[] = [];
  for (const h of samples) {
    const c = enc.add(h);
    if (c) out.push(c);
  }
  const last = enc.flush();
  if (last) out.push(last);
  return out;
}

/**
 * Encodes one series' time-ordered integer histograms into as many chunks as needed (see
 * {@link HistogramChunkEncoder}). Throws a RangeError on timestamps that do not ascend or on
 * malformed samples (bucket counts that do not match the spans).
 */
export function encodeHistogramChunks(
  samples: readonly HistogramSample[],
  options: HistogramChunkOptions = {},
): EncodedChunk[] {
  return _encodeAll(new HistogramChunkEncoder(options), samples);
}

/** Encodes one series' time-ordered float histograms; see {@link encodeHistogramChunks}. */
export function encodeFloatHistogramChunks(
  samples: readonly FloatHistogramSample[],
  options: HistogramChunkOptions = {},
): EncodedChunk[] {
  return _encodeAll(new FloatHistogramChunkEncoder(options), samples);
}

// Appenders live for a chunk, encoders for a series, iterators for a comparison (see
// _hidden_class.ts).
keepHiddenClass(new HistogramAppender());
keepHiddenClass(new FloatHistogramAppender());
keepHiddenClass(new HistogramChunkEncoder({ chunkRange: 1n }));
keepHiddenClass(new FloatHistogramChunkEncoder({ chunkRange: 1n }));
keepHiddenClass(new _BucketIterator([]));
