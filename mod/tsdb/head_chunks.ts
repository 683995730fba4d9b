/**
 * Reading the head's memory-mapped chunk files, `chunks_head/000001`… (`tsdb/chunks/head_chunks.go`,
 * Prometheus 2.19+).
 *
 * A file starts with the magic 0x0130BC91, version 1 and 3 padding bytes. Then come entries
 * `seriesRef BE64 | mint BE64 | maxt BE64 | encoding (bit 7 = out-of-order) | uvarint len | data |
 * CRC32C BE32`, the CRC covering everything from seriesRef through data. Files are preallocated,
 * so the entries end at an all-zero entry or an all-zero tail. A chunk's ref is
 * `fileNumber << 32 | offset`, with the real file number (unlike block chunk refs).
 *
 * The reader streams each file through a small window; it never holds a whole file.
 *
 * @module
 */

import { crc32c } from "./crc32c.ts";
import { FormatError } from "./encoding.ts";

/** Magic number at the start of every head chunk file. */
export const HEAD_CHUNKS_MAGIC = 0x0130bc91;
/** Size of a head chunk file header: magic, version, 3 padding bytes. */
export const HEAD_CHUNKS_HEADER_SIZE = 8;
/** The out-of-order bit of an entry's encoding byte. */
export const HEAD_CHUNK_OOO_MASK = 0x80;
// seriesRef + mint + maxt + encoding + longest uvarint length + CRC: an entry is never shorter
// than this would suggest, so a tail shorter than this must be padding.
const _MAX_META_SIZE = 8 + 8 + 8 + 1 + 10 + 4;
const _WINDOW = 256 * 1024;

/** A head chunk file. */
export interface HeadChunkFileRef {
  /** The file number (its name parsed as decimal). */
  index: number;
  /** Path of the file. */
  path: string;
}

/** One chunk read from `chunks_head/`. */
export interface HeadChunk {
  /** The chunk's ref: `file << 32 | offset`. */
  ref: bigint;
  /** File number. */
  file: number;
  /** Byte offset of the entry in the file. */
  offset: number;
  /** Head series ref, as in the WAL's Series records. */
  seriesRef: bigint;
  /** First sample's timestamp, ms. */
  mint: bigint;
  /** Last sample's timestamp, ms (inclusive). */
  maxt: bigint;
  /** Chunk encoding without the out-of-order bit (1 XOR, 2 histogram, 3 float histogram, …). */
  encoding: number;
  /** Whether the chunk holds out-of-order samples. */
  ooo: boolean;
  /** The chunk bytes (their first two bytes are the sample count for XOR and histograms). */
  data: Uint8Array;
  /** Samples in the chunk (big-endian uint16 at the start of the data). */
  numSamples: number;
}

/** A head chunk file is damaged (bad header, CRC mismatch, entry cut off). */
export class HeadChunkCorruptionError extends Error {
  /** The file number. */
  readonly file: number;
  /** Path of the file. */
  readonly path: string;
  /** Byte offset of the damaged entry (or header). */
  readonly offset: number;

  /** Creates an error for file `file` at `path`, entry offset `offset`. */
  constructor(file: number, path: string, offset: number, message: string) {
    super(`corruption in head chunk file ${path} at offset ${offset}: ${message}`);
    this.name = "HeadChunkCorruptionError";
    this.file = file;
    this.path = path;
    this.offset = offset;
  }
}

/** The ref of a head chunk at `offset` in file `file`. */
export function headChunkRef(file: number, offset: number): bigint {
  return (BigInt(file) << 32n) | BigInt(offset);
}

/** Splits a head chunk ref into file number and offset. */
export function unpackHeadChunkRef(ref: bigint): { file: number; offset: number } {
  return { file: Number(ref >> 32n), offset: Number(ref & 0xffffffffn) };
}

/**
 * Lists the head chunk files of a `chunks_head/` dir (names made only of digits), sorted by
 * number. Throws a `FormatError` when the numbers are not consecutive, as Prometheus does.
 */
export async function listHeadChunkFiles(dir: string): Promise<HeadChunkFileRef[]> {
  const refs: HeadChunkFileRef[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!/^\d+$/.test(entry.name) || entry.isDirectory) continue;
    const path = dir.endsWith("/") ? dir + entry.name : `${dir}/${entry.name}`;
    refs.push({ index: parseInt(entry.name, 10), path });
  }
  refs.sort((a, b) => a.index - b.index);
  for (let i = 1; i < refs.length; i++) {
    if (refs[i].index !== refs[i - 1].index + 1) {
      throw new FormatError(
        `head chunk files in ${dir} are not consecutive: ${refs[i - 1].index} then ${
          refs[i].index
        }`,
      );
    }
  }
  return refs;
}

