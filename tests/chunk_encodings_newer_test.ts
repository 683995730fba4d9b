// Chunk encodings newer than every installable Prometheus: XOR2 (4, 3.11+) and the histogram
// encodings with start timestamps (5 and 6, 3.14+), built with promcase's encoders from
// Prometheus' Go source (tsdb/chunkenc/xor2.go, histogram_st.go, float_histogram_st.go, st.go on
// main; their tests give no exact bytes, so the layouts are checked here bit by bit from the
// source's description and against the semantics the Go tests check).
//
// - The default export writes every chunk in the oldest encoding that holds its samples: a
//   Prometheus 2.42 serves the restored archive, and its promtool dump and API answer exactly as
//   for a reference block holding the same samples in plain chunks (start timestamps aside).
// - --keep-encodings copies the chunks as they are (boundary cuts keep their start timestamps);
//   the manifest's minPrometheusVersion says 3.14.0.
// - --raw states minPrometheusVersion from the chunk encodings and WAL record types shipped.
// - An unknown encoding (7, 200) is refused in one line naming it and the block, with nothing
//   written; --raw still ships it.
import assert from "node:assert/strict";
import { zstdCompressSync } from "node:zlib";
import { BlockReader, BlockWriter } from "../mod/tsdb/block.ts";
import {
  BitWriter,
  CounterResetHeader,
  CounterResetHint,
  decodeChunk,
  decodeFloatHistogramST,
  decodeHistogramST,
  decodeXor2,
  encodeFloatHistogramChunks,
  encodeHistogramChunks,
  Encoding,
  FloatHistogramAppender,
  type FloatHistogramSample,
  FloatHistogramSTAppender,
  HistogramAppender,
  type HistogramSample,
  HistogramSTAppender,
  putVarbitInt,
  putVarbitUint,
  STALE_NAN_BITS,
  toOldestEncoding,
  Xor2Appender,
  XorAppender,
} from "../mod/tsdb/chunkenc/mod.ts";
import { crc32c } from "../mod/tsdb/crc32c.ts";
import { compareLabels, type Label } from "../mod/tsdb/index.ts";
import { RawContentScan, rawMinPrometheusVersion } from "../mod/tsdb/raw_scan.ts";
import { WAL_PAGE_SIZE, WalSegmentWriter } from "../mod/tsdb/wlog.ts";
import { isOneLineError, runCli, runCliJson } from "./_cli.ts";
import { listDir, withTempDir } from "./_files.ts";
import { findPrometheus, startPrometheus } from "./_prometheus.ts";
import { promtoolDump } from "./_promtool.ts";
import { assertSameSamples } from "./_samples.ts";
import { samplesV1Record, samplesV2Record, seriesRecord } from "./_wal_records.ts";

const bitsOf = (x: number) => new BigUint64Array(new Float64Array([x]).buffer)[0];

// --- the chunk layouts ------------------------------------------------------------------------

/** A histogram without buckets, as Go's st_helper_test.go appends them: sum v, count v*10. */
function bare(t: bigint, v: number): HistogramSample {
  return {
    t,
    counterResetHint: CounterResetHint.unknown,
    schema: 0,
    zeroThreshold: 0n,
    zeroCount: 0n,
    count: BigInt(Math.floor(v * 10)),
    sum: bitsOf(v),
    positiveSpans: [],
    negativeSpans: [],
    positiveBuckets: [],
    negativeBuckets: [],
    customValues: [],
  };
}

function bareFloat(t: bigint, v: number): FloatHistogramSample {
  return { ...bare(t, v), count: bitsOf(v * 10) };
}

