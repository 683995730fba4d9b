/**
 * Block meta.json (`tsdb/block.go` BlockMeta). Prometheus writes version 1; times are milliseconds
 * and the block covers the half-open interval `[minTime, maxTime)`.
 *
 * Version 2 was written only by Prometheus 2.1, together with an index whose header says version 1
 * although its content is version 2. Prometheus repairs such blocks when it opens a data dir
 * (`tsdb/repair.go` `repairBadIndexVersion`, called from `tsdb/db.go` `open`): it sets the index
 * header's version byte to 2 and meta.json's version back to 1. promcase never writes to the data
 * dir, so it reads such a block as repaired instead ({@link BlockMeta.badIndexVersion}).
 *
 * @module
 */

/** Statistics of a block, as Prometheus writes them (zero counts are omitted there). */
export interface BlockStats {
  /** Samples of all kinds. */
  numSamples: number;
  /** Series. */
  numSeries: number;
  /** Chunks. */
  numChunks: number;
  /** Tombstones. */
  numTombstones: number;
  /** Float samples (written since Prometheus 3.6). */
  numFloatSamples?: number;
  /** Histogram samples (written since Prometheus 3.6). */
  numHistogramSamples?: number;
}

/** The parts of meta.json promcase uses, plus the parsed original in `raw`. */
export interface BlockMeta {
  /** The block's ULID. */
  ulid: string;
  /** First millisecond covered. */
  minTime: bigint;
  /** First millisecond no longer covered (exclusive). */
  maxTime: bigint;
  /** Compaction level: 1 for a block cut from the head or backfilled, more for merged blocks. */
  level: number;
  /** ULIDs of the level-1 blocks merged into this one. */
  sources: string[];
  /** ULIDs of the blocks this one was compacted from. */
  parents: string[];
  /** Compaction hints, e.g. "from-out-of-order" for blocks made from out-of-order data. */
  hints: string[];
  /** Statistics. */
  stats: BlockStats;
  /**
   * True for a meta.json of version 2 (Prometheus 2.1): its index must be read as format version
   * 2 whatever its header says, as Prometheus' repair makes it.
   */
  badIndexVersion: boolean;
  /** The whole parsed meta.json, kept as Prometheus wrote it. */
  raw: Record<string, unknown>;
}

/** Parses meta.json text, rejecting what Prometheus itself would reject. */
export function parseBlockMeta(text: string): BlockMeta {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error("not valid JSON");
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new Error("not a JSON object");
  }
  const meta = raw as Record<string, unknown>;
  // Version 2 is accepted as Prometheus' repair accepts it (`readBogusMetaFile`), nothing else.
  if (meta.version !== 1 && meta.version !== 2) {
    throw new Error(`unsupported meta.json version ${String(meta.version)}`);
  }
  if (typeof meta.ulid !== "string") throw new Error("no ulid");
  if (!Number.isInteger(meta.minTime) || !Number.isInteger(meta.maxTime)) {
    throw new Error("minTime/maxTime missing or not integers");
  }
  const stats = (meta.stats ?? {}) as Record<string, unknown>;
  const compaction = (meta.compaction ?? {}) as Record<string, unknown>;
  const count = (v: unknown) => (typeof v === "number" ? v : 0);
  const parents = Array.isArray(compaction.parents) ? compaction.parents : [];
  return {
    ulid: meta.ulid,
    minTime: BigInt(meta.minTime as number),
    maxTime: BigInt(meta.maxTime as number),
    level: typeof compaction.level === "number" ? compaction.level : 1,
    sources: Array.isArray(compaction.sources) ? compaction.sources.map(String) : [],
    parents: parents.map((p) => String((p as Record<string, unknown>)?.ulid ?? "")),
    hints: Array.isArray(compaction.hints) ? compaction.hints.map(String) : [],
    stats: {
      numSamples: count(stats.numSamples),
      numSeries: count(stats.numSeries),
      numChunks: count(stats.numChunks),
      numTombstones: count(stats.numTombstones),
      ...(stats.numFloatSamples !== undefined
        ? { numFloatSamples: count(stats.numFloatSamples) }
        : {}),
      ...(stats.numHistogramSamples !== undefined
        ? { numHistogramSamples: count(stats.numHistogramSamples) }
        : {}),
    },
    badIndexVersion: meta.version === 2,
    raw: meta,
  };
}

/**
 * Compaction hints of blocks that Prometheus leaves out when it sets its head's minValidTime, the
 * time below which the WAL replay drops in-order samples (`tsdb/db.go` `inOrderBlocksMaxTime`):
 * blocks made of out-of-order data, and blocks cut from some of the head's series only, after
 * which the head still holds the other series' samples of that time (stale-series compaction
 * since 3.10, `tsdb/block.go` `CompactionHintFromStaleSeries`; compaction of selected series
 * since 3.14). Prometheus never merges such blocks with others, so the hint stays.
 */
export const HEAD_INDEPENDENT_HINTS: readonly string[] = [
  "from-out-of-order",
  "from-stale-series",
  "from-selected-series",
];

/** Whether a block's maxTime counts for the head's minValidTime (see {@link HEAD_INDEPENDENT_HINTS}). */
export function movesHeadMinValidTime(meta: BlockMeta): boolean {
  return !meta.hints.some((h) => HEAD_INDEPENDENT_HINTS.includes(h));
}
