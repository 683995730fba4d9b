/**
 * Sorted runs of series: files of series with their chunks, each in label order, and their merge
 * into one {@link SeriesSource}. The head replay writes one run per shard (each shard holds an
 * arbitrary part of the label space) and merges them into the label order a block needs.
 *
 * A run holds each series as its labels key ({@link labelsKey}) and its chunks. Memory: one read
 * buffer per run while merging (`bufferSize`, default 8 KiB, grown for a larger series and
 * shrunk back after it), so the merge of R runs holds about R x 8 KiB whatever their size (a
 * million head series make about 300 runs; a series is some hundred bytes, so a read takes a few
 * dozen).
 *
 * @module
 */

import { BufferedFileWriter } from "./_io.ts";
import { compareUtf8, Decbuf, Encbuf, FormatError } from "./encoding.ts";
import type { Label } from "./index.ts";
import type { SeriesChunks, TimedChunk } from "./series.ts";

/**
 * A label set as one string, `name NUL value NUL` per label. Label names and values hold no NUL
 * in practice, so the key identifies the set, and ordering keys by UTF-8 bytes orders the sets as
 * compareLabels does (NUL sorts before every other byte, so a shorter name or value comes first).
 */
export function labelsKey(labels: readonly Label[]): string {
  // join makes one flat string; `+=` would leave a rope, flattened (copied) later on first use.
  return labels.map((l) => `${l.name}\u0000${l.value}\u0000`).join("");
}

/** The labels of a {@link labelsKey}. */
export function parseLabelsKey(key: string): Label[] {
  const parts = key.split("\u0000");
  const labels: Label[] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) {
    labels.push({ name: parts[i], value: parts[i + 1] });
  }
  return labels;
}

const _SURROGATE = /[\ud800-\udfff]/;

/** Whether keys holding `key` must be ordered by {@link compareUtf8} rather than by `<`. */
export function needsUtf8Order(key: string): boolean {
  // Without surrogates the order of UTF-16 code units is the order of UTF-8 bytes.
  return _SURROGATE.test(key);
}

/**
 * A series as a run holds it (its key, then its chunks), encoded into `into` (reset first); the
 * bytes are valid until `into` is used again.
 */
export function encodeRunSeries(
  into: Encbuf,
  key: string,
  chunks: readonly TimedChunk[],
): Uint8Array {
  into.reset();
  into.uvarintString(key).uvarint(chunks.length);
  for (const c of chunks) {
    into.byte(c.encoding).varint(c.mint).uvarint(c.maxt - c.mint).uvarint(c.data.length);
    into.bytes(c.data);
  }
  return into.get();
}

/** Writes a run: series in key order, each with its chunks. */
export class SeriesRunWriter {
  /** Path of the run file. */
  readonly path: string;
  #f: BufferedFileWriter;
  #body = new Encbuf();
  #head = new Encbuf();
  #count = 0;

  private constructor(path: string, f: BufferedFileWriter) {
    this.path = path;
    this.#f = f;
  }

  /** Creates the run file `path` (which must not exist). */
  static async create(path: string, bufferSize = 256 * 1024): Promise<SeriesRunWriter> {
    const file = await BufferedFileWriter.create(path, bufferSize, { temporary: true });
    return new SeriesRunWriter(path, file);
  }

  /** Series written. */
  get count(): number {
    return this.#count;
  }

