/**
 * The read-ahead worker (started by `_read_ahead.ts`): runs one job and writes what it reads to
 * the shared ring (`_ring.ts`), blocking while the ring is full; the end (with the job's counters)
 * or the failure goes by message after the ring's last item. Jobs:
 * - `wal` (`wal_read_ahead.ts`): reads WAL segments with a {@link WalReader} (CRCs, fragments,
 *   decompression, series records streamed); its items are the records and streamed series.
 *   Memory: the reader's (its read buffer and the largest record, twice).
 * - `runs` (`run_merge_ahead.ts`): merges the head replay's sorted runs and reads their head
 *   chunks from the store; its items are the series, encoded as a run holds them. Memory: a read
 *   buffer per run and the largest series, twice.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { RingWriter } from "./_ring.ts";
import { Encbuf } from "./encoding.ts";
import type { FromRunMergeWorker, RunMergeJob } from "./run_merge_ahead.ts";
import { resolvedRunSeries } from "./run_merge_ahead.ts";
import { encodeRunSeries } from "./series_runs.ts";
import { CorruptionError, type SegmentRef, type WalCompression, WalReader } from "./wlog.ts";
import type { FromWalReadWorker, WalReadJob } from "./wal_read_ahead.ts";
import { workerError } from "./_worker_error.ts";

const _COMPRESSION: Record<WalCompression, number> = { none: 0, snappy: 1, zstd: 2 };

self.onmessage = (event: MessageEvent<WalReadJob | RunMergeJob>) => {
  const job = event.data;
  if (job.kind === "wal") _readWal(job);
  else _mergeRuns(job);
};

async function _readWal(job: WalReadJob): Promise<void> {
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

function _mergeRuns(job: RunMergeJob): void {
  const ring = new RingWriter(job.ring);
  const post = (m: FromRunMergeWorker) => self.postMessage(m);
  try {
    const body = new Encbuf();
    for (const s of resolvedRunSeries(job.paths, job)) {
      ring.record(0, 0, 0, encodeRunSeries(body, s.key, s.chunks));
    }
    post({ kind: "end" });
  } catch (e) {
    post({ kind: "failed", ...workerError(e) });
  } finally {
    ring.close();
  }
}
