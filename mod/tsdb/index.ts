/**
 * A block's `index` file (`tsdb/index/index.go`).
 *
 * Layout: header (magic `0xBAAAD700`, version byte 1, 2 or 3), symbol table, series, (legacy
 * label indices), postings, (legacy label offset table), postings offset table, and a 52-byte
 * TOC at the end (six BE64 section offsets and a CRC32C). Every section carries a CRC32C.
 *
 * Memory is bounded whatever the number of series, as in Prometheus:
 *
 * - The reader keeps the position of every 32nd symbol and reads symbols on demand, a window of
 *   series' labels at a time in one forward pass (`_symbol_table.ts`); it streams the series
 *   section through a bounded window; it reads the postings offset table only when postings are
 *   asked for, keeping every 32nd entry of each label name. It reads versions 1 (absolute offsets
 *   as symbol references and series IDs), 2 and 3 (3 is 2 without legacy sections), and the
 *   version 2 indexes of Prometheus 2.1 whose header says 1 as version 2 (`badIndexVersion`), as
 *   Prometheus' repair reads them.
 * - The writer streams a sorted symbol table through a temporary file, spills postings as sorted
 *   runs in a memory budget and merges them (`_postings.ts`), and looks the postings offset
 *   table's strings up in the written symbol table. It writes version 2 as Prometheus ≥ 3.7
 *   does: without the legacy label indices, their TOC entries set to the postings start and the
 *   postings offset table start.
 *
 * @module
 */

import { BufferedFileWriter, FileLock, readExactAt } from "./_io.ts";
import { PostingsSpill } from "./_postings.ts";
import { readAtSync, SequentialReader, SpillWriter } from "./_stream.ts";
import { SymbolTable, type SymbolTableOptions } from "./_symbol_table.ts";
import { crc32c } from "./crc32c.ts";
import { compareBytes, compareUtf8, Decbuf, Encbuf, FormatError } from "./encoding.ts";

/** Magic number at the start of an index file. */
export const MAGIC_INDEX = 0xbaaad700;
/** Size of the TOC at the end of the file. */
export const INDEX_TOC_LEN: number = 6 * 8 + 4;
const _HEADER_LEN = 5;
const _SERIES_ALIGN = 16;
// Series IDs are 4-byte multiples of 16, so the series must lie within the first 64 GiB.
const _MAX_INDEX_SIZE = 16 * 2 ** 32;

/** A label pair. */
export interface Label {
  /** Label name. */
  name: string;
  /** Label value. */
  value: string;
}

/** Where a chunk is and which closed time range `[mint, maxt]` its samples cover. */
export interface ChunkMeta {
  /** First sample's timestamp (ms). */
  mint: bigint;
  /** Last sample's timestamp (ms). */
  maxt: bigint;
  /** Chunk reference (`segIndex << 32 | offset`). */
  ref: bigint;
}

/** One series entry of the index. */
export interface IndexSeries {
  /** Series ID: offset/16 in v2/v3, the byte offset in v1 (what postings and tombstones use). */
  id: number;
  /** Labels, sorted by name. */
  labels: Label[];
  /** Chunk metas, in time order. */
  chunks: ChunkMeta[];
}

/** The table of contents: absolute offsets of the sections (0 = absent). */
export interface IndexTOC {
  /** Symbol table. */
  symbols: number;
  /** Series. */
  series: number;
  /** Legacy label indices. */
  labelIndices: number;
  /** Legacy label offset table. */
  labelIndicesTable: number;
  /** Postings lists. */
  postings: number;
  /** Postings offset table. */
  postingsTable: number;
}

/** An entry of the postings offset table. */
export interface PostingsOffset {
  /** Label name ("" for the all-postings list). */
  name: string;
  /** Label value ("" for the all-postings list). */
  value: string;
  /** Absolute offset of the postings list's length field. */
  offset: number;
}

/**
 * Compares label sets as Prometheus' `labels.Compare` does: pairwise by name, then by value (both
 * by UTF-8 bytes); a label set that is a prefix of the other sorts first.
 */
export function compareLabels(a: readonly Label[], b: readonly Label[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i].name !== b[i].name) return compareUtf8(a[i].name, b[i].name);
    if (a[i].value !== b[i].value) return compareUtf8(a[i].value, b[i].value);
  }
  return a.length - b.length;
}

/** Reads a section `len BE32 | body | CRC32C(body)` at `pos`; returns the body. */
async function _readSection(
  file: Deno.FsFile,
  pos: number,
  fileSize: number,
  what: string,
): Promise<Uint8Array> {
  if (pos + 4 > fileSize) throw new FormatError(`index ${what}: offset ${pos} beyond the file`);
  const lenBytes = await readExactAt(file, pos, 4, `index ${what}`);
  const len = new DataView(lenBytes.buffer).getUint32(0);
  if (pos + 4 + len + 4 > fileSize) {
    throw new FormatError(`index ${what}: ${len} bytes at ${pos} run past the end of the file`);
  }
  const all = await readExactAt(file, pos + 4, len + 4, `index ${what}`);
  const body = all.subarray(0, len);
  const want = new DataView(all.buffer).getUint32(len);
  if (crc32c(body) !== want) throw new FormatError(`index ${what} at ${pos}: CRC32C mismatch`);
  return body;
}

/** How the symbol table is read (see `_symbol_table.ts`); shared by reader and writer. */
export interface IndexSymbolOptions {
  /**
   * Every how many symbols (and, in the reader, postings offset table entries of a label name)
   * the position is kept in memory (default 32, as Prometheus).
   */
  sampleInterval?: number;
  /** Decoded symbols cached (default 4096). */
  symbolCacheSize?: number;
  /** Symbol tables up to this many bytes are held in memory whole (default 1 MiB). */
  symbolTableMemoryMax?: number;
  /**
   * Bytes read at once from the symbol table while lookups move forward, and from the postings
   * offset table (default 64 KiB).
   */
  sectionWindowSize?: number;
}

/** Options of {@link IndexReader.open}. */
export interface IndexReaderOptions extends IndexSymbolOptions {
  /** Bytes read at once while iterating the series (default 256 KiB). */
  windowSize?: number;
  /**
   * Read the index as written by Prometheus 2.1 (meta.json version 2, see
   * `BlockMeta.badIndexVersion`): its header says version 1 but the content is version 2.
   * Prometheus repairs it by setting the header's version byte to 2 whatever it held
   * (`tsdb/repair.go`); the reader reads it as version 2 in the same way. Its postings offset
   * table is held whole and sorted, as version 1's, since a 2.1 writer's order is not relied on.
   */
  badIndexVersion?: boolean;
}

