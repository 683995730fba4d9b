/**
 * The head's WAL split into shards: every series record, sample and tombstone goes to one of N
 * shard files, chosen by a hash of the series' labels, so that each shard can be replayed alone
 * (see `head.ts`). All refs of one label set land in the same shard, so Prometheus' rules that
 * span refs (a later ref for the same labels joins the first one) hold within a shard.
 *
 * A shard file is a stream of entries in WAL order: the series (ref and labels key), the float
 * samples (ref and timestamp as zig-zag deltas to the previous entry's, the value's 64 raw bits),
 * timestamps only of samples outside the window (they still advance the series), out-of-order
 * samples, histograms and tombstones. After them may come a second section: the head's
 * memory-mapped chunks (`chunks_head/`) of the shard's series, ref, time range, encoding and bytes
 * each; the replay reads it first ({@link ShardFile.headChunksAt}). A shard that turns out to hold
 * too many series is split again by {@link readShardFile} into a {@link HeadPartitioner} with a
 * new hash seed, its two sections one after the other.
 *
 * Memory: one write buffer per shard (`bufferSize`, default 32 KiB, and 4 MiB of spare ones),
 * full buffers until the caller flushes them (the head replay does when they reach
 * `splitFlushBytes`, even inside a record), and the ref-to-shard map, one byte per ref in pages
 * of 4096 refs that hold at least one series (Prometheus hands refs out in order, so that is
 * about one byte a series). Nothing else is kept per series.
 *
 * @module
 */

import { turnEventLoop } from "./_io.ts";
import { Decbuf, Encbuf, FormatError } from "./encoding.ts";
import { SampleBatch } from "./sample_batch.ts";
import {
  CUSTOM_BUCKETS_SCHEMA,
  decodeWalHistogram,
  type FloatHistogram,
  type Histogram,
} from "./record.ts";

/** What a float sample entry is. */
export const SampleEntry = {
  /** An in-order sample inside the window. */
  float: 2,
  /** An in-order sample outside the window: its timestamp still advances the series. */
  advance: 3,
  /** An out-of-order sample (from the WBL) inside the window. */
  outOfOrder: 4,
} as const;

/** One of {@link SampleEntry}. */
export type SampleEntryKind = (typeof SampleEntry)[keyof typeof SampleEntry];

const _SERIES = 1;
const _BASE = 5;
const _HISTOGRAM = 6;
const _TOMBSTONE = 7;
const _HEAD_CHUNK = 8;
// Flags of a histogram entry.
const _FLOAT_HISTOGRAM = 1;
const _OUT_OF_ORDER = 2;

/**
 * Most bytes of written buffers a partitioner keeps for reuse: as many as the head replay lets
 * wait before it writes them (its default `splitFlushBytes`), so that in the steady state no
 * buffer is allocated. Those it dropped would be garbage outside V8's heap, which it frees late.
 */
const _MAX_SPARE_BYTES = 4 * 1024 * 1024;
/** Most bytes a fixed-size entry takes (a base entry and a float sample). */
const _MAX_FIXED_ENTRY = 64;
/** Deltas beyond this go through a base entry, so zig-zag varints stay 32-bit. */
const _MAX_DELTA = 2 ** 30;

/** Receives a head's entries in WAL order (a partitioner, or a shard's replay). */
export interface HeadEntrySink {
  /** A series record: `key` is the label set as `labelsKey` writes it. */
  series(ref: number, key: string): void;
  /**
   * Float samples (or only their timestamps, for {@link SampleEntry.advance}), kinds from
   * {@link SampleEntry}; the batch is reused once this returns.
   */
  samples(batch: SampleBatch): void;
  /**
   * A histogram sample; `outOfOrder` for one from the WBL. `h` is decoded for this call: the sink
   * may keep it, and change it.
   */
  histogram(
    ref: number,
    t: number,
    h: Histogram | FloatHistogram,
    float: boolean,
    outOfOrder: boolean,
  ): void;
  /** A tombstone record's interval for one ref. */
  tombstone(ref: number, mint: bigint, maxt: bigint): void;
  /**
   * A memory-mapped head chunk of `ref` (`chunks_head/`), its data valid for this call only. They
   * come after all other entries, in the order of the head chunk files.
   */
  headChunk(ref: number, mint: number, maxt: number, encoding: number, data: Uint8Array): void;
}

