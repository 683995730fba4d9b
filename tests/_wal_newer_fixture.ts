/**
 * The "newer WAL" fixture (`tests/testdata/wal_newer/`): a Prometheus data dir whose head holds what
 * releases after 3.5 (and unreleased branches) write, which no installable Prometheus here can
 * write, built record by record from Prometheus' Go source (tsdb/record/record.go on main):
 *
 * - Samples V2 (type 11, 3.11+ with `st-storage`) and histogram samples V2 (12 and 13, 3.12+),
 *   with start timestamps of every marker kind (none, same as the previous sample, explicit), in
 *   the checkpoint (as `wlog.Checkpoint` keeps them) and in the WAL segment after it.
 * - Histograms of schemas above 8 (9, 20, 52: accepted on reading since 3.7 and reduced to 8), of
 *   schema -9 (known, kept as it is), and of schema 100 (unknown: skipped), in records 7, 8, 12, 13.
 * - Out-of-order samples in `wbl/`, as V2 records (a float and a schema-9 float histogram), as a
 *   3.12+ Prometheus with `st-storage` and an out-of-order window writes them.
 * - Records of types no release writes: 14 as the resource updates of the
 *   `feat/in-memory-resource-attrs` branch (one in the checkpoint, which that branch keeps, and one
 *   of 40 000 bytes, cut into fragments), 15, 50, 200 and 255 with bodies of 1, 3, 7 and 2 bytes.
 *
 * {@link WAL_NEWER} describes the samples; {@link writeWalNewer} writes the data dir. The test
 * (`tests/wal_records_newer_test.ts`) derives what Prometheus serves from the description, not
 * from promcase's decoder.
 *
 * @module
 */

import { Encbuf } from "../mod/tsdb/encoding.ts";
import { float64Bits, type FloatHistogram, type Histogram } from "../mod/tsdb/record.ts";
import { WalSegmentWriter } from "../mod/tsdb/wlog.ts";
import { seededRandom } from "./_random.ts";
import {
  histogramsV1Record,
  histogramsV2Record,
  samplesV1Record,
  samplesV2Record,
  seriesRecord,
  type WalHistogramSample,
  type WalSample,
} from "./_wal_records.ts";

/** First scrape: 2026-11-25T10:00:00Z. */
export const T0 = 1_795_600_800_000n;
/** Scrape interval. */
export const STEP = 15_000n;
/** Scrapes in all: 0-3 in the checkpoint, 4-11 in WAL segment 1. */
export const SCRAPES = 12;
/** Scrapes the checkpoint holds. */
const _IN_CHECKPOINT = 4;

/** One histogram series of the fixture. */
export interface FixtureHistogramSeries {
  ref: number;
  labels: [string, string][];
  /** The WAL record type that carries it. */
  code: 7 | 8 | 12 | 13;
  schema: number;
  /** Positive and negative spans as [offset, length] (the same at every scrape). */
  positive: [number, number][];
  negative: [number, number][];
}

/** One float series of the fixture. */
export interface FixtureFloatSeries {
  ref: number;
  labels: [string, string][];
  code: 2 | 11;
}

const _float = (name: string, code: 2 | 11, st?: string): [string, string][] => [
  ["__name__", name],
  ["record", String(code)],
  ...(st ? [["st", st] as [string, string]] : []),
];
const _hist = (code: number, schema: number): [string, string][] => [
  ["__name__", schema === 100 ? "newer_hist_unknown_schema" : "newer_hist"],
  ["record", String(code)],
  ["schema", String(schema)],
];

/** The fixture's series and what each scrape writes. */
export const WAL_NEWER = {
  floats: [
    { ref: 1, labels: _float("newer_floats", 2), code: 2 },
    { ref: 2, labels: _float("newer_floats", 11, "explicit"), code: 11 },
    { ref: 3, labels: _float("newer_floats", 11, "none"), code: 11 },
    { ref: 4, labels: _float("newer_floats", 11, "reset"), code: 11 },
  ] satisfies FixtureFloatSeries[],
  histograms: [
    // Schema 12 → 8 (16 buckets to one): indexes 100-102 go to 7, 133-134 to 9 (a gap).
    {
      ref: 5,
      labels: _hist(7, 12),
      code: 7,
      schema: 12,
      positive: [[100, 3], [30, 2]],
      negative: [],
    },
    // Known but not reduced: bounds 2^-512, 1, 2^512.
    { ref: 6, labels: _hist(7, -9), code: 7, schema: -9, positive: [[0, 2]], negative: [[-1, 2]] },
    // Schema 20 → 8 (4096 to one), with negative buckets -4097 and -4096 merged into -1.
    {
      ref: 7,
      labels: _hist(8, 20),
      code: 8,
      schema: 20,
      positive: [[12289, 2], [4094, 2]],
      negative: [[-4097, 2]],
    },
    // Schema 52 → 8 (2^44 to one): -5…-3 go to 0, 10^9 and up to 1.
    {
      ref: 8,
      labels: _hist(12, 52),
      code: 12,
      schema: 52,
      positive: [[-5, 3], [1_000_000_000, 2]],
      negative: [],
    },
    { ref: 9, labels: _hist(12, 8), code: 12, schema: 8, positive: [[-2, 4]], negative: [[3, 1]] },
    // Schema 9 → 8 (two to one).
    { ref: 10, labels: _hist(13, 9), code: 13, schema: 9, positive: [[1, 4]], negative: [[0, 2]] },
    // Unknown schema: Prometheus skips every sample, so the series has none.
    { ref: 11, labels: _hist(12, 100), code: 12, schema: 100, positive: [[0, 1]], negative: [] },
  ] satisfies FixtureHistogramSeries[],
  /** Unknown records by type, as the replay counts them. */
  unknownRecords: { 14: 3, 15: 1, 50: 1, 200: 1, 255: 1 } as Record<number, number>,
};

