/**
 * Sorted runs of series on disk and their k-way merge: how remote read keeps memory bounded while
 * the answers of many requests (time slices × series batches) come in, each sorted on its own,
 * and are put out as one stream in {@link compareLabels} order with each label set once.
 *
 * A run file is a sequence of records `uvarint length | payload`, payload =
 * `uvarint nLabels (uvarint len, UTF-8 name, uvarint len, UTF-8 value)… uvarint nChunks
 * (LE64 mint, LE64 maxt, encoding byte, uvarint len, data)…`. Within a run, records are in label
 * order; one label set may span consecutive records (a series split over frames).
 *
 * @module
 */

import { compareBytes } from "../tsdb/encoding.ts";
import { compareLabels, type Label } from "../tsdb/index.ts";
import type { SeriesChunks, TimedChunk } from "../tsdb/series.ts";

const _encoder = new TextEncoder();
const _decoder = new TextDecoder();

/** Appends records to a growable byte buffer. */
class _RecordBuffer {
  bytes = new Uint8Array(64 * 1024);
  view = new DataView(this.bytes.buffer);
  length = 0;

  ensure(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
    this.view = new DataView(next.buffer);
  }

  uvarint(v: number): void {
    this.ensure(8);
    let x = v;
    while (x >= 0x80) {
      this.bytes[this.length++] = (x % 128) | 0x80;
      x = Math.floor(x / 128);
    }
    this.bytes[this.length++] = x;
  }

  string(s: string): void {
    this.ensure(s.length * 3 + 8);
    // Reserve one byte for the length; move the text if the length needs more.
    const start = this.length;
    const { written } = _encoder.encodeInto(s, this.bytes.subarray(start + 1));
    if (written < 0x80) {
      this.bytes[start] = written;
      this.length = start + 1 + written;
      return;
    }
    const text = this.bytes.slice(start + 1, start + 1 + written);
    this.length = start;
    this.uvarint(written);
    this.raw(text);
  }

  int64(v: bigint): void {
    this.ensure(8);
    this.view.setBigInt64(this.length, v, true);
    this.length += 8;
  }

  raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.bytes.set(b, this.length);
    this.length += b.length;
  }
}

/** Encodes one record (length prefix included) into `buf`. */
function _encodeRecord(
  buf: _RecordBuffer,
  labels: readonly Label[],
  chunks: readonly TimedChunk[],
) {
  const start = buf.length;
  buf.ensure(5);
  buf.length += 5; // room for the length, fixed 5-byte uvarint
  buf.uvarint(labels.length);
  for (const l of labels) {
    buf.string(l.name);
    buf.string(l.value);
  }
  buf.uvarint(chunks.length);
  for (const c of chunks) {
    buf.int64(c.mint);
    buf.int64(c.maxt);
    buf.ensure(1);
    buf.bytes[buf.length++] = c.encoding;
    buf.uvarint(c.data.length);
    buf.raw(c.data);
  }
  // A padded uvarint (continuation bits set on the leading bytes) keeps the layout simple.
  let len = buf.length - start - 5;
  for (let i = 0; i < 5; i++) {
    buf.bytes[start + i] = (len & 0x7f) | (i < 4 ? 0x80 : 0);
    len = Math.floor(len / 128);
  }
}

/**
 * Writes one sorted run. {@link RunWriter.append} refuses a label set that sorts before the
 * previous one; the caller then starts a new run.
 */
export class RunWriter {
  #file: Deno.FsFile;
  #buf = new _RecordBuffer();
  #last: Label[] | undefined;
  #bytes = 0;
  #records = 0;
  /** The file's path. */
  readonly path: string;

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  /** Creates a new run file at `path`. */
  static async create(path: string): Promise<RunWriter> {
    return new RunWriter(path, await Deno.open(path, { write: true, createNew: true }));
  }

  /** Bytes written (buffered ones included). */
  get bytes(): number {
    return this.#bytes + this.#buf.length;
  }

  /** Records written. */
  get records(): number {
    return this.#records;
  }

