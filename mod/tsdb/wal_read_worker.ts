/**
 * The worker of {@link WalReadAhead} (`wal_read_ahead.ts`): reads WAL segments with a
 * {@link WalReader} (CRCs, fragments, decompression, series records streamed) and writes the
 * records and streamed series to the shared ring (`_wal_ring.ts`), blocking while it is full. The
 * end (the reader's counters and torn tail) or the failure goes by message after the ring's last
 * item.
 *
 * Memory: the reader's (its read buffer and the largest record, twice).
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { RingWriter } from "./_wal_ring.ts";
import { CorruptionError, type SegmentRef, type WalCompression, WalReader } from "./wlog.ts";
import type { FromWalReadWorker, WalReadJob } from "./wal_read_ahead.ts";
import { workerError } from "./_worker_error.ts";

const _COMPRESSION: Record<WalCompression, number> = { none: 0, snappy: 1, zstd: 2 };

self.onmessage = (event: MessageEvent<WalReadJob>) => {
  _run(event.data);
};

async function _run(job: WalReadJob): Promise<void> {
  const ring = new RingWriter(job.ring);
  const post = (m: FromWalReadWorker) => self.postMessage(m);
  try {
    const position = new Map(job.segments.map((s: SegmentRef, i: number) => [s.path, i]));
    const reader = new WalReader(job.segments, {
      reuseBuffer: true,
      allowTornTail: job.allowTornTail,
      readBytes: job.readBytes,
      seriesRecords: job.streamSeries ? (ref, key) => ring.series(ref, key) : undefined,
    });
    for await (const rec of reader) {
      ring.record(position.get(rec.path)!, rec.offset, _COMPRESSION[rec.compression], rec.bytes);
    }
    post({ kind: "end", stats: { ...reader.stats }, torn: reader.torn });
  } catch (e) {
    post({
      kind: "failed",
      ...workerError(e),
      corruption: e instanceof CorruptionError
        ? { segment: e.segment, path: e.path, offset: e.offset }
        : undefined,
    });
  } finally {
    ring.close();
  }
}
