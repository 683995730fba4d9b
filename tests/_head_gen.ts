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
 * promtool reads what it writes (the head tests and benchmarks compare against its dump).
 *
 * @module
 */

import { WalSegmentWriter } from "../mod/tsdb/wlog.ts";
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
  let nextRef = 1;
  const labels = (i: number) => [
    ["__name__", `gen_metric_${i % metrics}`],
    ["instance", `host-${Math.floor(i / metrics) % 97}.example.internal:9100`],
    ["job", "node"],
    ["pod", `pod-${(i * 2654435761 >>> 0).toString(16).padStart(8, "0")}-${i}`],
  ];
  const out: HeadGenResult = { samples: 0, staleMarkers: 0, end: 0, segments: 0 };
  const view = new DataView(new ArrayBuffer(8));
  for (let k = 0; k < o.scrapes; k++) {
    // Prometheus' scrape timestamps jitter by a few ms between scrapes.
    const t = o.start + k * interval + Math.floor(rnd() * 5);
    out.end = t;
    const created: number[] = [];
    for (let i = 0; i < n; i++) {
      if (first[i] === k || (k === redeclare && i % 500 === 11 && first[i] < k)) {
        ref[i] = nextRef++;
        created.push(i);
      }
    }
    for (let from = 0; from < created.length; from += 10_000) {
      await wal.log(_seriesRecord(
        created.slice(from, from + 10_000).map((i) => ({
          ref: ref[i],
          labels: labels(i),
        })),
      ));
    }
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
        continue;
      }
      if (kind[i] === 2) {
        const h = hist[i];
        const grow = Math.floor(rnd() * 4);
        for (let b = 0; b < h.length; b++) h[b] += Math.floor(rnd() * (grow + 1)) * (b + 1);
        hists.addHistogram(ref[i], t, h, value[i] += rnd() * 10);
        continue;
      }
      if (kind[i] === 1) value[i] = Math.round((value[i] + rnd() * 100) * 1000) / 1000;
      else value[i] = Math.round((value[i] + (rnd() - 0.5) * 50) * 1000) / 1000;
      view.setFloat64(0, value[i]);
      floats.add(ref[i], t, view.getUint32(0), view.getUint32(4));
      // Now and then a sample of a ref no series record names, in the middle of the record
      // (as after a checkpoint dropped its series): both sides skip it.
      if (i % 1000 === 17) floats.add(1e9 + i, t, view.getUint32(0), view.getUint32(4));
    }
    if (floats.count > 0) await wal.log(floats.bytes());
    if (hists.count > 0) await wal.log(hists.bytes());
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
  return out;
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
