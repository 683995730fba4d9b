/**
 * `promcase export`: the customer-side command.
 *
 * @module
 */

import { type Compression, COMPRESSIONS } from "../archive/compression.ts";
import { findDataDir } from "../datadir.ts";
import { usageError } from "../errors.ts";
import { exportArchive, type ExportResult } from "../export.ts";
import { lowerPriority } from "../priority.ts";
import { formatDuration, formatTime, resolveWindow } from "../window.ts";
import { type Command, formatBytes, parseFlags, toJson } from "./args.ts";
import { createProgress } from "./progress.ts";

const _HELP = `Usage: promcase export [DATA_DIR] --at TIME [--before DUR] [--after DUR] [options]
       promcase export [DATA_DIR] --from TIME --to TIME [options]

Writes one checksummed archive of the data around an incident: every block that overlaps the
window, plus the head (newest checkpoint, WAL segments after it, chunks_head/, wbl/) when the window
reaches into it. Reads the data dir only (safe while Prometheus runs), runs at low CPU and I/O
priority, and writes to a temporary name that is renamed when complete, next to a FILE.sha256.

DATA_DIR defaults to the first of /prometheus, /var/lib/prometheus/metrics2, ./data that exists.

Window:
  --at TIME           incident time
  --before DUR        how much before --at (default 24h)
  --after DUR         how much after --at (default 0)
  --from TIME --to TIME   an explicit window instead of --at
  TIME: RFC 3339 (2026-11-25T10:30:00Z), Unix seconds or milliseconds, now, now-2h
  DUR:  Prometheus durations: 24h, 1d12h, 90m

Options:
  -o, --output FILE   archive path (default promcase-HOST-<at>-<length>.tar.gz here)
  --compression C     gzip (default), zstd or none
  --dry-run           show what would be shipped, write nothing
  --json              print a machine-readable summary on stdout
  -h, --help

Examples:
  promcase export /var/lib/prometheus/metrics2 --at "2026-11-25T10:30:00Z" --before 24h
  promcase export --at now-1h --before 6h --after 1h --compression zstd -o incident.tar.zst
  promcase export ./data --from 2026-11-24T00:00:00Z --to 2026-11-25T00:00:00Z --dry-run
`;

/** The export command. */
export const exportCommand: Command = {
  name: "export",
  summary: "write an archive of the data around an incident",
  help: _HELP,
  async run(args) {
    const { values, positionals } = parseFlags("export", args, {
      at: { type: "string" },
      before: { type: "string" },
      after: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      output: { type: "string", short: "o" },
      compression: { type: "string", default: "gzip" },
      "dry-run": { type: "boolean" },
      json: { type: "boolean" },
    }, 1);
    if (values.help) {
      console.log(_HELP);
      return 0;
    }
    const compression = values.compression as Compression;
    if (!COMPRESSIONS.includes(compression)) {
      throw usageError(`--compression must be one of ${COMPRESSIONS.join(", ")}`);
    }
    const window = resolveWindow(values);
    const dataDir = await findDataDir(positionals[0]);
    await lowerPriority();
    const progress = createProgress("export");
    let result: ExportResult;
    try {
      result = await exportArchive({
        dataDir,
        window,
        output: values.output,
        compression,
        dryRun: values["dry-run"],
        onProgress: (done, total, file) => progress.update(done, total, file),
      });
    } finally {
      progress.done();
    }
    for (const warning of result.plan.warnings) console.error(`warning: ${warning}`);
    console.log(values.json ? toJson(_summary(result)) : _text(result));
    return 0;
  },
};

function _summary(result: ExportResult) {
  const { plan, archive } = result;
  return {
    dryRun: archive === null,
    archive: archive?.path ?? result.output,
    sidecar: archive?.sidecarPath ?? null,
    sha256: archive?.sha256 ?? null,
    size: archive?.size ?? null,
    dataDir: plan.dataDir.path,
    window: {
      from: formatTime(plan.window.from),
      to: formatTime(plan.window.to),
      at: formatTime(plan.window.at),
    },
    blocks: plan.blocks.map((b) => b.ulid),
    skippedBlocks: plan.skippedBlocks.map((b) => b.ulid),
    head: {
      included: plan.head.included,
      reason: plan.head.reason,
      files: plan.head.files.map((f) => f.path),
    },
    files: plan.files.length,
    bytesRead: plan.bytes,
    restarts: result.restarts,
    warnings: plan.warnings,
  };
}

function _text(result: ExportResult): string {
  const { plan, archive } = result;
  const lines = [
    `Window: ${formatTime(plan.window.from)} to ${formatTime(plan.window.to)} (${
      formatDuration(plan.window.to - plan.window.from)
    })`,
    `Blocks: ${plan.blocks.length} shipped, ${plan.skippedBlocks.length} outside the window`,
  ];
  for (const block of plan.blocks) {
    lines.push(
      `  ${block.ulid}  ${formatTime(block.meta.minTime)} to ${formatTime(block.meta.maxTime)}` +
        `  level ${block.meta.level}  ${formatBytes(block.size)}`,
    );
  }
  lines.push(
    `Head: ${plan.head.included ? "shipped" : "not shipped"}: ${plan.head.reason}` +
      (plan.head.included ? ` (${plan.head.files.length} files)` : ""),
  );
  lines.push(`Data: ${plan.files.length} files, ${formatBytes(plan.bytes)}`);
  if (archive) {
    lines.push(
      `Wrote ${archive.path} (${formatBytes(archive.size)}) and ${archive.sidecarPath}`,
      `SHA-256 ${archive.sha256}`,
    );
  } else {
    lines.push(`Dry run: nothing written (would write ${result.output})`);
  }
  return lines.join("\n");
}
