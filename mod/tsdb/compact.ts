/**
 * Turns series from several sources (blocks, the replayed head, a remote-read response) into one
 * block that holds exactly a time window, as Prometheus' compactor merges blocks.
 *
 * Sources are merged by label set. Chunks wholly inside the window and untouched by deletions are
 * copied byte for byte; boundary chunks, chunks with deleted samples and chunks that overlap each
 * other (the same series from two sources) are decoded, filtered or merged, and re-encoded in
 * chunks that never cross Prometheus' 2h chunk-range boundaries.
 *
 * By default every chunk is written in the oldest encoding that holds its samples: chunks with
 * start timestamps (XOR2 of 3.11+, the histogram encodings 5 and 6 of 3.14+) are rewritten as
 * XOR, histogram and float histogram chunks, start timestamps dropped, so that Prometheus 2.42
 * reads every block this writes. `keepEncodings` keeps them (boundary cuts too, with their start
 * timestamps). Chunks of encodings Prometheus does not know are refused
 * ({@link UnknownChunkEncodingError}).
 *
 * @module
 */

import { BitReader } from "./chunkenc/bstream.ts";
import {
  encodeFloatHistogramChunks,
  encodeHistogramChunks,
} from "./chunkenc/histogram_appender.ts";
import type { FloatHistogramSample, HistogramSample } from "./chunkenc/histogram.ts";
import { readHistogramLayout } from "./chunkenc/histogram.ts";
import { decodeChunk, Encoding } from "./chunkenc/mod.ts";
import {
  hasStartTimestamps,
  isKnownEncoding,
  toOldestEncoding,
  withStartTimestamps,
} from "./chunkenc/convert.ts";
import { decodeFloatHistogramST, decodeHistogramST } from "./chunkenc/histogram.ts";
import { decodeXor2 } from "./chunkenc/xor2.ts";
import { decodeXorNumbers, XorAppender } from "./chunkenc/xor.ts";
import { FormatError } from "./encoding.ts";
import { turnEventLoop } from "./_io.ts";
import {
  type BlockReader,
  BlockWriter,
  type BlockWriterOptions,
  type WrittenBlock,
} from "./block.ts";
import { compareLabels, type Label } from "./index.ts";
import type { SeriesChunks, SeriesSource, TimedChunk } from "./series.ts";
import type { Interval } from "./tombstones.ts";

/** Prometheus' chunk range (the default 2h block): head chunks never cross its boundaries. */
export const CHUNK_RANGE_MS = 2n * 3_600_000n;
/** Samples per float chunk, as Prometheus' compaction re-encodes merged data. */
export const SAMPLES_PER_CHUNK = 120;

const _RANGE = { chunkRange: CHUNK_RANGE_MS };

/** One decoded sample of any kind. */
export type Sample =
  | { t: bigint; kind: "float"; v: bigint }
  | { t: bigint; kind: "histogram"; h: HistogramSample }
  | { t: bigint; kind: "floatHistogram"; h: FloatHistogramSample };

/**
 * A chunk whose encoding Prometheus does not know (Go's `IsValidEncoding`): promcase can neither
 * decode nor vouch for it, so the rewrite refuses it.
 */
export class UnknownChunkEncodingError extends FormatError {
  /** The encoding byte. */
  readonly encoding: number;

  /** `where`: the block and series holding the chunk, e.g. `block 01H…, series {…}`. */
  constructor(encoding: number, where: string) {
    super(
      `${where} has a chunk of encoding ${encoding}, which promcase does not know (it knows the ` +
        `encodings 1-6 of Prometheus up to 3.14: XOR, histogram, float histogram, XOR2, and ` +
        `the histograms with start timestamps)`,
    );
    this.name = "UnknownChunkEncodingError";
    this.encoding = encoding;
  }
}

