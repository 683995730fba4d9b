/**
 * The postings of an index being written, in bounded memory: `(name, value, series ID)` tuples
 * (label names and values as symbol references) are buffered, sorted and spilled to run files,
 * and the runs are merged into the postings section.
 *
 * Series come in ID order, so every run holds the IDs of consecutive series, and the postings of
 * one label pair over several runs are those runs' lists concatenated in run order; the sort within
 * a run is stable for the same reason. The all-postings list is the pair of symbol references
 * `(0, 0)`, that is `("", "")`, which sorts first as Prometheus writes it.
 *
 * Run file: per label pair `uvarint name | uvarint value | uvarint n | n × uvarint ID delta`.
 *
 * Memory: the tuple buffer, 24 bytes a tuple up to `memoryBudget` (the tuples and the sort's
 * arrays; at most 2^21 tuples a run, for the sort keys), grown as tuples come; the merge reads at
 * most `fanIn` runs at once through buffers of `bufferSize` bytes, and merges runs beforehand in
 * groups of `fanIn` while there are more (each such pass reads and writes all postings once).
 *
 * @module
 */

import type { BufferedFileWriter } from "./_io.ts";
import { MinHeap, SequentialReader, SpillWriter } from "./_stream.ts";
import { crc32c } from "./crc32c.ts";
import { Encbuf } from "./encoding.ts";

/** Options of {@link PostingsSpill}. */
export interface PostingsSpillOptions {
  /** Bytes of tuples held before a run is spilled (default 8 MiB; 24 bytes a tuple). */
  memoryBudget?: number;
  /** Runs merged at once (default 32). */
  fanIn?: number;
  /** Read and write buffer of each run file (default 64 KiB). */
  bufferSize?: number;
}

/** Called for each postings list written, with where its length field is. */
export type OnPostingsList = (
  name: number,
  value: number,
  offset: number,
) => void | Promise<void>;

const _TUPLE_BYTES = 24;
// Sort keys are `value * _MAX_RUN + index within the name`: exact for values below 2^32. The
// budget allows half of that, so a series' tuples still fit after the budget is reached.
const _MAX_RUN = 2 ** 21;

/** Collects postings tuples and writes the postings section from them. */
export class PostingsSpill {
  #dir: string;
  #prefix: string;
  #capacity: number;
  #fanIn: number;
  #bufferSize: number;
  #names = new Uint32Array(0);
  #values = new Uint32Array(0);
  #ids = new Uint32Array(0);
  #n = 0;
  // The sort's arrays, kept from one spill to the next.
  #order = new Uint32Array(0);
  #keys = new Float64Array(0);
  #runs: string[] = [];
  #files = 0;

  /** Spills to files `<dir>/<prefix>.<n>`. */
  constructor(dir: string, prefix: string, options: PostingsSpillOptions = {}) {
    this.#dir = dir;
    this.#prefix = prefix;
    const budget = options.memoryBudget ?? 8 * 1024 * 1024;
    this.#capacity = Math.max(1, Math.min(_MAX_RUN / 2, Math.floor(budget / _TUPLE_BYTES)));
    this.#fanIn = Math.max(2, options.fanIn ?? 32);
    this.#bufferSize = options.bufferSize ?? 64 * 1024;
  }

  /**
   * Adds a tuple (series IDs must not decrease from one call to the next); true when the buffer
   * is full: {@link PostingsSpill.spill} after the series' last tuple.
   */
  add(name: number, value: number, id: number): boolean {
    const n = this.#n;
    if (n === this.#names.length) this.#grow();
    this.#names[n] = name;
    this.#values[n] = value;
    this.#ids[n] = id;
    this.#n = n + 1;
    return this.#n >= this.#capacity;
  }

  #grow(): void {
    // Up to the capacity; beyond it (the rest of a series' tuples) by a little at a time.
    const size = this.#n < this.#capacity
      ? Math.min(this.#capacity, Math.max(1024, 2 * this.#names.length))
      : this.#n + 1024;
    const grow = (a: Uint32Array) => {
      const b = new Uint32Array(size);
      b.set(a);
      return b;
    };
    this.#names = grow(this.#names);
    this.#values = grow(this.#values);
    this.#ids = grow(this.#ids);
  }

  #path(): string {
    return `${this.#dir}/${this.#prefix}.${this.#files++}`;
  }

