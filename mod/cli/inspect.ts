/**
 * `promcase inspect [DATA_DIR] [--json]`: what is in a Prometheus data dir.
 *
 * @module
 */

import { type DataDirInfo, detectPrometheusVersion, findDataDir, scanDataDir } from "../datadir.ts";
import { formatDuration, formatTime } from "../window.ts";
import { type Command, formatBytes, formatTable, parseFlags, toJson } from "./args.ts";

const _HELP = `Usage: promcase inspect [DATA_DIR] [--json]

Shows what a Prometheus data dir holds: blocks (ULID, time range in UTC, duration, compaction
level, series/samples/chunks, size, tombstones), the head (checkpoint, WAL segments, chunks_head/,
wbl/), whether a Prometheus holds the dir, leftover .tmp dirs, total size and problems found.

DATA_DIR defaults to the first of /prometheus, /var/lib/prometheus/metrics2, ./data that exists.

Options:
  --json    print the result as JSON on stdout
  -h, --help

Example:
  promcase inspect /var/lib/prometheus/metrics2
`;

/** The inspect command. */
export const inspectCommand: Command = {
  name: "inspect",
  summary: "show the blocks, head and problems of a Prometheus data dir",
  help: _HELP,
  async run(args) {
    const { values, positionals } = parseFlags("inspect", args, {
      json: { type: "boolean" },
    }, 1);
    if (values.help) {
      console.log(_HELP);
      return 0;
    }
    const info = await scanDataDir(await findDataDir(positionals[0]));
    const version = await detectPrometheusVersion(info.holders);
    if (values.json) {
      console.log(toJson(_jsonReport(info, version)));
    } else {
      console.log(_textReport(info, version));
    }
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
