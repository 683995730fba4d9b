/**
 * Decoding of WAL records (`tsdb/record`): the payload of each {@link WalRecord} of `wlog.ts`.
 * The first byte is the record type; the layouts are those of Prometheus' `record.go` (deltas are
 * signed zig-zag varints, whatever `wal.md` says).
 *
 * Timestamps, series refs and other 64-bit integers are `bigint`. Float values (sample values,
 * histogram sums, float counts and bounds) are kept as their raw IEEE 754 bit patterns
 * (`bigint`), so NaN payloads such as Prometheus' stale marker survive exactly; use
 * {@link float64FromBits} to look at them as numbers.
 *
 * @module
 */

import { STALE_NAN_BITS } from "./chunkenc/xor.ts";
import type { Label } from "./index.ts";
import { Decbuf, FormatError } from "./encoding.ts";
import {
  CUSTOM_BUCKETS_SCHEMA,
  EXPONENTIAL_SCHEMA_MAX,
  EXPONENTIAL_SCHEMA_MIN_RESERVED,
  isKnownHistogramSchema,
  reduceToMaxSchema,
} from "./histogram_schema.ts";

/**
 * Record type codes (the first byte of a record), exactly those of Prometheus' `record.go` on main
 * (with the release that first defined each). Any other code is a type of a later (or unreleased)
 * Prometheus: decoded as `unknown` and skipped, as Prometheus skips it. Code 14 in particular is
 * used by unreleased branches for records of their own (resource updates, NHCB V2 samples).
 */
export const RecordType = {
  /** Series: refs and their labels. */
  Series: 1,
  /** Float samples. */
  Samples: 2,
  /** Deletion intervals. */
  Tombstones: 3,
  /** Exemplars (2.27). */
  Exemplars: 4,
  /** Out-of-order m-map markers, WBL only (2.39). */
  MmapMarkers: 5,
  /** Metric metadata: type, unit, help (2.38). */
  Metadata: 6,
  /** Integer native histogram samples (2.40). */
  HistogramSamples: 7,
  /** Float native histogram samples (2.42). */
  FloatHistogramSamples: 8,
  /** Integer custom-bucket (NHCB) histogram samples (3.2). */
  CustomBucketsHistogramSamples: 9,
  /** Float custom-bucket (NHCB) histogram samples (3.2). */
  CustomBucketsFloatHistogramSamples: 10,
  /** Float samples with start timestamps (3.11, written with `st-storage`). */
  SamplesV2: 11,
  /** Integer histogram samples with start timestamps, NHCB too (3.12). */
  HistogramSamplesV2: 12,
  /** Float histogram samples with start timestamps, NHCB too (3.12). */
  FloatHistogramSamplesV2: 13,
} as const;

export { CUSTOM_BUCKETS_SCHEMA, isKnownHistogramSchema };

const _f64 = new DataView(new ArrayBuffer(8));

/**
 * The number a float64 bit pattern stands for. For display and checks only: a NaN's payload may
 * not survive the conversion, so keep the bits for anything that is written back.
 */
export function float64FromBits(bits: bigint): number {
  _f64.setBigUint64(0, BigInt.asUintN(64, bits));
  return _f64.getFloat64(0);
}

/** The bit pattern of a float64 (for building test data; NaNs become the canonical NaN). */
export function float64Bits(value: number): bigint {
  _f64.setFloat64(0, value);
  return _f64.getBigUint64(0);
}

/** Whether a value's bit pattern is Prometheus' stale marker. */
export function isStaleNaN(bits: bigint): boolean {
  return bits === STALE_NAN_BITS;
}

/** A series record entry. */
export interface RefSeries {
  /** The head series ref the other records use. */
  ref: bigint;
  /** Labels, in the order stored (sorted by name). */
  labels: Label[];
}

/** A float sample. */
export interface RefSample {
  /** Series ref. */
  ref: bigint;
  /** Timestamp, ms. */
  t: bigint;
  /** Value as float64 bits. */
  v: bigint;
  /** Start timestamp (SamplesV2 only; 0 means none). */
  st?: bigint;
}

