import { seededRandom } from "./_random.ts";
import assert from "node:assert/strict";
import { BlockReader } from "../mod/tsdb/block.ts";
import {
  BitReader,
  CounterResetHeader,
  CounterResetHint,
  decodeFloatHistogram,
  decodeHistogram,
  encodeFloatHistogramChunks,
  encodeHistogramChunks,
  FloatHistogramAppender,
  FloatHistogramChunkEncoder,
  type FloatHistogramSample,
  HistogramAppender,
  type HistogramChunkOptions,
  histogramCounterResetHeader,
  type HistogramSample,
  type HistogramSpan,
  readHistogramLayout,
  STALE_NAN_BITS,
} from "../mod/tsdb/chunkenc/mod.ts";
import { readHeadChunks } from "../mod/tsdb/head_chunks.ts";
import { decodeRecord } from "../mod/tsdb/record.ts";
import { WalReader } from "../mod/tsdb/wlog.ts";

const DATA = new URL("./testdata/tsdb/", import.meta.url).pathname;
const HEAD_FIXTURE = `${DATA}histogram_head`;

type AnySample = HistogramSample | FloatHistogramSample;

const bitsOf = (x: number) => new BigUint64Array(new Float64Array([x]).buffer)[0];
const numOf = (b: bigint) => new Float64Array(new BigUint64Array([b]).buffer)[0];
const GO_NAN = 0x7ff8000000000001n;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function decode(encoding: number, data: Uint8Array): AnySample[] {
  return encoding === 2 ? decodeHistogram(data) : decodeFloatHistogram(data);
}

function encodeAll(float: boolean, samples: AnySample[], o: HistogramChunkOptions = {}) {
  return float
    ? encodeFloatHistogramChunks(samples as FloatHistogramSample[], o)
    : encodeHistogramChunks(samples as HistogramSample[], o);
}

/** Re-encodes a chunk's decoded samples with a fresh appender and that chunk's header. */
function reencode(encoding: number, data: Uint8Array): Uint8Array {
  const header = histogramCounterResetHeader(data);
  if (encoding === 2) {
    const app = new HistogramAppender(header);
    for (const h of decodeHistogram(data)) app.append(h);
    return app.bytes();
  }
  const app = new FloatHistogramAppender(header);
  for (const h of decodeFloatHistogram(data)) app.append(h);
  return app.bytes();
}

async function blockDir(): Promise<string> {
  for await (const e of Deno.readDir(`${DATA}native`)) {
    if (e.isDirectory) return `${DATA}native/${e.name}`;
  }
  throw new Error("no native block");
}

Deno.test("histogram chunks of a real Prometheus 3.5.3 block re-encode bit for bit", async () => {
  const block = await BlockReader.open(await blockDir());
  const seen = { 2: 0, 3: 0, staleChunks: 0, sequences: 0 };
  try {
    for await (const s of block.series()) {
      const hs = s.chunks.filter((c) => c.encoding === 2 || c.encoding === 3);
      if (hs.length === 0) continue;
      const name = s.labels.map((l) => `${l.name}=${l.value}`).join(",");
      for (const c of hs) {
        assert.ok(sameBytes(reencode(c.encoding, c.data), c.data), `${name} chunk ${c.mint}`);
        seen[c.encoding as 2 | 3]++;
        if (decode(c.encoding, c.data).some((h) => h.sum === STALE_NAN_BITS)) seen.staleChunks++;
      }
      // The whole series through the chunk cutter (the block's chunk range is 1 minute).
      const samples = hs.flatMap((c) => decode(c.encoding, c.data));
      const got = encodeAll(hs[0].encoding === 3, samples, { recode: true, chunkRange: 60_000n });
      assert.equal(got.length, hs.length, name);
      for (const [i, c] of hs.entries()) {
        assert.deepEqual([got[i].encoding, got[i].mint, got[i].maxt], [c.encoding, c.mint, c.maxt]);
        assert.ok(sameBytes(got[i].data, c.data), `${name}: chunk ${i} from the cutter`);
      }
      seen.sequences++;
    }
  } finally {
    block.close();
  }
  assert.ok(seen[2] >= 3 && seen[3] >= 2, JSON.stringify(seen));
  assert.equal(seen.staleChunks, 2);
});

