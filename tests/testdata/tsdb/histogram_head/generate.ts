/**
 * Regenerates this fixture: a REAL Prometheus 3.5.3 (`--web.enable-remote-write-receiver
 * --enable-feature=native-histograms`) receives crafted native histograms by remote write (v1
 * protobuf, snappy), is stopped cleanly, and its `wal/` and `chunks_head/` are kept. On shutdown
 * Prometheus m-maps every head chunk but each series' last, so `chunks_head/` holds the chunks its
 * head cut, recoded and headed for the samples that the WAL holds.
 *
 * The series (2026-01-01 01:35–02:45 UTC, crossing the 02:00 chunk-range boundary) cover: bucket
 * growth (recoding), empty buckets that vanish (backward inserts), detected and hinted counter
 * resets, "no reset" hints, schema and zero-threshold changes, negative buckets, gauge histograms
 * with buckets coming and going, custom buckets (schema -53) with changing bounds, stale markers
 * sent as histograms and as float samples, a 150-bucket histogram (2048-byte cuts), and float
 * histograms of each kind. Samples are deterministic (seeded); only the WAL framing and the series
 * refs may change between runs.
 *
 * Avoided on purpose, because 3.5 and 3.6+ merge them differently (prometheus/prometheus#16893):
 * several empty buckets vanishing in one run while new buckets appear in the same integer sample,
 * and vanishing plus appearing buckets in one float sample.
 *
 * usage: deno run -A tests/testdata/tsdb/histogram_head/generate.ts
 *
 * @module
 */

import { seededRandom } from "../../../_random.ts";
import { compress as snappyCompress } from "snappyjs";
import { readHeadChunks } from "../../../../mod/tsdb/head_chunks.ts";
import { findPrometheus, startPrometheus } from "../../../_prometheus.ts";

const HERE = new URL(".", import.meta.url).pathname;
const BASE = Date.UTC(2026, 0, 1, 1, 35);
const END = Date.UTC(2026, 0, 1, 2, 45);
const STALE_NAN = 0x7ff0000000000002n;

// --- deterministic randomness --------------------------------------------------------------------


// --- minimal protobuf writer (prompb.WriteRequest) -----------------------------------------------

