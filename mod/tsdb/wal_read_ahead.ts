/**
 * A {@link WalReader} that runs on a worker (`read_ahead_worker.ts`) while its records are replayed
 * here: reading the pages, checking the CRCs and decompressing take about half of a WAL split,
 * which then runs on the second core alongside the other half. The records come through a ring of
 * shared memory (`_ring.ts`), in order, each in this reader's own buffer, valid until the next
 * one is asked for (as with `reuseBuffer`); the series of a streamed series record come the same
 * way, to `seriesRecords`. A damaged WAL fails as the reader fails, after the records before the
 * damage, with the same {@link CorruptionError} (a `FormatError` or an I/O error keeps its class
 * too); a torn tail ends it the same way.
 *
 * Memory: the ring (`ringBytes`, default 4 MiB), the worker (its runtime, 10-20 MiB, and its
 * reader: a read buffer and the largest record, twice), and here the largest record.
 *
 * @module
 */

import { newRing, type RingBuffers, RingItem } from "./_ring.ts";
import { type PreparedReadAheadWorker, readAhead, type ReadAheadFailure } from "./_read_ahead.ts";
import { rebuildWorkerError } from "./_worker_error.ts";
import {
  CorruptionError,
  newWalReaderStats,
  type SegmentRef,
  type TornRecord,
  type WalCompression,
  type WalReaderStats,
  type WalRecord,
} from "./wlog.ts";

/** Default of {@link WalReadAheadOptions.ringBytes}: the most the worker reads ahead. */
export const WAL_RING_BYTES = 4 * 1024 * 1024;

/** Options of {@link WalReadAhead}. */
export interface WalReadAheadOptions {
  /** As {@link WalReaderOptions.allowTornTail} (default true). */
  allowTornTail?: boolean;
  /** As {@link WalReaderOptions.readBytes}. */
  readBytes?: number;
  /** As {@link WalReaderOptions.seriesRecords}. */
  seriesRecords?: (ref: number, key: string) => void;
  /**
   * Bytes of the ring the records come through (default 4 MiB): the most the worker reads ahead.
   * A record larger than half of it comes in pieces.
   */
  ringBytes?: number;
  /** A worker started ahead: this reader takes it over. */
  worker?: PreparedReadAheadWorker;
}

/** The job a {@link WalReadAhead} sends its worker. */
export interface WalReadJob {
  kind: "wal";
  segments: SegmentRef[];
  allowTornTail: boolean;
  readBytes?: number;
  streamSeries: boolean;
  ring: RingBuffers;
}

/** A message from the worker. */
export type FromWalReadWorker =
  | { kind: "end"; stats: WalReaderStats; torn: TornRecord | undefined }
  | (ReadAheadFailure & { corruption?: { segment: number; path: string; offset: number } });

const _COMPRESSION: WalCompression[] = ["none", "snappy", "zstd"];

/** Reads WAL records on a worker; see the module doc. One iteration per reader. */
export class WalReadAhead implements AsyncIterable<WalRecord> {
  /** The segments, in reading order. */
  readonly segments: readonly SegmentRef[];
  /** Set when the last segment ended inside a record (after iteration). */
  torn: TornRecord | undefined;
  /** The reader's counters (after iteration). */
  readonly stats: WalReaderStats = newWalReaderStats();
  #options: WalReadAheadOptions;

  /** Reads `segments` in the given order. */
  constructor(segments: readonly SegmentRef[], options: WalReadAheadOptions = {}) {
    this.segments = segments;
    this.#options = options;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WalRecord> {
    const o = this.#options;
    const job: WalReadJob = {
      kind: "wal",
      segments: [...this.segments],
      allowTornTail: o.allowTornTail ?? true,
      readBytes: o.readBytes,
      streamSeries: o.seriesRecords !== undefined,
      ring: newRing(o.ringBytes ?? WAL_RING_BYTES),
    };
    const end = (m: FromWalReadWorker) => {
      if (m.kind === "failed") throw _rebuild(m);
      Object.assign(this.stats, m.stats);
      this.torn = m.torn;
    };
    for await (const e of readAhead(job, o.worker, "WAL reading", end)) {
      if (e.kind === RingItem.series) {
        o.seriesRecords!(e.ref, _utf8.decode(e.bytes));
        continue;
      }
      const seg = this.segments[e.segment];
      yield {
        segment: seg.index,
        path: seg.path,
        offset: e.offset,
        compression: _COMPRESSION[e.compression],
        bytes: e.bytes,
      };
    }
  }
}

const _utf8 = new TextDecoder();

// The worker's failure as it was thrown there: a CorruptionError keeps its place in the WAL, a
// FormatError or an I/O error its class (a missing segment is told apart by it).
function _rebuild(m: Extract<FromWalReadWorker, { kind: "failed" }>): Error {
  if (m.corruption) {
    const c = m.corruption;
    const e = new CorruptionError(c.segment, c.path, c.offset, "");
    e.message = m.message;
    return e;
  }
  return rebuildWorkerError(m);
}
