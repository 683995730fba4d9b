/**
 * Replays a head (checkpoint + WAL segments, the out-of-order `wbl/`, and the memory-mapped head
 * chunks of `chunks_head/`) into series with chunks, the way Prometheus rebuilds its head at startup
 * (`head.go` loadMmappedChunks, `head_wal.go` loadWAL), so the head's data can be written as block
 * data instead of shipping the WAL.
 *
 * Replay rules, as Prometheus': series records with the same labels map later refs onto the first
 * one, and drop what was replayed of the series before them; samples of unknown refs are skipped;
 * samples before `minValidTime` (the newest block's end) are dropped, as are samples at or before
 * the series' last appended time (out of order or duplicate); out-of-order samples are taken from
 * the WBL instead. Tombstone records delete; one
 * over the whole time range evicts the series (its labels may come back as a fresh series). A
 * series record gives the series the head chunks of its ref, taken as they are, and the WAL
 * samples up to their end are skipped (Prometheus cuts a chunk into `chunks_head/` once it is
 * full, so on a real head only each series' last, open chunk is rebuilt from the WAL).
 *
 * Memory is bounded whatever the number of series, in three steps:
 * 1. The head chunks are copied to a file (`head_chunk_store.ts`: the later files refer to their
 *    bytes there), checked, and the end of each ref's chunks noted (8 bytes a ref). The WAL is
 *    read once and split into shard files by a hash of each series' labels (`head_shards.ts`),
 *    its samples up to the end of their ref's head chunks left out: per series only a byte of
 *    the ref-to-shard map stays in memory. A worker reads the pages, checks them and decompresses
 *    the records (`wal_read_ahead.ts`, `ringBytes`) while this thread splits them. Records
 *    come one at a time into one buffer (the largest record's size), series and float samples
 *    are decoded one at a time (a scrape of a million new series is one record, of ~100 MiB,
 *    whose pages are parsed as they come: `WalReader`'s `seriesRecords`), float samples move in
 *    batches of typed arrays (`sample_batch.ts`), histograms are copied as their WAL bytes, and
 *    shard buffers are written at `splitFlushBytes`, also inside a record. Then the head chunks'
 *    entries (references to their bytes) go to the end of the shard files of their series.
 *    (Skipping by the sample's own ref is Prometheus' rule unless a label set's later series record
 *    names a ref whose chunks end earlier; step 2 notices that, and the whole replay runs again,
 *    skipping nothing at the split.)
 * 2. Each shard is replayed alone: its head chunks first (to the spill below), then its samples
 *    are encoded into the series' open chunk as they come
 *    (an {@link XorAppenderSet}), finished chunks go to a {@link ChunkSpill} (memory up to a
 *    budget, then a temporary file), out-of-order samples are kept decoded until the shard's end.
 *    A shard with more than `shardSeries` series is split again first, so a replay holds the
 *    open chunks of at most that many series (about 1 KiB each for values that change on every
 *    scrape). The shard's series, sorted by labels, go to a sorted run file
 *    (`series_runs.ts`).
 *    Shards are replayed one at a time on the main thread, and with `replayWorkers` also on
 *    that many workers (`head_replay_pool.ts`), each holding what one replay holds.
 * 3. {@link HeadReplay.series} merges the runs, with one small read buffer per run, and reads each
 *    series' head chunk bytes from the store: where there are any, on a worker
 *    (`run_merge_ahead.ts`, through a ring of `ringBytes`) while this thread writes the block.
 * All temporary files live in a directory under `tmpDir` (never the data dir), removed by
 * {@link HeadReplay.close}. Disk: about the WAL's size for the shards, the window's head chunks
 * once (the store), then the chunks built from the WAL for the runs.
 *
 * @module
 */

import type { FloatHistogramSample, HistogramSample } from "./chunkenc/histogram.ts";
import {
  type EncodedChunk,
  FloatHistogramChunkEncoder,
  HistogramChunkEncoder,
} from "./chunkenc/histogram_appender.ts";
import { chunkNumSamples, Encoding } from "./chunkenc/mod.ts";
import { hasStartTimestamps, isKnownEncoding } from "./chunkenc/convert.ts";
import { XorAppenderSet } from "./chunkenc/xor_set.ts";
import {
  CHUNK_RANGE_MS,
  decodeSamples,
  encodeSamples,
  type Sample,
  SAMPLES_PER_CHUNK,
  trimChunks,
} from "./compact.ts";
import { keepHiddenClass } from "./_hidden_class.ts";
import { turnEventLoop } from "./_io.ts";
import { ChunkSpill } from "./chunk_spill.ts";
import { compareUtf8, FormatError } from "./encoding.ts";
import {
  HeadChunkFile,
  type HeadEntrySink,
  HeadPartitioner,
  readShardFile,
  RefTimes,
  SampleEntry,
  type SampleEntryKind,
  type ShardFile,
} from "./head_shards.ts";
import type { FloatHistogram, Histogram } from "./record.ts";
import {
  decodeRecord,
  forEachSeries,
  forEachWalHistogramV1,
  isFullRangeTombstone,
  recordTypeName,
} from "./record.ts";
import { readSamplesV1, SampleBatch, samplesV1Count } from "./sample_batch.ts";
import { HeadReplayWorker } from "./head_replay_pool.ts";
import { labelsKey, needsUtf8Order, SeriesRunWriter } from "./series_runs.ts";
import type { SeriesChunks, TimedChunk } from "./series.ts";
import { addInterval, type Interval } from "./tombstones.ts";
import { CorruptionError, type SegmentRef, WalReader } from "./wlog.ts";
import { PreparedReadAheadWorker } from "./_read_ahead.ts";
import { mergeResolvedRuns } from "./run_merge_ahead.ts";
import { WAL_RING_BYTES, WalReadAhead } from "./wal_read_ahead.ts";
import { HeadChunkCorruptionError, HeadChunkCursor, listHeadChunkFiles } from "./head_chunks.ts";
import {
  HEAD_CHUNK_REF,
  headChunkRefLength,
  headChunkRefSamples,
  HeadChunkStore,
  HeadChunkStoreReader,
  isHeadChunkRef,
} from "./head_chunk_store.ts";

const _RANGE_MS = Number(CHUNK_RANGE_MS);
/** Most times a shard is split again (each split uses a new hash seed). */
const _MAX_SPLITS = 4;
/** The most shards one split makes (a shard number is one byte). */
const _MAX_SHARDS = 255;

/** Whether a histogram sample was kept for its hidden class (see `_ShardReplayer.histogram`). */
let _histogramSampleKept = false;

/**
 * The replay's internal limits. The defaults bound its memory to about 60 MiB whatever the head's
 * size; tests turn them down so that every split, spill, grow and move path runs on small data.
 */
