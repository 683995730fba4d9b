/**
 * What a raw export ships, as far as the oldest Prometheus that reads it is concerned: the chunk
 * encodings of the block chunk files and `chunks_head/` files, and the record types of the WAL,
 * checkpoint and `wbl/` segments. The files are scanned as their bytes stream into the archive
 * (one read), without checking checksums (the raw copy ships them as they are, damaged or not).
 *
 * - Block chunk files (`tsdb/chunks/chunks.go`): magic, version and padding (8 bytes), then
 *   `uvarint len | encoding | data | CRC32C` per chunk.
 * - Head chunk files (`head_chunks.go`): 8 header bytes, then `seriesRef BE64 | mint BE64 |
 *   maxt BE64 | encoding (bit 7: out-of-order) | uvarint len | data | CRC32C`, up to an all-zero
 *   entry or tail (the files are preallocated).
 * - WAL segments (`tsdb/wlog`): 32 KiB pages of fragments `flags | BE16 len | CRC32C | payload`;
 *   a record's type is the first byte of its (decompressed) bytes.
 *
 * The release each feature needs, from Prometheus' tags: XOR2 chunks 3.11, histogram chunks with
 * start timestamps 3.14 (`tsdb/chunkenc/chunk.go`); out-of-order head chunks and `wbl/` 2.39;
 * WAL records 7 (histograms) 2.40, 8 (float histograms) 2.42, 9 and 10 (custom buckets) 3.2, 11
 * (samples with start timestamps) 3.11, 12 and 13 (histograms with start timestamps) 3.12
 * (`tsdb/record/record.go`). Older releases skip record types they do not know without a word
 * (`Decoder.Type` answers Unknown, the replay's `default` case does nothing), losing those
 * samples; they refuse chunks of encodings they do not know.
 *
 * @module
 */

import { zstdDecompressSync } from "node:zlib";
import { uncompress as snappyUncompress } from "snappyjs";
import { isKnownEncoding } from "./chunkenc/convert.ts";
import { histogramChunkSchema, minPrometheusVersion } from "./compact.ts";
import { compareVersions } from "../prometheus.ts";
import { concatBytes } from "./encoding.ts";
import { decodeRecord, isFullRangeTombstone } from "./record.ts";
import { snappyFirstByte } from "./wlog.ts";

/** One file's scanner: takes its bytes in order. */
export interface FileScanner {
  /** The next bytes of the file (valid only during the call). */
  push(bytes: Uint8Array): void;
  /** The file ended. */
  end(): void;
}

/** What {@link RawContentScan} found. */
export interface RawContents {
  /** Chunks by encoding byte (block chunk files and `chunks_head/`). */
  chunkEncodings: Map<number, number>;
  /** Whether a histogram chunk uses custom buckets (schema -53). */
  customBuckets: boolean;
  /** Out-of-order head chunks in `chunks_head/`. */
  outOfOrderHeadChunks: number;
  /** WAL and checkpoint records by type byte. */
  walRecordTypes: Map<number, number>;
  /** Records in `wbl/`. */
  wblRecords: number;
  /**
   * Tombstones over exactly [MinInt64, MaxInt64] in WAL and checkpoint records: evictions of
   * stale-series compaction (3.10+, `tsdb/head.go` truncateSeries).
   */
  fullRangeTombstones: number;
  /** Each block's `meta.json`: its maxTime and compaction hints. */
  blocks: { file: string; maxTime: number; hints: string[] }[];
  /** Where chunks of unknown encodings are: file and encoding, once per file and encoding. */
  unknownEncodings: { file: string; encoding: number }[];
  /** Files that did not parse to their end (scanning stopped there; the copy went on). */
  unparsed: string[];
}

/** The first release that reads each WAL record type (older ones skip the record). */
const _RECORD_SINCE: Record<number, string> = {
  7: "2.40.0",
  8: "2.42.0",
  9: "3.2.0",
  10: "3.2.0",
  11: "3.11.0",
  12: "3.12.0",
  13: "3.12.0",
};
/** Record types of the WAL that promcase knows (Prometheus' `record.go` up to 3.14). */
const _KNOWN_RECORDS = 13;

/** Collects {@link RawContents} over the files of a raw export. */
export class RawContentScan {
  /** What was found so far. */
  readonly contents: RawContents = {
    chunkEncodings: new Map(),
    customBuckets: false,
    outOfOrderHeadChunks: 0,
    walRecordTypes: new Map(),
    wblRecords: 0,
    fullRangeTombstones: 0,
    blocks: [],
    unknownEncodings: [],
    unparsed: [],
  };

