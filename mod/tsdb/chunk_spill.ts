/**
 * Finished chunks of many series, kept in bounded memory: the first ones in a few large slabs,
 * the rest in a temporary file, each series' chunks linked in the order they were added.
 *
 * Why not one `Uint8Array` per chunk: a head replay finishes hundreds of thousands of small
 * chunks, and each typed array costs about as much again in V8 objects and malloc'ed backing
 * store bookkeeping as its ~200 bytes of data. Here a chunk costs 29 bytes of typed-array rows
 * beyond its data, whatever the number of chunks.
 *
 * @module
 */

import { BufferedFileWriter } from "./_io.ts";
import type { TimedChunk } from "./series.ts";

/** Size of a memory slab; larger chunks go to the file. */
const _SLAB = 1 << 20;

/** Options of {@link ChunkSpill.create}. */
export interface ChunkSpillOptions {
  /** Bytes of chunk data kept in memory before chunks go to the file (default 4 MiB). */
  memoryBudget?: number;
}

/**
 * Chunks of numbered lists (one per series). {@link ChunkSpill.add} is synchronous so hot loops
 * stay so; when {@link ChunkSpill.needsFlush} says so, await {@link ChunkSpill.flush}.
 */
export class ChunkSpill {
  #path: string;
  #writer: BufferedFileWriter | null;
  #reader: Deno.FsFile | null = null;
  #overflow: Uint8Array[] = [];
  #overflowBytes = 0;
  #budget: number;
  #slabs: Uint8Array[] = [];
  #slabUsed = _SLAB;
  #memoryBytes = 0;
  // One row per chunk: where (file offset, or -1 - memory offset), size, encoding, mint,
  // maxt - mint, next chunk of the list (-1 at the end).
  #count = 0;
  #at = new Float64Array(1024);
  #size = new Uint32Array(1024);
  #encoding = new Uint8Array(1024);
  #mint = new Float64Array(1024);
  #span = new Uint32Array(1024);
  #next = new Int32Array(1024);
  // First and last chunk per list (-1: none).
  #first = new Int32Array(1024).fill(-1);
  #last = new Int32Array(1024).fill(-1);

  private constructor(path: string, writer: BufferedFileWriter, budget: number) {
    this.#path = path;
    this.#writer = writer;
    this.#budget = budget;
  }

  /** Creates the spill with its temporary file `path` (which must not exist). */
  static async create(path: string, options: ChunkSpillOptions = {}): Promise<ChunkSpill> {
    const writer = await BufferedFileWriter.create(path, undefined, { temporary: true });
    return new ChunkSpill(path, writer, options.memoryBudget ?? 4 * 1024 * 1024);
  }

  /** Chunk data bytes held in memory. */
  get memoryBytes(): number {
    return this.#memoryBytes;
  }

  /** Whether chunks wait in memory for {@link ChunkSpill.flush}. */
  get needsFlush(): boolean {
    return this.#overflow.length > 0;
  }

