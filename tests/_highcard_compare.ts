/**
 * Exact, streaming comparison of the samples two Prometheus data dirs hold in a window, with
 * `promtool tsdb dump` as the reader of both (the reference: it replays the WAL as Prometheus
 * does). Made for data dirs too big to hold: a source data dir and the restored copy of an
 * archive of it, each with millions of series.
 *
 * How: `promtool tsdb dump --min-time --max-time` runs on each dir (read-only: its replay sandbox
 * goes to a temporary dir, and a dir without `wal/`, such as a restored block, is dumped through a
 * shadow tree of hard links). Its stdout is read line by line; a series' lines (promtool prints
 * every sample of one series before the next series) become one entry. The entries of each side
 * are sorted by labels in Prometheus' order, then the two sorted streams are merged: series on one
 * side only, samples on one side only, samples whose value differs.
 *
 * Why sort: promtool prints series in label order only when it merges several sources (blocks and
 * head: its merge querier sorts). A dir with one source is printed in that source's posting order:
 * a block's is label order, but a head's is series-ref (creation) order, so a head-only dump, as
 * of a Prometheus that ran for minutes, is not sorted. Each side's report says whether its dump
 * was (`sortedByLabels`).
 *
 * What compares exactly: float values are printed with Go's `%g` (shortest text that parses back
 * to the same float64), so equal text means equal bits, -0 included, EXCEPT for NaN: every NaN
 * prints as `NaN`, so a stale marker (0x7ff0000000000002) and a NaN of any other payload look
 * the same. A lost stale marker shows (a `NaN` sample only in one dump), a stale marker turned
 * into another NaN does not. Native histograms print as `{count:N, sum:S, [lo,hi):n, ...}`
 * (bucket bounds and counts, `%g` for floats) without schema, zero threshold, spans of empty
 * buckets or counter reset hints; and promtool 3.5's dump loops (float, then float histogram, then
 * histogram, each loop consuming the first sample of the next kind) drop the first sample of a
 * float-histogram series and the first two of an integer-histogram series, on both sides alike
 * (and samples around a change of kind within a series). Compare histograms in detail some other
 * way.
 *
 * Both sides are dumped at once (two promtool processes) unless `sequential` is set.
 *
 * Memory is bounded: each side's entries are held up to `sortBudgetBytes` (estimated string
 * bytes), then sorted and spilled to a run file in `tmpDir`; the runs are merged with one entry
 * per run in memory. A single series is held whole (a series' samples in the window: ~25 bytes
 * each). Only the first `maxDifferences` differences are kept; all are counted. The strings held
 * are copies, never slices of the text read (a slice would keep a whole decoded chunk alive).
 * Measured (Deno 2.9, both sides at once, 3.6 M samples of 20,005 series a side, each spilling):
 * 350 MiB peak RSS with the default budget, 209 MiB with 16 MiB; promtool itself took 194 MiB.
 *
 * As a program:
 *
 *   deno run -A tests/_highcard_compare.ts WANT_DIR GOT_DIR --min-time MS --max-time MS
 *     [--promtool BIN] [--match SELECTOR]... [--max-differences 20] [--sort-budget 64MiB]
 *     [--tmp-dir DIR] [--sequential] [--json]
 *
 * exits 0 when the window's samples are identical, 1 when they differ, 2 on usage errors, 3 when a
 * dump fails.
 *
 * @module
 */

import { parseByteSize } from "../mod/bytesize.ts";

/** How one side is dumped. */
export interface DumpOptions {
  /** `promtool` binary (3.x; 2.53 works, 2.42 has no `--sandbox-dir-root`). */
  promtool: string;
  /** First millisecond of the window (inclusive). */
  minTime: number;
  /** Last millisecond of the window (inclusive). */
  maxTime: number;
  /** Series selectors (`--match`, any of them); default all series. */
  match?: string[];
  /**
   * Where promtool's replay sandbox, shadow trees and sort runs go. Must be on the data dir's file
   * system when its `chunks_head/` holds files (promtool hard-links them into the sandbox).
   * Default: the system's temporary dir.
   */
  tmpDir?: string;
}

/** One series of a dump: its labels as promtool prints them and its samples. */
export interface DumpSeries {
  /** Labels as printed, e.g. `{__name__="up", instance="a:1"}`. */
  labels: string;
  /** Sort key: the labels' UTF-8 bytes in Prometheus' order, as a binary string. */
  key: string;
  /** Samples, one `VALUE TIMESTAMP\n` line each (as printed), in time order. */
  body: string;
  /** Number of samples. */
  samples: number;
}

