/**
 * Replays a head (checkpoint + WAL segments, and the out-of-order `wbl/`) into series with
 * chunks, the way Prometheus rebuilds its head at startup (`head_wal.go` loadWAL), so the head's
 * data can be written as block data instead of shipping the WAL.
 *
 * Replay rules, as Prometheus': series records with the same labels map later refs onto the first
 * one; samples of unknown refs are skipped; samples before `minValidTime` (the newest block's
 * end) are dropped, as are samples at or before the series' last appended time (out of order or
 * duplicate); out-of-order samples are taken from the WBL instead. Tombstone records delete.
 *
 * Memory stays small per series: samples are encoded into the series' open chunk as they come;
 * finished chunks go to a {@link ChunkSpill} (memory up to a budget, then a temporary file); only
 * the labels (as one string), the open chunk and a few numbers stay per series. Out-of-order
 * samples (rare) are kept decoded until the end.
 *
 * @module
 */

import type { FloatHistogramSample, HistogramSample } from "./chunkenc/histogram.ts";
import {
  type EncodedChunk,
  FloatHistogramChunkEncoder,
  HistogramChunkEncoder,
} from "./chunkenc/histogram_appender.ts";
import { Encoding } from "./chunkenc/mod.ts";
import { XorAppenderSet } from "./chunkenc/xor_set.ts";
import {
  CHUNK_RANGE_MS,
  encodeSamples,
  type Sample,
  SAMPLES_PER_CHUNK,
  trimChunks,
} from "./compact.ts";
import { ChunkSpill } from "./chunk_spill.ts";
import { compareUtf8 } from "./encoding.ts";
import type { Label } from "./index.ts";
import { decodeRecord, forEachSampleV1, recordTypeName } from "./record.ts";
import type { SeriesChunks, TimedChunk } from "./series.ts";
import { addInterval, type Interval } from "./tombstones.ts";
import { CorruptionError, type SegmentRef, WalReader } from "./wlog.ts";

const _RANGE_MS = Number(CHUNK_RANGE_MS);

/** Options of {@link HeadReplay.replay}. */
export interface HeadReplayOptions {
  /** The newest checkpoint's segments, then the WAL segments after it, in order. */
  wal: readonly SegmentRef[];
  /** The WBL's segments (out-of-order samples), in order. */
  wbl?: readonly SegmentRef[];
  /** Samples before this are dropped (the newest block's maxTime), null for none. */
  minValidTime: bigint | null;
  /** Only samples in `[from, to]` are kept (the other samples still advance the series). */
  from: bigint;
  /** Inclusive end of the kept samples. */
  to: bigint;
  /** Directory for the temporary chunk file. */
  tmpDir: string;
  /** Called every few thousand records with the records read so far. */
  onProgress?: (records: number) => void;
  /** Awaited with the size of each record read (e.g. to cap the read rate). */
  pace?: (bytes: number) => Promise<void>;
  /** Stops the replay when aborted. */
  signal?: AbortSignal;
  /** Bytes of finished chunks kept in memory before they go to the temporary file (4 MiB). */
  memoryBudget?: number;
}

/** Counters of a replay. */
export interface HeadReplayStats {
  /** Records read (WAL and WBL). */
  records: number;
  /** Distinct series (by labels) seen in series records. */
  series: number;
  /** Series records whose labels an earlier ref already had (Prometheus' multiRef). */
  duplicateSeriesRefs: number;
  /** Float samples kept in the window. */
  floatSamples: number;
  /** Histogram samples kept in the window. */
  histogramSamples: number;
  /** Out-of-order samples taken from the WBL. */
  outOfOrderSamples: number;
  /** Samples dropped because they were before the newest block's end. */
  droppedBeforeMinValid: number;
  /** Samples dropped as out of order or duplicate timestamps. */
  droppedOutOfOrder: number;
  /** Samples of refs no series record named. */
  droppedUnknownSeries: number;
  /** Records of types this replay skips (exemplars, metadata, unknown), by type name. */
  skippedRecords: Record<string, number>;
  /** Where the WAL ended inside a record (a torn write, normal for a live or crashed WAL). */
  torn: { path: string; offset: number } | null;
  /**
   * Where the WAL (or WBL) is damaged: the replay stopped there, as Prometheus' repair drops
   * everything from the damage on.
   */
  corruption: { path: string; offset: number; message: string } | null;
}

