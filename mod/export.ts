/**
 * The export pipeline: scan the data dir, select the blocks and head parts that hold the window,
 * open every selected file before writing a byte (so compaction or WAL truncation cannot pull a
 * file away mid-copy: an open file stays readable after Prometheus deletes it, and a file that
 * vanished before it was opened makes the selection start over), then stream them into an archive.
 * Never writes inside the data dir.
 *
 * @module
 */

import {
  ARCHIVE_FORMAT,
  ARCHIVE_FORMAT_VERSION,
  DATA_PREFIX,
  type Manifest,
} from "./archive/manifest.ts";
import { type Compression, COMPRESSION_SUFFIX } from "./archive/compression.ts";
import { ArchiveWriter, type WrittenArchive } from "./archive/writer.ts";
import {
  type BlockInfo,
  type DataDirInfo,
  type DataFile,
  detectPrometheusVersion,
  headMinValidTime,
  scanDataDir,
} from "./datadir.ts";
import type { ContextCapture } from "./context.ts";
import { describeError, PromcaseError } from "./errors.ts";
import { readExactly } from "./fileio.ts";
import { onInterrupt } from "./interrupt.ts";
import { VERSION } from "./version.ts";
import {
  formatCompactTime,
  formatDuration,
  formatTime,
  type IncidentWindow,
  overlapsWindow,
  type TimeWindow,
} from "./window.ts";

/** What will be shipped, decided from one scan of the data dir. */
export interface ExportPlan {
  /** The scan it was made from. */
  dataDir: DataDirInfo;
  /** The window. */
  window: IncidentWindow;
  /** Blocks that overlap the window, oldest first. */
  blocks: BlockInfo[];
  /** Blocks wholly outside the window. */
  skippedBlocks: BlockInfo[];
  /** Blocks whose data a newer compacted block present beside them already holds. */
  supersededBlocks: BlockInfo[];
  /** Whether the head goes along, and why. */
  head: { included: boolean; reason: string; files: DataFile[] };
  /** Every file to ship, in archive order. */
  files: DataFile[];
  /** Their total size. */
  bytes: number;
  /** Things worth telling the support engineer. */
  warnings: string[];
}

/** How far past the newest WAL write a window may start and still get the head. */
const _HEAD_SLACK_MS = 5n * 60_000n;

/**
 * Picks the blocks that overlap the window (leaving out blocks already merged into a newer
 * compacted block that is also present, as happens between a compaction's rename and its delete),
 * and the head when the window reaches past the newest block.
 */
export function planExport(info: DataDirInfo, window: IncidentWindow): ExportPlan {
  const superseded = info.blocks.filter((block) =>
    info.blocks.some((other) =>
      other !== block && (
        other.meta.parents.includes(block.ulid) ||
        (other.meta.sources.length > block.meta.sources.length &&
          block.meta.sources.every((s) => other.meta.sources.includes(s)))
      )
    )
  );
  const live = info.blocks.filter((b) => !superseded.includes(b));
  const blocks = live.filter((b) => overlapsWindow(b.meta.minTime, b.meta.maxTime, window));
  const skippedBlocks = live.filter((b) => !blocks.includes(b));
  const head = _planHead(info, window);
  const files = [...blocks.flatMap((b) => b.files), ...head.files];
  const warnings = [...info.problems];
  if (info.tmpDirs.length > 0) {
    warnings.push(`skipped unfinished dirs Prometheus would clean up: ${info.tmpDirs.join(", ")}`);
  }
  if (info.holders.length > 0 || info.lockFile) {
    warnings.push(
      "Prometheus was running on this data dir during the export: WAL and head chunk files were " +
        "copied up to the length they had when the export started",
    );
  }
  const oldest = info.blocks[0]?.meta.minTime;
  if (oldest !== undefined && window.from < oldest) {
    warnings.push(`the window starts before the oldest data in the dir (${formatTime(oldest)})`);
  }
  return {
    dataDir: info,
    window,
    blocks,
    skippedBlocks,
    supersededBlocks: superseded,
    head,
    files,
    bytes: files.reduce((sum, f) => sum + f.size, 0),
    warnings,
  };
}

