/**
 * Relabelled series back in label order. Pseudonyms (and dropped labels) change the order of
 * series, and a block's index needs them sorted: the relabelled series are gathered in memory up to
 * a byte budget, sorted and spilled as sorted runs (`tsdb/series_runs.ts`), and the runs merged by
 * a heap. Memory: the budget while spilling, about 32 KiB per run while merging.
 *
 * Two series that end up with the same labels (after `--drop-label`, or the same pseudonym) are
 * refused in one line, never merged: each run key carries a sequence number after the labels, so
 * equal label sets stay distinct keys and come out of the merge next to each other.
 *
 * @module
 */

import { PromcaseError } from "./errors.ts";
import { compareUtf8 } from "./tsdb/encoding.ts";
import type { Label } from "./tsdb/index.ts";
import { labelsKey, mergeSeriesRuns, SeriesRunWriter } from "./tsdb/series_runs.ts";
import type { SeriesChunks, SeriesSource, TimedChunk } from "./tsdb/series.ts";

/** Options of {@link relabelSorted}. */
export interface RelabelOptions {
  /** Keeps a series (by its original labels) when true (default: all). */
  keep?: (labels: readonly Label[]) => boolean;
  /** The new labels of a series (label names unchanged or removed, so still sorted by name). */
  relabel: (labels: readonly Label[]) => Label[];
  /** Labels removed, named in the collision error. */
  dropLabels: readonly string[];
  /** Bytes of chunk data gathered before a run is spilled (default 16 MiB). */
  budget?: number;
  /** Stops the work when aborted. */
  signal?: AbortSignal;
}

/** What {@link relabelSorted} returns. */
export interface RelabelledSeries {
  /** The relabelled series in label order. */
  source: SeriesSource;
  /** Series left out by `keep`. */
  excluded: number;
  /** Runs spilled. */
  runs: number;
}

/**
 * Reads `input` (any order) to its end, relabelling and spilling it into sorted runs under `dir`
 * (which the caller removes), and returns the merged series in label order.
 */
export async function relabelSorted(
  input: AsyncIterable<SeriesChunks>,
  dir: string,
  options: RelabelOptions,
): Promise<RelabelledSeries> {
  const budget = options.budget ?? 16 * 1024 * 1024;
  // Chunk data is copied into one arena, reused run after run: a copy per chunk left hundreds of
  // MiB of small buffers for the collector (the process doubled its peak at 260k chunks).
  const arena = new Uint8Array(budget);
  let used = 0;
  const paths: string[] = [];
  let pending: { key: string; chunks: TimedChunk[] }[] = [];
  let bytes = 0;
  let seq = 0;
  let excluded = 0;
  const spill = async () => {
    if (pending.length === 0) return;
    pending.sort((a, b) => compareUtf8(a.key, b.key));
    const run = await SeriesRunWriter.create(`${dir}/relabel-${paths.length}.run`);
    paths.push(run.path);
    try {
      for (const s of pending) await run.add(s.key, s.chunks);
      await run.finish();
    } catch (err) {
      await run.abort();
      throw err;
    }
    pending = [];
    bytes = 0;
    used = 0;
  };
  for await (const s of input) {
    options.signal?.throwIfAborted();
    if (options.keep && !options.keep(s.labels)) {
      excluded++;
      continue;
    }
    // The sequence number after the last NUL keeps equal label sets apart as keys; parsing the
    // key ignores it (it is no name/value pair).
    const key = `${labelsKey(options.relabel(s.labels))}\u0001${(seq++).toString(36)}`;
    // The source may reuse the chunks' memory for its next series: copy them.
    const size = s.chunks.reduce((n, c) => n + c.data.length, 0);
    if (used + size > arena.length) await spill();
    // A series larger than the arena gets a buffer of its own (and a run of its own).
    const into = size > arena.length ? new Uint8Array(size) : arena;
    let at = into === arena ? used : 0;
    const chunks = s.chunks.map((c) => {
      into.set(c.data, at);
      at += c.data.length;
      return {
        encoding: c.encoding,
        mint: c.mint,
        maxt: c.maxt,
        data: into.subarray(at - c.data.length, at),
      };
    });
    if (into === arena) used = at;
    pending.push({ key, chunks });
    // Keys and chunk objects count too (about 100 bytes per chunk in V8).
    bytes += key.length * 2 + chunks.length * 100;
    if (bytes >= budget || into !== arena) await spill();
  }
  await spill();
  const drop = options.dropLabels;
  async function* merged(): AsyncGenerator<SeriesChunks> {
    let previous = "";
    for await (const s of mergeSeriesRuns(paths, { utf8Order: true })) {
      const key = labelsKey(s.labels);
      if (key === previous) {
        const shown = `{${s.labels.map((l) => `${l.name}=${JSON.stringify(l.value)}`).join(", ")}}`;
        throw new PromcaseError(
          drop.length > 0
            ? `--drop-label ${drop.join(",")}: series that differ only in ` +
              `${drop.join(" or ")} would collide, e.g. ${shown}; refused rather than merged`
            : `two series map to the same labels ${shown}: refused rather than merged`,
        );
      }
      previous = key;
      yield s;
    }
  }
  return { source: merged(), excluded, runs: paths.length };
}