export interface HeadReplayLimits {
  /** Bytes of a shard's finished chunks kept in memory before they go to a file (4 MiB). */
  memoryBudget?: number;
  /** Most series replayed at once: a shard with more is split again first (default 4096). */
  shardSeries?: number;
  /**
   * WAL bytes per shard of the first split (default 2 MiB; 1 to 255 shards). Small enough that a
   * head of short series (a cardinality spike: ~1.5 KiB of WAL a series) still gives shards of
   * fewer than `shardSeries` series, which are then not read and written a second time.
   */
  shardWalBytes?: number;
  /** Bytes of each shard file's write buffer (default 32 KiB). */
  shardBufferSize?: number;
  /**
   * Bytes of full shard buffers the WAL split lets wait before it writes them, also inside a
   * record (default 4 MiB).
   */
  splitFlushBytes?: number;
  /** Bytes each shard file is read with (default 256 KiB). */
  shardReadSize?: number;
  /** Initial read buffer of each sorted run while they are merged (default 8 KiB). */
  runBufferSize?: number;
  /**
   * Workers that replay shards beside the main thread (default 0). Each costs its own runtime
   * and what one shard's replay holds (about 40 MiB in all) and takes about a sixth off a large
   * head's rewrite on a second core: a choice for hosts with memory to spare.
   */
  replayWorkers?: number;
  /**
   * Bytes of each ring through which a worker hands over what it reads ahead: the WAL's records
   * as it reads and decodes them (default 4 MiB, `wal_read_ahead.ts`), and the merged runs'
   * series where they refer to head chunks (default 1 MiB, `run_merge_ahead.ts`). 0 does both on
   * the calling thread.
   */
  ringBytes?: number;
  /** Float samples moved at once from one step of the replay to the next (default 4096). */
  batchSize?: number;
  /** Open chunks' memory of a shard replay: first buffer and region sizes (tests turn it down). */
  openChunks?: { initialBytes?: number; firstRegion?: number };
}

/** Options of {@link HeadReplay.replay}. */
export interface HeadReplayOptions extends HeadReplayLimits {
  /** The newest checkpoint's segments, then the WAL segments after it, in order. */
  wal: readonly SegmentRef[];
  /** The WBL's segments (out-of-order samples), in order. */
  wbl?: readonly SegmentRef[];
  /**
   * The head's `chunks_head/` dir: its in-order chunks are taken as they are, and only the WAL
   * samples after them are replayed (Prometheus' own startup). Absent or missing: the WAL alone.
   */
  headChunksDir?: string;
  /** Samples before this are dropped (the newest block's maxTime), null for none. */
  minValidTime: bigint | null;
  /** Only samples in `[from, to]` are kept (the other samples still advance the series). */
  from: bigint;
  /** Inclusive end of the kept samples. */
  to: bigint;
  /** Directory for the temporary files (a directory of their own is made in it). */
  tmpDir: string;
  /** Called every few thousand records with the records read so far. */
  onProgress?: (records: number) => void;
  /** Awaited with the size of each record read (e.g. to cap the read rate). */
  pace?: (bytes: number) => Promise<void>;
  /** Stops the replay when aborted. */
  signal?: AbortSignal;
}

/** Counters of a replay. */
export interface HeadReplayStats {
  /** Records read (WAL and WBL). */
  records: number;
  /**
   * Series the replay created: one per label set, and once more for a label set that comes back
   * after a full-range tombstone evicted it (Prometheus, too, then makes a new series).
   */
  series: number;
  /** Series records whose labels an earlier ref already had (Prometheus' multiRef). */
  duplicateSeriesRefs: number;
  /**
   * Float samples in the window that entered a series: appended from the WAL, or in the head
   * chunks a series record gave it (a later record for the same labels may drop them again).
   */
  floatSamples: number;
  /** Histogram samples in the window that entered a series, as {@link floatSamples}. */
  histogramSamples: number;
  /** Out-of-order samples taken from the WBL. */
  outOfOrderSamples: number;
  /** Samples dropped because they were before the newest block's end. */
  droppedBeforeMinValid: number;
  /** Samples dropped as out of order or duplicate timestamps. */
  droppedOutOfOrder: number;
  /** Samples of refs no series record named. */
  droppedUnknownSeries: number;
  /** Histogram samples of a schema Prometheus does not know (its replay skips them too). */
  droppedUnknownSchema: number;
  /** Records of types this replay skips (exemplars, metadata, unknown), by type name. */
  skippedRecords: Record<string, number>;
  /** Where the WAL ended inside a record (a torn write, normal for a live or crashed WAL). */
  torn: { path: string; offset: number } | null;
  /**
   * Where the WAL (or WBL) is damaged: the replay stopped there, as Prometheus' repair drops
   * everything from the damage on.
   */
  corruption: { path: string; offset: number; message: string } | null;
  /** Shards replayed (each into one sorted run). */
  shards: number;
  /**
   * Memory-mapped head chunks (`chunks_head/`) taken: those that reach into the window (whole; the
   * block writer cuts them to it).
   */
  headChunks: number;
  /** WAL samples skipped because a head chunk of their series holds them. */
  walSamplesInHeadChunks: number;
  /**
   * Series records that gave a label set a ref whose head chunks end before those of an earlier
   * ref of it. Later samples of the earlier ref are then replayed against the later ref's chunks
   * (Prometheus' rule), which the WAL split, going by each sample's own ref, cannot know: the
   * replay runs again without skipping any sample at the split.
   */
  headChunkConflicts: number;
  /**
   * Where `chunks_head/` is damaged (or why it was not read): its chunks from there on were left
   * out, their samples taken from the WAL.
   */
  headChunksDamage: { path: string; offset: number; message: string } | null;
}

interface _Series {
  /** The labels as `labelsKey` writes them (one string costs less than label objects). */
  key: string;
  /** The series' list of finished chunks in the spill. */
  id: number;
  /** What the open chunk holds, if a chunk is open. */
  openKind: Sample["kind"] | null;
  /** The open histogram chunk encoder. */
  hist: HistogramChunkEncoder | FloatHistogramChunkEncoder | null;
  ooo: Sample[] | null;
  deleted: Interval[] | null;
  /** Evicted by a full-range tombstone: its refs' later entries are dropped as unknown. */
  gone: boolean;
  /** Spill list of the head chunks of the ref its last series record named, -1 for none. */
  headChunks: number;
  /** The latest end of the head chunks of any ref its series records named (-Infinity). */
  headChunksEnd: number;
}

/** The head of a data dir, replayed: iterate {@link HeadReplay.series}, then close. */
export class HeadReplay {
  /** Counters. */
  readonly stats: HeadReplayStats;
  #dir: string;
  #runs: string[];
  #utf8Order: boolean;
  #options: HeadReplayOptions;
  #headChunkData: string | undefined;
  #worker: PreparedReadAheadWorker | undefined;

  private constructor(
    dir: string,
    runs: string[],
    utf8Order: boolean,
    stats: HeadReplayStats,
    options: HeadReplayOptions,
    headChunkData: string | undefined,
    worker: PreparedReadAheadWorker | undefined,
  ) {
    this.#dir = dir;
    this.#runs = runs;
    this.#utf8Order = utf8Order;
    this.stats = stats;
    this.#options = options;
    this.#headChunkData = headChunkData;
    this.#worker = worker;
  }

