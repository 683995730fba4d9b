/**
 * The common currency between the places series data comes from (blocks, the replayed head, a
 * remote-read response) and the block writer: a series' labels with its encoded chunks.
 *
 * @module
 */

import type { RawChunk } from "./chunks.ts";
import type { Label } from "./index.ts";

/** An encoded chunk with its closed time range `[mint, maxt]`. */
export interface TimedChunk extends RawChunk {
  /** First timestamp (ms). */
  mint: bigint;
  /** Last timestamp (ms), inclusive. */
  maxt: bigint;
}

/** One series with its chunks, in time order. */
export interface SeriesChunks {
  /** Labels sorted by name (UTF-8 bytes). */
  labels: Label[];
  /** Chunks in time order; they may overlap when they come from different sources. */
  chunks: TimedChunk[];
}

/**
 * A stream of series in label order (`compareLabels`), each label set at most once. Every source
 * of series data (block, head, remote read) provides one.
 */
export type SeriesSource = AsyncIterable<SeriesChunks>;
