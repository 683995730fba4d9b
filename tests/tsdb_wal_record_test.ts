// Record decoding: hand-built records for every type (signed deltas, 64-bit edges, StaleNaN),
// then the records real Prometheus 3.5.3 wrote (native histograms, NHCB, metadata).
import assert from "node:assert/strict";
import { Decbuf, Encbuf, FormatError } from "../mod/tsdb/encoding.ts";
import { STALE_NAN_BITS } from "../mod/tsdb/chunkenc/xor.ts";
import type { Label } from "../mod/tsdb/index.ts";
import {
  absoluteBuckets,
  decodeRecord,
  decodeWalHistogram,
  float64Bits,
  float64FromBits,
  type FloatHistogram,
  forEachSeries,
  forEachWalHistogramV1,
  type Histogram,
  isKnownHistogramSchema,
  isStaleNaN,
  RecordType,
  recordTypeName,
} from "../mod/tsdb/record.ts";
import { listSegments, WalReader, WalSegmentWriter } from "../mod/tsdb/wlog.ts";
import { reduceHistogramResolution } from "../mod/tsdb/histogram_schema.ts";
import { histogramsV1Record, histogramsV2Record } from "./_wal_records.ts";
import { seededRandom } from "./_random.ts";
import { labelsKey } from "../mod/tsdb/series_runs.ts";

const FIXTURES = new URL("./testdata/wal/", import.meta.url).pathname;

function labels(enc: Encbuf, pairs: [string, string][]): void {
  enc.uvarint(pairs.length);
  for (const [n, v] of pairs) enc.uvarintString(n).uvarintString(v);
}

const L = (pairs: [string, string][]): Label[] => pairs.map(([name, value]) => ({ name, value }));

Deno.test("series, samples, tombstones, exemplars, markers, metadata decode exactly", () => {
  const series = new Encbuf().byte(1);
  series.be64(7n);
  labels(series, [["__name__", "up"], ["note", "café ☕"]]);
  series.be64(2n ** 64n - 1n);
  labels(series, []);
  assert.deepEqual(decodeRecord(series.get()), {
    type: "series",
    code: 1,
    series: [
      { ref: 7n, labels: L([["__name__", "up"], ["note", "café ☕"]]) },
      { ref: 2n ** 64n - 1n, labels: [] },
    ],
  });

  // Samples: the first entry repeats the base with deltas 0; later deltas may be negative.
  const samples = new Encbuf().byte(2).be64(100n).be64(-5000n);
  samples.varint(0).varint(0).be64(STALE_NAN_BITS);
  samples.varint(-3).varint(-1000).be64(float64Bits(1));
  samples.varint(5).varint(2n ** 40n).be64(0x7ff8000000000001n);
  const s = decodeRecord(samples.get());
  assert.deepEqual(s, {
    type: "samples",
    code: 2,
    samples: [
      { ref: 100n, t: -5000n, v: STALE_NAN_BITS },
      { ref: 97n, t: -6000n, v: 0x3ff0000000000000n },
      { ref: 105n, t: 2n ** 40n - 5000n, v: 0x7ff8000000000001n },
    ],
  });
  assert.ok(s.type === "samples" && isStaleNaN(s.samples[0].v) && !isStaleNaN(s.samples[2].v));
  assert.ok(Number.isNaN(float64FromBits(STALE_NAN_BITS)));
  assert.deepEqual(decodeRecord(Uint8Array.of(2)), { type: "samples", code: 2, samples: [] });

  const tomb = new Encbuf().byte(3).be64(9n).varint(-10).varint(2n ** 62n);
  assert.deepEqual(decodeRecord(tomb.get()), {
    type: "tombstones",
    code: 3,
    tombstones: [{ ref: 9n, mint: -10n, maxt: 2n ** 62n }],
  });

  const ex = new Encbuf().byte(4).be64(10n).be64(1000n);
  ex.varint(0).varint(0).be64(float64Bits(0.5));
  labels(ex, [["trace_id", "abc"]]);
  ex.varint(2).varint(-1).be64(float64Bits(-2));
  labels(ex, []);
  assert.deepEqual(decodeRecord(ex.get()), {
    type: "exemplars",
    code: 4,
    exemplars: [
      { ref: 10n, t: 1000n, v: float64Bits(0.5), labels: L([["trace_id", "abc"]]) },
      { ref: 12n, t: 999n, v: float64Bits(-2), labels: [] },
    ],
  });

  const mm = new Encbuf().byte(5).be64(3n).be64((4n << 32n) | 8n);
  assert.deepEqual(decodeRecord(mm.get()), {
    type: "mmapMarkers",
    code: 5,
    markers: [{ ref: 3n, mmapRef: (4n << 32n) | 8n }],
  });

  const md = new Encbuf().byte(6).uvarint(300).byte(1).uvarint(3);
  md.uvarintString("UNIT").uvarintString("seconds").uvarintString("HELP").uvarintString("Help.");
  md.uvarintString("FUTURE").uvarintString("x");
  md.uvarint(301).byte(9).uvarint(0);
  assert.deepEqual(decodeRecord(md.get()), {
    type: "metadata",
    code: 6,
    metadata: [
      {
        ref: 300n,
        type: 1,
        unit: "seconds",
        help: "Help.",
        fields: [["UNIT", "seconds"], ["HELP", "Help."], ["FUTURE", "x"]],
      },
      { ref: 301n, type: 9, unit: "", help: "", fields: [] },
    ],
  });
});