/** The WAL's histogram samples per series ref, with names, and the m-mapped head chunks. */
async function headFixture() {
  const names = new Map<bigint, string>();
  const samples = new Map<bigint, { float: boolean; list: AnySample[] }>();
  for await (const rec of await WalReader.fromDir(`${HEAD_FIXTURE}/wal`)) {
    const r = decodeRecord(rec.bytes);
    if (r.type === "series") {
      for (const s of r.series) {
        names.set(
          s.ref,
          s.labels.find((l) => l.name === "__name__")!.value,
        );
      }
    } else if (r.type === "histograms" || r.type === "floatHistograms") {
      for (const h of r.histograms) {
        let e = samples.get(h.ref);
        if (!e) samples.set(h.ref, e = { float: r.type === "floatHistograms", list: [] });
        e.list.push({ ...h.h, t: h.t } as AnySample);
      }
    }
  }
  const chunks = new Map<
    bigint,
    { mint: bigint; maxt: bigint; encoding: number; data: Uint8Array }[]
  >();
  for await (const c of readHeadChunks(`${HEAD_FIXTURE}/chunks_head`)) {
    if (!chunks.has(c.seriesRef)) chunks.set(c.seriesRef, []);
    chunks.get(c.seriesRef)!.push(c);
  }
  return { names, samples, chunks };
}

const layoutKey = (h: AnySample) =>
  JSON.stringify([h.schema, `${h.zeroThreshold}`, h.positiveSpans, h.negativeSpans]);

Deno.test("the head chunks of Prometheus 3.5.3 are rebuilt from its WAL byte for byte", async () => {
  const { names, samples, chunks } = await headFixture();
  assert.equal(samples.size, 12);
  const seen = { chunks: 0, float: 0, headers: new Set<number>(), expanded: 0, padded: 0 };
  for (const [ref, { float, list }] of samples) {
    const name = names.get(ref)!;
    const want = chunks.get(ref) ?? [];
    const got = encodeAll(float, list, { recode: true, chunkRange: 7_200_000n });
    // Prometheus keeps each series' last chunk in memory only (and in the WAL).
    assert.equal(got.length, want.length + 1, name);
    for (const [i, w] of want.entries()) {
      const g = got[i];
      assert.deepEqual([g.encoding, g.mint, g.maxt], [w.encoding, w.mint, w.maxt], `${name} ${i}`);
      assert.ok(sameBytes(g.data, w.data), `${name}: chunk ${i} differs`);
      assert.ok(sameBytes(reencode(w.encoding, w.data), w.data), `${name}: chunk ${i} re-encoded`);
      seen.chunks++;
      if (float) seen.float++;
      seen.headers.add(histogramCounterResetHeader(w.data));
    }
    // Recoding happened: some samples were stored with more buckets than they came with.
    let k = 0;
    for (const c of got) {
      for (const d of decode(c.encoding, c.data)) {
        const h = list[k++];
        if (h.sum === STALE_NAN_BITS) continue;
        if (layoutKey(d) !== layoutKey(h)) {
          const [dn, hn] = [d, h].map((x) => x.positiveBuckets.length + x.negativeBuckets.length);
          if (dn > hn) seen.expanded++;
          else seen.padded++;
        }
      }
    }
    assert.equal(k, list.length);
  }
  assert.equal(seen.chunks, 71);
  assert.ok(seen.float >= 25, `float chunks ${seen.float}`);
  assert.deepEqual([...seen.headers].sort(), [0, 1, 2, 3]);
  assert.ok(seen.expanded > 100, `expanded samples ${seen.expanded}`);
  assert.equal(seen.padded, 0);
});

/** Decoded samples equal the input: all fields but the hint; stale markers keep t and sum. */
function assertRoundTrip(input: AnySample[], chunks: { encoding: number; data: Uint8Array }[]) {
  const out = chunks.flatMap((c) => decode(c.encoding, c.data));
  assert.equal(out.length, input.length);
  for (const [i, h] of input.entries()) {
    const d = out[i];
    if (h.sum === STALE_NAN_BITS) {
      assert.deepEqual([d.t, d.sum, d.count, d.positiveBuckets], [h.t, h.sum, 0n, []]);
      continue;
    }
    const { counterResetHint: _a, ...want } = h;
    const { counterResetHint: _b, ...got } = d;
    assert.deepEqual(got, want, `sample ${i} at ${h.t}`);
  }
}