/** One deletion interval of a series, inclusive at both ends. */
export interface Tombstone {
  /** Series ref. */
  ref: bigint;
  /** First deleted ms. */
  mint: bigint;
  /** Last deleted ms. */
  maxt: bigint;
}

/**
 * Whether a tombstone covers all time, `[MinInt64, MaxInt64]`: what stale-series compaction
 * (3.10+, `tsdb/head.go` truncateSeries) writes for each series it evicts.
 */
export function isFullRangeTombstone(t: Pick<Tombstone, "mint" | "maxt">): boolean {
  return t.mint === -(2n ** 63n) && t.maxt === 2n ** 63n - 1n;
}

/** An exemplar. */
export interface RefExemplar {
  /** Series ref. */
  ref: bigint;
  /** Timestamp, ms. */
  t: bigint;
  /** Value as float64 bits. */
  v: bigint;
  /** The exemplar's own labels (e.g. trace_id). */
  labels: Label[];
}

/** An out-of-order m-map marker: the series' samples so far are in chunks_head up to `mmapRef`. */
export interface RefMmapMarker {
  /** Series ref. */
  ref: bigint;
  /** Head chunk ref (file number << 32 | offset). */
  mmapRef: bigint;
}

/** Metric types of metadata records. */
export const METRIC_TYPES = [
  "unknown",
  "counter",
  "gauge",
  "histogram",
  "gaugehistogram",
  "summary",
  "info",
  "stateset",
] as const;

/** Metadata of a series. */
export interface RefMetadata {
  /** Series ref. */
  ref: bigint;
  /** Metric type code (index into {@link METRIC_TYPES}; other values are kept as they are). */
  type: number;
  /** The UNIT field ("" if absent). */
  unit: string;
  /** The HELP field ("" if absent). */
  help: string;
  /** All fields as stored, including unknown ones. */
  fields: [name: string, value: string][];
}

/** A span of consecutive populated buckets. */
export interface Span {
  /** Gap to the previous span's end (or the start index for the first span). */
  offset: number;
  /** Number of buckets. */
  length: number;
}

/** Fields common to integer and float native histograms. */
export interface WalHistogramBase {
  /** 0 unknown, 1 counter reset, 2 not a counter reset, 3 gauge. */
  counterResetHint: number;
  /**
   * Resolution: −4…8 exponential, −53 custom buckets. Decoded records hold no other schema but
   * −9…−5 (see `histogram_schema.ts`).
   */
  schema: number;
  /** Width of the zero bucket, float64 bits. */
  zeroThreshold: bigint;
  /** Sum of observations, float64 bits. */
  sum: bigint;
  /** Spans of positive buckets. */
  positiveSpans: Span[];
  /** Spans of negative buckets. */
  negativeSpans: Span[];
  /** Custom bucket upper bounds as float64 bits (schema −53 only, else empty). */
  customValues: bigint[];
}

/** An integer native histogram (`histogram.Histogram`). */
export interface Histogram extends WalHistogramBase {
  /** Observations in the zero bucket. */
  zeroCount: bigint;
  /** Total observations. */
  count: bigint;
  /** Positive bucket counts, delta-encoded as in Go (the first absolute, then differences). */
  positiveBuckets: bigint[];
  /** Negative bucket counts, delta-encoded. */
  negativeBuckets: bigint[];
}

/** A float native histogram (`histogram.FloatHistogram`); counts are float64 bits. */
export interface FloatHistogram extends WalHistogramBase {
  /** Observations in the zero bucket, float64 bits. */
  zeroCount: bigint;
  /** Total observations, float64 bits. */
  count: bigint;
  /** Positive bucket counts (absolute), float64 bits. */
  positiveBuckets: bigint[];
  /** Negative bucket counts (absolute), float64 bits. */
  negativeBuckets: bigint[];
}

/** A histogram sample. */
export interface RefHistogramSample<H> {
  /** Series ref. */
  ref: bigint;
  /** Timestamp, ms. */
  t: bigint;
  /** Start timestamp (V2 records only; 0 means none). */
  st?: bigint;
  /** The histogram. */
  h: H;
}