Deno.test("histogram chunks with ST: the layout of histogram_st.go and st.go, bit by bit", () => {
  // Four samples: ST known for sample 0 (t − st = 500), unchanged at 1, first change at 2
  // (prevT − st = 500), then the change of that difference (1500 − 500 = 1000) at 3.
  const st = [500n, 500n, 1500n, 1500n];
  const ts = [1000n, 2000n, 3000n, 4000n];
  const int = new HistogramSTAppender(CounterResetHeader.notReset);
  const flt = new FloatHistogramSTAppender(CounterResetHeader.notReset);
  for (let i = 0; i < 4; i++) {
    int.appendST(st[i], { ...bare(ts[i], 1.5), count: 8n, zeroCount: 2n });
    flt.appendST(st[i], { ...bareFloat(ts[i], 1.5), count: bitsOf(8), zeroCount: bitsOf(2) });
  }
  // Header: counter-reset header in bits 7-6 of byte 0 (0b01 "not reset"), the 14-bit count,
  // the ST header in byte 2 (firstSTKnown 0x80 | firstSTChangeOn 2).
  const layout = (w: BitWriter) => {
    w.writeByte(0); // zero threshold 0
    w.writeBit(0); // schema 0 (varbit)
    w.writeBit(0); // no positive spans
    w.writeBit(0); // no negative spans
  };
  const a = new BitWriter(3);
  a.setByte(0, 0b01 << 6);
  a.setByte(1, 4);
  a.setByte(2, 0x82);
  layout(a);
  putVarbitInt(a, 1000n); // t
  putVarbitUint(a, 8n); // count
  putVarbitUint(a, 2n); // zero count
  a.writeBigBits(bitsOf(1.5), 64); // sum
  a.writeVarint(500n); // ST of sample 0: t − st, a zig-zag varint
  putVarbitInt(a, 1000n); // t dod (first delta)
  a.writeBits(0b000, 3); // count dod, zero count dod, sum unchanged
  putVarbitInt(a, 0n); // t dod
  a.writeBits(0b000, 3);
  putVarbitInt(a, 500n); // first ST change: prevT − st
  putVarbitInt(a, 0n);
  a.writeBits(0b000, 3);
  putVarbitInt(a, 1000n); // change of prevT − st
  assert.deepEqual(int.bytes(), a.bytes().slice());

  const b = new BitWriter(3);
  b.setByte(0, 0b01 << 6);
  b.setByte(1, 4);
  b.setByte(2, 0x82);
  layout(b);
  putVarbitInt(b, 1000n); // t, then count, zero count and sum as 64 raw bits each
  for (const x of [8, 2, 1.5]) b.writeBigBits(bitsOf(x), 64);
  b.writeVarint(500n);
  putVarbitInt(b, 1000n);
  b.writeBits(0b000, 3); // count, zero count, sum: XOR unchanged
  putVarbitInt(b, 0n);
  b.writeBits(0b000, 3);
  putVarbitInt(b, 500n);
  putVarbitInt(b, 0n);
  b.writeBits(0b000, 3);
  putVarbitInt(b, 1000n);
  assert.deepEqual(flt.bytes(), b.bytes().slice());

  const di = decodeHistogramST(int.bytes());
  assert.deepEqual(di.st, st);
  assert.deepEqual(di.samples.map((h) => h.t), ts);
  assert.deepEqual(di.samples.map((h) => h.counterResetHint), [0, 2, 2, 2]);
  assert.deepEqual(decodeFloatHistogramST(flt.bytes()).st, st);
});

Deno.test("chunks with ST: every start-time combination of Go's testChunkSTHandling round-trips", () => {
  // st_helper_test.go: 0-4 samples at 1000, 2000, …, each ST any of 0, 500, …, up to its t.
  const stTimes = [0n, 500n, 1000n, 1500n, 2000n, 2500n, 3000n, 3500n, 4000n];
  let cases = 0;
  for (let n = 0; n < 5; n++) {
    const idx = new Array(n).fill(0);
    for (;;) {
      const ss = idx.map((k, j) => ({ st: stTimes[k], t: BigInt(1000 * (j + 1)), v: j + 0.5 }));
      const x = new Xor2Appender();
      const h = new HistogramSTAppender();
      const f = new FloatHistogramSTAppender();
      for (const s of ss) {
        x.append(s.st, s.t, bitsOf(s.v));
        h.appendST(s.st, bare(s.t, s.v));
        f.appendST(s.st, bareFloat(s.t, s.v));
      }
      const want = ss.map((s) => [s.st, s.t, bitsOf(s.v)]);
      const dx = decodeXor2(x.bytes());
      assert.deepEqual([...dx.t].map((t, i) => [dx.st[i], t, dx.v[i]]), want);
      for (const d of [decodeHistogramST(h.bytes()), decodeFloatHistogramST(f.bytes())]) {
        assert.deepEqual(d.samples.map((s, i) => [d.st[i], s.t, s.sum]), want);
      }
      // Without STs: the same samples, in the encodings 2.42 reads.
      const plain = decodeChunk(Encoding.histogramST, h.bytes());
      assert.equal(plain.kind, "histogram");
      assert.deepEqual(
        (plain.samples as HistogramSample[]).map((s) => s.sum),
        want.map((w) => w[2]),
      );
      cases++;
      let exhausted = true;
      for (let j = n - 1; j >= 0; j--) {
        if (stTimes[idx[j]] < BigInt(1000 * (j + 1))) {
          idx[j]++;
          exhausted = false;
          break;
        }
        idx[j] = 0;
      }
      if (exhausted) break;
    }
  }
  assert.equal(cases, 1069);
});

