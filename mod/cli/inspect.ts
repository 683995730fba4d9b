/**
 * `promcase inspect [DATA_DIR] [--json]`: what is in a Prometheus data dir; and
 * `promcase inspect --series [SELECTOR] [DATA_DIR|ARCHIVE]`: how many series each metric name has,
 * to decide what to ship.
 *
 * Series counting reads only index files (one at a time) and the series records of the WAL, with
 * bounded memory: per metric name a few counters, and per distinct series a 64-bit hash of its label
 * set (up to {@link SERIES_DEDUPE_LIMIT} of them, 9 to 18 bytes each), so that a series found in
 * several blocks and in the head is counted once.
 *
 * @module
 */

import { checkArchive } from "../archive/reader.ts";
import {
  type DataDirInfo,
  type DataFile,
  detectPrometheusVersion,
  findDataDir,
  scanDataDir,
} from "../datadir.ts";
import { describeError, PromcaseError, usageError } from "../errors.ts";
import { planExport } from "../export.ts";
import { exists, writeAll } from "../fileio.ts";
import { lowerPriority } from "../priority.ts";
import { formatSelector, matchesSelector, parseSelector, type Selector } from "../selector.ts";
import { FormatError } from "../tsdb/encoding.ts";
import { type ChunkMeta, IndexReader, type Label } from "../tsdb/index.ts";
import { decodeRecord, RecordType } from "../tsdb/record.ts";
import { CorruptionError, type SegmentRef, WalReader } from "../tsdb/wlog.ts";
import {
  formatDuration,
  formatTime,
  type IncidentWindow,
  resolveWindow,
  type TimeWindow,
} from "../window.ts";
import { type Command, formatBytes, formatTable, parseFlags, toJson } from "./args.ts";
import { createProgress, type Progress } from "./progress.ts";

const _HELP = `Usage: promcase inspect [DATA_DIR] [--json]
       promcase inspect --series [SELECTOR] [DATA_DIR|ARCHIVE] [--at TIME --before DUR] [--top N]

Shows what a Prometheus data dir holds: blocks (ULID, time range in UTC, duration, compaction
level, series/samples/chunks, size, tombstones), the head (checkpoint, WAL segments, chunks_head/,
wbl/), whether a Prometheus holds the dir, leftover .tmp dirs, total size and problems found.

With --series: the number of series per metric name, most first, to decide what to ship (and what
to leave out with export --exclude). Counts the series of the blocks and of the head (series
records of the checkpoint and WAL), each label set once, optionally only those matching SELECTOR.
Reads a data dir, or an archive made by promcase export (.tar.gz, .tar.zst, .tar, split parts),
which is streamed and checked on the way. Columns: SERIES (distinct series), BLOCKS and HEAD (of
them, in blocks and in the head), CHUNKS (chunks in blocks; samples are not counted, that would
mean reading every chunk), SHARE (of all series).

DATA_DIR defaults to the first of /prometheus, /var/lib/prometheus/metrics2, ./data that exists.

Options:
  --series [SELECTOR]  count series per metric name; SELECTOR is a PromQL series selector
                       (up, {job="api"}, {__name__=~"go_.*"}); use --series=SELECTOR when it could
                       be mistaken for the data dir
  --at TIME, --before DUR, --after DUR, --from TIME, --to TIME
                       with --series on a data dir: only the blocks and head that export would read
                       for this window, and only block series with a chunk in the window
  --top N              show the N metrics with the most series (default 20; 0 = all)
  --json               print the result as JSON on stdout
  -h, --help

Examples:
  promcase inspect /var/lib/prometheus/metrics2
  promcase inspect --series /var/lib/prometheus/metrics2 --top 50
  promcase inspect --series '{job="node"}' --at 2026-11-25T10:30:00Z --before 6h
  promcase inspect --series incident.tar.gz --json
`;

/**
 * Distinct series remembered (as 64-bit hashes of their label sets) to count each once, in blocks
 * and head together; beyond it, series are counted as often as they occur (upper bounds).
 */
export const SERIES_DEDUPE_LIMIT = 2_000_000;