  /** Sorts the buffered tuples into a new run file and empties the buffer. */
  async spill(): Promise<void> {
    if (this.#n === 0) return;
    const path = this.#path();
    const w = await SpillWriter.create(path, this.#bufferSize);
    try {
      await this.#writeSorted(w);
      await w.close();
    } catch (e) {
      w.abort();
      throw e;
    }
    this.#runs.push(path);
    this.#n = 0;
  }

  async #writeSorted(w: SpillWriter): Promise<void> {
    const n = this.#n;
    if (n > _MAX_RUN) throw new RangeError(`postings: ${n} tuples in one run`);
    const names = this.#names;
    const values = this.#values;
    const ids = this.#ids;
    // Counting sort by name (there are few), stable: `order` lists tuple indexes by name.
    const counts = new Map<number, number>();
    for (let i = 0; i < n; i++) counts.set(names[i], (counts.get(names[i]) ?? 0) + 1);
    const distinct = [...counts.keys()].sort((a, b) => a - b);
    const next = new Map<number, number>();
    let at = 0;
    for (const name of distinct) {
      next.set(name, at);
      at += counts.get(name)!;
    }
    if (this.#order.length < n) {
      this.#order = new Uint32Array(this.#names.length);
      this.#keys = new Float64Array(this.#names.length);
    }
    const order = this.#order;
    for (let i = 0; i < n; i++) {
      const k = next.get(names[i])!;
      order[k] = i;
      next.set(names[i], k + 1);
    }
    // Within a name, by value and then by position (which is the order of the IDs).
    const keys = this.#keys;
    let start = 0;
    for (const name of distinct) {
      const end = start + counts.get(name)!;
      for (let k = start; k < end; k++) keys[k] = values[order[k]] * _MAX_RUN + (k - start);
      const sorted = keys.subarray(start, end).sort();
      for (let k = 0; k < sorted.length;) {
        const value = Math.floor(sorted[k] / _MAX_RUN);
        let e = k + 1;
        while (e < sorted.length && Math.floor(sorted[e] / _MAX_RUN) === value) e++;
        w.uvarint(name);
        w.uvarint(value);
        w.uvarint(e - k);
        let prev = 0;
        for (; k < e; k++) {
          const id = ids[order[start + sorted[k] - value * _MAX_RUN]];
          w.uvarint(id - prev);
          prev = id;
          if (w.full) await w.flush();
        }
      }
      start = end;
    }
  }

  /**
   * Writes the postings section to `f` (from its current position): the all-postings list first,
   * then every label pair's list in order of name and value, each 4-byte aligned as
   * `len BE32 | n BE32 | n × BE32 ID | CRC32C`. `onList` learns where each list went.
   */
  async write(f: BufferedFileWriter, onList: OnPostingsList): Promise<void> {
    // Runs beyond the fan-in are merged into fewer, longer ones first; consecutive runs stay
    // together, so IDs keep ascending from one run to the next.
    await this.spill();
    // The tuple buffer is done with: its memory is the merge's now.
    this.#names =
      this.#values =
      this.#ids =
      this.#order =
        new Uint32Array(0);
    this.#keys = new Float64Array(0);
    while (this.#runs.length > this.#fanIn) {
      const merged: string[] = [];
      for (let i = 0; i < this.#runs.length; i += this.#fanIn) {
        const group = this.#runs.slice(i, i + this.#fanIn);
        if (group.length === 1) {
          merged.push(group[0]);
          continue;
        }
        const path = this.#path();
        const w = await SpillWriter.create(path, this.#bufferSize);
        try {
          await this.#merge(group, new _RunSink(w));
          await w.close();
        } catch (e) {
          w.abort();
          throw e;
        }
        for (const p of group) await Deno.remove(p);
        merged.push(path);
      }
      this.#runs = merged;
    }
    await this.#merge(this.#runs, new _SectionSink(f, onList, this.#bufferSize));
  }

  async #merge(paths: string[], sink: _Sink): Promise<void> {
    const runs: _Run[] = [];
    try {
      for (let i = 0; i < paths.length; i++) {
        const run = new _Run(await SequentialReader.open(paths[i], this.#bufferSize), i);
        runs.push(run);
      }
      const heap = new MinHeap<_Run>((a, b) =>
        a.name !== b.name ? a.name < b.name : a.value !== b.value ? a.value < b.value : a.i < b.i
      );
      for (const run of runs) if (await run.next()) heap.push(run);
      const same: _Run[] = [];
      while (heap.size > 0) {
        const top = heap.pop()!;
        same.length = 0;
        same.push(top);
        let total = top.count;
        while (
          heap.size > 0 && heap.peek()!.name === top.name && heap.peek()!.value === top.value
        ) {
          const r = heap.pop()!;
          same.push(r);
          total += r.count;
        }
        await sink.begin(top.name, top.value, total);
        for (const r of same) {
          await r.ids(sink);
          if (await r.next()) heap.push(r);
        }
        await sink.end();
      }
      await sink.finish();
    } finally {
      for (const run of runs) run.reader.close();
    }
  }

  /** Removes the run files. */
  async cleanup(): Promise<void> {
    for (const p of this.#runs.splice(0)) await Deno.remove(p).catch(() => {});
  }
}

/** Where merged postings go: lists begun with their total length, then their IDs in order. */
interface _Sink {
  begin(name: number, value: number, count: number): Promise<void>;
  /** One ID; true when the caller should await {@link _Sink.flush}. */
  id(id: number): boolean;
  flush(): Promise<void>;
  end(): Promise<void>;
  finish(): Promise<void>;
}

/** A run file being merged: the head label pair and its list length. */
class _Run {
  reader: SequentialReader;
  i: number;
  name = 0;
  value = 0;
  count = 0;

  constructor(reader: SequentialReader, i: number) {
    this.reader = reader;
    this.i = i;
  }

  /** Reads the next label pair's header; false at the end of the run. */
  async next(): Promise<boolean> {
    const r = this.reader;
    if (r.available < 30) await r.fill(30);
    if (r.done) return false;
    this.name = r.uvarint();
    this.value = r.uvarint();
    this.count = r.uvarint();
    return true;
  }

  /** Passes the pair's IDs to `sink`. */
  async ids(sink: _Sink): Promise<void> {
    const r = this.reader;
    let id = 0;
    for (let k = 0; k < this.count; k++) {
      if (r.available < 10) await r.fill(10);
      id += r.uvarint();
      if (sink.id(id)) await sink.flush();
    }
  }
}

/** Writes merged postings as a run file. */
class _RunSink implements _Sink {
  #w: SpillWriter;
  #prev = 0;

  constructor(w: SpillWriter) {
    this.#w = w;
  }

  begin(name: number, value: number, count: number): Promise<void> {
    this.#w.uvarint(name);
    this.#w.uvarint(value);
    this.#w.uvarint(count);
    this.#prev = 0;
    return Promise.resolve();
  }

  id(id: number): boolean {
    this.#w.uvarint(id - this.#prev);
    this.#prev = id;
    return this.#w.full;
  }

  flush(): Promise<void> {
    return this.#w.flush();
  }

  end(): Promise<void> {
    return this.#w.full ? this.#w.flush() : Promise.resolve();
  }

  finish(): Promise<void> {
    return Promise.resolve();
  }
}

/** Writes merged postings as the index's postings section. */
class _SectionSink implements _Sink {
  #f: BufferedFileWriter;
  #onList: OnPostingsList;
  #e = new Encbuf();
  // File position of the first byte in #e; where the CRC of the open list starts in #e.
  #base: number;
  #crcFrom = 0;
  #crc = 0;
  #lists = 0;
  #flushAt: number;

  constructor(f: BufferedFileWriter, onList: OnPostingsList, flushAt: number) {
    this.#f = f;
    this.#onList = onList;
    this.#base = f.position;
    this.#flushAt = flushAt;
  }

  async begin(name: number, value: number, count: number): Promise<void> {
    // The all-postings list comes first even when there are no series.
    if (this.#lists === 0 && (name !== 0 || value !== 0)) {
      await this.begin(0, 0, 0);
      await this.end();
    }
    this.#lists++;
    const e = this.#e;
    const at = this.#base + e.length;
    const pad = (4 - (at % 4)) % 4;
    for (let i = 0; i < pad; i++) e.byte(0);
    const offset = this.#base + e.length;
    const p = this.#onList(name, value, offset);
    if (p) await p;
    e.be32(4 + 4 * count).be32(count);
    this.#crcFrom = e.length - 4;
    this.#crc = 0;
  }

  id(id: number): boolean {
    this.#e.be32(id);
    return this.#e.length >= this.#flushAt;
  }

  async flush(): Promise<void> {
    const bytes = this.#e.get();
    this.#crc = crc32c(bytes.subarray(this.#crcFrom), this.#crc);
    this.#crcFrom = 0;
    await this.#write(bytes);
  }

  async #write(bytes: Uint8Array): Promise<void> {
    if (bytes.length <= this.#f.room) this.#f.writeBuffered(bytes);
    else await this.#f.write(bytes);
    this.#base = this.#f.position;
    this.#e.reset();
  }

  end(): Promise<void> {
    const e = this.#e;
    this.#crc = crc32c(e.get().subarray(this.#crcFrom), this.#crc);
    e.be32(this.#crc);
    this.#crcFrom = e.length;
    return e.length >= this.#flushAt ? this.#write(e.get()) : Promise.resolve();
  }

  async finish(): Promise<void> {
    if (this.#lists === 0) {
      await this.begin(0, 0, 0);
      await this.end();
    }
    await this.#write(this.#e.get());
  }
}