  /**
   * A scanner for the data-dir file at `path` (`/`-separated, relative: `01H…/meta.json`,
   * `01H…/chunks/000001`,
   * `chunks_head/000001`, `wal/00000012`, `wal/checkpoint.00000011/00000000`, `wbl/00000003`),
   * or null when the file holds nothing that matters here.
   */
  scanner(path: string): FileScanner | null {
    const parts = path.split("/");
    const name = parts[parts.length - 1];
    if (parts.length === 2 && name === "meta.json") return new _BlockMeta(this.contents, path);
    if (!/^\d+$/.test(name)) return null;
    if (parts.length === 3 && parts[1] === "chunks") return new _BlockChunks(this.contents, path);
    if (parts.length === 2 && parts[0] === "chunks_head") {
      return new _HeadChunks(this.contents, path);
    }
    if (parts[0] === "wal" && (parts.length === 2 || parts[1].startsWith("checkpoint."))) {
      return new _WalRecords(this.contents, path, false);
    }
    if (parts.length === 2 && parts[0] === "wbl") return new _WalRecords(this.contents, path, true);
    return null;
  }
}

/**
 * The oldest release that reads all of `contents`, and warnings about what no release known to
 * promcase reads (unknown chunk encodings and record types) or what could not be scanned.
 */
export function rawMinPrometheusVersion(
  contents: RawContents,
): { version: string; warnings: string[] } {
  let version = minPrometheusVersion(
    [...contents.chunkEncodings.keys()].filter(isKnownEncoding),
    contents.customBuckets,
  );
  const raise = (v: string) => {
    if (compareVersions(v, version) > 0) version = v;
  };
  if (contents.outOfOrderHeadChunks > 0 || contents.wblRecords > 0) raise("2.39.0");
  for (const type of contents.walRecordTypes.keys()) {
    const since = _RECORD_SINCE[type];
    if (since) raise(since);
  }
  const warnings: string[] = [];
  // A full-range tombstone is an eviction only since 3.10, and a series that came back under the
  // same labels survives it only since 3.14 (commit 2151ba1914, head_wal.go loadWAL): older
  // releases keep it as a head tombstone on the series, and a revived series' samples join that
  // series (multiRef) and are deleted with it.
  if (contents.fullRangeTombstones > 0) {
    raise("3.14.0");
    warnings.push(
      `the WAL holds ${contents.fullRangeTombstones} full-range tombstones (stale-series ` +
        `compaction): a Prometheus before 3.14 also deletes a series that came back under the ` +
        `same labels after its eviction`,
    );
  }
  // The head's minValidTime leaves hinted blocks out (db.go inOrderBlocksMaxTime):
  // from-stale-series since 3.10, from-selected-series since 3.14. An older release counts such
  // a block when it ends after every other in-order block, and drops the WAL's samples before
  // its end, of every series.
  const headData = [2, 7, 8, 9, 10, 11, 12, 13].some((t) => contents.walRecordTypes.has(t));
  if (headData) {
    let inOrder = -Infinity;
    for (const b of contents.blocks) {
      if (!b.hints.some((h) => _HINT_SINCE[h] || h === "from-out-of-order")) {
        inOrder = Math.max(inOrder, b.maxTime);
      }
    }
    const hinted = contents.blocks
      .filter((b) => b.hints.some((h) => _HINT_SINCE[h]) && !b.hints.includes("from-out-of-order"))
      .sort((a, b) => b.maxTime - a.maxTime);
    // The newest hinted block past the in-order ones bounds the head of any release that does not
    // know its hint; one that knows it goes on to the next.
    for (const b of hinted) {
      if (b.maxTime <= inOrder) break;
      const since = b.hints.map((h) => _HINT_SINCE[h]).filter((v) => v)
        .reduce((a, v) => (compareVersions(v, a) > 0 ? v : a));
      if (compareVersions(since, version) <= 0) continue;
      raise(since);
      warnings.push(
        `${b.file} is hinted ${b.hints.join(", ")} and ends after the other blocks: a Prometheus ` +
          `before ${since} takes its end as the head's lower bound and drops the WAL's samples ` +
          `before it`,
      );
    }
  }
  for (const u of contents.unknownEncodings) {
    warnings.push(
      `${u.file} has chunks of encoding ${u.encoding}, which promcase does not know: a ` +
        `Prometheus that does not know it either refuses them`,
    );
  }
  const unknownTypes = [...contents.walRecordTypes]
    .filter(([type]) => type === 0 || type > _KNOWN_RECORDS);
  if (unknownTypes.length > 0) {
    warnings.push(
      `the WAL holds records of types promcase does not know (${
        unknownTypes.map(([type, n]) => `type ${type}: ${n}`).join(", ")
      }): a Prometheus that does not know them skips them on replay`,
    );
  }
  for (const file of contents.unparsed) {
    warnings.push(
      `${file} could not be scanned to its end: minPrometheusVersion ${version} does not ` +
        `count what follows there`,
    );
  }
  return { version, warnings };
}

