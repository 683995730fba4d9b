/**
 * Reading and writing whole TSDB blocks: `<ULID>/meta.json`, `index`, `chunks/`, `tombstones`.
 *
 * {@link BlockReader} iterates a block's series with their chunks, streaming the index and reading
 * chunks through a bounded window. {@link BlockWriter} builds a block in
 * `<ULID>.tmp-for-creation`, writes the chunks as series arrive (series must come in label
 * order), then the index, tombstones and meta.json (tab-indented, as Go writes it), fsyncs and
 * renames the directory into place, as Prometheus does.
 *
 * @module
 */

import { chunkNumSamples, Encoding } from "./chunkenc/mod.ts";
import { ChunkReader, ChunkWriter, type RawChunk } from "./chunks.ts";
import {
  type ChunkMeta,
  compareLabels,
  IndexReader,
  type IndexReaderOptions,
  IndexWriter,
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

  /** Opens a block: parses meta.json and tombstones, opens the index and chunk segments. */
  static async open(dir: string, options: BlockReaderOptions = {}): Promise<BlockReader> {
    const meta = parseBlockMeta(await Deno.readTextFile(`${dir}/meta.json`));
    const tombstones = await readTombstones(dir);
    const index = await IndexReader.open(`${dir}/index`, options);
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

/**
 * Writes a new block. Add series in label order ({@link compareLabels}); their chunks are
 * written to the segment files at once, labels and chunk metas to a temporary file from which
 * {@link BlockWriter.commit} writes the index (its symbol table, which comes first, needs every
 * series' labels). Memory holds only the distinct label strings and, while the index is written,
 * the postings. Series without chunks are left out, as Prometheus does.
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
  #symbols = new Set<string>();
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
  }

  /** Starts a block in `<parentDir>/<ULID>.tmp-for-creation`. */
  static async create(parentDir: string, options: BlockWriterOptions = {}): Promise<BlockWriter> {
    const ulid = options.ulid ?? newUlid();
    const tmp = `${parentDir}/${ulid}.tmp-for-creation`;
    await Deno.mkdir(tmp, { recursive: false });
    try {
      const chunks = await ChunkWriter.create(`${tmp}/chunks`, {
        segmentSize: options.segmentSize,
      });
      let pending: BufferedFileWriter;
      try {
        pending = await BufferedFileWriter.create(`${tmp}/${_PENDING}`);
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
    e.uvarint(labels.length);
    for (const l of labels) {
      this.#symbols.add(l.name);
      this.#symbols.add(l.value);
      e.uvarintString(l.name).uvarintString(l.value);
    }
    e.uvarint(metas.length);
    for (const m of metas) e.varint(m.mint).varint(m.maxt).uvarint(m.ref);
    const body = e.get();
    this.#length.reset();
    await this.#pending.write(this.#length.uvarint(body.length).get());
    await this.#pending.write(body);
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
    const index = await IndexWriter.create(`${this.tmpDir}/index`, this.#symbols);
    this.#symbols.clear();
    try {
      for await (const s of _readPending(`${this.tmpDir}/${_PENDING}`)) {
        await index.addSeries(s.labels, s.chunks);
      }
      await index.close();
    } catch (e) {
      index.abort();
      throw e;
    }
    await Deno.remove(`${this.tmpDir}/${_PENDING}`);
    const stones = o.tombstones ?? new Map();
    await writeTombstones(this.tmpDir, stones);

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
    await _writeFileSynced(`${this.tmpDir}/meta.json.tmp`, new TextEncoder().encode(meta));
    await Deno.rename(`${this.tmpDir}/meta.json.tmp`, `${this.tmpDir}/meta.json`);
    await _syncDir(this.tmpDir);
    const dir = `${this.#parent}/${this.ulid}`;
    await Deno.rename(this.tmpDir, dir);
    await _syncDir(this.#parent);
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

/** Reads back the series {@link BlockWriter.addSeries} wrote to the pending file, in order. */
async function* _readPending(
  path: string,
): AsyncGenerator<{ labels: Label[]; chunks: ChunkMeta[] }> {
  using file = await Deno.open(path, { read: true });
  let buf = new Uint8Array(1 << 20);
  let start = 0;
  let end = 0;
  for (;;) {
    // A record: uvarint length, then the body; refill when it is not whole in the buffer.
    let d = new Decbuf(buf.subarray(start, end));
    let len = -1;
    try {
      len = d.uvarint();
    } catch { /* the length itself is cut off */ }
    if (len < 0 || d.offset + len > end - start) {
      const need = len < 0 ? 10 : d.offset + len;
      if (need > buf.length) {
        const bigger = new Uint8Array(need * 2);
        bigger.set(buf.subarray(start, end));
        buf = bigger;
      } else {
        buf.copyWithin(0, start, end);
      }
      end -= start;
      start = 0;
      const n = await file.read(buf.subarray(end));
      if (n === null) {
        if (end === 0) return;
        throw new FormatError(`${path}: truncated`);
      }
      end += n;
      continue;
    }
    start += d.offset;
    d = new Decbuf(buf.subarray(start, start + len));
    start += len;
    const labels: Label[] = [];
    for (let n = d.uvarint(); n > 0; n--) {
      labels.push({ name: d.uvarintString(), value: d.uvarintString() });
    }
    const chunks: ChunkMeta[] = [];
    for (let n = d.uvarint(); n > 0; n--) {
      chunks.push({ mint: d.varint64(), maxt: d.varint64(), ref: d.uvarint64() });
    }
    yield { labels, chunks };
  }
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

async function _writeFileSynced(path: string, bytes: Uint8Array): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    let done = 0;
    while (done < bytes.length) done += await f.write(bytes.subarray(done));
    await f.sync();
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