/** Checks the counter-reset headers and the hints the decoder reports against the input hints. */
function assertHints(input: AnySample[], chunks: { encoding: number; data: Uint8Array }[]) {
  let k = 0;
  for (const c of chunks) {
    const header = histogramCounterResetHeader(c.data);
    for (const [j, d] of decode(c.encoding, c.data).entries()) {
      const h = input[k++];
      const stale = h.sum === STALE_NAN_BITS;
      if (h.counterResetHint === CounterResetHint.gauge && !stale) {
        assert.equal(header, CounterResetHeader.gauge, `gauge sample ${k - 1} in a gauge chunk`);
      }
      if (header === CounterResetHeader.gauge && !stale) {
        assert.equal(h.counterResetHint, CounterResetHint.gauge);
        assert.equal(d.counterResetHint, CounterResetHint.gauge);
      }
      if (h.counterResetHint === CounterResetHint.reset) {
        assert.ok(j === 0 && header === CounterResetHeader.reset, `reset hint ${k - 1} starts`);
      }
      if (header !== CounterResetHeader.gauge && !stale) {
        const want = j === 0 ? CounterResetHint.unknown : CounterResetHint.notReset;
        assert.equal(d.counterResetHint, want);
      }
    }
  }
}

Deno.test("the WAL samples of the head fixture round-trip through the default encoders", async () => {
  const { samples } = await headFixture();
  for (const { float, list } of samples.values()) {
    for (const o of [{}, { chunkRange: 7_200_000n }]) {
      const chunks = encodeAll(float, list, o);
      assertRoundTrip(list, chunks);
      assertHints(list, chunks);
    }
  }
});

// --- generated sequences --------------------------------------------------------------------------

function spansOf(idx: number[]): HistogramSpan[] {
  const spans: HistogramSpan[] = [];
  let last = 0;
  for (const [k, i] of idx.entries()) {
    if (k > 0 && i === last + 1) spans[spans.length - 1].length++;
    else spans.push({ offset: k === 0 ? i : i - last - 1, length: 1 });
    last = i;
  }
  return spans;
}

const ZERO_THRESHOLDS = [0, 2 ** -128, 0.001, 2 ** 10, 2 ** -243, 2 ** 11, 5e-324, 0.3, Infinity];
const CUSTOM_BOUNDS = [
  [0.1, 0.25, 1, 2.5],
  [-5, 0, 0.001, 33554.43, 33554.431, 1e9],
  [1 / 3, 2, 1e-300],
].map((b) => b.sort((x, y) => x - y));
const SUMS = [0, -0, 1.5, -2.25, Infinity, -Infinity, 1e308, 5e-324, NaN];

/**
 * A random walk through histogram states: counters with growing, new and vanishing (empty)
 * buckets, detected and hinted resets, schema, zero-threshold and custom-bound changes, gauge
 * stretches with buckets coming and going, stale runs, odd sums and big timestamp jumps.
 */