// record.go on main (tsdb/record/record.go:37-66 and Type.String() at :69-100, at d15adb9ad7): the
// type codes and names, nothing else. 14 was decoded here once as a "MinValidTime" that no
// Prometheus release writes; unreleased branches use 14 for records of their own.
Deno.test("record types and names are exactly record.go's; 14 is unknown", () => {
  assert.deepEqual(RecordType, {
    Series: 1,
    Samples: 2,
    Tombstones: 3,
    Exemplars: 4,
    MmapMarkers: 5,
    Metadata: 6,
    HistogramSamples: 7,
    FloatHistogramSamples: 8,
    CustomBucketsHistogramSamples: 9,
    CustomBucketsFloatHistogramSamples: 10,
    SamplesV2: 11,
    HistogramSamplesV2: 12,
    FloatHistogramSamplesV2: 13,
  });
  const names = [
    "unknown",
    "series",
    "samples",
    "tombstones",
    "exemplars",
    "mmapmarkers",
    "metadata",
    "histogram_samples",
    "float_histogram_samples",
    "custom_buckets_histogram_samples",
    "custom_buckets_float_histogram_samples",
    "samples_v2",
    "histogram_samples_v2",
    "float_histogram_samples_v2",
    "unknown",
  ];
  assert.deepEqual(names.map((_, code) => recordTypeName(code)), names);
  assert.equal(recordTypeName(255), "unknown");
  // A 14 of any length (a resource update of a Prometheus branch, say) is skipped, not decoded.
  for (const body of [[], [0xff], new Array(9).fill(7), new Array(300).fill(1)]) {
    const rec = Uint8Array.of(14, ...body);
    assert.deepEqual(decodeRecord(rec), { type: "unknown", code: 14, length: rec.length });
  }
});

Deno.test("SamplesV2: varint header, ref deltas to the previous sample, ST markers", () => {
  const enc = new Encbuf().byte(11);
  enc.varint(50).varint(1_000).varint(900).be64(float64Bits(1)); // first: ref, t, st, v
  enc.varint(-2).varint(10).byte(1).be64(float64Bits(2)); // same ST as previous
  enc.varint(5).varint(20).byte(0).be64(STALE_NAN_BITS); // no ST
  enc.varint(0).varint(30).byte(2).varint(-100).be64(float64Bits(4)); // explicit: firstST + Δ
  enc.varint(1).varint(40).byte(1).be64(float64Bits(5)); // same as the previous (800), not first
  assert.deepEqual(decodeRecord(enc.get()), {
    type: "samples",
    code: 11,
    samples: [
      { ref: 50n, t: 1000n, st: 900n, v: float64Bits(1) },
      { ref: 48n, t: 1010n, st: 900n, v: float64Bits(2) },
      { ref: 53n, t: 1020n, st: 0n, v: STALE_NAN_BITS },
      { ref: 53n, t: 1030n, st: 800n, v: float64Bits(4) },
      { ref: 54n, t: 1040n, st: 800n, v: float64Bits(5) },
    ],
  });
});

function putHistogram(enc: Encbuf, schema: number, float: boolean, custom: number[] = []): void {
  enc.byte(2).varint(schema).be64(float64Bits(1e-128));
  if (float) enc.be64(float64Bits(1)).be64(float64Bits(6)).be64(float64Bits(12.5));
  else enc.uvarint(1).uvarint(6).be64(float64Bits(12.5));
  enc.uvarint(2).varint(-1).uvarint(2).varint(3).uvarint(1); // positive spans
  enc.uvarint(0); // no negative spans
  enc.uvarint(3);
  if (float) { for (const b of [2, 1, 2]) enc.be64(float64Bits(b)); }
  else for (const d of [2, -1, 1]) enc.varint(d);
  enc.uvarint(0);
  if (schema === -53) {
    enc.uvarint(custom.length);
    for (const c of custom) enc.be64(float64Bits(c));
  }
}

