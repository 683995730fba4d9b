/**
 * `promcase export`: the customer-side command.
 *
 * @module
 */

import { type Compression, COMPRESSIONS } from "../archive/compression.ts";
import { findDataDir } from "../datadir.ts";
import {
  captureGrafana,
  capturePrometheus,
  type ContextCapture,
  dashboardFiles,
} from "../context.ts";
import { describeError, usageError } from "../errors.ts";
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

Context (stored under context/ in the archive, secrets masked, tokens never stored):
  --prometheus-url URL      Prometheus API to capture build info, flags, config, rules, alerts,
                            targets, TSDB status and metadata from (default http://localhost:9090;
                            skipped with a warning when unreachable)
  --no-prometheus-api       do not capture from the Prometheus API
  --grafana-url URL         Grafana to save dashboards (with folders) and datasources from
  --grafana-token TOKEN     Grafana API token (prefer --grafana-token-file)
  --grafana-token-file F    file holding the Grafana API token
  --dashboard UID           only this dashboard (repeatable; default all)
  --folder NAME             only dashboards in this folder (repeatable)
  --dashboard-file FILE     add an exported dashboard JSON file (repeatable)

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
  promcase export /prometheus --at now --grafana-url http://grafana:3000 \\
    --grafana-token-file ~/.grafana-token --folder Kubernetes --dashboard-file extra.json
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
      "prometheus-url": { type: "string", default: "http://localhost:9090" },
      "no-prometheus-api": { type: "boolean" },
      "grafana-url": { type: "string" },
      "grafana-token": { type: "string" },
      "grafana-token-file": { type: "string" },
      dashboard: { type: "string", multiple: true },
      folder: { type: "string", multiple: true },
      "dashboard-file": { type: "string", multiple: true },
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
    const context = values["dry-run"] ? undefined : await _captureContext(values);
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
        context,
        onProgress: (done, total, file) => progress.update(done, total, file),
      });
    } finally {
      progress.done();
    }
    const contextWarnings = Object.values(context ?? {}).flatMap((c) => c.warnings);
    for (const warning of [...result.plan.warnings, ...contextWarnings]) {
      console.error(`warning: ${warning}`);
    }
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
    context: result.manifest?.context ?? null,
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

interface _ContextFlags {
  "prometheus-url"?: string;
  "no-prometheus-api"?: boolean;
  "grafana-url"?: string;
  "grafana-token"?: string;
  "grafana-token-file"?: string;
  dashboard?: string[];
  folder?: string[];
  "dashboard-file"?: string[];
}

/** Captures the context the flags ask for, before any archive is started. */
async function _captureContext(values: _ContextFlags): Promise<Record<string, ContextCapture>> {
  const context: Record<string, ContextCapture> = {};
  const grafanaOnly = ["grafana-token", "grafana-token-file", "dashboard", "folder"] as const;
  if (!values["grafana-url"] && grafanaOnly.some((flag) => values[flag] !== undefined)) {
    throw usageError(
      "--grafana-token, --grafana-token-file, --dashboard and --folder need --grafana-url",
    );
  }
  if (values["grafana-token"] && values["grafana-token-file"]) {
    throw usageError("give either --grafana-token or --grafana-token-file, not both");
  }
  if (!values["no-prometheus-api"]) {
    context.prometheus = await capturePrometheus(values["prometheus-url"]!);
  }
  if (values["grafana-url"]) {
    let token = values["grafana-token"];
    if (values["grafana-token-file"]) {
      try {
        token = (await Deno.readTextFile(values["grafana-token-file"])).trim();
      } catch (err) {
        throw usageError(`cannot read --grafana-token-file: ${describeError(err)}`);
      }
    }
    context.grafana = await captureGrafana(values["grafana-url"], token, {
      uids: values.dashboard,
      folders: values.folder,
    });
  }
  if (values["dashboard-file"]?.length) {
    context.dashboardFiles = await dashboardFiles(values["dashboard-file"]);
  }
  return context;
}