/**
 * The out-of-order samples of `wbl/00000000`: float series 2 and histogram series 10 (with the
 * counts of scrape 5) half way between scrapes 5 and 6.
 */
export const OUT_OF_ORDER = {
  t: T0 + 5n * STEP + 7_500n,
  floatRef: 2,
  floatValue: 42.5,
  histogramRef: 10,
  histogramScrape: 5,
};

/** Timestamp of scrape `k`. */
export function scrapeTime(k: number): bigint {
  return T0 + BigInt(k) * STEP;
}

/** The start timestamp of float series `ref` at scrape `k` (0: none). */
export function floatST(ref: number, k: number): bigint {
  if (ref === 2) return T0 - 60_000n;
  // Series 4 is a counter reset at scrape 7: it starts again, with a new start timestamp.
  if (ref === 4) return k < 7 ? T0 - 60_000n : scrapeTime(7) - 1_000n;
  return 0n;
}

/** The value of float series `ref` at scrape `k` (series 3 ends with a stale marker). */
export function floatValue(ref: number, k: number): number {
  switch (ref) {
    case 1:
      return 1.5 * k;
    case 2:
      return 10 + 3 * k;
    case 3:
      return k === SCRAPES - 1 ? NaN : 100 - 0.25 * k;
    default:
      return k < 7 ? 2 * k : 2 * (k - 7) + 1;
  }
}

/** Bits of Prometheus' stale marker. */
const _STALE = 0x7ff0000000000002n;

function _floatSample(ref: number, k: number): WalSample {
  const v = floatValue(ref, k);
  return {
    ref,
    t: scrapeTime(k),
    st: floatST(ref, k),
    v: Number.isNaN(v) ? _STALE : float64Bits(v),
  };
}

/**
 * Absolute counts of the histogram of series `s` at scrape `k`: positive buckets, then negative
 * ones, in span order; they grow with `k` like a counter's.
 */
export function histogramCounts(
  s: FixtureHistogramSeries,
  k: number,
): { positive: number[]; negative: number[]; zero: number; sum: number } {
  const n = (spans: [number, number][]) => spans.reduce((a, [, l]) => a + l, 0);
  const positive = Array.from({ length: n(s.positive) }, (_, j) => (j + 1) * (k + 1));
  const negative = Array.from({ length: n(s.negative) }, (_, j) => (j + 2) * (k + 1));
  return { positive, negative, zero: k, sum: 0.5 * k * (k + 3) };
}

/** Start timestamps of histogram series: set for V2 records, all the same (marker "same"). */
export function histogramST(s: FixtureHistogramSeries): bigint {
  return s.code === 12 || s.code === 13 ? T0 - 30_000n : 0n;
}

function _histogram(
  s: FixtureHistogramSeries,
  k: number,
  float: boolean,
): Histogram | FloatHistogram {
  const c = histogramCounts(s, k);
  const total = c.zero + [...c.positive, ...c.negative].reduce((a, b) => a + b, 0);
  const spans = (x: [number, number][]) => x.map(([offset, length]) => ({ offset, length }));
  const ints = (x: number[]) => x.map((v, i) => BigInt(v - (i > 0 ? x[i - 1] : 0)));
  const floats = (x: number[]) => x.map((v) => float64Bits(v));
  return {
    counterResetHint: 0,
    schema: s.schema,
    zeroThreshold: float64Bits(s.schema === -9 ? 0 : 2.938735877055719e-39),
    zeroCount: float ? float64Bits(c.zero) : BigInt(c.zero),
    count: float ? float64Bits(total) : BigInt(total),
    sum: float64Bits(c.sum),
    positiveSpans: spans(s.positive),
    negativeSpans: spans(s.negative),
    positiveBuckets: float ? floats(c.positive) : ints(c.positive),
    negativeBuckets: float ? floats(c.negative) : ints(c.negative),
    customValues: [],
  };
}

/**
 * The records of scrape `k`, in the order a Prometheus writes them: float samples (V1, then V2
 * with refs out of order so that ref deltas are negative), then the histogram records; in the
 * type 12 record the unknown-schema histogram comes first, so that the entries after it are
 * decoded relative to a skipped one.
 */
