/**
 * Series per metric name of a data dir or a promcase archive (`promcase inspect --series`), to
 * decide what to ship.
 *
 * Series counting reads only index files (one at a time) and the series records of the WAL, with
 * bounded memory: per metric name a few counters, and per distinct series a 64-bit hash of its label
 * set (up to {@link SERIES_DEDUPE_LIMIT} of them, 9 to 18 bytes each), so that a series found in
 * several blocks and in the head is counted once.
 *
 * @module
 */

import type { AgeKeys } from "./archive/age.ts";
import { checkArchive } from "./archive/reader.ts";
import { type DataFile, scanDataDir } from "./datadir.ts";
import { describeError, PromcaseError, usageError } from "./errors.ts";
import { type ExportPlan, planExport } from "./export.ts";
import { writeAll } from "./fileio.ts";
import { lowerPriority } from "./priority.ts";
import { formatSelector, matchesSelector, type Selector } from "./selector.ts";
import { FormatError } from "./tsdb/encoding.ts";
import { type ChunkMeta, IndexReader, type Label } from "./tsdb/index.ts";
import { parseBlockMeta } from "./tsdb/meta.ts";
import { decodeRecord, forEachSeries, RecordType } from "./tsdb/record.ts";
import { parseLabelsKey } from "./tsdb/series_runs.ts";
import { CorruptionError, type SegmentRef, WalReader } from "./tsdb/wlog.ts";
import type { IncidentWindow, TimeWindow } from "./window.ts";

/**
 * Distinct series remembered (as 64-bit hashes of their label sets) to count each once, in blocks
 * and head together; beyond it, series are counted as often as they occur (upper bounds).
 */
export const SERIES_DEDUPE_LIMIT = 2_000_000;

/** Series of one metric name, see {@link countSeries}. */
export interface MetricSeries {
  /** The metric name ("" for series without `__name__`). */
  metric: string;
  /** Distinct series, in blocks or head. */
  series: number;
  /** Of them, in at least one block. */
  blockSeries: number;
  /** Of them, in the head (series records of checkpoint and WAL). */
  headSeries: number;
  /** Chunks in blocks (in the window, when one is given). */
  chunks: number;
}

/** What {@link countSeries} found. */
export interface SeriesReport {
  /** "datadir" or "archive". */
  kind: "datadir" | "archive";
  /** The data dir (resolved) or the archive. */
  path: string;
  /** The selector, printed canonically, or null for all series. */
  selector: string | null;
  /** The window asked for, or null. */
  window: TimeWindow | null;
  /** ULIDs of the blocks whose index was read. */
  blocks: string[];
  /** Whether head series were counted, from how many WAL/checkpoint segments, and why. */
  head: { included: boolean; segments: number; reason: string };
  /** False when there were more than {@link SERIES_DEDUPE_LIMIT} series (counts are upper bounds). */
  exact: boolean;
  /** Every metric name with at least one selected series, most series first. */
  metrics: MetricSeries[];
  /** Things the counts cannot account for (corrupt WAL tail, archive problems). */
  warnings: string[];
}

/** What to count in {@link countSeries}. */
export interface CountOptions {
  /** Only series matching it. */
  selector?: Selector;
  /** Archives: bytes read of the total, as they are read. */
  onProgress?: (done: number, total: number) => void;
  /** Data dirs only: the blocks and head that export reads for this window. */
  window?: IncidentWindow;
  /** Archives: keys of an age-encrypted one (decrypted as it is read). */
  decrypt?: AgeKeys;
  /** Only series it keeps (besides `selector`): export's --match/--exclude. */
  keep?: (labels: readonly Label[]) => boolean;
  /**
   * Sees each selected series once (while the dedupe set has room; beyond it, once per block and
   * head occurrence): the disclosure report (`disclosure.ts`) reads labels through it.
   */
  onSeries?: (labels: readonly Label[]) => void;
  /**
   * Archives: receives each `context/` file's text (up to {@link MAX_CONTEXT_BYTES}; larger ones
   * are reported as a warning), for the disclosure report.
   */
  onContextFile?: (path: string, text: string) => void;
}