  /** Whether `labels` may follow the last record (equal or greater). */
  accepts(labels: readonly Label[]): boolean {
    return this.#last === undefined || compareLabels(this.#last, labels) <= 0;
  }

  /** Appends a record; throws a RangeError if it would break the order. */
  async append(labels: Label[], chunks: readonly TimedChunk[]): Promise<void> {
    if (!this.accepts(labels)) throw new RangeError("RunWriter: labels out of order");
    this.#last = labels;
    _encodeRecord(this.#buf, labels, chunks);
    this.#records++;
    if (this.#buf.length >= 256 * 1024) await this.#flush();
  }

  async #flush(): Promise<void> {
    const bytes = this.#buf.bytes.subarray(0, this.#buf.length);
    let done = 0;
    while (done < bytes.length) done += await this.#file.write(bytes.subarray(done));
    this.#bytes += bytes.length;
    this.#buf.length = 0;
    if (this.#buf.bytes.length > 4 * 1024 * 1024) this.#buf = new _RecordBuffer();
  }

  /** Flushes and closes the file. */
  async close(): Promise<void> {
    try {
      await this.#flush();
    } finally {
      this.#file.close();
    }
  }

  /** Closes the file without flushing (after an error). */
  abort(): void {
    try {
      this.#file.close();
    } catch { /* already closed */ }
  }
}

/** Reads the records of a run file in order. */
export class RunReader {
  #file: Deno.FsFile;
  #buf: Uint8Array;
  #view: DataView;
  #pos = 0;
  #end = 0;
  #eof = false;

  private constructor(file: Deno.FsFile, bufferSize: number) {
    this.#file = file;
    this.#buf = new Uint8Array(bufferSize);
    this.#view = new DataView(this.#buf.buffer);
  }

  /** Opens a run file. */
  static async open(path: string, bufferSize = 64 * 1024): Promise<RunReader> {
    return new RunReader(await Deno.open(path, { read: true }), bufferSize);
  }

  async #ensure(n: number): Promise<boolean> {
    if (this.#end - this.#pos >= n) return true;
    if (this.#pos > 0) {
      this.#buf.copyWithin(0, this.#pos, this.#end);
      this.#end -= this.#pos;
      this.#pos = 0;
    }
    if (n > this.#buf.length) {
      const next = new Uint8Array(Math.max(n, this.#buf.length * 2));
      next.set(this.#buf.subarray(0, this.#end));
      this.#buf = next;
      this.#view = new DataView(next.buffer);
    }
    while (this.#end < n && !this.#eof) {
      const got = await this.#file.read(this.#buf.subarray(this.#end));
      if (got === null) this.#eof = true;
      else this.#end += got;
    }
    return this.#end >= n;
  }

  /** The next record, or `undefined` at the end. Chunk data are copies. */
  async next(): Promise<SeriesChunks | undefined> {
    if (!(await this.#ensure(5))) {
      if (this.#end - this.#pos > 0) throw new Error("run file: truncated record length");
      return undefined;
    }
    let len = 0;
    for (let i = 0, mul = 1; i < 5; i++, mul *= 128) len += (this.#buf[this.#pos + i] & 0x7f) * mul;
    this.#pos += 5;
    if (!(await this.#ensure(len))) throw new Error("run file: truncated record");
    const b = this.#buf;
    const view = this.#view;
    let p = this.#pos;
    const end = p + len;
    const uvarint = (): number => {
      let v = 0;
      for (let mul = 1;; mul *= 128) {
        const x = b[p++];
        v += (x & 0x7f) * mul;
        if (x < 0x80) return v;
      }
    };
    const str = (): string => {
      const n = uvarint();
      const s = _decoder.decode(b.subarray(p, p + n));
      p += n;
      return s;
    };
    const nLabels = uvarint();
    const labels: Label[] = new Array(nLabels);
    for (let i = 0; i < nLabels; i++) labels[i] = { name: str(), value: str() };
    const nChunks = uvarint();
    const chunks: TimedChunk[] = new Array(nChunks);
    for (let i = 0; i < nChunks; i++) {
      const mint = view.getBigInt64(p, true);
      const maxt = view.getBigInt64(p + 8, true);
      const encoding = b[p + 16];
      p += 17;
      const n = uvarint();
      chunks[i] = { mint, maxt, encoding, data: b.slice(p, p + n) };
      p += n;
    }
    if (p !== end) throw new Error("run file: record length mismatch");
    this.#pos = end;
    return { labels, chunks };
  }

  /** Closes the file. */
  close(): void {
    try {
      this.#file.close();
    } catch { /* already closed */ }
  }
}

/** Counts kept by {@link combineChunks}. */
export interface CombineStats {
  /** Exact duplicate chunks dropped. */
  duplicateChunks: number;
}

/**
 * Puts the chunks of one series (gathered from several requests) in time order (by min time,
 * then max time) and drops exact duplicates (same range, encoding and bytes). Overlapping chunks
 * that differ are kept; trimming to the window is left to the block writer.
 */
export function combineChunks(chunks: TimedChunk[], stats?: CombineStats): TimedChunk[] {
  if (chunks.length < 2) return chunks;
  let sorted = true;
  for (let i = 1; i < chunks.length && sorted; i++) {
    if (_compareChunks(chunks[i - 1], chunks[i]) >= 0) sorted = false;
  }
  if (sorted) return chunks;
  chunks.sort(_compareChunks);
  const out: TimedChunk[] = [chunks[0]];
  for (let i = 1; i < chunks.length; i++) {
    if (_compareChunks(out[out.length - 1], chunks[i]) === 0) {
      if (stats) stats.duplicateChunks++;
      continue;
    }
    out.push(chunks[i]);
  }
  return out;
}

function _compareChunks(a: TimedChunk, b: TimedChunk): number {
  if (a.mint !== b.mint) return a.mint < b.mint ? -1 : 1;
  if (a.maxt !== b.maxt) return a.maxt < b.maxt ? -1 : 1;
  if (a.encoding !== b.encoding) return a.encoding - b.encoding;
  return compareBytes(a.data, b.data);
}

interface _HeapItem {
  reader: RunReader;
  head: SeriesChunks;
}

/** A binary min-heap of run heads by labels. */
class _Heap {
  items: _HeapItem[] = [];

  push(item: _HeapItem): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (compareLabels(a[parent].head.labels, a[i].head.labels) <= 0) break;
      [a[parent], a[i]] = [a[i], a[parent]];
      i = parent;
    }
  }

  pop(): _HeapItem | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      this.#down(0);
    }
    return top;
  }

  peek(): _HeapItem | undefined {
    return this.items[0];
  }

  #down(start: number): void {
    const a = this.items;
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && compareLabels(a[l].head.labels, a[m].head.labels) < 0) m = l;
      if (r < a.length && compareLabels(a[r].head.labels, a[m].head.labels) < 0) m = r;
      if (m === i) return;
      [a[m], a[i]] = [a[i], a[m]];
      i = m;
    }
  }
}

/**
 * Merges run files into one stream in label order, each label set once with its chunks combined
 * by {@link combineChunks}. Opens every path at once: callers bound the fan-in. Closes the files
 * when done or abandoned.
 */
export async function* mergeRuns(
  paths: readonly string[],
  stats?: CombineStats,
): AsyncGenerator<SeriesChunks> {
  const readers: RunReader[] = [];
  try {
    const heap = new _Heap();
    for (const path of paths) {
      const reader = await RunReader.open(path);
      readers.push(reader);
      const head = await reader.next();
      if (head) heap.push({ reader, head });
    }
    for (;;) {
      const top = heap.pop();
      if (!top) return;
      const labels = top.head.labels;
      let chunks = top.head.chunks;
      const advance = async (item: _HeapItem) => {
        const next = await item.reader.next();
        if (next) heap.push({ reader: item.reader, head: next });
      };
      await advance(top);
      for (let p = heap.peek(); p && compareLabels(p.head.labels, labels) === 0; p = heap.peek()) {
        heap.pop();
        chunks = chunks.concat(p.head.chunks);
        await advance(p);
      }
      yield { labels, chunks: combineChunks(chunks, stats) };
    }
  } finally {
    for (const r of readers) r.close();
  }
}
