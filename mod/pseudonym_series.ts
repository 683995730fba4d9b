/**
 * Relabelled series back in label order. Pseudonyms (and dropped labels) change the order of
 * series, and a block's index needs them sorted: the relabelled series are gathered in memory up to
 * a byte budget, sorted and spilled as sorted runs (`tsdb/series_runs.ts`), and the runs merged by
 * a heap. Memory while spilling: an arena of the budget's size holding the series encoded as runs
 * hold them, and their keys, up to the budget again; while merging, about 8 KiB per run. A second
 * pass (`relabelAfter`) holds its own arena, once the first pass gave back its own.
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
import type { Pseudonymizer } from "./pseudonym.ts";
import { mergeSeries } from "./tsdb/compact.ts";
import {
  encodeRunSeries,
  labelsKey,
  mergeSeriesRuns,
  SeriesRunWriter,
} from "./tsdb/series_runs.ts";
import type { SeriesChunks, SeriesSource, TimedChunk } from "./tsdb/series.ts";

/** Estimated bytes of a pending series besides its key: the entry object and its array slot. */
const _ENTRY_BYTES = 64;

/** Options of {@link relabelSorted}. */
export interface RelabelOptions {
  /** Keeps a series (by its original labels) when true (default: all). */
  keep?: (labels: readonly Label[]) => boolean;
  /** The new labels of a series (label names unchanged or removed, so still sorted by name). */
  relabel: (labels: readonly Label[]) => Label[];
  /**
   * A mapping that needs every series read first (values of chosen labels that other labels carry
   * too): the new labels of a series already relabelled, null when it changes nothing.
   */
  relabelAfter?: (labels: readonly Label[]) => Label[] | null;
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
  /** Runs spilled by the first pass. */
  runs: number;
  /** Series that `relabelAfter` changed. */
  changedAfter: number;
}

/**
 * Reads `input` (any order) to its end, relabelling and spilling it into sorted runs under `dir`
 * (which the caller removes), and returns the merged series in label order. With `relabelAfter`,
 * a second pass over the runs maps what could only be mapped once every series was read: series it
 * changes go to new runs, the others to one run in their order, and those runs are merged.
 */
export async function relabelSorted(
  input: AsyncIterable<SeriesChunks>,
  dir: string,
  options: RelabelOptions,
): Promise<RelabelledSeries> {
  const budget = options.budget ?? 8 * 1024 * 1024;
  const runs = new _RunCollector(dir, budget);
  let excluded = 0;
  for await (const s of input) {
    options.signal?.throwIfAborted();
    if (options.keep && !options.keep(s.labels)) {
      excluded++;
      continue;
    }
    await runs.add(options.relabel(s.labels), s.chunks);
  }
  await runs.spill();
  runs.release();
  const firstRuns = runs.paths.length;
  let paths = runs.paths;
  let changed = 0;
  if (options.relabelAfter) {
    const second = new _RunCollector(dir, budget, "late");
    const kept = await SeriesRunWriter.create(`${dir}/relabel-kept-${crypto.randomUUID()}.run`);
    const body = new Encbuf();
    let seq = 0;
    try {
      for await (const s of mergeSeriesRuns(paths, { utf8Order: true })) {
        options.signal?.throwIfAborted();
        const late = options.relabelAfter(s.labels);
        if (late === null) {
          // In merge order already; fixed-width numbers keep equal label sets in that order.
          const key = `${labelsKey(s.labels)}\u0001${(seq++).toString(36).padStart(11, "0")}`;
          await kept.addEncoded(encodeRunSeries(body, key, s.chunks));
        } else {
          changed++;
          await second.add(late, s.chunks);
        }
      }
      await second.spill();
      second.release();
      await kept.finish();
    } catch (err) {
      await kept.abort();
      throw err;
    }
    for (const path of paths) await Deno.remove(path).catch(() => {});
    paths = [kept.path, ...second.paths];
  }
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
  return { source: merged(), excluded, runs: firstRuns, changedAfter: changed };
}

/** What {@link pseudonymizeSeries} returns. */
export interface PseudonymizedSeries {
  /** The sources to write: the input, or the one re-sorted source. */
  sources: SeriesSource[];
  /** The selection still to apply: none once the re-sort applied it to the original labels. */
  keep?: (labels: readonly Label[]) => boolean;
  /** Series the re-sort left out by `keep`. */
  excluded: number;
}