/**
 * Iterates every chunk of a `chunks_head/` dir (or of the given files), file by file, checking
 * each entry's CRC. Throws {@link HeadChunkCorruptionError} at the first damaged entry.
 *
 * Like Prometheus, a last file without a complete magic number (or with a zero magic, as a crash
 * right after creating it leaves it) is taken as empty.
 *
 * @example
 * ```ts
 * for await (const c of readHeadChunks("data/chunks_head")) console.log(c.seriesRef, c.mint);
 * ```
 */
export async function* readHeadChunks(
  dirOrFiles: string | readonly HeadChunkFileRef[],
): AsyncGenerator<HeadChunk> {
  const files = typeof dirOrFiles === "string" ? await listHeadChunkFiles(dirOrFiles) : dirOrFiles;
  for (let i = 0; i < files.length; i++) {
    using cursor = HeadChunkCursor.open(files[i], i === files.length - 1);
    while (cursor.next()) {
      yield {
        ref: headChunkRef(files[i].index, cursor.offset),
        file: files[i].index,
        offset: cursor.offset,
        seriesRef: cursor.seriesRefBig(),
        mint: cursor.mintBig(),
        maxt: cursor.maxtBig(),
        encoding: cursor.encoding,
        ooo: cursor.ooo,
        data: cursor.data.slice(),
        numSamples: cursor.numSamples,
      };
    }
  }
}

/**
 * The chunks of one head chunk file, one entry at a time, read with blocking reads through a window
 * (256 KiB, grown for a larger entry), CRCs checked: for the head replay, which takes hundreds of
 * thousands of chunks, without an object or a bigint per chunk. The fields describe the entry the
 * last {@link HeadChunkCursor.next} moved to; `data` is a view valid until the next call.
 */
export class HeadChunkCursor implements Disposable {
  /** Series ref (exact up to 2^53; see {@link HeadChunkCursor.seriesRefBig}). */
  seriesRef = 0;
  /** First sample's timestamp, ms (exact up to ±2^53). */
  mint = 0;
  /** Last sample's timestamp, ms (inclusive). */
  maxt = 0;
  /** Encoding without the out-of-order bit. */
  encoding = 0;
  /** Whether the chunk holds out-of-order samples. */
  ooo = false;
  /** The chunk bytes (a view). */
  data: Uint8Array = new Uint8Array(0);
  /** Byte offset of the entry in the file. */
  offset = 0;
  #ref: HeadChunkFileRef;
  #file: Deno.FsFile | null;
  #size: number;
  #win: _Window;
  #view: DataView | null = null;
  #at = 0;
  #done = false;

