/**
 * Block meta.json (`tsdb/block.go` BlockMeta). Only version 1 exists; times are milliseconds and
 * the block covers the half-open interval `[minTime, maxTime)`.
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
  if (meta.version !== 1) throw new Error(`unsupported meta.json version ${String(meta.version)}`);
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
    raw: meta,
  };
}