/** A decoded record. `code` is the type byte. */
export type DecodedRecord =
  | { type: "series"; code: 1; series: RefSeries[] }
  | { type: "samples"; code: 2 | 11; samples: RefSample[] }
  | { type: "tombstones"; code: 3; tombstones: Tombstone[] }
  | { type: "exemplars"; code: 4; exemplars: RefExemplar[] }
  | { type: "mmapMarkers"; code: 5; markers: RefMmapMarker[] }
  | { type: "metadata"; code: 6; metadata: RefMetadata[] }
  | {
    type: "histograms";
    code: 7 | 9 | 12;
    histograms: RefHistogramSample<Histogram>[];
    /** Histograms left out for an unknown schema (absent when none). */
    unknownSchemas?: number;
  }
  | {
    type: "floatHistograms";
    code: 8 | 10 | 13;
    histograms: RefHistogramSample<FloatHistogram>[];
    /** Histograms left out for an unknown schema (absent when none). */
    unknownSchemas?: number;
  }
  /**
   * A type this decoder does not know (Prometheus skips those): `code` is the type byte (−1 for an
   * empty record), `length` the record's size in bytes, type byte included.
   */
  | { type: "unknown"; code: number; length: number };

/** Turns delta-encoded integer bucket counts into absolute counts. */
export function absoluteBuckets(deltas: readonly bigint[]): bigint[] {
  const out: bigint[] = [];
  let acc = 0n;
  for (const d of deltas) {
    acc += d;
    out.push(acc);
  }
  return out;
}

/**
 * Decodes one record. Unknown types give `{type: "unknown", code, length}` so that callers can
 * count them (Prometheus skips them since 2.22). Throws a `FormatError` when a known record is
 * malformed (too short, or bytes left over). Histograms are decoded as Prometheus' decoder does
 * since 3.7: those of an unknown schema ({@link isKnownHistogramSchema}) are left out (counted in
 * `unknownSchemas`), those of schema 9…52 are reduced to schema 8.
 *
 * @example
 * ```ts
 * const rec = decodeRecord(walRecord.bytes);
 * if (rec.type === "samples") for (const s of rec.samples) console.log(s.ref, s.t);
 * ```
 */
export function decodeRecord(bytes: Uint8Array): DecodedRecord {
  if (bytes.length === 0) return { type: "unknown", code: -1, length: 0 };
  const code = bytes[0];
  const dec = new Decbuf(bytes, 1);
  try {
    const rec = _decodeBody(code, dec, bytes.length);
    if (rec.type !== "unknown" && dec.remaining > 0) {
      throw new FormatError(`${dec.remaining} bytes left over`);
    }
    return rec;
  } catch (e) {
    if (e instanceof FormatError) {
      throw new FormatError(`record type ${code}: ${e.message}`);
    }
    throw e;
  }
}

function _decodeBody(code: number, dec: Decbuf, length: number): DecodedRecord {
  switch (code) {
    case RecordType.Series:
      return { type: "series", code, series: _series(dec) };
    case RecordType.Samples:
      return { type: "samples", code, samples: _samplesV1(dec) };
    case RecordType.SamplesV2:
      return { type: "samples", code, samples: _samplesV2(dec) };
    case RecordType.Tombstones:
      return { type: "tombstones", code, tombstones: _tombstones(dec) };
    case RecordType.Exemplars:
      return { type: "exemplars", code, exemplars: _exemplars(dec) };
    case RecordType.MmapMarkers:
      return { type: "mmapMarkers", code, markers: _mmapMarkers(dec) };
    case RecordType.Metadata:
      return { type: "metadata", code, metadata: _metadata(dec) };
    case RecordType.HistogramSamples:
    case RecordType.CustomBucketsHistogramSamples:
      return { type: "histograms", code, ..._histogramsV1<Histogram>(dec, false) };
    case RecordType.HistogramSamplesV2:
      return { type: "histograms", code, ..._histogramsV2<Histogram>(dec, false) };
    case RecordType.FloatHistogramSamples:
    case RecordType.CustomBucketsFloatHistogramSamples:
      return { type: "floatHistograms", code, ..._histogramsV1<FloatHistogram>(dec, true) };
    case RecordType.FloatHistogramSamplesV2:
      return { type: "floatHistograms", code, ..._histogramsV2<FloatHistogram>(dec, true) };
    default:
      return { type: "unknown", code, length };
  }
}