/** The inspect command. */
export const inspectCommand: Command = {
  name: "inspect",
  summary: "show the blocks, head and problems of a data dir, or its series per metric",
  help: _HELP,
  async run(args) {
    const split = await _takeSeriesFlag(args);
    const { values, positionals } = parseFlags("inspect", split.args, {
      json: { type: "boolean" },
      at: { type: "string" },
      before: { type: "string" },
      after: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      top: { type: "string" },
    }, 1);
    if (values.help) {
      console.log(_HELP);
      return 0;
    }
    const windowFlags = ["at", "before", "after", "from", "to"] as const;
    if (split.series === undefined) {
      for (const flag of [...windowFlags, "top"] as const) {
        if (values[flag] !== undefined) throw usageError(`--${flag} goes with --series`);
      }
      const dir = await findDataDir(positionals[0]);
      if (await _isFile(dir)) {
        throw usageError(
          `${dir} is a file, not a data dir: inspect --series ${dir} counts the series of an ` +
            "archive, promcase verify checks it",
        );
      }
      const info = await scanDataDir(dir);
      const version = await detectPrometheusVersion(info.holders);
      if (values.json) {
        console.log(toJson(_jsonReport(info, version)));
      } else {
        console.log(_textReport(info, version));
      }
      return 0;
    }
    const top = values.top === undefined ? 20 : _parseTop(values.top);
    const selector = split.series === "" ? undefined : parseSelector(split.series);
    const window = windowFlags.some((flag) => values[flag] !== undefined)
      ? resolveWindow(values)
      : undefined;
    const path = positionals[0] ?? await findDataDir(undefined);
    const report = await countSeries(path, { selector, window });
    if (values.json) console.log(toJson(_seriesJson(report, top)));
    else console.log(_seriesText(report, top));
    return 0;
  },
};

function _jsonReport(info: DataDirInfo, version: string | null) {
  return {
    path: info.path,
    size: info.size,
    prometheus: { running: info.holders.length > 0, version, processes: info.holders },
    lockFile: info.lockFile,
    blocks: info.blocks.map((b) => ({
      ulid: b.ulid,
      minTime: formatTime(b.meta.minTime),
      maxTime: formatTime(b.meta.maxTime),
      minTimeMs: b.meta.minTime,
      maxTimeMs: b.meta.maxTime,
      duration: formatDuration(b.meta.maxTime - b.meta.minTime),
      level: b.meta.level,
      stats: b.meta.stats,
      size: b.size,
      tombstonesSize: b.tombstonesSize,
    })),
    head: info.head,
    tmpDirs: info.tmpDirs,
    problems: info.problems,
  };
}

function _textReport(info: DataDirInfo, version: string | null): string {
  const lines = [`Data dir:   ${info.path} (${formatBytes(info.size)})`];
  const running = info.holders.length > 0
    ? `yes, ${info.holders.map((h) => `pid ${h.pid}`).join(", ")}` +
      (version ? ` (Prometheus ${version})` : "")
    : "no";
  lines.push(
    `Prometheus: running: ${running}; lock file: ${info.lockFile ? "present" : "absent"}`,
    "",
    `Blocks: ${info.blocks.length}`,
  );
  if (info.blocks.length > 0) {
    lines.push(
      formatTable([
        [
          "ULID",
          "MIN TIME (UTC)",
          "MAX TIME (UTC)",
          "DURATION",
          "LEVEL",
          "SERIES",
          "SAMPLES",
          "CHUNKS",
          "SIZE",
          "TOMBSTONES",
        ],
        ...info.blocks.map((b) => [
          b.ulid,
          formatTime(b.meta.minTime),
          formatTime(b.meta.maxTime),
          formatDuration(b.meta.maxTime - b.meta.minTime),
          String(b.meta.level),
          String(b.meta.stats.numSeries),
          String(b.meta.stats.numSamples),
          String(b.meta.stats.numChunks),
          formatBytes(b.size),
          String(b.meta.stats.numTombstones),
        ]),
      ]).replace(/^/gm, "  "),
    );
  }
  const { head } = info;
  const sum = (files: { size: number }[]) => formatBytes(files.reduce((s, f) => s + f.size, 0));
  lines.push("", `Head: ${formatBytes(head.size)}`);
  lines.push(
    head.checkpoint
      ? `  checkpoint:  ${head.checkpoint.name} (${head.checkpoint.files.length} segment(s), ${
        sum(head.checkpoint.files)
      })`
      : "  checkpoint:  none",
  );
  lines.push(`  WAL:         ${head.walSegments.length} segment(s), ${sum(head.walSegments)}`);
  for (const segment of head.walSegments) {
    lines.push(`               ${segment.path}  ${formatBytes(segment.size)}`);
  }
  if (head.coveredWalSegments.length > 0) {
    lines.push(
      `               (${head.coveredWalSegments.length} older segment(s) already in the checkpoint)`,
    );
  }
  lines.push(`  chunks_head: ${head.chunksHead.length} file(s), ${sum(head.chunksHead)}`);
  lines.push(`  wbl:         ${head.wbl.length} segment(s), ${sum(head.wbl)}`);
  lines.push(
    "",
    `Leftover .tmp dirs: ${info.tmpDirs.length > 0 ? info.tmpDirs.join(", ") : "none"}`,
  );
  lines.push(`Problems: ${info.problems.length === 0 ? "none" : ""}`);
  for (const problem of info.problems) lines.push(`  - ${problem}`);
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// inspect --series
// ---------------------------------------------------------------------------------------------

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
  /** Data dirs only: the blocks and head that export reads for this window. */
  window?: IncidentWindow;
}