Deno.test("histogram records 7-10 and 12/13 (V2) decode, custom bounds only for schema -53", () => {
  const h7 = new Encbuf().byte(7).be64(20n).be64(5000n);
  h7.varint(0).varint(0);
  putHistogram(h7, 3, false);
  h7.varint(-1).varint(15);
  putHistogram(h7, -4, false);
  const d7 = decodeRecord(h7.get());
  assert.ok(d7.type === "histograms");
  assert.equal(d7.code, 7);
  assert.deepEqual(d7.histograms.map((h) => [h.ref, h.t, h.st, h.h.schema]), [
    [20n, 5000n, undefined, 3],
    [19n, 5015n, undefined, -4],
  ]);
  const h: Histogram = d7.histograms[0].h;
  assert.deepEqual(h, {
    counterResetHint: 2,
    schema: 3,
    zeroThreshold: float64Bits(1e-128),
    zeroCount: 1n,
    count: 6n,
    sum: float64Bits(12.5),
    positiveSpans: [{ offset: -1, length: 2 }, { offset: 3, length: 1 }],
    negativeSpans: [],
    positiveBuckets: [2n, -1n, 1n],
    negativeBuckets: [],
    customValues: [],
  });
  assert.deepEqual(absoluteBuckets(h.positiveBuckets), [2n, 1n, 2n]);

  const h9 = new Encbuf().byte(9).be64(1n).be64(0n).varint(0).varint(0);
  putHistogram(h9, -53, false, [0.1, 1, 10]);
  const d9 = decodeRecord(h9.get());
  assert.ok(d9.type === "histograms" && d9.code === 9);
  assert.deepEqual(d9.histograms[0].h.customValues, [0.1, 1, 10].map(float64Bits));

  for (const code of [8, 10] as const) {
    const enc = new Encbuf().byte(code).be64(4n).be64(77n).varint(0).varint(0);
    putHistogram(enc, code === 10 ? -53 : 0, true, [5]);
    const d = decodeRecord(enc.get());
    assert.ok(d.type === "floatHistograms" && d.code === code);
    const fh: FloatHistogram = d.histograms[0].h;
    assert.equal(float64FromBits(fh.count), 6);
    assert.deepEqual(fh.positiveBuckets.map(float64FromBits), [2, 1, 2]);
    assert.deepEqual(fh.customValues, code === 10 ? [float64Bits(5)] : []);
  }

  // V2: the first entry's ref/t/st come first, with no marker; later entries have one.
  for (const code of [12, 13] as const) {
    const enc = new Encbuf().byte(code).varint(30).varint(100).varint(90);
    putHistogram(enc, 1, code === 13);
    enc.varint(4).varint(5).byte(1);
    putHistogram(enc, 1, code === 13);
    enc.varint(-1).varint(6).byte(2).varint(3);
    putHistogram(enc, -53, code === 13, [1, 2]);
    const d = decodeRecord(enc.get());
    assert.ok(d.type === (code === 12 ? "histograms" : "floatHistograms"));
    assert.deepEqual(
      d.histograms.map((x) => [x.ref, x.t, x.st, x.h.schema, x.h.customValues.length]),
      [[30n, 100n, 90n, 1, 0], [34n, 105n, 90n, 1, 0], [33n, 106n, 93n, -53, 2]],
    );
  }
  // histogram.IsKnownSchema (model/histogram/generic.go:86): custom buckets and -9…52.
  for (const schema of [-53, -9, -5, -4, 0, 8, 9, 52]) assert.ok(isKnownHistogramSchema(schema));
  for (const schema of [-54, -52, -10, 53, 100]) assert.ok(!isKnownHistogramSchema(schema));
});

/** An integer histogram: absolute bucket counts in, delta-encoded as the WAL stores them. */
function intHistogram(
  schema: number,
  spans: [number, number][],
  counts: number[],
  negative: { spans: [number, number][]; counts: number[] } = { spans: [], counts: [] },
): Histogram {
  const deltas = (c: number[]) => c.map((x, i) => BigInt(x - (i > 0 ? c[i - 1] : 0)));
  const toSpans = (s: [number, number][]) => s.map(([offset, length]) => ({ offset, length }));
  const all = [...counts, ...negative.counts];
  return {
    counterResetHint: 0,
    schema,
    zeroThreshold: float64Bits(0.001),
    zeroCount: 2n,
    count: BigInt(2 + all.reduce((a, b) => a + b, 0)),
    sum: float64Bits(18.4),
    positiveSpans: toSpans(spans),
    negativeSpans: toSpans(negative.spans),
    positiveBuckets: deltas(counts),
    negativeBuckets: deltas(negative.counts),
    customValues: [],
  };
}

/** The same histogram with float counts (absolute, as float64 bits). */
function toFloat(h: Histogram): FloatHistogram {
  const f = (x: bigint) => float64Bits(Number(x));
  return {
    ...h,
    zeroCount: f(h.zeroCount),
    count: f(h.count),
    positiveBuckets: absoluteBuckets(h.positiveBuckets).map(f),
    negativeBuckets: absoluteBuckets(h.negativeBuckets).map(f),
  };
}