// Label bytes are not validated by Prometheus' decoder, so decode leniently rather than lose the
// whole record to one bad byte.
const _utf8 = new TextDecoder("utf-8");

function _string(dec: Decbuf): string {
  return _utf8.decode(dec.take(dec.uvarint()));
}

function _labels(dec: Decbuf): Label[] {
  const n = dec.uvarint();
  const labels: Label[] = [];
  for (let i = 0; i < n; i++) {
    const name = _string(dec);
    labels.push({ name, value: _string(dec) });
  }
  return labels;
}

// Go adds signed deltas to refs and times in 64-bit arithmetic that wraps.
const _u64 = (v: bigint) => BigInt.asUintN(64, v);
const _i64 = (v: bigint) => BigInt.asIntN(64, v);

function _series(dec: Decbuf): RefSeries[] {
  const out: RefSeries[] = [];
  while (dec.remaining > 0) {
    const ref = dec.be64();
    out.push({ ref, labels: _labels(dec) });
  }
  return out;
}

// The V1 sample-like records (samples, exemplars, histograms) share one frame: a base ref and
// time, then per entry signed deltas of both, followed by the entry's own payload.
function _baseDeltaEntries<T>(dec: Decbuf, read: (ref: bigint, t: bigint) => T): T[] {
  const out: T[] = [];
  if (dec.remaining === 0) return out;
  const baseRef = dec.be64();
  const baseTime = dec.be64signed();
  while (dec.remaining > 0) {
    const dref = dec.varint64();
    const dtime = dec.varint64();
    out.push(read(_u64(baseRef + dref), _i64(baseTime + dtime)));
  }
  return out;
}

function _samplesV1(dec: Decbuf): RefSample[] {
  return _baseDeltaEntries(dec, (ref, t) => ({ ref, t, v: dec.be64() }));
}

/**
 * Calls `fn` with each series of a WAL series record (type 1, `record.go` Series): its ref and its
 * labels as `labelsKey` (`series_runs.ts`) writes them, each name and value followed by a NUL,
 * decoded in one piece: a scrape that creates a million series logs them all in one record of tens
 * of MiB, whose labels as objects would take several times that. Returns false, having called `fn`
 * for nothing, when the record is of another type, is malformed or holds a ref beyond 2^53: those
 * need {@link decodeRecord}.
 */
export function forEachSeries(bytes: Uint8Array, fn: (ref: number, key: string) => void): boolean {
  if (bytes.length < 1 || bytes[0] !== RecordType.Series) return false;
  // A first pass checks every entry (so that fn sees all of them or none) and sizes the key.
  let longest = 0;
  for (let p = 1; p < bytes.length;) {
    p = _seriesEntry(bytes, p, bytes.length, null);
    if (p < 0) return false;
    longest = Math.max(longest, _keyLength);
  }
  if (longest > _key.length) _key = new Uint8Array(longest);
  for (let p = 1; p < bytes.length;) {
    p = _seriesEntry(bytes, p, bytes.length, _key);
    fn(_ref, _utf8.decode(_key.subarray(0, _keyLength)));
  }
  return true;
}

/**
 * The series of a WAL series record pushed in pieces, its type byte first (see
 * {@link forEachSeries}, which takes a whole record): `fn` is called with each series as soon as
 * its entry is complete, so a damaged entry fails the record after the series before it were
 * taken. Memory: the piece being parsed and the entry cut at its end.
 */
export class SeriesRecordParser {
  #fn: (ref: number, key: string) => void;
  #buf = new Uint8Array(64 * 1024);
  #len = 0;
  #typeRead = false;

  /** A parser that calls `fn` with each series. */
  constructor(fn: (ref: number, key: string) => void) {
    this.#fn = fn;
  }