/** The end (exclusive) of the 2h chunk range holding `t`. */
export function chunkRangeEnd(t: bigint): bigint {
  // Go's integer division truncates towards zero, as bigint division does.
  return (t / CHUNK_RANGE_MS) * CHUNK_RANGE_MS + CHUNK_RANGE_MS;
}

/** Decodes any chunk Prometheus can store into samples. */
export function decodeSamples(chunk: { encoding: number; data: Uint8Array }): Sample[] {
  const d = decodeChunk(chunk.encoding, chunk.data);
  switch (d.kind) {
    case "float": {
      const out: Sample[] = new Array(d.samples.t.length);
      for (let i = 0; i < d.samples.t.length; i++) {
        out[i] = { t: d.samples.t[i], kind: "float", v: d.samples.v[i] };
      }
      return out;
    }
    case "histogram":
      return d.samples.map((h) => ({ t: h.t, kind: "histogram", h }));
    case "floatHistogram":
      return d.samples.map((h) => ({ t: h.t, kind: "floatHistogram", h }));
  }
}

/**
 * Encodes time-ordered samples into chunks: a new chunk at each 2h chunk-range boundary and each
 * change of sample kind, float chunks of {@link SAMPLES_PER_CHUNK} samples, histogram chunks cut
 * as Prometheus' histogram appenders cut them.
 */
export function encodeSamples(samples: readonly Sample[]): TimedChunk[] {
  const out: TimedChunk[] = [];
  let i = 0;
  while (i < samples.length) {
    const kind = samples[i].kind;
    const end = chunkRangeEnd(samples[i].t);
    let j = i + 1;
    while (j < samples.length && samples[j].kind === kind && samples[j].t < end) j++;
    const run = samples.slice(i, j);
    if (kind === "float") {
      for (let k = 0; k < run.length; k += SAMPLES_PER_CHUNK) {
        const part = run.slice(k, k + SAMPLES_PER_CHUNK) as Extract<Sample, { kind: "float" }>[];
        const app = new XorAppender();
        for (const s of part) app.append(s.t, s.v);
        out.push({
          encoding: Encoding.xor,
          data: app.bytes(),
          mint: part[0].t,
          maxt: part[part.length - 1].t,
        });
      }
    } else if (kind === "histogram") {
      out.push(
        ...encodeHistogramChunks(run.map((s) => (s as { h: HistogramSample }).h), _RANGE),
      );
    } else {
      out.push(
        ...encodeFloatHistogramChunks(run.map((s) => (s as { h: FloatHistogramSample }).h), _RANGE),
      );
    }
    i = j;
  }
  return out;
}

/** Whether `t` lies in one of the (inclusive) intervals. */
function _deleted(intervals: readonly Interval[], t: bigint): boolean {
  for (const iv of intervals) if (t >= iv.mint && t <= iv.maxt) return true;
  return false;
}

/** What {@link trimChunks} did. */
export interface TrimCounts {
  /** Chunks kept byte for byte. */
  copied: number;
  /** Chunks decoded and re-encoded (cut at the window edge, deletions, overlaps). */
  recoded: number;
  /** Chunks left out wholly (outside the window or all deleted). */
  dropped: number;
  /**
   * Of the chunks written, those rewritten from an encoding with start timestamps into the
   * oldest one that holds their samples (counted as re-encoded too); see `writeWindowBlock`.
   */
  converted?: number;
}

/**
 * Restricts a series' chunks to `[from, to]` (inclusive) without the deleted intervals, and
 * merges chunks that overlap in time (the same series from two sources; a duplicate timestamp
 * keeps the sample of the earlier chunk). The result is sorted and free of overlaps.
 *
 * Chunks that need re-encoding come out in the encodings without start timestamps, except, with
 * `keepEncodings`, a single chunk with start timestamps cut at the window's edge: its part in the
 * window keeps its encoding and start timestamps.
 */