function _planHead(info: DataDirInfo, window: TimeWindow): ExportPlan["head"] {
  const { head } = info;
  // When the head was last written: the newest modification of a WAL or WBL segment.
  const writes = [...head.walSegments, ...head.wbl].map((f) => f.mtime).filter((t) => t > 0);
  const newestHeadWrite = writes.length > 0 ? BigInt(Math.max(...writes)) : null;
  const files = [
    ...(head.checkpoint?.files ?? []),
    ...head.walSegments,
    ...head.chunksHead,
    ...head.wbl,
  ];
  const minValid = headMinValidTime(info);
  if (files.length === 0) {
    return { included: false, reason: "the data dir has no head data", files: [] };
  }
  if (minValid !== null && window.to < minValid) {
    return {
      included: false,
      reason: `the window ends before the head starts (${formatTime(minValid)})`,
      files: [],
    };
  }
  if (newestHeadWrite !== null && window.from > newestHeadWrite + _HEAD_SLACK_MS) {
    return {
      included: false,
      reason: `the window starts after the head was last written (${formatTime(newestHeadWrite)})`,
      files: [],
    };
  }
  return {
    included: true,
    reason: minValid === null
      ? "the data dir has no blocks: all its data is in the head"
      : `the window reaches past the newest block's end (${formatTime(minValid)}) into the head`,
    files,
  };
}

/** Options of {@link exportArchive}. */
export interface ExportOptions {
  /** The Prometheus data dir. */
  dataDir: string;
  /** The window to export. */
  window: IncidentWindow;
  /** Archive path; default {@link defaultArchiveName} in the current directory. */
  output?: string;
  /** Compression of the archive. */
  compression: Compression;
  /** Only plan, write nothing. */
  dryRun?: boolean;
  /** Host name for the manifest and the default name. */
  host?: string;
  /** Progress callback: bytes read of the total, and the file being read. */
  onProgress?: (done: number, total: number, file: string) => void;
  /** Context documents to store beside the data (see `context.ts`), keyed by source. */
  context?: Record<string, ContextCapture>;
  /**
   * Called after each selection, before its files are opened: the moment at which a compaction
   * or WAL truncation makes the selection start over. Tests use it to stage exactly that.
   */
  beforeOpen?: (plan: ExportPlan) => Promise<void>;
}

/** What {@link exportArchive} did. */
export interface ExportResult {
  /** The plan that was carried out. */
  plan: ExportPlan;
  /** The archive, unless it was a dry run. */
  archive: WrittenArchive | null;
  /** The archive's intended path. */
  output: string;
  /** The manifest written (null on a dry run). */
  manifest: Manifest | null;
  /** How many times the selection started over because files vanished. */
  restarts: number;
}

/** How often the selection may start over before the export gives up. */
const _MAX_ATTEMPTS = 5;

/** A file opened for the copy, with its length fixed at selection time. */
interface _OpenFile {
  info: DataFile;
  handle: Deno.FsFile;
}

/** Exports the window of a data dir into an archive (or only plans it, with `dryRun`). */
export async function exportArchive(options: ExportOptions): Promise<ExportResult> {
  const host = options.host ?? _hostname();
  const output = options.output ??
    defaultArchiveName(host, options.window, options.compression);
  let restarts = 0;
  for (let attempt = 1;; attempt++) {
    const info = await scanDataDir(options.dataDir);
    const plan = planExport(info, options.window);
    _requireData(plan);
    if (options.dryRun) return { plan, archive: null, output, manifest: null, restarts };
    await options.beforeOpen?.(plan);
    const opened = await _openAll(info.path, plan.files);
    if (opened === null) {
      if (attempt === _MAX_ATTEMPTS) {
        throw new PromcaseError(
          `the data dir kept changing under the export (${attempt} attempts): try again`,
        );
      }
      restarts++;
      continue;
    }
    try {
      const { archive, manifest } = await _writeArchive(plan, opened, output, host, options);
      return { plan, archive, output, manifest, restarts };
    } finally {
      for (const file of opened) file.handle.close();
    }
  }
}

/** The default archive name: host, incident time and window length, e.g. `promcase-db1-20261125T1030Z-24h.tar.gz`. */
export function defaultArchiveName(
  host: string,
  window: IncidentWindow,
  compression: Compression,
): string {
  const safeHost = host.replace(/[^A-Za-z0-9._-]+/g, "_") || "host";
  return `promcase-${safeHost}-${formatCompactTime(window.at)}-${
    formatDuration(window.to - window.from)
  }${COMPRESSION_SUFFIX[compression]}`;
}

function _requireData(plan: ExportPlan): void {
  if (plan.blocks.length > 0 || plan.head.included) return;
  const { blocks } = plan.dataDir;
  const range = blocks.length > 0
    ? `its blocks cover ${formatTime(blocks[0].meta.minTime)} to ${
      formatTime(blocks.reduce((m, b) => (b.meta.maxTime > m ? b.meta.maxTime : m), 0n))
    }`
    : "it has no blocks";
  throw new PromcaseError(
    `no data in the window ${formatTime(plan.window.from)} to ${formatTime(plan.window.to)}: ` +
      `${range}; ${plan.head.reason}`,
  );
}

