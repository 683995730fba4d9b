/**
 * Reading and writing whole TSDB blocks: `<ULID>/meta.json`, `index`, `chunks/`, `tombstones`.
 *
 * {@link BlockReader} iterates a block's series with their chunks, streaming the index and reading
 * chunks through a bounded window. {@link BlockWriter} builds a block in
 * `<ULID>.tmp-for-creation`, writes the chunks as series arrive (series must come in label
 * order), then the index, tombstones and meta.json (tab-indented, as Go writes it), fsyncs
 * (unless `temporary`) and renames the directory into place, as Prometheus does.
 *
 * @module
 */

import { chunkNumSamples, Encoding } from "./chunkenc/mod.ts";
import { ChunkReader, ChunkWriter, type RawChunk } from "./chunks.ts";
import {
  type ChunkMeta,
  compareLabels,
  encodeChunkMetas,
  IndexReader,
  type IndexReaderOptions,
  IndexWriter,
  type IndexWriterOptions,
  type Label,
} from "./index.ts";
import { type BlockMeta, parseBlockMeta } from "./meta.ts";
import {
  countTombstones,
  type Interval,
  readTombstones,
  type Tombstones,
  writeTombstones,
} from "./tombstones.ts";
import { newUlid } from "./ulid.ts";
import { BufferedFileWriter } from "./_io.ts";
import { SequentialReader } from "./_stream.ts";
import { SymbolSpill } from "./_symbol_spill.ts";
import { Decbuf, Encbuf, FormatError } from "./encoding.ts";

export type { BlockMeta, BlockStats } from "./meta.ts";

/** A chunk of a series: where it is, its time range, and (when read) its bytes. */
export interface BlockChunk extends ChunkMeta, RawChunk {}

/** A series of a block with its chunks. */
export interface BlockSeries {
  /** Series ID in the index (what postings and tombstones refer to). */
  id: number;
  /** Labels, sorted by name. */
  labels: Label[];
  /** Chunks in time order. */
  chunks: BlockChunk[];
  /** Deleted intervals of this series (empty when none). */
  tombstones: Interval[];
}

/** Options of {@link BlockReader.open}. */
export interface BlockReaderOptions extends IndexReaderOptions {
  /** Chunk read window in bytes (default 256 KiB). */
  chunkWindowSize?: number;
}

/** Reads one block directory. */
export class BlockReader {
  /** The block directory. */
  readonly dir: string;
  /** Parsed meta.json. */
  readonly meta: BlockMeta;
  /** The index. */
  readonly index: IndexReader;
  /** The chunk segments. */
  readonly chunks: ChunkReader;
  /** Deleted intervals per series ID. */
  readonly tombstones: Tombstones;

  private constructor(
    dir: string,
    meta: BlockMeta,
    index: IndexReader,
    chunks: ChunkReader,
    tombstones: Tombstones,
  ) {
    this.dir = dir;
    this.meta = meta;
    this.index = index;
    this.chunks = chunks;
    this.tombstones = tombstones;
  }

  /**
   * Opens a block: parses meta.json and tombstones, opens the index and chunk segments. A block
   * of Prometheus 2.1 (meta.json version 2) is read as Prometheus repairs it: its index as
   * version 2.
   */
  static async open(dir: string, options: BlockReaderOptions = {}): Promise<BlockReader> {
    const meta = parseBlockMeta(await Deno.readTextFile(`${dir}/meta.json`));
    const tombstones = await readTombstones(dir);
    const index = await IndexReader.open(`${dir}/index`, {
      ...options,
      badIndexVersion: meta.badIndexVersion,
    });
    let chunks: ChunkReader;
    try {
      chunks = await ChunkReader.open(`${dir}/chunks`, { windowSize: options.chunkWindowSize });
    } catch (e) {
      index.close();
      throw e;
    }
    return new BlockReader(dir, meta, index, chunks, tombstones);
  }

  /**
   * Iterates the series in label order with their chunks. With `readChunks: false` only the
   * chunk metas are given (`encoding` 0 and empty `data`).
   */
  async *series(options: { readChunks?: boolean } = {}): AsyncGenerator<BlockSeries> {
    const read = options.readChunks ?? true;
    for await (const s of this.index.series()) {
      const chunks: BlockChunk[] = [];
      for (const c of s.chunks) {
        const raw = read ? await this.chunks.read(c.ref) : { encoding: 0, data: new Uint8Array(0) };
        chunks.push({ ...c, ...raw });
      }
      yield { id: s.id, labels: s.labels, chunks, tombstones: this.tombstones.get(s.id) ?? [] };
    }
  }