function generate(float: boolean, seed: number, n: number): AnySample[] {
  const rnd = seededRandom(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)];
  let t = -50_000n + BigInt(seed);
  let dt = 15_000n;
  let schema = 3;
  let zt = 2 ** -128;
  let bounds: number[] = [];
  let gauge = 0;
  let pos = new Map<number, number>([[0, 1], [1, 2]]);
  let neg = new Map<number, number>();
  let zc = 0;
  let stale = 0;
  const out: AnySample[] = [];
  const custom = () => schema === -53;
  const room = () => bounds.length + 1;
  for (let k = 0; k < n; k++) {
    const r = rnd();
    if (r < 0.04) {
      dt = pick([1n, 2n ** 20n, 2n ** 40n, 7n, 60_000n]);
    } else if (r < 0.06) {
      dt = 15_000n + BigInt(Math.floor(rnd() * 2000));
    }
    t += dt + BigInt(Math.floor(rnd() * 3));
    let hint: number = CounterResetHint.unknown;
    // Every third seed changes its layout ten times less often (long chunks, size cuts).
    const a = rnd() * (seed % 3 === 0 ? 10 : 1);
    if (a < 0.03) {
      schema = pick([-4, -1, 0, 2, 8, -53]);
      bounds = custom() ? pick(CUSTOM_BOUNDS) : [];
      pos = new Map([[0, 1]]);
      neg = new Map();
      zc = 0;
      if (custom()) zt = 0;
    } else if (a < 0.05 && !custom()) {
      zt = pick(ZERO_THRESHOLDS);
    } else if (a < 0.15) {
      const m = rnd() < 0.7 || custom() ? pos : neg;
      const i = custom() ? Math.floor(rnd() * room()) : Math.floor(rnd() * 40) - 20;
      if (!m.has(i)) m.set(i, 0);
    } else if (a < 0.2) {
      for (const m of [pos, neg]) for (const [i, v] of m) if (v === 0 && rnd() < 0.5) m.delete(i);
    } else if (a < 0.23) {
      for (const m of [pos, neg]) for (const i of m.keys()) m.set(i, Math.floor(rnd() * 2));
      zc = 0;
    } else if (a < 0.25) {
      hint = CounterResetHint.reset;
    } else if (a < 0.27) {
      stale = 1 + Math.floor(rnd() * 3);
    } else if (a < 0.3) {
      gauge = gauge > 0 ? 0 : 5 + Math.floor(rnd() * 20);
    } else if (a < 0.32 && custom()) {
      bounds = pick(CUSTOM_BOUNDS);
      for (const i of pos.keys()) if (i >= room()) pos.delete(i);
    }
    if (gauge > 0) {
      gauge--;
      hint = CounterResetHint.gauge;
      for (const m of [pos, neg]) {
        if (rnd() < 0.3 && m.size > 0) m.delete(pick([...m.keys()]));
        for (const i of m.keys()) m.set(i, Math.floor(rnd() * 100));
      }
      if (custom()) neg.clear();
    } else {
      if (hint !== CounterResetHint.reset && rnd() < 0.1) hint = CounterResetHint.notReset;
      const big = rnd() < 0.05 ? 2 ** 40 : 5;
      for (const m of [pos, neg]) {
        for (const [i, v] of m) m.set(i, v + Math.floor(rnd() * big));
      }
      if (!custom()) zc += Math.floor(rnd() * 3);
    }
    if (custom()) {
      neg.clear();
      zc = 0;
    }
    const pIdx = [...pos.keys()].sort((x, y) => x - y);
    const nIdx = [...neg.keys()].sort((x, y) => x - y);
    const pAbs = pIdx.map((i) => pos.get(i)!);
    const nAbs = nIdx.map((i) => neg.get(i)!);
    const total = [...pAbs, ...nAbs].reduce((x, y) => x + y, zc);
    const sum = stale > 0
      ? STALE_NAN_BITS
      : rnd() < 0.1
      ? (rnd() < 0.5 ? GO_NAN : bitsOf(pick(SUMS)))
      : bitsOf(total * 0.25);
    if (stale > 0) stale--;
    const common = {
      t,
      counterResetHint: hint as HistogramSample["counterResetHint"],
      schema,
      zeroThreshold: bitsOf(zt),
      sum,
      positiveSpans: spansOf(pIdx),
      negativeSpans: spansOf(nIdx),
      customValues: bounds.map(bitsOf),
    };
    if (float) {
      const f = (x: number) => bitsOf(x === 0 && rnd() < 0.1 ? -0 : x * 0.5);
      out.push({
        ...common,
        count: rnd() < 0.02 ? GO_NAN : bitsOf(total * 0.5),
        zeroCount: bitsOf(zc * 0.5),
        positiveBuckets: pAbs.map(f),
        negativeBuckets: nAbs.map(f),
      });
    } else {
      const deltas = (abs: number[]) =>
        abs.map((v, i) => BigInt(v) - BigInt(i > 0 ? abs[i - 1] : 0));
      out.push({
        ...common,
        count: BigInt(total),
        zeroCount: BigInt(zc),
        positiveBuckets: deltas(pAbs),
        negativeBuckets: deltas(nAbs),
      });
    }
  }
  return out;
}