Deno.test("chunks with ST: per-sample ST data starts at index 127 at the latest", () => {
  // TestHistogramST_MoreThan127Samples, TestXOR2…: one ST for 130 samples still writes per-sample
  // data from index 127 (the most the header's 7 bits can name), so a later change fits.
  const h = new HistogramSTAppender();
  const x = new Xor2Appender();
  for (let i = 0; i < 130; i++) {
    const st = i < 129 ? 7n : 9000n;
    h.appendST(st, bare(BigInt(10_000 + i * 1000), 1));
    x.append(st, BigInt(10_000 + i * 1000), bitsOf(1));
  }
  assert.equal(h.bytes()[2], 0x80 | 127);
  assert.equal(x.bytes()[2], 0x80 | 127);
  const d = decodeHistogramST(h.bytes());
  assert.deepEqual(d.st, [...new Array(129).fill(7n), 9000n]);
  assert.deepEqual([...decodeXor2(x.bytes()).st], [...new Array(129).fill(7n), 9000n]);
  // The counter-reset header sits in byte 0 and leaves byte 2, the ST header, alone
  // (TestHistogramSTChunkCounterReset, "setting CR must not disturb byte 2").
  const r = new HistogramSTAppender(CounterResetHeader.reset);
  r.appendST(100n, bare(2000n, 5));
  assert.deepEqual([...r.bytes().subarray(0, 3)], [0b10 << 6, 1, 0x80]);
  assert.equal(decodeHistogramST(r.bytes()).st[0], 100n);
});

// --- the fixture block ------------------------------------------------------------------------

/** 2026-01-01T00:00:00Z: a 2h boundary; the block covers [T0, T0 + 2h). */
const T0 = 1_767_225_600_000n;
const STEP = 15_000n;
const N = 480;
const tOf = (k: number) => T0 + BigInt(k) * STEP;
/** The window: inside chunks at both ends, never on a sample. */
const FROM = T0 + 1_207_000n;
const TO = T0 + 6_003_000n;

type Kind = "float" | "histogram" | "floatHistogram";
interface FixSample {
  t: bigint;
  st: bigint;
  v?: bigint;
  h?: HistogramSample;
  f?: FloatHistogramSample;
}
interface FixChunk {
  header: number;
  samples: FixSample[];
}
interface FixSeries {
  labels: Label[];
  kind: Kind;
  encoding: number;
  chunks: FixChunk[];
}

const labels = (name: string): Label[] => [
  { name: "__name__", value: name },
  { name: "job", value: "st" },
];

function intHist(t: bigint, c: number, hint: number): HistogramSample {
  const n = BigInt(c);
  // Buckets 0, 1 and 3 hold c, 2c and c (deltas c, c, −c); bucket 0 of the negative side c.
  return {
    t,
    counterResetHint: hint as HistogramSample["counterResetHint"],
    schema: 0,
    zeroThreshold: bitsOf(2 ** -10),
    zeroCount: n,
    count: 6n * n,
    sum: bitsOf(1.25 * c),
    positiveSpans: [{ offset: 0, length: 2 }, { offset: 1, length: 1 }],
    negativeSpans: [{ offset: 0, length: 1 }],
    positiveBuckets: [n, n, -n],
    negativeBuckets: [n],
    customValues: [],
  };
}

function floatHist(t: bigint, c: number): FloatHistogramSample {
  return {
    t,
    counterResetHint: CounterResetHint.unknown,
    schema: 1,
    zeroThreshold: 0n,
    zeroCount: bitsOf(c / 4),
    count: bitsOf(c / 4 + c + 0.5 + 2 * c),
    sum: bitsOf(0.75 * c),
    positiveSpans: [{ offset: -1, length: 2 }],
    negativeSpans: [],
    positiveBuckets: [bitsOf(c + 0.5), bitsOf(2 * c)],
    negativeBuckets: [],
    customValues: [],
  };
}

/** Chunks of `sizes` samples over k = 0…N−1. */
function split(sizes: number[], sample: (k: number) => FixSample, header: (i: number) => number) {
  const chunks: FixChunk[] = [];
  let k = 0;
  sizes.forEach((size, i) => {
    const samples: FixSample[] = [];
    for (let j = 0; j < size; j++, k++) samples.push(sample(k));
    chunks.push({ header: header(i), samples });
  });
  assert.equal(k, N);
  return chunks;
}

const even = (size: number) => new Array(N / size).fill(size);
const { notReset, reset, unknown, gauge } = CounterResetHeader;

