/**
 * An index file's symbol table, read on demand (`tsdb/index/index.go` `Symbols`).
 *
 * Section layout: `len BE32 | count BE32 | count × (uvarint len | UTF-8 bytes) | CRC32C`. A symbol
 * reference is the symbol's ordinal in format versions 2 and 3, and the absolute file offset of
 * its length varint in version 1.
 *
 * Memory: as Prometheus' reader, the table keeps the position of every `sampleInterval`-th symbol
 * (8 bytes per sample) and reads the symbols themselves from the file when asked: a lookup walks
 * at most `sampleInterval` entries forward from the nearest sample. A table of up to `memoryMax`
 * bytes is instead held whole (the bytes, not strings). Besides that: one read window and a
 * direct-mapped cache of `cacheSize` decoded strings (the label names and common values every
 * series repeats).
 *
 * {@link SymbolTable.resolve} looks up a batch of references in ascending order, so the references
 * of a window of series cost one forward pass: neighbouring symbols come from one read, which
 * grows to `windowSize` while lookups stay close together, and far-apart ones cost a read of
 * their sample group each. Lookups read with blocking calls: most lookups of a large table are
 * reads, and an async read costs several times a blocking one.
 *
 * @module
 */

import { FormatError } from "./encoding.ts";
import { SequentialReader } from "./_stream.ts";

/** Reads into `buf` at file position `pos`; returns the bytes read (fewer only at the end). */
export type ReadAt = (pos: number, buf: Uint8Array) => Promise<number>;
/** {@link ReadAt} with blocking calls. */
export type ReadAtSync = (pos: number, buf: Uint8Array) => number;

/** Options of a {@link SymbolTable}. */
export interface SymbolTableOptions {
  /** Every how many symbols a position is kept in memory (default 32, as Prometheus). */
  sampleInterval?: number;
  /** Decoded symbols cached, direct-mapped by reference (default 4096). */
  cacheSize?: number;
  /** Tables up to this many bytes are held in memory whole (default 1 MiB). */
  memoryMax?: number;
  /** Bytes read at once while lookups move forward through the table (default 64 KiB). */
  windowSize?: number;
}

// Batch keys pack `ref * _SLOTS + slot` into a double: exact while ref < 2^37 (any v1 offset).
const _SLOTS = 2 ** 16;
const _decoder = new TextDecoder("utf-8", { fatal: true });

/** The symbol table of one index file. */
export class SymbolTable {
  /** Number of symbols. */
  readonly count: number;
  #readAt: ReadAt;
  #readSync: ReadAtSync;
  #first: number; // position of the first symbol
  #end: number; // end of the last symbol
  #byOffset: boolean;
  #samples: Float64Array;
  #interval: number;
  #windowSize: number;
  #buf: Uint8Array = new Uint8Array(0);
  #win: Uint8Array = new Uint8Array(0);
  #winStart = 0;
  #whole: boolean;
  // The symbol after the last one looked up: where a forward walk may continue.
  #nextRef = -1;
  #nextPos = 0;
  #cacheRefs: Float64Array;
  #cacheStrings: string[];
  #keys = new Float64Array(0);
  #bytesAt = 0;

  /**
   * A table whose symbols lie in `[first, end)` of the file, with the positions of every
   * `sampleInterval`-th symbol in `samples` (as {@link SymbolTable.scan} finds them, or as a
   * writer recorded them). `whole`, when given, holds the bytes of `[first, end)`. Lookups read
   * with `readSync`, {@link SymbolTable.all} with `readAt`.
   */
  constructor(
    readAt: ReadAt,
    readSync: ReadAtSync,
    first: number,
    end: number,
    count: number,
    samples: Float64Array,
    byOffset: boolean,
    options: SymbolTableOptions = {},
    whole?: Uint8Array,
  ) {
    this.#readAt = readAt;
    this.#readSync = readSync;
    this.#first = first;
    this.#end = end;
    this.count = count;
    this.#samples = samples;
    this.#byOffset = byOffset;
    this.#interval = _interval(options);
    this.#windowSize = options.windowSize ?? 64 * 1024;
    const cacheSize = Math.max(1, options.cacheSize ?? 4096);
    this.#cacheRefs = new Float64Array(cacheSize).fill(-1);
    this.#cacheStrings = new Array(cacheSize);
    this.#whole = whole !== undefined;
    if (whole) {
      this.#win = whole;
      this.#winStart = first;
    }
  }