  /** Reads the WAL (and WBL) and builds the series. */
  static async replay(options: HeadReplayOptions): Promise<HeadReplay> {
    for (let skipAtSplit = true;; skipAtSplit = false) {
      const dir = await Deno.makeTempDir({ dir: options.tmpDir, prefix: "head-replay-" });
      let worker: PreparedReadAheadWorker | undefined;
      try {
        const stats = _newStats();
        const { shards, headChunkData } = await _splitWal(options, dir, stats, skipAtSplit);
        // The merge's worker pays for the head chunks' positioned reads (one a chunk, in label
        // order: 5.9 s of the 616k generator head's rewrite). Runs without references are read in
        // order, which costs this thread little, and the worker's 10-20 MiB would only add to the
        // peak (a WAL-only 1M head with a 5M-series block: 199-211 MiB with it). It loads while
        // the shards are replayed.
        const readsHeadChunks = headChunkData !== undefined &&
          (await Deno.stat(headChunkData)).size > 0;
        worker = options.ringBytes !== 0 && readsHeadChunks
          ? new PreparedReadAheadWorker()
          : undefined;
        const { runs, utf8Order } = await _replayShards(shards, options, stats, dir, headChunkData);
        if (!(skipAtSplit && stats.headChunkConflicts > 0)) {
          return new HeadReplay(dir, runs, utf8Order, stats, options, headChunkData, worker);
        }
      } catch (e) {
        worker?.close();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
        throw e;
      }
      // The split skipped WAL samples by their own ref's head chunks where Prometheus could have
      // gone by another ref's: again, leaving all of them to the shards' replay.
      worker?.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }

  /**
   * The series with samples in the window, in label order, with their chunks: the shards' runs
   * merged (on a worker where they refer to head chunks, unless `ringBytes` is 0:
   * `run_merge_ahead.ts`). A series' chunk data is valid until the next one is asked for. One
   * pass; the temporary files are removed at its end.
   */
  async *series(): AsyncGenerator<SeriesChunks> {
    const runs = this.#runs;
    this.#runs = [];
    const worker = this.#worker;
    this.#worker = undefined;
    try {
      yield* mergeResolvedRuns(runs, {
        utf8Order: this.#utf8Order,
        bufferSize: this.#options.runBufferSize,
        // The head chunks' bytes, which the runs refer to (see head_chunk_store.ts).
        headChunkData: this.#headChunkData,
        // Without a worker (see replay), on this thread.
        ringBytes: worker ? this.#options.ringBytes : 0,
        worker,
      });
    } finally {
      worker?.close();
      await this.close();
    }
  }

  /** Removes the temporary files. */
  async close(): Promise<void> {
    this.#runs = [];
    this.#worker?.close();
    this.#worker = undefined;
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Step 1: reads the head chunks into a file, then the WAL (and WBL) into shard files by the
 * series' labels, then the head chunks into the shards of their series. With `skipAtSplit`, WAL
 * samples that a head chunk of their ref holds are left out here already.
 */
async function _splitWal(
  o: HeadReplayOptions,
  dir: string,
  stats: HeadReplayStats,
  skipAtSplit: boolean,
): Promise<{ shards: ShardFile[]; headChunkData?: string }> {
  // The WAL's reader starts loading now, while the head chunks are copied.
  const worker = (o.ringBytes ?? WAL_RING_BYTES) > 0 ? new PreparedReadAheadWorker() : undefined;
  try {
    return await _splitWalWith(o, dir, stats, skipAtSplit, worker);
  } finally {
    worker?.close();
  }
}

async function _splitWalWith(
  o: HeadReplayOptions,
  dir: string,
  stats: HeadReplayStats,
  skipAtSplit: boolean,
  worker: PreparedReadAheadWorker | undefined,
): Promise<{ shards: ShardFile[]; headChunkData?: string }> {
  const headChunks = o.headChunksDir === undefined ? null : await _readHeadChunks(
    o,
    o.headChunksDir,
    `${dir}/head-chunks`,
    `${dir}/head-chunk-data`,
    stats,
  );
  let walBytes = 0;
  for (const segment of [...o.wal, ...o.wbl ?? []]) {
    walBytes += (await Deno.stat(segment.path)).size;
  }
  const shards = Math.max(
    1,
    Math.min(_MAX_SHARDS, Math.ceil(walBytes / (o.shardWalBytes ?? 2 * 1024 * 1024))),
  );
  const part = await HeadPartitioner.create(`${dir}/shard`, 0, {
    shards,
    bufferSize: o.shardBufferSize,
  });
  try {
    const ends = skipAtSplit ? headChunks?.ends : undefined;
    await new _WalSplitter(o, part, stats, ends, worker).run();
    if (headChunks) {
      await readShardFile(headChunks.path, new _HeadChunkRouter(part, headChunks.ends), {
        bufferSize: o.shardReadSize,
        signal: o.signal,
        afterBlock: () => part.flush(),
      });
      await Deno.remove(headChunks.path);
    }
    return { shards: await part.finish(), headChunkData: headChunks?.data };
  } catch (e) {
    await part.abort();
    throw e;
  }
}

/**
 * Step 1a: the head chunks Prometheus' startup would take (`head.go` loadMmappedChunks), copied
 * (a running Prometheus may delete or add head chunk files meanwhile), with the end of each ref's
 * chunks. The bytes of those that reach into the window go to a {@link HeadChunkStore} at
 * `dataPath`, and an entry for each chunk, with a reference to its bytes and its samples in the
 * window, to a file at `path`. Left out: out-of-order chunks (the WBL holds their samples) and
 * those that end before `minValidTime`; a ref with a chunk that does not start after the one
 * before (where Prometheus fails) or of an encoding other than XOR and histograms keeps none; at
 * the first damaged chunk (or a dir Prometheus would not open) the rest. All of that costs only
 * time: the WAL holds every sample of a head chunk, and only WAL samples up to the chunks taken
 * are skipped.
 */
async function _readHeadChunks(
  o: HeadReplayOptions,
  dir: string,
  path: string,
  dataPath: string,
  stats: HeadReplayStats,
): Promise<{ path: string; data: string; ends: RefTimes } | null> {
  const minValid = o.minValidTime === null ? -Infinity : Number(o.minValidTime);
  const from = Number(o.from);
  const to = Number(o.to);
  const flushBytes = o.splitFlushBytes ?? 4 * 1024 * 1024;
  const ends = new RefTimes();
  const file = await HeadChunkFile.create(path, o.shardBufferSize);
  let store: HeadChunkStore;
  try {
    store = await HeadChunkStore.create(dataPath);
  } catch (e) {
    await file.abort();
    throw e;
  }
  try {
    try {
      const files = await listHeadChunkFiles(dir);
      for (let i = 0; i < files.length; i++) {
        using c = HeadChunkCursor.open(files[i], i === files.length - 1);
        for (let n = 1; c.next(); n++) {
          if (n % 4096 === 0) {
            o.signal?.throwIfAborted();
            await turnEventLoop();
          }
          await o.pace?.(c.data.length);
          const { seriesRef: ref, mint, maxt } = c;
          if (c.ooo || maxt < minValid || !Number.isSafeInteger(ref)) continue;
          const end = ends.get(ref);
          if (Number.isNaN(end)) continue;
          const usable = isKnownEncoding(c.encoding) && !hasStartTimestamps(c.encoding);
          if (!usable || mint <= end || maxt < mint) {
            ends.set(ref, NaN);
            continue;
          }
          ends.set(ref, maxt);
          // Those that reach into the window have their bytes stored, and the shard replay keeps
          // them (_ShardReplayer.headChunk); the others are only the end of their ref's chunks.
          const inWindow = maxt >= from && mint <= to;
          const samples = inWindow ? _samplesIn(c.encoding, c.data, mint, maxt, from, to) : 0;
          const refBytes = await store.add(inWindow ? c.data : null, samples);
          file.add(ref, mint, maxt, c.encoding | HEAD_CHUNK_REF, refBytes);
          if (file.waitingBytes >= flushBytes) file.flush();
        }
      }
    } catch (err) {
      if (err instanceof HeadChunkCorruptionError) {
        stats.headChunksDamage = { path: err.path, offset: err.offset, message: err.message };
      } else if (err instanceof FormatError) {
        stats.headChunksDamage = { path: dir, offset: 0, message: err.message };
      } else if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    await store.close();
    if (await file.close()) return { path, data: dataPath, ends };
    await Deno.remove(dataPath);
    return null;
  } catch (e) {
    store.abort();
    await file.abort();
    throw e;
  }
}

/** Samples of a chunk in `[from, to]`: all of one inside it, else those its timestamps say. */
function _samplesIn(
  encoding: number,
  data: Uint8Array,
  mint: number,
  maxt: number,
  from: number,
  to: number,
): number {
  if (mint >= from && maxt <= to) return chunkNumSamples(encoding, data);
  let n = 0;
  for (const x of decodeSamples({ encoding, data })) {
    if (Number(x.t) >= from && Number(x.t) <= to) n++;
  }
  return n;
}

/**
 * Step 1c: hands the head chunks to the shards of their series: those of refs the WAL named, and
 * whose chunks are used (see {@link _readHeadChunks}).
 */
class _HeadChunkRouter implements HeadEntrySink {
  #part: HeadPartitioner;
  #ends: RefTimes;

  constructor(part: HeadPartitioner, ends: RefTimes) {
    this.#part = part;
    this.#ends = ends;
  }

  headChunk(ref: number, mint: number, maxt: number, encoding: number, data: Uint8Array): void {
    if (this.#part.has(ref) && !Number.isNaN(this.#ends.get(ref))) {
      this.#part.headChunk(ref, mint, maxt, encoding, data);
    }
  }

  series(): void {
    throw new Error("head chunk file: a series entry");
  }

  samples(): void {
    throw new Error("head chunk file: a samples entry");
  }

  histogram(): void {
    throw new Error("head chunk file: a histogram entry");
  }

  tombstone(): void {
    throw new Error("head chunk file: a tombstone entry");
  }
}

/** Splits a shard with too many series into parts, by another seed of the labels' hash. */
async function _splitShard(
  shard: ShardFile,
  o: HeadReplayOptions,
  prefix: string,
): Promise<ShardFile[]> {
  const target = o.shardSeries ?? 4096;
  const shards = Math.max(2, Math.min(_MAX_SHARDS, Math.ceil((shard.series * 1.25) / target)));
  const part = await HeadPartitioner.create(prefix, shard.level, {
    shards,
    bufferSize: o.shardBufferSize,
  });
  try {
    const read = {
      bufferSize: o.shardReadSize,
      batchSize: o.batchSize,
      signal: o.signal,
      afterBlock: () => part.flush(),
    };
    await readShardFile(shard.path, part, { ...read, end: shard.headChunksAt });
    if (shard.headChunksAt !== undefined) {
      await readShardFile(shard.path, part, { ...read, start: shard.headChunksAt });
    }
    return await part.finish();
  } catch (e) {
    await part.abort();
    throw e;
  }
}

/** What one shard's replay takes of the options (plain data: it may run in a worker). */
type _ShardReplayOptions =
  & Pick<
    HeadReplayOptions,
    "memoryBudget" | "shardReadSize" | "batchSize" | "openChunks" | "signal"
  >
  & {
    /** The {@link HeadChunkStore} the head chunk entries refer to. */
    headChunkData?: string;
  };

/** A shard replay for a worker (`head_replay_worker.ts`): plain data both ways. */
export interface ShardReplayJob {
  /** The shard file. */
  shard: ShardFile;
  /** The sorted run to write (its spill goes beside it). */
  path: string;
  /** The replay's limits. */
  limits: Omit<_ShardReplayOptions, "signal">;
}

/** What a {@link ShardReplayJob} gives back: its run and its counters. */
export interface ShardReplayResult {
  /** The run written. */
  path: string;
  /** Whether its keys need UTF-8 order. */
  utf8Order: boolean;
  /** Counters of this shard alone. */
  stats: HeadReplayStats;
}

/**
 * Runs a {@link ShardReplayJob}: what each thread of a replay does with a shard (`openChunks`
 * empty, and left so for the next job).
 */
export async function replayShardJob(
  job: ShardReplayJob,
  openChunks: XorAppenderSet,
  signal?: AbortSignal,
): Promise<ShardReplayResult> {
  const stats = _newStats();
  const o = { ...job.limits, signal };
  const run = await _replayShard(job.shard, o, stats, openChunks, job.path);
  return { ...run, stats };
}

function _newStats(): HeadReplayStats {
  return {
    records: 0,
    series: 0,
    duplicateSeriesRefs: 0,
    floatSamples: 0,
    histogramSamples: 0,
    outOfOrderSamples: 0,
    droppedBeforeMinValid: 0,
    droppedOutOfOrder: 0,
    droppedUnknownSeries: 0,
    droppedUnknownSchema: 0,
    skippedRecords: {},
    torn: null,
    corruption: null,
    shards: 0,
    headChunks: 0,
    walSamplesInHeadChunks: 0,
    headChunkConflicts: 0,
    headChunksDamage: null,
  };
}

/** Adds a shard's counters (numbers only: the others belong to the WAL split) to `into`. */
function _addStats(into: HeadReplayStats, from: HeadReplayStats): void {
  const to = into as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(from)) {
    if (typeof value === "number") to[key] = (to[key] as number) + value;
  }
}

/**
 * Step 2 for every shard: the main thread and `replayWorkers` workers each take the next shard,
 * split it again when it holds too many series (on the main thread), else replay it into a run.
 * Depth first, so that a split shard's parts are replayed (and removed) before the next.
 */
async function _replayShards(
  shards: ShardFile[],
  o: HeadReplayOptions,
  stats: HeadReplayStats,
  dir: string,
  headChunkData: string | undefined,
): Promise<{ runs: string[]; utf8Order: boolean }> {
  const pending = shards.reverse();
  const runs: string[] = [];
  let utf8Order = false;
  let n = 0;
  const stop = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, stop.signal]) : stop.signal;
  const limits = {
    memoryBudget: o.memoryBudget,
    shardReadSize: o.shardReadSize,
    batchSize: o.batchSize,
    openChunks: o.openChunks,
    headChunkData,
  };
  // The next shard to replay, split first while it holds too many series.
  const next = async (): Promise<ShardReplayJob | null> => {
    for (let shard = pending.pop(); shard; shard = pending.pop()) {
      if (shard.series > (o.shardSeries ?? 4096) && shard.level <= _MAX_SPLITS) {
        const parts = await _splitShard(shard, { ...o, signal }, `${dir}/split-${n++}`);
        pending.push(...parts.reverse());
        await Deno.remove(shard.path);
      } else {
        return { shard, path: `${dir}/run-${n++}`, limits };
      }
    }
    return null;
  };
  // One set of open chunks per thread: its buffer, grown for the largest shard, is kept.
  const openChunks = new XorAppenderSet(o.openChunks);
  const lanes: ((job: ShardReplayJob) => Promise<ShardReplayResult>)[] = [
    (job) => replayShardJob(job, openChunks, signal),
  ];
  const workers: HeadReplayWorker[] = [];
  for (let i = 0; i < (o.replayWorkers ?? 0); i++) {
    const worker = new HeadReplayWorker(signal);
    workers.push(worker);
    lanes.push((job) => worker.replay(job));
  }
  const failure: { error?: unknown; failed: boolean } = { failed: false };
  await Promise.allSettled(lanes.map(async (replay) => {
    try {
      for (let job = await next(); job; job = await next()) {
        const run = await replay(job);
        runs.push(run.path);
        utf8Order ||= run.utf8Order;
        _addStats(stats, run.stats);
        stats.shards++;
        await Deno.remove(job.shard.path);
      }
    } catch (e) {
      // The first failure stops the other lanes (theirs are only the abort).
      if (!failure.failed) Object.assign(failure, { error: e, failed: true });
      stop.abort(e);
    }
  }));
  for (const w of workers) w.close();
  if (failure.failed) throw failure.error;
  return { runs, utf8Order };
}

/** Step 2: replays one shard into a sorted run. */
async function _replayShard(
  shard: ShardFile,
  o: _ShardReplayOptions,
  stats: HeadReplayStats,
  openChunks: XorAppenderSet,
  path: string,
): Promise<{ path: string; utf8Order: boolean }> {
  const spill = await ChunkSpill.create(`${path}.chunks`, { memoryBudget: o.memoryBudget });
  let run: SeriesRunWriter | null = null;
  // For the few series decoded here (out-of-order samples, deletions), opened for the first.
  let store: HeadChunkStoreReader | null = null;
  try {
    const replayer = new _ShardReplayer(spill, stats, openChunks);
    const read = {
      bufferSize: o.shardReadSize,
      batchSize: o.batchSize,
      signal: o.signal,
      afterBlock: async () => {
        if (spill.needsFlush) await spill.flush();
      },
    };
    // The head chunks first: a series record needs them (#useHeadChunks).
    const at = shard.headChunksAt;
    if (at !== undefined) await readShardFile(shard.path, replayer, { ...read, start: at });
    replayer.startEntries();
    await readShardFile(shard.path, replayer, { ...read, end: at });
    await replayer.finishOpenChunks();
    await spill.finish();
    run = await SeriesRunWriter.create(path);
    for (const s of replayer.distinct()) {
      o.signal?.throwIfAborted();
      let chunks = replayer.chunks(s);
      if ((s.ooo || s.deleted) && o.headChunkData !== undefined) {
        chunks = (store ??= HeadChunkStoreReader.open(o.headChunkData)).resolve(chunks);
      }
      if (s.ooo) {
        s.ooo.sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0));
        chunks.push(...encodeSamples(s.ooo.filter((x, i, a) => i === 0 || a[i - 1].t !== x.t)));
      }
      const merged = s.deleted || s.ooo
        ? trimChunks(chunks, -(2n ** 63n), 2n ** 63n - 1n, s.deleted ?? [])
        : chunks;
      if (merged.length > 0) await run.add(s.key, merged);
    }
    await run.finish();
    return { path, utf8Order: replayer.utf8Order };
  } catch (e) {
    await run?.abort();
    throw e;
  } finally {
    store?.close();
    await spill.close();
  }
}