/**
 * The series: plain XOR beside XOR2 counters (an ST from before the block, a reset with a new ST,
 * a stale marker), XOR2 with one ST forced into per-sample data at 127, per-sample (delta) STs
 * and none; integer histograms with ST (a counter reset chunk, a stale marker), float histograms
 * with an ST per sample, gauge histograms without and with STs.
 */
function fixture(): FixSeries[] {
  const series: FixSeries[] = [
    {
      labels: labels("a_plain_xor"),
      kind: "float",
      encoding: Encoding.xor,
      chunks: split(even(120), (k) => ({ t: tOf(k), st: 0n, v: bitsOf(k) }), () => 0),
    },
    {
      labels: labels("b_xor2_counter"),
      kind: "float",
      encoding: Encoding.xor2,
      chunks: split(even(120), (k) => ({
        t: tOf(k),
        st: k < 200 ? T0 - 3_600_000n : tOf(200) - 1000n,
        v: k === 300 ? STALE_NAN_BITS : bitsOf(k < 200 ? k : k - 200),
      }), () => 0),
    },
    {
      labels: labels("c_xor2_delta"),
      kind: "float",
      encoding: Encoding.xor2,
      chunks: split([200, 140, 140], (k) => ({
        t: tOf(k),
        st: k < 200 ? T0 - 1000n : k < 340 ? tOf(k - 1) : 0n,
        v: bitsOf(k % 7 === 0 ? 0.1 * k : k / 2),
      }), () => 0),
    },
    {
      labels: labels("d_hist_st"),
      kind: "histogram",
      encoding: Encoding.histogramST,
      chunks: split(even(60), (k) => ({
        t: tOf(k),
        st: k < 180 ? T0 - 60_000n : tOf(180) - 500n,
        h: k === 359
          ? { ...intHist(tOf(k), 1, 0), sum: STALE_NAN_BITS }
          : intHist(tOf(k), k < 180 ? k + 1 : k - 179, CounterResetHint.unknown),
      }), (i) => (i === 0 ? unknown : i === 3 ? reset : notReset)),
    },
    {
      labels: labels("e_fhist_st"),
      kind: "floatHistogram",
      encoding: Encoding.floatHistogramST,
      chunks: split(even(60), (k) => ({
        t: tOf(k),
        st: tOf(k) - 7000n - BigInt(k % 3),
        f: floatHist(tOf(k), k + 1),
      }), (i) => (i === 0 ? unknown : notReset)),
    },
    {
      labels: labels("f_gauge_hist_st"),
      kind: "histogram",
      encoding: Encoding.histogramST,
      chunks: split([130, 130, 130, 90], (k) => ({
        t: tOf(k),
        st: k < 130 ? 0n : T0 + 5n,
        h: intHist(tOf(k), 5 + (k % 7), CounterResetHint.gauge),
      }), () => gauge),
    },
  ];
  return series.sort((a, b) => compareLabels(a.labels, b.labels));
}

/** One fixture chunk in the series' encoding. */
function encodeFixChunk(s: FixSeries, c: FixChunk): { encoding: number; data: Uint8Array } {
  switch (s.encoding) {
    case Encoding.xor: {
      const app = new XorAppender();
      for (const x of c.samples) app.append(x.t, x.v!);
      return { encoding: s.encoding, data: app.bytes() };
    }
    case Encoding.xor2: {
      const app = new Xor2Appender();
      for (const x of c.samples) app.append(x.st, x.t, x.v!);
      return { encoding: s.encoding, data: app.bytes() };
    }
    case Encoding.histogramST: {
      const app = new HistogramSTAppender(c.header);
      for (const x of c.samples) app.appendST(x.st, x.h!);
      return { encoding: s.encoding, data: app.bytes() };
    }
    default: {
      const app = new FloatHistogramSTAppender(c.header);
      for (const x of c.samples) app.appendST(x.st, x.f!);
      return { encoding: s.encoding, data: app.bytes() };
    }
  }
}

/** The same chunk without STs, from the samples (not from the ST chunk). */
function plainFixChunk(s: FixSeries, c: FixChunk): { encoding: number; data: Uint8Array } {
  switch (s.kind) {
    case "float": {
      const app = new XorAppender();
      for (const x of c.samples) app.append(x.t, x.v!);
      return { encoding: Encoding.xor, data: app.bytes() };
    }
    case "histogram": {
      const app = new HistogramAppender(c.header);
      for (const x of c.samples) app.append(x.h!);
      return { encoding: Encoding.histogram, data: app.bytes() };
    }
    default: {
      const app = new FloatHistogramAppender(c.header);
      for (const x of c.samples) app.append(x.f!);
      return { encoding: Encoding.floatHistogram, data: app.bytes() };
    }
  }
}