/** Context files larger than this are not read into memory by {@link countSeries}. */
export const MAX_CONTEXT_BYTES = 64 * 1024 * 1024;

/**
 * Counts the series per metric name of a data dir (a directory) or of a promcase archive (any
 * other path). Memory stays bounded: one block index open at a time, a few counters per metric name
 * and a hash per distinct series (up to {@link SERIES_DEDUPE_LIMIT}).
 */
export async function countSeries(path: string, options: CountOptions = {}): Promise<SeriesReport> {
  const counter = new _SeriesCounter(options.selector, options.window, options);
  let isDir = false;
  try {
    isDir = (await Deno.stat(path)).isDirectory;
  } catch {
    // Missing: a data dir error, unless it names an archive (perhaps split into parts).
    isDir = !/\.tar(\.gz|\.zst)?(\.age)?(\.part\d+|\.part\*)?$/.test(path);
  }
  const base = {
    selector: options.selector ? formatSelector(options.selector) : null,
    window: options.window ? { from: options.window.from, to: options.window.to } : null,
  };
  if (isDir) {
    await lowerPriority();
    return { ...base, ...(await _countDataDir(path, counter, options.window)) };
  }
  if (options.window) {
    throw usageError(
      "--at/--before/--after/--from/--to select what to read from a data dir: an archive is counted whole",
    );
  }
  return {
    ...base,
    ...(await _countArchive(path, counter, options)),
  };
}

/**
 * Counts the series of what an export plan selected: its blocks (only series with a chunk in
 * `chunkWindow`, when given) and its head, as {@link countSeries} counts a data dir.
 */
export async function countPlannedSeries(
  plan: ExportPlan,
  options: Pick<CountOptions, "selector" | "keep" | "onSeries"> & { chunkWindow?: TimeWindow } = {},
): Promise<SeriesReport> {
  const counter = new _SeriesCounter(options.selector, options.chunkWindow, options);
  return {
    selector: options.selector ? formatSelector(options.selector) : null,
    window: options.chunkWindow ?? null,
    ...(await _countPlan(plan, counter, options.chunkWindow !== undefined)),
  };
}

/** Counts the series of block indexes (e.g. of a block just written), one open at a time. */
export async function countBlockSeries(
  blocks: { ulid: string; file: string }[],
  options: Pick<CountOptions, "onSeries"> = {},
): Promise<SeriesReport> {
  const counter = new _SeriesCounter(undefined, undefined, options);
  await _countBlocks(blocks, counter);
  return {
    kind: "datadir",
    path: blocks.map((b) => b.file).join(", "),
    selector: null,
    window: null,
    blocks: blocks.map((b) => b.ulid),
    head: { included: false, segments: 0, reason: "block indexes only" },
    exact: counter.exact,
    metrics: counter.result(),
    warnings: [],
  };
}

type _Counted = Omit<SeriesReport, "selector" | "window">;

/** Everything: how the plan is made when no window is given. */
const _ALL_TIME: IncidentWindow = { from: -(2n ** 63n), to: 2n ** 63n - 1n, at: 2n ** 63n - 1n };

async function _countDataDir(
  dir: string,
  counter: _SeriesCounter,
  window: IncidentWindow | undefined,
): Promise<_Counted> {
  const info = await scanDataDir(dir);
  // The same choice of blocks (superseded ones left out) and head as export makes.
  const plan = planExport(info, window ?? _ALL_TIME);
  const counted = await _countPlan(plan, counter, window !== undefined);
  return { ...counted, warnings: [...info.problems, ...counted.warnings] };
}

