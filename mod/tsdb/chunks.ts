/**
 * A block's chunk segment files, `<block>/chunks/000001`, `000002`, … (`tsdb/chunks/chunks.go`).
 *
 * Each file: an 8-byte header (magic `0x85BD40DD`, version 1, 3 zero bytes), then chunks, each
 * `uvarint dataLen | encoding byte | data | CRC32C(encoding byte + data)`. A chunk reference is
 * `segIndex << 32 | offset`, where `segIndex` is the 0-based position of the file in the
 * name-sorted list of numeric file names (so `000001` is 0) and `offset` the position of the
 * chunk's length field.
 *
 * The reader never loads a whole segment: it reads through a bounded window with positioned
 * reads, which suits the usual access pattern (chunk references ascend in index order).
 *
 * @module
 */

import { BufferedFileWriter, FileLock, readAt } from "./_io.ts";
import { crc32c } from "./crc32c.ts";
import { FormatError } from "./encoding.ts";

/** Magic number at the start of every chunk segment file. */
export const MAGIC_CHUNKS = 0x85bd40dd;
/** Size of the segment header. */
export const SEGMENT_HEADER_SIZE = 8;
/** Prometheus' default maximum segment size (512 MiB). */
export const DEFAULT_CHUNK_SEGMENT_SIZE = 512 * 1024 * 1024;
// Go reserves binary.MaxVarintLen32 bytes for the length field when planning segment space.
const _MAX_LEN_FIELD = 5;

/** A chunk as stored: its encoding byte and data. */
export interface RawChunk {
  /** Encoding byte (1 XOR, 2 histogram, 3 float histogram, …). */
  encoding: number;
  /** The chunk data (for XOR: BE16 sample count and the bit stream). */
  data: Uint8Array;
  /**
   * The CRC32C of encoding byte and data as a segment file stores it, when the chunk was read
   * unchanged from one: a writer need not compute it again.
   */
  crc?: number;
}

/** Packs a segment index and offset into a chunk reference. */
export function chunkRef(segIndex: number, offset: number): bigint {
  return (BigInt(segIndex) << 32n) | BigInt(offset);
}

/** Splits a chunk reference into `[segIndex, offset]`. */
export function unpackChunkRef(ref: bigint): [number, number] {
  return [Number(BigInt.asUintN(64, ref) >> 32n), Number(ref & 0xffffffffn)];
}

interface _Segment {
  name: string;
  file: Deno.FsFile;
  size: number;
}

/** Options of {@link ChunkReader.open}. */
export interface ChunkReaderOptions {
  /** Bytes read at once and kept for the following chunks (default 256 KiB). */
  windowSize?: number;
}

/** Reads chunks of a block's `chunks/` directory by reference. */
export class ChunkReader {
  #segments: _Segment[];
  #windowSize: number;
  #window: { seg: number; start: number; bytes: Uint8Array } | undefined;
  #buffer = new Uint8Array(0);
  // seek+read on one handle is not atomic: reads run one after the other.
  #lock = new FileLock();

  private constructor(segments: _Segment[], windowSize: number) {
    this.#segments = segments;
    this.#windowSize = windowSize;
  }