/**
 * Counts the series per metric name of a data dir (a directory) or of a promcase archive (any
 * other path). Memory stays bounded: one block index open at a time, a few counters per metric name
 * and a hash per distinct series (up to {@link SERIES_DEDUPE_LIMIT}).
 */
export async function countSeries(path: string, options: CountOptions = {}): Promise<SeriesReport> {
  const counter = new _SeriesCounter(options.selector, options.window);
  let isDir = false;
  try {
    isDir = (await Deno.stat(path)).isDirectory;
  } catch {
    // Missing: a data dir error, unless it names an archive (perhaps split into parts).
    isDir = !/\.tar(\.gz|\.zst)?(\.part\d+|\.part\*)?$/.test(path);
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
  const progress = createProgress("inspect");
  try {
    return { ...base, ...(await _countArchive(path, counter, progress)) };
  } finally {
    progress.done();
  }
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
  const warnings = [...info.problems];
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
  }));
  await _countBlocks(indexes, counter);
  return {
    kind: "datadir",
    path: info.path,
    blocks: plan.blocks.map((b) => b.ulid),
    head: {
      included: plan.head.included,
      segments,
      reason: window || !plan.head.included ? plan.head.reason : "no window given: all of it",
    },
    exact: counter.exact,
    metrics: counter.result(),
    warnings,
  };
}

const _BLOCK_INDEX_RE = /^data\/([0-9A-HJKMNP-TV-Z]{26})\/index$/i;
const _WAL_SEGMENT_RE = /^data\/wal\/(?:checkpoint\.\d+\/)?\d+$/;