async function _countPlan(
  plan: ExportPlan,
  counter: _SeriesCounter,
  windowed: boolean,
): Promise<_Counted> {
  const info = plan.dataDir;
  const warnings: string[] = [];
  let segments = 0;
  if (plan.head.included) {
    const refs = (files: DataFile[]) =>
      files.map((f) => ({ index: _segmentNumber(f.path), path: `${info.path}/${f.path}` }));
    const parts = [refs(info.head.checkpoint?.files ?? []), refs(info.head.walSegments)];
    for (const part of parts.filter((p) => p.length > 0)) {
      await _readHeadSeries(part, counter, warnings, (p) => p.slice(info.path.length + 1));
      segments += part.length;
    }
  }
  const indexes = plan.blocks.map((b) => ({
    ulid: b.ulid,
    file: `${info.path}/${b.ulid}/index`,
    badIndexVersion: b.meta.badIndexVersion,
  }));
  await _countBlocks(indexes, counter);
  return {
    kind: "datadir",
    path: info.path,
    blocks: plan.blocks.map((b) => b.ulid),
    head: {
      included: plan.head.included,
      segments,
      reason: windowed || !plan.head.included ? plan.head.reason : "no window given: all of it",
    },
    exact: counter.exact,
    metrics: counter.result(),
    warnings,
  };
}

const _BLOCK_INDEX_RE = /^data\/([0-9A-HJKMNP-TV-Z]{26})\/index$/i;
const _BLOCK_META_RE = /^data\/([0-9A-HJKMNP-TV-Z]{26})\/meta\.json$/i;
const _MAX_META_BYTES = 1024 * 1024;
const _WAL_SEGMENT_RE = /^data\/wal\/(?:checkpoint\.\d+\/)?\d+$/;