// Record types Prometheus' replay decodes (head_wal.go loadWAL's and loadWBL's switches): series,
// samples, tombstones, exemplars, metadata and histograms in the WAL (not mmap markers); samples,
// mmap markers and histograms in the WBL.
const _WAL_DECODED = new Set([1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13]);
const _WBL_DECODED = new Set([2, 5, 7, 8, 9, 10, 11, 12, 13]);

/** Reads WAL (and WBL) records into a partitioner, with the rules that need no series state. */
class _WalSplitter {
  #o: HeadReplayOptions;
  #part: HeadPartitioner;
  #stats: HeadReplayStats;
  // Window and minValidTime as numbers (ms timestamps are exact as doubles).
  #minValid: number;
  #from: number;
  #to: number;
  #batch: SampleBatch;
  #one = new SampleBatch(1);
  #flushBytes: number;
  /** The end of each ref's head chunks: its WAL samples up to there are skipped. */
  #headChunkEnds: RefTimes | undefined;
  /** The worker started for the WAL's reader (the WBL's starts its own). */
  #worker: PreparedReadAheadWorker | undefined;

  constructor(
    o: HeadReplayOptions,
    part: HeadPartitioner,
    stats: HeadReplayStats,
    headChunkEnds: RefTimes | undefined,
    worker: PreparedReadAheadWorker | undefined,
  ) {
    this.#o = o;
    this.#worker = worker;
    this.#headChunkEnds = headChunkEnds;
    this.#batch = new SampleBatch(o.batchSize);
    this.#flushBytes = o.splitFlushBytes ?? 4 * 1024 * 1024;
    this.#part = part;
    this.#stats = stats;
    this.#minValid = o.minValidTime === null ? -Infinity : Number(o.minValidTime);
    this.#from = Number(o.from);
    this.#to = Number(o.to);
  }

