/**
 * The symbols of a block being written, in bounded memory, and the references that replace the
 * series' label strings.
 *
 * The writer numbers the distinct strings of a run of series in the order they come (a series'
 * labels are written as these numbers); when the estimated memory of a run's strings reaches
 * `memoryBudget`, the run is spilled: its strings sorted by UTF-8 bytes to one file, their numbers
 * in that order to another. {@link SymbolSpill.merge} merges the runs (k-way, by bytes, duplicates
 * dropped) into the symbol table, and records for every run where each of its strings ended up;
 * {@link SymbolSpill.runs} then gives, run after run, the map from a run's numbers to symbol
 * references, which rewrites that run's series.
 *
 * At most `fanIn` runs are merged at once; more are first merged in groups into longer runs. Each
 * such merge writes, for every input, the positions its strings got in the output, ascending, so
 * the map of a run is the composition of these position lists along its merges, computed by
 * reading each list forward once.
 *
 * Files (in the given dir): `symbols.<n>` (`uvarint len | bytes` per string), `symbols.<n>.ids`
 * (uvarint run numbers) and `symbols.<n>.map` (uvarint deltas of positions).
 *
 * Memory: the strings of one run (the estimate counts the string and its map entry), at most
 * `fanIn` read and write buffers of `bufferSize` during a merge, and afterwards one run's map,
 * 8 bytes a string.
 *
 * @module
 */

import { compareBytes, compareUtf8 } from "./encoding.ts";
import { MinHeap, SequentialReader, SpillWriter } from "./_stream.ts";

/** Options of {@link SymbolSpill}. */
export interface SymbolSpillOptions {
  /** Estimated bytes of a run's distinct strings before it is spilled (default 8 MiB). */
  memoryBudget?: number;
  /** Runs merged at once (default 32). */
  fanIn?: number;
  /** Read and write buffer of each file (default 64 KiB). */
  bufferSize?: number;
}

/** A run's series count and its map from the run's string numbers to symbol references. */
export interface SymbolRun {
  /** Series written while the run was collected. */
  series: number;
  /** Symbol reference of each string number of the run. */
  refs: Uint32Array;
}

// A string's estimated cost in a run: its characters (two bytes at worst) and the Map entry.
const _ENTRY_BYTES = 80;
const _encoder = new TextEncoder();

interface _Node {
  /** The sorted strings. */
  path: string;
  /** Where this node's strings went in the merge that consumed it (undefined before). */
  map?: string;
  /** That merge's output; undefined when it was the final merge (the map holds references). */
  parent?: _Node;
}

interface _Leaf extends _Node {
  /** The run's numbers, in the order of its sorted strings. */
  ids: string;
  /** Strings in the run. */
  count: number;
  /** Series in the run. */
  series: number;
}

/** Collects a block's label strings in runs; see the module doc. */
export class SymbolSpill {
  #dir: string;
  #budget: number;
  #fanIn: number;
  #bufferSize: number;
  #numbers = new Map<string, number>();
  #bytes = 0;
  #series = 0;
  #leaves: _Leaf[] = [];
  #files = 0;
  #merged = false;

  /** Spills to files in `dir`. */
  constructor(dir: string, options: SymbolSpillOptions = {}) {
    this.#dir = dir;
    this.#budget = options.memoryBudget ?? 8 * 1024 * 1024;
    this.#fanIn = Math.max(2, options.fanIn ?? 32);
    this.#bufferSize = options.bufferSize ?? 64 * 1024;
    // The empty string is always a symbol, as Prometheus writes it (the all-postings key).
    this.number("");
  }

  /** The number of `s` in the current run. */
  number(s: string): number {
    let n = this.#numbers.get(s);
    if (n === undefined) {
      n = this.#numbers.size;
      this.#numbers.set(s, n);
      this.#bytes += _ENTRY_BYTES + 2 * s.length;
    }
    return n;
  }

  /** Ends a series; true when the run is over budget: {@link SymbolSpill.spill} it. */
  endSeries(): boolean {
    this.#series++;
    return this.#bytes >= this.#budget;
  }

