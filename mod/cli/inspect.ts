/**
 * `promcase inspect [DATA_DIR] [--json]`: what is in a Prometheus data dir; and
 * `promcase inspect --series [SELECTOR] [DATA_DIR|ARCHIVE]`: how many series each metric name has,
 * to decide what to ship (counted by `../inspect.ts`).
 *
 * @module
 */

import { type DataDirInfo, detectPrometheusVersion, findDataDir, scanDataDir } from "../datadir.ts";
import { usageError } from "../errors.ts";
import { exists } from "../fileio.ts";
import { parseSelector } from "../selector.ts";
import { formatDuration, formatTime, resolveWindow } from "../window.ts";
import { AGE_KEY_FLAGS, ageKeysFromFlags } from "./age_flags.ts";
import { type Command, formatBytes, formatTable, parseFlags, toJson } from "./args.ts";
import { createProgress } from "./progress.ts";
import { discloseSource, formatDisclosure, formatDisclosureText } from "../disclosure.ts";
import {
  countSeries,
  type MetricSeries,
  SERIES_DEDUPE_LIMIT,
  type SeriesReport,
} from "../inspect.ts";

const _HELP = `Usage: promcase inspect [DATA_DIR] [--json]
       promcase inspect --series [SELECTOR] [DATA_DIR|ARCHIVE] [--at TIME --before DUR] [--top N]
       promcase inspect --disclosure [DATA_DIR|ARCHIVE] [--json]

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

With --disclosure: what leaves (or left) the host: metric names, label names with their number
of distinct values, and hits of the detectors (IPv4/IPv6 addresses, host names with dots, e-mail
addresses, URLs with credentials, JWTs, AWS/GCP/Azure keys, private keys) in label values and, in
an archive, in the context files. --json prints the report as export stores it in the archive
(disclosure.json), so the support side sees what the customer saw.

DATA_DIR defaults to the first of /prometheus, /var/lib/prometheus/metrics2, ./data that exists.

Options:
  --series [SELECTOR]  count series per metric name; SELECTOR is a PromQL series selector
                       (up, {job="api"}, {__name__=~"go_.*"}); use --series=SELECTOR when it could
                       be mistaken for the data dir
  --at TIME, --before DUR, --after DUR, --from TIME, --to TIME
                       with --series on a data dir: only the blocks and head that export would read
                       for this window, and only block series with a chunk in the window
  --top N              show the N metrics with the most series (default 20; 0 = all); with
                       --disclosure, the metric names listed (--json lists all)
  --disclosure         print the disclosure report of the data dir or archive
  -i, --identity FILE, --passphrase-file FILE
                       with --series on an age-encrypted archive (.age): its key (see restore)
  --json               print the result as JSON on stdout
  -h, --help

Examples:
  promcase inspect /var/lib/prometheus/metrics2
  promcase inspect --series /var/lib/prometheus/metrics2 --top 50
  promcase inspect --series '{job="node"}' --at 2026-11-25T10:30:00Z --before 6h
  promcase inspect --series incident.tar.gz --json
  promcase inspect --disclosure incident.tar.gz
`;

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
      disclosure: { type: "boolean" },
      ...AGE_KEY_FLAGS,
    }, 1);
    if (values.help) {
      console.log(_HELP);
      return 0;
    }
    const windowFlags = ["at", "before", "after", "from", "to"] as const;
    if (values.disclosure) {
      if (split.series !== undefined) throw usageError("give either --series or --disclosure");
      for (const flag of windowFlags) {
        if (values[flag] !== undefined) {
          throw usageError(
            `--${flag} goes with --series (export --dry-run shows a window's report)`,
          );
        }
      }
      return await _disclosure(positionals[0], values);
    }
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
    const progress = createProgress("inspect");
    let report: SeriesReport;
    try {
      report = await countSeries(path, {
        selector,
        window,
        decrypt: await ageKeysFromFlags(values),
        onProgress: (done, total) => progress.update(done, total),
      });
    } finally {
      progress.done();
    }
    if (values.json) console.log(toJson(_seriesJson(report, top)));
    else console.log(_seriesText(report, top));
    return 0;
  },
};

/** `inspect --disclosure`: the report of a data dir or archive; warnings on stderr. */
async function _disclosure(
  path: string | undefined,
  values: { json?: boolean; top?: string } & Parameters<typeof ageKeysFromFlags>[0],
): Promise<number> {
  const top = values.top === undefined ? 20 : _parseTop(values.top);
  const source = path ?? await findDataDir(undefined);
  const progress = createProgress("inspect");
  let result;
  try {
    result = await discloseSource(source, {
      decrypt: await ageKeysFromFlags(values),
      onProgress: (done, total) => progress.update(done, total),
    });
  } finally {
    progress.done();
  }
  for (const warning of result.warnings) console.error(`warning: ${warning}`);
  console.log(
    values.json ? formatDisclosure(result.report).trimEnd() : formatDisclosureText(result.report, {
      top,
    }),
  );
  return 0;
}

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