  async run(): Promise<void> {
    await this.#read(this.#o.wal, false);
    if (this.#o.wbl && this.#o.wbl.length > 0) await this.#read(this.#o.wbl, true);
  }

  async #read(segments: readonly SegmentRef[], wbl: boolean): Promise<void> {
    // Each record is done with before the next is read (the partitioner copies what it keeps);
    // series records of more than a page come as their pages do, one series at a time.
    const seriesRecords = wbl ? _ignoreSeries : this.#series;
    const ring = this.#o.ringBytes ?? WAL_RING_BYTES;
    const reader = ring > 0
      ? new WalReadAhead(segments, { seriesRecords, ringBytes: ring, worker: this.#worker })
      : new WalReader(segments, { reuseBuffer: true, seriesRecords });
    try {
      await this.#readRecords(reader, wbl);
    } catch (err) {
      // Prometheus repairs a damaged WAL by dropping everything from the damage on; so does the
      // replay (the damage is reported, and the data before it kept). A damaged checkpoint is
      // fatal to Prometheus, and to the replay.
      if (!(err instanceof CorruptionError) || /\/checkpoint\.\d+\//.test(err.path)) throw err;
      this.#stats.corruption ??= { path: err.path, offset: err.offset, message: err.message };
    }
    const st = this.#stats;
    st.records += reader.stats.streamedRecords;
    if (reader.torn && !st.torn) st.torn = { path: reader.torn.path, offset: reader.torn.offset };
  }

  async #readRecords(reader: WalReader | WalReadAhead, wbl: boolean): Promise<void> {
    const part = this.#part;
    const st = this.#stats;
    const batch = this.#batch;
    for await (const rec of reader) {
      this.#o.signal?.throwIfAborted();
      await this.#o.pace?.(rec.bytes.length);
      if (++st.records % 4096 === 0) this.#o.onProgress?.(st.records);
      // Float samples, nearly all of a WAL, take the allocation-free path.
      if (samplesV1Count(rec.bytes) >= 0) {
        for (let at = 0; at < rec.bytes.length;) {
          at = readSamplesV1(rec.bytes, at, batch, SampleEntry.float);
          this.#emit(batch, wbl);
          // A scrape of a million series is one record of ~10 MiB: its entries go to the files
          // as they come, not all at its end.
          if (part.waitingBytes >= this.#flushBytes) part.flush();
        }
        part.flush();
        continue;
      }
      // Series records too: Prometheus logs all series a scrape creates in one record (20 MiB
      // for 200,000 series), whose decoded labels would take several times that.
      if (forEachSeries(rec.bytes, wbl ? _ignoreSeries : this.#series)) {
        part.flush();
        continue;
      }
      // Histograms nearly always too: their bytes are copied into the shards as they are.
      this.#rawBytes = rec.bytes;
      if (forEachWalHistogramV1(rec.bytes, wbl ? this.#rawOutOfOrder : this.#rawInOrder)) {
        part.flush();
        continue;
      }
      let r;
      try {
        r = decodeRecord(rec.bytes);
      } catch (err) {
        if (!(err instanceof FormatError)) throw err;
        // Prometheus decodes only some types in each log (head_wal.go loadWAL, loadWBL) and
        // ignores the others unread; a malformed record of a decoded type is WAL corruption
        // there (repaired from it on), and fatal in a checkpoint (#read).
        const code = rec.bytes[0];
        if (!(wbl ? _WBL_DECODED : _WAL_DECODED).has(code)) {
          const name = recordTypeName(code);
          st.skippedRecords[name] = (st.skippedRecords[name] ?? 0) + 1;
          continue;
        }
        const what = `malformed ${recordTypeName(code)} record: ${err.message}`;
        throw new CorruptionError(rec.segment, rec.path, rec.offset, what, { cause: err });
      }
      switch (r.type) {
        case "series":
          if (!wbl) { for (const s of r.series) part.series(Number(s.ref), labelsKey(s.labels)); }
          break;
        case "samples":
          for (const x of r.samples) {
            batch.push(SampleEntry.float, Number(x.ref), Number(x.t), 0, 0);
            const bits = BigInt.asUintN(64, x.v);
            batch.vh[batch.length - 1] = Number(bits >> 32n);
            batch.vl[batch.length - 1] = Number(bits & 0xffffffffn);
            if (batch.length === batch.capacity) this.#emit(batch, wbl);
          }
          this.#emit(batch, wbl);
          break;
        case "histograms":
        case "floatHistograms":
          st.droppedUnknownSchema += r.unknownSchemas ?? 0;
          for (const s of r.histograms) {
            this.#histogram(Number(s.ref), Number(s.t), s.h, r.type === "floatHistograms", wbl);
          }
          break;
        case "tombstones":
          for (const ts of r.tombstones) {
            const ref = Number(ts.ref);
            if (part.has(ref)) part.tombstone(ref, ts.mint, ts.maxt);
          }
          break;
        default: {
          const name = r.type === "unknown" ? `unknown type ${r.code}` : recordTypeName(r.code);
          st.skippedRecords[name] = (st.skippedRecords[name] ?? 0) + 1;
        }
      }
      part.flush();
    }
  }

  // Which entry a sample becomes, null when it is dropped: of an unknown ref (counted); from the
  // WBL, an out-of-order entry if in the window; else dropped before minValidTime (counted), kept
  // inside the window, or only its timestamp outside it (it still advances the series).
  #kind(ref: number, t: number, wbl: boolean): SampleEntryKind | null {
    if (!this.#part.has(ref)) {
      this.#stats.droppedUnknownSeries++;
      return null;
    }
    const inWindow = t >= this.#from && t <= this.#to;
    if (wbl) return inWindow ? SampleEntry.outOfOrder : null;
    if (t < this.#minValid) {
      this.#stats.droppedBeforeMinValid++;
      return null;
    }
    // Prometheus skips them as it replays a series (its last record's ref's chunks, which the
    // shard replay checks: see _ShardReplayer.series); for nearly every series that is this ref.
    if (this.#headChunkEnds && t <= this.#headChunkEnds.get(ref)) {
      this.#stats.walSamplesInHeadChunks++;
      return null;
    }
    return inWindow ? SampleEntry.float : SampleEntry.advance;
  }

  // Hands a batch of float samples to the partitioner as the entries they become (#kind), the
  // dropped ones left out. Empties the batch.
  #emit(batch: SampleBatch, wbl: boolean): void {
    const { kind: kinds, ref: refs, t: times, vh, vl } = batch;
    let kept = 0;
    for (let i = 0; i < batch.length; i++) {
      const kind = this.#kind(refs[i], times[i], wbl);
      if (kind === null) continue;
      kinds[kept] = kind;
      refs[kept] = refs[i];
      times[kept] = times[i];
      vh[kept] = vh[i];
      vl[kept] = vl[i];
      kept++;
    }
    batch.length = kept;
    if (kept > 0) this.#part.samples(batch);
    batch.length = 0;
  }

  #seriesSplit = 0;
  #series = (ref: number, key: string) => {
    this.#part.series(ref, key);
    // A scrape's series record can hold a million: its entries go to the files as they come.
    if ((++this.#seriesSplit & 1023) === 0 && this.#part.waitingBytes >= this.#flushBytes) {
      this.#part.flush();
    }
  };

  // The histograms of a record forEachWalHistogramV1 reads (their bytes in #rawBytes), as
  // #histogram takes decoded ones.
  #rawBytes: Uint8Array = new Uint8Array(0);
  #rawInOrder = (ref: number, t: number, start: number, end: number, float: boolean) =>
    this.#rawHistogram(ref, t, this.#rawBytes.subarray(start, end), float, false);
  #rawOutOfOrder = (ref: number, t: number, start: number, end: number, float: boolean) =>
    this.#rawHistogram(ref, t, this.#rawBytes.subarray(start, end), float, true);

  #rawHistogram(ref: number, t: number, bytes: Uint8Array, float: boolean, wbl: boolean): void {
    const kind = this.#kind(ref, t, wbl);
    if (kind === SampleEntry.advance) this.#advance(ref, t);
    else if (kind !== null) {
      this.#part.histogramBytes(ref, t, bytes, float, kind === SampleEntry.outOfOrder);
    }
  }

  #histogram(
    ref: number,
    t: number,
    h: Histogram | FloatHistogram,
    float: boolean,
    wbl: boolean,
  ): void {
    const kind = this.#kind(ref, t, wbl);
    if (kind === SampleEntry.advance) this.#advance(ref, t);
    else if (kind !== null) this.#part.histogram(ref, t, h, float, kind === SampleEntry.outOfOrder);
  }

  #advance(ref: number, t: number): void {
    const one = this.#one;
    one.length = 0;
    one.push(SampleEntry.advance, ref, t, 0, 0);
    this.#part.samples(one);
  }
}