/**
 * The series of `sources` with `pz`'s pseudonyms and dropped labels, re-sorted through runs
 * spilled in `dir` (new label values reorder them), for the rewrite and `--url` alike. `keep`
 * selects by the original labels, so the re-sort applies it. Without `pz`, or when it changes no
 * series, the sources and `keep` come back as they are.
 */
export async function pseudonymizeSeries(
  pz: Pseudonymizer | undefined,
  sources: SeriesSource[],
  dir: string,
  options: {
    keep?: (labels: readonly Label[]) => boolean;
    signal?: AbortSignal;
    onStatus?: (text: string) => void;
  },
): Promise<PseudonymizedSeries> {
  if (!pz?.changesSeries) return { sources, keep: options.keep, excluded: 0 };
  options.onStatus?.("pseudonymizing the series");
  const relabelled = await relabelSorted(mergeSeries(sources), dir, {
    keep: options.keep,
    relabel: (labels) => pz.mapLabels(labels),
    relabelAfter: pz.spec.labels.length > 0 ? (labels) => pz.mapOtherLabels(labels) : undefined,
    dropLabels: pz.spec.dropLabels,
    signal: options.signal,
  });
  return { sources: [relabelled.source], excluded: relabelled.excluded };
}

/**
 * Series gathered and spilled as sorted runs. Each series is held encoded as the run will hold it,
 * in one arena reused run after run: no object per chunk (those took more than the chunk data
 * itself), only the key and a position. Keys count against the budget too.
 */
class _RunCollector {
  readonly paths: string[] = [];
  #dir: string;
  #name: string;
  #arena: Uint8Array;
  #budget: number;
  #body = new Encbuf();
  #used = 0;
  #pending: { key: string; at: number; length: number; own?: Uint8Array }[] = [];
  #keyBytes = 0;
  #seq = 0;
  // Names this collector's runs apart from another's in the same dir.
  #id = crypto.randomUUID().slice(0, 8);

  constructor(dir: string, budget: number, name = "relabel") {
    this.#dir = dir;
    this.#name = name;
    this.#budget = budget;
    this.#arena = new Uint8Array(budget);
  }

  /** Adds a series; its chunks are copied (the source may reuse their memory). */
  async add(labels: readonly Label[], chunks: readonly TimedChunk[]): Promise<void> {
    // The sequence number after the last NUL keeps equal label sets apart as keys; parsing the
    // key ignores it (it is no name/value pair).
    const key = `${labelsKey(labels)}\u0001${(this.#seq++).toString(36)}`;
    const encoded = encodeRunSeries(this.#body, key, chunks);
    // Keys: two bytes a character at worst, and the pending entry.
    const cost = key.length * 2 + _ENTRY_BYTES;
    const arena = this.#arena;
    if (this.#used + encoded.length > arena.length || this.#keyBytes + cost > this.#budget) {
      await this.spill();
    }
    if (encoded.length > arena.length) {
      // A series larger than the arena gets a run of its own, written before `#body` is reused.
      this.#pending.push({ key, at: 0, length: encoded.length, own: encoded });
      await this.spill();
      return;
    }
    arena.set(encoded, this.#used);
    this.#pending.push({ key, at: this.#used, length: encoded.length });
    this.#used += encoded.length;
    this.#keyBytes += cost;
  }

  /** Gives the arena back once the last series is spilled. */
  release(): void {
    this.#arena = new Uint8Array(0);
  }

  /** Writes the pending series as a sorted run. */
  async spill(): Promise<void> {
    const pending = this.#pending;
    if (pending.length === 0) return;
    pending.sort((a, b) => compareUtf8(a.key, b.key));
    const run = await SeriesRunWriter.create(
      `${this.#dir}/${this.#name}-${this.#id}-${this.paths.length}.run`,
    );
    this.paths.push(run.path);
    try {
      for (const s of pending) {
        await run.addEncoded(s.own ?? this.#arena.subarray(s.at, s.at + s.length));
      }
      await run.finish();
    } catch (err) {
      await run.abort();
      throw err;
    }
    this.#pending = [];
    this.#keyBytes = 0;
    this.#used = 0;
  }
}