  /** Parses the record's next bytes. Throws a {@link FormatError} for a malformed entry. */
  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (!this.#typeRead) {
      if (bytes[0] !== RecordType.Series) throw new FormatError("not a series record");
      this.#typeRead = true;
      bytes = bytes.subarray(1);
    }
    if (this.#len + bytes.length > this.#buf.length) {
      const bigger = new Uint8Array(Math.max(2 * this.#buf.length, this.#len + bytes.length));
      bigger.set(this.#buf.subarray(0, this.#len));
      this.#buf = bigger;
    }
    this.#buf.set(bytes, this.#len);
    this.#len += bytes.length;
    const buf = this.#buf;
    // An entry's key is shorter than the entry: one as long as the bytes here takes any of them,
    // so each is read once.
    if (_key.length < this.#len) _key = new Uint8Array(this.#len);
    let p = 0;
    while (p < this.#len) {
      const end = _seriesEntry(buf, p, this.#len, _key);
      if (end === -1) break; // cut: the rest comes with the next bytes
      if (end < 0) throw new FormatError(`malformed series entry at byte ${p}`);
      this.#fn(_ref, _utf8.decode(_key.subarray(0, _keyLength)));
      p = end;
    }
    buf.copyWithin(0, p, this.#len);
    this.#len -= p;
  }

  /** Ends the record: throws a {@link FormatError} when it ended inside an entry. */
  end(): void {
    if (!this.#typeRead) throw new FormatError("empty series record");
    if (this.#len > 0) throw new FormatError("series record ends inside an entry");
  }
}

// What _seriesEntry read: the ref, and the length of the labels key.
let _ref = 0;
let _keyLength = 0;

/**
 * Reads the series entry at `p` of `bytes[..end]` (ref, label count, names and values): its end,
 * -1 when it is cut by `end`, -2 when it is malformed (or its ref is beyond 2^53). Sets `_ref` and
 * `_keyLength`, and with `key`, writes the labels key there (each name and value followed by a
 * NUL; `key` must be long enough).
 */
function _seriesEntry(bytes: Uint8Array, p: number, end: number, key: Uint8Array | null): number {
  if (p + 8 > end) return -1;
  const refHi = (bytes[p] << 24 | bytes[p + 1] << 16 | bytes[p + 2] << 8 | bytes[p + 3]) >>> 0;
  if (refHi >= 0x200000) return -2;
  _ref = refHi * 0x1_0000_0000 +
    ((bytes[p + 4] << 24 | bytes[p + 5] << 16 | bytes[p + 6] << 8 | bytes[p + 7]) >>> 0);
  p += 8;
  const n = _varintAt(bytes, p, end);
  if (n < 0) return n;
  p = _at;
  let k = 0;
  for (let i = 0; i < 2 * n; i++) {
    const len = _varintAt(bytes, p, end);
    if (len < 0) return len;
    if (_at + len > end) return -1;
    if (key !== null) {
      // Byte by byte: labels are short, and a subarray per label (millions) is garbage.
      for (let j = 0; j < len; j++) key[k + j] = bytes[_at + j];
      key[k + len] = 0;
    }
    k += len + 1;
    p = _at + len;
  }
  _keyLength = k;
  return p;
}

/** {@link _smallUvarint} within `bytes[..end]`: -1 when cut by `end`, -2 when too long. */
function _varintAt(bytes: Uint8Array, p: number, end: number): number {
  const u = _smallUvarint(bytes, p, end);
  if (u >= 0) return u;
  return end - p < 7 ? -1 : -2;
}

// The bytes of the labels key being built (see forEachSeries): the longest one yet.
let _key = new Uint8Array(1024);

/** Reads a V2 start-time marker: 0 none, 1 same as the previous sample, 2 explicit delta. */
function _stMarker(dec: Decbuf, prevST: bigint, firstST: bigint): bigint {
  const marker = dec.byte();
  if (marker === 0) return 0n;
  if (marker === 1) return prevST;
  return _i64(firstST + dec.varint64());
}

function _samplesV2(dec: Decbuf): RefSample[] {
  const out: RefSample[] = [];
  let firstT = 0n;
  let firstST = 0n;
  while (dec.remaining > 0) {
    let ref: bigint, t: bigint, st: bigint;
    const prev = out.at(-1);
    if (!prev) {
      ref = dec.varint64();
      t = firstT = dec.varint64();
      st = firstST = dec.varint64();
    } else {
      ref = prev.ref + dec.varint64();
      t = _i64(firstT + dec.varint64());
      st = _stMarker(dec, prev.st ?? 0n, firstST);
    }
    out.push({ ref: _u64(ref), t, st, v: dec.be64() });
  }
  return out;
}

function _tombstones(dec: Decbuf): Tombstone[] {
  const out: Tombstone[] = [];
  while (dec.remaining > 0) {
    const ref = dec.be64();
    const mint = dec.varint64();
    out.push({ ref, mint, maxt: dec.varint64() });
  }
  return out;
}

function _exemplars(dec: Decbuf): RefExemplar[] {
  return _baseDeltaEntries(dec, (ref, t) => {
    const v = dec.be64();
    return { ref, t, v, labels: _labels(dec) };
  });
}

function _mmapMarkers(dec: Decbuf): RefMmapMarker[] {
  const out: RefMmapMarker[] = [];
  while (dec.remaining > 0) {
    const ref = dec.be64();
    out.push({ ref, mmapRef: dec.be64() });
  }
  return out;
}

function _metadata(dec: Decbuf): RefMetadata[] {
  const out: RefMetadata[] = [];
  while (dec.remaining > 0) {
    const ref = dec.uvarint64();
    const type = dec.byte();
    const n = dec.uvarint();
    const fields: [string, string][] = [];
    let unit = "";
    let help = "";
    for (let i = 0; i < n; i++) {
      const name = _string(dec);
      const value = _string(dec);
      fields.push([name, value]);
      if (name === "UNIT") unit = value;
      else if (name === "HELP") help = value;
    }
    out.push({ ref, type, unit, help, fields });
  }
  return out;
}

function _spans(dec: Decbuf): Span[] {
  const n = dec.uvarint();
  const spans: Span[] = [];
  for (let i = 0; i < n; i++) {
    const offset = Number(BigInt.asIntN(32, dec.varint64()));
    const length = dec.uvarint();
    if (length > 0xffffffff) throw new FormatError(`span length ${length} overflows 32 bits`);
    spans.push({ offset, length });
  }
  return spans;
}

function _list(dec: Decbuf, read: () => bigint): bigint[] {
  // Pushing one at a time: a damaged count runs out of bytes before it can allocate much.
  const n = dec.uvarint();
  const out: bigint[] = [];
  for (let i = 0; i < n; i++) out.push(read());
  return out;
}

/**
 * One histogram as WAL histogram records store it (after the sample's ref and time): an integer
 * histogram, or a float one with `float`. The head replay's shard files store histograms so too.
 */
export function decodeWalHistogram(dec: Decbuf, float: boolean): Histogram | FloatHistogram {
  return float ? _floatHistogram(dec) : _histogram(dec);
}

/**
 * Where one histogram as WAL histogram records store it (see {@link decodeWalHistogram}) ends,
 * read from byte `at` without decoding it: nothing is allocated, for a head replay that copies
 * the bytes as they are. -1 when it runs past `bytes` or a varint past 10 bytes.
 */
export function walHistogramEnd(bytes: Uint8Array, at: number, float: boolean): number {
  let p = _skipVarint(bytes, at + 1); // counter reset hint, schema
  if (p < 0) return -1;
  const custom = walHistogramSchema(bytes, at) === CUSTOM_BUCKETS_SCHEMA;
  p += 8; // zero threshold
  if (float) p += 16; // zero count, count
  else if ((p = _skipVarint(bytes, _skipVarint(bytes, p))) < 0) return -1;
  p += 8; // sum
  for (let list = 0; list < 2; list++) { // spans: offset (varint), length (uvarint)
    const n = _smallUvarint(bytes, p);
    if (n < 0) return -1;
    p = _at;
    for (let i = 0; i < 2 * n && p >= 0; i++) p = _skipVarint(bytes, p);
    if (p < 0) return -1;
  }
  for (let list = 0; list < (custom ? 3 : 2); list++) { // buckets, then custom bounds
    const n = _smallUvarint(bytes, p);
    if (n < 0) return -1;
    p = _at;
    if (float || list === 2) p += 8 * n;
    else for (let i = 0; i < n && p >= 0; i++) p = _skipVarint(bytes, p);
    if (p < 0) return -1;
  }
  return p <= bytes.length ? p : -1;
}

/**
 * Calls `fn` for every histogram of a V1 histogram samples record (types 7-10) with its ref,
 * time, the byte range of the histogram in `bytes` and whether it is a float histogram, nothing
 * decoded (a head replay copies the
 * bytes). Returns false, having called `fn` for nothing, when the record is of another type, is
 * malformed, holds refs or times beyond 2^53, or holds a histogram the decoder would change:
 * a schema it reduces (9-52) or skips (unknown). Those records need {@link decodeRecord}.
 */
export function forEachWalHistogramV1(
  bytes: Uint8Array,
  fn: (ref: number, t: number, start: number, end: number, float: boolean) => void,
): boolean {
  const type = bytes[0];
  if (!(type >= RecordType.HistogramSamples && type <= 10) || bytes.length < 17) return false;
  const float = type === RecordType.FloatHistogramSamples || type === 10;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const refHi = view.getUint32(1);
  const tHi = view.getInt32(9);
  if (refHi >= 0x200000 || tHi >= 0x200000 || tHi < -0x200000) return false;
  const baseRef = refHi * 0x1_0000_0000 + view.getUint32(5);
  const baseT = tHi * 0x1_0000_0000 + view.getUint32(13);
  // A first pass checks every entry, so that fn sees all of them or none.
  for (let pass = 0; pass < 2; pass++) {
    let p = 17;
    while (p < bytes.length) {
      const dref = _smallUvarint(bytes, p);
      if (dref < 0) return false;
      const dt = _smallUvarint(bytes, _at);
      if (dt < 0) return false;
      const start = _at;
      const schema = walHistogramSchema(bytes, start);
      const kept = schema === CUSTOM_BUCKETS_SCHEMA ||
        (schema >= EXPONENTIAL_SCHEMA_MIN_RESERVED && schema <= EXPONENTIAL_SCHEMA_MAX);
      if (!kept) return false;
      const end = walHistogramEnd(bytes, start, float);
      if (end < 0) return false;
      if (pass === 1) {
        const ref = baseRef + (dref % 2 === 0 ? dref / 2 : -(dref + 1) / 2);
        fn(ref, baseT + (dt % 2 === 0 ? dt / 2 : -(dt + 1) / 2), start, end, float);
      }
      p = end;
    }
  }
  return true;
}

/** The schema of a histogram stored as {@link walHistogramEnd} reads it (NaN when malformed). */
export function walHistogramSchema(bytes: Uint8Array, at: number): number {
  const u = _smallUvarint(bytes, at + 1);
  if (u < 0) return NaN;
  return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
}

// Position after the varint at `p`, or -1.
function _skipVarint(bytes: Uint8Array, p: number): number {
  if (p < 0) return -1;
  for (let i = 0; i < 10 && p < bytes.length; i++) if (bytes[p++] < 0x80) return p;
  return -1;
}

// Where _smallUvarint stopped (a module variable: two return values without an allocation).
let _at = 0;

// A uvarint of at most 7 bytes (exact as a double) at `p`, its end in _at; -1 otherwise.
function _smallUvarint(bytes: Uint8Array, p: number, end = bytes.length): number {
  let u = 0;
  let scale = 1;
  for (let i = 0; i < 7 && p < end; i++) {
    const b = bytes[p++];
    u += (b & 0x7f) * scale;
    if (b < 0x80) {
      _at = p;
      return u;
    }
    scale *= 128;
  }
  return -1;
}

// Integer and float histograms share one layout; they differ only in how counts and buckets are
// stored: uvarint counts and varint bucket deltas, or raw float64 bits for all of them.
function _histogram(dec: Decbuf): Histogram {
  return _histogramPayload(dec, () => dec.uvarint64(), () => dec.varint64());
}

function _floatHistogram(dec: Decbuf): FloatHistogram {
  return _histogramPayload(dec, () => dec.be64(), () => dec.be64());
}

function _histogramPayload(
  dec: Decbuf,
  readCount: () => bigint,
  readBucket: () => bigint,
): Histogram & FloatHistogram {
  const counterResetHint = dec.byte();
  const schema = Number(BigInt.asIntN(32, dec.varint64()));
  const zeroThreshold = dec.be64();
  const zeroCount = readCount();
  const count = readCount();
  const sum = dec.be64();
  const positiveSpans = _spans(dec);
  const negativeSpans = _spans(dec);
  const positiveBuckets = _list(dec, readBucket);
  const negativeBuckets = _list(dec, readBucket);
  const customValues = schema === CUSTOM_BUCKETS_SCHEMA ? _list(dec, () => dec.be64()) : [];
  return {
    counterResetHint,
    schema,
    zeroThreshold,
    zeroCount,
    count,
    sum,
    positiveSpans,
    negativeSpans,
    positiveBuckets,
    negativeBuckets,
    customValues,
  };
}

/** The histograms of a record, and how many were left out for an unknown schema. */
interface _Histograms<H> {
  histograms: RefHistogramSample<H>[];
  unknownSchemas?: number;
}

// Prometheus' decoder (record.go, since 3.7) skips a histogram of an unknown schema, with a
// warning, and reduces schemas 9…52 to 8; `keep` does both, counting the skipped ones.
function _keep<H extends Histogram | FloatHistogram>(
  out: _Histograms<H>,
  entry: RefHistogramSample<H>,
  float: boolean,
): void {
  if (!isKnownHistogramSchema(entry.h.schema)) {
    out.unknownSchemas = (out.unknownSchemas ?? 0) + 1;
    return;
  }
  try {
    entry.h = reduceToMaxSchema(entry.h, float);
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    throw new FormatError(
      `error reducing resolution of histogram #${out.histograms.length + 1}: ${e.message}`,
    );
  }
  out.histograms.push(entry);
}

function _histogramsV1<H extends Histogram | FloatHistogram>(
  dec: Decbuf,
  float: boolean,
): _Histograms<H> {
  const out: _Histograms<H> = { histograms: [] };
  const read = float ? _floatHistogram : _histogram;
  _baseDeltaEntries(dec, (ref, t) => _keep(out, { ref, t, h: read(dec) as H }, float));
  return out;
}

function _histogramsV2<H extends Histogram | FloatHistogram>(
  dec: Decbuf,
  float: boolean,
): _Histograms<H> {
  const out: _Histograms<H> = { histograms: [] };
  if (dec.remaining === 0) return out;
  const read = float ? _floatHistogram : _histogram;
  // Unlike SamplesV2, the first entry's ref, t and st come before any histogram and the first
  // entry has no marker byte. Deltas are to the previous entry even when that one was left out
  // for its schema, as in Go (record_test.go TestRecord_DecodeV2UnknownFirstHistogramSchema).
  let ref = dec.varint64();
  const firstT = dec.varint64();
  const firstST = dec.varint64();
  let t = firstT;
  let st = firstST;
  for (let first = true; dec.remaining > 0; first = false) {
    if (!first) {
      ref += dec.varint64();
      t = _i64(firstT + dec.varint64());
      st = _stMarker(dec, st, firstST);
    }
    ref = _u64(ref);
    _keep(out, { ref, t, st, h: read(dec) as H }, float);
  }
  return out;
}

/** Short name of a record type code, as Prometheus' `Type.String()` gives it. */
export function recordTypeName(code: number): string {
  return _NAMES[code] ?? "unknown";
}

const _NAMES: Record<number, string> = {
  1: "series",
  2: "samples",
  3: "tombstones",
  4: "exemplars",
  5: "mmapmarkers",
  6: "metadata",
  7: "histogram_samples",
  8: "float_histogram_samples",
  9: "custom_buckets_histogram_samples",
  10: "custom_buckets_float_histogram_samples",
  11: "samples_v2",
  12: "histogram_samples_v2",
  13: "float_histogram_samples_v2",
};