Deno.test("generated histogram sequences round-trip exactly with consistent headers", () => {
  const stats = {
    chunks: 0,
    sizeChecked: 0,
    headers: new Set<number>(),
    layouts: new Set<number>(),
  };
  for (const float of [false, true]) {
    for (let seed = 1; seed <= 12; seed++) {
      const input = generate(float, seed, 400);
      for (const o of [{}, { chunkRange: 3_600_000n }]) {
        const chunks = encodeAll(float, input, o);
        assertRoundTrip(input, chunks);
        assertHints(input, chunks);
        for (const c of chunks) {
          assert.equal(c.encoding, float ? 3 : 2);
          const d = decode(c.encoding, c.data);
          assert.deepEqual([c.mint, c.maxt], [d[0].t, d[d.length - 1].t]);
          stats.headers.add(histogramCounterResetHeader(c.data));
          stats.layouts.add(d[0].schema);
          // By size: a chunk of 10+ samples was below the 1024-byte target before its last one.
          if (o.chunkRange === undefined && d.length > 10) {
            const header = histogramCounterResetHeader(c.data);
            const app = float ? new FloatHistogramAppender(header) : new HistogramAppender(header);
            for (const h of d.slice(0, -1)) (app as HistogramAppender).append(h as HistogramSample);
            assert.ok(app.byteLength < 1024, `chunk of ${d.length} samples too big`);
            stats.sizeChecked++;
          }
        }
        stats.chunks += chunks.length;
      }
    }
  }
  assert.deepEqual([...stats.headers].sort(), [0, 1, 2, 3]);
  assert.ok(stats.layouts.has(-53) && stats.layouts.has(-4) && stats.layouts.has(8));
  assert.ok(stats.chunks > 1000, `chunks ${stats.chunks}`);
  assert.ok(stats.sizeChecked > 20, `chunks cut by size ${stats.sizeChecked}`);
});

Deno.test("recode: true grows the open chunk's layout as Prometheus does", () => {
  const h = (t: number, spans: HistogramSpan[], buckets: number[], hint = 0): HistogramSample => {
    const abs = buckets.reduce<number[]>((acc, d) => [...acc, (acc.at(-1) ?? 0) + d], []);
    return {
      t: BigInt(t),
      counterResetHint: hint as HistogramSample["counterResetHint"],
      schema: 0,
      zeroThreshold: 0n,
      zeroCount: 0n,
      count: BigInt(abs.reduce((x, y) => x + y, 0)),
      sum: bitsOf(1),
      positiveSpans: spans,
      negativeSpans: [],
      positiveBuckets: buckets.map(BigInt),
      negativeBuckets: [],
      customValues: [],
    };
  };
  // Absolute counts by bucket index: {0:2, 1:3}, then bucket 3 appears empty, then bucket -1
  // appears, then bucket 3 (still empty) is left out: Prometheus recodes the chunk twice and pads
  // the last sample with the empty bucket.
  const input = [
    h(1, [{ offset: 0, length: 2 }], [2, 1]),
    h(2, [{ offset: 0, length: 2 }, { offset: 1, length: 1 }], [3, 0, -3]),
    h(3, [{ offset: -1, length: 3 }, { offset: 1, length: 1 }], [1, 2, 1, -4]),
    h(4, [{ offset: -1, length: 3 }], [1, 3, 0]),
  ];
  const chunks = encodeHistogramChunks(input, { recode: true });
  assert.equal(chunks.length, 1);
  const out = decodeHistogram(chunks[0].data);
  const spans = [{ offset: -1, length: 3 }, { offset: 1, length: 1 }];
  assert.deepEqual(out.map((d) => d.positiveSpans), [spans, spans, spans, spans]);
  // Absolute counts per bucket index -1, 0, 1, 3.
  const abs = (d: HistogramSample) =>
    d.positiveBuckets.reduce<bigint[]>((acc, x) => [...acc, (acc.at(-1) ?? 0n) + x], []);
  assert.deepEqual(out.map(abs), [[0n, 2n, 3n, 0n], [0n, 3n, 3n, 0n], [1n, 3n, 4n, 0n], [
    1n,
    4n,
    4n,
    0n,
  ]]);
  // Two adjacent empty buckets vanish while a new one appears: they are padded back at their own
  // indices 5 and 6 (Prometheus 3.5 used 6 and 7, prometheus/prometheus#16893).
  const twice = encodeHistogramChunks([
    h(10, [{ offset: 0, length: 1 }, { offset: 4, length: 2 }], [1, -1, 0]),
    h(11, [{ offset: 0, length: 1 }, { offset: 9, length: 1 }], [2, -1]),
  ], { recode: true });
  assert.equal(twice.length, 1);
  const both = decodeHistogram(twice[0].data);
  const wantSpans = [{ offset: 0, length: 1 }, { offset: 4, length: 2 }, { offset: 3, length: 1 }];
  assert.deepEqual(both.map((d) => d.positiveSpans), [wantSpans, wantSpans]);
  assert.deepEqual(both.map(abs), [[1n, 0n, 0n, 0n], [2n, 0n, 0n, 1n]]);

  // Without recoding every layout change cuts a chunk and the samples come back unchanged.
  const exact = encodeHistogramChunks(input);
  assert.equal(exact.length, 4);
  assert.deepEqual(exact.map((c) => histogramCounterResetHeader(c.data)), [0, 1, 1, 1]);
  assertRoundTrip(input, exact);
});