export function trimChunks(
  chunks: readonly TimedChunk[],
  from: bigint,
  to: bigint,
  deleted: readonly Interval[] = [],
  counts: TrimCounts = { copied: 0, recoded: 0, dropped: 0 },
  keepEncodings = false,
): TimedChunk[] {
  if (deleted.length === 0 && _inWindowInOrder(chunks, from, to)) {
    // The usual case (one source, chunks inside the window): nothing to cut or merge.
    counts.copied += chunks.length;
    return chunks as TimedChunk[];
  }
  const sorted = chunks.filter((c) => {
    const keep = c.maxt >= from && c.mint <= to;
    if (!keep) counts.dropped++;
    return keep;
  }).sort((a, b) => (a.mint < b.mint ? -1 : a.mint > b.mint ? 1 : 0));
  const out: TimedChunk[] = [];
  let i = 0;
  while (i < sorted.length) {
    // A group of chunks that overlap each other in time.
    let j = i + 1;
    let maxt = sorted[i].maxt;
    while (j < sorted.length && sorted[j].mint <= maxt) {
      if (sorted[j].maxt > maxt) maxt = sorted[j].maxt;
      j++;
    }
    const c = sorted[i];
    const touched = deleted.some((iv) => iv.maxt >= c.mint && iv.mint <= c.maxt);
    let cut: TimedChunk[] | undefined;
    if (j === i + 1 && c.mint >= from && c.maxt <= to && !touched) {
      out.push(c);
      counts.copied++;
    } else if (
      j === i + 1 && !touched &&
      (cut = _cutXor(c, from, to) ?? (keepEncodings ? _cutKeepingST(c, from, to) : undefined))
    ) {
      if (cut.length === 0) counts.dropped++;
      else counts.recoded++;
      out.push(...cut);
    } else {
      const samples: Sample[] = [];
      for (let k = i; k < j; k++) samples.push(...decodeSamples(sorted[k]));
      if (j > i + 1) {
        samples.sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0)); // stable: earlier chunk first
      }
      const kept: Sample[] = [];
      for (const s of samples) {
        if (s.t < from || s.t > to || _deleted(deleted, s.t)) continue;
        if (kept.length > 0 && kept[kept.length - 1].t === s.t) continue;
        kept.push(s);
      }
      const encoded = encodeSamples(kept);
      if (encoded.length === 0) counts.dropped += j - i;
      else counts.recoded += j - i;
      out.push(...encoded);
    }
    i = j;
  }
  return out;
}

/**
 * One XOR chunk cut to `[from, to]`, encoded as {@link encodeSamples} would encode its samples,
 * without a Sample object per sample (a window edge crosses a chunk of every series); undefined
 * for anything else (another encoding, timestamps that are not safe integers or do not ascend).
 */
function _cutXor(c: TimedChunk, from: bigint, to: bigint): TimedChunk[] | undefined {
  if (c.encoding !== Encoding.xor) return undefined;
  const d = decodeXorNumbers(c.data);
  if (!d) return undefined;
  const n = d.t.length;
  for (let i = 1; i < n; i++) if (d.t[i] <= d.t[i - 1]) return undefined;
  const first = Number(from);
  const last = Number(to);
  const range = Number(CHUNK_RANGE_MS);
  let k = 0;
  while (k < n && d.t[k] < first) k++;
  let end = k;
  while (end < n && d.t[end] <= last) end++;
  const out: TimedChunk[] = [];
  while (k < end) {
    // As encodeSamples: a run up to the chunk-range end of its first sample (Go's division
    // truncates towards zero, as Math.trunc does), then chunks of SAMPLES_PER_CHUNK.
    const rangeEnd = Math.trunc(d.t[k] / range) * range + range;
    let runEnd = k;
    while (runEnd < end && d.t[runEnd] < rangeEnd) runEnd++;
    for (; k < runEnd; k += SAMPLES_PER_CHUNK) {
      const stop = Math.min(k + SAMPLES_PER_CHUNK, runEnd);
      const app = new XorAppender();
      for (let m = k; m < stop; m++) app.appendNumber(d.t[m], d.hi[m], d.lo[m]);
      out.push({
        encoding: Encoding.xor,
        data: app.bytes(),
        mint: BigInt(d.t[k]),
        maxt: BigInt(d.t[stop - 1]),
      });
    }
    k = runEnd;
  }
  return out;
}

