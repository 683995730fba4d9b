/**
 * Relabelled series back in label order. Pseudonyms (and dropped labels) change the order of
 * series, and a block's index needs them sorted: the relabelled series are gathered in memory up to
 * a byte budget, sorted and spilled as sorted runs (`tsdb/series_runs.ts`), and the runs merged by
 * a heap. Memory while spilling: an arena of the budget's size holding the series encoded as runs
 * hold them, and their keys, up to the budget again; while merging, about 32 KiB per run.
 *
 * Two series that end up with the same labels (after `--drop-label`, or the same pseudonym) are
 * refused in one line, never merged: each run key carries a sequence number after the labels, so
 * equal label sets stay distinct keys and come out of the merge next to each other.
 *
 * @module
 */

import { PromcaseError } from "./errors.ts";
import { compareUtf8, Encbuf } from "./tsdb/encoding.ts";
import type { Label } from "./tsdb/index.ts";
import {
  encodeRunSeries,
  labelsKey,
  mergeSeriesRuns,
  SeriesRunWriter,
} from "./tsdb/series_runs.ts";
import type { SeriesChunks, SeriesSource } from "./tsdb/series.ts";

/** Estimated bytes of a pending series besides its key: the entry object and its array slot. */
const _ENTRY_BYTES = 64;

/** Options of {@link relabelSorted}. */
export interface RelabelOptions {
  /** Keeps a series (by its original labels) when true (default: all). */
  keep?: (labels: readonly Label[]) => boolean;
  /** The new labels of a series (label names unchanged or removed, so still sorted by name). */
  relabel: (labels: readonly Label[]) => Label[];
  /** Labels removed, named in the collision error. */
  dropLabels: readonly string[];
  /**
   * Bytes of encoded series gathered before a run is spilled, and the bound of their keys' estimated
   * memory (default 8 MiB).
   */
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
  const budget = options.budget ?? 8 * 1024 * 1024;
  // Each series is held encoded as the run will hold it, in one arena reused run after run: no
  // object per chunk (those took more than the chunk data itself), only the key and a position.
  const arena = new Uint8Array(budget);
  const body = new Encbuf();
  let used = 0;
  const paths: string[] = [];
  let pending: { key: string; at: number; length: number; own?: Uint8Array }[] = [];
  let keyBytes = 0;
  let seq = 0;
  let excluded = 0;
  const spill = async () => {
    if (pending.length === 0) return;
    pending.sort((a, b) => compareUtf8(a.key, b.key));
    const run = await SeriesRunWriter.create(`${dir}/relabel-${paths.length}.run`);
    paths.push(run.path);
    try {
      for (const s of pending) {
        await run.addEncoded(s.own ?? arena.subarray(s.at, s.at + s.length));
      }
      await run.finish();
    } catch (err) {
      await run.abort();
      throw err;
    }
    pending = [];
    keyBytes = 0;
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
    // Copied: the source may reuse the chunks' memory for its next series.
    const encoded = encodeRunSeries(body, key, s.chunks);
    // Keys count too: two bytes a character at worst, and the pending entry.
    const cost = key.length * 2 + _ENTRY_BYTES;
    if (used + encoded.length > arena.length || keyBytes + cost > budget) await spill();
    if (encoded.length > arena.length) {
      // A series larger than the arena gets a run of its own, written before `body` is reused.
      pending.push({ key, at: 0, length: encoded.length, own: encoded });
      await spill();
      continue;
    }
    arena.set(encoded, used);
    pending.push({ key, at: used, length: encoded.length });
    used += encoded.length;
    keyBytes += cost;
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