async function writeBlock(
  parent: string,
  series: {
    labels: Label[];
    chunks: { encoding: number; data: Uint8Array; mint: bigint; maxt: bigint }[];
  }[],
): Promise<string> {
  const w = await BlockWriter.create(parent, { minTime: T0, maxTime: T0 + 7_200_000n, level: 1 });
  for (const s of series) await w.addSeries(s.labels, s.chunks);
  return (await w.commit()).ulid;
}

/** The fixture as a data dir with one block of ST chunks (and an empty wal/). */
async function writeFixtureDir(dir: string, series: FixSeries[]): Promise<string> {
  await Deno.mkdir(`${dir}/wal`, { recursive: true });
  return await writeBlock(
    dir,
    series.map((s) => ({
      labels: s.labels,
      chunks: s.chunks.map((c) => ({
        ...encodeFixChunk(s, c),
        mint: c.samples[0].t,
        maxt: c.samples[c.samples.length - 1].t,
      })),
    })),
  );
}

/** The reference: the window's samples in plain chunks, encoded from the fixture's samples. */
async function writeReferenceDir(dir: string, series: FixSeries[]): Promise<void> {
  await Deno.mkdir(`${dir}/wal`, { recursive: true });
  const out = series.map((s) => {
    const kept = s.chunks.flatMap((c) => c.samples).filter((x) => x.t >= FROM && x.t <= TO);
    let chunks;
    if (s.kind === "float") {
      chunks = [];
      for (let i = 0; i < kept.length; i += 120) {
        const part = kept.slice(i, i + 120);
        const app = new XorAppender();
        for (const x of part) app.append(x.t, x.v!);
        chunks.push({
          encoding: Encoding.xor,
          data: app.bytes(),
          mint: part[0].t,
          maxt: part[part.length - 1].t,
        });
      }
    } else if (s.kind === "histogram") {
      chunks = encodeHistogramChunks(kept.map((x) => x.h!));
    } else {
      chunks = encodeFloatHistogramChunks(kept.map((x) => x.f!));
    }
    return { labels: s.labels, chunks };
  });
  await writeBlock(dir, out);
}

interface Summary {
  minPrometheusVersion: string;
  mode: string;
  warnings: string[];
  rewrite: { chunks: { copied: number; recoded: number; dropped: number; converted?: number } };
}

const exportArgs = (dir: string, out: string, ...extra: string[]) => [
  "export",
  dir,
  "--from",
  String(FROM),
  "--to",
  String(TO),
  "-o",
  out,
  "--no-prometheus-api",
  "--no-nice",
  // Exactly the window: the chunks cut at its edges are counted.
  "--lead-in",
  "0",
  ...extra,
];

/** The block of a restored archive: every series with its chunks. */
async function restoredBlock(dataDir: string) {
  const ulids = (await listDir(dataDir)).filter((n) => /^[0-9A-Z]{26}$/.test(n));
  assert.equal(ulids.length, 1);
  using r = await BlockReader.open(`${dataDir}/${ulids[0]}`);
  const out = [];
  for await (const s of r.series()) {
    out.push({ labels: s.labels, chunks: s.chunks.map((c) => ({ ...c, data: c.data.slice() })) });
  }
  return out;
}

Deno.test("ST chunks: converted as they are, to the chunks Prometheus writes without STs", () => {
  for (const s of fixture()) {
    for (const c of s.chunks) {
      const enc = encodeFixChunk(s, c);
      const plain = plainFixChunk(s, c);
      assert.deepEqual(toOldestEncoding(enc), plain, `${s.labels[0].value} at ${c.samples[0].t}`);
    }
  }
});