async function _countArchive(
  path: string,
  counter: _SeriesCounter,
  { onProgress, decrypt, onContextFile }: CountOptions,
): Promise<_Counted> {
  const tmp = await Deno.makeTempDir({ prefix: "promcase-inspect-" });
  try {
    const blocks: string[] = [];
    const warnings: string[] = [];
    // Blocks of Prometheus 2.1 (meta.json version 2), which a raw archive ships as they are,
    // meta.json before the index: their index is read as Prometheus repairs it.
    const badIndexVersion = new Set<string>();
    let segments = 0;
    const check = await checkArchive(path, {
      onProgress,
      decrypt,
      onFile: async (entry, header, body) => {
        const block = _BLOCK_INDEX_RE.exec(entry);
        const meta = _BLOCK_META_RE.exec(entry);
        // A meta.json is a few hundred bytes; a larger one is not held in memory to be looked at.
        if (meta && header.size <= _MAX_META_BYTES) {
          const text = await new Response(ReadableStream.from(body)).text();
          try {
            if (parseBlockMeta(text).badIndexVersion) badIndexVersion.add(meta[1].toUpperCase());
          } catch { /* an unusable meta.json: the index is read as its header says */ }
        } else if (block) {
          // IndexReader needs a file: extracted, counted, removed, one index at a time.
          const file = `${tmp}/index`;
          await _save(body, file);
          try {
            await _countBlocks([{
              ulid: block[1],
              file,
              badIndexVersion: badIndexVersion.has(block[1].toUpperCase()),
            }], counter);
            blocks.push(block[1]);
          } finally {
            await Deno.remove(file);
          }
        } else if (_WAL_SEGMENT_RE.test(entry)) {
          // A record never spans segments, and only series records matter: one at a time.
          const file = `${tmp}/segment`;
          await _save(body, file);
          try {
            await _readHeadSeries([{ index: 0, path: file }], counter, warnings, () => entry);
            segments++;
          } finally {
            await Deno.remove(file);
          }
        } else if (onContextFile && entry.startsWith("context/")) {
          if (header.size <= MAX_CONTEXT_BYTES) {
            onContextFile(entry, await new Response(ReadableStream.from(body)).text());
          } else {
            for await (const _ of body) { /* only hashed, by checkArchive */ }
            warnings.push(`${entry}: larger than ${MAX_CONTEXT_BYTES} bytes, not read`);
          }
        } else {
          for await (const _ of body) { /* only hashed, by checkArchive */ }
        }
      },
    });
    if (check.problems.length > 0 && blocks.length === 0 && segments === 0) {
      throw new PromcaseError(`cannot count the series of ${path}: ${check.problems[0]}`);
    }
    warnings.push(...check.problems.map((p) => `archive: ${p}`));
    return {
      kind: "archive",
      path: check.path,
      blocks,
      head: {
        included: segments > 0,
        segments,
        reason: segments > 0 ? "WAL segments in the archive" : "no WAL in the archive",
      },
      exact: counter.exact,
      metrics: counter.result(),
      warnings,
    };
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

async function _save(body: AsyncIterable<Uint8Array>, path: string): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  for await (const piece of body) await writeAll(file, piece);
}

function _segmentNumber(path: string): number {
  return parseInt(path.slice(path.lastIndexOf("/") + 1), 10);
}

/**
 * Feeds the series records of WAL or checkpoint segments to the counter. A damaged segment ends
 * the reading with a warning (Prometheus would drop everything from there too).
 */
async function _readHeadSeries(
  segments: SegmentRef[],
  counter: _SeriesCounter,
  warnings: string[],
  name: (path: string) => string,
): Promise<void> {
  // Only series records name series; the others (samples, mostly) are skipped undecoded. One
  // series at a time: a scrape's new series are one record (20 MiB for 200,000), parsed as its
  // pages come when it has more than one.
  const addSeries = _addHeadSeries(counter);
  const reader = new WalReader(segments, {
    reuseBuffer: true,
    recordTypes: new Set([RecordType.Series]),
    seriesRecords: addSeries,
  });
  try {
    for await (const record of reader) {
      if (forEachSeries(record.bytes, addSeries)) continue;
      const decoded = decodeRecord(record.bytes);
      if (decoded.type === "series") {
        for (const series of decoded.series) counter.addHeadSeries(series.labels);
      }
    }
  } catch (err) {
    if (!(err instanceof CorruptionError || err instanceof FormatError)) throw err;
    const where = err instanceof CorruptionError ? `${name(err.path)} at offset ${err.offset}` : "";
    const what = err instanceof CorruptionError ? err.message.replace(/^.*?: /, "") : err.message;
    warnings.push(
      `head: ${where ? `${where}: ` : ""}${what}; series after this point are not counted`,
    );
  }
}

/** What {@link forEachSeries} calls with each series of a record, to count it. */
function _addHeadSeries(counter: _SeriesCounter): (ref: number, key: string) => void {
  return (_ref, key) => counter.addHeadSeries(parseLabelsKey(key));
}

/** Counts the series of block indexes, one index open at a time. */
async function _countBlocks(
  indexes: { ulid: string; file: string; badIndexVersion?: boolean }[],
  counter: _SeriesCounter,
): Promise<void> {
  for (const { ulid, file, badIndexVersion } of indexes) {
    let reader: IndexReader | undefined;
    try {
      // A Prometheus 2.1 block (meta.json version 2) is read as Prometheus repairs it.
      reader = await IndexReader.open(file, { windowSize: 256 * 1024, badIndexVersion });
      for await (const series of reader.series()) {
        counter.addBlockSeries(series.labels, series.chunks);
      }
    } catch (err) {
      if (err instanceof FormatError || err instanceof Deno.errors.NotFound) {
        throw new PromcaseError(`block ${ulid}: cannot read its index: ${describeError(err)}`);
      }
      throw err;
    } finally {
      reader?.close();
    }
  }
}

const _IN_HEAD = 1;
const _IN_BLOCK = 2;

/** Per-metric counts, each series counted once (by the hash of its label set). */
class _SeriesCounter {
  #metrics = new Map<string, MetricSeries>();
  #seen = new HashSet64(SERIES_DEDUPE_LIMIT);
  #selector: Selector | undefined;
  #window: TimeWindow | undefined;
  #keep: CountOptions["keep"];
  #onSeries: CountOptions["onSeries"];
  /** Whether every series could be deduplicated. */
  exact = true;

  constructor(
    selector: Selector | undefined,
    window: TimeWindow | undefined,
    hooks: Pick<CountOptions, "keep" | "onSeries"> = {},
  ) {
    this.#selector = selector;
    this.#window = window;
    this.#keep = hooks.keep;
    this.#onSeries = hooks.onSeries;
  }

  #selected(labels: readonly Label[]): boolean {
    return (!this.#selector || matchesSelector(labels, this.#selector)) &&
      (!this.#keep || this.#keep(labels));
  }

  #count(labels: readonly Label[], where: typeof _IN_HEAD | typeof _IN_BLOCK): MetricSeries {
    const name = labels.find((l) => l.name === "__name__")?.value ?? "";
    let metric = this.#metrics.get(name);
    if (!metric) {
      metric = { metric: name, series: 0, blockSeries: 0, headSeries: 0, chunks: 0 };
      this.#metrics.set(name, metric);
    }
    const seen = this.#seen.mark(hashLabels(labels), where);
    if (seen === "full") this.exact = false;
    if (seen === "new" || seen === "full") {
      metric.series++;
      this.#onSeries?.(labels);
    }
    if (seen !== "seen") {
      if (where === _IN_HEAD) metric.headSeries++;
      else metric.blockSeries++;
    }
    return metric;
  }

  addHeadSeries(labels: readonly Label[]): void {
    if (!this.#selected(labels)) return;
    this.#count(labels, _IN_HEAD);
  }

  addBlockSeries(labels: readonly Label[], chunks: readonly ChunkMeta[]): void {
    if (!this.#selected(labels)) return;
    const window = this.#window;
    let inWindow = chunks.length;
    if (window) {
      inWindow = 0;
      for (const chunk of chunks) {
        if (chunk.mint <= window.to && chunk.maxt >= window.from) inWindow++;
      }
      if (inWindow === 0) return;
    }
    this.#count(labels, _IN_BLOCK).chunks += inWindow;
  }

  /** The counts, most series first, then by name. */
  result(): MetricSeries[] {
    return [...this.#metrics.values()]
      .sort((a, b) => b.series - a.series || (a.metric < b.metric ? -1 : 1));
  }
}

/** A 64-bit hash of a label set, as two 32-bit halves (FNV-1a and a murmur-style mix). */
export function hashLabels(labels: readonly Label[]): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  const add = (s: string) => {
    // The length first, so that ("ab","c") and ("a","bc") differ.
    a = Math.imul(a ^ s.length, 0x01000193);
    b = Math.imul(b ^ s.length, 0x5bd1e995);
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
      b ^= b >>> 15;
    }
  };
  for (const label of labels) {
    add(label.name);
    add(label.value);
  }
  return [_fmix32(a), _fmix32(b ^ Math.imul(a, 0x85ebca6b))];
}

function _fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * An open-addressing set of 64-bit hashes, each with a few flag bits: 9 bytes a slot, at most half
 * full, so `limit` entries take at most 18 × `limit` bytes (36 MB for 2 million).
 */
export class HashSet64 {
  #hi = new Uint32Array(1024);
  #lo = new Uint32Array(1024);
  #flags = new Uint8Array(1024); // 0: empty slot
  #limit: number;
  size = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  #slot(hi: number, lo: number): number {
    const mask = this.#flags.length - 1;
    let i = (lo ^ Math.imul(hi, 0x9e3779b1)) & mask;
    while (this.#flags[i] !== 0 && (this.#hi[i] !== hi || this.#lo[i] !== lo)) i = (i + 1) & mask;
    return i;
  }

  /**
   * Sets `flag` on the entry of `hash`: "new" when the entry was added, "newFlag" when it existed
   * without the flag, "seen" when it had it, "full" when it is missing and the set is full.
   */
  mark([hi, lo]: [number, number], flag: number): "new" | "newFlag" | "seen" | "full" {
    const i = this.#slot(hi, lo);
    const flags = this.#flags[i];
    if (flags & flag) return "seen";
    if (flags !== 0) {
      this.#flags[i] = flags | flag;
      return "newFlag";
    }
    if (this.size >= this.#limit) return "full";
    this.#hi[i] = hi;
    this.#lo[i] = lo;
    this.#flags[i] = flag;
    if (++this.size * 2 > this.#flags.length) this.#grow();
    return "new";
  }

  #grow(): void {
    const [hi, lo, flags] = [this.#hi, this.#lo, this.#flags];
    this.#hi = new Uint32Array(flags.length * 2);
    this.#lo = new Uint32Array(flags.length * 2);
    this.#flags = new Uint8Array(flags.length * 2);
    for (let i = 0; i < flags.length; i++) {
      if (flags[i] === 0) continue;
      const j = this.#slot(hi[i], lo[i]);
      this.#hi[j] = hi[i];
      this.#lo[j] = lo[i];
      this.#flags[j] = flags[i];
    }
  }
}