/** The WBL's series records are not replayed (`head_wal.go` loadWBL). */
function _ignoreSeries(): void {}

/** Replays one shard's entries into chunks, with the rules that need the series' state. */
class _ShardReplayer implements HeadEntrySink {
  /** Whether a labels key holds a UTF-16 surrogate (then keys sort by UTF-8 bytes, slower). */
  utf8Order = false;
  #stats: HeadReplayStats;
  #spill: ChunkSpill;
  #byRef = new _RefIndex();
  /**
   * Per series id: the last appended timestamp (in-order rule; -Infinity before the first
   * sample), the open float chunk's first timestamp, its chunk-range end, and the end of the
   * series' head chunks (-Infinity for none). In a typed array because a number field of an
   * object is a new heap number at every store (two per sample).
   */
  #times = new Float64Array(4 * 1024);
  /** The open float chunks, one slot per series id. */
  #xor: XorAppenderSet;
  #series: _Series[] = [];
  #byLabels = new Map<string, _Series>();
  /**
   * Head chunks, read before any other entry: per ref, a spill list (numbered from 0) with the
   * chunks that reach into the window; per list, the end of its chunks and their float and
   * histogram samples in the window (counted as the WAL's are: when a series takes them).
   */
  #headChunkLists = new _RefIndex();
  #headChunkEnd = new Float64Array(64);
  #headChunkFloats = new Float64Array(64);
  #headChunkHistograms = new Float64Array(64);
  /** The spill list of series id 0: the series' lists follow those of the head chunks. */
  #listBase = -1;