  /**
   * Opens every segment file of `dir` (files named by digits only, in name order, as Go's
   * `sequenceFiles`) and checks each header.
   */
  static async open(dir: string, options: ChunkReaderOptions = {}): Promise<ChunkReader> {
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) {
      if (/^\d+$/.test(e.name)) names.push(e.name);
    }
    names.sort();
    const segments: _Segment[] = [];
    try {
      for (const name of names) {
        const file = await Deno.open(`${dir}/${name}`, { read: true });
        segments.push({ name, file, size: 0 });
        const size = (await file.stat()).size;
        segments[segments.length - 1].size = size;
        const head = new Uint8Array(SEGMENT_HEADER_SIZE);
        if (size < SEGMENT_HEADER_SIZE || await readAt(file, 0, head) < SEGMENT_HEADER_SIZE) {
          throw new FormatError(`chunk segment ${name}: shorter than its header`);
        }
        const magic = new DataView(head.buffer).getUint32(0);
        if (magic !== MAGIC_CHUNKS) {
          throw new FormatError(`chunk segment ${name}: bad magic 0x${magic.toString(16)}`);
        }
        if (head[4] !== 1) {
          throw new FormatError(`chunk segment ${name}: unsupported version ${head[4]}`);
        }
      }
    } catch (e) {
      for (const s of segments) s.file.close();
      throw e;
    }
    return new ChunkReader(segments, options.windowSize ?? 256 * 1024);
  }

  /** Segment file names, in reference order. */
  get segmentNames(): string[] {
    return this.#segments.map((s) => s.name);
  }

  /** Total size of the segment files in bytes. */
  get size(): number {
    return this.#segments.reduce((a, s) => a + s.size, 0);
  }

  /**
   * The chunk at `ref` (CRC checked) when the read window already holds it, without waiting;
   * undefined when it must be read with {@link ChunkReader.readView}. Its data is a view into
   * the read window, valid until the next read of this reader: copy what must stay.
   */
  readBuffered(ref: bigint): RawChunk | undefined {
    return this.#fromWindow(ref);
  }

  /**
   * Reads the chunk at `ref` and checks its CRC. Its data is a view into the read window, valid
   * until the next read of this reader (for one reader per consumer that copies what it keeps).
   */
  readView(ref: bigint): Promise<RawChunk> {
    // Chunks inside the current window need no I/O and no place in the read queue.
    try {
      const chunk = this.#fromWindow(ref);
      if (chunk) return Promise.resolve(chunk);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#lock.run(() => this.#read(ref));
  }

  /** Reads the chunk at `ref` and checks its CRC. The returned data is the caller's to keep. */
  read(ref: bigint): Promise<RawChunk> {
    // Copied inside the lock: a read queued behind this one may move the window.
    return this.#lock.run(async () => {
      const chunk = await this.#read(ref);
      return { ...chunk, data: chunk.data.slice() };
    });
  }

  async #load(seg: number, start: number, length: number): Promise<void> {
    const s = this.#segments[seg];
    const size = Math.min(Math.max(this.#windowSize, length), s.size - start);
    // One buffer, reused while it is large enough (a new buffer per move left tens of MiB for
    // the collector): chunk data handed out as views is valid until the next read.
    if (this.#buffer.length < size) this.#buffer = new Uint8Array(size);
    const bytes = this.#buffer.subarray(0, size);
    this.#window = undefined;
    const got = await readAt(s.file, start, bytes);
    this.#window = { seg, start, bytes: bytes.subarray(0, got) };
  }

  /** The segment of `ref` and the offset, checked against the segment's size. */
  #locate(ref: bigint): [_Segment, number, number] {
    const [seg, offset] = unpackChunkRef(ref);
    const s = this.#segments[seg];
    if (!s) {
      throw new FormatError(`chunk ref 0x${ref.toString(16)}: segment index ${seg} out of range`);
    }
    if (offset < SEGMENT_HEADER_SIZE || offset >= s.size) {
      throw new FormatError(`chunk ref 0x${ref.toString(16)}: offset beyond segment ${s.name}`);
    }
    return [s, seg, offset];
  }

  /**
   * The total size (length field, encoding, data, CRC) of the chunk at segment `offset`, read from
   * its length field at `bytes[at]`; undefined when the field runs past `bytes` before the end of
   * the segment.
   */
  #totalSize(
    ref: bigint,
    s: _Segment,
    offset: number,
    bytes: Uint8Array,
    at: number,
  ): number | undefined {
    let len = 0;
    let i = at;
    for (let scale = 1;; scale *= 128) {
      if (i - at >= 10 || (i >= bytes.length && offset + (i - at) >= s.size)) {
        throw new FormatError(`chunk ref 0x${ref.toString(16)}: bad length field`);
      }
      if (i >= bytes.length) return undefined;
      const b = bytes[i++];
      len += (b & 0x7f) * scale;
      if (b < 0x80) break;
    }
    const total = i - at + 1 + len + 4;
    if (offset + total > s.size) {
      throw new FormatError(
        `chunk ref 0x${ref.toString(16)}: chunk of ${len} bytes runs past the end of ${s.name}`,
      );
    }
    return total;
  }

  /** The chunk at `ref` if the window holds all of it. */
  #fromWindow(ref: bigint): RawChunk | undefined {
    // Called for every chunk copied: plain numbers and byte reads, one view of the data.
    const [s, seg, offset] = this.#locate(ref);
    const w = this.#window;
    if (!w || w.seg !== seg || offset < w.start) return undefined;
    const bytes = w.bytes;
    const at = offset - w.start;
    const total = this.#totalSize(ref, s, offset, bytes, at);
    if (total === undefined || at + total > bytes.length) return undefined;
    let i = at;
    while (bytes[i] >= 0x80) i++; // the last byte of the length field
    i++; // the encoding byte
    const dataEnd = at + total - 4;
    // The CRC covers the encoding byte and the data.
    const want = ((bytes[dataEnd] << 24) | (bytes[dataEnd + 1] << 16) | (bytes[dataEnd + 2] << 8) |
      bytes[dataEnd + 3]) >>> 0;
    const got = crc32c(bytes.subarray(i, dataEnd));
    if (got !== want) {
      throw new FormatError(
        `chunk ref 0x${ref.toString(16)} in ${s.name}: CRC32C mismatch ` +
          `(stored 0x${want.toString(16)}, computed 0x${got.toString(16)})`,
      );
    }
    return { encoding: bytes[i], data: bytes.subarray(i + 1, dataEnd), crc: want };
  }

  async #read(ref: bigint): Promise<RawChunk> {
    const [s, seg, offset] = this.#locate(ref);
    let chunk = this.#fromWindow(ref);
    if (chunk) return chunk;
    await this.#load(seg, offset, 11);
    chunk = this.#fromWindow(ref);
    if (chunk) return chunk;
    // Larger than the window: read exactly this chunk (the window, at `offset` now, holds its
    // length field or ends with the segment).
    const total = this.#totalSize(ref, s, offset, this.#window!.bytes, 0);
    if (total === undefined) {
      throw new FormatError(`chunk ref 0x${ref.toString(16)}: ${s.name} ends early`);
    }
    await this.#load(seg, offset, total);
    return this.#fromWindow(ref)!;
  }

  /** Closes the segment files. */
  close(): void {
    for (const s of this.#segments) {
      try {
        s.file.close();
      } catch { /* already closed */ }
    }
    this.#segments = [];
    this.#window = undefined;
  }

  /** Same as {@link ChunkReader.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Options of {@link ChunkWriter.create}. */
