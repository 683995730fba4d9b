/**
 * The last step of the head replay (`head.ts`, step 3) on a worker: the merge of the sorted runs
 * (`series_runs.ts`) and the reading of each series' head chunks from the store
 * (`head_chunk_store.ts`, one positioned read a chunk) run in `read_ahead_worker.ts`, while this
 * thread writes the block. The merged series come through a ring of shared memory (`_ring.ts`),
 * each as a run encodes it, in label order; a series' chunk data is valid until the next one is
 * asked for. With `ringBytes` 0 the same merge runs on the calling thread.
 *
 * Memory: the ring (`ringBytes`, default 1 MiB), the worker (its runtime, 10-20 MiB, one read
 * buffer per run and the largest series' chunks), and here the largest series.
 *
 * @module
 */

import {
  type PreparedReadAheadWorker,
  readAhead,
  type ReadAheadFailure,
  type ReadAheadJob,
} from "./_read_ahead.ts";
import { newRing } from "./_ring.ts";
import { rebuildWorkerError } from "./_worker_error.ts";
import { HeadChunkStoreReader } from "./head_chunk_store.ts";
import type { SeriesChunks } from "./series.ts";
import {
  decodeRunSeries,
  mergeRunKeys,
  type MergeRunsOptions,
  parseLabelsKey,
  type RunSeries,
} from "./series_runs.ts";

/**
 * Default of {@link ResolvedRunsOptions.ringBytes}: a series is a few KiB, and the merge runs at
 * the rewrite's memory peak (the block being written), where the WAL's 4 MiB would be 3 MiB more.
 */
export const RUN_MERGE_RING_BYTES = 1024 * 1024;

/** Options of {@link mergeResolvedRuns}. */
export interface ResolvedRunsOptions extends MergeRunsOptions {
  /** The head chunk store the runs' references point into, if they have any. */
  headChunkData?: string;
  /** Bytes of the ring the series come through (default 1 MiB); 0 merges on this thread. */
  ringBytes?: number;
  /** A worker started ahead: the merge takes it over. */
  worker?: PreparedReadAheadWorker;
}

/** The job {@link mergeResolvedRuns} sends its worker. */
export interface RunMergeJob extends ReadAheadJob {
  kind: "runs";
  paths: string[];
  utf8Order: boolean;
  bufferSize?: number;
  headChunkData?: string;
}

/** The worker's last message. */
export type FromRunMergeWorker = { kind: "end" } | ReadAheadFailure;

/**
 * The series of `paths`' runs in label order, each with its head chunk references replaced by
 * their chunks: merged on a worker, or here with `ringBytes` 0.
 */
export async function* mergeResolvedRuns(
  paths: readonly string[],
  options: ResolvedRunsOptions = {},
): AsyncGenerator<SeriesChunks> {
  const ringBytes = options.ringBytes ?? RUN_MERGE_RING_BYTES;
  if (ringBytes === 0) {
    options.worker?.close();
    for (const s of resolvedRunSeries(paths, options)) {
      yield { labels: parseLabelsKey(s.key), chunks: s.chunks };
    }
    return;
  }
  const job: RunMergeJob = {
    kind: "runs",
    paths: [...paths],
    utf8Order: options.utf8Order ?? false,
    bufferSize: options.bufferSize,
    headChunkData: options.headChunkData,
    ring: newRing(ringBytes),
  };
  const end = (m: FromRunMergeWorker) => {
    if (m.kind === "failed") throw rebuildWorkerError(m);
  };
  for await (const e of readAhead(job, options.worker, "run merging", end)) {
    const s = decodeRunSeries(e.bytes);
    yield { labels: parseLabelsKey(s.key), chunks: s.chunks };
  }
}

/**
 * The runs merged ({@link mergeRunKeys}), each series' head chunk references replaced by their
 * chunks read from `headChunkData`: the worker's job, and the merge on the calling thread.
 */
export function* resolvedRunSeries(
  paths: readonly string[],
  options: MergeRunsOptions & { headChunkData?: string },
): Generator<RunSeries> {
  const store = options.headChunkData === undefined
    ? null
    : HeadChunkStoreReader.open(options.headChunkData);
  try {
    for (const s of mergeRunKeys(paths, options)) {
      store?.resolve(s.chunks);
      yield s;
    }
  } finally {
    store?.close();
  }
}