/**
 * One chunk with start timestamps (XOR2, histograms with ST) cut to `[from, to]`: its samples in
 * the window, cut into chunks as {@link encodeSamples} cuts them, in the chunk's own encoding with
 * their start timestamps; undefined for other encodings.
 */
function _cutKeepingST(c: TimedChunk, from: bigint, to: bigint): TimedChunk[] | undefined {
  if (!hasStartTimestamps(c.encoding)) return undefined;
  const st = new Map<bigint, bigint>();
  const kept: Sample[] = [];
  if (c.encoding === Encoding.xor2) {
    const d = decodeXor2(c.data);
    for (let i = 0; i < d.t.length; i++) {
      if (d.t[i] < from || d.t[i] > to) continue;
      kept.push({ t: d.t[i], kind: "float", v: d.v[i] });
      st.set(d.t[i], d.st[i]);
    }
  } else {
    const d = c.encoding === Encoding.histogramST
      ? decodeHistogramST(c.data)
      : decodeFloatHistogramST(c.data);
    const kind = c.encoding === Encoding.histogramST ? "histogram" : "floatHistogram";
    d.samples.forEach((h, i) => {
      if (h.t < from || h.t > to) return;
      kept.push({ t: h.t, kind, h } as Sample);
      st.set(h.t, d.st[i]);
    });
  }
  return encodeSamples(kept).map((p) => ({
    ...withStartTimestamps(p, (t) => st.get(t) ?? 0n),
    mint: p.mint,
    maxt: p.maxt,
  }));
}

/** Whether the chunks lie inside `[from, to]`, each after the previous one without overlap. */
function _inWindowInOrder(chunks: readonly TimedChunk[], from: bigint, to: bigint): boolean {
  let prev = from - 1n;
  for (const c of chunks) {
    if (c.mint <= prev || c.maxt < c.mint) return false;
    prev = c.maxt;
  }
  return prev <= to;
}

/**
 * Merges several sources, each in label order, into one stream in label order: the chunks of a
 * label set found in several sources are concatenated (in source order). Throws a
 * {@link FormatError} when a source is out of order. A source is asked for its next series only
 * when the caller asks for the next merged one, so sources that reuse a series' chunk memory
 * (as {@link blockSource} does) stay correct.
 */
export async function* mergeSeries(sources: readonly SeriesSource[]): AsyncGenerator<SeriesChunks> {
  const iters = sources.map((s) => s[Symbol.asyncIterator]());
  const heads: (SeriesChunks | undefined)[] = [];
  const advance = async (i: number) => {
    const prev = heads[i];
    const r = await iters[i].next();
    const next = r.done ? undefined : r.value;
    if (next && prev && compareLabels(next.labels, prev.labels) <= 0) {
      throw new FormatError(`series source ${i} is not in label order at ${_fmt(next.labels)}`);
    }
    heads[i] = next;
  };
  try {
    for (let i = 0; i < iters.length; i++) await advance(i);
    for (;;) {
      let min: Label[] | undefined;
      for (const h of heads) if (h && (!min || compareLabels(h.labels, min) < 0)) min = h.labels;
      if (!min) return;
      const chunks: TimedChunk[] = [];
      const taken: number[] = [];
      for (let i = 0; i < heads.length; i++) {
        const h = heads[i];
        if (h && compareLabels(h.labels, min) === 0) {
          chunks.push(...h.chunks);
          taken.push(i);
        }
      }
      yield { labels: min, chunks };
      // Only now, when the caller is done with them, may the sources reuse the chunks' memory.
      for (const i of taken) await advance(i);
    }
  } finally {
    await Promise.all(iters.map((it) => it.return?.()));
  }
}

