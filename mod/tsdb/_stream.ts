/**
 * Sequential buffered file access for the index writer's spill files and the index reader's
 * sections: {@link SequentialReader} reads a byte range forward through one buffer (checksumming
 * what it reads), {@link SpillWriter} appends to a temporary file through one buffer.
 *
 * Memory: one buffer each, of the size given; a buffer grows only to hold a single value larger
 * than itself (a very long string), and a writer's shrinks back after the flush.
 *
 * Both encode and decode synchronously and leave the I/O to the caller (`fill`, `flush`), so a hot
 * loop awaits only when the buffer runs empty or full, not once per value.
 *
 * @module
 */

import { crc32c } from "./crc32c.ts";
import { FormatError } from "./encoding.ts";

/**
 * Reads into `buf` at file position `pos` with blocking calls; returns the bytes read (fewer only
 * at the end of the file). For many small reads, where an async seek and read each cost a trip
 * through the thread pool; the caller makes sure no async read of `file` is half done meanwhile.
 */
export function readAtSync(file: Deno.FsFile, pos: number, buf: Uint8Array): number {
  file.seekSync(pos, Deno.SeekMode.Start);
  let done = 0;
  while (done < buf.length) {
    const n = file.readSync(buf.subarray(done));
    if (!n) break;
    done += n;
  }
  return done;
}

/** Reads the next bytes of a source into `buf`; returns how many (0 at the end). */
export type ReadNext = (buf: Uint8Array) => Promise<number>;

/** Reads a byte range of a file forward, checking nothing but keeping the CRC32C of it. */
export class SequentialReader {
  #read: ReadNext;
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  #left: number;
  #pos: number;
  #crc = 0;
  #close: () => void;

  /**
   * Reads `length` bytes that start at file position `position`, through `read` (which must
   * deliver them in order), buffering `bufferSize` bytes at a time.
   */
  constructor(
    read: ReadNext,
    position: number,
    length: number,
    bufferSize: number,
    close: () => void = () => {},
  ) {
    this.#read = read;
    this.#pos = position;
    this.#left = length;
    this.#buf = new Uint8Array(Math.max(16, bufferSize));
    this.#close = close;
  }