  /**
   * Reads the symbol table section at `position` (within a file of `fileSize` bytes), checks its
   * CRC32C and samples the positions of its symbols. `byOffset`: version-1 references.
   */
  static async scan(
    readAt: ReadAt,
    readSync: ReadAtSync,
    position: number,
    fileSize: number,
    byOffset: boolean,
    options: SymbolTableOptions = {},
  ): Promise<SymbolTable> {
    const interval = _interval(options);
    const lenBytes = new Uint8Array(4);
    if (position + 12 > fileSize || await readAt(position, lenBytes) !== 4) {
      throw new FormatError(`index symbol table: offset ${position} beyond the file`);
    }
    const len = new DataView(lenBytes.buffer).getUint32(0);
    const end = position + 4 + len;
    if (len < 4 || end + 4 > fileSize) {
      throw new FormatError(`index symbol table: ${len} bytes at ${position} run past the file`);
    }
    const memoryMax = options.memoryMax ?? 1024 * 1024;
    const reader = SequentialReader.range(
      readAt,
      position + 4,
      len,
      len <= memoryMax ? len : Math.min(len, options.windowSize ?? 64 * 1024),
    );
    await reader.fill(4);
    const count = reader.be32();
    if (count > len - 4) {
      throw new FormatError(`index symbol table: ${count} symbols in ${len} bytes`);
    }
    const first = position + 8;
    const samples = new Float64Array(Math.ceil(count / interval));
    let whole: Uint8Array | undefined;
    if (len <= memoryMax) {
      await reader.fill(len - 4);
      whole = reader.take(len - 4);
      _sample(whole, first, count, interval, samples);
    } else {
      for (let i = 0; i < count; i++) {
        if (reader.available < 10) await reader.fill(10);
        if (i % interval === 0) samples[i / interval] = reader.position;
        const n = reader.uvarint();
        if (reader.available < n) await reader.fill(n);
        reader.take(n);
      }
      // The CRC covers every byte up to the end of the section.
      while (!reader.done) {
        await reader.fill(1);
        reader.take(reader.available);
      }
    }
    const crcBytes = new Uint8Array(4);
    if (await readAt(end, crcBytes) !== 4) {
      throw new FormatError("index symbol table: the file ends before its CRC32C");
    }
    if (reader.crc !== new DataView(crcBytes.buffer).getUint32(0)) {
      throw new FormatError(`index symbol table at ${position}: CRC32C mismatch`);
    }
    return new SymbolTable(readAt, readSync, first, end, count, samples, byOffset, options, whole);
  }

  /**
   * Resolves `refs[0..n)` into `out[0..n)`. It reads the file with blocking calls: the caller
   * makes sure no async read of the same file handle is under way.
   */
  resolve(refs: ArrayLike<number>, n: number, out: string[]): void {
    const cacheRefs = this.#cacheRefs;
    const cacheStrings = this.#cacheStrings;
    const size = cacheRefs.length;
    for (let from = 0; from < n; from += _SLOTS) {
      const to = Math.min(n, from + _SLOTS);
      if (this.#keys.length < to - from) {
        this.#keys = new Float64Array(Math.min(_SLOTS, Math.max(to - from, 2 * this.#keys.length)));
      }
      const keys = this.#keys;
      let m = 0;
      for (let i = from; i < to; i++) {
        const ref = refs[i];
        const c = ref % size;
        if (cacheRefs[c] === ref) out[i] = cacheStrings[c];
        else keys[m++] = ref * _SLOTS + (i - from);
      }
      const sorted = keys.subarray(0, m).sort();
      let last = -1;
      let s = "";
      for (let k = 0; k < m; k++) {
        const key = sorted[k];
        const ref = Math.floor(key / _SLOTS);
        if (ref !== last) {
          let found = this.#tryLookup(ref);
          while (typeof found !== "string") {
            this.#read(found.pos, found.length, found.groupEnd);
            found = this.#tryLookup(ref);
          }
          s = found;
          last = ref;
          const c = ref % size;
          cacheRefs[c] = ref;
          cacheStrings[c] = s;
        }
        out[from + key - ref * _SLOTS] = s;
      }
    }
  }

  /** Resolves one reference (reading as {@link SymbolTable.resolve} does). */
  lookup(ref: number): string {
    const out: string[] = [];
    this.resolve([ref], 1, out);
    return out[0];
  }

  /** Every symbol in table order, read forward through a buffer of `bufferSize` bytes. */
  async *all(bufferSize: number = this.#windowSize): AsyncGenerator<string> {
    const reader = SequentialReader.range(
      this.#readAt,
      this.#first,
      this.#end - this.#first,
      bufferSize,
    );
    for (let i = 0; i < this.count; i++) {
      if (reader.available < 10) await reader.fill(10);
      const n = reader.uvarint();
      if (reader.available < n) await reader.fill(n);
      yield _decoder.decode(reader.take(n));
    }
  }