Deno.test("canAppend and append refuse what a chunk cannot hold", () => {
  const base: FloatHistogramSample = {
    t: 1000n,
    counterResetHint: CounterResetHint.unknown,
    schema: 1,
    zeroThreshold: bitsOf(2 ** -128),
    zeroCount: bitsOf(1),
    count: bitsOf(6),
    sum: bitsOf(3),
    positiveSpans: [{ offset: 0, length: 2 }],
    negativeSpans: [],
    positiveBuckets: [bitsOf(2), bitsOf(3)],
    negativeBuckets: [],
    customValues: [],
  };
  const at = (t: number, patch: Partial<FloatHistogramSample> = {}) => ({
    ...base,
    t: BigInt(t),
    ...patch,
  });
  const app = new FloatHistogramAppender(CounterResetHeader.notReset);
  app.append(at(1000));
  assert.ok(app.canAppend(at(2000)));
  const refused: [string, FloatHistogramSample][] = [
    ["same timestamp", at(1000)],
    ["count down", at(2000, { count: bitsOf(5), positiveBuckets: [bitsOf(2), bitsOf(2)] })],
    ["zero count down", at(2000, { zeroCount: bitsOf(0) })],
    ["bucket down", at(2000, { positiveBuckets: [bitsOf(1), bitsOf(4)] })],
    ["reset hint", at(2000, { counterResetHint: CounterResetHint.reset })],
    ["gauge hint", at(2000, { counterResetHint: CounterResetHint.gauge })],
    ["schema", at(2000, { schema: 2 })],
    ["zero threshold", at(2000, { zeroThreshold: bitsOf(0.5) })],
    [
      "new bucket",
      at(2000, {
        positiveSpans: [{ offset: 0, length: 3 }],
        positiveBuckets: [bitsOf(2), bitsOf(3), bitsOf(0)],
      }),
    ],
  ];
  for (const [why, h] of refused) {
    assert.equal(app.canAppend(h), false, why);
    assert.throws(() => app.append(h), RangeError, why);
  }
  assert.throws(() => app.append(at(2000, { positiveBuckets: [bitsOf(1)] })), /positive buckets/);
  // A stale marker always fits; after it only stale markers do.
  app.append(at(2000, { sum: STALE_NAN_BITS, schema: 7, counterResetHint: 3 }));
  assert.equal(app.canAppend(at(3000)), false);
  app.append(at(3000, { sum: STALE_NAN_BITS }));
  assert.equal(app.numSamples, 3);
  const back = decodeFloatHistogram(app.bytes());
  assert.deepEqual(back.map((d) => [d.t, d.sum === STALE_NAN_BITS]), [
    [1000n, false],
    [2000n, true],
    [3000n, true],
  ]);
  assert.equal(histogramCounterResetHeader(app.bytes()), CounterResetHeader.notReset);

  // Gauge chunks take gauge samples with any counts, but not other layouts.
  const g = new HistogramAppender(CounterResetHeader.gauge);
  const gh = (t: number, count: bigint, buckets: bigint[]): HistogramSample => ({
    t: BigInt(t),
    counterResetHint: CounterResetHint.gauge,
    schema: -53,
    zeroThreshold: 0n,
    zeroCount: 0n,
    count,
    sum: bitsOf(1),
    positiveSpans: [{ offset: 1, length: 2 }],
    negativeSpans: [],
    positiveBuckets: buckets,
    negativeBuckets: [],
    customValues: [bitsOf(0.5), bitsOf(1)],
  });
  g.append(gh(1, 9n, [5n, -1n]));
  g.append(gh(2, 1n, [1n, -1n]));
  assert.equal(g.canAppend({ ...gh(3, 1n, [1n, -1n]), counterResetHint: 0 }), false);
  assert.equal(g.canAppend({ ...gh(3, 1n, [1n, -1n]), customValues: [bitsOf(0.5)] }), false);
  assert.deepEqual(decodeHistogram(g.bytes()).map((d) => d.count), [9n, 1n]);
});