  /**
   * Appends a chunk (its data is copied) to list `list` (a small non-negative integer).
   * `mint` and `maxt` are ms timestamps; a chunk spans less than 49 days.
   */
  add(list: number, encoding: number, data: Uint8Array, mint: number, maxt: number): void {
    const writer = this.#writer;
    if (!writer) throw new Error("ChunkSpill: add after finish");
    const i = this.#count++;
    if (i === this.#at.length) this.#growRows();
    if (list >= this.#first.length) this.#growLists(list);
    const size = data.length;
    if (this.#memoryBytes + size <= this.#budget && size <= _SLAB) {
      if (this.#slabUsed + size > _SLAB) {
        this.#slabs.push(new Uint8Array(_SLAB));
        this.#slabUsed = 0;
      }
      const slab = this.#slabs.length - 1;
      this.#slabs[slab].set(data, this.#slabUsed);
      this.#at[i] = -1 - (slab * _SLAB + this.#slabUsed);
      this.#slabUsed += size;
      this.#memoryBytes += size;
    } else {
      this.#at[i] = writer.position + this.#overflowBytes;
      if (this.#overflow.length === 0 && size <= writer.room) writer.writeBuffered(data);
      else {
        this.#overflow.push(data.slice());
        this.#overflowBytes += size;
      }
    }
    this.#size[i] = size;
    this.#encoding[i] = encoding;
    this.#mint[i] = mint;
    this.#span[i] = maxt - mint;
    this.#next[i] = -1;
    const last = this.#last[list];
    if (last < 0) this.#first[list] = i;
    else this.#next[last] = i;
    this.#last[list] = i;
  }

  /** Empties list `list` (its chunks' bytes stay where they are, unused). */
  clear(list: number): void {
    if (list < this.#first.length) this.#first[list] = this.#last[list] = -1;
  }

  /** Whether list `list` has chunks. */
  has(list: number): boolean {
    return list < this.#first.length && this.#first[list] >= 0;
  }

  /** Writes the chunks that waited for the file. */
  async flush(): Promise<void> {
    const writer = this.#writer;
    if (!writer) return;
    const waiting = this.#overflow;
    this.#overflow = [];
    this.#overflowBytes = 0;
    for (const data of waiting) await writer.write(data);
  }

  /** Ends the adding: the file is complete and can be read. */
  async finish(): Promise<void> {
    await this.flush();
    await this.#writer?.close();
    this.#writer = null;
  }

  /**
   * The chunks of list `list`, in the order they were added (after {@link ChunkSpill.finish}).
   * Chunks from memory are views, valid until {@link ChunkSpill.close}.
   */
  read(list: number): TimedChunk[] {
    if (this.#writer) throw new Error("ChunkSpill: read before finish");
    const out: TimedChunk[] = [];
    if (list >= this.#first.length) return out;
    for (let i = this.#first[list]; i >= 0; i = this.#next[i]) {
      const at = this.#at[i];
      const size = this.#size[i];
      let data: Uint8Array;
      if (at < 0) {
        const offset = -1 - at;
        const slab = Math.floor(offset / _SLAB);
        const start = offset - slab * _SLAB;
        data = this.#slabs[slab].subarray(start, start + size);
      } else {
        data = this.#readFile(at, size);
      }
      const mint = this.#mint[i];
      out.push({
        encoding: this.#encoding[i],
        data,
        mint: BigInt(mint),
        maxt: BigInt(mint + this.#span[i]),
      });
    }
    return out;
  }

  // Synchronous reads: the chunks are small and come from a file just written (page cache), where
  // an async read's round trip costs several times the read itself.
  #readFile(at: number, size: number): Uint8Array {
    this.#reader ??= Deno.openSync(this.#path, { read: true });
    const data = new Uint8Array(size);
    this.#reader.seekSync(at, Deno.SeekMode.Start);
    let done = 0;
    while (done < size) {
      const n = this.#reader.readSync(data.subarray(done));
      if (n === null) throw new RangeError(`chunk spill file: ends before byte ${at + size}`);
      done += n;
    }
    return data;
  }

  /** Frees the memory and removes the file. */
  async close(): Promise<void> {
    this.#slabs = [];
    this.#overflow = [];
    this.#writer?.abort();
    this.#writer = null;
    this.#reader?.close();
    this.#reader = null;
    await Deno.remove(this.#path).catch(() => {});
  }

  #growRows(): void {
    const n = this.#at.length * 2;
    this.#at = _grown(this.#at, new Float64Array(n));
    this.#size = _grown(this.#size, new Uint32Array(n));
    this.#encoding = _grown(this.#encoding, new Uint8Array(n));
    this.#mint = _grown(this.#mint, new Float64Array(n));
    this.#span = _grown(this.#span, new Uint32Array(n));
    this.#next = _grown(this.#next, new Int32Array(n));
  }

  #growLists(list: number): void {
    let n = this.#first.length * 2;
    while (n <= list) n *= 2;
    this.#first = _grown(this.#first, new Int32Array(n).fill(-1));
    this.#last = _grown(this.#last, new Int32Array(n).fill(-1));
  }
}

function _grown<T extends Float64Array | Uint32Array | Int32Array | Uint8Array>(
  old: T,
  next: T,
): T {
  next.set(old as ArrayLike<number>);
  return next;
}