export interface ChunkWriterOptions {
  /** Maximum segment size; a chunk never spans files (default 512 MiB). */
  segmentSize?: number;
  /** Write buffer size (default 1 MiB). */
  bufferSize?: number;
  /**
   * Called with each segment file's name (`000001`) once it is complete: flushed, synced (unless
   * `temporary`) and closed, when the next one is begun and at {@link ChunkWriter.close}. A reader
   * may take it from there while later segments are still being written; the writer waits for
   * what it returns.
   */
  onSegment?: (name: string) => void | Promise<void>;
  /** Segments only read before they are removed: closed without an fsync (see `_io.ts`). */
  temporary?: boolean;
}

/**
 * Writes chunk segment files into a new directory. Chunks must be written in the order their
 * series will appear in the index (references are then non-decreasing, as the index requires).
 */
export class ChunkWriter {
  #dir: string;
  #segmentSize: number;
  #bufferSize: number;
  #file: BufferedFileWriter | undefined;
  #seq = 0; // number of segment files created
  // Scratch space, reused for every chunk (this runs for every chunk of a rewrite).
  #header = new Uint8Array(16);
  #crc = new Uint8Array(4);
  #crcView = new DataView(this.#crc.buffer);
  #encoding = new Uint8Array(1);
  #closed = false;
  #onSegment: ChunkWriterOptions["onSegment"];
  #temporary: boolean;

  private constructor(dir: string, segmentSize: number, options: ChunkWriterOptions) {
    this.#dir = dir;
    this.#segmentSize = segmentSize;
    this.#bufferSize = options.bufferSize ?? 1024 * 1024;
    this.#onSegment = options.onSegment;
    this.#temporary = options.temporary ?? false;
  }