Deno.test("zero thresholds and custom bounds use Go's compact forms", () => {
  const layoutBytes = (zt: number, bounds: number[]) => {
    const app = new HistogramAppender();
    app.append({
      t: 0n,
      counterResetHint: 0,
      schema: bounds.length > 0 ? -53 : 0,
      zeroThreshold: bitsOf(zt),
      zeroCount: 0n,
      count: 0n,
      sum: 0n,
      positiveSpans: [],
      negativeSpans: [],
      positiveBuckets: [],
      negativeBuckets: [],
      customValues: bounds.map(bitsOf),
    });
    const data = app.bytes();
    const r = new BitReader(data, 24);
    const layout = readHistogramLayout(r);
    return { data, layout, bits: r.bitPosition - 24 };
  };
  // The default threshold 2^-128 is the single byte 116 (histogram_meta.go).
  assert.equal(layoutBytes(2 ** -128, []).data[3], 116);
  assert.equal(layoutBytes(0, []).data[3], 0);
  assert.equal(layoutBytes(1024, []).data[3], 254);
  const raw = layoutBytes(0.001, []);
  assert.equal(raw.data[3], 255);
  assert.equal(raw.layout.zeroThreshold, bitsOf(0.001));
  for (const zt of [2 ** 11, 2 ** -244, 5e-324, -1, Infinity]) {
    assert.equal(layoutBytes(zt, []).data[3], 255, `${zt}`);
    assert.equal(layoutBytes(zt, []).layout.zeroThreshold, bitsOf(zt));
  }
  // 0.25 is 250+1 in 9 bits; 33554.43 still fits 25 bits; the rest are raw.
  const bounds = [-1, 0.25, 0.0005, 33554.43, 33554.431, 1 / 3];
  const { layout } = layoutBytes(0, bounds);
  assert.deepEqual(layout.customValues.map(numOf), bounds);
  assert.ok(layoutBytes(0, [0.25]).bits < layoutBytes(0, [1 / 3]).bits);
});

Deno.test("the chunk encoder streams finished chunks and never crosses a chunk range", () => {
  const input = generate(true, 99, 600);
  const enc = new FloatHistogramChunkEncoder({ chunkRange: 1_800_000n });
  const streamed = [];
  for (const h of input) {
    const c = enc.add(h as FloatHistogramSample);
    if (c) streamed.push(c);
  }
  streamed.push(enc.flush()!);
  const batch = encodeFloatHistogramChunks(input as FloatHistogramSample[], {
    chunkRange: 1_800_000n,
  });
  assert.equal(streamed.length, batch.length);
  for (const [i, c] of streamed.entries()) assert.ok(sameBytes(c.data, batch[i].data));
  const rangeStart = (t: bigint) => t - ((t % 1_800_000n) + 1_800_000n) % 1_800_000n;
  for (const c of batch) {
    if (c.mint >= 0n && c.maxt >= 0n) assert.equal(rangeStart(c.mint), rangeStart(c.maxt));
  }
  assert.throws(() => enc.add({ ...input[0] } as FloatHistogramSample), RangeError);
});

Deno.test("a bucket that shrinks under the same spans is a counter reset (a new chunk)", () => {
  // Go's appendable compares every bucket's absolute count: one that shrinks is a reset even
  // when the total and zero counts grow. Same spans throughout, the layout-unchanged path.
  const spans = [{ offset: 0, length: 2 }, { offset: 3, length: 1 }];
  const absolute = [[5, 5, 1], [6, 9, 1], [7, 10, 0], [8, 12, 1]];
  const base = {
    counterResetHint: CounterResetHint.unknown,
    schema: 0,
    zeroThreshold: 0n,
    positiveSpans: spans,
    negativeSpans: [],
    negativeBuckets: [],
    customValues: [],
  };
  for (const float of [false, true]) {
    const samples = absolute.map((abs, i) => {
      const count = abs.reduce((a, b) => a + b, 0) + 10 * i;
      const buckets = float
        ? abs.map((x) => bitsOf(x))
        : abs.map((x, j) => BigInt(x - (j > 0 ? abs[j - 1] : 0)));
      return {
        ...base,
        t: BigInt(1000 * (i + 1)),
        count: float ? bitsOf(count) : BigInt(count),
        zeroCount: float ? bitsOf(i) : BigInt(i),
        sum: bitsOf(count * 1.5),
        positiveBuckets: buckets,
      };
    });
    const chunks = encodeAll(float, samples);
    const kind = float ? "float" : "integer";
    assert.deepEqual(chunks.map((c) => decode(c.encoding, c.data).length), [2, 2], kind);
    assert.equal(histogramCounterResetHeader(chunks[1].data), CounterResetHeader.reset, kind);
    assertRoundTrip(samples, chunks);
  }
});