  /** Writes the current run's strings, sorted, and starts a new run. */
  async spill(): Promise<void> {
    const strings = [...this.#numbers.keys()];
    // UTF-16 code unit order is UTF-8 byte order unless surrogates are involved.
    if (strings.some((s) => /[\ud800-\udfff]/.test(s))) strings.sort(compareUtf8);
    else strings.sort();
    const n = this.#files++;
    const leaf: _Leaf = {
      path: `${this.#dir}/symbols.${n}`,
      ids: `${this.#dir}/symbols.${n}.ids`,
      count: strings.length,
      series: this.#series,
    };
    const out = await SpillWriter.create(leaf.path, this.#bufferSize);
    const ids = await SpillWriter.create(leaf.ids, this.#bufferSize);
    try {
      for (const s of strings) {
        const bytes = _encoder.encode(s);
        out.uvarint(bytes.length);
        out.bytes(bytes);
        ids.uvarint(this.#numbers.get(s)!);
        if (out.full) await out.flush();
        if (ids.full) await ids.flush();
      }
      await out.close();
      await ids.close();
    } catch (e) {
      out.abort();
      ids.abort();
      throw e;
    }
    this.#leaves.push(leaf);
    this.#numbers = new Map();
    this.#bytes = 0;
    this.#series = 0;
  }

  /**
   * Spills the last run and merges all runs: yields every distinct string once, as UTF-8 bytes
   * sorted bytewise (each a view valid until the next is asked for). The empty string comes first.
   */
  async *merge(): AsyncGenerator<Uint8Array> {
    if (this.#merged) throw new Error("SymbolSpill: already merged");
    this.#merged = true;
    if (this.#series > 0 || this.#leaves.length === 0) await this.spill();
    let level: _Node[] = this.#leaves;
    while (level.length > this.#fanIn) {
      const next: _Node[] = [];
      for (let i = 0; i < level.length; i += this.#fanIn) {
        const group = level.slice(i, i + this.#fanIn);
        if (group.length === 1) {
          next.push(group[0]);
          continue;
        }
        const node: _Node = { path: `${this.#dir}/symbols.${this.#files++}` };
        const out = await SpillWriter.create(node.path, this.#bufferSize);
        try {
          for await (const s of this.#mergeNodes(group, node)) {
            out.uvarint(s.length);
            out.bytes(s);
            if (out.full) await out.flush();
          }
          await out.close();
        } catch (e) {
          out.abort();
          throw e;
        }
        next.push(node);
      }
      level = next;
    }
    yield* this.#mergeNodes(level, undefined);
  }

  /** Merges `inputs` (into `parent`, or into the symbol table); writes each input's map. */
  async *#mergeNodes(inputs: _Node[], parent: _Node | undefined): AsyncGenerator<Uint8Array> {
    const sources: _Source[] = [];
    try {
      for (let i = 0; i < inputs.length; i++) {
        const node = inputs[i];
        node.map = `${node.path}.map`;
        node.parent = parent;
        sources.push(
          new _Source(
            i,
            await SequentialReader.open(node.path, this.#bufferSize),
            await SpillWriter.create(node.map, this.#bufferSize),
          ),
        );
      }
      const heap = new MinHeap<_Source>((a, b) => {
        const c = compareBytes(a.head, b.head);
        return c !== 0 ? c < 0 : a.i < b.i;
      });
      for (const s of sources) if (await s.next()) heap.push(s);
      const same: _Source[] = [];
      let position = 0;
      while (heap.size > 0) {
        const top = heap.pop()!;
        same.length = 0;
        same.push(top);
        while (heap.size > 0 && compareBytes(heap.peek()!.head, top.head) === 0) {
          same.push(heap.pop()!);
        }
        yield top.head;
        for (const s of same) {
          s.map.uvarint(position - s.last);
          s.last = position;
          if (s.map.full) await s.map.flush();
          if (await s.next()) heap.push(s);
        }
        position++;
      }
      for (const s of sources) await s.map.close();
    } finally {
      for (const s of sources) {
        s.reader.close();
        s.map.abort();
      }
    }
    for (const node of inputs) await Deno.remove(node.path);
  }

  /**
   * After {@link SymbolSpill.merge}: each run in order, with its map from string numbers to
   * symbol references.
   */
  async *runs(): AsyncGenerator<SymbolRun> {
    if (!this.#merged) throw new Error("SymbolSpill: runs() before merge()");
    for (const leaf of this.#leaves) {
      const refs = new Uint32Array(leaf.count);
      // The chain of position lists from the run to the symbol table.
      const chain: { reader: SequentialReader; index: number; value: number }[] = [];
      const ids = await SequentialReader.open(leaf.ids, this.#bufferSize);
      try {
        for (let node: _Node | undefined = leaf; node; node = node.parent) {
          chain.push({
            reader: await SequentialReader.open(node.map!, this.#bufferSize),
            index: -1,
            value: 0,
          });
        }
        for (let j = 0; j < leaf.count; j++) {
          let p = j;
          for (const link of chain) {
            while (link.index < p) {
              if (link.reader.available < 10) await link.reader.fill(10);
              link.value += link.reader.uvarint();
              link.index++;
            }
            p = link.value;
          }
          if (ids.available < 10) await ids.fill(10);
          refs[ids.uvarint()] = p;
        }
      } finally {
        ids.close();
        for (const link of chain) link.reader.close();
      }
      yield { series: leaf.series, refs };
    }
  }
}

/** A sorted string file being merged. */
class _Source {
  i: number;
  reader: SequentialReader;
  map: SpillWriter;
  head: Uint8Array = new Uint8Array(0);
  last = 0;

  constructor(i: number, reader: SequentialReader, map: SpillWriter) {
    this.i = i;
    this.reader = reader;
    this.map = map;
  }

  /** Reads the next string into `head`; false at the end. */
  async next(): Promise<boolean> {
    const r = this.reader;
    if (r.available < 10) await r.fill(10);
    if (r.done) return false;
    const n = r.uvarint();
    if (r.available < n) await r.fill(n);
    this.head = r.take(n);
    return true;
  }
}