  /** Creates `dir` (which must not hold segment files yet) and returns a writer for it. */
  static async create(dir: string, options: ChunkWriterOptions = {}): Promise<ChunkWriter> {
    await Deno.mkdir(dir, { recursive: true });
    for await (const e of Deno.readDir(dir)) {
      if (/^\d+$/.test(e.name)) throw new Error(`${dir} already holds chunk segment ${e.name}`);
    }
    const segmentSize = options.segmentSize ?? DEFAULT_CHUNK_SEGMENT_SIZE;
    if (segmentSize < SEGMENT_HEADER_SIZE + 16 || segmentSize > 0xffffffff) {
      throw new RangeError(`chunk segment size ${segmentSize} out of range`);
    }
    return new ChunkWriter(dir, segmentSize, options);
  }

  /** Number of segment files written so far. */
  get segments(): number {
    return this.#seq;
  }

  async #cut(): Promise<BufferedFileWriter> {
    await this.#closeSegment();
    const name = _segmentName(this.#seq + 1);
    const file = await BufferedFileWriter.create(`${this.#dir}/${name}`, this.#bufferSize, {
      temporary: this.#temporary,
    });
    this.#seq++;
    this.#file = file;
    const h = new Uint8Array(SEGMENT_HEADER_SIZE);
    new DataView(h.buffer).setUint32(0, MAGIC_CHUNKS);
    h[4] = 1;
    await file.write(h);
    return file;
  }

  /**
   * Appends one chunk and returns its reference. `crc`, when given, is the chunk's CRC32C as
   * another segment file stored it ({@link RawChunk.crc}); otherwise it is computed.
   */
  async write(encoding: number, data: Uint8Array, crc?: number): Promise<bigint> {
    const ref = this.tryWrite(encoding, data, crc);
    if (ref !== undefined) return ref;
    const size = _MAX_LEN_FIELD + 1 + data.length + 4;
    let file = this.#file;
    // As Go: a new segment when this chunk would not fit, unless the segment is still empty.
    if (
      !file ||
      (file.position > SEGMENT_HEADER_SIZE && file.position + size > this.#segmentSize)
    ) {
      file = await this.#cut();
    }
    const at = chunkRef(this.#seq - 1, file.position);
    const i = this.#prepare(encoding, data, crc);
    await file.write(this.#header.subarray(0, i));
    await file.write(data);
    await file.write(this.#crc);
    return at;
  }

  /**
   * {@link ChunkWriter.write} without waiting, when the chunk fits the open segment and its write
   * buffer (nearly always); undefined, having written nothing, otherwise.
   */
  tryWrite(encoding: number, data: Uint8Array, crc?: number): bigint | undefined {
    if (this.#closed) throw new Error("ChunkWriter is closed");
    const file = this.#file;
    const size = _MAX_LEN_FIELD + 1 + data.length + 4;
    if (!file || file.position + size > this.#segmentSize || file.room < size) return undefined;
    const ref = chunkRef(this.#seq - 1, file.position);
    const i = this.#prepare(encoding, data, crc);
    file.writeBuffered(this.#header, i);
    file.writeBuffered(data);
    file.writeBuffered(this.#crc);
    return ref;
  }

  /** Fills the scratch header (length, encoding) and CRC; returns the header's length. */
  #prepare(encoding: number, data: Uint8Array, crc: number | undefined): number {
    const h = this.#header;
    let i = 0;
    let len = data.length;
    while (len >= 0x80) {
      h[i++] = (len & 0x7f) | 0x80;
      len = Math.floor(len / 128);
    }
    h[i++] = len;
    h[i++] = encoding;
    let sum = crc;
    if (sum === undefined) {
      this.#encoding[0] = encoding;
      sum = crc32c(data, crc32c(this.#encoding));
    }
    this.#crcView.setUint32(0, sum);
    return i;
  }

  /** Flushes, fsyncs (unless `temporary`) and closes the last segment. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#closeSegment();
  }

  /** Completes the open segment, if any, and tells `onSegment`. */
  async #closeSegment(): Promise<void> {
    const file = this.#file;
    if (file === undefined) return;
    this.#file = undefined;
    await file.close();
    await this.#onSegment?.(_segmentName(this.#seq));
  }

  /** Closes the open file without flushing (after an error). */
  abort(): void {
    this.#closed = true;
    this.#file?.abort();
    this.#file = undefined;
  }
}

/** The file name of the `seq`th segment (1-based), as Go names it: `000001`. */
function _segmentName(seq: number): string {
  return String(seq).padStart(6, "0");
}