  /** Appends a series; keys must come in order (the caller's, see {@link mergeSeriesRuns}). */
  async add(key: string, chunks: readonly TimedChunk[]): Promise<void> {
    await this.addEncoded(encodeRunSeries(this.#body, key, chunks));
  }

  /** Appends a series {@link encodeRunSeries} encoded, in key order as {@link add}. */
  async addEncoded(body: Uint8Array): Promise<void> {
    const h = this.#head;
    h.reset();
    await this.#f.write(h.uvarint(body.length).get());
    await this.#f.write(body);
    this.#count++;
  }

  /** Completes the file. */
  async finish(): Promise<void> {
    await this.#f.close();
  }

  /** Closes and removes the file. */
  async abort(): Promise<void> {
    this.#f.abort();
    await Deno.remove(this.path).catch(() => {});
  }
}

/** Options of {@link mergeSeriesRuns}. */
export interface MergeRunsOptions {
  /** Order keys by UTF-8 bytes ({@link needsUtf8Order} held for some key); else by `<`. */
  utf8Order?: boolean;
  /** Initial read buffer of each run (default 8 KiB). */
  bufferSize?: number;
}

/**
 * The series of several runs, each in key order and no key in two runs, merged in label order.
 * A series' chunk data is valid until the next series is asked for.
 */
export async function* mergeSeriesRuns(
  paths: readonly string[],
  options: MergeRunsOptions = {},
): AsyncGenerator<SeriesChunks> {
  for (const s of mergeRunKeys(paths, options)) {
    yield { labels: parseLabelsKey(s.key), chunks: s.chunks };
  }
}

/** A series as a run holds it: its labels key and its chunks. */
export interface RunSeries {
  key: string;
  chunks: TimedChunk[];
}

/**
 * {@link mergeSeriesRuns} with each series' labels left as their key (for a thread that passes the
 * series on encoded, `run_merge_ahead.ts`); synchronous, since the runs were just written (page
 * cache). A series' chunk data is valid until the next series is asked for.
 */
export function* mergeRunKeys(
  paths: readonly string[],
  options: MergeRunsOptions = {},
): Generator<RunSeries> {
  const before = options.utf8Order
    ? (a: string, b: string) => compareUtf8(a, b) < 0
    : (a: string, b: string) => a < b;
  const less = (a: _RunReader, b: _RunReader) => before(a.series.key, b.series.key);
  const readers: _RunReader[] = [];
  try {
    // A binary min-heap of the runs by their current key.
    const heap: _RunReader[] = [];
    for (const path of paths) {
      const r = _RunReader.open(path, options.bufferSize ?? 8 * 1024);
      readers.push(r);
      if (r.next()) _push(heap, r, less);
    }
    let previous: string | undefined;
    while (heap.length > 0) {
      const top = heap[0];
      if (previous !== undefined && !before(previous, top.series.key)) {
        throw new FormatError(`${top.path}: series out of order or in two runs`);
      }
      previous = top.series.key;
      yield top.series;
      if (top.next()) _siftDown(heap, 0, less);
      else {
        const last = heap.pop()!;
        if (heap.length > 0) {
          heap[0] = last;
          _siftDown(heap, 0, less);
        }
      }
    }
  } finally {
    for (const r of readers) r.close();
  }
}

/** A series {@link encodeRunSeries} encoded; its chunks' data are views into `body`. */
export function decodeRunSeries(body: Uint8Array): RunSeries {
  const d = new Decbuf(body);
  const key = d.uvarintString();
  const chunks: TimedChunk[] = [];
  for (let n = d.uvarint(); n > 0; n--) {
    const encoding = d.byte();
    const mint = d.varint64();
    const maxt = mint + d.uvarint64();
    const data = d.take(d.uvarint());
    chunks.push({ encoding, data, mint, maxt });
  }
  return { key, chunks };
}

function _push(
  heap: _RunReader[],
  r: _RunReader,
  less: (a: _RunReader, b: _RunReader) => boolean,
): void {
  heap.push(r);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!less(heap[i], heap[parent])) break;
    [heap[i], heap[parent]] = [heap[parent], heap[i]];
    i = parent;
  }
}

function _siftDown(
  heap: _RunReader[],
  at: number,
  less: (a: _RunReader, b: _RunReader) => boolean,
): void {
  let i = at;
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let min = i;
    if (l < heap.length && less(heap[l], heap[min])) min = l;
    if (r < heap.length && less(heap[r], heap[min])) min = r;
    if (min === i) return;
    [heap[i], heap[min]] = [heap[min], heap[i]];
    i = min;
  }
}

/** Reads a run's series one at a time. */
class _RunReader {
  readonly path: string;
  series: RunSeries = { key: "", chunks: [] };
  #file: Deno.FsFile;
  #size: number;
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  #eof = false;

  private constructor(path: string, file: Deno.FsFile, size: number) {
    this.path = path;
    this.#file = file;
    this.#size = size;
    this.#buf = new Uint8Array(size);
  }

  static open(path: string, size: number): _RunReader {
    return new _RunReader(path, Deno.openSync(path, { read: true }), size);
  }

  /** Reads the next series into `series`; false at the end. */
  next(): boolean {
    for (;;) {
      const avail = this.#end - this.#start;
      let len = -1;
      let at = 0;
      if (avail > 0) {
        const d = new Decbuf(this.#buf.subarray(this.#start, this.#end));
        try {
          len = d.uvarint();
          at = d.offset;
        } catch { /* the length itself is cut off */ }
      }
      if (len >= 0 && at + len <= avail) {
        this.series = decodeRunSeries(this.#buf.subarray(this.#start + at, this.#start + at + len));
        this.#start += at + len;
        return true;
      }
      if (this.#eof) {
        if (avail === 0) return false;
        throw new FormatError(`${this.path}: truncated`);
      }
      this.#fill(len < 0 ? 10 : at + len);
    }
  }

  // Makes room for `need` bytes from the current position and reads more. The previous series'
  // chunks are views into the buffer: the caller is done with them once it asks for the next.
  #fill(need: number): void {
    const rest = this.#buf.subarray(this.#start, this.#end);
    if (need > this.#buf.length || (this.#buf.length > this.#size && need <= this.#size)) {
      // Grown for a large series, or back to the usual size after one.
      const next = new Uint8Array(Math.max(this.#size, need));
      next.set(rest);
      this.#buf = next;
    } else {
      this.#buf.copyWithin(0, this.#start, this.#end);
    }
    this.#end -= this.#start;
    this.#start = 0;
    // Synchronous: the run was just written (page cache), and an await per read left the thread
    // idle for a fifth of the merge.
    const n = this.#file.readSync(this.#buf.subarray(this.#end));
    if (n === null) this.#eof = true;
    else this.#end += n;
  }

  close(): void {
    try {
      this.#file.close();
    } catch { /* already closed */ }
  }
}
