/**
 * Reading (and, for tests, writing) Prometheus write-ahead logs (`tsdb/wlog`): the `wal/` and
 * `wbl/` segment files `00000000`, `00000001`, … and the checkpoint dirs `checkpoint.NNNNNNNN`.
 *
 * A segment is a sequence of 32 KiB pages. Each page holds fragments
 * `type(1) | length BE16 | CRC32C(payload) BE32 | payload`; a record is one `full` fragment or
 * `first middle* last`, never crossing a segment. Type 0 means the rest of the page is zero.
 * Compression (snappy raw blocks, flag 0x08, or a zstd frame, flag 0x10) is applied to the whole
 * record before it is cut into fragments.
 *
 * The reader streams: it holds one page and a buffer the size of the largest record, never a
 * whole segment.
 *
 * @module
 */

import { zstdDecompressSync } from "node:zlib";
import { compress as snappyCompress } from "snappyjs";
import { snappyDecodeInto } from "./snappy.ts";
import { RecordType, SeriesRecordParser } from "./record.ts";
import { snappyClaimFits, SnappyStreamDecoder, SnappyStreamError } from "./snappy_stream.ts";
import { crc32c } from "./crc32c.ts";
import { FormatError } from "./encoding.ts";
import { readFullSync, turnEventLoop } from "./_io.ts";

/** Size of a WAL page. Segment sizes are multiples of it. */
export const WAL_PAGE_SIZE = 32 * 1024;
/** Size of a fragment header: type, BE16 length, BE32 CRC32C. */
export const WAL_FRAGMENT_HEADER_SIZE = 7;

const _SNAPPY_FLAG = 0x08;
const _ZSTD_FLAG = 0x10;
const _TYPE_MASK = 0x07;
const _PAGE_TERM = 0;
const _FULL = 1;
const _FIRST = 2;
const _MIDDLE = 3;
const _LAST = 4;
/** Bytes read between two turns of the event loop. */
const _YIELD_BYTES = 8 * 1024 * 1024;
const _FRAGMENT_NAMES = ["zero", "full", "first", "middle", "last"];

/** Compression of a WAL record as stored. */
export type WalCompression = "none" | "snappy" | "zstd";

/** One segment file of a WAL or checkpoint. */
export interface SegmentRef {
  /** The segment number (the file name parsed as a decimal number). */
  index: number;
  /** Path of the file. */
  path: string;
}

/** A checkpoint dir `checkpoint.NNNNNNNN`: the WAL up to and including segment `index`. */
export interface CheckpointRef {
  /** The last WAL segment the checkpoint covers. */
  index: number;
  /** Path of the dir. */
  path: string;
}

/** One record read from a WAL, decompressed. */
export interface WalRecord {
  /** Number of the segment holding the record. */
  segment: number;
  /** Path of that segment file (tells checkpoint segments from WAL segments of the same number). */
  path: string;
  /** Byte offset of the record's first fragment header in the segment. */
  offset: number;
  /** How the record was stored. */
  compression: WalCompression;
  /** The record (decompressed); its first byte is the record type (see `record.ts`). */
  bytes: Uint8Array;
}

/**
 * The WAL is damaged: a CRC or length mismatch, an illegal fragment sequence, undecodable
 * compressed data, or a segment other than the last one ending inside a record. Prometheus would
 * repair its WAL at this point by dropping everything from here on.
 */
export class CorruptionError extends Error {
  /** Number of the damaged segment. */
  readonly segment: number;
  /** Path of the damaged segment file. */
  readonly path: string;
  /** Byte offset in the segment of the offending fragment header (or record start). */
  readonly offset: number;

  /** Creates a corruption error for `path` (segment `segment`) at byte `offset`. */
  constructor(
    segment: number,
    path: string,
    offset: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`corruption in WAL segment ${path} at offset ${offset}: ${message}`, options);
    this.name = "CorruptionError";
    this.segment = segment;
    this.path = path;
    this.offset = offset;
  }
}

function _basename(path: string): string {
  const trimmed = path.replace(/[/\\]+$/, "");
  const i = Math.max(trimmed.lastIndexOf("/"), trimmed.lastIndexOf("\\"));
  return trimmed.slice(i + 1);
}