interface _Series {
  /** The labels as {@link _labelsKey} writes them (one string costs less than label objects). */
  key: string;
  /** The series' list of finished chunks in the spill. */
  id: number;
  /** What the open chunk holds, if a chunk is open. */
  openKind: Sample["kind"] | null;
  /** The open histogram chunk encoder. */
  hist: HistogramChunkEncoder | FloatHistogramChunkEncoder | null;
  ooo: Sample[] | null;
  deleted: Interval[] | null;
}

/** The head of a data dir, replayed: iterate {@link HeadReplay.series}, then close. */
export class HeadReplay {
  /** Counters. */
  readonly stats: HeadReplayStats;
  #series: _Series[];
  #spill: ChunkSpill;

  private constructor(series: _Series[], spill: ChunkSpill, stats: HeadReplayStats) {
    this.#series = series;
    this.#spill = spill;
    this.stats = stats;
  }

  /** Reads the WAL (and WBL) and builds the series. */
  static async replay(options: HeadReplayOptions): Promise<HeadReplay> {
    const spill = await ChunkSpill.create(
      `${options.tmpDir}/head-chunks-${crypto.randomUUID()}`,
      { memoryBudget: options.memoryBudget },
    );
    try {
      const replay = new _Replayer(options, spill);
      await replay.run();
      await spill.finish();
      return new HeadReplay(replay.distinct(), spill, replay.stats);
    } catch (e) {
      await spill.close();
      throw e;
    }
  }

  /** Number of series with samples in the window (until {@link HeadReplay.series} ran). */
  get numSeries(): number {
    return this.#series.length;
  }

  /**
   * The series with samples in the window, in label order, with their chunks. One pass: a
   * series' memory is let go once it is handed out, the chunks' memory after the last one (the
   * rewrite still has the block's index to write then).
   */
  async *series(): AsyncGenerator<SeriesChunks> {
    const all: (_Series | undefined)[] = this.#series;
    this.#series = [];
    for (let i = 0; i < all.length; i++) {
      const s = all[i]!;
      all[i] = undefined;
      const chunks: TimedChunk[] = this.#spill.read(s.id);
      if (s.ooo) {
        s.ooo.sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0));
        chunks.push(...encodeSamples(s.ooo.filter((x, i, a) => i === 0 || a[i - 1].t !== x.t)));
      }
      const merged = s.deleted || s.ooo
        ? trimChunks(chunks, -(2n ** 63n), 2n ** 63n - 1n, s.deleted ?? [])
        : chunks;
      if (merged.length > 0) yield { labels: _parseLabelsKey(s.key), chunks: merged };
    }
    await this.#spill.close();
  }

  /** Frees the chunks and removes the temporary chunk file. */
  async close(): Promise<void> {
    await this.#spill.close();
  }
}

class _Replayer {
  readonly stats: HeadReplayStats = {
    records: 0,
    series: 0,
    duplicateSeriesRefs: 0,
    floatSamples: 0,
    histogramSamples: 0,
    outOfOrderSamples: 0,
    droppedBeforeMinValid: 0,
    droppedOutOfOrder: 0,
    droppedUnknownSeries: 0,
    skippedRecords: {},
    torn: null,
    corruption: null,
  };
  #o: HeadReplayOptions;
  #spill: ChunkSpill;
  #byRef = new _RefIndex();
  /**
   * Per series id: the last appended timestamp (in-order rule; -Infinity before the first
   * sample), the open float chunk's first timestamp and its chunk-range end. In a typed array
   * because a number field of an object is a new heap number at every store (two per sample).
   */
  #times = new Float64Array(3 * 1024);
  /** The open float chunks, one slot per series id. */
  #xor = new XorAppenderSet();
  #series: _Series[] = [];
  /** Whether a label set holds a UTF-16 surrogate (then keys sort by UTF-8 bytes, slower). */
  #surrogates = false;
  #byLabels = new Map<string, _Series>();
  // Window and minValidTime as numbers (ms timestamps are exact as doubles).
  #minValid: number;
  #from: number;
  #to: number;