/**
 * A block's series that have samples in `[from, to]`, with their deleted intervals applied: only
 * the chunks that overlap the window are read (`pace`, when given, is awaited with the size of
 * each, e.g. to cap the read rate). A series' chunk data is valid until the next one is asked for.
 */
export async function* blockSource(
  reader: BlockReader,
  from: bigint,
  to: bigint,
  pace?: (bytes: number) => Promise<void>,
): AsyncGenerator<SeriesChunks> {
  // Chunk data is copied out of the reader's window into one buffer, reused series after series
  // (a new array per chunk cost more in allocation and collection than the copy).
  let buffer = new Uint8Array(64 * 1024);
  for await (const s of reader.index.series()) {
    const chunks: TimedChunk[] = [];
    let used = 0;
    for (const c of s.chunks) {
      if (c.maxt < from || c.mint > to) continue;
      // Most chunks are in the read window already: no await (a microtask each) for those.
      const raw = reader.chunks.readBuffered(c.ref) ?? await reader.chunks.readView(c.ref);
      if (!isKnownEncoding(raw.encoding)) {
        throw new UnknownChunkEncodingError(
          raw.encoding,
          `block ${reader.meta.ulid}, series ${_fmt(s.labels)}`,
        );
      }
      const size = raw.data.length;
      // Earlier chunks of this series keep the old buffer alive.
      if (used + size > buffer.length) {
        buffer = new Uint8Array(Math.max(2 * buffer.length, size));
        used = 0;
      }
      buffer.set(raw.data, used);
      chunks.push({
        encoding: raw.encoding,
        data: buffer.subarray(used, used + size),
        crc: raw.crc,
        mint: c.mint,
        maxt: c.maxt,
      });
      used += size;
      if (pace) await pace(size);
    }
    if (chunks.length === 0) continue;
    const deleted = reader.tombstones.get(s.id);
    yield {
      labels: s.labels,
      chunks: deleted ? trimChunks(chunks, from, to, deleted) : chunks,
    };
  }
}

/** Options of {@link writeWindowBlock}. */
export interface WindowBlockOptions {
  /** First millisecond of the window. */
  from: bigint;
  /** Last millisecond of the window (inclusive). */
  to: bigint;
  /** Keeps a series when true (default: all). */
  keep?: (labels: readonly Label[]) => boolean;
  /** ULID, level, sources and parents of the new block. */
  block?: Omit<BlockWriterOptions, "minTime" | "maxTime">;
  /**
   * Copy chunks with start timestamps (XOR2, histograms with ST) in their encodings. Default:
   * write them in the oldest encoding that holds their samples (start timestamps dropped), which
   * Prometheus 2.42 reads.
   */
  keepEncodings?: boolean;
  /** Called after each series written, with the number so far. */
  onSeries?: (written: number) => void;
  /** Stops the work (the block is dropped) when aborted. */
  signal?: AbortSignal;
}

/** What {@link writeWindowBlock} wrote. */
export interface WindowBlockResult {
  /** The block, or null when no series had samples in the window. */
  block: WrittenBlock | null;
  /** Chunk counts. */
  chunks: TrimCounts;
  /** Series left out by `keep`. */
  seriesExcluded: number;
  /** Encoding bytes of the written chunks. */
  encodings: Set<number>;
  /** Whether a histogram chunk uses custom buckets (schema -53). */
  customBuckets: boolean;
}

/** Series {@link writeWindowBlock} writes between turns of the event loop (about a millisecond). */
const _YIELD_EVERY_SERIES = 64;

/**
 * Writes one block in `parentDir` holding exactly the samples of `[from, to]` from all sources:
 * minTime is `from`, maxTime `to + 1` (block maxTime is exclusive).
 */