  #unknown(ref: number): FormatError {
    return new FormatError(`index: unknown symbol reference ${ref}`);
  }

  /**
   * The symbol `ref`, when the bytes it takes to find it are in the window; else which bytes to
   * read: from `pos`, at least `length`, and (when the read is not a forward one) up to `groupEnd`.
   */
  #tryLookup(ref: number): string | { pos: number; length: number; groupEnd: number } {
    if (!Number.isSafeInteger(ref) || ref < 0) throw this.#unknown(ref);
    const samples = this.#samples;
    let g: number;
    let i = 0; // ordinal of the symbol at p (versions 2 and 3)
    let p: number;
    if (this.#byOffset) {
      if (ref < this.#first || ref >= this.#end || samples.length === 0) throw this.#unknown(ref);
      let lo = 0;
      let hi = samples.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (samples[mid] <= ref) lo = mid;
        else hi = mid - 1;
      }
      g = lo;
      p = this.#nextPos > samples[g] && this.#nextPos <= ref ? this.#nextPos : samples[g];
    } else {
      if (ref >= this.count) throw this.#unknown(ref);
      g = Math.floor(ref / this.#interval);
      const start = g * this.#interval;
      if (this.#nextRef > start && this.#nextRef <= ref) {
        i = this.#nextRef;
        p = this.#nextPos;
      } else {
        i = start;
        p = samples[g];
      }
    }
    const groupEnd = g + 1 < samples.length ? samples[g + 1] : this.#end;
    for (;;) {
      const at = this.#byOffset ? p : i;
      if (at > ref) throw this.#unknown(ref);
      const head = Math.min(10, this.#end - p);
      if (!this.#has(p, head)) return { pos: p, length: head, groupEnd };
      const n = this.#lengthAt(p);
      const q = this.#bytesAt;
      if (q + n > this.#end) throw new FormatError(`index symbol table: symbol at ${p} cut off`);
      if (at === ref) {
        if (!this.#has(p, q + n - p)) return { pos: p, length: q + n - p, groupEnd };
        const from = q - this.#winStart;
        const s = _decoder.decode(this.#win.subarray(from, from + n));
        this.#nextRef = ref + 1;
        this.#nextPos = q + n;
        return s;
      }
      p = q + n;
      i++;
      if (p >= this.#end) throw this.#unknown(ref);
      // A read the walk needs next starts here: the walk goes on from here after it.
      this.#nextRef = i;
      this.#nextPos = p;
    }
  }

  #has(pos: number, length: number): boolean {
    return pos >= this.#winStart && pos + length <= this.#winStart + this.#win.length;
  }

  /** The length varint at `pos` (in the window); the string's bytes start at `#bytesAt`. */
  #lengthAt(pos: number): number {
    const w = this.#win;
    let p = pos - this.#winStart;
    let n = 0;
    let scale = 1;
    for (let k = 0; k < 8; k++) {
      if (p >= w.length) break;
      const x = w[p++];
      n += (x & 0x7f) * scale;
      if (x < 0x80) {
        this.#bytesAt = p + this.#winStart;
        return n;
      }
      scale *= 128;
    }
    throw new FormatError(`index symbol table: bad length at ${pos}`);
  }

  #read(pos: number, length: number, groupEnd: number): void {
    if (this.#whole) throw new FormatError(`index symbol table: ${pos} outside the table`);
    const winEnd = this.#winStart + this.#win.length;
    const forward = this.#win.length > 0 && pos >= this.#winStart &&
      pos <= winEnd + this.#windowSize;
    const stop = Math.min(
      this.#end,
      Math.max(pos + length, forward ? pos + this.#windowSize : groupEnd),
    );
    const size = stop - pos;
    if (this.#buf.length < size) this.#buf = new Uint8Array(Math.max(size, this.#windowSize));
    const buf = this.#buf.subarray(0, size);
    if (this.#readSync(pos, buf) !== size) {
      throw new FormatError(`index symbol table: the file ends before byte ${stop}`);
    }
    this.#win = buf;
    this.#winStart = pos;
  }
}
function _interval(options: SymbolTableOptions): number {
  const interval = options.sampleInterval ?? 32;
  if (!Number.isSafeInteger(interval) || interval < 1) {
    throw new RangeError(`symbol sample interval ${interval} is not a positive integer`);
  }
  return interval;
}

function _sample(
  bytes: Uint8Array,
  first: number,
  count: number,
  interval: number,
  samples: Float64Array,
): void {
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (i % interval === 0) samples[i / interval] = first + p;
    let n = 0;
    let scale = 1;
    for (;;) {
      if (p >= bytes.length) throw new FormatError(`index symbol table: symbol ${i} cut off`);
      const x = bytes[p++];
      n += (x & 0x7f) * scale;
      if (x < 0x80) break;
      scale *= 128;
    }
    p += n;
    if (p > bytes.length) throw new FormatError(`index symbol table: symbol ${i} cut off`);
  }
}