Deno.test("ST chunks: exported for 2.42 (default), kept (--keep-encodings), raw", async () => {
  const bin = await findPrometheus("oldest");
  const series = fixture();
  await withTempDir("promcase-st-chunks-", async (work) => {
    const ulid = await writeFixtureDir(`${work}/data`, series);
    await writeReferenceDir(`${work}/reference`, series);

    // Default: every chunk in an encoding 2.42 reads; inner ST chunks converted one to one.
    const summary = await runCliJson<Summary>(exportArgs(`${work}/data`, `${work}/d.tar.gz`));
    assert.equal(summary.minPrometheusVersion, "2.42.0");
    assert.equal(summary.rewrite.chunks.converted, 13);
    const restored = await runCliJson<{ dataDir: string; serveCommand: string[] }>([
      "restore",
      `${work}/d.tar.gz`,
      "--into",
      `${work}/d`,
      "--prometheus-bin",
      bin.prometheus,
    ]);
    const written = await restoredBlock(restored.dataDir);
    for (const s of written) {
      for (const c of s.chunks) assert.ok(c.encoding <= 3, `encoding ${c.encoding}`);
    }
    // Inner chunks: the bytes of plain chunks of the same samples and counter-reset header.
    let inner = 0;
    for (const s of series) {
      const got = written.find((w) => compareLabels(w.labels, s.labels) === 0)!;
      for (const c of s.chunks) {
        const mint = c.samples[0].t;
        const maxt = c.samples[c.samples.length - 1].t;
        if (mint < FROM || maxt > TO || s.encoding === Encoding.xor) continue;
        const chunk = got.chunks.find((x) => x.mint === mint)!;
        assert.equal(chunk.maxt, maxt);
        assert.deepEqual(
          { encoding: chunk.encoding, data: chunk.data },
          plainFixChunk(s, c),
          `${s.labels[0].value} at ${mint}`,
        );
        inner++;
      }
    }
    assert.equal(inner, 13);
    // promtool 2.42 dumps every float sample of the window as from the reference block.
    const dump = await promtoolDump(bin, restored.dataDir);
    assert.deepEqual(dump, await promtoolDump(bin, `${work}/reference`));
    // k = 81…400 of three float series; the stale marker (k = 300) dumps as NaN.
    assert.equal(dump.length, 3 * 320);
    assert.deepEqual(dump.filter((l) => / NaN /.test(l)).length, 1);
    // Prometheus 2.42 serves every sample, histograms too, as it serves the reference.
    const flags = restored.serveCommand.filter((a) =>
      a.startsWith("--storage.tsdb.retention.time=") || a.startsWith("--enable-feature=")
    );
    {
      await using ref = await startPrometheus({
        bin: bin.prometheus,
        dataDir: `${work}/reference`,
        args: flags,
      });
      await using got = await startPrometheus({
        bin: bin.prometheus,
        dataDir: restored.dataDir,
        args: flags,
      });
      const compared = await assertSameSamples(ref, got, Number(FROM) - 1, Number(TO));
      assert.deepEqual(compared, { series: 6, floats: 959, histograms: 3 * 320 - 1 });
    }

    // --keep-encodings: chunks with STs as they are, boundary cuts with their STs.
    const kept = await runCliJson<Summary>(
      exportArgs(`${work}/data`, `${work}/k.tar.gz`, "--keep-encodings"),
    );
    assert.equal(kept.minPrometheusVersion, "3.14.0");
    assert.equal(kept.rewrite.chunks.converted, 0);
    await runCliJson(["restore", `${work}/k.tar.gz`, "--into", `${work}/k`]);
    const keptBlock = await restoredBlock(`${work}/k/data`);
    for (const s of series) {
      const got = keptBlock.find((w) => compareLabels(w.labels, s.labels) === 0)!;
      const want = s.chunks.flatMap((c) => c.samples).filter((x) => x.t >= FROM && x.t <= TO);
      const samples: { t: bigint; st: bigint; value: unknown }[] = [];
      for (const c of got.chunks) {
        assert.equal(c.encoding, s.encoding, s.labels[0].value);
        const src = s.chunks.find((x) => x.samples[0].t === c.mint);
        if (src && c.mint >= FROM && src.samples[src.samples.length - 1].t <= TO) {
          assert.deepEqual(c.data, encodeFixChunk(s, src).data, "inner chunks byte for byte");
        }
        if (c.encoding === Encoding.xor) {
          const d = decodeChunk(c.encoding, c.data);
          if (d.kind !== "float") throw new Error("float chunk expected");
          d.samples.t.forEach((t, i) => samples.push({ t, st: 0n, value: d.samples.v[i] }));
        } else if (c.encoding === Encoding.xor2) {
          const d = decodeXor2(c.data);
          d.t.forEach((t, i) => samples.push({ t, st: d.st[i], value: d.v[i] }));
        } else {
          const d = c.encoding === Encoding.histogramST
            ? decodeHistogramST(c.data)
            : decodeFloatHistogramST(c.data);
          d.samples.forEach((h, i) =>
            samples.push({ t: h.t, st: d.st[i], value: [h.sum, h.count, h.positiveBuckets] })
          );
        }
      }
      assert.deepEqual(
        samples,
        want.map((x) => {
          const h = x.h ?? x.f;
          return {
            t: x.t,
            st: x.st,
            value: h
              ? [
                h.sum,
                h.sum === STALE_NAN_BITS ? 0n : h.count,
                h.sum === STALE_NAN_BITS ? [] : h.positiveBuckets,
              ]
              : x.v,
          };
        }),
        s.labels[0].value,
      );
    }

    // --raw: the block as it is; the manifest names the release its encodings need.
    const raw = await runCliJson<Summary>(exportArgs(`${work}/data`, `${work}/r.tar.gz`, "--raw"));
    assert.equal(raw.mode, "raw");
    assert.equal(raw.minPrometheusVersion, "3.14.0");
    await runCliJson(["restore", `${work}/r.tar.gz`, "--into", `${work}/r`]);
    assert.deepEqual(
      await Deno.readFile(`${work}/r/data/${ulid}/chunks/000001`),
      await Deno.readFile(`${work}/data/${ulid}/chunks/000001`),
    );
  });
});