  /** A reader of the whole file `path` (a spill file), which it closes with itself. */
  static async open(path: string, bufferSize: number): Promise<SequentialReader> {
    const file = await Deno.open(path, { read: true });
    try {
      const size = (await file.stat()).size;
      const read = async (buf: Uint8Array) => (await file.read(buf)) ?? 0;
      return new SequentialReader(read, 0, size, bufferSize, () => file.close());
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** A reader of `length` bytes at `position`, read with positioned reads (`readAt`). */
  static range(
    readAt: (pos: number, buf: Uint8Array) => Promise<number>,
    position: number,
    length: number,
    bufferSize: number,
  ): SequentialReader {
    let at = position;
    const read = async (buf: Uint8Array) => {
      const n = await readAt(at, buf);
      at += n;
      return n;
    };
    return new SequentialReader(read, position, length, bufferSize);
  }

  /** File position of the next unread byte. */
  get position(): number {
    return this.#pos;
  }

  /** Bytes buffered and not yet consumed. */
  get available(): number {
    return this.#end - this.#start;
  }

  /** Whether every byte of the range has been consumed. */
  get done(): boolean {
    return this.#end === this.#start && this.#left === 0;
  }

  /** Whether every byte of the range is buffered or consumed (nothing more to read). */
  get exhausted(): boolean {
    return this.#left === 0;
  }

  /** The buffered bytes not yet consumed, as a view valid until the next `fill`. */
  view(): Uint8Array {
    return this.#buf.subarray(this.#start, this.#end);
  }

  /** CRC32C of every byte read from the file so far (consumed or only buffered). */
  get crc(): number {
    return this.#crc;
  }

  /** Buffers at least `n` bytes, or all that are left of the range when fewer. */
  async fill(n: number): Promise<void> {
    if (this.available >= n || this.#left === 0) return;
    const have = this.available;
    if (n > this.#buf.length) {
      const bigger = new Uint8Array(n);
      bigger.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = bigger;
    } else {
      this.#buf.copyWithin(0, this.#start, this.#end);
    }
    this.#start = 0;
    this.#end = have;
    while (this.#end - this.#start < n && this.#left > 0) {
      const want = Math.min(this.#buf.length - this.#end, this.#left);
      const got = await this.#read(this.#buf.subarray(this.#end, this.#end + want));
      if (got === 0) throw new FormatError(`file ends ${this.#left} bytes early`);
      this.#crc = crc32c(this.#buf.subarray(this.#end, this.#end + got), this.#crc);
      this.#end += got;
      this.#left -= got;
    }
  }

  #need(n: number): void {
    if (this.available < n) {
      throw new FormatError(`unexpected end of data at ${this.#pos} (need ${n} bytes)`);
    }
  }

  /** One byte. */
  byte(): number {
    this.#need(1);
    this.#pos++;
    return this.#buf[this.#start++];
  }

  /** A big-endian uint32. */
  be32(): number {
    this.#need(4);
    const b = this.#buf;
    const s = this.#start;
    this.#start += 4;
    this.#pos += 4;
    return ((b[s] << 24) | (b[s + 1] << 16) | (b[s + 2] << 8) | b[s + 3]) >>> 0;
  }

  /** A uvarint below 2^53 (fill 10 bytes first to be sure it is buffered). */
  uvarint(): number {
    const b = this.#buf;
    let p = this.#start;
    let v = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (p >= this.#end) break;
      const x = b[p++];
      v += (x & 0x7f) * scale;
      if (x < 0x80) {
        this.#pos += p - this.#start;
        this.#start = p;
        return v;
      }
      scale *= 128;
    }
    throw new FormatError(`bad or cut-off uvarint at ${this.#pos}`);
  }

  /** The next `n` bytes as a view, valid until the next `fill`. */
  take(n: number): Uint8Array {
    this.#need(n);
    const out = this.#buf.subarray(this.#start, this.#start + n);
    this.#start += n;
    this.#pos += n;
    return out;
  }

  /** Closes the file when the reader opened it. */
  close(): void {
    try {
      this.#close();
    } catch { /* already closed */ }
  }
}

/** Appends to a new temporary file through a buffer: no fsync, the file does not outlive a run. */
export class SpillWriter {
  #file: Deno.FsFile;
  #size: number;
  #buf: Uint8Array;
  #len = 0;
  #flushed = 0;

  private constructor(file: Deno.FsFile, bufferSize: number) {
    this.#file = file;
    this.#size = Math.max(16, bufferSize);
    this.#buf = new Uint8Array(this.#size);
  }

  /** Creates `path`, which must not exist. */
  static async create(path: string, bufferSize: number): Promise<SpillWriter> {
    return new SpillWriter(await Deno.open(path, { write: true, createNew: true }), bufferSize);
  }

  /** Bytes written so far, buffered ones included. */
  get length(): number {
    return this.#flushed + this.#len;
  }

  /** Whether the buffer is full: call {@link SpillWriter.flush} before going on. */
  get full(): boolean {
    return this.#len >= this.#size;
  }

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const bigger = new Uint8Array(Math.max(this.#len + n, 2 * this.#buf.length));
    bigger.set(this.#buf.subarray(0, this.#len));
    this.#buf = bigger;
  }

  /** A uvarint (a safe non-negative integer). */
  uvarint(v: number): void {
    this.#room(10);
    const b = this.#buf;
    while (v >= 0x80) {
      b[this.#len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    b[this.#len++] = v;
  }

  /** Raw bytes. */
  bytes(bytes: Uint8Array): void {
    this.#room(bytes.length);
    this.#buf.set(bytes, this.#len);
    this.#len += bytes.length;
  }

  /** Writes the buffered bytes to the file. */
  async flush(): Promise<void> {
    let done = 0;
    while (done < this.#len) done += await this.#file.write(this.#buf.subarray(done, this.#len));
    this.#flushed += this.#len;
    this.#len = 0;
    if (this.#buf.length > this.#size) this.#buf = new Uint8Array(this.#size);
  }

  /** Flushes and closes the file. */
  async close(): Promise<void> {
    await this.flush();
    this.#file.close();
  }

  /** Closes the file without flushing (after an error). */
  abort(): void {
    try {
      this.#file.close();
    } catch { /* already closed */ }
  }
}

/**
 * A binary min-heap of `T` under `less`, for k-way merges (a few dozen sources: the sift costs
 * log2(k) comparisons per element).
 */
export class MinHeap<T> {
  #items: T[] = [];
  #less: (a: T, b: T) => boolean;

  /** A heap ordered by `less`. */
  constructor(less: (a: T, b: T) => boolean) {
    this.#less = less;
  }

  /** Number of items. */
  get size(): number {
    return this.#items.length;
  }

  /** The least item (undefined when empty). */
  peek(): T | undefined {
    return this.#items[0];
  }

  /** Adds an item. */
  push(item: T): void {
    const a = this.#items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (!this.#less(a[i], a[up])) break;
      [a[i], a[up]] = [a[up], a[i]];
      i = up;
    }
  }

  /** Removes and returns the least item. */
  pop(): T | undefined {
    const a = this.#items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    a[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && this.#less(a[l], a[m])) m = l;
      if (r < a.length && this.#less(a[r], a[m])) m = r;
      if (m === i) break;
      [a[i], a[m]] = [a[m], a[i]];
      i = m;
    }
    return top;
  }
}