/** One difference between the dumps. */
export type Difference =
  | {
    kind: "series-only-in-want" | "series-only-in-got";
    labels: string;
    samples: number;
    firstT: number;
    lastT: number;
    nan: number;
  }
  | { kind: "sample-differs"; labels: string; t: number; want: string; got: string }
  | { kind: "sample-only-in-want" | "sample-only-in-got"; labels: string; t: number; value: string }
  | { kind: "duplicate-series"; side: "want" | "got"; labels: string };

/** What was read from one side. */
export interface SideStats {
  /** The data dir. */
  dir: string;
  /** Series with samples in the window. */
  series: number;
  /** Samples in the window. */
  samples: number;
  /** Samples printed as NaN (stale markers, or NaN values: the dump cannot tell). */
  nan: number;
  /** Samples promtool printed outside the window (left out of the comparison). */
  outsideWindow: number;
  /** Whether promtool printed the series in label order (else they were sorted here). */
  sortedByLabels: boolean;
  /** Run files spilled while sorting (0: sorted in memory). */
  spilledRuns: number;
  /** Seconds the dump took (promtool and reading its output). */
  dumpSeconds: number;
}

/** The result of {@link compareDataDirs}. */
export interface CompareReport {
  /** The window, inclusive, in ms. */
  window: { minTime: number; maxTime: number };
  /** The reference side (e.g. the source data dir). */
  want: SideStats;
  /** The side checked against it (e.g. the restored archive). */
  got: SideStats;
  /** Whether every series and sample (value text) is the same on both sides. */
  identical: boolean;
  /** Series on both sides. */
  seriesBoth: number;
  /** Series on both sides with at least one differing or missing sample. */
  seriesDiffering: number;
  /** Series only in want. */
  seriesOnlyInWant: number;
  /** Series only in got. */
  seriesOnlyInGot: number;
  /** Samples of common series equal on both sides. */
  samplesEqual: number;
  /** Samples at the same time with different values. */
  samplesDiffer: number;
  /** Samples only in want (series only in want included). */
  samplesOnlyInWant: number;
  /** Samples only in got (series only in got included). */
  samplesOnlyInGot: number;
  /** Of `samplesOnlyInWant`, those printed as NaN (lost stale markers, most likely). */
  nanOnlyInWant: number;
  /** Of `samplesOnlyInGot`, those printed as NaN. */
  nanOnlyInGot: number;
  /** All differences counted (series and samples). */
  differencesTotal: number;
  /** The first `maxDifferences` differences in label and time order. */
  differences: Difference[];
}

/** Options of {@link compareDataDirs}. */
export interface CompareOptions extends DumpOptions {
  /** Differences to keep in the report (default 20). */
  maxDifferences?: number;
  /** Estimated bytes of dump entries one side holds before spilling a sorted run (default 64 MiB). */
  sortBudgetBytes?: number;
  /** Dump one side after the other instead of both at once (half the CPU and memory at a time). */
  sequential?: boolean;
}

const _DEFAULT_SORT_BUDGET = 64 * 1024 * 1024;
/** Estimated bytes an entry costs besides its strings. */
const _ENTRY_OVERHEAD = 96;
/** promtool's stderr kept for the error message when it fails (it writes little else). */
const _STDERR_TAIL = 64 * 1024;
const _DEFAULT_WRITE_BUFFER = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Lines of a byte stream.

/** The lines of a UTF-8 byte stream (without the newline; a last unterminated line too). */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let carry = "";
  for await (const chunk of stream) {
    const text = carry + decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
      yield text.slice(start, nl);
      start = nl + 1;
    }
    carry = text.slice(start);
  }
  carry += decoder.decode();
  if (carry !== "") yield carry;
}

// ---------------------------------------------------------------------------------------------
// promtool's label text.

const _encoder = new TextEncoder();
const _SHORT_ESCAPES: Record<string, number> = {
  a: 7,
  b: 8,
  f: 12,
  n: 10,
  r: 13,
  t: 9,
  v: 11,
  "\\": 92,
  "'": 39,
  '"': 34,
};