// --- unknown encodings ------------------------------------------------------------------------

/** Sets the encoding byte of the `n`th chunk (0-based) of a chunk file, CRC updated. */
async function patchEncoding(file: string, n: number, encoding: number): Promise<void> {
  const b = await Deno.readFile(file);
  let at = 8;
  for (let i = 0;; i++) {
    let len = 0;
    let shift = 1;
    let p = at;
    for (;;) {
      const x = b[p++];
      len += (x & 0x7f) * shift;
      shift *= 128;
      if (x < 0x80) break;
    }
    if (i === n) {
      b[p] = encoding;
      new DataView(b.buffer).setUint32(p + 1 + len, crc32c(b.subarray(p, p + 1 + len)));
      await Deno.writeFile(file, b);
      return;
    }
    at = p + 1 + len + 4;
  }
}

Deno.test("unknown chunk encodings: refused in one line with nothing written; --raw ships them", async () => {
  await withTempDir("promcase-unknown-enc-", async (work) => {
    const series = fixture().filter((s) => s.kind === "float");
    const ulid = await writeFixtureDir(`${work}/data`, series);
    // a_plain_xor's second chunk (k 120…239, inside the window) becomes encoding 7, c_xor2_delta's
    // first (boundary) chunk encoding 200.
    await patchEncoding(`${work}/data/${ulid}/chunks/000001`, 1, 7);
    await patchEncoding(`${work}/data/${ulid}/chunks/000001`, 4 + 4, 200);
    await Deno.mkdir(`${work}/out`);
    for (const extra of [[], ["--keep-encodings"]]) {
      const r = await runCli(exportArgs(`${work}/data`, `${work}/out/a.tar.gz`, ...extra));
      assert.equal(r.code, 1, r.stderr);
      assert.ok(isOneLineError(r), r.stderr);
      assert.match(r.stderr, new RegExp(`block ${ulid}, series .*a_plain_xor.* encoding 7\\b`));
      assert.match(r.stderr, /nothing was written/);
      assert.deepEqual(await listDir(`${work}/out`), [], "no archive, sidecar or staging dir");
    }
    const raw = await runCliJson<Summary>(
      exportArgs(`${work}/data`, `${work}/out/r.tar.gz`, "--raw"),
    );
    assert.equal(raw.minPrometheusVersion, "3.11.0"); // the XOR2 chunks; 7 and 200 are unknown
    for (const e of [7, 200]) {
      assert.ok(
        raw.warnings.some((w) =>
          w.startsWith(`${ulid}/chunks/000001 has chunks of encoding ${e},`)
        ),
        raw.warnings.join("\n"),
      );
    }
    assert.deepEqual(await listDir(`${work}/out`), ["r.tar.gz", "r.tar.gz.sha256"]);
  });
});

// --- WAL record types of raw archives ---------------------------------------------------------

Deno.test("--raw: minPrometheusVersion from the WAL's record types", async () => {
  await withTempDir("promcase-raw-wal-", async (work) => {
    const now = BigInt(Date.now());
    for (const [name, v2] of [["v1", false], ["v2", true]] as const) {
      const dir = `${work}/${name}`;
      await Deno.mkdir(`${dir}/wal`, { recursive: true });
      const w = await WalSegmentWriter.create(`${dir}/wal/00000000`, { compression: "snappy" });
      await w.log(seriesRecord([{ ref: 1, labels: [["__name__", "up"]] }]));
      // A record of several fragments (more than a page), then the samples.
      const many = Array.from({ length: 4000 }, (_, i) => ({
        ref: 1,
        t: now - 3_600_000n + BigInt(i) * 15n,
        v: bitsOf(Math.sin(i)),
        st: now - 7_200_000n,
      }));
      await w.log(samplesV1Record(many));
      if (v2) await w.log(samplesV2Record(many.map((s) => ({ ...s, t: s.t + 60_000n }))));
      await w.close(false);
      const r = await runCliJson<Summary>([
        "export",
        dir,
        "--at",
        "now",
        "--before",
        "2h",
        "-o",
        `${work}/${name}.tar.gz`,
        "--raw",
        "--no-prometheus-api",
      ]);
      assert.equal(r.minPrometheusVersion, v2 ? "3.11.0" : "2.0.0", name);
    }
  });
});