function _join(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

/**
 * Lists the segment files of a WAL (or checkpoint) dir: names made only of digits, sorted by their
 * number. Like Prometheus, throws a `FormatError` when the numbers are not consecutive; other
 * entries (checkpoint dirs, `.tmp`, `.repair`) are ignored.
 */
export async function listSegments(dir: string): Promise<SegmentRef[]> {
  const refs: SegmentRef[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!/^\d+$/.test(entry.name) || entry.isDirectory) continue;
    refs.push({ index: parseInt(entry.name, 10), path: _join(dir, entry.name) });
  }
  refs.sort((a, b) => a.index - b.index);
  for (let i = 1; i < refs.length; i++) {
    if (refs[i].index !== refs[i - 1].index + 1) {
      throw new FormatError(
        `WAL segments in ${dir} are not consecutive: ${refs[i - 1].index} then ${refs[i].index}`,
      );
    }
  }
  return refs;
}

/**
 * Lists the finished checkpoint dirs `checkpoint.NNNNNNNN` of a WAL dir, oldest first. Dirs still
 * being written (`checkpoint.N.tmp`) are ignored, as Prometheus does.
 */
export async function listCheckpoints(walDir: string): Promise<CheckpointRef[]> {
  const refs: CheckpointRef[] = [];
  for await (const entry of Deno.readDir(walDir)) {
    const m = /^checkpoint\.(\d+)$/.exec(entry.name);
    if (!m || !entry.isDirectory) continue;
    refs.push({ index: parseInt(m[1], 10), path: _join(walDir, entry.name) });
  }
  return refs.sort((a, b) => a.index - b.index);
}

/** What Prometheus replays from a WAL dir, see {@link walReplaySegments}. */
export interface WalReplayPlan {
  /** The newest checkpoint, if any. */
  checkpoint?: CheckpointRef;
  /** The checkpoint's segments, then the WAL segments after the checkpoint, in reading order. */
  segments: SegmentRef[];
}

/**
 * The segments Prometheus replays from a WAL dir at startup: those of the newest checkpoint
 * `checkpoint.N`, then WAL segments N+1 … last (older segments are already in the checkpoint).
 * Throws a `FormatError` when segment N+1 is missing although later ones exist.
 */
export async function walReplaySegments(walDir: string): Promise<WalReplayPlan> {
  const checkpoints = await listCheckpoints(walDir);
  const checkpoint = checkpoints.at(-1);
  let segments = await listSegments(walDir);
  const segs: SegmentRef[] = [];
  if (checkpoint) {
    segs.push(...await listSegments(checkpoint.path));
    segments = segments.filter((s) => s.index > checkpoint.index);
    if (segments.length > 0 && segments[0].index !== checkpoint.index + 1) {
      throw new FormatError(
        `WAL segment ${checkpoint.index + 1} after ${checkpoint.path} is missing ` +
          `(next is ${segments[0].index})`,
      );
    }
  }
  segs.push(...segments);
  return { checkpoint, segments: segs };
}

/** Options of {@link WalReader}. */
export interface WalReaderOptions {
  /**
   * Whether the last segment may end inside a record (default true): the tail of a crash, which
   * Prometheus drops. The reader then stops normally and sets {@link WalReader.torn}. When false,
   * or for any other segment, such an end is a {@link CorruptionError}.
   */
  allowTornTail?: boolean;
  /**
   * Hand out each uncompressed record in the reader's own buffer, valid until the next record is
   * asked for (default false: a copy each). For a replay that is done with a record when it asks
   * for the next: a scrape of a million series is one record of ~10 MiB, and a copy of each
   * would be garbage the size of the WAL.
   */
  reuseBuffer?: boolean;
  /** Bytes read from a segment at a time, a multiple of the page size (default 1 MiB). */
  readBytes?: number;
  /**
   * Series records of more than one fragment are parsed as their fragments come, and their series
   * handed to this one at a time (ref, and labels as `labelsKey` writes them; see `record.ts`
   * {@link SeriesRecordParser}) instead of being yielded: a scrape of a million new series is one
   * record of ~100 MiB, never held whole then. Snappy is decoded as a stream too
   * (`snappy_stream.ts`); zstd records are yielded whole. A damaged entry, or damaged snappy, is a
   * {@link CorruptionError} at the record, after the series before it were handed over (so is a
   * torn tail inside such a record: it ends the reading as a torn tail).
   */
  seriesRecords?: (ref: number, key: string) => void;
  /**
   * Only records of these types (their first byte) are yielded (default: all). The others are
   * skipped undecoded: their fragments are checked for structure but not for their CRC, and not
   * decompressed. For a pass that wants the series records of a WAL that is mostly samples; a
   * damaged byte in a skipped record goes unnoticed. The type of a snappy record is read from its
   * first literal; a record whose type cannot be read so (zstd) is decoded, then dropped.
   */
  recordTypes?: ReadonlySet<number>;
}