Deno.test("resolution reduction gives what Go's reduceResolution tests expect", () => {
  // model/histogram/generic_test.go:181 TestReduceResolutionHistogram and :229 (float): schema 0
  // to -1, with an empty span in the middle.
  const h = intHistogram(0, [[0, 4], [0, 0], [3, 2]], [1, 3, 1, 2, 1, 1]);
  assert.deepEqual(h.positiveBuckets, [1n, 2n, -2n, 1n, -1n, 0n]); // Go's input deltas
  const r = reduceHistogramResolution(h, -1, false);
  assert.deepEqual(r.positiveSpans, [{ offset: 0, length: 3 }, { offset: 1, length: 1 }]);
  assert.deepEqual(r.positiveBuckets, [1n, 3n, -2n, 0n]);
  assert.equal(r.schema, -1);
  assert.deepEqual([r.count, r.zeroCount, r.sum], [h.count, h.zeroCount, h.sum]);
  assert.deepEqual(h.positiveBuckets, [1n, 2n, -2n, 1n, -1n, 0n], "the input is not changed");
  const f = reduceHistogramResolution(toFloat(h), -1, true);
  assert.deepEqual(f.positiveSpans, r.positiveSpans);
  assert.deepEqual(f.positiveBuckets.map(float64FromBits), [1, 4, 2, 2]);
  assert.throws(() => reduceHistogramResolution(h, 0, false), RangeError);
});

Deno.test("schemas 9 and 52 decode reduced to 8 in records 7, 8, 12 and 13", () => {
  // record_test.go:842 TestRecord_DecodeTooHighResolutionHistogramSchema and :879 (float): the
  // histogram of spans {0,2},{1,2} and deltas 1,1,-1,0 (absolute 1,2,1,1 at indexes 0,1,3,4).
  // Schema 9 → 8 halves the indexes (⌈i/2⌉): 0→0, 1→1, 3→2, 4→2. Schema 52 → 8 divides them by
  // 2^44: index 0 stays, 1…4 all go to 1.
  const want = new Map([
    [9, { spans: [{ offset: 0, length: 3 }], counts: [1, 2, 2] }],
    [52, { spans: [{ offset: 0, length: 2 }], counts: [1, 4] }],
  ]);
  for (const [schema, w] of want) {
    const h = intHistogram(schema, [[0, 2], [1, 2]], [1, 2, 1, 1], {
      spans: [[-3, 1], [2, 2]],
      counts: [5, 1, 1],
    });
    const records = [
      histogramsV1Record(7, [{ ref: 56, t: 1234n, h }]),
      histogramsV1Record(8, [{ ref: 56, t: 1234n, h: toFloat(h) }]),
      histogramsV2Record(12, [{ ref: 56, t: 1234n, st: 1000n, h }]),
      histogramsV2Record(13, [{ ref: 56, t: 1234n, st: 1000n, h: toFloat(h) }]),
    ];
    for (const rec of records) {
      const d = decodeRecord(rec);
      assert.ok(d.type === "histograms" || d.type === "floatHistograms");
      assert.equal(d.histograms.length, 1);
      const got = d.histograms[0];
      const float = d.type === "floatHistograms";
      const counts = (x: typeof got.h, neg: boolean) => {
        const b = neg ? x.negativeBuckets : x.positiveBuckets;
        return float ? b.map(float64FromBits) : absoluteBuckets(b).map(Number);
      };
      assert.equal(got.h.schema, 8, `record ${d.code} schema ${schema}`);
      assert.deepEqual(got.h.positiveSpans, w.spans, `record ${d.code} schema ${schema}`);
      assert.deepEqual(counts(got.h, false), w.counts, `record ${d.code} schema ${schema}`);
      // Negative indexes -3, 0, 1 (counts 5, 1, 1): at 9 → 8, -3 → -1, and 0, 1 → 0, 1.
      const negative = schema === 9 ? [[{ offset: -1, length: 3 }], [5, 1, 1]] : [
        [{ offset: 0, length: 2 }],
        [6, 1],
      ];
      assert.deepEqual([got.h.negativeSpans, counts(got.h, true)], negative);
      const count = float ? toFloat(h).count : h.count;
      assert.deepEqual([got.ref, got.t, got.h.count, got.h.sum], [56n, 1234n, count, h.sum]);
      assert.equal(got.h.zeroThreshold, h.zeroThreshold);
      assert.equal(d.unknownSchemas, undefined);
    }
  }
});

