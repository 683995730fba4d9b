/**
 * Writes a Prometheus head (a `wal/` of numbered segments) of any size, the way Prometheus' head
 * writes it: series records for new series, then one samples record per scrape holding every
 * series' sample, one histogram record per scrape. Values have high entropy: random walks with
 * three decimals that change on every scrape, counters with decimals, native histograms whose
 * buckets grow. With churn (series that start late, series that end with a stale marker), labels
 * declared again under a new ref (as after Prometheus' series GC), tombstones, duplicate
 * samples and samples of unknown refs. Deterministic for a seed. Records are encoded straight into byte arrays, so a
 * 1,000,000-series head takes a minute, not an hour.
 *
 * With `headChunks`, also `chunks_head/` as Prometheus' head memory-maps its chunks: a series'
 * chunk is written there once full (120 float samples, or at a 2h chunk-range boundary; histogram
 * chunks where the head's appender cuts them), after the WAL records of its samples; the open
 * chunks stay in the WAL alone. A label set declared again starts new chunks under its new ref.
 *
 * promtool reads what it writes (the head tests and benchmarks compare against its dump).
 *
 * @module
 */

import { WalSegmentWriter } from "../mod/tsdb/wlog.ts";
import { decodeXorNumbers, XorAppender } from "../mod/tsdb/chunkenc/xor.ts";
import {
  type EncodedChunk,
  HistogramChunkEncoder,
} from "../mod/tsdb/chunkenc/histogram_appender.ts";
import { crc32c } from "../mod/tsdb/crc32c.ts";
import { chunkNumSamples } from "../mod/tsdb/chunkenc/mod.ts";
import { seededRandom } from "./_random.ts";

/** Options of {@link writeHeadWal}. */
export interface HeadGenOptions {
  /** Series in all (some start late, some end early). */
  series: number;
  /** Distinct metric names. */
  metrics?: number;
  /** Scrapes written. */
  scrapes: number;
  /** Scrape interval, ms. */
  intervalMs?: number;
  /** Time of the first scrape, ms. */
  start: number;
  /** PRNG seed. */
  seed?: number;
  /** Every n-th series is a native histogram (0: none; default 20). */
  histogramEvery?: number;
  /** Bytes after which a new segment starts (default 128 MiB). */
  segmentBytes?: number;
  /** Compression of the segments (default none). */
  compression?: "none" | "snappy";
  /** Also write the full chunks to `chunks_head/` (default false). */
  headChunks?: boolean;
  /** Bytes after which a new head chunk file starts (default 128 MiB, as Prometheus). */
  headChunkFileBytes?: number;
  /** Float samples in a full chunk (Prometheus' `--storage.tsdb.samples-per-chunk`, 120). */
  samplesPerChunk?: number;
  /**
   * Also declare a few label sets again 10 scrapes before the end (default false): with head
   * chunks, the new ref has none yet while the old one has, which the replay must notice.
   */
  redeclareLate?: boolean;
  /**
   * Series a series record holds at most (default 10,000). Prometheus logs all the series one
   * scrape creates in one record: give the series count for that (20 MiB at 200,000).
   */
  seriesPerRecord?: number;
}

/** What {@link writeHeadWal} wrote. */
export interface HeadGenResult {
  /** Float and histogram samples written, stale markers included. */
  samples: number;
  /** Stale markers written. */
  staleMarkers: number;
  /** Timestamp of the last scrape. */
  end: number;
  /** Segment files written. */
  segments: number;
  /** Chunks written to `chunks_head/`. */
  headChunks: number;
  /** Samples in the head chunks. */
  headChunkSamples: number;
}

/** The bits of Prometheus' stale marker (a NaN payload). */
export const STALE_HI = 0x7ff00000;
/** Low word of the stale marker's bits. */
export const STALE_LO = 0x00000002;