Deno.test("integer bucket counts past 2^51 encode exactly, and a reset one count deep is seen", () => {
  // The integer appender computes bucket deltas and compares counts with doubles while the
  // values stay within ±2^51 and the sums within ±2^52, with bigints beyond: both sides of
  // those bounds, deltas that wrap int64 as in Go, and a reset of 1 among counts near 2^54.
  const base = {
    counterResetHint: CounterResetHint.unknown,
    schema: 0,
    zeroThreshold: 0n,
    zeroCount: 0n,
    negativeSpans: [],
    negativeBuckets: [],
    customValues: [],
  };
  const sample = (i: number, buckets: bigint[]): HistogramSample => ({
    ...base,
    t: BigInt(1000 * (i + 1)),
    count: BigInt(i + 1),
    sum: bitsOf(i),
    positiveSpans: [{ offset: 0, length: buckets.length }],
    positiveBuckets: buckets,
  });
  // Absolute counts that only grow, by steps of every size; buckets are given as deltas.
  const steps = [1n, 2n ** 51n, 2n ** 53n + 1n, 3n, 2n ** 60n, 2n ** 51n - 1n];
  const grown: HistogramSample[] = [];
  let first = 2n ** 51n - 1n;
  for (let i = 0; i < 12; i++) {
    first += steps[i % steps.length];
    grown.push(sample(i, [first, BigInt(i) * 3n, BigInt(i) * (2n ** 52n + 7n)]));
  }
  const chunks = encodeAll(false, grown);
  assert.equal(chunks.length, 1, "counts only grow: one chunk");
  assertRoundTrip(grown, chunks);
  // int64 wrap-around of a bucket's delta of deltas, as Go's arithmetic does it.
  const wrapping = [
    sample(0, [-(2n ** 63n), 2n ** 63n - 1n]),
    sample(1, [2n ** 63n - 1n, -(2n ** 63n)]),
    sample(2, [3n, -5n]),
  ];
  assertRoundTrip(wrapping, encodeAll(false, wrapping));
  // Values of at most 2^53 whose delta (2^54 - 3) is not a double, and of at most 2^52 whose
  // delta of deltas (3 * 2^52 - 3) is not.
  const [e52, e53, e60] = [2n ** 52n, 2n ** 53n, 2n ** 60n];
  for (
    const seq of [
      [[e53, 2n - e53], [e53, e53 - 1n]],
      [[e60, -1n], [e60 + e52, 1n - e52], [e60 + e52, e52]],
    ]
  ) {
    const samples = seq.map((buckets, i) => sample(i, buckets));
    const chunks = encodeAll(false, samples);
    assert.equal(chunks.length, 1);
    assertRoundTrip(samples, chunks);
  }

  // Counts, zero counts and times past 2^51 (odd ones past 2^53 are not doubles).
  const [e51, e54] = [2n ** 51n, 2n ** 54n];
  const scalars = [
    [e51 - 1n, 5n, 1000n],
    [e53 + 1n, e51 + 1n, e53 + 1n],
    [e53 + 3n, e53 + 5n, e54 + 7n],
    [e54 + 1n, e54 + 9n, e54 + 1009n],
  ].map(([count, zeroCount, t], i) => ({ ...sample(i, [1n]), count, zeroCount, t }));
  const scalarChunks = encodeAll(false, scalars);
  assert.equal(scalarChunks.length, 1);
  assertRoundTrip(scalars, scalarChunks);

  // Eight deltas of 2^51 make absolute counts up to 2^54, where doubles step by 4: the last
  // bucket one count lower is still a reset.
  const deltas = (last: bigint) => [...Array(8).fill(2n ** 51n), last];
  const reset = [sample(0, deltas(5n)), sample(1, deltas(4n))];
  const cut = encodeAll(false, reset);
  assert.deepEqual(cut.map((c) => decode(c.encoding, c.data).length), [1, 1]);
  assert.equal(histogramCounterResetHeader(cut[1].data), CounterResetHeader.reset);
});