  private constructor(ref: HeadChunkFileRef, file: Deno.FsFile, isLast: boolean) {
    this.#ref = ref;
    this.#file = file;
    this.#size = file.statSync().size;
    this.#win = new _Window(file);
    const have = this.#win.ensure(0, HEAD_CHUNKS_HEADER_SIZE);
    const buf = this.#win.buf;
    const magic = have >= 4 ? new DataView(buf.buffer, this.#win.at(0), 4).getUint32(0) : 0;
    this.#at = HEAD_CHUNKS_HEADER_SIZE;
    if (isLast && (have < 4 || magic === 0)) {
      this.#done = true; // an empty file left by a crash
      return;
    }
    if (have < HEAD_CHUNKS_HEADER_SIZE) throw this.#fail(0, `file too short (${this.#size} bytes)`);
    if (magic !== HEAD_CHUNKS_MAGIC) {
      throw this.#fail(0, `invalid magic number ${magic.toString(16)}`);
    }
    const version = buf[this.#win.at(4)];
    if (version !== 1) throw this.#fail(4, `unsupported format version ${version}`);
  }

  /** Opens a head chunk file; `isLast` allows a missing or zero header (see readHeadChunks). */
  static open(ref: HeadChunkFileRef, isLast: boolean): HeadChunkCursor {
    const file = Deno.openSync(ref.path, { read: true });
    try {
      return new HeadChunkCursor(ref, file, isLast);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** Samples in the chunk (big-endian uint16 at the start of its data). */
  get numSamples(): number {
    return this.data.length >= 2 ? (this.data[0] << 8) | this.data[1] : 0;
  }

  /** The series ref as read. */
  seriesRefBig(): bigint {
    return this.#view!.getBigUint64(0);
  }

  /** The first timestamp as read. */
  mintBig(): bigint {
    return this.#view!.getBigInt64(8);
  }

  /** The last timestamp as read. */
  maxtBig(): bigint {
    return this.#view!.getBigInt64(16);
  }

  /**
   * Moves to the next entry: false at the end of the written part (an all-zero entry, or a zero
   * tail too short for an entry). Throws {@link HeadChunkCorruptionError} for a damaged one.
   */
  next(): boolean {
    if (this.#done) return false;
    const size = this.#size;
    const win = this.#win;
    const idx = this.#at;
    if (idx >= size) return this.#end();
    if (size - idx < _MAX_META_SIZE) {
      // Too short for an entry: must be the zero tail of a preallocated file.
      const n = win.ensure(idx, size - idx);
      const tail = win.buf.subarray(win.at(idx), win.at(idx) + n);
      if (tail.some((b) => b !== 0)) {
        throw this.#fail(idx, `${size - idx} trailing bytes are too few for an entry but not zero`);
      }
      return this.#end();
    }
    win.ensure(idx, _MAX_META_SIZE);
    let view = new DataView(win.buf.buffer, win.at(idx), _MAX_META_SIZE);
    // Series refs start at 1, so an all-zero entry marks the end of the written part.
    if (
      view.getBigUint64(0) === 0n && view.getBigUint64(8) === 0n && view.getBigUint64(16) === 0n
    ) {
      return this.#end();
    }
    let len = 0;
    let lenBytes = 0;
    for (let shift = 1;; shift *= 128) {
      if (lenBytes === 10) throw this.#fail(idx, "chunk length varint overflows");
      const b = view.getUint8(25 + lenBytes++);
      len += (b & 0x7f) * shift;
      if (b < 0x80) break;
    }
    const dataStart = idx + 25 + lenBytes;
    const crcAt = dataStart + len;
    if (crcAt + 4 > size) {
      throw this.#fail(idx, `chunk of ${len} bytes runs past the end of the file (${size} bytes)`);
    }
    const entryLen = crcAt + 4 - idx;
    win.ensure(idx, entryLen);
    const s = win.at(idx);
    const entry = win.buf.subarray(s, s + entryLen);
    view = new DataView(entry.buffer, entry.byteOffset, entryLen);
    const stored = view.getUint32(entryLen - 4);
    const actual = crc32c(entry.subarray(0, entryLen - 4));
    if (actual !== stored) {
      throw this.#fail(
        idx,
        `checksum mismatch: computed ${actual.toString(16)}, stored ${stored.toString(16)}`,
      );
    }
    this.#view = view;
    this.offset = idx;
    this.seriesRef = view.getUint32(0) * 0x1_0000_0000 + view.getUint32(4);
    this.mint = view.getInt32(8) * 0x1_0000_0000 + view.getUint32(12);
    this.maxt = view.getInt32(16) * 0x1_0000_0000 + view.getUint32(20);
    const encByte = view.getUint8(24);
    this.encoding = encByte & ~HEAD_CHUNK_OOO_MASK;
    this.ooo = (encByte & HEAD_CHUNK_OOO_MASK) !== 0;
    this.data = entry.subarray(dataStart - idx, crcAt - idx);
    this.#at = crcAt + 4;
    return true;
  }

  /** Closes the file. */
  close(): void {
    this.#file?.close();
    this.#file = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #end(): boolean {
    this.#done = true;
    return false;
  }

  #fail(offset: number, message: string): HeadChunkCorruptionError {
    return new HeadChunkCorruptionError(this.#ref.index, this.#ref.path, offset, message);
  }
}

/** A forward-only window onto a file: keeps the bytes asked for, reading more as needed. */
class _Window {
  buf = new Uint8Array(_WINDOW);
  /** File offset of `buf[0]`. */
  #start = 0;
  /** Valid bytes in `buf`. */
  #len = 0;
  #eof = false;
  #file: Deno.FsFile;

  constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /** Index in `buf` of file offset `off` (valid after `ensure` covered it). */
  at(off: number): number {
    return off - this.#start;
  }

  /** Makes bytes [off, off+n) available if the file has them; returns how many are. */
  ensure(off: number, n: number): number {
    if (off < this.#start) throw new Error("_Window: offsets must not go backwards");
    if (off + n > this.#start + this.#len && !this.#eof) {
      // Drop what lies before `off`, grow for large entries, then read more.
      const keep = Math.max(0, this.#start + this.#len - off);
      if (keep === 0 && off > this.#start + this.#len) {
        this.#file.seekSync(off, Deno.SeekMode.Start);
      }
      if (n > this.buf.length) {
        const bigger = new Uint8Array(Math.max(n, this.buf.length * 2));
        bigger.set(this.buf.subarray(this.#len - keep, this.#len));
        this.buf = bigger;
      } else {
        this.buf.copyWithin(0, this.#len - keep, this.#len);
      }
      this.#start = off;
      this.#len = keep;
      // Fill the window (not only n bytes): fewer, larger reads.
      while (this.#len < this.buf.length && !this.#eof) {
        const got = this.#file.readSync(this.buf.subarray(this.#len));
        if (got === null || got === 0) this.#eof = true;
        else this.#len += got;
        if (this.#len >= n && this.#len >= this.buf.length / 2) break;
      }
    }
    return Math.max(0, Math.min(n, this.#start + this.#len - off));
  }
}