  /** `openChunks` must be empty; {@link _ShardReplayer.finishOpenChunks} leaves it so. */
  constructor(spill: ChunkSpill, stats: HeadReplayStats, openChunks: XorAppenderSet) {
    this.#spill = spill;
    this.#stats = stats;
    this.#xor = openChunks;
  }

  /**
   * A head chunk of `ref` (in file order; the WAL split took only usable ones), as a reference
   * into the head chunk store: its end is the ref's, and it is kept when it reaches into the
   * window (then its reference has bytes: see {@link _readHeadChunks}).
   */
  headChunk(ref: number, mint: number, maxt: number, encoding: number, data: Uint8Array): void {
    if (this.#listBase >= 0) throw new Error("head shard: a head chunk after other entries");
    let list = this.#headChunkLists.get(ref);
    if (list < 0) {
      list = this.#headChunkLists.size;
      this.#headChunkLists.set(ref, list);
      if (list === this.#headChunkEnd.length) {
        this.#headChunkEnd = _grown(this.#headChunkEnd);
        this.#headChunkFloats = _grown(this.#headChunkFloats);
        this.#headChunkHistograms = _grown(this.#headChunkHistograms);
      }
    }
    if (!isHeadChunkRef(encoding)) {
      throw new Error("head shard: a head chunk's bytes, not a reference");
    }
    this.#headChunkEnd[list] = maxt;
    if (headChunkRefLength(data) === 0) return;
    // Whole, as Prometheus serves it (the block writer cuts chunks to the window): the reference
    // goes on, with the count of its samples in the window.
    this.#spill.add(list, encoding, data, mint, maxt);
    const n = headChunkRefSamples(data);
    if ((encoding & ~HEAD_CHUNK_REF) === Encoding.xor) this.#headChunkFloats[list] += n;
    else this.#headChunkHistograms[list] += n;
  }

  /**
   * A series' chunks in time order: its head chunks' parts in the window, then those built from
   * the WAL (whose samples all come after the head chunks). Counted in the stats.
   */
  chunks(s: _Series): TimedChunk[] {
    const built = this.#spill.read(this.#list(s));
    if (s.headChunks < 0 || !this.#spill.has(s.headChunks)) return built;
    const mapped = this.#spill.read(s.headChunks);
    this.#stats.headChunks += mapped.length;
    return built.length === 0 ? mapped : mapped.concat(built);
  }

  /** Ends the head chunks: the other entries follow. */
  startEntries(): void {
    this.#listBase = this.#headChunkLists.size;
  }

  // The spill list of a series' chunks built from the WAL.
  #list(s: _Series): number {
    return this.#listBase + s.id;
  }

  /** Moves every open chunk to the spill. */
  async finishOpenChunks(): Promise<void> {
    for (const s of this.#series) {
      this.#finish(s);
      // Bounded, as per entry block: otherwise every open chunk would wait in memory for the file.
      if (this.#spill.needsFlush) await this.#spill.flush();
    }
    this.#xor.clear();
  }

  /** The distinct series that have data, sorted by labels. */
  distinct(): _Series[] {
    // Ordering the keys by UTF-8 bytes orders the label sets (see labelsKey); without
    // surrogates (as nearly always) that is the order of UTF-16 code units.
    const order = this.utf8Order
      ? (a: _Series, b: _Series) => compareUtf8(a.key, b.key)
      : (a: _Series, b: _Series) => (a.key < b.key ? -1 : 1);
    return this.#series
      .filter((s) =>
        this.#spill.has(this.#list(s)) || (s.headChunks >= 0 && this.#spill.has(s.headChunks)) ||
        (s.ooo?.length ?? 0) > 0
      )
      .sort(order);
  }

  series(ref: number, key: string): void {
    const known = this.#byLabels.get(key);
    if (known) {
      if (this.#byRef.get(ref) < 0) this.#stats.duplicateSeriesRefs++;
      this.#byRef.set(ref, known.id);
      this.#reset(known);
      if (this.#useHeadChunks(known, ref) < known.headChunksEnd) this.#stats.headChunkConflicts++;
      return;
    }
    if (!this.utf8Order) this.utf8Order = needsUtf8Order(key);
    const s: _Series = {
      key,
      id: this.#series.length,
      openKind: null,
      hist: null,
      ooo: null,
      deleted: null,
      gone: false,
      headChunks: -1,
      headChunksEnd: -Infinity,
    };
    this.#byLabels.set(key, s);
    this.#series.push(s);
    this.#byRef.set(ref, s.id);
    if (4 * s.id + 4 > this.#times.length) this.#times = _grown(this.#times);
    this.#useHeadChunks(s, ref);
    this.#stats.series++;
  }

  // Prometheus (`resetSeriesWithMMappedChunks`): a series record gives the series the head chunks
  // of its ref, and WAL samples up to their end are skipped. Returns that end.
  #useHeadChunks(s: _Series, ref: number): number {
    const list = this.#headChunkLists.get(ref);
    const end = list >= 0 ? this.#headChunkEnd[list] : -Infinity;
    if (list >= 0) {
      this.#stats.floatSamples += this.#headChunkFloats[list];
      this.#stats.histogramSamples += this.#headChunkHistograms[list];
    }
    s.headChunks = list;
    if (end > s.headChunksEnd) s.headChunksEnd = end;
    this.#times[4 * s.id] = this.#times[4 * s.id + 3] = end;
    return end;
  }

  samples(batch: SampleBatch): void {
    const { kind: kinds, ref: refs, t: times } = batch;
    const st = this.#stats;
    for (let i = 0; i < batch.length; i++) {
      const s = this.#get(refs[i]);
      const kind = kinds[i];
      if (s.gone) {
        st.droppedUnknownSeries++;
        continue;
      }
      if (kind === SampleEntry.outOfOrder) {
        const v = (BigInt(batch.vh[i] >>> 0) << 32n) | BigInt(batch.vl[i] >>> 0);
        (s.ooo ??= []).push({ t: BigInt(times[i]), kind: "float", v });
        st.outOfOrderSamples++;
        continue;
      }
      // The in-order rule of #inOrder, written out: this loop runs for every sample.
      const t = times[i];
      const at = 4 * s.id;
      if (t <= this.#times[at]) {
        if (t <= this.#times[at + 3]) st.walSamplesInHeadChunks++;
        else st.droppedOutOfOrder++;
        continue;
      }
      this.#times[at] = t;
      if (kind === SampleEntry.float) this.#appendFloat(s, batch, i);
    }
  }

  histogram(
    ref: number,
    t: number,
    h: Histogram | FloatHistogram,
    float: boolean,
    outOfOrder: boolean,
  ): void {
    const s = this.#get(ref);
    if (s.gone) {
      this.#stats.droppedUnknownSeries++;
      return;
    }
    // The histogram was decoded for this call: it becomes the sample, its time set in place. The
    // first one is kept for the hidden class that gives it (see _hidden_class.ts).
    const time = BigInt(t);
    const hs = h as (Histogram | FloatHistogram) & { t: bigint };
    hs.t = time;
    if (!_histogramSampleKept) {
      keepHiddenClass(hs);
      _histogramSampleKept = true;
    }
    const sample: Exclude<Sample, { kind: "float" }> = float
      ? { t: time, kind: "floatHistogram", h: hs as FloatHistogramSample }
      : { t: time, kind: "histogram", h: hs as HistogramSample };
    if (outOfOrder) {
      (s.ooo ??= []).push(sample);
      this.#stats.outOfOrderSamples++;
    } else if (this.#inOrder(s, t)) {
      this.#stats.histogramSamples++;
      this.#appendHistogram(s, sample);
    }
  }

  // A tombstone over exactly [MinInt64, MaxInt64] is an eviction (stale-series compaction,
  // 3.10+): Prometheus deletes the series its ref maps to, with all replayed so far, and
  // unlinks its labels, so that a later series record for them starts a fresh series that
  // earlier tombstones do not touch (3.14, `head_wal.go` loadWAL); its refs become unknown.
  // Any other interval stays on the series and hides its samples in it, later ones too.
  tombstone(ref: number, mint: bigint, maxt: bigint): void {
    const s = this.#get(ref);
    if (s.gone) return;
    if (isFullRangeTombstone({ mint, maxt })) {
      this.#reset(s);
      s.ooo = s.deleted = null;
      s.gone = true;
      this.#byLabels.delete(s.key);
      return;
    }
    s.deleted = addInterval(s.deleted ?? [], { mint, maxt });
  }

  // A series record for labels the head has already: Prometheus (`resetSeriesWithMMappedChunks`)
  // drops the series' chunks replayed so far ("already compacted": the labels come back after
  // the series was garbage collected) and starts it afresh, its last timestamp forgotten.
  #reset(s: _Series): void {
    this.#spill.clear(this.#list(s));
    this.#xor.reset(s.id);
    s.openKind = null;
    s.hist = null;
    s.headChunks = -1;
    this.#times[4 * s.id] = this.#times[4 * s.id + 3] = -Infinity;
  }

  #get(ref: number): _Series {
    const s = this.#series[this.#byRef.get(ref)];
    if (!s) throw new Error(`head shard: entry for ref ${ref} before its series`);
    return s;
  }

  // Prometheus' in-order rule: not at or before the series' last sample (minValidTime and the
  // window were applied when the WAL was split). A kept sample advances the series.
  #inOrder(s: _Series, t: number): boolean {
    const at = 4 * s.id;
    if (t <= this.#times[at]) {
      if (t <= this.#times[at + 3]) this.#stats.walSamplesInHeadChunks++;
      else this.#stats.droppedOutOfOrder++;
      return false;
    }
    this.#times[at] = t;
    return true;
  }

  #appendFloat(s: _Series, batch: SampleBatch, i: number): void {
    const t = batch.t[i];
    this.#stats.floatSamples++;
    if (s.openKind !== null && s.openKind !== "float") this.#finish(s);
    const xor = this.#xor;
    // As Prometheus' head: 120 samples a chunk, never across a 2h chunk-range boundary.
    const times = this.#times;
    const at = 4 * s.id;
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
    xor.appendAt(s.id, batch, i);
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
        const mint = this.#times[4 * s.id + 1];
        const list = this.#list(s);
        this.#spill.add(list, Encoding.xor, xor.view(s.id), mint, xor.lastTimestamp(s.id));
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
    this.#spill.add(this.#list(s), c.encoding, c.data, Number(c.mint), Number(c.maxt));
  }
}

/**
 * WAL series refs to series ids: an open-addressing hash table in typed arrays (the lookup is per
 * sample). A shard's refs are spread over the whole head's range, so an array indexed by ref would
 * grow with the head, and a Map lookup costs more. At most half full; it doubles
 * (from 64 slots, so that tests grow it too).
 */
class _RefIndex {
  /** Refs (safe integers, not negative); -1 marks an empty slot. */
  #refs: Float64Array;
  #ids: Int32Array;
  /** 32 minus log2 of the capacity: the hash's top bits pick the slot. */
  #shift: number;
  #count = 0;

  constructor(capacity = 64) {
    this.#refs = new Float64Array(capacity).fill(-1);
    this.#ids = new Int32Array(capacity);
    this.#shift = 32 - Math.log2(capacity);
  }

  /** Refs in the table. */
  get size(): number {
    return this.#count;
  }

  /** The id of `ref`, or -1. */
  get(ref: number): number {
    const refs = this.#refs;
    const mask = refs.length - 1;
    for (let i = _slot(ref, this.#shift);; i = (i + 1) & mask) {
      const r = refs[i];
      if (r === ref) return this.#ids[i];
      if (r === -1) return -1;
    }
  }

  set(ref: number, id: number): void {
    if (2 * (this.#count + 1) > this.#refs.length) this.#grow();
    const refs = this.#refs;
    const mask = refs.length - 1;
    let i = _slot(ref, this.#shift);
    while (refs[i] !== ref && refs[i] !== -1) i = (i + 1) & mask;
    if (refs[i] === -1) this.#count++;
    refs[i] = ref;
    this.#ids[i] = id;
  }

  #grow(): void {
    const refs = this.#refs;
    const ids = this.#ids;
    this.#refs = new Float64Array(2 * refs.length).fill(-1);
    this.#ids = new Int32Array(2 * refs.length);
    this.#shift--;
    this.#count = 0;
    for (let i = 0; i < refs.length; i++) if (refs[i] !== -1) this.set(refs[i], ids[i]);
  }
}

/** A copy of `a` twice as long. */
function _grown(a: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> {
  const b = new Float64Array(2 * a.length);
  b.set(a);
  return b;
}

/** Fibonacci hashing of a ref's low and high 32 bits: the slot is the product's top bits. */
function _slot(ref: number, shift: number): number {
  const high = (ref / 4294967296) >>> 0;
  return Math.imul((ref >>> 0) ^ Math.imul(high, 0x85ebca6b), 0x9e3779b1) >>> shift;
}