  constructor(options: HeadReplayOptions, spill: ChunkSpill) {
    this.#o = options;
    this.#spill = spill;
    this.#minValid = options.minValidTime === null ? -Infinity : Number(options.minValidTime);
    this.#from = Number(options.from);
    this.#to = Number(options.to);
  }

  async run(): Promise<void> {
    await this.#read(this.#o.wal, false);
    if (this.#o.wbl && this.#o.wbl.length > 0) await this.#read(this.#o.wbl, true);
    for (const s of this.#byLabels.values()) {
      this.#finish(s);
      // Bounded, as per record: otherwise every open chunk would wait in memory for the file.
      if (this.#spill.needsFlush) await this.#spill.flush();
    }
    this.#xor = new XorAppenderSet(); // frees the open chunks' memory
  }

  /** The distinct series that have data, sorted by labels. */
  distinct(): _Series[] {
    // Ordering the keys by UTF-8 bytes orders the label sets (see _labelsKey); without
    // surrogates (as nearly always) that is the order of UTF-16 code units.
    const order = this.#surrogates
      ? (a: _Series, b: _Series) => compareUtf8(a.key, b.key)
      : (a: _Series, b: _Series) => (a.key < b.key ? -1 : 1);
    return [...this.#byLabels.values()]
      .filter((s) => this.#spill.has(s.id) || (s.ooo?.length ?? 0) > 0)
      .sort(order);
  }

  async #read(segments: readonly SegmentRef[], wbl: boolean): Promise<void> {
    const reader = new WalReader(segments);
    try {
      await this.#readRecords(reader, wbl);
    } catch (err) {
      // Prometheus repairs a damaged WAL by dropping everything from the damage on; so does the
      // replay (the damage is reported, and the data before it kept). A damaged checkpoint is
      // fatal to Prometheus, and to the replay.
      if (!(err instanceof CorruptionError) || /\/checkpoint\.\d+\//.test(err.path)) throw err;
      this.stats.corruption ??= { path: err.path, offset: err.offset, message: err.message };
    }
    if (reader.torn && !this.stats.torn) {
      this.stats.torn = { path: reader.torn.path, offset: reader.torn.offset };
    }
  }

  async #readRecords(reader: WalReader, wbl: boolean): Promise<void> {
    for await (const rec of reader) {
      this.#o.signal?.throwIfAborted();
      await this.#o.pace?.(rec.bytes.length);
      const st = this.stats;
      if (++st.records % 4096 === 0) this.#o.onProgress?.(st.records);
      // Float samples, nearly all of a WAL, take the allocation-free path.
      if (!wbl && forEachSampleV1(rec.bytes, this.#appendWalFloat)) {
        if (this.#spill.needsFlush) await this.#spill.flush();
        continue;
      }
      const r = decodeRecord(rec.bytes);
      switch (r.type) {
        case "series":
          if (!wbl) { for (const s of r.series) this.#addSeries(Number(s.ref), s.labels); }
          break;
        case "samples":
          for (const s of r.samples) {
            this.#append(Number(s.ref), { t: s.t, kind: "float", v: s.v }, wbl);
          }
          break;
        case "histograms":
          for (const s of r.histograms) {
            this.#append(
              Number(s.ref),
              { t: s.t, kind: "histogram", h: { ...s.h, t: s.t } as HistogramSample },
              wbl,
            );
          }
          break;
        case "floatHistograms":
          for (const s of r.histograms) {
            this.#append(
              Number(s.ref),
              { t: s.t, kind: "floatHistogram", h: { ...s.h, t: s.t } as FloatHistogramSample },
              wbl,
            );
          }
          break;
        case "tombstones":
          for (const ts of r.tombstones) {
            const s = this.#series[this.#byRef.get(Number(ts.ref))];
            if (s) s.deleted = addInterval(s.deleted ?? [], { mint: ts.mint, maxt: ts.maxt });
          }
          break;
        default: {
          const name = r.type === "unknown" ? `unknown type ${r.code}` : recordTypeName(r.code);
          st.skippedRecords[name] = (st.skippedRecords[name] ?? 0) + 1;
        }
      }
      if (this.#spill.needsFlush) await this.#spill.flush();
    }
  }

  #addSeries(ref: number, labels: Label[]): void {
    const key = _labelsKey(labels);
    const known = this.#byLabels.get(key);
    if (!known && !this.#surrogates) this.#surrogates = _SURROGATE.test(key);
    if (known) {
      if (this.#byRef.get(ref) < 0) this.stats.duplicateSeriesRefs++;
      this.#byRef.set(ref, known.id);
      return;
    }
    const s: _Series = {
      key,
      id: this.#byLabels.size,
      openKind: null,
      hist: null,
      ooo: null,
      deleted: null,
    };
    this.#byLabels.set(key, s);
    this.#series.push(s);
    this.#byRef.set(ref, s.id);
    if (3 * s.id + 3 > this.#times.length) {
      const times = new Float64Array(2 * this.#times.length);
      times.set(this.#times);
      this.#times = times;
    }
    this.#times[3 * s.id] = -Infinity;
    this.stats.series++;
  }

  #append(ref: number, sample: Sample, wbl: boolean): void {
    const st = this.stats;
    const s = this.#series[this.#byRef.get(ref)];
    if (!s) {
      st.droppedUnknownSeries++;
      return;
    }
    const t = Number(sample.t);
    if (wbl) {
      // Out-of-order samples: kept as they come, merged with the in-order chunks at the end.
      if (t < this.#from || t > this.#to) return;
      (s.ooo ??= []).push(sample);
      st.outOfOrderSamples++;
      return;
    }
    if (!this.#inOrder(s, t)) return;
    if (sample.kind === "float") {
      const v = sample.v;
      this.#appendFloat(s, t, Number(v >> 32n), Number(v & 0xffffffffn));
      return;
    }
    st.histogramSamples++;
    this.#appendHistogram(s, sample);
  }

  /** The fast path of {@link #append} for float samples of the WAL: numbers, no objects. */
  #appendWalFloat = (ref: number, t: number, vh: number, vl: number): void => {
    const s = this.#series[this.#byRef.get(ref)];
    if (!s) {
      this.stats.droppedUnknownSeries++;
      return;
    }
    if (this.#inOrder(s, t)) this.#appendFloat(s, t, vh, vl);
  };

  // Prometheus' in-order rules: not before the newest block's end, not at or before the series'
  // last sample. A kept sample advances the series even outside the window.
  #inOrder(s: _Series, t: number): boolean {
    if (t < this.#minValid) {
      this.stats.droppedBeforeMinValid++;
      return false;
    }
    const at = 3 * s.id;
    if (t <= this.#times[at]) {
      this.stats.droppedOutOfOrder++;
      return false;
    }
    this.#times[at] = t;
    return t >= this.#from && t <= this.#to;
  }

  #appendFloat(s: _Series, t: number, vh: number, vl: number): void {
    this.stats.floatSamples++;
    if (s.openKind !== null && s.openKind !== "float") this.#finish(s);
    const xor = this.#xor;
    // As Prometheus' head: 120 samples a chunk, never across a 2h chunk-range boundary.
    const times = this.#times;
    const at = 3 * s.id;
    if (
      s.openKind === "float" && (t >= times[at + 2] || xor.numSamples(s.id) >= SAMPLES_PER_CHUNK)
    ) {
      this.#finish(s);
    }
    if (s.openKind !== "float") {
      s.openKind = "float";
      times[at + 1] = t;
      times[at + 2] = Math.trunc(t / _RANGE_MS) * _RANGE_MS + _RANGE_MS;
    }
    xor.append(s.id, t, vh, vl);
  }

  // Histogram chunk encoders cut as Prometheus' head does (layout changes, counter resets, size,
  // chunk-range boundaries) and hand back each finished chunk.
  #appendHistogram(s: _Series, sample: Exclude<Sample, { kind: "float" }>): void {
    if (s.openKind !== null && s.openKind !== sample.kind) this.#finish(s);
    let finished: EncodedChunk | undefined;
    if (sample.kind === "histogram") {
      const enc = (s.hist ??= new HistogramChunkEncoder({ chunkRange: CHUNK_RANGE_MS }));
      finished = (enc as HistogramChunkEncoder).add(sample.h);
    } else {
      const enc = (s.hist ??= new FloatHistogramChunkEncoder({ chunkRange: CHUNK_RANGE_MS }));
      finished = (enc as FloatHistogramChunkEncoder).add(sample.h);
    }
    s.openKind = sample.kind;
    if (finished) this.#spillChunk(s, finished);
  }

  #finish(s: _Series): void {
    const kind = s.openKind;
    s.openKind = null;
    if (kind === "float") {
      const xor = this.#xor;
      if (xor.numSamples(s.id) > 0) {
        const mint = this.#times[3 * s.id + 1];
        this.#spill.add(s.id, Encoding.xor, xor.view(s.id), mint, xor.lastTimestamp(s.id));
      }
      xor.reset(s.id);
    } else if (kind !== null) {
      const last = s.hist!.flush();
      s.hist = null;
      if (last) this.#spillChunk(s, last);
    }
  }

  // The spill's add is synchronous: the per-sample path stays so (fast, and its garbage dies
  // young); chunks that must wait for the file are written once per record.
  #spillChunk(s: _Series, c: EncodedChunk): void {
    this.#spill.add(s.id, c.encoding, c.data, Number(c.mint), Number(c.maxt));
  }
}

/**
 * WAL series refs to series ids. Refs count up from 1 as Prometheus creates series, so a typed
 * array indexed by ref finds them faster than a Map (the lookup is per sample); it grows only
 * while refs stay below a few times the number of series, larger refs go to a Map.
 */
class _RefIndex {
  #index = new Int32Array(1024).fill(-1);
  #far = new Map<number, number>();
  #count = 0;

  /** The id of `ref`, or -1. */
  get(ref: number): number {
    return ref < this.#index.length ? this.#index[ref] : this.#far.get(ref) ?? -1;
  }

  set(ref: number, id: number): void {
    this.#count++;
    if (ref >= this.#index.length && ref < 4 * this.#count + (1 << 16)) {
      let size = this.#index.length * 2;
      while (size <= ref) size *= 2;
      const next = new Int32Array(size).fill(-1);
      next.set(this.#index);
      this.#index = next;
    }
    if (ref < this.#index.length) this.#index[ref] = id;
    else this.#far.set(ref, id);
  }
}

// A label set as one string, `name NUL value NUL` per label. Label names and values hold no NUL
// in practice, so the key identifies the set, and ordering keys by UTF-8 bytes orders the sets as
// compareLabels does (NUL sorts before every other byte, so a shorter name or value comes first).
function _labelsKey(labels: readonly Label[]): string {
  // join makes one flat string; `+=` would leave a rope, flattened (copied) later on first use.
  return labels.map((l) => `${l.name}\u0000${l.value}\u0000`).join("");
}

const _SURROGATE = /[\ud800-\udfff]/;

function _parseLabelsKey(key: string): Label[] {
  const parts = key.split("\u0000");
  const labels: Label[] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) {
    labels.push({ name: parts[i], value: parts[i + 1] });
  }
  return labels;
}