/** Reads a Go-quoted string (`strconv.Quote`) at `pos` (its `"`) into UTF-8 bytes. */
function _unquote(text: string, pos: number, out: number[]): number {
  if (text[pos] !== '"') throw new Error(`bad label text at ${pos}: ${text}`);
  let i = pos + 1;
  let literal = i;
  const flush = (end: number) => {
    if (end > literal) { for (const b of _encoder.encode(text.slice(literal, end))) out.push(b); }
  };
  for (;;) {
    const c = text[i];
    if (c === undefined) throw new Error(`unterminated label value: ${text}`);
    if (c === '"') {
      flush(i);
      return i + 1;
    }
    if (c !== "\\") {
      i++;
      continue;
    }
    flush(i);
    const e = text[i + 1];
    if (e in _SHORT_ESCAPES) {
      out.push(_SHORT_ESCAPES[e]);
      i += 2;
    } else if (e === "x") {
      out.push(parseInt(text.slice(i + 2, i + 4), 16));
      i += 4;
    } else if (e === "u" || e === "U") {
      const n = e === "u" ? 4 : 8;
      const cp = parseInt(text.slice(i + 2, i + 2 + n), 16);
      for (const b of _encoder.encode(String.fromCodePoint(cp))) out.push(b);
      i += 2 + n;
    } else if (e >= "0" && e <= "7") {
      out.push(parseInt(text.slice(i + 1, i + 4), 8));
      i += 4;
    } else {
      throw new Error(`bad escape \\${e} in label text: ${text}`);
    }
    literal = i;
  }
}

/** Appends `bytes` and a terminator to the key: 0x00/0x01 escaped, so byte order is kept. */
function _appendKeyPart(bytes: number[], key: number[]): void {
  for (const b of bytes) {
    if (b <= 1) key.push(1, b + 1);
    else key.push(b);
  }
  key.push(0);
}

/**
 * Parses the label text promtool prints (Go's `labels.String()`: `{name="value", ...}`, names
 * quoted when not legacy names) at the start of `text`. Returns the sort key (a binary string
 * whose code-unit order is Prometheus' `labels.Compare` order) and where the text ends (after `}`).
 */
export function parseLabelsKey(text: string): { key: string; end: number } {
  if (text[0] !== "{") throw new Error(`not a dump line: ${text.slice(0, 200)}`);
  const key: number[] = [];
  const part: number[] = [];
  let i = 1;
  if (text[i] === "}") return { key: "", end: 2 };
  for (;;) {
    part.length = 0;
    if (text[i] === '"') {
      i = _unquote(text, i, part);
    } else {
      const eq = text.indexOf("=", i);
      if (eq < 0) throw new Error(`bad label text: ${text.slice(0, 200)}`);
      for (const b of _encoder.encode(text.slice(i, eq))) part.push(b);
      i = eq;
    }
    _appendKeyPart(part, key);
    if (text[i] !== "=") throw new Error(`bad label text: ${text.slice(0, 200)}`);
    part.length = 0;
    i = _unquote(text, i + 1, part);
    _appendKeyPart(part, key);
    if (text[i] === "}") break;
    if (text[i] !== "," || text[i + 1] !== " ") {
      throw new Error(`bad label text: ${text.slice(0, 200)}`);
    }
    i += 2;
  }
  let s = "";
  for (let j = 0; j < key.length; j += 8192) {
    s += String.fromCharCode(...key.slice(j, j + 8192));
  }
  return { key: s, end: i + 1 };
}

// ---------------------------------------------------------------------------------------------
// promtool tsdb dump.

/** Counters of {@link dumpSeries}, filled while it runs. */
export interface DumpCounters {
  /** Samples printed outside `[minTime, maxTime]` (left out). */
  outsideWindow: number;
}

async function _isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/** A tree of hard links (copies where linking fails) of `from` at `to`. */
async function _linkTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to);
  for await (const e of Deno.readDir(from)) {
    const src = `${from}/${e.name}`;
    const dst = `${to}/${e.name}`;
    if (e.isDirectory) await _linkTree(src, dst);
    else if (e.isFile) await Deno.link(src, dst).catch(() => Deno.copyFile(src, dst));
  }
}

/** A copy of `text` that shares no memory with the (much larger) string it was sliced from. */
function _detached(text: string): string {
  // Slicing a concatenation flattens it into a new string first.
  return (" " + text).slice(1);
}

