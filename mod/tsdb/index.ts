/**
 * A block's `index` file (`tsdb/index/index.go`).
 *
 * Layout: header (magic `0xBAAAD700`, version byte 1, 2 or 3), symbol table, series, (legacy
 * label indices), postings, (legacy label offset table), postings offset table, and a 52-byte
 * TOC at the end (six BE64 section offsets and a CRC32C). Every section carries a CRC32C.
 *
 * The reader loads the symbol table and the postings offset table, and streams the series section
 * through a bounded window, so a large index is never read whole. It reads versions 1 (absolute
 * offsets as symbol references and series IDs), 2 and 3 (3 is 2 without legacy sections).
 *
 * The writer writes version 2 as Prometheus ≥ 3.7 does: without the legacy label indices, their
 * TOC entries set to the postings start and the postings offset table start.
 *
 * @module
 */

import { BufferedFileWriter, FileLock, readAt, readExactAt } from "./_io.ts";
import { crc32c } from "./crc32c.ts";
import { compareUtf8, Decbuf, Encbuf, FormatError } from "./encoding.ts";

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

/** Options of {@link IndexReader.open}. */
export interface IndexReaderOptions {
  /** Bytes read at once while iterating the series (default 256 KiB). */
  windowSize?: number;
}

/** Reads a block's index file. */
export class IndexReader {
  /** Format version from the header byte (1, 2 or 3). */
  readonly version: number;
  /** Table of contents. */
  readonly toc: IndexTOC;
  /** File size in bytes. */
  readonly size: number;
  #file: Deno.FsFile;
  #lock = new FileLock();
  #windowSize: number;
  #symbols: string[];
  #symbolsByOffset: Map<number, string> | undefined; // v1 only
  #postingsOffsets: PostingsOffset[];
  #byName: Map<string, Map<string, number>> | undefined; // built on first lookup
  #seriesEnd: number;

  private constructor(
    file: Deno.FsFile,
    size: number,
    version: number,
    toc: IndexTOC,
    symbols: string[],
    symbolsByOffset: Map<number, string> | undefined,
    postingsOffsets: PostingsOffset[],
    windowSize: number,
  ) {
    this.#file = file;
    this.size = size;
    this.version = version;
    this.toc = toc;
    this.#symbols = symbols;
    this.#symbolsByOffset = symbolsByOffset;
    this.#postingsOffsets = postingsOffsets;
    this.#windowSize = windowSize;
    // The series section ends where the next section starts.
    const tocEnd = size - INDEX_TOC_LEN;
    this.#seriesEnd = Object.values(toc)
      .filter((o) => o > toc.series)
      .reduce((a, b) => Math.min(a, b), tocEnd);
  }

  /** Opens `path`, checks header and TOC, and loads the symbols and the postings offset table. */
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
      const version = head[4];
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

      // Symbols.
      const symbols: string[] = [];
      let byOffset: Map<number, string> | undefined;
      if (toc.symbols !== 0) {
        const body = await _readSection(file, toc.symbols, size, "symbol table");
        const d = new Decbuf(body);
        const count = d.be32();
        if (version === 1) byOffset = new Map();
        for (let i = 0; i < count; i++) {
          // v1 references a symbol by its absolute offset: after the len field (4 bytes).
          const at = toc.symbols + 4 + d.offset;
          const s = d.uvarintString();
          symbols.push(s);
          byOffset?.set(at, s);
        }
      }

      // Postings offset table.
      const postingsOffsets: PostingsOffset[] = [];
      if (toc.postingsTable !== 0) {
        const body = await _readSection(file, toc.postingsTable, size, "postings offset table");
        const d = new Decbuf(body);
        const count = d.be32();
        for (let i = 0; i < count; i++) {
          const keys = d.uvarint();
          if (keys !== 2) throw new FormatError(`postings offset table: key count ${keys}, not 2`);
          const name = d.uvarintString();
          const value = d.uvarintString();
          postingsOffsets.push({ name, value, offset: d.uvarint() });
        }
        // v1 tables are unsorted; readers want them sorted by name and value.
        if (version === 1) {
          postingsOffsets.sort((a, b) =>
            compareUtf8(a.name, b.name) || compareUtf8(a.value, b.value)
          );
        }
      }
      return new IndexReader(
        file,
        size,
        version,
        toc,
        symbols,
        byOffset,
        postingsOffsets,
        options.windowSize ?? 256 * 1024,
      );
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** The symbol table, in file order (sorted by UTF-8 bytes). */
  get symbols(): readonly string[] {
    return this.#symbols;
  }