function _scrapeRecords(k: number): Uint8Array[] {
  const t = scrapeTime(k);
  const out = [
    samplesV1Record([_floatSample(1, k)]),
    samplesV2Record([_floatSample(4, k), _floatSample(2, k), _floatSample(3, k)]),
  ];
  for (const code of [7, 8, 12, 13] as const) {
    const float = code === 8 || code === 13;
    const series = WAL_NEWER.histograms.filter((s) => s.code === code)
      .sort((a, b) => (a.schema === 100 ? -1 : b.schema === 100 ? 1 : a.ref - b.ref));
    const samples: WalHistogramSample[] = series.map((s) => ({
      ref: s.ref,
      t,
      st: histogramST(s),
      h: _histogram(s, k, float),
    }));
    out.push(
      code === 12 || code === 13
        ? histogramsV2Record(code, samples)
        : histogramsV1Record(code, samples),
    );
  }
  return out;
}

/**
 * A resource update (type 14) as the `feat/in-memory-resource-attrs` branch of Prometheus encodes
 * it (`Encoder.Resources`): per entry uvarint ref, varint min and max time, then the identifying
 * and the descriptive attributes as counted, sorted string maps.
 */
function _resourceUpdate(ref: number, descriptive: Record<string, string>): Uint8Array {
  const e = new Encbuf().byte(14).uvarint(ref).varint(T0).varint(scrapeTime(SCRAPES));
  for (const map of [{ "service.name": "api", "service.namespace": "prod" }, descriptive]) {
    const keys = Object.keys(map).sort();
    e.uvarint(keys.length);
    for (const key of keys) e.uvarintString(key).uvarintString(map[key as keyof typeof map]);
  }
  return e.get().slice();
}

function _noise(n: number): string {
  const rnd = seededRandom(14);
  return Array.from({ length: n }, () => Math.floor(rnd() * 36).toString(36)).join("");
}

function _unknown(code: number, body: number[]): Uint8Array {
  return Uint8Array.of(code, ...body);
}

/**
 * Writes the fixture's data dir in `dir`: `wal/checkpoint.00000000/00000000`, `wal/00000001`
 * and `wbl/00000000`.
 */
export async function writeWalNewer(dir: string): Promise<void> {
  const series = seriesRecord(
    [...WAL_NEWER.floats, ...WAL_NEWER.histograms].map((s) => ({ ref: s.ref, labels: s.labels })),
  );
  await Deno.mkdir(`${dir}/wal/checkpoint.00000000`, { recursive: true });
  // The checkpoint of segment 0: series, then the samples as the segment had them, and the
  // resource update that the branch's checkpoint keeps.
  const cp = await WalSegmentWriter.create(`${dir}/wal/checkpoint.00000000/00000000`);
  await cp.log(series);
  for (let k = 0; k < _IN_CHECKPOINT; k++) {
    for (const rec of _scrapeRecords(k)) await cp.log(rec);
  }
  await cp.log(_resourceUpdate(2, { "host.name": "db1" }));
  await cp.close();
  const seg = await WalSegmentWriter.create(`${dir}/wal/00000001`, { compression: "snappy" });
  const unknown = new Map<number, Uint8Array[]>([
    [4, [_unknown(15, [0x2a])]],
    [5, [_resourceUpdate(3, { "host.name": "db2", "k8s.pod.name": "api-7d4f" })]],
    [6, [_unknown(50, [1, 2, 3])]],
    [8, [_unknown(200, [0, 0, 0, 0, 0, 0, 0])]],
    // About 40 000 bytes that snappy cannot shrink: first and last fragments, in two pages.
    [9, [_resourceUpdate(4, { "note": _noise(40_000) })]],
    [10, [_unknown(255, [0xff, 0x00])]],
  ]);
  for (let k = _IN_CHECKPOINT; k < SCRAPES; k++) {
    for (const rec of _scrapeRecords(k)) await seg.log(rec);
    for (const rec of unknown.get(k) ?? []) await seg.log(rec);
  }
  await seg.close();
  // The WBL after the WAL: Prometheus writes a sample there when it is out of order.
  await Deno.mkdir(`${dir}/wbl`, { recursive: true });
  const wbl = await WalSegmentWriter.create(`${dir}/wbl/00000000`);
  const o = OUT_OF_ORDER;
  const histogram = WAL_NEWER.histograms.find((s) => s.ref === o.histogramRef)!;
  await wbl.log(samplesV2Record([{
    ref: o.floatRef,
    t: o.t,
    st: floatST(o.floatRef, 5),
    v: float64Bits(o.floatValue),
  }]));
  await wbl.log(histogramsV2Record(13, [{
    ref: o.histogramRef,
    t: o.t,
    st: histogramST(histogram),
    h: _histogram(histogram, o.histogramScrape, true),
  }]));
  await wbl.close();
}