/** A written shard file. */
export interface ShardFile {
  /** Path of the file. */
  path: string;
  /** Series entries in it (an upper bound of its distinct series). */
  series: number;
  /** How many times its entries were partitioned (1 for a shard of the WAL itself). */
  level: number;
  /** Byte offset of the section of head chunks, which runs to the end; absent when none. */
  headChunksAt?: number;
}

/** Options of {@link HeadPartitioner.create}. */
export interface HeadPartitionerOptions {
  /** Number of shard files (1 to 255). */
  shards: number;
  /** Bytes of each shard's write buffer (default 32 KiB). */
  bufferSize?: number;
}

/**
 * Writes entries to shard files by a hash of their series' labels. Call {@link
 * HeadPartitioner.flush} now and then (after each WAL record), then {@link HeadPartitioner.finish}.
 */
export class HeadPartitioner implements HeadEntrySink {
  #writers: _ShardWriter[];
  #refs = new RefShards();
  #level: number;
  #series: number[];

  private constructor(writers: _ShardWriter[], level: number) {
    this.#writers = writers;
    this.#level = level;
    this.#series = writers.map(() => 0);
  }

  /**
   * Creates the shard files `<prefix>-<i>` (which must not exist). `level` seeds the hash: a
   * shard split again must use a level above its own, or every entry lands in one shard.
   */
  static async create(
    prefix: string,
    level: number,
    options: HeadPartitionerOptions,
  ): Promise<HeadPartitioner> {
    const n = options.shards;
    if (!(Number.isInteger(n) && n >= 1 && n <= 255)) {
      throw new RangeError(`shards must be 1 to 255, not ${n}`);
    }
    const writers: _ShardWriter[] = [];
    const spare: ArrayBuffer[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const size = options.bufferSize ?? 32 * 1024;
        writers.push(await _ShardWriter.create(`${prefix}-${i}`, size, spare));
      }
    } catch (e) {
      for (const w of writers) await w.abort();
      throw e;
    }
    return new HeadPartitioner(writers, level);
  }

  /** Whether a series record named `ref`. */
  has(ref: number): boolean {
    return this.#refs.get(ref) >= 0;
  }

  series(ref: number, key: string): void {
    const shard = shardOf(key, this.#level, this.#writers.length);
    this.#refs.set(ref, shard);
    this.#series[shard]++;
    this.#writers[shard].series(ref, key);
  }

  samples(batch: SampleBatch): void {
    const writers = this.#writers;
    const refs = batch.ref;
    for (let i = 0; i < batch.length; i++) writers[this.#shard(refs[i])].sampleAt(batch, i);
  }

  histogram(
    ref: number,
    t: number,
    h: Histogram | FloatHistogram,
    float: boolean,
    outOfOrder: boolean,
  ): void {
    this.#writers[this.#shard(ref)].histogram(ref, t, h, float, outOfOrder);
  }

  /**
   * A histogram sample given as the bytes WAL histogram records store it in (`walHistogramEnd`
   * finds their end): copied as they are, nothing decoded. The shard files store that layout.
   */
  histogramBytes(
    ref: number,
    t: number,
    bytes: Uint8Array,
    float: boolean,
    outOfOrder: boolean,
  ): void {
    this.#writers[this.#shard(ref)].histogramBytes(ref, t, bytes, float, outOfOrder);
  }

  tombstone(ref: number, mint: bigint, maxt: bigint): void {
    this.#writers[this.#shard(ref)].tombstone(ref, mint, maxt);
  }

  /** A head chunk of `ref` (a ref a series record named): after every other entry. */
  headChunk(ref: number, mint: number, maxt: number, encoding: number, data: Uint8Array): void {
    this.#writers[this.#shard(ref)].headChunk(ref, mint, maxt, encoding, data);
  }

  #shard(ref: number): number {
    const shard = this.#refs.get(ref);
    if (shard < 0) throw new Error(`head shard entry for ref ${ref} before its series`);
    return shard;
  }

  /** Bytes of full buffers waiting for {@link HeadPartitioner.flush}. */
  get waitingBytes(): number {
    let n = 0;
    for (const w of this.#writers) n += w.waitingBytes;
    return n;
  }

  /** Writes what waits in memory to the files (synchronously: they go to the page cache). */
  flush(): void {
    for (const w of this.#writers) w.flush();
  }

  /** Closes the files; returns those that hold entries (the empty ones are removed). */
  async finish(): Promise<ShardFile[]> {
    const out: ShardFile[] = [];
    for (let i = 0; i < this.#writers.length; i++) {
      const w = this.#writers[i];
      const headChunksAt = w.headChunksAt;
      if (await w.close()) {
        const shard: ShardFile = { path: w.path, series: this.#series[i], level: this.#level + 1 };
        if (headChunksAt >= 0) shard.headChunksAt = headChunksAt;
        out.push(shard);
      }
    }
    return out;
  }

  /** Closes and removes the files (after an error). */
  async abort(): Promise<void> {
    for (const w of this.#writers) await w.abort();
  }
}

/** The shard (of `shards`) of a labels key at a split level: a seeded 32-bit hash. */
export function shardOf(key: string, level: number, shards: number): number {
  // FNV-1a over the UTF-16 code units, seeded by the level, then murmur3's finalizer to spread
  // the bits (labels keys differ mostly in their last characters).
  let h = (0x811c9dc5 ^ Math.imul(level + 1, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % shards;
}

/**
 * Values per series ref in pages of 4096 refs, allocated when a ref in them is set (Prometheus
 * hands refs out in order, so the pages are about as many as the series / 4096). `page` keeps the
 * last page it looked up: nearly every lookup is in it. The owners index the page themselves: a
 * shared element load would see both Uint8 and Float64 pages, and a polymorphic load costs more
 * than the rest of a WAL sample's split (seconds over a 2 GiB WAL).
 */
class _RefPages<P extends Uint8Array | Float64Array> {
  #pages = new Map<number, P>();
  #lastIndex = -1;
  #lastPage: P | undefined;
  #page: () => P;

  /** `page` makes a new page. */
  constructor(page: () => P) {
    this.#page = page;
  }

  /** The page that holds `ref` at `_slot(ref)`, undefined when no ref in it was set. */
  find(ref: number): P | undefined {
    const index = Math.floor(ref / 4096);
    if (index === this.#lastIndex) return this.#lastPage;
    const page = this.#pages.get(index);
    if (page) {
      this.#lastIndex = index;
      this.#lastPage = page;
    }
    return page;
  }

  /** The page that holds `ref`, made when missing. */
  make(ref: number): P {
    const index = Math.floor(ref / 4096);
    let page = this.#pages.get(index);
    if (!page) this.#pages.set(index, page = this.#page());
    return page;
  }
}

/** Where `ref` sits in its page (refs are safe integers, beyond `%`'s fast int32 path). */
function _slot(ref: number): number {
  return ref - Math.floor(ref / 4096) * 4096;
}

/**
 * Series refs to shard numbers: one byte per ref (a Map of every ref would cost ~50 bytes a
 * series).
 */
export class RefShards {
  #pages = new _RefPages(() => new Uint8Array(4096));

  /** The shard of `ref`, or -1. */
  get(ref: number): number {
    const page = this.#pages.find(ref);
    return page === undefined ? -1 : page[_slot(ref)] - 1;
  }

  /** Sets the shard (0 to 254) of `ref`. */
  set(ref: number, shard: number): void {
    this.#pages.make(ref)[_slot(ref)] = shard + 1;
  }
}

/**
 * Series refs to the end of their head chunks (ms; -Infinity for none, NaN for a ref whose head
 * chunks are not used): 8 bytes per ref.
 */
export class RefTimes {
  #pages = new _RefPages(() => new Float64Array(4096).fill(-Infinity));

  /** The time of `ref`, -Infinity when none was set. */
  get(ref: number): number {
    const page = this.#pages.find(ref);
    return page === undefined ? -Infinity : page[_slot(ref)];
  }

  /** Sets the time of `ref`. */
  set(ref: number, t: number): void {
    this.#pages.make(ref)[_slot(ref)] = t;
  }
}

/** A file of head chunk entries alone, in the shard files' format ({@link readShardFile}). */
export class HeadChunkFile {
  #writer: _ShardWriter;

  private constructor(writer: _ShardWriter) {
    this.#writer = writer;
  }

  /** Creates the file `path` (which must not exist), written through a buffer of `bufferSize`. */
  static async create(path: string, bufferSize = 32 * 1024): Promise<HeadChunkFile> {
    return new HeadChunkFile(await _ShardWriter.create(path, bufferSize, []));
  }

  /** Appends a chunk (its data is copied). */
  add(ref: number, mint: number, maxt: number, encoding: number, data: Uint8Array): void {
    this.#writer.headChunk(ref, mint, maxt, encoding, data);
  }

  /** Bytes of full buffers waiting for {@link HeadChunkFile.flush}. */
  get waitingBytes(): number {
    return this.#writer.waitingBytes;
  }

  /** Writes what waits in memory to the file. */
  flush(): void {
    this.#writer.flush();
  }

  /** Closes the file: true when it holds entries, else it is removed. */
  close(): Promise<boolean> {
    return this.#writer.close();
  }

  /** Closes and removes the file. */
  abort(): Promise<void> {
    return this.#writer.abort();
  }
}

const _utf8 = new TextEncoder();
const _utf8Decoder = new TextDecoder();

/** Writes one shard file's entries, buffered. */
class _ShardWriter {
  readonly path: string;
  #file: Deno.FsFile | null;
  #size: number;
  #buf: Uint8Array;
  #view: DataView;
  #at = 0;
  #waiting: Uint8Array[] = [];
  /** Bytes in `#waiting`. */
  waitingBytes = 0;
  // Written buffers of all the partitioner's writers, reused for the next ones (fewer
  // allocations, less for the GC to find).
  #spare: ArrayBuffer[];
  #written = 0;
  #prevRef = 0;
  #prevT = 0;
  #enc = new Encbuf();
  #head = _headBytes;
  /** Where the head chunk section starts (-1 while there is none: other entries may follow). */
  headChunksAt = -1;

  private constructor(path: string, file: Deno.FsFile, size: number, spare: ArrayBuffer[]) {
    this.path = path;
    this.#spare = spare;
    this.#file = file;
    this.#size = size;
    this.#buf = new Uint8Array(size);
    this.#view = new DataView(this.#buf.buffer);
  }

  static async create(path: string, size: number, spare: ArrayBuffer[]): Promise<_ShardWriter> {
    const file = await Deno.open(path, { write: true, createNew: true });
    return new _ShardWriter(path, file, size, spare);
  }

  // Room for `n` more bytes: a full buffer waits for the next flush, a new one takes its place.
  #room(n: number): void {
    if (this.#at + n <= this.#buf.length) return;
    if (this.#at > 0) {
      this.#waiting.push(this.#buf.subarray(0, this.#at));
      this.waitingBytes += this.#at;
    }
    const spare = n <= this.#size ? this.#spare.pop() : undefined;
    this.#buf = spare ? new Uint8Array(spare) : new Uint8Array(Math.max(this.#size, n));
    this.#view = new DataView(this.#buf.buffer);
    this.#at = 0;
  }

  series(ref: number, key: string): void {
    this.#notAfterHeadChunks();
    const bytes = _utf8.encode(key);
    this.#room(1 + 5 + 8 + bytes.length);
    this.#buf[this.#at++] = _SERIES;
    this.#at = _putUvarint32(this.#buf, this.#at, 8 + bytes.length);
    this.#view.setFloat64(this.#at, ref);
    this.#buf.set(bytes, this.#at + 8);
    this.#at += 8 + bytes.length;
  }

  /** Writes entry `i` of the batch (read from its arrays: nothing is boxed per sample). */
  sampleAt(batch: SampleBatch, i: number): void {
    this.#notAfterHeadChunks();
    this.#room(_MAX_FIXED_ENTRY);
    const kind = batch.kind[i];
    const ref = batch.ref[i];
    const t = batch.t[i];
    let dref = ref - this.#prevRef;
    let dt = t - this.#prevT;
    const buf = this.#buf;
    let at = this.#at;
    if (!(Math.abs(dref) < _MAX_DELTA && Math.abs(dt) < _MAX_DELTA)) {
      // A base entry; the deltas after it are zero.
      buf[at] = _BASE;
      this.#view.setFloat64(at + 1, ref);
      this.#view.setFloat64(at + 9, t);
      at += 17;
      dref = dt = 0;
    }
    buf[at++] = kind;
    at = _putUvarint32(buf, at, dref >= 0 ? 2 * dref : -2 * dref - 1);
    at = _putUvarint32(buf, at, dt >= 0 ? 2 * dt : -2 * dt - 1);
    this.#prevRef = ref;
    this.#prevT = t;
    if (kind !== SampleEntry.advance) {
      this.#view.setInt32(at, batch.vh[i]);
      this.#view.setInt32(at + 4, batch.vl[i]);
      at += 8;
    }
    this.#at = at;
  }

  histogram(
    ref: number,
    t: number,
    h: Histogram | FloatHistogram,
    float: boolean,
    outOfOrder: boolean,
  ): void {
    const e = this.#enc;
    e.reset();
    _putHistogram(e, h, float);
    this.histogramBytes(ref, t, e.get(), float, outOfOrder);
  }

  histogramBytes(
    ref: number,
    t: number,
    bytes: Uint8Array,
    float: boolean,
    outOfOrder: boolean,
  ): void {
    this.#notAfterHeadChunks();
    // The entry's head: flags, ref (BE64, as a double's integer), the time as a zig-zag varint.
    const head = this.#head;
    head[0] = (float ? _FLOAT_HISTOGRAM : 0) | (outOfOrder ? _OUT_OF_ORDER : 0);
    _headView.setBigUint64(1, BigInt(ref));
    const headLength = _putVarint(head, 9, t);
    const length = headLength + bytes.length;
    this.#room(1 + 5 + length);
    const buf = this.#buf;
    buf[this.#at++] = _HISTOGRAM;
    this.#at = _putUvarint32(buf, this.#at, length);
    buf.set(head.subarray(0, headLength), this.#at);
    buf.set(bytes, this.#at + headLength);
    this.#at += length;
  }

  tombstone(ref: number, mint: bigint, maxt: bigint): void {
    this.#notAfterHeadChunks();
    this.#room(_MAX_FIXED_ENTRY);
    this.#buf[this.#at] = _TOMBSTONE;
    this.#view.setFloat64(this.#at + 1, ref);
    this.#view.setBigInt64(this.#at + 9, mint);
    this.#view.setBigInt64(this.#at + 17, maxt);
    this.#at += 25;
  }

  headChunk(ref: number, mint: number, maxt: number, encoding: number, data: Uint8Array): void {
    if (this.headChunksAt < 0) this.headChunksAt = this.#written + this.waitingBytes + this.#at;
    const length = 25 + data.length;
    this.#room(1 + 5 + length);
    const buf = this.#buf;
    const view = this.#view;
    buf[this.#at++] = _HEAD_CHUNK;
    let at = _putUvarint32(buf, this.#at, length);
    view.setFloat64(at, ref);
    view.setFloat64(at + 8, mint);
    view.setFloat64(at + 16, maxt);
    buf[at + 24] = encoding;
    buf.set(data, at + 25);
    at += length;
    this.#at = at;
  }

  // The head chunk section ends the file: the replay reads it apart from the entries before it.
  #notAfterHeadChunks(): void {
    if (this.headChunksAt >= 0) throw new Error("head shard: an entry after the head chunks");
  }

  flush(): void {
    const waiting = this.#waiting;
    if (waiting.length === 0) return;
    this.#waiting = [];
    this.waitingBytes = 0;
    for (const bytes of waiting) {
      this.#writeAll(bytes);
      if (
        bytes.buffer.byteLength === this.#size &&
        (this.#spare.length + 1) * this.#size <= _MAX_SPARE_BYTES
      ) {
        this.#spare.push(bytes.buffer as ArrayBuffer);
      }
    }
  }

  #writeAll(bytes: Uint8Array): void {
    let done = 0;
    // Synchronous, as the reads (see readShardFile): into the page cache, without an idle wait.
    while (done < bytes.length) done += this.#file!.writeSync(bytes.subarray(done));
    this.#written += bytes.length;
  }

  /** Closes the file: true when it holds entries, else it is removed. */
  async close(): Promise<boolean> {
    this.flush();
    if (this.#at > 0) this.#writeAll(this.#buf.subarray(0, this.#at));
    this.#file?.close();
    this.#file = null;
    if (this.#written > 0) return true;
    await Deno.remove(this.path);
    return false;
  }

  async abort(): Promise<void> {
    try {
      this.#file?.close();
    } catch { /* already closed */ }
    this.#file = null;
    await Deno.remove(this.path).catch(() => {});
  }
}

/** Options of {@link readShardFile}. */
export interface ReadShardOptions {
  /** Bytes read at once (default 256 KiB, at least 64; the buffer grows for a larger entry). */
  bufferSize?: number;
  /** Awaited after every block read (e.g. to flush a partitioner's files). */
  afterBlock?: () => void | Promise<void>;
  /** Stops the reading when aborted. */
  signal?: AbortSignal;
  /** Float samples handed to the sink at once (default 4096). */
  batchSize?: number;
  /** Byte offset to start at (default 0), at an entry's start. */
  start?: number;
  /** Byte offset to end at (default the file's end), at an entry's end. */
  end?: number;
}

/** Reads a shard file's entries into `sink`, in the order they were written. */
export async function readShardFile(
  path: string,
  sink: HeadEntrySink,
  options: ReadShardOptions = {},
): Promise<void> {
  const bufferSize = options.bufferSize ?? 256 * 1024;
  // A smaller one could never hold a whole fixed-size entry and its read would be empty.
  if (!(bufferSize >= _MAX_FIXED_ENTRY)) {
    throw new RangeError(`bufferSize must be at least ${_MAX_FIXED_ENTRY}, not ${bufferSize}`);
  }
  // Opened and read with blocking calls: a file just written (page cache), one of hundreds.
  using file = Deno.openSync(path, { read: true });
  const first = options.start ?? 0;
  if (first > 0) file.seekSync(first, Deno.SeekMode.Start);
  // Bytes of the range not read yet.
  let left = options.end === undefined ? Infinity : options.end - first;
  let buf = new Uint8Array(bufferSize);
  let view = new DataView(buf.buffer);
  let start = 0;
  let end = 0;
  let eof = false;
  // The previous entry's ref and time, which the next one's deltas are to.
  const prev = new Float64Array(2);
  const batch = new SampleBatch(options.batchSize ?? 4096);
  let reads = 0;
  // Hands the batched samples on: when full, before any other entry (order is kept) and before
  // each read.
  const deliver = () => {
    if (batch.length === 0) return;
    sink.samples(batch);
    batch.length = 0;
  };
  for (;;) {
    options.signal?.throwIfAborted();
    // Decode the whole entries in the buffer; a fixed-size one is whole when _MAX_FIXED_ENTRY
    // bytes (or the rest of the file) are there, a sized one when its length says so.
    let p = start;
    while (p < end && (eof || end - p >= _MAX_FIXED_ENTRY)) {
      const tag = buf[p];
      if (
        tag === SampleEntry.float || tag === SampleEntry.advance || tag === SampleEntry.outOfOrder
      ) {
        p = _decodeSamples(buf, view, p, eof ? end : end - _MAX_FIXED_ENTRY + 1, end, batch, prev);
        if (p < 0) throw new FormatError(`${path}: truncated at byte ${-p - 1}`);
        if (batch.length === batch.capacity) deliver();
      } else if (tag === _BASE) {
        if (p + 17 > end) throw new FormatError(`${path}: truncated at byte ${p}`);
        prev[0] = view.getFloat64(p + 1);
        prev[1] = view.getFloat64(p + 9);
        p += 17;
      } else if (tag === _TOMBSTONE) {
        if (p + 25 > end) throw new FormatError(`${path}: truncated at byte ${p}`);
        deliver();
        sink.tombstone(view.getFloat64(p + 1), view.getBigInt64(p + 9), view.getBigInt64(p + 17));
        p += 25;
      } else if (tag === _SERIES || tag === _HISTOGRAM || tag === _HEAD_CHUNK) {
        // The body's length: a uvarint of at most 5 bytes (a uint32), -1 when it runs past end.
        let len = 0;
        let q = p + 1;
        for (let shift = 0;; shift += 7) {
          if (q >= end) {
            len = -1;
            break;
          }
          const b = buf[q++];
          if (shift === 28 && b > 0x0f) throw new FormatError(`${path}: bad length at byte ${p}`);
          len += (b & 0x7f) * 2 ** shift;
          if (b < 0x80) break;
        }
        if (len < 0) {
          if (eof) throw new FormatError(`${path}: truncated at byte ${p}`);
          break;
        }
        const bodyAt = q;
        if (bodyAt + len > end) {
          if (eof) throw new FormatError(`${path}: truncated at byte ${p}`);
          // Not whole in the buffer: make room for it below.
          if (bodyAt + len - p > buf.length) {
            const bigger = new Uint8Array(bodyAt + len - p);
            bigger.set(buf.subarray(p, end));
            end -= p;
            start = p = 0;
            buf = bigger;
            view = new DataView(buf.buffer);
          }
          break;
        }
        const bodyEnd = bodyAt + len;
        deliver();
        if (tag === _SERIES) {
          if (len < 8) throw new FormatError(`${path}: short series entry at byte ${p}`);
          sink.series(
            view.getFloat64(bodyAt),
            _utf8Decoder.decode(buf.subarray(bodyAt + 8, bodyEnd)),
          );
        } else if (tag === _HEAD_CHUNK) {
          if (len < 25) throw new FormatError(`${path}: short head chunk entry at byte ${p}`);
          const ref = view.getFloat64(bodyAt);
          const mint = view.getFloat64(bodyAt + 8);
          const maxt = view.getFloat64(bodyAt + 16);
          sink.headChunk(ref, mint, maxt, buf[bodyAt + 24], buf.subarray(bodyAt + 25, bodyEnd));
        } else {
          _readHistogramEntry(buf.subarray(bodyAt, bodyEnd), sink);
        }
        p = bodyAt + len;
      } else {
        throw new FormatError(`${path}: unknown entry ${tag} at byte ${p}`);
      }
    }
    start = p;
    deliver();
    if (eof) {
      if (start < end) throw new FormatError(`${path}: truncated at byte ${start}`);
      return;
    }
    buf.copyWithin(0, start, end);
    end -= start;
    start = 0;
    // Synchronous: the shard file was just written (page cache), and an await per read left the
    // thread idle for about a tenth of the replay.
    const n = left > 0
      ? file.readSync(buf.subarray(end, end + Math.min(buf.length - end, left)))
      : null;
    if (n === null) eof = true;
    else {
      end += n;
      left -= n;
    }
    // A turn of the event loop now and then: V8 finishes its garbage collection in tasks there.
    if (++reads % 8 === 0) await turnEventLoop();
    await options.afterBlock?.();
  }
}

/**
 * Decodes the float sample entries of `buf[p..end)` into `batch`: up to the next other entry, a
 * full batch, or an entry that starts at or after `stop` (those before it are whole, or the file
 * is truncated). `prev` holds the previous entry's ref and time and moves on. Returns the position
 * after the last entry decoded, or -1 - p for a truncated entry at p.
 *
 * Alone, with only typed arrays and numbers, so that V8 keeps its optimized code (nothing in it
 * depends on a hidden class) and its doubles unboxed. The deltas are zig-zag varints of at most 31
 * bits (larger ones go through a base entry), decoded with 32-bit integer operations.
 */
function _decodeSamples(
  buf: Uint8Array,
  view: DataView,
  p: number,
  stop: number,
  end: number,
  batch: SampleBatch,
  prev: Float64Array,
): number {
  const { kind: kinds, ref: refs, t: times, vh, vl } = batch;
  const capacity = times.length;
  let prevRef = prev[0];
  let prevT = prev[1];
  let i = batch.length;
  while (p < stop && i < capacity) {
    const tag = buf[p];
    if (
      tag !== SampleEntry.float && tag !== SampleEntry.advance && tag !== SampleEntry.outOfOrder
    ) {
      break;
    }
    let q = p + 1;
    let b = buf[q++];
    let u = b & 0x7f;
    for (let shift = 7; b >= 0x80; shift += 7) {
      b = buf[q++];
      u |= (b & 0x7f) << shift;
    }
    prevRef += (u >>> 1) ^ -(u & 1);
    b = buf[q++];
    u = b & 0x7f;
    for (let shift = 7; b >= 0x80; shift += 7) {
      b = buf[q++];
      u |= (b & 0x7f) << shift;
    }
    prevT += (u >>> 1) ^ -(u & 1);
    // Past the data's end (the varints read bytes of an earlier read, or none): cut short.
    const entryEnd = tag === SampleEntry.advance ? q : q + 8;
    if (entryEnd > end) return -1 - p;
    kinds[i] = tag;
    refs[i] = prevRef;
    times[i] = prevT;
    if (tag === SampleEntry.advance) {
      vh[i] = vl[i] = 0;
    } else {
      vh[i] = view.getInt32(q);
      vl[i] = view.getInt32(q + 4);
    }
    p = entryEnd;
    i++;
  }
  batch.length = i;
  prev[0] = prevRef;
  prev[1] = prevT;
  return p;
}

function _readHistogramEntry(body: Uint8Array, sink: HeadEntrySink): void {
  const d = new Decbuf(body);
  const flags = d.byte();
  const ref = Number(d.be64());
  const t = d.varint();
  const float = (flags & _FLOAT_HISTOGRAM) !== 0;
  sink.histogram(ref, t, decodeWalHistogram(d, float), float, (flags & _OUT_OF_ORDER) !== 0);
}

// A histogram as WAL records store it (read back by decodeWalHistogram): integer counts as
// varints, float ones as raw bits, custom bucket bounds only for the custom-buckets schema.
function _putHistogram(e: Encbuf, h: Histogram | FloatHistogram, float: boolean): void {
  e.byte(h.counterResetHint).varint(h.schema).be64(h.zeroThreshold);
  if (float) e.be64(h.zeroCount).be64(h.count);
  else e.uvarint(h.zeroCount).uvarint(h.count);
  e.be64(h.sum);
  for (const spans of [h.positiveSpans, h.negativeSpans]) {
    e.uvarint(spans.length);
    for (const s of spans) e.varint(s.offset).uvarint(s.length);
  }
  for (const buckets of [h.positiveBuckets, h.negativeBuckets]) {
    e.uvarint(buckets.length);
    for (const b of buckets) float ? e.be64(b) : e.varint(b);
  }
  if (h.schema !== CUSTOM_BUCKETS_SCHEMA) return;
  e.uvarint(h.customValues.length);
  for (const v of h.customValues) e.be64(v);
}

// The head of a histogram entry, built in place (one writer at a time writes).
const _headBytes = new Uint8Array(1 + 8 + 10);
const _headView = new DataView(_headBytes.buffer);

/** Go `binary.PutVarint` of a safe integer at `at`; returns the position after it. */
function _putVarint(buf: Uint8Array, at: number, v: number): number {
  // Zig-zag in doubles: exact for safe integers.
  let u = v >= 0 ? 2 * v : -2 * v - 1;
  let p = at;
  while (u >= 0x80) {
    buf[p++] = (u % 0x80) | 0x80;
    u = Math.floor(u / 0x80);
  }
  buf[p++] = u;
  return p;
}

/** Go `binary.PutUvarint` of a uint32. */
function _putUvarint32(buf: Uint8Array, at: number, v: number): number {
  let x = v >>> 0;
  let p = at;
  while (x >= 0x80) {
    buf[p++] = (x & 0x7f) | 0x80;
    x >>>= 7;
  }
  buf[p++] = x;
  return p;
}