  /** Closes index and chunk files. */
  close(): void {
    this.index.close();
    this.chunks.close();
  }

  /** Same as {@link BlockReader.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** A parent block of a compaction (meta.json `compaction.parents`). */
export interface BlockDesc {
  /** ULID. */
  ulid: string;
  /** First millisecond. */
  minTime: bigint;
  /** Exclusive end. */
  maxTime: bigint;
}

/** Options of {@link BlockWriter.create}. */
export interface BlockWriterOptions {
  /** ULID of the new block (default: a new one). */
  ulid?: string;
  /** meta.json minTime (default: the first chunk's mint). */
  minTime?: bigint;
  /** meta.json maxTime, exclusive (default: the last chunk's maxt + 1). */
  maxTime?: bigint;
  /** Compaction level (default 1). */
  level?: number;
  /** Source ULIDs (default: the new ULID, as for a level-1 block). */
  sources?: string[];
  /** Parent blocks (default none). */
  parents?: BlockDesc[];
  /** Compaction hints to keep (e.g. "from-out-of-order"). */
  hints?: string[];
  /** Tombstones to write (default none: an empty file). */
  tombstones?: Tombstones;
  /** Maximum chunk segment size (default 512 MiB). */
  segmentSize?: number;
  /**
   * A block only read before it is removed (a rewrite's, which is archived): none of its files
   * or dirs is fsynced. Each fsync of a large file is a wait for the disk, and on ext4 one of a
   * small file can flush other files' dirty data with it.
   */
  temporary?: boolean;
  /**
   * Called with each chunk segment once it is complete (see {@link ChunkSegment}), while the
   * block's later series, or its index, are still being written; the writer waits for what it
   * returns.
   */
  onChunkSegment?: (segment: ChunkSegment) => void | Promise<void>;
  /**
   * Estimated bytes of distinct label strings held before they are spilled as a sorted run
   * (default 8 MiB; see `_symbol_spill.ts`).
   */
  symbolsMemoryBudget?: number;
  /** Bytes of postings held while the index is written before they are spilled (8 MiB). */
  postingsMemoryBudget?: number;
  /** Spilled runs merged at once (default 32). */
  mergeFanIn?: number;
  /** Read and write buffer of each temporary file (default 64 KiB). */
  spillBufferSize?: number;
  /** Further options of the index writer (its temporary dir is the block's). */
  index?: Omit<
    IndexWriterOptions,
    "tmpDir" | "postingsMemoryBudget" | "mergeFanIn" | "spillBufferSize"
  >;
}

/** A complete chunk segment file of a block being written. */
export interface ChunkSegment {
  /** The block's ULID. */
  ulid: string;
  /** Its path in the block, `chunks/000001`. */
  name: string;
  /**
   * Where it is now: inside the block's `.tmp-for-creation` dir, which the commit renames (open it
   * before then to read it after).
   */
  path: string;
}

/** Statistics of a written block (meta.json `stats`). */
export interface WrittenBlockStats {
  /** All samples. */
  numSamples: number;
  /** Float samples. */
  numFloatSamples: number;
  /** Histogram samples (integer and float). */
  numHistogramSamples: number;
  /** Series. */
  numSeries: number;
  /** Chunks. */
  numChunks: number;
  /** Tombstone intervals. */
  numTombstones: number;
}

/** What {@link BlockWriter.commit} produced. */
export interface WrittenBlock {
  /** The block's ULID. */
  ulid: string;
  /** The final block directory. */
  dir: string;
  /** meta.json minTime. */
  minTime: bigint;
  /** meta.json maxTime. */
  maxTime: bigint;
  /** meta.json stats. */
  stats: WrittenBlockStats;
}

/** Name of the file in which the series wait for the index (removed before the rename). */
const _PENDING = "series.pending";
/** Name of the dir of the spilled symbol runs and the index writer's temporary files. */
const _SPILL = "spill";

/**
 * Writes a new block. Add series in label order ({@link compareLabels}); their chunks are
 * written to the segment files at once, labels and chunk metas to a temporary file from which
 * {@link BlockWriter.commit} writes the index (its symbol table, which comes first, needs every
 * series' labels).
 *
 * Memory is bounded whatever the number of series: the distinct label strings are collected in
 * runs of `symbolsMemoryBudget`, each spilled sorted, and a series' labels go to the temporary
 * file as numbers within their run (`_symbol_spill.ts`). At commit the runs are merged straight
 * into the index's symbol table, which gives each run a map from its numbers to symbol
 * references, and the series are read back run after run and added with those references; the
 * index writer bounds the postings in turn. Temporary files stay in the block's
 * `.tmp-for-creation` dir and are removed on commit and abort. Series without chunks are left
 * out, as Prometheus does.
 */
export class BlockWriter {
  /** The new block's ULID. */
  readonly ulid: string;
  /** The temporary directory the block is built in. */
  readonly tmpDir: string;
  #parent: string;
  #options: BlockWriterOptions;
  #chunks: ChunkWriter;
  #pending: BufferedFileWriter;
  #enc = new Encbuf();
  #length = new Encbuf();
  #numSeries = 0;
  #lastLabels: Label[] | undefined;
  #symbols: SymbolSpill;
  #stats = { samples: 0, floats: 0, histograms: 0, chunks: 0 };
  #mint: bigint | undefined;
  #maxt: bigint | undefined;
  #done = false;