Deno.test("reduced buckets hold what the original buckets held (random schemas 9-52)", () => {
  // An independent check of the span walk: a bucket i of schema s covers
  // (2^((i-1)/2^s), 2^(i/2^s)], which lies inside bucket ⌈i/2^(s-8)⌉ of schema 8.
  const rnd = seededRandom(12);
  const ceilDiv = (i: bigint, d: bigint) => (i > 0n ? (i + d - 1n) / d : -((-i) / d));
  for (let n = 0; n < 300; n++) {
    const schema = 9 + Math.floor(rnd() * 44);
    const spans: [number, number][] = [];
    const counts: number[] = [];
    const wantByIndex = new Map<bigint, number>();
    let idx = Math.floor((rnd() - 0.5) * 2 ** (Math.min(schema, 30)));
    for (let k = 0; k < 1 + Math.floor(rnd() * 4); k++) {
      const offset = k === 0 ? idx : Math.floor(rnd() * 2 ** Math.floor(rnd() * 20));
      if (k > 0) idx += offset;
      const length = Math.floor(rnd() * 6);
      spans.push([offset, length]);
      for (let j = 0; j < length; j++, idx++) {
        const c = Math.floor(rnd() * 100);
        counts.push(c);
        const target = ceilDiv(BigInt(idx), 2n ** BigInt(schema - 8));
        wantByIndex.set(target, (wantByIndex.get(target) ?? 0) + c);
      }
    }
    const h = intHistogram(schema, spans, counts);
    for (const float of [false, true]) {
      const d = decodeRecord(
        histogramsV1Record(float ? 8 : 7, [{ ref: 1, t: 0n, h: float ? toFloat(h) : h }]),
      );
      assert.ok(d.type === "histograms" || d.type === "floatHistograms");
      const r = d.histograms[0].h;
      assert.equal(r.schema, 8);
      const got = new Map<bigint, number>();
      const values = float ? r.positiveBuckets.map(float64FromBits) : absoluteBuckets(
        r.positiveBuckets,
      ).map(Number);
      let i = 0;
      let at = 0n;
      for (const s of r.positiveSpans) {
        at += BigInt(s.offset);
        for (let j = 0; j < s.length; j++, at++) got.set(at, values[i++]);
      }
      assert.equal(i, values.length);
      assert.deepEqual(got, wantByIndex, `schema ${schema} spans ${JSON.stringify(spans)}`);
    }
  }
});

Deno.test("histograms of unknown schemas are left out and counted, -9…-5 and -53 kept", () => {
  // record_test.go:658 TestRecord_DecodeInvalidHistogramSchema (-100, 100) and the limits of
  // IsKnownSchema: -10 and 53 are unknown, -9 and -5 are kept as they are (no reduction).
  const h = (schema: number) => intHistogram(schema, [[0, 2], [1, 2]], [1, 2, 1, 1]);
  const nhcb: Histogram = { ...h(-53), zeroThreshold: 0n, zeroCount: 0n, count: 5n };
  nhcb.customValues = [1, 2, 4, 8, 16].map(float64Bits);
  const schemas = [-100, -10, -9, 100, -5, 53, -53];
  const samples = schemas.map((schema, i) => ({
    ref: 10 + i,
    t: 1000n + BigInt(i),
    st: 500n,
    h: schema === -53 ? nhcb : h(schema),
  }));
  for (const rec of [histogramsV1Record(7, samples), histogramsV2Record(12, samples)]) {
    const d = decodeRecord(rec);
    assert.ok(d.type === "histograms");
    assert.equal(d.unknownSchemas, 4);
    assert.deepEqual(d.histograms.map((x) => [x.ref, x.t, x.h.schema]), [
      [12n, 1002n, -9],
      [14n, 1004n, -5],
      [16n, 1006n, -53],
    ]);
    assert.deepEqual(d.histograms[0].h.positiveBuckets, h(-9).positiveBuckets);
    assert.deepEqual(d.histograms[2].h.customValues, nhcb.customValues);
  }
  // record_test.go:732 TestRecord_DecodeV2UnknownFirstHistogramSchema: the first entry (ref 56)
  // is left out, the second's ref delta (-14) and "same st" marker still refer to it.
  for (const code of [12, 13] as const) {
    const first = intHistogram(-100, [[0, 2], [1, 2]], [1, 2, 1, 1]);
    const second = intHistogram(1, [[0, 2], [2, 2]], [1, 2, 1, 1]);
    const f = code === 13 ? toFloat : (x: Histogram) => x;
    const d = decodeRecord(histogramsV2Record(code, [
      { ref: 56, st: 1000n, t: 1234n, h: f(first) },
      { ref: 42, st: 1000n, t: 5678n, h: f(second) },
    ]));
    assert.ok(d.type === "histograms" || d.type === "floatHistograms");
    assert.deepEqual(d.histograms, [{ ref: 42n, st: 1000n, t: 5678n, h: f(second) }]);
    assert.equal(d.unknownSchemas, 1);
  }
});

Deno.test("a schema-9 histogram whose spans need more buckets than it has is a FormatError", () => {
  const bad = intHistogram(9, [[0, 3]], [1, 2, 3]);
  bad.positiveSpans = [{ offset: 0, length: 4 }];
  assert.throws(
    () => decodeRecord(histogramsV1Record(7, [{ ref: 1, t: 5n, h: bad }])),
    (e) =>
      e instanceof FormatError &&
      /^record type 7: error reducing resolution of histogram #1: .*spans need more/.test(
        e.message,
      ),
  );
  bad.positiveSpans = [{ offset: 0, length: 1 }, { offset: -1, length: 2 }];
  assert.throws(
    () => decodeRecord(histogramsV2Record(13, [{ ref: 1, t: 5n, h: toFloat(bad) }])),
    /record type 13: .*offset is negative/,
  );
});