/** Where a WAL ended inside a record, see {@link WalReader.torn}. */
export interface TornRecord {
  /** Number of the last segment. */
  segment: number;
  /** Path of the last segment. */
  path: string;
  /** Offset of the first fragment of the incomplete record. */
  offset: number;
}

/** Counters of a {@link WalReader}, updated while reading. */
export interface WalReaderStats {
  /** Segments opened. */
  segments: number;
  /** Records read: yielded, or streamed to `seriesRecords`. */
  records: number;
  /** Of those, series records streamed to `seriesRecords`. */
  streamedRecords: number;
  /** Fragments read (type 0 padding not counted). */
  fragments: number;
  /** Records that were snappy-compressed. */
  snappyRecords: number;
  /** Records that were zstd-compressed. */
  zstdRecords: number;
  /** Records skipped undecoded, see {@link WalReaderOptions.recordTypes}. */
  skippedRecords: number;
}

/** Counters of a reader that has read nothing yet. */
export function newWalReaderStats(): WalReaderStats {
  return {
    segments: 0,
    records: 0,
    streamedRecords: 0,
    fragments: 0,
    snappyRecords: 0,
    zstdRecords: 0,
    skippedRecords: 0,
  };
}

/**
 * Reads the records of an ordered list of WAL segments, checking every fragment's CRC and the
 * fragment sequence, and decompressing snappy and zstd records.
 *
 * A short segment reads as if it were zero-padded to the next page boundary (Prometheus' live
 * segment usually ends mid-page). A record cut off by the end of the last segment (a torn write
 * after a crash) ends the iteration normally and is reported in {@link WalReader.torn}; anywhere
 * else it is a {@link CorruptionError}, as are CRC and length mismatches.
 *
 * @example
 * ```ts
 * const { segments } = await walReplaySegments("data/wal");
 * const reader = new WalReader(segments);
 * for await (const rec of reader) console.log(rec.segment, rec.offset, rec.bytes[0]);
 * if (reader.torn) console.log("last record torn at", reader.torn.offset);
 * ```
 */
export class WalReader implements AsyncIterable<WalRecord> {
  /** The segments, in reading order. */
  readonly segments: readonly SegmentRef[];
  /** Set when the last segment ended inside a record (after iteration). */
  torn: TornRecord | undefined;
  /** Counters. */
  readonly stats: WalReaderStats = newWalReaderStats();
  #allowTornTail: boolean;
  #reuse: boolean;
  /** With `reuseBuffer`, where snappy records are decoded (the largest one's size). */
  #decoded = new Uint8Array(0);
  #types: ReadonlySet<number> | undefined;
  #seriesRecords: ((ref: number, key: string) => void) | undefined;
  #readBytes: number;
  /** Bytes read since the last turn of the event loop. */
  #reads = 0;
  // The record being assembled from its fragments: grown to the largest record, then kept.
  #assembly = new Uint8Array(WAL_PAGE_SIZE);