function _symbolTableOptions(o: IndexSymbolOptions): SymbolTableOptions {
  return {
    sampleInterval: o.sampleInterval,
    cacheSize: o.symbolCacheSize,
    memoryMax: o.symbolTableMemoryMax,
    windowSize: o.sectionWindowSize,
  };
}

/** A series entry's labels as symbol references, before they are resolved. */
interface _RawSeries {
  id: number;
  body: Uint8Array;
  /** Where its label references start in the batch's reference array. */
  refsAt: number;
  labels: number;
  /** Offset of the chunk metas in `body`. */
  chunksAt: number;
}

/** Reads a block's index file. */
export class IndexReader {
  /**
   * Format version the index is read as: the header byte (1, 2 or 3), or 2 for a Prometheus 2.1
   * index (`badIndexVersion`).
   */
  readonly version: number;
  /** Table of contents. */
  readonly toc: IndexTOC;
  /** File size in bytes. */
  readonly size: number;
  #file: Deno.FsFile;
  #lock = new FileLock();
  #windowSize: number;
  #sectionWindowSize: number;
  #interval: number;
  #symbols: SymbolTable;
  #postingsTable: Promise<_PostingsTable> | undefined;
  #unsortedTable: boolean;
  #seriesEnd: number;

  private constructor(
    file: Deno.FsFile,
    size: number,
    version: number,
    toc: IndexTOC,
    options: IndexReaderOptions,
  ) {
    this.#file = file;
    this.size = size;
    this.version = version;
    this.toc = toc;
    this.#windowSize = options.windowSize ?? 256 * 1024;
    this.#sectionWindowSize = options.sectionWindowSize ?? 64 * 1024;
    this.#interval = options.sampleInterval ?? 32;
    this.#unsortedTable = version === 1 || options.badIndexVersion === true;
    this.#symbols = new SymbolTable(
      this.#readAt,
      this.#readSync,
      0,
      0,
      0,
      new Float64Array(0),
      version === 1,
    );
    // The series section ends where the next section starts.
    const tocEnd = size - INDEX_TOC_LEN;
    this.#seriesEnd = Object.values(toc)
      .filter((o) => o > toc.series)
      .reduce((a, b) => Math.min(a, b), tocEnd);
  }

  /**
   * Positioned reads of the index file, one at a time (seek + read is not atomic); blocking
   * calls are cheaper than async ones, and these reads are small.
   */
  #readAt = (pos: number, buf: Uint8Array): Promise<number> =>
    this.#lock.run(() => Promise.resolve(readAtSync(this.#file, pos, buf)));
  /** A blocking positioned read, for symbol lookups, which run under the file lock. */
  #readSync = (pos: number, buf: Uint8Array): number => readAtSync(this.#file, pos, buf);

  /** Resolves symbol references under the file lock (see {@link SymbolTable.resolve}). */
  #resolve(refs: ArrayLike<number>, n: number, out: string[]): Promise<void> {
    return this.#lock.run(() => Promise.resolve(this.#symbols.resolve(refs, n, out)));
  }

  /**
   * Opens `path`, checks header and TOC, and reads the symbol table once (checking its CRC32C)
   * to sample it; symbols are then read on demand, and the postings offset table on first use.
   */
  static async open(path: string, options: IndexReaderOptions = {}): Promise<IndexReader> {
    const file = await Deno.open(path, { read: true });
    try {
      const size = (await file.stat()).size;
      if (size < _HEADER_LEN + INDEX_TOC_LEN) {
        throw new FormatError(`index ${path}: ${size} bytes is too short`);
      }
      const head = await readExactAt(file, 0, _HEADER_LEN, "index header");
      const magic = new DataView(head.buffer).getUint32(0);
      if (magic !== MAGIC_INDEX) {
        throw new FormatError(`index ${path}: bad magic 0x${magic.toString(16)}`);
      }
      // Prometheus' repair overwrites the version byte without looking at it.
      const version = options.badIndexVersion ? 2 : head[4];
      if (version < 1 || version > 3) {
        throw new FormatError(`index ${path}: unknown format version ${version}`);
      }
      const tocBytes = await readExactAt(file, size - INDEX_TOC_LEN, INDEX_TOC_LEN, "index TOC");
      const tocView = new DataView(tocBytes.buffer);
      if (crc32c(tocBytes.subarray(0, 48)) !== tocView.getUint32(48)) {
        throw new FormatError(`index ${path}: TOC CRC32C mismatch`);
      }
      const offsets = [0, 1, 2, 3, 4, 5].map((i) => {
        const v = tocView.getBigUint64(i * 8);
        if (v > BigInt(size)) throw new FormatError(`index ${path}: TOC offset ${v} beyond file`);
        return Number(v);
      });
      const toc: IndexTOC = {
        symbols: offsets[0],
        series: offsets[1],
        labelIndices: offsets[2],
        labelIndicesTable: offsets[3],
        postings: offsets[4],
        postingsTable: offsets[5],
      };
      const reader = new IndexReader(file, size, version, toc, options);
      if (toc.symbols !== 0) {
        reader.#symbols = await SymbolTable.scan(
          reader.#readAt,
          reader.#readSync,
          toc.symbols,
          size,
          version === 1,
          _symbolTableOptions(options),
        );
      }
      return reader;
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** Number of symbols in the symbol table. */
  get numSymbols(): number {
    return this.#symbols.count;
  }

  /** The symbol table, in file order (sorted by UTF-8 bytes), read from the file as it goes. */
  symbols(): AsyncGenerator<string> {
    return this.#symbols.all();
  }

  /** Resolves a symbol reference (an ordinal in v2/v3, a file offset in v1). */
  async symbol(ref: number): Promise<string> {
    const out: string[] = [];
    await this.#resolve([ref], 1, out);
    return out[0];
  }

  #table(): Promise<_PostingsTable> {
    if (!this.#postingsTable) {
      this.#postingsTable = _PostingsTable.load(
        this.#readAt,
        this.toc.postingsTable,
        this.size,
        this.#unsortedTable,
        this.#interval,
        this.#sectionWindowSize,
      );
    }
    return this.#postingsTable;
  }

  /**
   * The postings offset table, sorted by name and value, `("", "")` first, read from the file as
   * it goes (version 1, whose table is unsorted, from memory). Before any lookup has loaded the
   * table's samples, it is streamed without them: one pass over a table of millions of entries
   * holds one read window, not the samples (tens of MiB).
   */
  async *postingsOffsets(): AsyncGenerator<PostingsOffset> {
    if (this.#postingsTable || this.#unsortedTable) {
      yield* (await this.#table()).entries(this.#readAt, this.#sectionWindowSize);
      return;
    }
    const position = this.toc.postingsTable;
    if (position === 0) return;
    const r = await _openTable(this.#readAt, position, this.size, this.#sectionWindowSize);
    const count = r.be32();
    let nameBytes = new Uint8Array(0);
    let name = "";
    for (let i = 0; i < count; i++) {
      const e = await _nextEntry(r);
      if (!_equalBytes(e.name, nameBytes)) {
        nameBytes = e.name.slice();
        name = _decoder.decode(e.name);
      }
      yield { name, value: _decoder.decode(e.value), offset: e.offset };
    }
    await _checkTableCrc(this.#readAt, r, position);
  }

  /** The number of series in the postings list at `offset` (a {@link PostingsOffset}'s). */
  async postingsLength(offset: number): Promise<number> {
    // The section's length field, then the list's count of IDs (4 bytes each).
    const buf = new Uint8Array(8);
    if (offset + 8 > this.size || await this.#readAt(offset, buf) !== 8) {
      throw new FormatError(`postings list at ${offset}: beyond the index`);
    }
    const view = new DataView(buf.buffer);
    const n = view.getUint32(4);
    if (view.getUint32(0) !== 4 + 4 * n) {
      throw new FormatError(`postings list at ${offset}: ${n} IDs in ${view.getUint32(0)} bytes`);
    }
    return n;
  }

  /** Label names that have postings, sorted. */
  async labelNames(): Promise<string[]> {
    return (await this.#table()).names.map((n) => n.name).filter((n) => n !== "");
  }

  /** Values of label `name` that have postings, sorted. */
  async labelValues(name: string): Promise<string[]> {
    const values: string[] = [];
    const table = await this.#table();
    for await (const p of table.entries(this.#readAt, this.#sectionWindowSize, name)) {
      values.push(p.value);
    }
    return values;
  }

  /** Series IDs of the postings list `(name, value)`, ascending; empty when there is none. */
  async postings(name: string, value: string): Promise<Uint32Array> {
    const table = await this.#table();
    const offset = await table.offset(this.#readAt, this.#sectionWindowSize, name, value);
    if (offset === undefined) return new Uint32Array(0);
    return await this.#lock.run(async () => {
      const body = await _readSection(this.#file, offset, this.size, "postings list");
      const d = new Decbuf(body);
      const n = d.be32();
      if (d.remaining !== 4 * n) {
        throw new FormatError(`postings list (${name}=${value}): ${n} IDs in ${d.remaining} bytes`);
      }
      const ids = new Uint32Array(n);
      for (let i = 0; i < n; i++) ids[i] = d.be32();
      return ids;
    });
  }

  /** Series IDs of all series, ascending (the `("", "")` postings list). */
  allPostings(): Promise<Uint32Array> {
    return this.postings("", "");
  }

  /**
   * Decodes the label references of a series entry into `refs` from `at` (growing it); returns
   * the series with where its chunk metas start, and the grown array.
   */
  #labelRefs(
    body: Uint8Array,
    id: number,
    refs: Uint32Array,
    at: number,
  ): [_RawSeries, Uint32Array] {
    const d = new Decbuf(body);
    const nLabels = d.uvarint();
    if (at + 2 * nLabels > refs.length) {
      const bigger = new Uint32Array(Math.max(2 * refs.length, at + 2 * nLabels));
      bigger.set(refs.subarray(0, at));
      refs = bigger;
    }
    for (let i = 0; i < 2 * nLabels; i++) {
      const ref = d.uvarint();
      if (ref > 0xffffffff) throw new FormatError(`index series ${id}: symbol reference ${ref}`);
      refs[at + i] = ref;
    }
    return [{ id, body, refsAt: at, labels: nLabels, chunksAt: d.offset }, refs];
  }

  /** Builds a series from its entry and its resolved label strings. */
  #build(raw: _RawSeries, strings: readonly string[]): IndexSeries {
    const labels: Label[] = new Array(raw.labels);
    for (let i = 0; i < raw.labels; i++) {
      labels[i] = { name: strings[raw.refsAt + 2 * i], value: strings[raw.refsAt + 2 * i + 1] };
    }
    const d = new Decbuf(raw.body, raw.chunksAt);
    const nChunks = d.uvarint();
    const chunks: ChunkMeta[] = [];
    if (nChunks > 0 && !_chunkMetasAsNumbers(d, nChunks, chunks)) {
      const mint = d.varint64();
      let maxt = BigInt.asIntN(64, mint + d.uvarint64());
      let ref = d.uvarint64();
      chunks.push({ mint, maxt, ref });
      for (let i = 1; i < nChunks; i++) {
        const m = BigInt.asIntN(64, maxt + d.uvarint64());
        maxt = BigInt.asIntN(64, m + d.uvarint64());
        ref = BigInt.asUintN(64, ref + d.varint64());
        chunks.push({ mint: m, maxt, ref });
      }
    }
    if (d.remaining !== 0) {
      throw new FormatError(`index series ${raw.id}: ${d.remaining} bytes left after the chunks`);
    }
    return { id: raw.id, labels, chunks };
  }

  /**
   * Parses one series entry (`uvarint len | body | CRC32C`) at `bytes[at]`; when the bytes end
   * before the entry does, returns how many bytes from `at` are needed instead.
   */
  #entryAt(bytes: Uint8Array, at: number): { body: Uint8Array; end: number } | { need: number } {
    const d = new Decbuf(bytes, at);
    let len: number;
    try {
      len = d.uvarint();
    } catch (e) {
      if (e instanceof FormatError && bytes.length - at < 10) return { need: 10 };
      throw e;
    }
    if (d.offset + len + 4 > bytes.length) return { need: d.offset - at + len + 4 };
    const body = bytes.subarray(d.offset, d.offset + len);
    const want = new DataView(bytes.buffer, bytes.byteOffset + d.offset + len, 4).getUint32(0);
    if (crc32c(body) !== want) throw new FormatError(`index series at ${at}: CRC32C mismatch`);
    return { body, end: d.offset + len + 4 };
  }

  #idOf(pos: number): number {
    return this.version === 1 ? pos : pos / _SERIES_ALIGN;
  }

  async #window(pos: number, size: number): Promise<Uint8Array> {
    const buf = new Uint8Array(size);
    const got = await this.#readAt(pos, buf);
    if (got < size) throw new FormatError(`index series at ${pos}: file ends early`);
    return buf;
  }

  /**
   * Iterates the series section in file order (which is label order) through a bounded window.
   * Entries are checked against their CRC32C. The labels of a window's series are looked up
   * together, in one forward pass over the symbol table.
   */
  async *series(): AsyncGenerator<IndexSeries> {
    if (this.toc.series === 0) return;
    const end = this.#seriesEnd;
    let pos = this.toc.series;
    let refs: Uint32Array = new Uint32Array(1024);
    const strings: string[] = [];
    const batch: _RawSeries[] = [];
    while (pos < end) {
      let win = await this.#window(pos, Math.min(this.#windowSize, end - pos));
      let at = 0;
      let used = 0;
      batch.length = 0;
      while (at < win.length) {
        // Skip the zero padding in front of each entry (a length is never 0).
        if (win[at] === 0) {
          at++;
          continue;
        }
        const entry = this.#entryAt(win, at);
        if ("need" in entry) {
          if (batch.length > 0) break;
          if (pos + at + entry.need > end) {
            throw new FormatError(
              `index series at ${pos + at}: entry runs past the series section`,
            );
          }
          // An entry larger than the window: a window of its own.
          pos += at;
          at = 0;
          win = await this.#window(
            pos,
            Math.min(Math.max(this.#windowSize, entry.need), end - pos),
          );
          continue;
        }
        if (this.version !== 1 && (pos + at) % _SERIES_ALIGN !== 0) {
          throw new FormatError(`index series at ${pos + at}: not 16-byte aligned`);
        }
        const [raw, grown] = this.#labelRefs(entry.body, this.#idOf(pos + at), refs, used);
        refs = grown;
        used += 2 * raw.labels;
        batch.push(raw);
        at = entry.end;
      }
      await this.#resolve(refs, used, strings);
      for (const raw of batch) yield this.#build(raw, strings);
      pos += at;
    }
  }

  /** Reads one series by ID. */
  async seriesById(id: number): Promise<IndexSeries> {
    const pos = this.version === 1 ? id : id * _SERIES_ALIGN;
    if (pos < this.toc.series || pos >= this.#seriesEnd) {
      throw new FormatError(`index: series ID ${id} outside the series section`);
    }
    const head = new Uint8Array(Math.min(1024, this.size - pos));
    await this.#readAt(pos, head);
    let entry = this.#entryAt(head, 0);
    if ("need" in entry) {
      const all = new Uint8Array(entry.need);
      if (await this.#readAt(pos, all) !== entry.need) {
        throw new FormatError(`index series ${id}: truncated entry`);
      }
      entry = this.#entryAt(all, 0);
      if ("need" in entry) throw new FormatError(`index series ${id}: truncated entry`);
    }
    const [raw, refs] = this.#labelRefs(entry.body, id, new Uint32Array(0), 0);
    const strings: string[] = [];
    await this.#resolve(refs, 2 * raw.labels, strings);
    return this.#build(raw, strings);
  }

  /** Closes the file. */
  close(): void {
    try {
      this.#file.close();
    } catch { /* already closed */ }
  }

  /** Same as {@link IndexReader.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Sampled entries of one label name in the postings offset table. */
interface _NameSamples {
  name: string;
  /** Every interval-th value of the name (the first included), with its entry's position. */
  values: string[];
  positions: number[];
  offsets: number[];
  /** File position after the name's last entry. */
  end: number;
}

/**
 * The postings offset table, sampled as Prometheus' `postingOffsetTable`: for each label name,
 * every interval-th entry in memory (the first included); lookups read the at most interval
 * entries after the nearest sample from the file. Version 1 tables can be unsorted and are held
 * whole, sorted (they come from Prometheus 2.0 and are small); so are those of Prometheus 2.1's
 * mislabelled version 2 indexes.
 */
class _PostingsTable {
  /** The names, sorted; `""` (the all-postings key) first. */
  readonly names: _NameSamples[];
  #byName: Map<string, _NameSamples>;
  #complete: boolean;

  private constructor(names: _NameSamples[], complete: boolean) {
    this.names = names;
    this.#byName = new Map(names.map((n) => [n.name, n]));
    this.#complete = complete;
  }

  /** Reads the table at `position` once (checking its CRC32C), keeping the samples. */
  static async load(
    readAt: (pos: number, buf: Uint8Array) => Promise<number>,
    position: number,
    fileSize: number,
    unsorted: boolean,
    interval: number,
    windowSize: number,
  ): Promise<_PostingsTable> {
    if (!Number.isSafeInteger(interval) || interval < 1) {
      throw new RangeError(`sample interval ${interval} is not a positive integer`);
    }
    if (position === 0) return new _PostingsTable([], true);
    const r = await _openTable(readAt, position, fileSize, windowSize);
    const count = r.be32();
    const names: _NameSamples[] = [];
    let current: _NameSamples | undefined;
    let currentName = new Uint8Array(0);
    let k = 0;
    for (let i = 0; i < count; i++) {
      const at = r.position;
      const e = await _nextEntry(r);
      if (!current || !_equalBytes(e.name, currentName)) {
        if (current) current.end = at;
        currentName = e.name.slice();
        const name = _decoder.decode(e.name);
        current = unsorted ? names.find((n) => n.name === name) : undefined;
        if (!current) {
          current = { name, values: [], positions: [], offsets: [], end: 0 };
          names.push(current);
        }
        k = 0;
      }
      if (unsorted || k % interval === 0) {
        current.values.push(_decoder.decode(e.value));
        current.positions.push(at);
        current.offsets.push(e.offset);
      }
      k++;
    }
    if (current) current.end = r.position;
    await _checkTableCrc(readAt, r, position);
    if (unsorted) {
      names.sort((a, b) => compareUtf8(a.name, b.name));
      for (const n of names) {
        const order = n.values.map((_, i) => i).sort((a, b) =>
          compareUtf8(n.values[a], n.values[b])
        );
        n.values = order.map((i) => n.values[i]);
        n.offsets = order.map((i) => n.offsets[i]);
        n.positions = [];
      }
    }
    return new _PostingsTable(names, unsorted);
  }

  /** The postings offset of `(name, value)`, or undefined. */
  async offset(
    readAt: (pos: number, buf: Uint8Array) => Promise<number>,
    windowSize: number,
    name: string,
    value: string,
  ): Promise<number | undefined> {
    const n = this.#byName.get(name);
    if (!n) return undefined;
    // The last sample at or before `value`.
    let lo = 0;
    let hi = n.values.length - 1;
    if (hi < 0 || compareUtf8(n.values[0], value) > 0) return undefined;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (compareUtf8(n.values[mid], value) <= 0) lo = mid;
      else hi = mid - 1;
    }
    if (n.values[lo] === value) return n.offsets[lo];
    if (this.#complete) return undefined;
    const from = n.positions[lo];
    const to = lo + 1 < n.positions.length ? n.positions[lo + 1] : n.end;
    const r = SequentialReader.range(readAt, from, to - from, Math.min(to - from, windowSize));
    const want = _encoder.encode(value);
    while (!r.done) {
      const e = await _nextEntry(r);
      const c = compareBytes(e.value, want);
      if (c === 0) return e.offset;
      if (c > 0) break;
    }
    return undefined;
  }

  /** The entries in table order (of one name only, when given), read from the file. */
  async *entries(
    readAt: (pos: number, buf: Uint8Array) => Promise<number>,
    windowSize: number,
    only?: string,
  ): AsyncGenerator<PostingsOffset> {
    const names = only === undefined ? this.names : [this.#byName.get(only)].filter((n) => !!n);
    for (const n of names as _NameSamples[]) {
      if (this.#complete) {
        for (let i = 0; i < n.values.length; i++) {
          yield { name: n.name, value: n.values[i], offset: n.offsets[i] };
        }
        continue;
      }
      const from = n.positions[0];
      const r = SequentialReader.range(readAt, from, n.end - from, windowSize);
      while (!r.done) {
        const e = await _nextEntry(r);
        yield { name: n.name, value: _decoder.decode(e.value), offset: e.offset };
      }
    }
  }
}

/** A reader of the postings offset table's body at `position`, after its length field. */
async function _openTable(
  readAt: (pos: number, buf: Uint8Array) => Promise<number>,
  position: number,
  fileSize: number,
  windowSize: number,
): Promise<SequentialReader> {
  const lenBytes = new Uint8Array(4);
  if (position + 12 > fileSize || await readAt(position, lenBytes) !== 4) {
    throw new FormatError(`index postings offset table: offset ${position} beyond the file`);
  }
  const len = new DataView(lenBytes.buffer).getUint32(0);
  if (len < 4 || position + 4 + len + 4 > fileSize) {
    throw new FormatError(`index postings offset table: ${len} bytes run past the file`);
  }
  const r = SequentialReader.range(readAt, position + 4, len, Math.min(len, windowSize));
  await r.fill(4);
  return r;
}

/** Reads the rest of the table `r` reads and checks the CRC32C that follows it. */
async function _checkTableCrc(
  readAt: (pos: number, buf: Uint8Array) => Promise<number>,
  r: SequentialReader,
  position: number,
): Promise<void> {
  while (!r.done) {
    await r.fill(1);
    r.take(r.available);
  }
  const crc = new Uint8Array(4);
  if (await readAt(r.position, crc) !== 4) {
    throw new FormatError("index postings offset table: the file ends before its CRC32C");
  }
  if (new DataView(crc.buffer).getUint32(0) !== r.crc) {
    throw new FormatError(`index postings offset table at ${position}: CRC32C mismatch`);
  }
}

/** Reads one postings offset table entry: name and value (views until the next read), offset. */
async function _nextEntry(
  r: SequentialReader,
): Promise<{ name: Uint8Array; value: Uint8Array; offset: number }> {
  for (let need = 64;; need *= 2) {
    if (r.available < need && !r.exhausted) await r.fill(need);
    const d = new Decbuf(r.view());
    let entry: { keys: number; name: Uint8Array; value: Uint8Array; offset: number };
    try {
      const keys = d.uvarint();
      entry = { keys, name: d.take(d.uvarint()), value: d.take(d.uvarint()), offset: d.uvarint() };
    } catch (e) {
      // Cut off by the end of the buffer: read more, unless it is the end of the table.
      if (!(e instanceof FormatError) || r.exhausted) throw e;
      continue;
    }
    if (entry.keys !== 2) {
      throw new FormatError(`postings offset table: key count ${entry.keys}, not 2`);
    }
    r.take(d.offset);
    return entry;
  }
}

function _equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const _decoder = new TextDecoder("utf-8", { fatal: true });
const _encoder = new TextEncoder();

/**
 * Appends a series' chunk metas to `into` as an index series entry stores them after its labels
 * (their count, the first's mint, length and reference, then each next one's distance from the
 * one before), checking that they follow each other: references not decreasing, each chunk
 * starting after the one before ends and ending no earlier than it starts.
 */
export function encodeChunkMetas(into: Encbuf, chunks: readonly ChunkMeta[]): void {
  into.uvarint(chunks.length);
  if (chunks.length === 0) return;
  const c0 = chunks[0];
  if (c0.maxt < c0.mint) throw new Error(`chunk maxt ${c0.maxt} below mint ${c0.mint}`);
  into.varint(c0.mint).uvarint(c0.maxt - c0.mint).uvarint(c0.ref);
  for (let i = 1; i < chunks.length; i++) {
    const c = chunks[i];
    const prev = chunks[i - 1];
    if (c.ref < prev.ref) throw new Error(`unsorted chunk reference ${c.ref} after ${prev.ref}`);
    if (c.mint <= prev.maxt) {
      throw new Error(`chunk mint ${c.mint} not above previous chunk maxt ${prev.maxt}`);
    }
    if (c.maxt < c.mint) throw new Error(`chunk maxt ${c.maxt} below mint ${c.mint}`);
    into.uvarint(c.mint - prev.maxt).uvarint(c.maxt - c.mint).varint(c.ref - prev.ref);
  }
}

/** Options of {@link IndexWriter}. */
export interface IndexWriterOptions extends IndexSymbolOptions {
  /** Directory of the writer's temporary files (default: the index file's directory). */
  tmpDir?: string;
  /** Bytes of postings tuples held before they are spilled (default 8 MiB; 24 B a tuple). */
  postingsMemoryBudget?: number;
  /** Spilled runs merged at once (default 32). */
  mergeFanIn?: number;
  /** Read and write buffer of each temporary file (default 64 KiB). */
  spillBufferSize?: number;
  /** Postings offset table entries whose strings are looked up together (default 16384). */
  postingsTableBatch?: number;
  /** An index only read before it is removed: closed without an fsync (see `_io.ts`). */
  temporary?: boolean;
}

/**
 * Writes an index file in format version 2, in memory bounded whatever the number of series.
 *
 * Symbols come first: all of them, from {@link IndexWriter.create} (strings in any order, sorted
 * in memory: for small indexes) or {@link IndexWriter.createFromSortedSymbols} (a sorted stream of
 * UTF-8 byte strings, written through a temporary file). Then series in {@link compareLabels}
 * order with their chunk metas (chunk references non-decreasing across all series), with label
 * strings ({@link IndexWriter.addSeries}, after `create`) or symbol references
 * ({@link IndexWriter.addSeriesRefs}). Then {@link IndexWriter.close}.
 *
 * Postings are `(name, value, series ID)` tuples spilled to sorted runs in a memory budget and
 * merged into the postings section (see `_postings.ts`); the postings offset table, which needs
 * each list's name and value as strings, is looked up in the written symbol table a batch at a
 * time and goes through a temporary file, as its length comes before it.
 */
export class IndexWriter {
  #f: BufferedFileWriter;
  #path: string;
  #tmp: string;
  #options: IndexWriterOptions;
  #map: Map<string, number> | undefined;
  #numSymbols = 0;
  #symbolsFirst = 0;
  #symbolsEnd = 0;
  #samples = new Float64Array(0);
  #toc: IndexTOC = {
    symbols: 0,
    series: 0,
    labelIndices: 0,
    labelIndicesTable: 0,
    postings: 0,
    postingsTable: 0,
  };
  #last: Uint32Array = new Uint32Array(0);
  #lastLength = -1;
  #lastChunkRef = 0n;
  #numSeries = 0;
  #postings: PostingsSpill;
  #enc = new Encbuf();
  #body = new Encbuf();
  #metas = new Encbuf();
  #closed = false;

  private constructor(f: BufferedFileWriter, path: string, options: IndexWriterOptions) {
    this.#f = f;
    this.#path = path;
    this.#options = options;
    const slash = path.lastIndexOf("/");
    const dir = options.tmpDir ?? (slash < 0 ? "." : path.slice(0, slash) || "/");
    this.#tmp = `${dir}/${path.slice(slash + 1)}`;
    this.#postings = new PostingsSpill(dir, `${path.slice(slash + 1)}.postings`, {
      memoryBudget: options.postingsMemoryBudget,
      fanIn: options.mergeFanIn,
      bufferSize: options.spillBufferSize,
    });
  }

  /**
   * Creates the index file `path` (which must not exist) and writes the header and the symbol
   * table. `symbols` may hold duplicates and come in any order; they are sorted by UTF-8 bytes in
   * memory. The empty string is always added, as Prometheus does (its postings hold the `("", "")`
   * key). Series may then be added with label strings.
   */
  static async create(
    path: string,
    symbols: Iterable<string>,
    options: IndexWriterOptions = {},
  ): Promise<IndexWriter> {
    const sorted = [...new Set(["", ...symbols])].sort(compareUtf8);
    const w = await IndexWriter.createFromSortedSymbols(
      path,
      sorted.map((s) => _encoder.encode(s)),
      options,
    );
    w.#map = new Map(sorted.map((s, i) => [s, i]));
    return w;
  }

  /**
   * Creates the index file `path` (which must not exist) and writes the header and the symbol
   * table from `symbols`: UTF-8 byte strings, strictly ascending bytewise (each may be a view
   * that is only valid until the next is taken). The empty string is added in front when it is
   * not the first. Series are then added with symbol references.
   */
  static async createFromSortedSymbols(
    path: string,
    symbols: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options: IndexWriterOptions = {},
  ): Promise<IndexWriter> {
    const f = await BufferedFileWriter.create(path, undefined, { temporary: options.temporary });
    const w = new IndexWriter(f, path, options);
    try {
      await w.#writeSymbols(symbols);
      return w;
    } catch (e) {
      await w.abort();
      throw e;
    }
  }

  async #writeSymbols(symbols: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
    const o = this.#options;
    const interval = o.sampleInterval ?? 32;
    if (!Number.isSafeInteger(interval) || interval < 1) {
      throw new RangeError(`sample interval ${interval} is not a positive integer`);
    }
    const bufferSize = o.spillBufferSize ?? 64 * 1024;
    // The strings go to a temporary file first: the table's length and count come before them.
    const tmpPath = `${this.#tmp}.symbols`;
    const tmp = await SpillWriter.create(tmpPath, bufferSize);
    // Positions (relative to the first symbol) of every interval-th symbol, for the lookups of
    // the postings offset table.
    let samples = new Float64Array(1024);
    let count = 0;
    let prev = new Uint8Array(64);
    let prevLength = 0;
    try {
      const add = (s: Uint8Array) => {
        if (count > 0 && compareBytes(prev.subarray(0, prevLength), s) >= 0) {
          throw new Error(`IndexWriter: symbol ${JSON.stringify(_decoder.decode(s))} out of order`);
        }
        if (count % interval === 0) {
          const k = count / interval;
          if (k === samples.length) {
            const bigger = new Float64Array(2 * samples.length);
            bigger.set(samples);
            samples = bigger;
          }
          samples[k] = tmp.length;
        }
        tmp.uvarint(s.length);
        tmp.bytes(s);
        count++;
        if (s.length > prev.length) prev = new Uint8Array(2 * s.length);
        prev.set(s);
        prevLength = s.length;
      };
      for await (const s of symbols) {
        if (count === 0 && s.length > 0) add(new Uint8Array(0));
        add(s);
        if (tmp.full) await tmp.flush();
      }
      if (count === 0) add(new Uint8Array(0));
      await tmp.close();
    } catch (e) {
      tmp.abort();
      await Deno.remove(tmpPath).catch(() => {});
      throw e;
    }
    const f = this.#f;
    const e = this.#enc;
    e.reset();
    e.be32(MAGIC_INDEX).byte(2);
    await f.write(e.get());
    this.#toc.symbols = f.position;
    const bodyLength = 4 + tmp.length;
    if (bodyLength > 0xffffffff) throw new RangeError("index symbol table exceeds 4 GiB");
    e.reset();
    e.be32(bodyLength).be32(count);
    await f.write(e.get());
    const crc = await _copyFile(tmpPath, f, crc32c(e.get().subarray(4)), bufferSize);
    await Deno.remove(tmpPath);
    e.reset();
    await f.write(e.be32(crc).get());
    this.#numSymbols = count;
    this.#symbolsFirst = this.#toc.symbols + 8;
    this.#symbolsEnd = this.#symbolsFirst + tmp.length;
    this.#samples = samples.subarray(0, Math.ceil(count / interval));
    for (let k = 0; k < this.#samples.length; k++) this.#samples[k] += this.#symbolsFirst;
    this.#toc.series = f.position;
    // The postings offset table is looked up in the symbol table through another handle.
    await f.flush();
  }

  /** Number of series added. */
  get numSeries(): number {
    return this.#numSeries;
  }

  /**
   * Adds a series given with label strings (after {@link IndexWriter.create}); returns its ID
   * (offset/16).
   */
  async addSeries(labels: readonly Label[], chunks: readonly ChunkMeta[]): Promise<number> {
    const map = this.#map;
    if (!map) {
      throw new Error("IndexWriter: label strings need IndexWriter.create; use addSeriesRefs");
    }
    const refs = new Uint32Array(2 * labels.length);
    for (let i = 0; i < labels.length; i++) {
      const l = labels[i];
      if (i > 0 && compareUtf8(labels[i - 1].name, l.name) >= 0) {
        throw new Error(`series labels not sorted or duplicated at ${l.name}`);
      }
      const n = map.get(l.name);
      const v = map.get(l.value);
      if (n === undefined) throw new Error(`symbol ${JSON.stringify(l.name)} missing`);
      if (v === undefined) throw new Error(`symbol ${JSON.stringify(l.value)} missing`);
      refs[2 * i] = n;
      refs[2 * i + 1] = v;
    }
    return await this.addSeriesRefs(refs, chunks);
  }

  /**
   * Adds a series given with its labels as symbol references, `[name0, value0, name1, ...]`
   * (names ascending); returns its ID (offset/16). Symbol order is UTF-8 byte order, so series
   * order is the order of these numbers.
   */
  async addSeriesRefs(refs: ArrayLike<number>, chunks: readonly ChunkMeta[]): Promise<number> {
    if (this.#closed) throw new Error("IndexWriter is closed");
    if (chunks.length > 0 && chunks[0].ref < this.#lastChunkRef) {
      throw new Error(`unsorted chunk reference ${chunks[0].ref} after ${this.#lastChunkRef}`);
    }
    const metas = this.#metas;
    metas.reset();
    encodeChunkMetas(metas, chunks);
    const id = await this.addSeriesEncoded(refs, metas.get());
    if (chunks.length > 0) this.#lastChunkRef = chunks[chunks.length - 1].ref;
    return id;
  }

  /**
   * {@link IndexWriter.addSeriesRefs} with the chunk metas already encoded as the index stores
   * them ({@link encodeChunkMetas}, checked there), for a writer that wrote the chunks in order
   * (their references then do not decrease from one series to the next, which this takes as
   * given): nothing is decoded or encoded again.
   */
  async addSeriesEncoded(refs: ArrayLike<number>, chunkMetas: Uint8Array): Promise<number> {
    if (this.#closed) throw new Error("IndexWriter is closed");
    const n = refs.length;
    if (n % 2 !== 0) throw new Error("IndexWriter: label references come in pairs");
    for (let i = 0; i < n; i++) {
      const r = refs[i];
      if (!(Number.isInteger(r) && r >= 0 && r < this.#numSymbols)) {
        throw new Error(`IndexWriter: no symbol ${r}`);
      }
      if (i % 2 === 0) {
        if (r === 0) throw new Error("IndexWriter: empty label name");
        if (i > 0 && r <= refs[i - 2]) {
          throw new Error(`series labels not sorted or duplicated (symbol ${r})`);
        }
      }
    }
    if (this.#lastLength >= 0 && _compareRefs(refs, this.#last, this.#lastLength) <= 0) {
      throw new Error(
        `out-of-order series [${Array.from(refs)}] after [${
          Array.from(this.#last.subarray(0, this.#lastLength))
        }] (symbol references)`,
      );
    }

    const f = this.#f;
    const padding = (_SERIES_ALIGN - (f.position % _SERIES_ALIGN)) % _SERIES_ALIGN;
    const pos = f.position + padding;
    if (pos / _SERIES_ALIGN > 0xffffffff || pos >= _MAX_INDEX_SIZE) {
      throw new RangeError("index series section exceeds 64 GiB");
    }
    const id = pos / _SERIES_ALIGN;
    const body = this.#body;
    body.reset();
    body.uvarint(n / 2);
    for (let i = 0; i < n; i++) body.uvarint(refs[i]);
    body.bytes(chunkMetas);
    const b = body.get();
    const e = this.#enc;
    e.reset();
    for (let i = 0; i < padding; i++) e.byte(0);
    e.uvarint(b.length).bytes(b).be32(crc32c(b));
    // Nearly every entry fits in the write buffer at once: no await (a microtask) for those.
    if (e.length <= f.room) f.writeBuffered(e.get());
    else await f.write(e.get());

    this.#numSeries++;
    let full = this.#postings.add(0, 0, id);
    for (let i = 0; i < n; i += 2) full = this.#postings.add(refs[i], refs[i + 1], id) || full;
    if (full) await this.#postings.spill();
    if (this.#last.length < n) this.#last = new Uint32Array(Math.max(n, 2 * this.#last.length));
    for (let i = 0; i < n; i++) this.#last[i] = refs[i];
    this.#lastLength = n;
    return id;
  }

  /** Writes postings, the postings offset table and the TOC, then fsyncs and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const f = this.#f;
    const o = this.#options;
    const bufferSize = o.spillBufferSize ?? 64 * 1024;
    const tablePath = `${this.#tmp}.postings-table`;
    let table: SpillWriter | undefined;
    let symbolsFile: Deno.FsFile | undefined;
    try {
      // As Prometheus ≥ 3.7: no label indices; their TOC entries point at what follows.
      this.#toc.labelIndices = f.position;
      this.#toc.postings = f.position;
      symbolsFile = await Deno.open(this.#path, { read: true });
      const file = symbolsFile;
      const symbols = new SymbolTable(
        (pos, buf) => Promise.resolve(readAtSync(file, pos, buf)),
        (pos, buf) => readAtSync(file, pos, buf),
        this.#symbolsFirst,
        this.#symbolsEnd,
        this.#numSymbols,
        this.#samples,
        false,
        _symbolTableOptions(o),
      );
      table = await SpillWriter.create(tablePath, bufferSize);
      const entries = new _TableBatch(table, symbols, o.postingsTableBatch ?? 16384);
      await this.#postings.write(f, (name, value, offset) => entries.add(name, value, offset));
      await entries.flush();
      await table.close();

      this.#toc.labelIndicesTable = f.position;
      this.#toc.postingsTable = f.position;
      const bodyLength = 4 + table.length;
      if (bodyLength > 0xffffffff) {
        throw new RangeError("index postings offset table exceeds 4 GiB");
      }
      const head = new Encbuf().be32(bodyLength).be32(entries.count);
      await f.write(head.get());
      const crc = await _copyFile(tablePath, f, crc32c(head.get().subarray(4)), bufferSize);
      await f.write(new Encbuf().be32(crc).get());

      const toc = new Encbuf();
      const t = this.#toc;
      for (
        const v of [
          t.symbols,
          t.series,
          t.labelIndices,
          t.labelIndicesTable,
          t.postings,
          t.postingsTable,
        ]
      ) {
        toc.be64(BigInt(v));
      }
      toc.be32(crc32c(toc.get()));
      await f.write(toc.get());
      await f.close();
    } catch (e) {
      f.abort();
      table?.abort();
      throw e;
    } finally {
      symbolsFile?.close();
      await Deno.remove(tablePath).catch(() => {});
      await this.#postings.cleanup();
    }
  }

  /** Closes the file without finishing it (after an error) and removes the temporary files. */
  async abort(): Promise<void> {
    this.#closed = true;
    this.#f.abort();
    await this.#postings.cleanup();
    for (const suffix of [".symbols", ".postings-table"]) {
      await Deno.remove(`${this.#tmp}${suffix}`).catch(() => {});
    }
  }
}

/**
 * Postings offset table entries on their way to the temporary table file: their names and values
 * are looked up a batch at a time, which visits the symbol table in ascending order.
 */
class _TableBatch {
  /** Entries written. */
  count = 0;
  #out: SpillWriter;
  #symbols: SymbolTable;
  #refs: Uint32Array;
  #offsets: Float64Array;
  #n = 0;
  #strings: string[] = [];
  #lastName = "";
  #lastNameBytes = new Uint8Array(0);

  constructor(out: SpillWriter, symbols: SymbolTable, size: number) {
    this.#out = out;
    this.#symbols = symbols;
    this.#refs = new Uint32Array(2 * Math.max(1, size));
    this.#offsets = new Float64Array(Math.max(1, size));
  }

  add(name: number, value: number, offset: number): Promise<void> | undefined {
    this.#refs[2 * this.#n] = name;
    this.#refs[2 * this.#n + 1] = value;
    this.#offsets[this.#n++] = offset;
    return this.#n === this.#offsets.length ? this.flush() : undefined;
  }

  async flush(): Promise<void> {
    const strings = this.#strings;
    this.#symbols.resolve(this.#refs, 2 * this.#n, strings);
    const out = this.#out;
    for (let i = 0; i < this.#n; i++) {
      const name = strings[2 * i];
      if (name !== this.#lastName || this.#lastNameBytes.length === 0) {
        this.#lastName = name;
        this.#lastNameBytes = _encoder.encode(name);
      }
      const value = _encoder.encode(strings[2 * i + 1]);
      out.uvarint(2);
      out.uvarint(this.#lastNameBytes.length);
      out.bytes(this.#lastNameBytes);
      out.uvarint(value.length);
      out.bytes(value);
      out.uvarint(this.#offsets[i]);
      if (out.full) await out.flush();
    }
    this.count += this.#n;
    this.#n = 0;
  }
}

/** Appends the file `path` to `f`; returns the CRC32C of its bytes continuing `crc`. */
async function _copyFile(
  path: string,
  f: BufferedFileWriter,
  crc: number,
  bufferSize: number,
): Promise<number> {
  const r = await SequentialReader.open(path, bufferSize);
  try {
    while (!r.done) {
      await r.fill(1);
      const bytes = r.take(r.available);
      crc = crc32c(bytes, crc);
      await f.write(bytes);
    }
  } finally {
    r.close();
  }
  return crc;
}

/** Compares two series' label references as {@link compareLabels} compares their labels. */
function _compareRefs(a: ArrayLike<number>, b: Uint32Array, bLength: number): number {
  const n = Math.min(a.length, bLength);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - bLength;
}

/**
 * Decodes a series' chunk metas with number arithmetic, true when every value stayed a safe
 * integer (timestamps and refs always do in practice); false leaves `d` and `out` as they were,
 * for the bigint decoding. A BigInt per value is made only at the end: the bigint arithmetic of
 * the general decoding made several per varint, for every chunk of every block read.
 */
function _chunkMetasAsNumbers(d: Decbuf, n: number, out: ChunkMeta[]): boolean {
  const start = d.offset;
  try {
    let mint = d.varint();
    let maxt = mint + d.uvarint();
    let ref = d.uvarint();
    for (let i = 0;; i++) {
      if (!Number.isSafeInteger(maxt)) break;
      out.push({ mint: BigInt(mint), maxt: BigInt(maxt), ref: BigInt(ref) });
      if (i + 1 === n) return true;
      mint = maxt + d.uvarint();
      maxt = mint + d.uvarint();
      ref += d.varint();
      if (!Number.isSafeInteger(mint) || ref < 0 || !Number.isSafeInteger(ref)) break;
    }
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
  }
  d.offset = start;
  out.length = 0;
  return false;
}