async function _countArchive(
  path: string,
  counter: _SeriesCounter,
  progress: Progress,
): Promise<_Counted> {
  const tmp = await Deno.makeTempDir({ prefix: "promcase-inspect-" });
  try {
    const blocks: string[] = [];
    const warnings: string[] = [];
    let segments = 0;
    const check = await checkArchive(path, {
      onProgress: (done, total) => progress.update(done, total),
      onFile: async (entry, _header, body) => {
        const block = _BLOCK_INDEX_RE.exec(entry);
        if (block) {
          // IndexReader needs a file: extracted, counted, removed, one index at a time.
          const file = `${tmp}/index`;
          await _save(body, file);
          try {
            await _countBlocks([{ ulid: block[1], file }], counter);
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
  const reader = new WalReader(segments);
  try {
    for await (const record of reader) {
      // Only series records name series; the others (samples, mostly) are skipped undecoded.
      if (record.bytes[0] !== RecordType.Series) continue;
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

/** Counts the series of block indexes, one index open at a time. */
async function _countBlocks(
  indexes: { ulid: string; file: string }[],
  counter: _SeriesCounter,
): Promise<void> {
  for (const { ulid, file } of indexes) {
    let reader: IndexReader | undefined;
    try {
      reader = await IndexReader.open(file, { windowSize: 256 * 1024 });
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
  #seen = new _HashSet(SERIES_DEDUPE_LIMIT);
  #selector: Selector | undefined;
  #window: TimeWindow | undefined;
  /** Whether every series could be deduplicated. */
  exact = true;

  constructor(selector: Selector | undefined, window: TimeWindow | undefined) {
    this.#selector = selector;
    this.#window = window;
  }

  #count(labels: readonly Label[], where: typeof _IN_HEAD | typeof _IN_BLOCK): MetricSeries {
    const name = labels.find((l) => l.name === "__name__")?.value ?? "";
    let metric = this.#metrics.get(name);
    if (!metric) {
      metric = { metric: name, series: 0, blockSeries: 0, headSeries: 0, chunks: 0 };
      this.#metrics.set(name, metric);
    }
    const seen = this.#seen.mark(_hashLabels(labels), where);
    if (seen === "full") this.exact = false;
    if (seen === "new" || seen === "full") metric.series++;
    if (seen !== "seen") {
      if (where === _IN_HEAD) metric.headSeries++;
      else metric.blockSeries++;
    }
    return metric;
  }

  addHeadSeries(labels: readonly Label[]): void {
    if (this.#selector && !matchesSelector(labels, this.#selector)) return;
    this.#count(labels, _IN_HEAD);
  }

  addBlockSeries(labels: readonly Label[], chunks: readonly ChunkMeta[]): void {
    if (this.#selector && !matchesSelector(labels, this.#selector)) return;
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
function _hashLabels(labels: readonly Label[]): [number, number] {
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
class _HashSet {
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

/**
 * Takes `--series` and its optional selector out of the arguments: `--series=SEL`, or `--series`
 * followed by an argument that is a valid selector and not an existing path.
 */
async function _takeSeriesFlag(args: string[]): Promise<{ args: string[]; series?: string }> {
  const rest: string[] = [];
  let series: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      rest.push(...args.slice(i));
      break;
    }
    if (arg.startsWith("--series=")) {
      series = arg.slice("--series=".length);
      continue;
    }
    if (arg !== "--series") {
      rest.push(arg);
      continue;
    }
    series = "";
    const next = args[i + 1];
    if (next !== undefined && !next.startsWith("-") && await _isSelectorArg(next)) {
      series = next;
      i++;
    }
  }
  return { args: rest, series };
}

async function _isSelectorArg(arg: string): Promise<boolean> {
  if (arg.trimStart().startsWith("{")) return true;
  try {
    parseSelector(arg);
  } catch {
    return false;
  }
  return !(await exists(arg));
}

async function _isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

function _parseTop(text: string): number {
  if (!/^\d+$/.test(text)) {
    throw usageError(`--top must be a whole number (0 = all), not "${text}"`);
  }
  return Number(text);
}

function _totals(metrics: readonly MetricSeries[]) {
  const sum = (key: "series" | "blockSeries" | "headSeries" | "chunks") =>
    metrics.reduce((s, m) => s + m[key], 0);
  return {
    metrics: metrics.length,
    series: sum("series"),
    blockSeries: sum("blockSeries"),
    headSeries: sum("headSeries"),
    chunks: sum("chunks"),
  };
}

function _seriesJson(report: SeriesReport, top: number) {
  const shown = top === 0 ? report.metrics : report.metrics.slice(0, top);
  return {
    kind: report.kind,
    path: report.path,
    selector: report.selector,
    window: report.window && {
      from: formatTime(report.window.from),
      to: formatTime(report.window.to),
      fromMs: report.window.from,
      toMs: report.window.to,
    },
    blocks: report.blocks,
    head: report.head,
    exact: report.exact,
    dedupeLimit: SERIES_DEDUPE_LIMIT,
    totals: _totals(report.metrics),
    metrics: shown,
    omittedMetrics: report.metrics.length - shown.length,
    warnings: report.warnings,
  };
}

function _seriesText(report: SeriesReport, top: number): string {
  const totals = _totals(report.metrics);
  const head = report.head.included
    ? `head: ${report.head.segments} WAL/checkpoint segment(s)`
    : `head: not counted (${report.head.reason})`;
  const lines = [
    `Series per metric name in ${
      report.kind === "archive" ? "archive" : "data dir"
    } ${report.path}`,
    `  ${report.blocks.length} block(s), ${head}`,
  ];
  if (report.selector) lines.push(`  selector: ${report.selector}`);
  if (report.window) {
    lines.push(
      `  window: ${formatTime(report.window.from)} to ${formatTime(report.window.to)} ` +
        `(${
          formatDuration(report.window.to - report.window.from)
        }; block series with a chunk in it)`,
    );
  }
  lines.push("");
  if (report.metrics.length === 0) {
    lines.push(report.selector ? "No series match the selector." : "No series.");
  } else {
    const shown = top === 0 ? report.metrics : report.metrics.slice(0, top);
    const share = (n: number) => `${(100 * n / Math.max(1, totals.series)).toFixed(1)}%`;
    const row = (name: string, m: Omit<MetricSeries, "metric">) => [
      name,
      String(m.series),
      String(m.blockSeries),
      String(m.headSeries),
      String(m.chunks),
      share(m.series),
    ];
    const rows = [
      ["METRIC", "SERIES", "BLOCKS", "HEAD", "CHUNKS", "SHARE"],
      ...shown.map((m) => row(m.metric === "" ? "(no metric name)" : m.metric, m)),
    ];
    const omitted = report.metrics.slice(shown.length);
    if (omitted.length > 0) {
      rows.push(row(`(${omitted.length} more metric names)`, _totals(omitted)));
    }
    rows.push(row(`TOTAL (${totals.metrics} metric names)`, totals));
    lines.push(_numberTable(rows).replace(/^/gm, "  "));
  }
  if (!report.exact) {
    lines.push(
      "",
      `More than ${SERIES_DEDUPE_LIMIT} distinct series: those beyond were counted once per block ` +
        "and head occurrence, so the counts are upper bounds.",
    );
  }
  for (const warning of report.warnings) lines.push(`Warning: ${warning}`);
  return lines.join("\n");
}

/** A table with the first column left-aligned and the others (numbers) right-aligned. */
function _numberTable(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => [...r[i]].length)));
  const pad = (cell: string, i: number) => {
    const fill = " ".repeat(widths[i] - [...cell].length);
    return i === 0 ? cell + fill : fill + cell;
  };
  return rows.map((r) => r.map(pad).join("  ").trimEnd()).join("\n");
}
