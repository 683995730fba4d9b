/**
 * A {@link WalReader} on another thread: a Web Worker (`wlog_worker.ts`) reads the segments,
 * checks the CRCs and decompresses the records, and hands them over in batches, while the
 * calling thread decodes the records of the previous batch. A head replay's WAL split so uses
 * the second core for the reading, which is about half of its work on a snappy WAL.
 *
 * It gives what a WalReader gives, in the same order: the records, then {@link torn} and
 * {@link stats}, or the same error (a {@link CorruptionError} with its segment and offset; a file
 * error of the same class) after the records before it.
 *
 * Memory: at most `batches` batches of `batchBytes` each (default 2 of 1 MiB) are on their way
 * or being read, each reused once read; a batch holds at least one record, so a record larger
 * than `batchBytes` (a scrape of a million series is one of ~10 MiB) makes its batch that large.
 * The worker holds its WalReader's buffers (the read size and the largest record). A batch's
 * records are valid until the next batch is asked for (as `reuseBuffer` of a WalReader), or
 * copied each with `reuseBuffer: false`.
 *
 * @module
 */

import {
  CorruptionError,
  type SegmentRef,
  type TornRecord,
  type WalCompression,
  type WalReaderOptions,
  type WalReaderStats,
  type WalRecord,
} from "./wlog.ts";
import { rebuildWorkerError } from "./_worker_errors.ts";

/** Options of {@link ThreadedWalReader}: a WalReader's, and the batches'. */
export interface ThreadedWalReaderOptions extends WalReaderOptions {
  /** Bytes of records per batch (default 1 MiB; a larger record gets a batch of its size). */
  batchBytes?: number;
  /** Batches on their way at once (default 2, at least 1). */
  batches?: number;
}

/** What the calling thread sends the worker. */
export type ToWalWorker =
  | {
    kind: "start";
    segments: SegmentRef[];
    options: Omit<WalReaderOptions, "recordTypes" | "reuseBuffer"> & { recordTypes?: number[] };
    batchBytes: number;
    batches: number;
  }
  | { kind: "credit"; buffer: ArrayBuffer | null };

/** What the worker sends back. */
export type FromWalWorker =
  | { kind: "batch"; buffer: ArrayBuffer; length: number }
  | { kind: "end"; torn: TornRecord | undefined; stats: WalReaderStats }
  | {
    kind: "failed";
    name: string;
    message: string;
    corruption?: { segment: number; path: string; offset: number; reason: string };
  };

/** A record's head in a batch: length, segment (its index in the list), offset, compression. */
export const WAL_BATCH_HEAD = 4 + 4 + 8 + 1;
/** Compressions by their code in a batch. */
export const WAL_BATCH_COMPRESSIONS: readonly WalCompression[] = ["none", "snappy", "zstd"];

/** Reads WAL records on a worker thread; iterate it once, as a {@link WalReader}. */
export class ThreadedWalReader implements AsyncIterable<WalRecord> {
  /** The segments, in reading order. */
  readonly segments: readonly SegmentRef[];
  /** Set when the last segment ended inside a record (after iteration). */
  torn: TornRecord | undefined;
  /** The worker's reader's counters (after iteration). */
  stats: WalReaderStats | undefined;
  #options: ThreadedWalReaderOptions;

  /** Reads `segments` in the given order. */
  constructor(segments: readonly SegmentRef[], options: ThreadedWalReaderOptions = {}) {
    this.segments = segments;
    this.#options = options;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WalRecord> {
    const o = this.#options;
    const worker = new Worker(new URL("./wlog_worker.ts", import.meta.url).href, {
      type: "module",
    });
    // Messages wait here until the iteration asks for them.
    const inbox: FromWalWorker[] = [];
    let wake: (() => void) | null = null;
    const receive = (message: FromWalWorker) => {
      inbox.push(message);
      wake?.();
      wake = null;
    };
    worker.onmessage = (event: MessageEvent<FromWalWorker>) => receive(event.data);
    worker.onerror = (event) => {
      // Handled here: unhandled, a worker's error would end the whole process.
      event.preventDefault();
      receive({
        kind: "failed",
        name: "Error",
        message: `the WAL worker failed: ${event.message}`,
      });
    };
    worker.onmessageerror = () =>
      receive({ kind: "failed", name: "Error", message: "the WAL worker sent garbage" });
    const { recordTypes, reuseBuffer: _, batchBytes, batches, ...options } = o;
    worker.postMessage(
      {
        kind: "start",
        segments: [...this.segments],
        options: { ...options, recordTypes: recordTypes ? [...recordTypes] : undefined },
        batchBytes: batchBytes ?? 1024 * 1024,
        batches: Math.max(1, batches ?? 2),
      } satisfies ToWalWorker,
    );
    let spent: ArrayBuffer | null = null;
    try {
      for (;;) {
        while (inbox.length === 0) await new Promise<void>((resolve) => wake = resolve);
        const message = inbox.shift()!;
        if (message.kind === "end") {
          this.torn = message.torn;
          this.stats = message.stats;
          return;
        }
        if (message.kind === "failed") throw _rebuild(message);
        // The batch before this one is done with: back to the worker, with a credit.
        worker.postMessage(
          { kind: "credit", buffer: spent } satisfies ToWalWorker,
          spent ? [spent] : [],
        );
        spent = message.buffer;
        const view = new DataView(message.buffer, 0, message.length);
        const bytes = new Uint8Array(message.buffer, 0, message.length);
        for (let at = 0; at < message.length;) {
          const length = view.getUint32(at);
          const segment = this.segments[view.getUint32(at + 4)];
          const offset = view.getFloat64(at + 8);
          const compression = WAL_BATCH_COMPRESSIONS[bytes[at + 16]];
          const start = at + WAL_BATCH_HEAD;
          const record = bytes.subarray(start, start + length);
          yield {
            segment: segment.index,
            path: segment.path,
            offset,
            compression,
            bytes: o.reuseBuffer ? record : record.slice(),
          };
          at = start + length;
        }
      }
    } finally {
      worker.terminate();
    }
  }
}

function _rebuild(message: Extract<FromWalWorker, { kind: "failed" }>): Error {
  const c = message.corruption;
  if (c) return new CorruptionError(c.segment, c.path, c.offset, c.reason);
  return rebuildWorkerError(message.name, message.message);
}