Deno.test("unknown types are reported by code; malformed records throw FormatError", () => {
  assert.deepEqual(decodeRecord(Uint8Array.of(99, 1, 2, 3)), {
    type: "unknown",
    code: 99,
    length: 4,
  });
  assert.deepEqual(decodeRecord(Uint8Array.of(0)), { type: "unknown", code: 0, length: 1 });
  assert.deepEqual(decodeRecord(Uint8Array.of(255, 9)), { type: "unknown", code: 255, length: 2 });
  assert.deepEqual(decodeRecord(new Uint8Array(0)), { type: "unknown", code: -1, length: 0 });
  assert.equal(recordTypeName(RecordType.FloatHistogramSamples), "float_histogram_samples");
  assert.equal(recordTypeName(200), "unknown");
  // Cut short, and bytes left over.
  const samples = new Encbuf().byte(2).be64(1n).be64(2n).varint(0).varint(0).be64(3n).get();
  assert.throws(() => decodeRecord(samples.subarray(0, samples.length - 1)), FormatError);
  assert.throws(() => decodeRecord(Uint8Array.of(5, 0, 0, 0, 0, 0, 0, 0, 1, 0)), FormatError);
  assert.throws(() => decodeRecord(Uint8Array.of(3, 0, 0, 0, 0, 0, 0, 0, 1, 0)), /type 3: unexp/);
  // A huge bucket count runs out of bytes instead of allocating.
  const h = new Encbuf().byte(7).be64(1n).be64(1n).varint(0).varint(0);
  h.byte(0).varint(0).be64(0n).uvarint(0).uvarint(0).be64(0n).uvarint(0).uvarint(0);
  h.uvarint(2 ** 40);
  assert.throws(() => decodeRecord(h.get()), /record type 7: unexpected end/);
});