/** Writes the head's WAL into `dir/wal/`. */
export async function writeHeadWal(dir: string, o: HeadGenOptions): Promise<HeadGenResult> {
  const rnd = seededRandom(o.seed ?? 1);
  const metrics = o.metrics ?? 100;
  const interval = o.intervalMs ?? 15_000;
  const histEvery = o.histogramEvery ?? 20;
  const n = o.series;
  await Deno.mkdir(`${dir}/wal`, { recursive: true });
  const wal = new _SegmentedWal(`${dir}/wal`, o.segmentBytes ?? 128 * 1024 * 1024, o.compression);

  // Per series: kind, first and last scrape, ref, value state.
  const kind = new Uint8Array(n); // 0 random walk, 1 counter, 2 histogram
  const first = new Int32Array(n);
  const last = new Int32Array(n);
  const ref = new Float64Array(n);
  const value = new Float64Array(n);
  const hist: number[][] = [];
  for (let i = 0; i < n; i++) {
    kind[i] = histEvery > 0 && i % histEvery === 7 ? 2 : i % 10 === 3 ? 1 : 0;
    const r = rnd();
    first[i] = r < 0.05 ? 1 + Math.floor(rnd() * (o.scrapes - 1)) : 0;
    last[i] = r > 0.95 ? first[i] + Math.floor(rnd() * (o.scrapes - first[i])) : o.scrapes - 1;
    value[i] = Math.round(rnd() * 1e6) / 1000;
    if (kind[i] === 2) hist[i] = [0, 0, 0, 0, 0];
  }
  // A few label sets declared again under a new ref half way, a few tombstones at the end.
  const redeclare = o.scrapes >= 4 ? Math.floor(o.scrapes / 2) : -1;
  // And with redeclareLate a few shortly before the end, so that the new ref has no full chunk.
  const redeclareLate = o.redeclareLate && o.scrapes >= 40 ? o.scrapes - 10 : -1;
  let nextRef = 1;
  const labels = (i: number) => [
    ["__name__", `gen_metric_${i % metrics}`],
    ["instance", `host-${Math.floor(i / metrics) % 97}.example.internal:9100`],
    ["job", "node"],
    ["pod", `pod-${(i * 2654435761 >>> 0).toString(16).padStart(8, "0")}-${i}`],
  ];
  const out: HeadGenResult = {
    samples: 0,
    staleMarkers: 0,
    end: 0,
    segments: 0,
    headChunks: 0,
    headChunkSamples: 0,
  };
  const chunks = o.headChunks
    ? await HeadChunkMapper.create(
      `${dir}/chunks_head`,
      o.headChunkFileBytes ?? 128 * 1024 * 1024,
      o.samplesPerChunk ?? 120,
    )
    : null;
  const view = new DataView(new ArrayBuffer(8));
  for (let k = 0; k < o.scrapes; k++) {
    // Prometheus' scrape timestamps jitter by a few ms between scrapes.
    const t = o.start + k * interval + Math.floor(rnd() * 5);
    out.end = t;
    const created: number[] = [];
    const late = new _SamplesRecord(2);
    for (let i = 0; i < n; i++) {
      const again = (k === redeclare && i % 500 === 11) || (k === redeclareLate && i % 500 === 13);
      if (first[i] === k || (again && first[i] < k)) {
        if (k === redeclareLate && k - 25 > first[i]) {
          // A sample of the old ref after the new ref's record, from 25 scrapes back: Prometheus
          // appends it (what counts now is the new ref's head chunks: none), as the WAL alone.
          late.add(ref[i], o.start + (k - 25) * interval + 7, 0x40280000, i);
          out.samples++;
        }
        ref[i] = nextRef++;
        created.push(i);
        chunks?.forget(i);
      }
    }
    const perRecord = o.seriesPerRecord ?? 10_000;
    for (let from = 0; from < created.length; from += perRecord) {
      await wal.log(_seriesRecord(
        created.slice(from, from + perRecord).map((i) => ({
          ref: ref[i],
          labels: labels(i),
        })),
      ));
    }
    if (late.count > 0) await wal.log(late.bytes());
    const floats = new _SamplesRecord(2);
    const hists = new _SamplesRecord(7);
    for (let i = 0; i < n; i++) {
      if (k < first[i] || k > last[i] + 1) continue;
      const stale = k === last[i] + 1;
      if (stale && last[i] === o.scrapes - 1) continue;
      out.samples++;
      if (stale) {
        out.staleMarkers++;
        floats.add(ref[i], t, STALE_HI, STALE_LO);
        chunks?.float(i, ref[i], t, STALE_HI, STALE_LO);
        continue;
      }
      if (kind[i] === 2) {
        const h = hist[i];
        const grow = Math.floor(rnd() * 4);
        for (let b = 0; b < h.length; b++) h[b] += Math.floor(rnd() * (grow + 1)) * (b + 1);
        value[i] += rnd() * 10;
        hists.addHistogram(ref[i], t, h, value[i]);
        chunks?.histogram(i, ref[i], t, h, value[i]);
        continue;
      }
      if (kind[i] === 1) value[i] = Math.round((value[i] + rnd() * 100) * 1000) / 1000;
      else value[i] = Math.round((value[i] + (rnd() - 0.5) * 50) * 1000) / 1000;
      view.setFloat64(0, value[i]);
      floats.add(ref[i], t, view.getUint32(0), view.getUint32(4));
      chunks?.float(i, ref[i], t, view.getUint32(0), view.getUint32(4));
      // Now and then a sample of a ref no series record names, in the middle of the record
      // (as after a checkpoint dropped its series): both sides skip it.
      if (i % 1000 === 17) floats.add(1e9 + i, t, view.getUint32(0), view.getUint32(4));
    }
    if (floats.count > 0) await wal.log(floats.bytes());
    if (hists.count > 0) await wal.log(hists.bytes());
    // The chunks cut by this scrape's samples, after the WAL has them (as the head writes them).
    if (chunks) out.headChunks += await chunks.writeCut();
    // Now and then a scrape's first sample again (a duplicate both sides drop).
    if (k % 7 === 3 && n > 0 && k >= first[0] && k <= last[0]) {
      const again = new _SamplesRecord(2);
      again.add(ref[0], t, 0x40091eb8, 0x51eb851f);
      await wal.log(again.bytes());
    }
  }
  // Tombstones over three scrapes a third of the way, for every 1000th series, as
  // `delete_series` writes them. (Not at the end: promtool 3.5's dump panics merging a tombstone
  // with the interval past --max-time it adds.)
  const stones: number[] = [];
  for (let i = 5; i < n; i += 1000) stones.push(i);
  if (stones.length > 0 && o.scrapes > 6) {
    const at = o.start + Math.floor(o.scrapes / 3) * interval;
    await wal.log(_tombstoneRecord(stones.map((i) => ref[i]), at, at + 2 * interval + 10));
  }
  out.segments = await wal.close();
  if (chunks) {
    out.headChunkSamples = chunks.samples;
    chunks.close();
  }
  return out;
}