  private constructor(
    parent: string,
    ulid: string,
    options: BlockWriterOptions,
    chunks: ChunkWriter,
    pending: BufferedFileWriter,
  ) {
    this.#parent = parent;
    this.ulid = ulid;
    this.tmpDir = `${parent}/${ulid}.tmp-for-creation`;
    this.#options = options;
    this.#chunks = chunks;
    this.#pending = pending;
    this.#symbols = new SymbolSpill(`${this.tmpDir}/${_SPILL}`, {
      memoryBudget: options.symbolsMemoryBudget,
      fanIn: options.mergeFanIn,
      bufferSize: options.spillBufferSize,
    });
  }

  /** Starts a block in `<parentDir>/<ULID>.tmp-for-creation`. */
  static async create(parentDir: string, options: BlockWriterOptions = {}): Promise<BlockWriter> {
    const ulid = options.ulid ?? newUlid();
    const tmp = `${parentDir}/${ulid}.tmp-for-creation`;
    await Deno.mkdir(tmp, { recursive: false });
    try {
      const onChunkSegment = options.onChunkSegment;
      const chunks = await ChunkWriter.create(`${tmp}/chunks`, {
        segmentSize: options.segmentSize,
        temporary: options.temporary,
        onSegment: onChunkSegment &&
          ((name) =>
            onChunkSegment({ ulid, name: `chunks/${name}`, path: `${tmp}/chunks/${name}` })),
      });
      let pending: BufferedFileWriter;
      try {
        await Deno.mkdir(`${tmp}/${_SPILL}`);
        pending = await BufferedFileWriter.create(`${tmp}/${_PENDING}`, undefined, {
          temporary: true,
        });
      } catch (e) {
        chunks.abort();
        throw e;
      }
      return new BlockWriter(parentDir, ulid, options, chunks, pending);
    } catch (e) {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      throw e;
    }
  }

  /**
   * Adds a series with its chunks (in time order, each with its closed `[mint, maxt]`); writes
   * the chunks. Labels must be sorted by name and come after the previous series' labels.
   */
  async addSeries(
    labels: readonly Label[],
    chunks: readonly (RawChunk & { mint: bigint; maxt: bigint })[],
  ): Promise<void> {
    if (this.#done) throw new Error("BlockWriter already committed or aborted");
    const last = this.#lastLabels;
    if (last && compareLabels(labels, last) <= 0) {
      throw new Error("BlockWriter: series must be added in label order, without duplicates");
    }
    if (chunks.length === 0) return;
    const metas: ChunkMeta[] = [];
    for (const c of chunks) {
      const n = chunkNumSamples(c.encoding, c.data);
      // Nearly every chunk goes into the write buffer at once: no await (a microtask) for those.
      const ref = this.#chunks.tryWrite(c.encoding, c.data, c.crc) ??
        await this.#chunks.write(c.encoding, c.data, c.crc);
      metas.push({ mint: c.mint, maxt: c.maxt, ref });
      this.#stats.samples += n;
      this.#stats.chunks++;
      if (c.encoding === Encoding.xor || c.encoding === Encoding.xor2) this.#stats.floats += n;
      else this.#stats.histograms += n;
      if (this.#mint === undefined || c.mint < this.#mint) this.#mint = c.mint;
      if (this.#maxt === undefined || c.maxt > this.#maxt) this.#maxt = c.maxt;
    }
    this.#lastLabels = labels.map((l) => ({ name: l.name, value: l.value }));
    this.#numSeries++;
    const e = this.#enc;
    e.reset();
    const symbols = this.#symbols;
    e.uvarint(labels.length);
    for (const l of labels) e.uvarint(symbols.number(l.name)).uvarint(symbols.number(l.value));
    // As the index stores them: the commit copies them as they are.
    encodeChunkMetas(e, metas);
    const body = e.get();
    const length = this.#length;
    length.reset();
    length.uvarint(body.length).bytes(body);
    const record = length.get();
    // Nearly every record fits in the write buffer at once: no await (a microtask) for those.
    if (record.length <= this.#pending.room) this.#pending.writeBuffered(record);
    else await this.#pending.write(record);
    if (symbols.endSeries()) await symbols.spill();
  }

  /** Finishes the block: index, tombstones, meta.json, fsync, rename. */
  async commit(): Promise<WrittenBlock> {
    if (this.#done) throw new Error("BlockWriter already committed or aborted");
    this.#done = true;
    try {
      return await this.#commit();
    } catch (e) {
      this.#chunks.abort();
      this.#pending.abort();
      await Deno.remove(this.tmpDir, { recursive: true }).catch(() => {});
      throw e;
    }
  }

  async #commit(): Promise<WrittenBlock> {
    const o = this.#options;
    await this.#chunks.close();
    const minTime = o.minTime ?? this.#mint;
    const maxTime = o.maxTime ?? (this.#maxt === undefined ? undefined : this.#maxt + 1n);
    if (minTime === undefined || maxTime === undefined) {
      throw new Error("BlockWriter: no chunks, and no minTime/maxTime given");
    }
    if (maxTime <= minTime) {
      throw new Error(`BlockWriter: maxTime ${maxTime} <= minTime ${minTime}`);
    }
    if (
      (this.#mint !== undefined && this.#mint < minTime) ||
      (this.#maxt !== undefined && this.#maxt >= maxTime)
    ) {
      throw new Error(
        `BlockWriter: samples [${this.#mint}, ${this.#maxt}] outside [${minTime}, ${maxTime})`,
      );
    }

    await this.#pending.close();
    const spill = `${this.tmpDir}/${_SPILL}`;
    const index = await IndexWriter.createFromSortedSymbols(
      `${this.tmpDir}/index`,
      this.#symbols.merge(),
      {
        ...o.index,
        tmpDir: spill,
        postingsMemoryBudget: o.postingsMemoryBudget,
        mergeFanIn: o.mergeFanIn,
        spillBufferSize: o.spillBufferSize,
        temporary: o.temporary,
      },
    );
    try {
      const pending = await SequentialReader.open(
        `${this.tmpDir}/${_PENDING}`,
        o.spillBufferSize ?? 64 * 1024,
      );
      try {
        const scratch = { refs: new Uint32Array(64) };
        for await (const run of this.#symbols.runs()) {
          for (let i = 0; i < run.series; i++) {
            const s = await _readPending(pending, run.refs, scratch);
            await index.addSeriesEncoded(s.refs, s.chunkMetas);
          }
        }
        if (!pending.done) throw new FormatError(`${_PENDING}: more series than were added`);
      } finally {
        pending.close();
      }
      await index.close();
    } catch (e) {
      await index.abort();
      throw e;
    }
    await Deno.remove(`${this.tmpDir}/${_PENDING}`);
    await Deno.remove(spill, { recursive: true });
    const stones = o.tombstones ?? new Map();
    await writeTombstones(this.tmpDir, stones, o.temporary);

    const stats: WrittenBlockStats = {
      numSamples: this.#stats.samples,
      numFloatSamples: this.#stats.floats,
      numHistogramSamples: this.#stats.histograms,
      numSeries: this.#numSeries,
      numChunks: this.#stats.chunks,
      numTombstones: countTombstones(stones),
    };
    const meta = formatMetaJson({
      ulid: this.ulid,
      minTime,
      maxTime,
      stats,
      level: o.level ?? 1,
      sources: o.sources ?? [this.ulid],
      parents: o.parents ?? [],
      hints: o.hints ?? [],
    });
    const synced = !o.temporary;
    await _writeFile(`${this.tmpDir}/meta.json.tmp`, new TextEncoder().encode(meta), synced);
    await Deno.rename(`${this.tmpDir}/meta.json.tmp`, `${this.tmpDir}/meta.json`);
    if (synced) await _syncDir(this.tmpDir);
    const dir = `${this.#parent}/${this.ulid}`;
    await Deno.rename(this.tmpDir, dir);
    if (synced) await _syncDir(this.#parent);
    return { ulid: this.ulid, dir, minTime, maxTime, stats };
  }

  /** Drops the unfinished block. */
  async abort(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    this.#chunks.abort();
    this.#pending.abort();
    await Deno.remove(this.tmpDir, { recursive: true }).catch(() => {});
  }
}

/**
 * Reads the next series {@link BlockWriter.addSeries} wrote to the pending file, its labels'
 * numbers mapped to symbol references by `refs`, into `scratch.refs` (reused by the next call).
 */
async function _readPending(
  r: SequentialReader,
  refs: Uint32Array,
  scratch: { refs: Uint32Array },
): Promise<{ refs: Uint32Array; chunkMetas: Uint8Array }> {
  if (r.available < 10) await r.fill(10);
  const len = r.uvarint();
  if (r.available < len) await r.fill(len);
  const d = new Decbuf(r.take(len));
  const n = d.uvarint();
  if (scratch.refs.length < 2 * n) scratch.refs = new Uint32Array(2 * n);
  const out = scratch.refs.subarray(0, 2 * n);
  for (let i = 0; i < 2 * n; i++) {
    const number = d.uvarint();
    if (number >= refs.length) throw new FormatError(`${_PENDING}: bad label number ${number}`);
    out[i] = refs[number];
  }
  // The rest is the chunk metas as the index stores them (encodeChunkMetas).
  return { refs: out, chunkMetas: d.take(d.remaining) };
}

/** Everything {@link formatMetaJson} writes. */
export interface MetaJsonFields {
  /** ULID. */
  ulid: string;
  /** minTime. */
  minTime: bigint;
  /** maxTime (exclusive). */
  maxTime: bigint;
  /** Statistics; zero counts are omitted as Go's `omitempty` does. */
  stats: Partial<WrittenBlockStats>;
  /** Compaction level. */
  level: number;
  /** Source ULIDs. */
  sources: string[];
  /** Parents. */
  parents?: BlockDesc[];
  /** Hints. */
  hints?: string[];
}

/**
 * meta.json text exactly as Go's `json.MarshalIndent(meta, "", "\t")` writes it: field order of
 * the Go structs, zero stats and empty lists omitted, `version` 1.
 */
export function formatMetaJson(m: MetaJsonFields): string {
  const big = (v: bigint) => `\u0000${v}\u0000`; // JSON.stringify cannot write bigint
  const stats: Record<string, string> = {};
  for (
    const k of [
      "numSamples",
      "numFloatSamples",
      "numHistogramSamples",
      "numSeries",
      "numChunks",
      "numTombstones",
    ] as const
  ) {
    const v = m.stats[k];
    if (v) stats[k] = big(BigInt(v));
  }
  const compaction: Record<string, unknown> = { level: m.level };
  if (m.sources.length > 0) compaction.sources = m.sources;
  if (m.parents && m.parents.length > 0) {
    compaction.parents = m.parents.map((p) => ({
      ulid: p.ulid,
      minTime: big(p.minTime),
      maxTime: big(p.maxTime),
    }));
  }
  if (m.hints && m.hints.length > 0) compaction.hints = m.hints;
  const obj = {
    ulid: m.ulid,
    minTime: big(m.minTime),
    maxTime: big(m.maxTime),
    stats,
    compaction,
    version: 1,
  };
  return JSON.stringify(obj, null, "\t").replace(/"\\u0000(-?\d+)\\u0000"/g, "$1");
}

async function _writeFile(path: string, bytes: Uint8Array, synced: boolean): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    let done = 0;
    while (done < bytes.length) done += await f.write(bytes.subarray(done));
    if (synced) await f.sync();
  } finally {
    f.close();
  }
}

// fsync of a directory makes renames in it durable; not every platform allows it.
async function _syncDir(dir: string): Promise<void> {
  try {
    const f = await Deno.open(dir, { read: true });
    try {
      await f.sync();
    } finally {
      f.close();
    }
  } catch { /* best effort */ }
}