Deno.test("StaleNaN survives writing, snappy compression, reading and decoding", async () => {
  const dir = await Deno.makeTempDir({ prefix: "promcase-wal-test-" });
  try {
    const enc = new Encbuf().byte(2).be64(1n).be64(1000n);
    for (let i = 0; i < 200; i++) enc.varint(i % 4).varint(i * 15).be64(STALE_NAN_BITS);
    const w = await WalSegmentWriter.create(`${dir}/00000000`, { compression: "snappy" });
    await w.log(enc.get());
    await w.close();
    const recs = [];
    const reader = await WalReader.fromDir(dir);
    for await (const r of reader) recs.push(decodeRecord(r.bytes));
    assert.equal(reader.stats.snappyRecords, 1);
    assert.ok(recs[0].type === "samples");
    assert.equal(recs[0].samples.length, 200);
    assert.ok(recs[0].samples.every((s) => s.v === STALE_NAN_BITS));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

interface Manifest {
  startMs: number;
  stopMs: number;
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));
const sumF = (xs: bigint[]) => xs.reduce((acc, x) => acc + float64FromBits(x), 0);

function checkHistogram(h: Histogram, custom: boolean, what: string): void {
  assert.ok(custom ? h.schema === -53 : h.schema >= -4 && h.schema <= 8, `${what} schema`);
  assert.ok(h.counterResetHint >= 0 && h.counterResetHint <= 3, what);
  assert.ok(h.count >= h.zeroCount && h.zeroCount >= 0n, what);
  const spanned = h.positiveSpans.reduce((n, s) => n + s.length, 0);
  assert.equal(spanned, h.positiveBuckets.length, `${what} spans cover the buckets`);
  const pos = absoluteBuckets(h.positiveBuckets);
  const neg = absoluteBuckets(h.negativeBuckets);
  assert.ok([...pos, ...neg].every((c) => c >= 0n), `${what} bucket counts >= 0`);
  // Prometheus' own histograms observe no NaNs, so the buckets add up to the count.
  assert.equal([...pos, ...neg].reduce((a, b) => a + b, h.zeroCount), h.count, what);
  assert.ok(float64FromBits(h.sum) >= 0, what);
  if (custom) {
    const bounds = h.customValues.map(float64FromBits);
    assert.ok(bounds.length > 0 && bounds.every((b, i) => i === 0 || b > bounds[i - 1]), what);
    assert.equal(h.negativeSpans.length, 0, what);
  } else {
    assert.equal(h.customValues.length, 0, what);
  }
}

function checkFloatHistogram(h: FloatHistogram, custom: boolean, what: string): void {
  assert.ok(custom ? h.schema === -53 : h.schema >= -4 && h.schema <= 8, `${what} schema`);
  const count = float64FromBits(h.count);
  assert.ok(count >= 0 && float64FromBits(h.zeroCount) >= 0, what);
  const buckets = [...h.positiveBuckets, ...h.negativeBuckets];
  assert.ok(buckets.every((b) => float64FromBits(b) >= 0), what);
  assert.ok(close(sumF(buckets) + float64FromBits(h.zeroCount), count), `${what} count`);
  assert.equal(
    h.positiveSpans.reduce((n, s) => n + s.length, 0),
    h.positiveBuckets.length,
    what,
  );
  if (custom) assert.ok(h.customValues.length > 0, what);
}

for (const name of ["zstd", "snappy", "none"] as const) {
  Deno.test(`3.5.3 ${name} fixture: every record decodes to sane values`, async () => {
    const manifest: Manifest = JSON.parse(
      await Deno.readTextFile(`${FIXTURES}${name}/manifest.json`),
    );
    const segments = await listSegments(`${FIXTURES}${name}/wal`);
    const series = new Map<bigint, Map<string, string>>();
    const codes = new Map<number, number>();
    const times: bigint[] = [];
    const up: bigint[] = [];
    const meta = new Map<string, { type: number; help: string }>();
    const nameOf = (ref: bigint) => {
      const l = series.get(ref);
      assert.ok(l, `unknown series ref ${ref}`);
      return l.get("__name__")!;
    };
    for await (const rec of new WalReader(segments)) {
      const d = decodeRecord(rec.bytes);
      codes.set(d.code, (codes.get(d.code) ?? 0) + 1);
      switch (d.type) {
        case "series":
          for (const s of d.series) {
            assert.ok(!series.has(s.ref), "a series is logged once");
            const names = s.labels.map((l) => l.name);
            assert.deepEqual(names, [...names].sort(), "labels sorted by name");
            series.set(s.ref, new Map(s.labels.map((l) => [l.name, l.value])));
          }
          break;
        case "samples":
          for (const s of d.samples) {
            times.push(s.t);
            if (nameOf(s.ref) === "up" && series.get(s.ref)!.get("job") === "prometheus") {
              up.push(s.v);
            }
          }
          break;
        case "histograms":
          for (const h of d.histograms) {
            times.push(h.t);
            checkHistogram(h.h, d.code === 9, `${nameOf(h.ref)}@${h.t}`);
          }
          break;
        case "floatHistograms":
          for (const h of d.histograms) {
            times.push(h.t);
            checkFloatHistogram(h.h, d.code === 10, `${nameOf(h.ref)}@${h.t}`);
          }
          break;
        case "metadata":
          for (const m of d.metadata) meta.set(nameOf(m.ref), { type: m.type, help: m.help });
          break;
        default:
          assert.fail(`unexpected record ${d.type} (${d.code})`);
      }
    }
    // Native histograms (7), float histograms from the rules (8), custom-bucket conversions (9)
    // and their sums (10), metadata (6): every kind the run was set up to write.
    assert.deepEqual([...codes.keys()].sort((a, b) => a - b), [1, 2, 6, 7, 8, 9, 10]);
    assert.ok(up.length >= 2);
    assert.ok(up.every((v) => v === float64Bits(1) || isStaleNaN(v)));
    const lo = BigInt(manifest.startMs - 1000);
    const hi = BigInt(manifest.stopMs + 1000);
    assert.ok(times.every((t) => t >= lo && t <= hi), "samples lie within the run");
    // Metadata as Prometheus exposes it.
    assert.equal(meta.get("prometheus_http_requests_total")?.type, 1);
    assert.equal(meta.get("go_goroutines")?.type, 2);
    assert.equal(meta.get("prometheus_http_request_duration_seconds")?.type, 3);
    assert.match(meta.get("go_goroutines")?.help ?? "", /goroutines/);
  });
}

Deno.test("3.5.3 none fixture: the record cut into first, middle and last fragments", async () => {
  const segments = await listSegments(`${FIXTURES}none/wal`);
  let big = 0;
  for await (const rec of new WalReader(segments)) {
    if (rec.bytes.length <= 2 * 32768) continue;
    const d = decodeRecord(rec.bytes);
    assert.ok(d.type === "series");
    assert.ok(d.series.length > 100);
    assert.ok(
      d.series.every((s) => s.labels.some((l) => l.name === "pad" && l.value.length === 200)),
    );
    big++;
  }
  assert.equal(big, 1);
});

Deno.test("forEachWalHistogramV1 finds exactly the histograms decodeRecord decodes, or declines", async () => {
  const rnd = seededRandom(21);
  const big = () => BigInt.asUintN(64, BigInt(Math.floor(rnd() * 2 ** 52)) << 12n);
  const records: Uint8Array[] = [];
  for (const code of [7, 8, 9, 10] as const) {
    const float = code === 8 || code === 10;
    for (const schemas of [[0, 3, -4, 8, -9], [-53], [1, 12], [1, 60]]) {
      const samples = schemas.map((schema, i) => ({
        ref: 5 + i * 3,
        t: 1_795_000_000_000n + BigInt(i * 15_000 - 7),
        h: {
          counterResetHint: i % 4,
          schema,
          zeroThreshold: big(),
          zeroCount: float ? big() : BigInt(i * 1000),
          count: float ? big() : BigInt(i * 5000 + 7),
          sum: big(),
          positiveSpans: [{ offset: -3, length: 2 }, { offset: 70_000, length: 1 }],
          negativeSpans: i % 2 ? [] : [{ offset: 2, length: 1 }],
          positiveBuckets: float ? [big(), big(), big()] : [3n, -200_000n, 1n << 40n],
          negativeBuckets: i % 2 ? [] : [float ? big() : -5n],
          customValues: schema === -53 ? [big(), big()] : [],
        },
      }));
      records.push(histogramsV1Record(code, samples));
    }
  }
  // And Prometheus' own: every histogram record of the real WALs in the fixtures.
  for (const dir of [`${FIXTURES}zstd/wal`, `${FIXTURES}snappy/wal`]) {
    for await (const rec of new WalReader(await listSegments(dir))) records.push(rec.bytes);
  }
  let copied = 0;
  let declined = 0;
  for (const bytes of records) {
    const got: { ref: bigint; t: bigint; h: unknown }[] = [];
    const ok = forEachWalHistogramV1(bytes, (ref, t, start, end, float) => {
      const h = decodeWalHistogram(new Decbuf(bytes.subarray(start, end)), float);
      got.push({ ref: BigInt(ref), t: BigInt(t), h });
    });
    const d = decodeRecord(bytes);
    if (!ok) {
      assert.equal(got.length, 0, "nothing reported for a declined record");
      if (d.type === "histograms" || d.type === "floatHistograms") {
        // Declined only for what the decoder changes (a schema reduced to 8 or skipped), or V2.
        assert.ok(
          d.code > 10 || (d.unknownSchemas ?? 0) > 0 || d.histograms.some((h) => h.h.schema === 8),
          `declined a record of type ${d.code}`,
        );
        declined++;
      }
      continue;
    }
    assert.ok(d.type === "histograms" || d.type === "floatHistograms", d.type);
    assert.deepEqual(got, d.histograms.map((x) => ({ ref: x.ref, t: x.t, h: x.h })));
    copied += got.length;
  }
  assert.ok(copied > 20 && declined >= 8, `${copied} copied, ${declined} declined`);
  // A histogram cut short is declined whole.
  const whole = records[0];
  assert.equal(forEachWalHistogramV1(whole.subarray(0, whole.length - 3), () => {}), false);
});

Deno.test("forEachSeries gives each series' labels key as decodeRecord's labels give it, or nothing", () => {
  const rnd = seededRandom(11);
  const utf8 = new TextEncoder();
  // Names and values: ASCII, non-ASCII, empty, a multi-byte character cut in half (invalid UTF-8),
  // long ones (the key buffer grows).
  const strings: Uint8Array[] = [
    utf8.encode("__name__"),
    utf8.encode("up"),
    utf8.encode(""),
    utf8.encode("wert-ä-€-😀"),
    new Uint8Array([0x61, 0xe2, 0x82]),
    new Uint8Array([0xf0, 0x9f, 0x98, 0x80, 0xc3]),
    utf8.encode("x".repeat(3000)),
  ];
  for (let round = 0; round < 200; round++) {
    const e = new Encbuf().byte(1);
    const n = Math.floor(rnd() * 5);
    for (let s = 0; s < n; s++) {
      e.be64(BigInt(Math.floor(rnd() * 2 ** 40)));
      const labels = Math.floor(rnd() * 6);
      e.uvarint(labels);
      for (let l = 0; l < 2 * labels; l++) {
        const b = strings[Math.floor(rnd() * strings.length)];
        e.uvarint(b.length).bytes(b);
      }
    }
    const record = e.get().slice();
    const decoded = decodeRecord(record);
    assert.equal(decoded.type, "series");
    const want = decoded.type === "series"
      ? decoded.series.map((s) => `${s.ref} ${JSON.stringify(labelsKey(s.labels))}`)
      : [];
    const got: string[] = [];
    assert.ok(forEachSeries(record, (ref, key) => got.push(`${ref} ${JSON.stringify(key)}`)));
    assert.deepEqual(got, want);
    // Cut anywhere inside the last series: nothing at all (decodeRecord fails on it).
    if (record.length > 1 && n > 0) {
      const cut = record.subarray(0, record.length - 1 - Math.floor(rnd() * 3));
      const calls: number[] = [];
      const whole = forEachSeries(cut, (ref) => calls.push(ref));
      if (!whole) assert.deepEqual(calls, []);
      else assert.doesNotThrow(() => decodeRecord(cut));
    }
  }
  // Refs past 2^53 and other record types go to decodeRecord.
  const big = new Encbuf().byte(1).be64(2n ** 60n).uvarint(0).get().slice();
  assert.equal(forEachSeries(big, () => assert.fail("called")), false);
  assert.equal(forEachSeries(new Uint8Array([2]), () => assert.fail("called")), false);
});