/** Opens every file; null when one has vanished (the selection must start over). */
async function _openAll(root: string, files: DataFile[]): Promise<_OpenFile[] | null> {
  const opened: _OpenFile[] = [];
  try {
    for (const info of files) {
      const handle = await Deno.open(`${root}/${info.path}`, { read: true });
      opened.push({ info, handle });
      if ((await handle.stat()).size < info.size) throw new Deno.errors.NotFound("shrank");
    }
    return opened;
  } catch (err) {
    for (const file of opened) file.handle.close();
    if (err instanceof Deno.errors.NotFound) return null;
    const path = files[opened.length]?.path ?? "";
    throw new PromcaseError(`cannot read ${path}: ${describeError(err)}`);
  }
}

async function _writeArchive(
  plan: ExportPlan,
  opened: _OpenFile[],
  output: string,
  host: string,
  options: ExportOptions,
): Promise<{ archive: WrittenArchive; manifest: Manifest }> {
  const writer = await ArchiveWriter.create(output, options.compression);
  const release = onInterrupt(() => writer.abort());
  try {
    const dirs = new Set<string>();
    const addParents = async (path: string) => {
      const parts = path.split("/");
      for (let i = 1; i < parts.length; i++) {
        const dir = parts.slice(0, i).join("/");
        if (!dirs.has(dir)) {
          dirs.add(dir);
          await writer.addDirectory(dir);
        }
      }
    };
    if (plan.head.included) {
      // Prometheus expects these even when empty.
      await addParents(`${DATA_PREFIX}wal/x`);
      await addParents(`${DATA_PREFIX}chunks_head/x`);
    }
    let done = 0;
    for (const file of opened) {
      const path = DATA_PREFIX + file.info.path;
      await addParents(path);
      const counted = async function* () {
        for await (const piece of readExactly(file.handle, file.info.size, file.info.path)) {
          done += piece.length;
          options.onProgress?.(done, plan.bytes, file.info.path);
          yield piece;
        }
      };
      await writer.addFile(path, file.info.size, counted(), Math.floor(file.info.mtime / 1000));
    }
    const mtime = Math.floor(Date.now() / 1000);
    const contexts = Object.values(options.context ?? {});
    for (const file of contexts.flatMap((c) => c.files)) {
      await addParents(file.path);
      await writer.addBytes(file.path, new TextEncoder().encode(file.text), mtime);
    }
    const manifest = await _manifest(plan, host, options.compression);
    if (options.context) {
      manifest.context = Object.fromEntries(
        Object.entries(options.context).map(([source, c]) => [source, c.summary]),
      );
      manifest.warnings = [...manifest.warnings, ...contexts.flatMap((c) => c.warnings)];
    }
    const archive = await writer.finish(manifest);
    return { archive, manifest: { ...manifest, files: writer.files } };
  } catch (err) {
    await writer.abort();
    throw err;
  } finally {
    release();
  }
}

async function _manifest(
  plan: ExportPlan,
  host: string,
  compression: Compression,
): Promise<Omit<Manifest, "files">> {
  const { window, dataDir, head } = plan;
  const shipped = head.included ? dataDir.head : null;
  const names = (files: DataFile[] | undefined) =>
    (files ?? []).map((f) => f.path.slice(f.path.lastIndexOf("/") + 1));
  return {
    format: ARCHIVE_FORMAT,
    formatVersion: ARCHIVE_FORMAT_VERSION,
    tool: { name: "promcase", version: VERSION },
    createdAt: new Date().toISOString(),
    host,
    source: { kind: "datadir", dataDir: dataDir.path },
    prometheus: {
      version: await detectPrometheusVersion(dataDir.holders),
      running: dataDir.holders.length > 0,
    },
    window: {
      fromMs: Number(window.from),
      toMs: Number(window.to),
      from: formatTime(window.from),
      to: formatTime(window.to),
    },
    incident: { at: formatTime(window.at), atMs: Number(window.at) },
    compression,
    blocks: plan.blocks.map((b) => ({
      ulid: b.ulid,
      minTime: Number(b.meta.minTime),
      maxTime: Number(b.meta.maxTime),
      level: b.meta.level,
      meta: b.meta.raw,
    })),
    head: {
      included: head.included,
      reason: head.reason,
      checkpoint: shipped?.checkpoint?.name ?? null,
      walSegments: names(shipped?.walSegments),
      chunksHead: names(shipped?.chunksHead),
      wbl: names(shipped?.wbl),
    },
    warnings: plan.warnings,
  };
}

function _hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown";
  }
}