  /** The postings offset table, sorted by name and value, `("", "")` first. */
  get postingsOffsets(): readonly PostingsOffset[] {
    return this.#postingsOffsets;
  }

  /** Resolves a symbol reference (an ordinal in v2/v3, a file offset in v1). */
  symbol(ref: number): string {
    const s = this.#symbolsByOffset ? this.#symbolsByOffset.get(ref) : this.#symbols[ref];
    if (s === undefined) throw new FormatError(`index: unknown symbol reference ${ref}`);
    return s;
  }

  #lookup(): Map<string, Map<string, number>> {
    if (!this.#byName) {
      this.#byName = new Map();
      for (const p of this.#postingsOffsets) {
        let values = this.#byName.get(p.name);
        if (!values) this.#byName.set(p.name, values = new Map());
        values.set(p.value, p.offset);
      }
    }
    return this.#byName;
  }

  /** Label names that have postings, sorted. */
  labelNames(): string[] {
    const names: string[] = [];
    for (const p of this.#postingsOffsets) {
      if (p.name !== "" && names[names.length - 1] !== p.name) names.push(p.name);
    }
    return names;
  }

  /** Values of label `name` that have postings, sorted. */
  labelValues(name: string): string[] {
    return [...this.#lookup().get(name)?.keys() ?? []];
  }

  /** Series IDs of the postings list `(name, value)`, ascending; empty when there is none. */
  postings(name: string, value: string): Promise<Uint32Array> {
    const offset = this.#lookup().get(name)?.get(value);
    if (offset === undefined) return Promise.resolve(new Uint32Array(0));
    return this.#lock.run(async () => {
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

  #decodeSeries(body: Uint8Array, id: number): IndexSeries {
    const d = new Decbuf(body);
    const nLabels = d.uvarint();
    const labels: Label[] = [];
    for (let i = 0; i < nLabels; i++) {
      const name = this.symbol(d.uvarint());
      labels.push({ name, value: this.symbol(d.uvarint()) });
    }
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
      throw new FormatError(`index series ${id}: ${d.remaining} bytes left after the chunks`);
    }
    return { id, labels, chunks };
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
    const got = await this.#lock.run(() => readAt(this.#file, pos, buf));
    if (got < size) throw new FormatError(`index series at ${pos}: file ends early`);
    return buf;
  }

  /**
   * Iterates the series section in file order (which is label order) through a bounded window.
   * Entries are checked against their CRC32C.
   */
  async *series(): AsyncGenerator<IndexSeries> {
    if (this.toc.series === 0) return;
    const end = this.#seriesEnd;
    let pos = this.toc.series;
    let win: Uint8Array = new Uint8Array(0);
    let winStart = pos;
    while (pos < end) {
      const at = pos - winStart;
      if (at >= win.length) {
        winStart = pos;
        win = await this.#window(pos, Math.min(this.#windowSize, end - pos));
        continue;
      }
      // Skip the zero padding in front of each entry (a length is never 0).
      if (win[at] === 0) {
        pos++;
        continue;
      }
      const entry = this.#entryAt(win, at);
      if ("need" in entry) {
        if (winStart + win.length >= end || pos + entry.need > end) {
          throw new FormatError(`index series at ${pos}: entry runs past the series section`);
        }
        winStart = pos;
        win = await this.#window(pos, Math.min(Math.max(this.#windowSize, entry.need), end - pos));
        continue;
      }
      if (this.version !== 1 && pos % _SERIES_ALIGN !== 0) {
        throw new FormatError(`index series at ${pos}: not 16-byte aligned`);
      }
      yield this.#decodeSeries(entry.body, this.#idOf(pos));
      pos = winStart + entry.end;
    }
  }

  /** Reads one series by ID. */
  seriesById(id: number): Promise<IndexSeries> {
    const pos = this.version === 1 ? id : id * _SERIES_ALIGN;
    if (pos < this.toc.series || pos >= this.#seriesEnd) {
      return Promise.reject(new FormatError(`index: series ID ${id} outside the series section`));
    }
    return this.#lock.run(async () => {
      const head = new Uint8Array(Math.min(1024, this.size - pos));
      await readAt(this.#file, pos, head);
      let entry = this.#entryAt(head, 0);
      if ("need" in entry) {
        const all = await readExactAt(this.#file, pos, entry.need, "index series");
        entry = this.#entryAt(all, 0);
        if ("need" in entry) throw new FormatError(`index series ${id}: truncated entry`);
      }
      return this.#decodeSeries(entry.body, id);
    });
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

/**
 * Writes an index file in format version 2. Give every symbol (all label names and values) to
 * {@link IndexWriter.create}, then add series in {@link compareLabels} order with their chunk
 * metas (chunk references non-decreasing across all series), then {@link IndexWriter.close}.
 * Postings are collected in memory: a few bytes per label of every series.
 */
export class IndexWriter {
  #f: BufferedFileWriter;
  #symbols: Map<string, number>;
  #toc: IndexTOC = {
    symbols: 0,
    series: 0,
    labelIndices: 0,
    labelIndicesTable: 0,
    postings: 0,
    postingsTable: 0,
  };
  #lastLabels: Label[] | undefined;
  #lastChunkRef = 0n;
  #ids: number[] = [];
  // name -> value -> series IDs
  #postings = new Map<string, Map<string, number[]>>();
  #enc = new Encbuf();
  #body = new Encbuf();
  #closed = false;

  private constructor(f: BufferedFileWriter, symbols: Map<string, number>) {
    this.#f = f;
    this.#symbols = symbols;
  }

  /**
   * Creates the index file `path` (which must not exist) and writes the header and the symbol
   * table. `symbols` may hold duplicates and come in any order; they are sorted by UTF-8 bytes.
   * The empty string is always added, as Prometheus does (its postings hold the `("", "")` key).
   */
  static async create(path: string, symbols: Iterable<string>): Promise<IndexWriter> {
    const sorted = [...new Set(["", ...symbols])].sort(compareUtf8);
    const f = await BufferedFileWriter.create(path);
    try {
      const map = new Map<string, number>();
      sorted.forEach((s, i) => map.set(s, i));
      const w = new IndexWriter(f, map);
      await w.#writeHeaderAndSymbols(sorted);
      return w;
    } catch (e) {
      f.abort();
      throw e;
    }
  }

  async #writeHeaderAndSymbols(sorted: string[]): Promise<void> {
    const e = this.#enc;
    e.reset();
    e.be32(MAGIC_INDEX).byte(2);
    await this.#f.write(e.get());
    this.#toc.symbols = this.#f.position;
    e.reset();
    e.be32(0).be32(sorted.length);
    for (const s of sorted) e.uvarintString(s);
    const bytes = e.get();
    const bodyLen = bytes.length - 4;
    if (bodyLen > 0xffffffff) throw new RangeError("index symbol table exceeds 4 GiB");
    new DataView(bytes.buffer, bytes.byteOffset).setUint32(0, bodyLen);
    const crc = crc32c(bytes.subarray(4));
    await this.#f.write(bytes);
    await this.#f.write(new Encbuf().be32(crc).get());
    this.#toc.series = this.#f.position;
  }

  /** Number of series added. */
  get numSeries(): number {
    return this.#ids.length;
  }

  /** Adds a series; returns its ID (offset/16). */
  async addSeries(labels: readonly Label[], chunks: readonly ChunkMeta[]): Promise<number> {
    if (this.#closed) throw new Error("IndexWriter is closed");
    for (let i = 1; i < labels.length; i++) {
      if (compareUtf8(labels[i - 1].name, labels[i].name) >= 0) {
        throw new Error(`series labels not sorted or duplicated at ${labels[i].name}`);
      }
    }
    if (this.#lastLabels && compareLabels(labels, this.#lastLabels) <= 0) {
      throw new Error(
        `out-of-order series ${_fmt(labels)} after ${_fmt(this.#lastLabels)}`,
      );
    }
    let lastRef = this.#lastChunkRef;
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i];
      if (c.ref < lastRef) throw new Error(`unsorted chunk reference ${c.ref} after ${lastRef}`);
      lastRef = c.ref;
      if (i > 0 && c.mint <= chunks[i - 1].maxt) {
        throw new Error(`chunk mint ${c.mint} not above previous chunk maxt ${chunks[i - 1].maxt}`);
      }
      if (c.maxt < c.mint) throw new Error(`chunk maxt ${c.maxt} below mint ${c.mint}`);
    }

    await this.#f.pad(_SERIES_ALIGN);
    const pos = this.#f.position;
    if (pos / _SERIES_ALIGN > 0xffffffff || pos >= _MAX_INDEX_SIZE) {
      throw new RangeError("index series section exceeds 64 GiB");
    }
    const id = pos / _SERIES_ALIGN;
    const body = this.#body;
    body.reset();
    body.uvarint(labels.length);
    for (const l of labels) {
      const n = this.#symbols.get(l.name);
      const v = this.#symbols.get(l.value);
      if (n === undefined) throw new Error(`symbol ${JSON.stringify(l.name)} missing`);
      if (v === undefined) throw new Error(`symbol ${JSON.stringify(l.value)} missing`);
      body.uvarint(n).uvarint(v);
    }
    body.uvarint(chunks.length);
    if (chunks.length > 0) {
      const c0 = chunks[0];
      body.varint(c0.mint).uvarint(c0.maxt - c0.mint).uvarint(c0.ref);
      let t0 = c0.maxt;
      let ref0 = c0.ref;
      for (let i = 1; i < chunks.length; i++) {
        const c = chunks[i];
        body.uvarint(c.mint - t0).uvarint(c.maxt - c.mint).varint(c.ref - ref0);
        t0 = c.maxt;
        ref0 = c.ref;
      }
    }
    const b = body.get();
    const e = this.#enc;
    e.reset();
    e.uvarint(b.length).bytes(b).be32(crc32c(b));
    await this.#f.write(e.get());

    this.#ids.push(id);
    for (const l of labels) {
      let values = this.#postings.get(l.name);
      if (!values) this.#postings.set(l.name, values = new Map());
      const ids = values.get(l.value);
      if (ids) ids.push(id);
      else values.set(l.value, [id]);
    }
    this.#lastLabels = labels.map((l) => ({ ...l }));
    this.#lastChunkRef = lastRef;
    return id;
  }

  /** Writes postings, the postings offset table and the TOC, then fsyncs and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const f = this.#f;
    try {
      // As Prometheus ≥ 3.7: no label indices; their TOC entries point at what follows.
      this.#toc.labelIndices = f.position;
      this.#toc.postings = f.position;
      await f.pad(4);
      const table = new Encbuf();
      let count = 0;
      const writeList = async (name: string, value: string, ids: number[]) => {
        await f.pad(4);
        table.uvarint(2).uvarintString(name).uvarintString(value).uvarint(f.position);
        count++;
        const e = this.#enc;
        e.reset();
        e.be32(4 + 4 * ids.length).be32(ids.length);
        for (const id of ids) e.be32(id);
        e.be32(crc32c(e.get().subarray(4)));
        await f.write(e.get());
      };
      await writeList("", "", this.#ids);
      for (const name of [...this.#postings.keys()].sort(compareUtf8)) {
        const values = this.#postings.get(name)!;
        for (const value of [...values.keys()].sort(compareUtf8)) {
          await writeList(name, value, values.get(value)!);
        }
      }
      this.#postings.clear();

      this.#toc.labelIndicesTable = f.position;
      this.#toc.postingsTable = f.position;
      const entries = table.get();
      const head = new Encbuf().be32(4 + entries.length).be32(count);
      const crc = crc32c(entries, crc32c(head.get().subarray(4)));
      await f.write(head.get());
      await f.write(entries);
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
      throw e;
    }
  }

  /** Closes the file without finishing it (after an error). */
  abort(): void {
    this.#closed = true;
    this.#f.abort();
  }
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

function _fmt(labels: readonly Label[]): string {
  return `{${labels.map((l) => `${l.name}=${JSON.stringify(l.value)}`).join(", ")}}`;
}