/** Compaction hints that keep a block out of the head's minValidTime, and since which release. */
const _HINT_SINCE: Record<string, string> = {
  "from-stale-series": "3.10.0",
  "from-selected-series": "3.14.0",
};

/** A block's `meta.json`: read whole (a few hundred bytes), parsed at its end. */
class _BlockMeta implements FileScanner {
  #parts: Uint8Array[] = [];
  #bytes = 0;

  constructor(private readonly _contents: RawContents, private readonly _path: string) {}

  push(bytes: Uint8Array): void {
    if (this.#bytes > 1 << 20) return; // no meta.json is that large: not one to read
    this.#parts.push(bytes.slice());
    this.#bytes += bytes.length;
  }

  end(): void {
    try {
      const meta = JSON.parse(new TextDecoder().decode(concatBytes(this.#parts)));
      const hints = meta?.compaction?.hints;
      if (typeof meta?.maxTime !== "number") throw new Error("no maxTime");
      this._contents.blocks.push({
        file: this._path,
        maxTime: meta.maxTime,
        hints: Array.isArray(hints) ? hints.filter((h) => typeof h === "string") : [],
      });
    } catch {
      this._contents.unparsed.push(this._path);
    }
    this.#parts = [];
  }
}

function _count(map: Map<number, number>, key: number): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

// Enough of a histogram chunk's data to read its schema: its 3 header bytes, a zero threshold of
// up to 9 bytes and a varbit schema of up to 9 bytes.
const _SCHEMA_BYTES = 24;

/** Shared by the chunk file scanners: one chunk's encoding, and its first bytes for histograms. */
abstract class _ChunkFile implements FileScanner {
  protected _header = 8; // file header bytes left to skip
  protected _skip = 0; // bytes of the current chunk (and CRC) left to skip
  #head: number[] | null = null; // first bytes of a histogram chunk's data
  #headBytes = 0; // how many of them to keep (never the CRC)
  #stopped = false;
  #unknownSeen = new Set<number>();

  constructor(protected readonly _contents: RawContents, protected readonly _path: string) {}

  push(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length && !this.#stopped) {
      if (this._header > 0) {
        const n = Math.min(this._header, bytes.length - i);
        this._header -= n;
        i += n;
      } else if (this._skip > 0) {
        const n = Math.min(this._skip, bytes.length - i);
        const head = this.#head;
        if (head !== null) {
          for (let k = 0; k < n && head.length < this.#headBytes; k++) head.push(bytes[i + k]);
        }
        this._skip -= n;
        i += n;
        if (this._skip === 0) this.#chunkDone();
      } else {
        i = this._meta(bytes, i);
      }
    }
  }

  end(): void {
    if (this.#stopped) return;
    // Block chunk files never change; the last head chunk file of a running Prometheus may end
    // inside an entry (copied up to the length it had when the export started).
    if ((this._skip > 0 || this._midEntry()) && !this._liveTail) this._stop();
  }

  /** Whether the file may end inside an entry. */
  protected abstract get _liveTail(): boolean;

  /** Reads entry metadata from `bytes[i]` on; returns the position after what it took. */
  protected abstract _meta(bytes: Uint8Array, i: number): number;

  /** Whether an entry's metadata was partly read when the file ended. */
  protected abstract _midEntry(): boolean;

  /** A chunk of `encoding` starts, with `len` bytes of data (then 4 CRC bytes). */
  protected _chunk(encoding: number, len: number): void {
    _count(this._contents.chunkEncodings, encoding);
    if (!isKnownEncoding(encoding) && !this.#unknownSeen.has(encoding)) {
      this.#unknownSeen.add(encoding);
      this._contents.unknownEncodings.push({ file: this._path, encoding });
    }
    const histogram = encoding === 2 || encoding === 3 || encoding === 5 || encoding === 6;
    this.#head = histogram && !this._contents.customBuckets ? [] : null;
    this.#headBytes = Math.min(_SCHEMA_BYTES, len);
    this._skip = len + 4;
  }

  #chunkDone(): void {
    const head = this.#head;
    this.#head = null;
    if (head === null) return;
    try {
      // The chunk data starts with its own 3 header bytes; the layout follows.
      const data = new Uint8Array(_SCHEMA_BYTES);
      data.set(head);
      if (histogramChunkSchema(data) === -53) this._contents.customBuckets = true;
    } catch {
      // An empty or odd chunk: the schema does not matter for it.
    }
  }

  protected _stop(): void {
    if (!this.#stopped) this._contents.unparsed.push(this._path);
    this.#stopped = true;
  }

  protected _stopQuietly(): void {
    this.#stopped = true;
  }
}

/** A block's chunk file. */
class _BlockChunks extends _ChunkFile {
  protected get _liveTail(): boolean {
    return false;
  }

  #len = 0;
  #shift = 1;
  #lenBytes = 0;
  #needEncoding = false;

  protected _meta(bytes: Uint8Array, i: number): number {
    if (this.#needEncoding) {
      this.#needEncoding = false;
      this._chunk(bytes[i], this.#len);
      this.#len = 0;
      this.#shift = 1;
      this.#lenBytes = 0;
      return i + 1;
    }
    const b = bytes[i];
    this.#len += (b & 0x7f) * this.#shift;
    this.#shift *= 128;
    this.#lenBytes++;
    if (b < 0x80) {
      this.#needEncoding = true;
    } else if (this.#lenBytes >= 8) {
      this._stop(); // no chunk is that long
    }
    return i + 1;
  }

  protected _midEntry(): boolean {
    return this.#lenBytes > 0 || this.#needEncoding;
  }
}

/** A `chunks_head/` file. */
class _HeadChunks extends _ChunkFile {
  protected get _liveTail(): boolean {
    return true;
  }

  #meta = new Uint8Array(25); // seriesRef, mint, maxt, encoding
  #metaFill = 0;
  #len = 0;
  #shift = 1;
  #lenBytes = 0;

  protected _meta(bytes: Uint8Array, i: number): number {
    if (this.#metaFill < 25) {
      const n = Math.min(25 - this.#metaFill, bytes.length - i);
      this.#meta.set(bytes.subarray(i, i + n), this.#metaFill);
      this.#metaFill += n;
      if (this.#metaFill === 25 && this.#meta.subarray(0, 24).every((b) => b === 0)) {
        // Series refs start at 1: an all-zero entry ends the written part.
        this._stopQuietly();
        this.#metaFill = 0;
      }
      return i + n;
    }
    const b = bytes[i];
    this.#len += (b & 0x7f) * this.#shift;
    this.#shift *= 128;
    this.#lenBytes++;
    if (b < 0x80) {
      const encoding = this.#meta[24];
      if (encoding & 0x80) this._contents.outOfOrderHeadChunks++;
      this._chunk(encoding & 0x7f, this.#len);
      this.#metaFill = 0;
      this.#len = 0;
      this.#shift = 1;
      this.#lenBytes = 0;
    } else if (this.#lenBytes >= 8) {
      this._stop();
    }
    return i + 1;
  }

  protected _midEntry(): boolean {
    // A short zero tail (too short for an entry) is the preallocated rest of the file.
    return this.#lenBytes > 0 || this.#meta.subarray(0, this.#metaFill).some((b) => b !== 0);
  }
}

const _PAGE = 32 * 1024;
const _FRAGMENT_HEADER = 7;
// Enough of a record's first bytes to tell its type: a snappy block's length (up to 5 bytes), the
// literal's tag and up to 4 length bytes, and the first byte.
const _PREFIX_BYTES = 16;

/** A WAL, checkpoint or WBL segment: the type of every record. */
class _WalRecords implements FileScanner {
  #page = new Uint8Array(_PAGE);
  #fill = 0;
  // The record being assembled: its compression and first bytes (all of it for zstd).
  #inRecord = false;
  #compression = 0;
  #parts: Uint8Array[] = [];
  #partBytes = 0;
  #typed = false;
  #stopped = false;
  // A tombstones record's fragments, whole (they are rare and small): see _fullRangeStones.
  #tomb: Uint8Array[] | null = null;

  constructor(
    private readonly _contents: RawContents,
    private readonly _path: string,
    private readonly _wbl: boolean,
  ) {}

  push(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length && !this.#stopped) {
      const n = Math.min(_PAGE - this.#fill, bytes.length - i);
      this.#page.set(bytes.subarray(i, i + n), this.#fill);
      this.#fill += n;
      i += n;
      if (this.#fill === _PAGE) this.#flushPage();
    }
  }

  end(): void {
    // A live segment ends mid-page; the rest reads as zeros, as Prometheus reads it. A record
    // left open there is a torn write, which Prometheus drops too.
    if (this.#fill > 0 && !this.#stopped) {
      this.#page.fill(0, this.#fill);
      this.#flushPage();
    }
  }

  #flushPage(): void {
    const p = this.#page;
    let pos = 0;
    while (pos + _FRAGMENT_HEADER <= _PAGE && !this.#stopped) {
      const flags = p[pos];
      const kind = flags & 0x07;
      if (kind === 0) break; // the rest of the page is padding
      const len = (p[pos + 1] << 8) | p[pos + 2];
      const start = pos + _FRAGMENT_HEADER;
      if (kind > 4 || start + len > _PAGE) {
        this.#stop();
        break;
      }
      this.#fragment(kind, flags, p.subarray(start, start + len));
      pos = start + len;
    }
    this.#fill = 0;
  }

  #fragment(kind: number, flags: number, payload: Uint8Array): void {
    if (kind === 1 || kind === 2) {
      // full, first: a new record (a record left open before is dropped, as Prometheus would).
      this.#inRecord = true;
      this.#compression = flags & 0x18;
      this.#parts = [];
      this.#partBytes = 0;
      this.#typed = false;
      const compression = flags & 0x18;
      const first = compression === 0
        ? payload[0]
        : compression === 0x08
        ? snappyFirstByte(payload)
        : undefined;
      this.#tomb = first === 3 && !this._wbl ? [] : null;
    } else if (!this.#inRecord) {
      return; // middle or last without a first: damage Prometheus' repair would cut
    }
    this.#tomb?.push(payload.slice());
    if (!this.#typed) {
      // Copied (the page buffer is reused); only the first bytes unless zstd needs them all.
      const part = this.#compression === 0x10
        ? payload.slice()
        : payload.slice(0, Math.max(0, _PREFIX_BYTES - this.#partBytes));
      this.#parts.push(part);
      this.#partBytes += part.length;
      this.#tryType(kind === 1 || kind === 4);
    }
    if (kind === 1 || kind === 4) {
      if (this.#tomb) {
        const stored = concatBytes(this.#tomb);
        this.#tomb = null;
        try {
          const bytes = this.#compression === 0x08 ? snappyUncompress(stored) : stored;
          this._contents.fullRangeTombstones += _fullRangeStones(bytes);
        } catch {
          this.#stop();
        }
      }
      if (!this.#typed) this.#stop(); // a complete record whose type cannot be told
      this.#inRecord = false;
      this.#parts = [];
    }
  }

  /**
   * Tells the record's type from its first bytes when it can (`complete`: all bytes are in): -2
   * for an empty record (Prometheus' type Unknown, skipped), -1 for bytes that do not decode.
   */
  #tryType(complete: boolean): void {
    const zstd = this.#compression === 0x10;
    // A zstd record is decompressed whole; the others need their first bytes only.
    if ((zstd && !complete) || (!zstd && !complete && this.#partBytes < _PREFIX_BYTES)) return;
    const bytes = this.#parts.length === 1 ? this.#parts[0] : concatBytes(this.#parts);
    let type: number;
    if (this.#compression === 0) {
      type = bytes.length > 0 ? bytes[0] : -2;
    } else if (this.#compression === 0x08) {
      type = snappyFirstByte(bytes) ?? -1;
    } else if (zstd) {
      try {
        const out = zstdDecompressSync(bytes);
        type = out.length > 0 ? out[0] : -2;
        if (type === 3 && !this._wbl) this._contents.fullRangeTombstones += _fullRangeStones(out);
      } catch {
        type = -1;
      }
    } else {
      type = -1; // both compression flags
    }
    this.#typed = true;
    this.#parts = [];
    if (type === -1) this.#stop();
    if (type < 0) return;
    if (this._wbl) this._contents.wblRecords++;
    else _count(this._contents.walRecordTypes, type);
  }

  #stop(): void {
    if (!this.#stopped) this._contents.unparsed.push(this._path);
    this.#stopped = true;
  }
}

/**
 * The entries of a tombstones record that evict a series (see isFullRangeTombstone). Throws on a
 * record that does not decode.
 */
function _fullRangeStones(bytes: Uint8Array): number {
  const record = decodeRecord(bytes);
  if (record.type !== "tombstones") throw new Error("not a tombstones record");
  return record.tombstones.filter(isFullRangeTombstone).length;
}