Deno.test("raw scan: record types of snappy, zstd and fragmented records; head chunk files", () => {
  // A WAL page written by hand: a zstd record (flag 0x10) cut into first/last fragments, then a
  // full uncompressed record of type 13, then padding.
  const record = new Uint8Array(300).fill(9);
  record[0] = 12;
  const z = zstdCompressSync(record);
  const page = new Uint8Array(WAL_PAGE_SIZE);
  let at = 0;
  const fragment = (flags: number, payload: Uint8Array) => {
    page[at] = flags;
    page[at + 1] = payload.length >> 8;
    page[at + 2] = payload.length & 0xff;
    new DataView(page.buffer).setUint32(at + 3, crc32c(payload));
    page.set(payload, at + 7);
    at += 7 + payload.length;
  };
  const half = z.length >> 1;
  fragment(0x10 | 2, z.subarray(0, half));
  fragment(0x10 | 4, z.subarray(half));
  fragment(1, new Uint8Array([13, 1, 2]));
  const scan = new RawContentScan();
  const wal = scan.scanner("wal/00000003")!;
  // Fed in odd pieces, the page's tail left out (a live segment ends mid-page).
  for (let i = 0; i < at + 5; i += 7) wal.push(page.subarray(i, Math.min(i + 7, at + 5)));
  wal.end();
  assert.deepEqual([...scan.contents.walRecordTypes], [[12, 1], [13, 1]]);
  assert.equal(rawMinPrometheusVersion(scan.contents).version, "3.12.0");

  // chunks_head/: an out-of-order XOR2 chunk, then the zero tail of the preallocated file.
  const head = new Uint8Array(8 + 25 + 1 + 5 + 4 + 100);
  head.set([0x01, 0x30, 0xbc, 0x91, 1], 0);
  head[8 + 7] = 1; // series ref 1
  head[8 + 24] = 0x80 | 4;
  head[8 + 25] = 5;
  const h = scan.scanner("chunks_head/000002")!;
  h.push(head);
  h.end();
  assert.deepEqual(scan.contents.unparsed, []);
  assert.equal(scan.contents.outOfOrderHeadChunks, 1);
  assert.deepEqual([...scan.contents.chunkEncodings], [[4, 1]]);
  assert.equal(scan.scanner("01ARZ3NDEKTSV4RRFFQ69G5FAV/index"), null);

  // A block chunk file with a custom-bucket histogram chunk (schema -53): 2.54.
  const nhcb = new HistogramAppender();
  nhcb.append({
    ...bare(1000n, 3),
    schema: -53,
    count: 3n,
    positiveSpans: [{ offset: 0, length: 2 }],
    positiveBuckets: [1n, 1n],
    customValues: [bitsOf(1), bitsOf(5)],
  });
  const data = nhcb.bytes();
  const file = new Uint8Array(8 + 1 + 1 + data.length + 4);
  file.set([0x85, 0xbd, 0x40, 0xdd, 1], 0);
  file[8] = data.length; // one uvarint byte
  file[9] = Encoding.histogram;
  file.set(data, 10);
  const blocks = new RawContentScan();
  const c = blocks.scanner("01ARZ3NDEKTSV4RRFFQ69G5FAV/chunks/000001")!;
  for (let i = 0; i < file.length; i += 3) c.push(file.subarray(i, i + 3));
  c.end();
  assert.deepEqual(blocks.contents.unparsed, []);
  assert.equal(blocks.contents.customBuckets, true);
  assert.equal(rawMinPrometheusVersion(blocks.contents).version, "2.54.0");
});

Deno.test("--keep-encodings is a rewrite flag: refused with --raw and --url", async () => {
  for (const extra of [["--raw"], ["--url", "http://127.0.0.1:9"]]) {
    const r = await runCli(["export", "--at", "now", "--keep-encodings", ...extra]);
    assert.equal(r.code, 2, r.stderr);
    assert.ok(isOneLineError(r), r.stderr);
    assert.match(r.stderr, /--keep-encodings/);
  }
});