/**
 * Parses the text of `promtool tsdb dump` (`{labels} VALUE TIMESTAMP` lines, a series' lines
 * together) from `stream` into one entry per series, keeping the samples in `[minTime, maxTime]`.
 * Holds one series at a time; the strings it yields share no memory with the text read.
 */
export async function* readDump(
  stream: ReadableStream<Uint8Array>,
  window: { minTime: number; maxTime: number },
  counters: DumpCounters = { outsideWindow: 0 },
): AsyncGenerator<DumpSeries> {
  const { minTime, maxTime } = window;
  let labels = "";
  let key = "";
  // Joined when the series ends: one new flat string, not a rope of slices that would keep every
  // decoded chunk of the dump alive.
  const parts: string[] = [];
  const entry = (): DumpSeries => {
    const samples = parts.length;
    parts.push("");
    const body = parts.join("\n");
    parts.length = 0;
    return { labels, key, body, samples };
  };
  for await (const line of readLines(stream)) {
    if (line === "") continue;
    let rest: string;
    if (labels !== "" && line.startsWith(labels) && line[labels.length] === " ") {
      rest = line.slice(labels.length + 1);
    } else {
      if (parts.length > 0) yield entry();
      parts.length = 0;
      const parsed = parseLabelsKey(line);
      labels = _detached(line.slice(0, parsed.end));
      key = parsed.key;
      if (line[parsed.end] !== " ") throw new Error(`bad dump line: ${line.slice(0, 300)}`);
      rest = line.slice(parsed.end + 1);
    }
    const sp = rest.lastIndexOf(" ");
    const t = Number(rest.slice(sp + 1));
    if (sp <= 0 || !Number.isSafeInteger(t)) {
      throw new Error(`bad dump line: ${line.slice(0, 300)}`);
    }
    if (t < minTime || t > maxTime) {
      counters.outsideWindow++;
      continue;
    }
    parts.push(rest);
  }
  if (parts.length > 0) yield entry();
}

/**
 * The series `promtool tsdb dump` prints for `dataDir` in the window, in promtool's order, each
 * with the samples inside the window. Never writes into `dataDir`. Throws with promtool's stderr
 * when it fails; stops (kills) promtool when the caller stops early.
 */