/**
 * The XOR and histogram chunks of every series, m-mapped to `chunks_head/` once cut (full at
 * `samplesPerChunk` samples or at a 2h chunk-range boundary), as Prometheus' head does. Series are
 * numbered by the caller; the open chunks stay in memory (and in the WAL alone).
 */
export class HeadChunkMapper {
  #file: _HeadChunkFile;
  #float = new Map<number, { app: XorAppender; rangeEnd: number; ref: number }>();
  #hist = new Map<number, { enc: HistogramChunkEncoder; ref: number }>();
  #cut: { ref: number; chunk: EncodedChunk }[] = [];
  #samplesPerChunk: number;
  /** Samples in the chunks written. */
  samples = 0;

  private constructor(file: _HeadChunkFile, samplesPerChunk: number) {
    this.#file = file;
    this.#samplesPerChunk = samplesPerChunk;
  }

  /** Head chunk files of at most `fileBytes` (Prometheus': 128 MiB) in `dir`, created. */
  static async create(
    dir: string,
    fileBytes: number,
    samplesPerChunk: number,
  ): Promise<HeadChunkMapper> {
    await Deno.mkdir(dir, { recursive: true });
    return new HeadChunkMapper(new _HeadChunkFile(dir, fileBytes), samplesPerChunk);
  }

  /** Drops series `i`'s open chunks (its label set is declared again under a new ref). */
  forget(i: number): void {
    this.#float.delete(i);
    this.#hist.delete(i);
  }