export async function writeWindowBlock(
  parentDir: string,
  sources: readonly SeriesSource[],
  options: WindowBlockOptions,
): Promise<WindowBlockResult> {
  const { from, to } = options;
  const writer = await BlockWriter.create(parentDir, {
    ...options.block,
    minTime: from,
    maxTime: to + 1n,
  });
  const keepEncodings = options.keepEncodings ?? false;
  const result: WindowBlockResult = {
    block: null,
    chunks: { copied: 0, recoded: 0, dropped: 0, converted: 0 },
    seriesExcluded: 0,
    encodings: new Set(),
    customBuckets: false,
  };
  let written = 0;
  try {
    for await (const s of mergeSeries(sources)) {
      options.signal?.throwIfAborted();
      if (options.keep && !options.keep(s.labels)) {
        result.seriesExcluded++;
        continue;
      }
      for (const c of s.chunks) {
        if (!isKnownEncoding(c.encoding)) {
          throw new UnknownChunkEncodingError(c.encoding, `series ${_fmt(s.labels)}`);
        }
      }
      const chunks = trimChunks(s.chunks, from, to, [], result.chunks, keepEncodings);
      if (chunks.length === 0) continue;
      for (let k = 0; k < chunks.length && !keepEncodings; k++) {
        if (!hasStartTimestamps(chunks[k].encoding)) continue;
        // Only chunks copied as they are still have start timestamps here.
        chunks[k] = toOldestEncoding(chunks[k]);
        result.chunks.copied--;
        result.chunks.recoded++;
        result.chunks.converted!++;
      }
      for (const c of chunks) {
        result.encodings.add(c.encoding);
        if (!result.customBuckets && _isHistogram(c.encoding)) {
          result.customBuckets = histogramChunkSchema(c.data) === -53;
        }
      }
      await writer.addSeries(s.labels, chunks);
      written++;
      options.onSeries?.(written);
      // Sources may read without ever yielding: let other tasks run now and then (a reader of the
      // finished chunk segments, signals, V8's collection tasks).
      if (written % _YIELD_EVERY_SERIES === 0) await turnEventLoop();
    }
    if (written === 0) {
      await writer.abort();
      return result;
    }
    result.block = await writer.commit();
    return result;
  } catch (e) {
    await writer.abort();
    throw e;
  }
}

function _isHistogram(encoding: number): boolean {
  return encoding === Encoding.histogram || encoding === Encoding.floatHistogram ||
    encoding === Encoding.histogramST || encoding === Encoding.floatHistogramST;
}

/** The schema of a histogram chunk (with or without start timestamps), read from its layout. */
export function histogramChunkSchema(data: Uint8Array): number {
  return readHistogramLayout(new BitReader(data, 3 * 8)).schema;
}

/**
 * The oldest Prometheus release that can serve chunks of these encodings: XOR floats any 2.x,
 * integer histograms 2.40 (behind `--enable-feature=native-histograms`), float histograms 2.42,
 * custom-bucket histograms 2.54, XOR2 3.11, histograms with start timestamps 3.14.
 */
export function minPrometheusVersion(encodings: Iterable<number>, customBuckets: boolean): string {
  let min = "2.0.0";
  const raise = (v: string) => {
    const [a, b] = [min, v].map((x) => x.split(".").map(Number));
    if (a[0] < b[0] || (a[0] === b[0] && a[1] < b[1])) min = v;
  };
  for (const e of encodings) {
    if (e === Encoding.histogram) raise("2.40.0");
    else if (e === Encoding.floatHistogram) raise("2.42.0");
    else if (e === Encoding.xor2) raise("3.11.0");
    else if (e === Encoding.histogramST || e === Encoding.floatHistogramST) raise("3.14.0");
  }
  if (customBuckets) raise("2.54.0");
  return min;
}

function _fmt(labels: readonly Label[]): string {
  return `{${labels.map((l) => `${l.name}=${JSON.stringify(l.value)}`).join(", ")}}`;
}