export async function* dumpSeries(
  dataDir: string,
  options: DumpOptions,
  counters: DumpCounters = { outsideWindow: 0 },
): AsyncGenerator<DumpSeries> {
  const tmp = await Deno.makeTempDir({ dir: options.tmpDir, prefix: "highcard-dump-" });
  let child: Deno.ChildProcess | undefined;
  try {
    let db = dataDir;
    if (!(await _isDir(`${dataDir}/wal`))) {
      // promtool needs a wal/ dir; a restored block has none.
      db = `${tmp}/db`;
      await _linkTree(dataDir, db);
      await Deno.mkdir(`${db}/wal`, { recursive: true });
    }
    const args = [
      "tsdb",
      "dump",
      `--sandbox-dir-root=${tmp}`,
      `--min-time=${options.minTime}`,
      `--max-time=${options.maxTime}`,
      ...(options.match ?? []).map((m) => `--match=${m}`),
      db,
    ];
    child = new Deno.Command(options.promtool, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let stderr = "";
    const stderrDone = (async () => {
      for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
        stderr = (stderr + text).slice(-_STDERR_TAIL);
      }
    })();

    yield* readDump(child.stdout, options, counters);
    const status = await child.status;
    child = undefined;
    await stderrDone;
    if (!status.success) {
      throw new Error(
        `promtool tsdb dump ${dataDir} failed (exit ${status.code}): ${stderr.trim()}`,
      );
    }
  } finally {
    if (child) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
      await child.stdout.cancel().catch(() => {});
      await child.stderr.cancel().catch(() => {});
    }
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// External sort of dump entries.

/** Options of {@link SeriesSorter}. */
export interface SorterOptions {
  /** Estimated bytes of entries held before a sorted run is spilled (default 64 MiB). */
  budgetBytes?: number;
  /** Directory for run files (must exist); default the system's temporary dir. */
  tmpDir?: string;
  /** Characters of run file text collected before a write (default 1 MiB). */
  writeBufferBytes?: number;
}

function _cost(s: DumpSeries): number {
  return s.labels.length + s.key.length + s.body.length + _ENTRY_OVERHEAD;
}

function _byKey(a: DumpSeries, b: DumpSeries): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** Reads a run file back: `#LABELS` lines, each followed by its sample lines. */
async function* _readRun(path: string): AsyncGenerator<DumpSeries> {
  const file = await Deno.open(path);
  let labels: string | undefined;
  const parts: string[] = [];
  const entry = (): DumpSeries => {
    const samples = parts.length;
    parts.push("");
    const body = parts.join("\n");
    parts.length = 0;
    return { labels: labels!, key: parseLabelsKey(labels!).key, body, samples };
  };
  for await (const line of readLines(file.readable)) {
    if (line.startsWith("#")) {
      if (labels !== undefined) yield entry();
      labels = _detached(line.slice(1));
    } else if (labels !== undefined) {
      parts.push(line);
    } else {
      throw new Error(`bad run file ${path}`);
    }
  }
  if (labels !== undefined) yield entry();
}

/** A min-heap of run heads by key (ties: the earlier run first, so equal keys come out stably). */
class _RunHeap {
  readonly #items: { head: DumpSeries; run: number; rest: AsyncGenerator<DumpSeries> }[] = [];

  get size(): number {
    return this.#items.length;
  }

  push(item: { head: DumpSeries; run: number; rest: AsyncGenerator<DumpSeries> }): void {
    const a = this.#items;
    a.push(item);
    for (let i = a.length - 1; i > 0;) {
      const p = (i - 1) >> 1;
      if (!this.#less(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }

  pop(): { head: DumpSeries; run: number; rest: AsyncGenerator<DumpSeries> } | undefined {
    const a = this.#items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      for (let i = 0;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.#less(a[l], a[m])) m = l;
        if (r < a.length && this.#less(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }

  #less(
    x: { head: DumpSeries; run: number },
    y: { head: DumpSeries; run: number },
  ): boolean {
    const c = _byKey(x.head, y.head);
    return c < 0 || (c === 0 && x.run < y.run);
  }
}

/**
 * Sorts dump entries by their key with bounded memory: entries are held until their estimated
 * size reaches the budget, then sorted and written to a run file; {@link sorted} merges the runs
 * (and what is still held). Entries with equal keys come out in the order they were added.
 */
export class SeriesSorter {
  /** Whether the entries were added in strictly increasing key order. */
  inOrder = true;
  /** Run files written. */
  spilledRuns = 0;
  readonly #budget: number;
  readonly #tmpDir: string | undefined;
  readonly #writeBuffer: number;
  #runDir: string | undefined;
  #held: DumpSeries[] = [];
  #heldBytes = 0;
  #lastKey: string | undefined;

  constructor(options: SorterOptions = {}) {
    this.#budget = options.budgetBytes ?? _DEFAULT_SORT_BUDGET;
    this.#tmpDir = options.tmpDir;
    this.#writeBuffer = options.writeBufferBytes ?? _DEFAULT_WRITE_BUFFER;
  }

  /** Adds an entry; spills a run when the budget is reached. */
  async add(series: DumpSeries): Promise<void> {
    if (this.#lastKey !== undefined && !(series.key > this.#lastKey)) this.inOrder = false;
    this.#lastKey = series.key;
    this.#held.push(series);
    this.#heldBytes += _cost(series);
    if (this.#heldBytes >= this.#budget) await this.#spill();
  }

  async #spill(): Promise<void> {
    this.#runDir ??= await Deno.makeTempDir({ dir: this.#tmpDir, prefix: "highcard-sort-" });
    const held = this.#held.sort(_byKey);
    this.#held = [];
    this.#heldBytes = 0;
    const path = `${this.#runDir}/run-${String(this.spilledRuns).padStart(6, "0")}`;
    using file = await Deno.open(path, { write: true, createNew: true });
    let pending = "";
    const write = async (text: string) => {
      const bytes = _encoder.encode(text);
      for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
    };
    for (const s of held) {
      pending += `#${s.labels}\n${s.body}`;
      if (pending.length >= this.#writeBuffer) {
        await write(pending);
        pending = "";
      }
    }
    await write(pending);
    this.spilledRuns++;
  }

  /** Every entry added, in key order. Call once, after the last {@link add}. */
  async *sorted(): AsyncGenerator<DumpSeries> {
    const readers: AsyncGenerator<DumpSeries>[] = [];
    try {
      if (this.spilledRuns === 0) {
        const held = this.#held.sort(_byKey);
        this.#held = [];
        yield* held;
        return;
      }
      if (this.#held.length > 0) await this.#spill();
      const heap = new _RunHeap();
      for (let run = 0; run < this.spilledRuns; run++) {
        const rest = _readRun(`${this.#runDir}/run-${String(run).padStart(6, "0")}`);
        readers.push(rest);
        const first = await rest.next();
        if (!first.done) heap.push({ head: first.value, run, rest });
      }
      while (heap.size > 0) {
        const top = heap.pop()!;
        yield top.head;
        const next = await top.rest.next();
        if (!next.done) heap.push({ head: next.value, run: top.run, rest: top.rest });
      }
    } finally {
      // Readers left behind by an early stop close their files.
      for (const r of readers) await r.return(undefined);
      await this.dispose();
    }
  }

  /** Removes the run files. */
  async dispose(): Promise<void> {
    this.#held = [];
    if (this.#runDir) await Deno.remove(this.#runDir, { recursive: true }).catch(() => {});
    this.#runDir = undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// The comparison.

/** A sample line `VALUE TIMESTAMP` split. */
function _sample(line: string): { t: number; value: string } {
  const sp = line.lastIndexOf(" ");
  return { t: Number(line.slice(sp + 1)), value: line.slice(0, sp) };
}

function _lines(body: string): string[] {
  return body.split("\n").slice(0, -1);
}

class _Comparison {
  readonly report: Omit<CompareReport, "window" | "want" | "got" | "identical">;
  readonly #max: number;

  constructor(maxDifferences: number) {
    this.#max = maxDifferences;
    this.report = {
      seriesBoth: 0,
      seriesDiffering: 0,
      seriesOnlyInWant: 0,
      seriesOnlyInGot: 0,
      samplesEqual: 0,
      samplesDiffer: 0,
      samplesOnlyInWant: 0,
      samplesOnlyInGot: 0,
      nanOnlyInWant: 0,
      nanOnlyInGot: 0,
      differencesTotal: 0,
      differences: [],
    };
  }

  #note(d: Difference): void {
    this.report.differencesTotal++;
    if (this.report.differences.length < this.#max) this.report.differences.push(d);
  }

  duplicate(side: "want" | "got", s: DumpSeries): void {
    this.#note({ kind: "duplicate-series", side, labels: s.labels });
  }

  onlyIn(side: "want" | "got", s: DumpSeries): void {
    const lines = _lines(s.body);
    const nan = lines.filter((l) => l.startsWith("NaN ")).length;
    const r = this.report;
    if (side === "want") {
      r.seriesOnlyInWant++;
      r.samplesOnlyInWant += s.samples;
      r.nanOnlyInWant += nan;
    } else {
      r.seriesOnlyInGot++;
      r.samplesOnlyInGot += s.samples;
      r.nanOnlyInGot += nan;
    }
    this.#note({
      kind: side === "want" ? "series-only-in-want" : "series-only-in-got",
      labels: s.labels,
      samples: s.samples,
      firstT: _sample(lines[0]).t,
      lastT: _sample(lines[lines.length - 1]).t,
      nan,
    });
  }

  both(want: DumpSeries, got: DumpSeries): void {
    const r = this.report;
    r.seriesBoth++;
    if (want.body === got.body) {
      r.samplesEqual += want.samples;
      return;
    }
    r.seriesDiffering++;
    const a = _lines(want.body);
    const b = _lines(got.body);
    let i = 0;
    let j = 0;
    while (i < a.length || j < b.length) {
      const x = i < a.length ? _sample(a[i]) : undefined;
      const y = j < b.length ? _sample(b[j]) : undefined;
      if (x && y && x.t === y.t) {
        if (x.value === y.value) {
          r.samplesEqual++;
        } else {
          r.samplesDiffer++;
          this.#note({
            kind: "sample-differs",
            labels: want.labels,
            t: x.t,
            want: x.value,
            got: y.value,
          });
        }
        i++;
        j++;
      } else if (x && (!y || x.t < y.t)) {
        r.samplesOnlyInWant++;
        if (x.value === "NaN") r.nanOnlyInWant++;
        this.#note({ kind: "sample-only-in-want", labels: want.labels, t: x.t, value: x.value });
        i++;
      } else if (y) {
        r.samplesOnlyInGot++;
        if (y.value === "NaN") r.nanOnlyInGot++;
        this.#note({ kind: "sample-only-in-got", labels: got.labels, t: y.t, value: y.value });
        j++;
      }
    }
  }
}

/** Adds a side's dump to a sorter, counting what it read. */
async function _collect(
  dir: string,
  options: CompareOptions,
  sorter: SeriesSorter,
): Promise<SideStats> {
  const started = performance.now();
  const counters = { outsideWindow: 0 };
  const stats: SideStats = {
    dir,
    series: 0,
    samples: 0,
    nan: 0,
    outsideWindow: 0,
    sortedByLabels: true,
    spilledRuns: 0,
    dumpSeconds: 0,
  };
  for await (const s of dumpSeries(dir, options, counters)) {
    stats.series++;
    stats.samples += s.samples;
    for (let p = s.body.indexOf("NaN "); p >= 0; p = s.body.indexOf("NaN ", p + 4)) {
      if (p === 0 || s.body[p - 1] === "\n") stats.nan++;
    }
    await sorter.add(s);
  }
  stats.outsideWindow = counters.outsideWindow;
  stats.sortedByLabels = sorter.inOrder;
  stats.spilledRuns = sorter.spilledRuns;
  stats.dumpSeconds = Math.round((performance.now() - started) / 100) / 10;
  return stats;
}

/** Yields the entries of a sorted stream, reporting duplicate keys instead of passing them on. */
async function* _unique(
  entries: AsyncGenerator<DumpSeries>,
  side: "want" | "got",
  comparison: _Comparison,
): AsyncGenerator<DumpSeries> {
  let last: string | undefined;
  for await (const s of entries) {
    if (s.key === last) {
      comparison.duplicate(side, s);
      continue;
    }
    last = s.key;
    yield s;
  }
}

/**
 * Compares the samples of `wantDir` (the reference, e.g. a source data dir) and `gotDir` (e.g. the
 * restored copy) in `[minTime, maxTime]`, both read with `promtool tsdb dump`. See the module doc
 * for what compares exactly and how memory is bounded.
 */
export async function compareDataDirs(
  wantDir: string,
  gotDir: string,
  options: CompareOptions,
): Promise<CompareReport> {
  const sorterOptions = { budgetBytes: options.sortBudgetBytes, tmpDir: options.tmpDir };
  const wantSorter = new SeriesSorter(sorterOptions);
  const gotSorter = new SeriesSorter(sorterOptions);
  try {
    let want: SideStats;
    let got: SideStats;
    if (options.sequential) {
      want = await _collect(wantDir, options, wantSorter);
      got = await _collect(gotDir, options, gotSorter);
    } else {
      [want, got] = await Promise.all([
        _collect(wantDir, options, wantSorter),
        _collect(gotDir, options, gotSorter),
      ]);
    }
    const comparison = new _Comparison(options.maxDifferences ?? 20);
    const a = _unique(wantSorter.sorted(), "want", comparison);
    const b = _unique(gotSorter.sorted(), "got", comparison);
    let x = await a.next();
    let y = await b.next();
    while (!x.done || !y.done) {
      if (!x.done && !y.done && x.value.key === y.value.key) {
        comparison.both(x.value, y.value);
        x = await a.next();
        y = await b.next();
      } else if (!x.done && (y.done || x.value.key < y.value.key)) {
        comparison.onlyIn("want", x.value);
        x = await a.next();
      } else if (!y.done) {
        comparison.onlyIn("got", y.value);
        y = await b.next();
      }
    }
    const r = comparison.report;
    return {
      window: { minTime: options.minTime, maxTime: options.maxTime },
      want,
      got,
      identical: r.differencesTotal === 0,
      ...r,
    };
  } finally {
    await wantSorter.dispose();
    await gotSorter.dispose();
  }
}

/** The report as text for people: counts, then the differences kept. */
export function formatReport(r: CompareReport): string {
  const iso = (t: number) => new Date(t).toISOString();
  const side = (name: string, s: SideStats) =>
    `${name}: ${s.dir}: ${s.series} series, ${s.samples} samples (${s.nan} NaN), ` +
    `${s.sortedByLabels ? "dumped in label order" : "dumped unsorted, sorted here"}` +
    `${s.spilledRuns ? ` (${s.spilledRuns} runs spilled)` : ""}, ${s.dumpSeconds} s` +
    `${s.outsideWindow ? `, ${s.outsideWindow} samples outside the window left out` : ""}`;
  const lines = [
    `window [${r.window.minTime}, ${r.window.maxTime}] ` +
    `(${iso(r.window.minTime)} .. ${iso(r.window.maxTime)}), inclusive`,
    side("want", r.want),
    side("got ", r.got),
    r.identical
      ? `IDENTICAL: ${r.seriesBoth} series, ${r.samplesEqual} samples`
      : `DIFFERENT: series both ${r.seriesBoth} (differing ${r.seriesDiffering}), only in want ` +
        `${r.seriesOnlyInWant}, only in got ${r.seriesOnlyInGot}; samples equal ` +
        `${r.samplesEqual}, differing ${r.samplesDiffer}, only in want ${r.samplesOnlyInWant} ` +
        `(NaN ${r.nanOnlyInWant}), only in got ${r.samplesOnlyInGot} (NaN ${r.nanOnlyInGot}); ` +
        `${r.differencesTotal} differences`,
  ];
  for (const d of r.differences) {
    switch (d.kind) {
      case "sample-differs":
        lines.push(`  ${d.labels} @${d.t}: want ${d.want}, got ${d.got}`);
        break;
      case "sample-only-in-want":
      case "sample-only-in-got":
        lines.push(`  ${d.labels} @${d.t}: ${d.value} only in ${d.kind.slice(15)}`);
        break;
      case "series-only-in-want":
      case "series-only-in-got":
        lines.push(
          `  ${d.labels}: series only in ${d.kind.slice(15)} (${d.samples} samples ` +
            `${d.firstT}..${d.lastT}, ${d.nan} NaN)`,
        );
        break;
      case "duplicate-series":
        lines.push(`  ${d.labels}: printed twice by the ${d.side} dump`);
    }
  }
  if (r.differencesTotal > r.differences.length) {
    lines.push(`  ... ${r.differencesTotal - r.differences.length} more`);
  }
  return lines.join("\n");
}

const _USAGE = "usage: _highcard_compare.ts WANT_DIR GOT_DIR --min-time MS --max-time MS " +
  "[--promtool BIN] [--match SELECTOR]... [--max-differences N] [--sort-budget SIZE] " +
  "[--tmp-dir DIR] [--sequential] [--json]";

async function _main(args: string[]): Promise<number> {
  const dirs: string[] = [];
  const match: string[] = [];
  const flags: Record<string, string> = {};
  let json = false;
  let sequential = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const m = /^--(min-time|max-time|promtool|match|max-differences|sort-budget|tmp-dir)(?:=(.*))?$/
      .exec(a);
    if (a === "--json") {
      json = true;
    } else if (a === "--sequential") {
      sequential = true;
    } else if (m) {
      const v = m[2] ?? args[++i];
      if (v === undefined) return _usage();
      if (m[1] === "match") match.push(v);
      else flags[m[1]] = v;
    } else if (!a.startsWith("--")) {
      dirs.push(a);
    } else {
      return _usage();
    }
  }
  const minTime = Number(flags["min-time"]);
  const maxTime = Number(flags["max-time"]);
  if (dirs.length !== 2 || !Number.isSafeInteger(minTime) || !Number.isSafeInteger(maxTime)) {
    return _usage();
  }
  let promtool = flags.promtool;
  if (!promtool) {
    const { findPrometheus } = await import("./_prometheus.ts");
    promtool = (await findPrometheus("newest")).promtool;
  }
  let report: CompareReport;
  try {
    report = await compareDataDirs(dirs[0], dirs[1], {
      promtool,
      minTime,
      maxTime,
      match,
      maxDifferences: flags["max-differences"] ? Number(flags["max-differences"]) : undefined,
      sortBudgetBytes: flags["sort-budget"]
        ? parseByteSize(flags["sort-budget"], "--sort-budget")
        : undefined,
      tmpDir: flags["tmp-dir"],
      sequential,
    });
  } catch (e) {
    console.error(`_highcard_compare: ${e instanceof Error ? e.message : e}`);
    return 3;
  }
  console.log(json ? JSON.stringify(report, null, 2) : formatReport(report));
  return report.identical ? 0 : 1;
}

function _usage(): number {
  console.error(_USAGE);
  return 2;
}

if (import.meta.main) Deno.exit(await _main(Deno.args));