  /** Appends series `i`'s float sample (its bits as two 32-bit halves) under WAL ref `ref`. */
  float(i: number, ref: number, t: number, hi: number, lo: number): void {
    // A float after histograms (a stale marker) cuts the histogram chunk, as the head does.
    const h = this.#hist.get(i);
    const last = h?.enc.flush();
    if (last) this.#cut.push({ ref: h!.ref, chunk: last });
    this.#hist.delete(i);
    let c = this.#float.get(i);
    if (c && (c.app.numSamples >= this.#samplesPerChunk || t >= c.rangeEnd)) {
      this.#cut.push({ ref: c.ref, chunk: _xorChunk(c.app) });
      c = undefined;
    }
    if (!c) {
      const rangeEnd = Math.floor(t / _RANGE) * _RANGE + _RANGE;
      this.#float.set(i, c = { app: new XorAppender(), rangeEnd, ref });
    }
    c.app.appendNumber(t, hi, lo);
  }

  /** Appends series `i`'s native histogram sample (cumulative bucket counts, sum). */
  histogram(i: number, ref: number, t: number, buckets: number[], sum: number): void {
    const x = this.#float.get(i);
    if (x) this.#cut.push({ ref: x.ref, chunk: _xorChunk(x.app) });
    this.#float.delete(i);
    let c = this.#hist.get(i);
    if (!c) {
      this.#hist.set(
        i,
        c = { enc: new HistogramChunkEncoder({ chunkRange: BigInt(_RANGE) }), ref },
      );
    }
    const f = new DataView(new ArrayBuffer(8));
    const bits = (x: number) => (f.setFloat64(0, x), f.getBigUint64(0));
    const zero = Math.floor(buckets[0] / 2);
    const cut = c.enc.add({
      t: BigInt(t),
      counterResetHint: 0,
      schema: 0,
      zeroThreshold: bits(2.938735877055719e-39),
      zeroCount: BigInt(zero),
      count: BigInt(zero + buckets.reduce((x, y) => x + y, 0)),
      sum: bits(Math.round(sum * 1000) / 1000),
      positiveSpans: [{ offset: 0, length: buckets.length }],
      negativeSpans: [],
      positiveBuckets: buckets.map((b, k) => BigInt(b - (k > 0 ? buckets[k - 1] : 0))),
      negativeBuckets: [],
      customValues: [],
    });
    if (cut) this.#cut.push({ ref: c.ref, chunk: cut });
  }

  /** Writes the chunks cut since the last call; returns how many. */
  async writeCut(): Promise<number> {
    const cut = this.#cut;
    this.#cut = [];
    for (const { ref, chunk } of cut) {
      await this.#file.write(ref, chunk);
      this.samples += chunkNumSamples(chunk.encoding, chunk.data);
    }
    return cut.length;
  }

  /** Closes the last head chunk file (the open chunks are not written). */
  close(): void {
    this.#file.close();
  }
}

const _RANGE = 2 * 3600 * 1000;

function _xorChunk(app: XorAppender): EncodedChunk {
  const data = app.bytes();
  const d = decodeXorNumbers(data)!;
  return { encoding: 1, data, mint: BigInt(d.t[0]), maxt: BigInt(d.t[d.t.length - 1]) };
}

/** The header of a head chunk file: magic 0x0130BC91, version 1, padding. */
export const HEAD_CHUNK_FILE_HEADER = new Uint8Array([0x01, 0x30, 0xbc, 0x91, 1, 0, 0, 0]);

/**
 * One entry of a head chunk file as `head_chunks.go` writes it: series ref, mint, maxt (BE64),
 * encoding, uvarint length, data, CRC32C of all before.
 */
export function encodeHeadChunkEntry(
  ref: number,
  mint: number,
  maxt: number,
  encoding: number,
  data: Uint8Array,
): Uint8Array {
  const b = new _Bytes();
  b.be64(ref);
  b.be64(mint);
  b.be64(maxt);
  b.byte(encoding);
  b.uvarint(data.length);
  b.room(data.length + 4);
  b.buf.set(data, b.length);
  b.length += data.length;
  b.view.setUint32(b.length, crc32c(b.buf.subarray(0, b.length)));
  b.length += 4;
  return b.buf.slice(0, b.length);
}

/** Head chunk files as `head_chunks.go` writes them: header, then CRC'd entries. */
class _HeadChunkFile {
  #dir: string;
  #max: number;
  #file: Deno.FsFile | null = null;
  #index = 0;
  #size = 0;

  constructor(dir: string, max: number) {
    this.#dir = dir;
    this.#max = max;
  }

  async write(ref: number, c: EncodedChunk): Promise<void> {
    if (!this.#file || this.#size > this.#max) {
      this.#file?.close();
      this.#index++;
      const path = `${this.#dir}/${String(this.#index).padStart(6, "0")}`;
      this.#file = await Deno.open(path, { write: true, createNew: true });
      await this.#file.write(HEAD_CHUNK_FILE_HEADER);
      this.#size = 8;
    }
    const bytes = encodeHeadChunkEntry(ref, Number(c.mint), Number(c.maxt), c.encoding, c.data);
    for (let done = 0; done < bytes.length;) done += await this.#file.write(bytes.subarray(done));
    this.#size += bytes.length;
  }

  close(): void {
    this.#file?.close();
    this.#file = null;
  }
}

class _SegmentedWal {
  #dir: string;
  #max: number;
  #compression: "none" | "snappy" | undefined;
  #writer: WalSegmentWriter | null = null;
  #index = -1;
  #bytes = 0;