  /** Reads `segments` (paths named by their number, or refs) in the given order. */
  constructor(segments: readonly (string | SegmentRef)[], options: WalReaderOptions = {}) {
    this.segments = segments.map((s) => {
      if (typeof s !== "string") return s;
      const name = _basename(s);
      if (!/^\d+$/.test(name)) throw new FormatError(`not a WAL segment name: ${s}`);
      return { index: parseInt(name, 10), path: s };
    });
    this.#allowTornTail = options.allowTornTail ?? true;
    this.#reuse = options.reuseBuffer ?? false;
    this.#types = options.recordTypes;
    this.#seriesRecords = options.seriesRecords;
    this.#readBytes = options.readBytes ?? 32 * WAL_PAGE_SIZE;
    if (
      !Number.isSafeInteger(this.#readBytes) || this.#readBytes < WAL_PAGE_SIZE ||
      this.#readBytes % WAL_PAGE_SIZE !== 0
    ) {
      throw new RangeError(
        `readBytes must be a multiple of ${WAL_PAGE_SIZE}, not ${this.#readBytes}`,
      );
    }
  }

  /** A reader over the segment files of one dir (a WAL dir's segments, or a checkpoint dir). */
  static async fromDir(dir: string, options?: WalReaderOptions): Promise<WalReader> {
    return new WalReader(await listSegments(dir), options);
  }

  /**
   * Iterates the records, in order. Each iteration reads the segments anew; {@link torn} and
   * {@link stats} describe the latest one.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<WalRecord> {
    this.torn = undefined;
    Object.assign(this.stats, newWalReaderStats());
    for (let i = 0; i < this.segments.length; i++) {
      const seg = this.segments[i];
      const isLast = i === this.segments.length - 1;
      const file = await Deno.open(seg.path, { read: true });
      try {
        this.stats.segments++;
        yield* this.#readSegment(file, seg, isLast);
      } finally {
        file.close();
      }
      if (this.torn) return;
    }
  }

  async *#readSegment(
    file: Deno.FsFile,
    seg: SegmentRef,
    isLast: boolean,
  ): AsyncGenerator<WalRecord> {
    // Pages are read `#readBytes` at a time: one read a page was an await per 32 KiB.
    const pages = new Uint8Array(this.#readBytes);
    let pagesValid = 0;
    let pagesUsed = 0;
    // The record being assembled (in #assembly): its length so far, first offset, compression.
    let assembled = 0;
    let recordStart = -1;
    let recordFlags = 0;
    // Whether the record being read is skipped (see WalReaderOptions.recordTypes).
    let skipping = false;
    // The series record being streamed (see WalReaderOptions.seriesRecords), if one is.
    let streaming: _SeriesStream | null = null;
    const corrupt = (offset: number, msg: string, cause?: unknown) =>
      new CorruptionError(seg.index, seg.path, offset, msg, cause ? { cause } : undefined);
    // Ends the segment while a record is open: a torn tail, or a corruption.
    const endInsideRecord = (start: number, why: string): CorruptionError | undefined => {
      if (isLast && this.#allowTornTail) {
        this.torn = { segment: seg.index, path: seg.path, offset: start };
        return undefined;
      }
      return corrupt(start, `segment ends inside a record (${why})`);
    };

    for (let pageStart = 0;; pageStart += WAL_PAGE_SIZE) {
      if (pagesUsed >= pagesValid) {
        // Synchronous (an await per read idled a tenth of a WAL split), with a turn of the event
        // loop every 8 MiB or so.
        pagesValid = readFullSync(file, pages);
        pagesUsed = 0;
        this.#reads += pages.length;
        if (this.#reads >= _YIELD_BYTES) {
          this.#reads = 0;
          await turnEventLoop();
        }
      }
      // Past `valid` the page holds stale bytes: nothing there is read.
      const page = pages.subarray(pagesUsed, pagesUsed + WAL_PAGE_SIZE);
      const valid = Math.min(WAL_PAGE_SIZE, pagesValid - pagesUsed);
      pagesUsed += WAL_PAGE_SIZE;
      if (valid <= 0) break; // end of the segment at a page boundary
      let p = 0;
      while (p < WAL_PAGE_SIZE) {
        // Past the real data the page reads as zeros: padding to the page end.
        if (p >= valid) break;
        const offset = pageStart + p;
        const head = page[p];
        const type = head & _TYPE_MASK;
        if (type === _PAGE_TERM) {
          for (let k = p + 1; k < valid; k++) {
            if (page[k] !== 0) {
              throw corrupt(pageStart + k, "unexpected non-zero byte in padded page");
            }
          }
          break;
        }
        if (p + WAL_FRAGMENT_HEADER_SIZE > WAL_PAGE_SIZE) {
          throw corrupt(offset, "fragment header crosses the page boundary");
        }
        if (p + WAL_FRAGMENT_HEADER_SIZE > valid) {
          // The file ends inside a fragment header: a torn write.
          const err = endInsideRecord(recordStart >= 0 ? recordStart : offset, "torn header");
          if (err) throw err;
          return;
        }
        if (type > _LAST) throw corrupt(offset, `unknown fragment type ${type}`);
        const length = (page[p + 1] << 8) | page[p + 2];
        const crc = ((page[p + 3] << 24) | (page[p + 4] << 16) | (page[p + 5] << 8) |
          page[p + 6]) >>> 0;
        const end = p + WAL_FRAGMENT_HEADER_SIZE + length;
        if (end > WAL_PAGE_SIZE) {
          throw corrupt(offset, `invalid fragment length ${length}`);
        }
        if (end > valid) {
          const err = endInsideRecord(recordStart >= 0 ? recordStart : offset, "torn fragment");
          if (err) throw err;
          return;
        }
        const payload = page.subarray(p + WAL_FRAGMENT_HEADER_SIZE, end);
        const flags = head & (_SNAPPY_FLAG | _ZSTD_FLAG);
        if ((type === _FULL || type === _FIRST) && recordStart < 0) {
          const first = this.#types === undefined && this.#seriesRecords === undefined
            ? -1
            : _firstByte(payload, flags);
          skipping = first >= 0 && this.#types !== undefined && !this.#types.has(first);
          streaming = !skipping && type === _FIRST && first === RecordType.Series &&
              this.#seriesRecords !== undefined
            ? new _SeriesStream(flags, this.#seriesRecords)
            : null;
        }
        const actual = skipping ? crc : crc32c(payload);
        if (actual !== crc) {
          throw corrupt(
            offset,
            `checksum mismatch in ${_FRAGMENT_NAMES[type]} fragment: ` +
              `computed ${actual.toString(16)}, stored ${crc.toString(16)}`,
          );
        }
        if (flags === (_SNAPPY_FLAG | _ZSTD_FLAG)) {
          throw corrupt(offset, "fragment flags both snappy and zstd compression");
        }
        const inRecord = recordStart >= 0;
        if ((type === _FULL || type === _FIRST) && inRecord) {
          throw corrupt(offset, `unexpected ${_FRAGMENT_NAMES[type]} fragment inside a record`);
        }
        if ((type === _MIDDLE || type === _LAST) && !inRecord) {
          throw corrupt(offset, `unexpected ${_FRAGMENT_NAMES[type]} fragment outside a record`);
        }
        if (inRecord && flags !== recordFlags) {
          throw corrupt(offset, "fragments of one record differ in compression");
        }
        this.stats.fragments++;
        if (!inRecord) {
          recordStart = offset;
          recordFlags = flags;
        }
        if (skipping) {
          p = end;
          if (type === _FULL || type === _LAST) {
            recordStart = -1;
            this.stats.skippedRecords++;
          }
          continue;
        }
        if (streaming !== null) {
          try {
            streaming.push(payload);
            if (type === _LAST) streaming.end();
          } catch (e) {
            if (!(e instanceof FormatError || e instanceof SnappyStreamError)) throw e;
            throw corrupt(recordStart, `malformed series record: ${e.message}`, e);
          }
          p = end;
          if (type === _LAST) {
            recordStart = -1;
            streaming = null;
            this.stats.records++;
            this.stats.streamedRecords++;
            if (flags === _SNAPPY_FLAG) this.stats.snappyRecords++;
          }
          continue;
        }
        // Copy: the page buffer is reused for the next page.
        if (assembled + payload.length > this.#assembly.length) {
          const bigger = new Uint8Array(Math.max(2 * this.#assembly.length, assembled + length));
          bigger.set(this.#assembly.subarray(0, assembled));
          this.#assembly = bigger;
        }
        this.#assembly.set(payload, assembled);
        assembled += payload.length;
        p = end;
        if (type === _FULL || type === _LAST) {
          const whole = this.#assembly.subarray(0, assembled);
          const stored = this.#reuse ? whole : whole.slice();
          const start = recordStart;
          assembled = 0;
          recordStart = -1;
          const record = this.#finish(seg, start, flags, stored, corrupt);
          if (this.#types === undefined || this.#types.has(record.bytes[0])) yield record;
          else this.stats.skippedRecords++;
        }
      }
      if (valid < WAL_PAGE_SIZE) break; // short read: end of file
    }
    if (recordStart >= 0) {
      const err = endInsideRecord(recordStart, "no last fragment");
      if (err) throw err;
    }
  }

  #finish(
    seg: SegmentRef,
    offset: number,
    flags: number,
    stored: Uint8Array,
    corrupt: (offset: number, msg: string, cause?: unknown) => CorruptionError,
  ): WalRecord {
    let bytes = stored;
    let compression: WalCompression = "none";
    // Prometheus only decompresses non-empty payloads (an empty record stays empty).
    if (flags === _SNAPPY_FLAG && stored.length > 0) {
      compression = "snappy";
      this.stats.snappyRecords++;
      const fail = (msg: string, cause?: unknown) => corrupt(offset, msg, cause);
      if (this.#reuse) {
        // Into one buffer for all records: a fresh one per record (a scrape's samples, MiBs) is
        // memory outside V8's heap that it frees only late.
        const length = _snappyClaim(stored, fail);
        if (this.#decoded.length < length) {
          this.#decoded = new Uint8Array(Math.max(length, 2 * this.#decoded.length));
        }
        bytes = _snappyDecodeInto(stored, this.#decoded.subarray(0, length).fill(0), fail);
      } else bytes = _snappyDecode(stored, fail);
    } else if (flags === _ZSTD_FLAG && stored.length > 0) {
      compression = "zstd";
      this.stats.zstdRecords++;
      try {
        const out = zstdDecompressSync(stored);
        bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      } catch (e) {
        throw corrupt(offset, `zstd decoding failed: ${e instanceof Error ? e.message : e}`, e);
      }
    }
    this.stats.records++;
    return { segment: seg.index, path: seg.path, offset, compression, bytes };
  }
}

/**
 * The first byte of a record from its first fragment's payload, or -1 when that cannot be read
 * without decoding: an uncompressed record's first byte, or that of a snappy one
 * ({@link snappyFirstByte}).
 */
function _firstByte(payload: Uint8Array, flags: number): number {
  if (flags === 0) return payload.length > 0 ? payload[0] : -1;
  if (flags !== _SNAPPY_FLAG) return -1;
  const first = snappyFirstByte(payload);
  return first !== undefined && first >= 0 ? first : -1;
}

/**
 * The first uncompressed byte of a snappy block, from its start: the uvarint length, then the
 * first element, which is always a literal (a copy needs earlier output). -2 for an empty block,
 * -1 for one that starts with a copy (not a snappy block), undefined when `bytes` is too short.
 */
export function snappyFirstByte(bytes: Uint8Array): number | undefined {
  let i = 0;
  while (i < bytes.length && bytes[i] >= 0x80) i++;
  if (i >= 5 || i >= bytes.length) return undefined;
  if (i === 0 && bytes[0] === 0) return -2;
  i++;
  if (i >= bytes.length) return undefined;
  const tag = bytes[i];
  if ((tag & 0x03) !== 0) return -1;
  // A literal of up to 60 bytes has its length in the tag; longer ones in 1-4 more bytes.
  const at = i + 1 + ((tag >>> 2) < 60 ? 0 : (tag >>> 2) - 59);
  return at < bytes.length ? bytes[at] : undefined;
}

/** Reads the uncompressed length that starts a snappy block (a uvarint), or -1. */
export function snappyLength(block: Uint8Array): number {
  let result = 0;
  for (let i = 0, shift = 0; i < 5 && i < block.length; i++, shift += 7) {
    const b = block[i];
    result += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return result;
  }
  return -1;
}

/** The length a snappy block decodes to, checked to be one it can: else it fails. */
function _snappyClaim(
  block: Uint8Array,
  fail: (msg: string, cause?: unknown) => CorruptionError,
): number {
  const length = snappyLength(block);
  if (!snappyClaimFits(length, block.length)) {
    throw fail(`invalid snappy block header (length ${length})`);
  }
  return length;
}

/**
 * Decodes a snappy block into `out`, zeroed and exactly the claimed length long (see
 * {@link _snappyClaim}), as snappyjs' `uncompress` decodes into a new buffer of that length.
 */
function _snappyDecodeInto(
  block: Uint8Array,
  out: Uint8Array,
  fail: (msg: string, cause?: unknown) => CorruptionError,
): Uint8Array {
  if (!snappyDecodeInto(block, out)) throw fail("snappy decoding failed: Invalid Snappy bitstream");
  return out;
}

function _snappyDecode(
  block: Uint8Array,
  fail: (msg: string, cause?: unknown) => CorruptionError,
): Uint8Array {
  // A new buffer is zeroed already.
  return _snappyDecodeInto(block, new Uint8Array(_snappyClaim(block, fail)), fail);
}

/** Options of {@link WalSegmentWriter}. */
export interface WalSegmentWriterOptions {
  /** Compression of the records (default "none"); a record is stored raw if that is smaller. */
  compression?: "none" | "snappy";
}

/**
 * Writes one WAL segment file the way Prometheus does (pages, fragments, CRCs, optional snappy).
 * Meant for tests and tools that need small WALs; it does not cut new segments.
 */
export class WalSegmentWriter {
  #file: Deno.FsFile;
  #page = new Uint8Array(WAL_PAGE_SIZE);
  #alloc = 0;
  #written = 0;
  #compression: "none" | "snappy";

  private constructor(file: Deno.FsFile, compression: "none" | "snappy") {
    this.#file = file;
    this.#compression = compression;
  }

  /** Creates (or truncates) the segment file `path`. */
  static async create(
    path: string,
    options: WalSegmentWriterOptions = {},
  ): Promise<WalSegmentWriter> {
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    return new WalSegmentWriter(file, options.compression ?? "none");
  }

  /** Appends one record; returns the offset of its first fragment in the segment. */
  async log(record: Uint8Array): Promise<number> {
    let data = record;
    let flags = 0;
    if (this.#compression === "snappy" && record.length > 0) {
      const enc = snappyCompress(record);
      if (enc.length < record.length) {
        data = enc;
        flags = _SNAPPY_FLAG;
      }
    }
    if (WAL_PAGE_SIZE - this.#alloc < WAL_FRAGMENT_HEADER_SIZE) await this.#flushPage();
    const start = this.#written + this.#alloc;
    for (let i = 0; i === 0 || data.length > 0; i++) {
      const room = WAL_PAGE_SIZE - this.#alloc - WAL_FRAGMENT_HEADER_SIZE;
      const part = data.subarray(0, Math.min(room, data.length));
      const rest = data.subarray(part.length);
      const type = i === 0
        ? (rest.length === 0 ? _FULL : _FIRST)
        : (rest.length === 0 ? _LAST : _MIDDLE);
      const at = this.#alloc;
      this.#page[at] = type | flags;
      this.#page[at + 1] = part.length >>> 8;
      this.#page[at + 2] = part.length & 0xff;
      const crc = crc32c(part);
      this.#page[at + 3] = crc >>> 24;
      this.#page[at + 4] = (crc >>> 16) & 0xff;
      this.#page[at + 5] = (crc >>> 8) & 0xff;
      this.#page[at + 6] = crc & 0xff;
      this.#page.set(part, at + WAL_FRAGMENT_HEADER_SIZE);
      this.#alloc += WAL_FRAGMENT_HEADER_SIZE + part.length;
      if (WAL_PAGE_SIZE - this.#alloc < WAL_FRAGMENT_HEADER_SIZE) await this.#flushPage();
      data = rest;
    }
    return start;
  }

  async #flushPage(): Promise<void> {
    // Fragments never cross pages: the rest of the page is zero (type 0 padding).
    this.#page.fill(0, this.#alloc);
    await _writeAll(this.#file, this.#page);
    this.#written += WAL_PAGE_SIZE;
    this.#page.fill(0);
    this.#alloc = 0;
  }

  /**
   * Writes the last page and closes the file. With `pad` (default true) the last page is
   * zero-padded to 32 KiB as Prometheus does on close; without it the file ends where the data
   * ends, like a live segment.
   */
  async close(pad = true): Promise<void> {
    try {
      if (this.#alloc > 0) {
        if (pad) {
          await this.#flushPage();
        } else {
          await _writeAll(this.#file, this.#page.subarray(0, this.#alloc));
          this.#written += this.#alloc;
          this.#alloc = 0;
        }
      }
    } finally {
      this.#file.close();
    }
  }
}

async function _writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let n = 0;
  while (n < bytes.length) n += await file.write(bytes.subarray(n));
}

/** A series record's fragments, parsed as they come (see WalReaderOptions.seriesRecords). */
class _SeriesStream {
  #parser: SeriesRecordParser;
  #snappy: SnappyStreamDecoder | null;

  constructor(flags: number, fn: (ref: number, key: string) => void) {
    this.#parser = new SeriesRecordParser(fn);
    this.#snappy = flags === _SNAPPY_FLAG
      ? new SnappyStreamDecoder((bytes) => this.#parser.push(bytes))
      : null;
  }

  push(payload: Uint8Array): void {
    if (this.#snappy) this.#snappy.push(payload);
    else this.#parser.push(payload);
  }

  end(): void {
    this.#snappy?.end();
    this.#parser.end();
  }
}