class Pb {
  bytes: number[] = [];
  varint(v: bigint): this {
    let x = BigInt.asUintN(64, v);
    while (x >= 0x80n) {
      this.bytes.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.bytes.push(Number(x));
    return this;
  }
  key(field: number, wire: number): this {
    return this.varint(BigInt((field << 3) | wire));
  }
  uint(field: number, v: bigint | number): this {
    return this.key(field, 0).varint(BigInt(v));
  }
  sint(field: number, v: bigint | number): this {
    const x = BigInt.asIntN(64, BigInt(v));
    return this.key(field, 0).varint((x << 1n) ^ (x >> 63n));
  }
  fixed64(v: bigint): this {
    for (let i = 0n; i < 64n; i += 8n) this.bytes.push(Number((v >> i) & 0xffn));
    return this;
  }
  double(field: number, bits: bigint): this {
    return this.key(field, 1).fixed64(bits);
  }
  bytesField(field: number, b: number[] | Uint8Array): this {
    this.key(field, 2).varint(BigInt(b.length));
    for (const x of b) this.bytes.push(x);
    return this;
  }
  str(field: number, s: string): this {
    return this.bytesField(field, new TextEncoder().encode(s));
  }
  packedSint(field: number, vs: bigint[]): this {
    if (vs.length === 0) return this;
    const p = new Pb();
    for (const v of vs) {
      const x = BigInt.asIntN(64, v);
      p.varint((x << 1n) ^ (x >> 63n));
    }
    return this.bytesField(field, p.bytes);
  }
  packedDouble(field: number, vs: bigint[]): this {
    if (vs.length === 0) return this;
    const p = new Pb();
    for (const v of vs) p.fixed64(v);
    return this.bytesField(field, p.bytes);
  }
}

const f64 = new Float64Array(1);
const u64 = new BigUint64Array(f64.buffer);
const bits = (x: number) => {
  f64[0] = x;
  return u64[0];
};

// --- histogram model ------------------------------------------------------------------------------

interface Span {
  offset: number;
  length: number;
}

/** One histogram to send: absolute counts per bucket index (present buckets only). */
interface Hist {
  float: boolean;
  hint: number; // 0 unknown, 1 reset, 2 no reset, 3 gauge
  schema: number;
  zeroThreshold: number;
  zeroCount: number;
  sum: bigint; // bits
  positive: Map<number, number>; // index -> absolute count
  negative: Map<number, number>;
  customValues: number[];
}

type Event =
  | { series: string; t: number; kind: "hist"; h: Hist }
  | { series: string; t: number; kind: "staleFloat" };

function spansOf(idx: number[]): Span[] {
  const spans: Span[] = [];
  let last = 0;
  for (const [k, i] of idx.entries()) {
    if (k > 0 && i === last + 1) spans[spans.length - 1].length++;
    else spans.push({ offset: k === 0 ? i : i - last - 1, length: 1 });
    last = i;
  }
  return spans;
}

function encodeSpan(s: Span): number[] {
  return new Pb().sint(1, s.offset).uint(2, s.length).bytes;
}

function encodeHist(t: number, h: Hist): number[] {
  const p = new Pb();
  const pIdx = [...h.positive.keys()].sort((a, b) => a - b);
  const nIdx = [...h.negative.keys()].sort((a, b) => a - b);
  const pAbs = pIdx.map((i) => h.positive.get(i)!);
  const nAbs = nIdx.map((i) => h.negative.get(i)!);
  const count = pAbs.reduce((a, b) => a + b, 0) + nAbs.reduce((a, b) => a + b, 0) + h.zeroCount;
  const stale = h.sum === STALE_NAN;
  if (h.float) p.double(2, bits(stale ? 0 : count));
  else p.uint(1, stale ? 0 : count);
  p.double(3, h.sum);
  p.sint(4, h.schema);
  p.double(5, bits(h.zeroThreshold));
  if (h.float) p.double(7, bits(stale ? 0 : h.zeroCount));
  else p.uint(6, stale ? 0 : h.zeroCount);
  const deltas = (abs: number[]) => abs.map((v, i) => BigInt(v - (i > 0 ? abs[i - 1] : 0)));
  if (!stale) {
    for (const s of spansOf(nIdx)) p.bytesField(8, encodeSpan(s));
    if (h.float) p.packedDouble(10, nAbs.map(bits));
    else p.packedSint(9, deltas(nAbs));
    for (const s of spansOf(pIdx)) p.bytesField(11, encodeSpan(s));
    if (h.float) p.packedDouble(13, pAbs.map(bits));
    else p.packedSint(12, deltas(pAbs));
    p.packedDouble(16, h.customValues.map(bits));
  }
  if (h.hint) p.uint(14, h.hint);
  p.uint(15, t);
  return p.bytes;
}

function encodeRequest(events: Event[]): Uint8Array {
  const bySeries = new Map<string, Event[]>();
  for (const e of events) {
    if (!bySeries.has(e.series)) bySeries.set(e.series, []);
    bySeries.get(e.series)!.push(e);
  }
  const req = new Pb();
  for (const [series, es] of bySeries) {
    const ts = new Pb();
    ts.bytesField(1, new Pb().str(1, "__name__").str(2, series).bytes);
    ts.bytesField(1, new Pb().str(1, "job").str(2, "rw").bytes);
    for (const e of es) {
      if (e.kind === "staleFloat") {
        ts.bytesField(2, new Pb().double(1, STALE_NAN).uint(2, e.t).bytes);
      } else {
        ts.bytesField(4, encodeHist(e.t, e.h));
      }
    }
    req.bytesField(1, ts.bytes);
  }
  return new Uint8Array(req.bytes);
}

// --- the series -----------------------------------------------------------------------------------

/** Timestamps every `step` ms with up to `jitter` ms of jitter, from `phase` after BASE. */
function times(seed: number, step: number, jitter: number, phase: number): number[] {
  const rnd = seededRandom(seed);
  const out: number[] = [];
  for (let t = BASE + phase; t < END; t += step) out.push(t + Math.floor(rnd() * jitter));
  return out;
}

const DEFAULT_ZT = 2 ** -128;

function base(float: boolean, schema: number): Hist {
  return {
    float,
    hint: 0,
    schema,
    zeroThreshold: schema === -53 ? 0 : DEFAULT_ZT,
    zeroCount: 0,
    sum: bits(0),
    positive: new Map(),
    negative: new Map(),
    customValues: [],
  };
}

function snapshot(h: Hist, patch: Partial<Hist> = {}): Hist {
  return { ...h, positive: new Map(h.positive), negative: new Map(h.negative), ...patch };
}

/** Adds a random amount to every present bucket (integers, or quarters for floats). */
function grow(h: Hist, rnd: () => number, max: number): void {
  let total = 0;
  for (const m of [h.positive, h.negative]) {
    for (const [i, v] of m) {
      const inc = h.float ? Math.floor(rnd() * max * 4) / 4 : Math.floor(rnd() * max);
      m.set(i, v + inc);
      total += inc;
    }
  }
  if (h.schema !== -53) {
    const z = h.float ? Math.floor(rnd() * 8) / 4 : Math.floor(rnd() * 2);
    h.zeroCount += z;
    total += z;
  }
  h.sum = bits(Number(new Float64Array(new BigUint64Array([h.sum]).buffer)[0]) + total * 0.37);
}

function absent(m: Map<number, number>, lo: number, hi: number, rnd: () => number): number {
  for (let k = 0; k < 20; k++) {
    const i = lo + Math.floor(rnd() * (hi - lo));
    if (!m.has(i)) return i;
  }
  return hi + m.size;
}

/** Integer counter: buckets appear (recoding), negative side later, two detected resets. */
function hGrowth(float: boolean, seed: number): Event[] {
  const rnd = seededRandom(seed);
  const name = float ? "fh_counter" : "h_growth";
  const h = base(float, float ? 2 : 3);
  for (const i of [0, 1, 2]) h.positive.set(i, 1);
  const out: Event[] = [];
  times(seed, 30_000, 1500, 0).forEach((t, k) => {
    let hint = float ? 2 : 0;
    if (rnd() < 0.08) h.positive.set(absent(h.positive, -10, 25, rnd), 0);
    if (k === 40) h.negative.set(-1, 0).set(0, 0).set(3, 0);
    if (k > 40 && rnd() < 0.05) h.negative.set(absent(h.negative, -6, 8, rnd), 0);
    if (k === 60 || k === 110) {
      // A counter reset: fewer buckets, small counts.
      for (const m of [h.positive, h.negative]) {
        for (const i of [...m.keys()]) if (rnd() < 0.5) m.delete(i);
        for (const i of m.keys()) m.set(i, Math.floor(rnd() * 2));
      }
      h.zeroCount = 0;
      h.sum = bits(1);
    } else {
      grow(h, rnd, 4);
    }
    if (float && k === 90) hint = 1; // explicit reset hint without a drop
    out.push({ series: name, t, kind: "hist", h: snapshot(h, { hint }) });
  });
  return out;
}

/** Hints, schema and zero-threshold changes. */
function hHints(): Event[] {
  const rnd = seededRandom(7);
  const h = base(false, 1);
  for (const i of [-2, -1, 0, 4, 5]) h.positive.set(i, 3);
  const out: Event[] = [];
  times(7, 30_000, 900, 4_000).forEach((t, k) => {
    let hint = 0;
    if (k % 23 === 0 && k > 0) hint = 1;
    else if (k % 11 === 0) hint = 2;
    if (k === 50) {
      // Schema 1 -> 0: the counts keep growing, the buckets merge.
      h.schema = 0;
      const merged = new Map<number, number>();
      for (const [i, v] of h.positive) {
        const j = Math.floor(i / 2);
        merged.set(j, (merged.get(j) ?? 0) + v);
      }
      h.positive = merged;
    }
    if (k === 80) h.zeroThreshold = 0.001; // stored as raw float64
    if (k === 110) h.zeroThreshold = 2 ** -5; // stored as one byte
    grow(h, rnd, 5);
    out.push({ series: "h_hints", t, kind: "hist", h: snapshot(h, { hint }) });
  });
  return out;
}

/**
 * Empty buckets that vanish (backward inserts): one at a time, sometimes together with one new
 * bucket (integers only); and a used bucket that vanishes (a counter reset).
 */
function hShrink(float: boolean, seed: number): Event[] {
  const rnd = seededRandom(seed);
  const name = float ? "fh_shrink_stale" : "h_shrink";
  const h = base(float, 2);
  for (let i = 0; i < 12; i++) h.positive.set(i * 2, i % 3 === 0 ? 0 : 1);
  const frozen = new Set<number>([0, 6, 12, 18]); // stay empty until they vanish
  const out: Event[] = [];
  times(seed, 30_000, 2000, 9_000).forEach((t, k) => {
    const empties = [...frozen].filter((i) => h.positive.get(i) === 0);
    if (k % 17 === 5 && empties.length > 0) {
      const gone = empties[Math.floor(rnd() * empties.length)];
      h.positive.delete(gone);
      frozen.delete(gone);
      if (!float && k % 2 === 0) h.positive.set(absent(h.positive, 30, 60, rnd), 0);
    } else if (k % 17 === 9 && rnd() < 0.7) {
      const i = absent(h.positive, -20, 60, rnd);
      h.positive.set(i, 0);
      if (rnd() < 0.5) frozen.add(i);
    }
    if (k === 100) {
      const used = [...h.positive.keys()].find((i) => (h.positive.get(i) ?? 0) > 0)!;
      h.positive.delete(used); // a bucket in use vanishes: a counter reset
    }
    if (frozen.size === 0 && k % 40 === 0) {
      for (let j = 0; j < 3; j++) {
        const i = absent(h.positive, -20, 60, rnd);
        h.positive.set(i, 0);
        frozen.add(i);
      }
    }
    // Frozen buckets stay empty.
    const saved = new Map([...frozen].map((i) => [i, h.positive.get(i)]));
    grow(h, rnd, 3);
    for (const [i, v] of saved) if (v !== undefined) h.positive.set(i, v);
    if (float && k >= 30 && k < 33) {
      out.push({ series: name, t, kind: "hist", h: snapshot(h, { sum: STALE_NAN }) });
    } else if (float && k === 70) {
      out.push({ series: name, t, kind: "staleFloat" });
    } else {
      out.push({ series: name, t, kind: "hist", h: snapshot(h) });
    }
  });
  return out;
}

/** Gauge histograms: buckets come and go, counts go up and down, schema change, stale markers. */
function hGauge(float: boolean, seed: number): Event[] {
  const rnd = seededRandom(seed);
  const name = float ? "fh_gauge" : "h_gauge";
  const h = base(float, 2);
  const out: Event[] = [];
  times(seed, 30_000, 1200, 13_000).forEach((t, k) => {
    for (const m of [h.positive, h.negative]) {
      if (rnd() < 0.3) m.set(absent(m, -8, 16, rnd), 0);
      if (rnd() < 0.25 && m.size > 1) m.delete([...m.keys()][Math.floor(rnd() * m.size)]);
      for (const i of m.keys()) {
        m.set(i, float ? Math.round(rnd() * 400) / 8 : Math.floor(rnd() * 50));
      }
    }
    h.zeroCount = float ? Math.round(rnd() * 40) / 8 : Math.floor(rnd() * 5);
    h.sum = bits((rnd() - 0.3) * 1000);
    if (k === 60) {
      h.schema = 1;
      if (float) h.zeroThreshold = 0.5;
    }
    if (k === 35) {
      out.push({ series: name, t, kind: "hist", h: snapshot(h, { sum: STALE_NAN }) });
    } else if (k === 85) {
      out.push({ series: name, t, kind: "staleFloat" });
    } else if (k === 110) {
      out.push({ series: name, t, kind: "hist", h: snapshot(h, { sum: STALE_NAN, hint: 3 }) });
    } else {
      out.push({ series: name, t, kind: "hist", h: snapshot(h, { hint: 3 }) });
    }
  });
  return out;
}

/** Custom buckets: buckets appear, then the bounds change (a counter reset). */
function hCustom(float: boolean, seed: number): Event[] {
  const rnd = seededRandom(seed);
  const name = float ? "fh_custom" : "h_custom";
  const h = base(float, -53);
  h.customValues = [0.005, 0.01, 0.025, 0.1, 0.25, 1, 2.5, 10.000123, 60];
  h.positive.set(3, 1).set(5, 2);
  const out: Event[] = [];
  times(seed, 30_000, 1000, 17_000).forEach((t, k) => {
    const room = h.customValues.length + 1; // the last bucket is +Inf
    if (k % 11 === 0 && h.positive.size < room) {
      const free = [...Array(room).keys()].filter((i) => !h.positive.has(i));
      h.positive.set(free[Math.floor(rnd() * free.length)], 0);
    }
    if (k === 75) {
      h.customValues = [0.01, 0.1, 1, 10.5, 100];
      h.positive = new Map([[1, 1], [4, 0]]);
    }
    grow(h, rnd, 6);
    out.push({ series: name, t, kind: "hist", h: snapshot(h) });
  });
  return out;
}

/** Counter with stale markers: three stale histograms, later a stale float sample. */
function hStale(): Event[] {
  const rnd = seededRandom(23);
  const h = base(false, 0);
  for (const i of [-3, -1, 0, 1]) h.positive.set(i, 1);
  const out: Event[] = [];
  times(23, 30_000, 800, 21_000).forEach((t, k) => {
    grow(h, rnd, 4);
    if (k >= 25 && k < 28) {
      out.push({ series: "h_stale", t, kind: "hist", h: snapshot(h, { sum: STALE_NAN }) });
    } else if (k === 70 || k === 71) {
      out.push({ series: "h_stale", t, kind: "staleFloat" });
    } else {
      out.push({ series: "h_stale", t, kind: "hist", h: snapshot(h) });
    }
  });
  return out;
}

/** 150 buckets with big random increments: chunks reach 2048 bytes within 10 samples. */
function hWide(): Event[] {
  const rnd = seededRandom(29);
  const h = base(false, 5);
  for (let i = 0; i < 150; i++) h.positive.set(i - 40 + (i > 100 ? 3 : 0), 0);
  return times(29, 120_000, 5000, 25_000).map((t) => {
    grow(h, rnd, 2000);
    return { series: "h_wide", t, kind: "hist", h: snapshot(h) };
  });
}

/** Negative and positive buckets, a raw zero threshold, "no reset" hints throughout. */
function hNegative(): Event[] {
  const rnd = seededRandom(31);
  const h = base(false, -2);
  h.zeroThreshold = 0.3;
  h.negative.set(0, 1).set(1, 1);
  h.positive.set(0, 2);
  const out: Event[] = [];
  times(31, 30_000, 3000, 27_000).forEach((t, k) => {
    if (k % 13 === 3) h.negative.set(absent(h.negative, -3, 12, rnd), 0);
    grow(h, rnd, 3);
    out.push({ series: "h_negative", t, kind: "hist", h: snapshot(h, { hint: 2 }) });
  });
  return out;
}

// --- trimming -------------------------------------------------------------------------------------

/** End of the last fragment of a WAL segment (7-byte fragment headers in 32 KiB pages). */
function walEnd(data: Uint8Array): number {
  const page = 32 * 1024;
  let end = 0;
  for (let p = 0; p < data.length; p += page) {
    let off = p;
    while (off + 7 <= Math.min(p + page, data.length) && data[off] !== 0) {
      off += 7 + ((data[off + 1] << 8) | data[off + 2]);
      end = off;
    }
  }
  return end;
}

/** End of the last entry of the (single) head chunk file. */
async function headChunksEnd(dir: string): Promise<number> {
  let end = 8;
  for await (const c of readHeadChunks(dir)) {
    let lenBytes = 1;
    for (let n = c.data.length; n >= 0x80; n >>>= 7) lenBytes++;
    end = c.offset + 8 + 8 + 8 + 1 + lenBytes + c.data.length + 4;
  }
  return end;
}

// --- run ------------------------------------------------------------------------------------------

/**
 * Ends a series with a copy of its last histogram in the next chunk range (04:00), so that the
 * chunk open before is m-mapped at shutdown too (Prometheus keeps each series' last chunk only in
 * memory and the WAL).
 */
function closed(events: Event[], k: number): Event[] {
  const last = events.findLast((e) => e.kind === "hist") as Extract<Event, { kind: "hist" }>;
  const t = Date.UTC(2026, 0, 1, 4, 0) + k * 1000;
  return [...events, { series: last.series, t, kind: "hist", h: snapshot(last.h) }];
}

const events: Event[] = [
  hGrowth(false, 3),
  hGrowth(true, 5),
  hHints(),
  hShrink(false, 11),
  hShrink(true, 13),
  hGauge(false, 17),
  hGauge(true, 19),
  hCustom(false, 37),
  hCustom(true, 41),
  hStale(),
  hWide(),
  hNegative(),
].flatMap(closed).sort((a, b) => a.t - b.t || (a.series < b.series ? -1 : 1));

const bin = await findPrometheus("newest");
const work = await Deno.makeTempDir({ prefix: "promcase-histogram-head-" });
try {
  const server = await startPrometheus({
    bin: bin.prometheus,
    dataDir: `${work}/data`,
    args: ["--web.enable-remote-write-receiver", "--enable-feature=native-histograms"],
  });
  try {
    console.error(`Prometheus ${server.version} at ${server.url}`);
    // Requests of up to 64 samples; a stale float sample goes alone (Prometheus appends a request's
    // float samples before its histograms).
    let batch: Event[] = [];
    const send = async () => {
      if (batch.length === 0) return;
      const body = snappyCompress(encodeRequest(batch));
      const res = await fetch(`${server.url}/api/v1/write`, {
        method: "POST",
        headers: {
          "Content-Type": "application/x-protobuf",
          "Content-Encoding": "snappy",
          "X-Prometheus-Remote-Write-Version": "0.1.0",
        },
        body,
      });
      const text = await res.text();
      if (res.status !== 204) throw new Error(`remote write: HTTP ${res.status}: ${text}`);
      batch = [];
    };
    for (const e of events) {
      if (e.kind === "staleFloat") {
        await send();
        batch.push(e);
        await send();
      } else {
        batch.push(e);
        if (batch.length >= 64) await send();
      }
    }
    await send();
    const status = await server.api("/api/v1/status/tsdb") as {
      headStats: { numSeries: number; chunkCount: number };
    };
    console.error(`head: ${JSON.stringify(status.headStats)}, ${events.length} samples sent`);
  } finally {
    await server.stop();
  }
  for (const dir of ["wal", "chunks_head"]) {
    await Deno.remove(`${HERE}${dir}`, { recursive: true }).catch(() => {});
    await Deno.mkdir(`${HERE}${dir}`);
    for await (const e of Deno.readDir(`${work}/data/${dir}`)) {
      if (!e.isFile) continue;
      // Drop the zero padding after the last WAL fragment or head chunk (the rest of the WAL
      // page, the preallocated chunk file): readers take a short file as zero-padded.
      const data = await Deno.readFile(`${work}/data/${dir}/${e.name}`);
      const end = dir === "wal" ? walEnd(data) : await headChunksEnd(`${work}/data/${dir}`);
      await Deno.writeFile(`${HERE}${dir}/${e.name}`, data.subarray(0, end));
    }
  }
} finally {
  await Deno.remove(work, { recursive: true });
}