  constructor(dir: string, max: number, compression: "none" | "snappy" | undefined) {
    this.#dir = dir;
    this.#max = max;
    this.#compression = compression;
  }

  async log(record: Uint8Array): Promise<void> {
    if (!this.#writer || this.#bytes > this.#max) {
      await this.#writer?.close(true);
      this.#index++;
      this.#writer = await WalSegmentWriter.create(
        `${this.#dir}/${String(this.#index).padStart(8, "0")}`,
        { compression: this.#compression },
      );
      this.#bytes = 0;
    }
    await this.#writer.log(record);
    this.#bytes += record.length;
  }

  async close(): Promise<number> {
    await this.#writer?.close(true);
    return this.#index + 1;
  }
}

/** A growable byte array with the WAL's integer encodings. */
class _Bytes {
  buf = new Uint8Array(1 << 16);
  view = new DataView(this.buf.buffer);
  length = 0;

  room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(2 * this.buf.length, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.length++] = b;
  }

  be64(v: number): void {
    this.room(8);
    this.view.setBigInt64(this.length, BigInt(v));
    this.length += 8;
  }

  u32pair(hi: number, lo: number): void {
    this.room(8);
    this.view.setUint32(this.length, hi);
    this.view.setUint32(this.length + 4, lo);
    this.length += 8;
  }

  uvarint(v: number): void {
    this.room(10);
    let x = v;
    while (x >= 0x80) {
      this.buf[this.length++] = (x % 0x80) | 0x80;
      x = Math.floor(x / 0x80);
    }
    this.buf[this.length++] = x;
  }

  varint(v: number): void {
    this.uvarint(v >= 0 ? 2 * v : -2 * v - 1);
  }

  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.uvarint(b.length);
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
}

/** A samples (2) or histogram samples (7) record: base ref and time, then deltas. */
class _SamplesRecord {
  count = 0;
  #b = new _Bytes();
  #ref0 = 0;
  #t0 = 0;

  constructor(type: number) {
    this.#b.byte(type);
  }

  #entry(ref: number, t: number): void {
    if (this.count++ === 0) {
      this.#ref0 = ref;
      this.#t0 = t;
      this.#b.be64(ref);
      this.#b.be64(t);
    }
    this.#b.varint(ref - this.#ref0);
    this.#b.varint(t - this.#t0);
  }

  add(ref: number, t: number, hi: number, lo: number): void {
    this.#entry(ref, t);
    this.#b.u32pair(hi, lo);
  }

  /** An integer histogram, schema 0, one span of `buckets.length` buckets from index 0. */
  addHistogram(ref: number, t: number, buckets: number[], sum: number): void {
    this.#entry(ref, t);
    const b = this.#b;
    b.byte(0); // counter reset hint: unknown
    b.varint(0); // schema
    const f = new DataView(new ArrayBuffer(8));
    f.setFloat64(0, 2.938735877055719e-39); // Prometheus' default zero threshold
    b.u32pair(f.getUint32(0), f.getUint32(4));
    const zero = Math.floor(buckets[0] / 2);
    b.uvarint(zero);
    b.uvarint(zero + buckets.reduce((x, y) => x + y, 0));
    f.setFloat64(0, Math.round(sum * 1000) / 1000);
    b.u32pair(f.getUint32(0), f.getUint32(4));
    b.uvarint(1); // positive spans
    b.varint(0);
    b.uvarint(buckets.length);
    b.uvarint(0); // negative spans
    b.uvarint(buckets.length);
    for (let i = 0; i < buckets.length; i++) b.varint(buckets[i] - (i > 0 ? buckets[i - 1] : 0));
    b.uvarint(0); // negative buckets
  }

  bytes(): Uint8Array {
    return this.#b.buf.slice(0, this.#b.length);
  }
}

function _seriesRecord(series: { ref: number; labels: string[][] }[]): Uint8Array {
  const b = new _Bytes();
  b.byte(1);
  for (const s of series) {
    b.be64(s.ref);
    b.uvarint(s.labels.length);
    for (const [name, value] of s.labels) {
      b.string(name);
      b.string(value);
    }
  }
  return b.buf.slice(0, b.length);
}

function _tombstoneRecord(refs: number[], mint: number, maxt: number): Uint8Array {
  const b = new _Bytes();
  b.byte(3);
  for (const ref of refs) {
    b.be64(ref);
    b.varint(mint);
    b.varint(maxt);
  }
  return b.buf.slice(0, b.length);
}
