/**
 * The export pipeline: scan the data dir, select the blocks and head parts that hold the window,
 * open the selected files before their bytes are needed (so compaction or WAL truncation cannot
 * pull a file away mid-copy: an open file stays readable after Prometheus deletes it, and a file
 * that vanished before it was opened makes the selection start over), then stream them into an
 * archive. Never writes inside the data dir.
 *
 * @module
 */

import {
  ARCHIVE_FORMAT,
  ARCHIVE_FORMAT_VERSION,
  DATA_PREFIX,
  DISCLOSURE_PATH,
  type Manifest,
} from "./archive/manifest.ts";
import {
  disclosePlan,
  discloseShipped,
  type DisclosureResult,
  formatDisclosure,
  type PendingDisclosure,
} from "./disclosure.ts";
import { type Compression, COMPRESSION_SUFFIX } from "./archive/compression.ts";
import { AGE_SUFFIX, type AgeEncryption } from "./archive/age.ts";
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
import type { LeadIn } from "./leadin.ts";
import {
  BlockReader,
  type BlockWriterOptions,
  type ChunkSegment,
  type WrittenBlock,
} from "./tsdb/block.ts";
import {
  blockSource,
  minPrometheusVersion,
  UnknownChunkEncodingError,
  type WindowBlockResult,
  writeWindowBlock,
} from "./tsdb/compact.ts";
import { type FileScanner, RawContentScan, rawMinPrometheusVersion } from "./tsdb/raw_scan.ts";
import { HeadReplay, type HeadReplayLimits, type HeadReplayStats } from "./tsdb/head.ts";
import type { Label } from "./tsdb/index.ts";
import type { SeriesSource } from "./tsdb/series.ts";
import type { SegmentRef } from "./tsdb/wlog.ts";
import { describeError, PromcaseError } from "./errors.ts";
import { PIECE_SIZE, readExactly, splitPath } from "./fileio.ts";
import { onInterrupt, withTempDirUntilDone } from "./interrupt.ts";
import { diskFullReason, isDiskFull, requireFreeSpace } from "./diskspace.ts";
import { formatBytes } from "./bytesize.ts";
import type { Throttle } from "./throttle.ts";
import type { Pseudonymizer } from "./pseudonym.ts";
import { pseudonymizeSeries } from "./pseudonym_series.ts";
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
  /** The incident window. */
  window: IncidentWindow;
  /**
   * What is read and shipped: the window with the lead-in before it (the same as the window
   * without one). Blocks and head are selected, and the rewrite cut, by this range.
   */
  shipped: TimeWindow;
  /** Blocks that overlap the shipped range, oldest first. */
  blocks: BlockInfo[];
  /** Blocks wholly outside the shipped range. */
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
 * Picks the blocks that overlap the window and its lead-in of `leadInMs` before it (leaving out
 * blocks already merged into a newer compacted block that is also present, as happens between a
 * compaction's rename and its delete), and the head when that range reaches past the newest block.
 */
export function planExport(
  info: DataDirInfo,
  window: IncidentWindow,
  leadInMs: bigint = 0n,
): ExportPlan {
  if (leadInMs < 0n) throw new RangeError(`the lead-in cannot be negative (${leadInMs} ms)`);
  const shipped: TimeWindow = { from: window.from - leadInMs, to: window.to };
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
  const blocks = live.filter((b) => overlapsWindow(b.meta.minTime, b.meta.maxTime, shipped));
  const skippedBlocks = live.filter((b) => !blocks.includes(b));
  const head = _planHead(info, shipped);
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
    shipped,
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
      ? info.blocks.length === 0
        ? "the data dir has no blocks: all its data is in the head"
        : "no block bounds the head (only out-of-order or stale-series blocks)"
      : `the window reaches past the newest block's end (${formatTime(minValid)}) into the head`,
    files,
  };
}

/** What an export is expected to write, from its plan (see {@link estimateExport}). */
export interface ExportEstimate {
  /** The archive. */
  archiveBytes: number;
  /**
   * Disk for the block built beside it while it is archived and the head replay's temporary files
   * (rewrite only; 0 for raw).
   */
  stagingBytes: number;
}

// Expected archive bytes per data byte: TSDB chunks compress little, indexes about 2x (measured
// 1.32x for gzip -6 and zstd -3 on whole data dirs); rounded up so that estimates err high.
const _COMPRESSED: Record<Compression, number> = { none: 1, gzip: 0.8, zstd: 0.8 };
// Block bytes per WAL byte: a WAL sample takes about 10 bytes, an XOR-encoded one 1-2.
const _WAL_TO_BLOCK = 0.3;
/**
 * The head replay's shard files and sorted runs at their peak, per byte of WAL: the shard files
 * hold the samples uncompressed (about the size of an uncompressed WAL; twice a compressed one's).
 * The head chunks take twice their size besides (a copy, then the shards).
 */
const _WAL_TO_HEAD_SPILL = 2;

/**
 * Estimates the archive an export of `plan` writes: raw ships the selected files; the rewrite
 * ships each block's share of the window (chunks are spread evenly over a block's range) and the
 * head's samples, which chunks encode in about a third of the WAL's bytes.
 */
export function estimateExport(
  plan: ExportPlan,
  mode: "rewrite" | "raw",
  compression: Compression,
): ExportEstimate {
  const tar = (files: number) => 1536 * (files + 16);
  if (mode === "raw") {
    return {
      archiveBytes: Math.ceil(plan.bytes * _COMPRESSED[compression]) + tar(plan.files.length),
      stagingBytes: 0,
    };
  }
  const { from, to } = plan.shipped;
  let block = 0;
  for (const b of plan.blocks) {
    const lo = b.meta.minTime > from ? b.meta.minTime : from;
    const hi = b.meta.maxTime < to + 1n ? b.meta.maxTime : to + 1n;
    const range = Number(b.meta.maxTime - b.meta.minTime);
    block += range > 0 ? b.size * Math.min(1, Math.max(0, Number(hi - lo)) / range) : b.size;
  }
  let headSpill = 0;
  if (plan.head.included) {
    let walBytes = 0;
    let headChunkBytes = 0;
    for (const f of plan.head.files) {
      if (f.path.startsWith("chunks_head/")) headChunkBytes += f.size;
      else walBytes += f.size;
    }
    block += _WAL_TO_BLOCK * walBytes;
    headSpill = _WAL_TO_HEAD_SPILL * walBytes + 2 * headChunkBytes;
  }
  const blockBytes = Math.ceil(block) + 4096;
  return {
    archiveBytes: Math.ceil(blockBytes * _COMPRESSED[compression]) + tar(4),
    stagingBytes: blockBytes + Math.ceil(headSpill),
  };
}

/** Options of {@link exportArchive}. */
export interface ExportOptions {
  /** The Prometheus data dir. */
  dataDir: string;
  /** The window to export. */
  window: IncidentWindow;
  /**
   * Data shipped before the window (see `leadin.ts`), with why, for the manifest. Default none:
   * exactly the window (the CLI passes 15 minutes or more).
   */
  leadIn?: LeadIn;
  /** Archive path; default {@link defaultArchiveName} in the current directory. */
  output?: string;
  /** Compression of the archive. */
  compression: Compression;
  /** Only plan, write nothing. */
  dryRun?: boolean;
  /**
   * "rewrite" (default): one new block holding exactly the window's samples, the head replayed
   * into it. "raw": the selected blocks and head files copied as they are.
   */
  mode?: "rewrite" | "raw";
  /**
   * Rewrite only: copy chunks with start timestamps (XOR2, histograms with ST) in their own
   * encodings, which only Prometheus 3.11 (XOR2) and 3.14 (histograms) read. Default: write every
   * chunk in the oldest encoding that holds its samples (start timestamps dropped), which 2.42
   * reads.
   */
  keepEncodings?: boolean;
  /** Series to ship (rewrite only; default all), with the selectors for the manifest. */
  selection?: { keep: (labels: readonly Label[]) => boolean; match: string[]; exclude: string[] };
  /** Where the rewrite builds its block before archiving (default: the output's directory). */
  tmpDir?: string;
  /** The head replay's internal limits (shard sizes, buffers, budgets); tests turn them down. */
  headLimits?: HeadReplayLimits;
  /**
   * Chunk segment size of the rewrite's block (default {@link REWRITE_SEGMENT_BYTES}); tests turn
   * it down so that segments are archived while later ones are written.
   */
  chunkSegmentBytes?: number;
  /** Progress of the rewrite: what it is doing. */
  onStatus?: (text: string) => void;
  /** Caps the rate at which the data dir is read. */
  throttle?: Throttle;
  /** Refuse (before writing anything) when the estimated archive is larger. */
  maxBytes?: number;
  /** Write the archive as numbered parts of at most this many bytes. */
  split?: number;
  /** Encrypt the archive with age (see `archive/age.ts`); the default name then ends in `.age`. */
  encrypt?: AgeEncryption;
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
  /**
   * How many block files the raw copy holds open ahead of the one it copies (default 512; the
   * head's files are all opened at once). Bounds the descriptors and their memory with thousands of
   * blocks; a block file that vanishes before it is opened makes the export start over.
   */
  openFiles?: number;
  /**
   * Pseudonymize label values, drop labels (rewrite only; see `pseudonym.ts`): series, context
   * files, the manifest and the host name are mapped. The caller saves the mapping table.
   */
  pseudonymizer?: Pseudonymizer;
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
  /** What the rewrite did (null for raw exports and dry runs). */
  rewrite: RewriteSummary | null;
  /** What the plan was expected to write. */
  estimate: ExportEstimate;
  /**
   * The disclosure report (with its counting's warnings): on a dry run, of what the plan would
   * ship; otherwise the one stored in the archive (`disclosure.json`).
   */
  disclosure: DisclosureResult;
}

/** What a rewrite export did, as stored in the manifest. */
export interface RewriteSummary {
  /** The blocks whose data was read. */
  sourceBlocks: string[];
  /** The head replay's counters, or null when the head was not needed. */
  head: HeadReplayStats | null;
  /**
   * Chunks copied byte for byte, re-encoded, and left out; `converted`: of the re-encoded ones,
   * those rewritten from an encoding with start timestamps into the oldest one holding their
   * samples.
   */
  chunks: { copied: number; recoded: number; dropped: number; converted?: number };
  /** Series written. */
  series: number;
  /** Samples written. */
  samples: number;
  /** Series left out by --match/--exclude. */
  seriesExcluded: number;
}

/** How often the selection may start over before the export gives up. */
const _MAX_ATTEMPTS = 5;

/** Default of {@link ExportOptions.openFiles}. */
const _OPEN_FILES = 512;

/**
 * Compression workers of the raw copy. Its own work (reading, hashing, tarring) leaves the calling
 * thread mostly free, so two workers compress in the background while it copies: on the 200k-series
 * head (414 MiB) 3.6 s where one worker helped by the calling thread took 4.1 s, for 20 MiB more.
 */
const _RAW_COMPRESSION_WORKERS = 2;

/** Exports the window of a data dir into an archive (or only plans it, with `dryRun`). */
export async function exportArchive(options: ExportOptions): Promise<ExportResult> {
  if (options.pseudonymizer && options.mode === "raw") {
    throw new PromcaseError("--pseudonymize and --drop-label need the rewrite: not with --raw");
  }
  // The host name is pseudonymized too: it names the archive and stands in the manifest.
  const host = options.pseudonymizer
    ? options.pseudonymizer.pseudonym(options.host ?? _hostname())
    : options.host ?? _hostname();
  const output = options.output ??
    defaultArchiveName(host, options.window, options.compression, options.encrypt !== undefined);
  let restarts = 0;
  for (let attempt = 1;; attempt++) {
    const info = await scanDataDir(options.dataDir);
    const plan = planExport(info, options.window, options.leadIn?.ms ?? 0n);
    _requireData(plan);
    const mode = options.mode ?? "rewrite";
    const estimate = estimateExport(plan, mode, options.compression);
    if (options.maxBytes !== undefined && estimate.archiveBytes > options.maxBytes) {
      throw new PromcaseError(
        `the archive would be about ${formatBytes(estimate.archiveBytes)}, more than ` +
          `--max-size ${formatBytes(options.maxBytes)}: narrow the window, or ship fewer series ` +
          `with --match/--exclude (see promcase inspect --series)`,
      );
    }
    if (options.dryRun) {
      const disclosure = await disclosePlan(plan, {
        keep: options.selection?.keep,
        // The rewrite ships the block series with a chunk in the range; raw whole blocks.
        chunkWindow: mode === "rewrite" ? plan.shipped : undefined,
        context: Object.values(options.context ?? {}).flatMap((c) => c.files),
      });
      return {
        plan,
        archive: null,
        output,
        manifest: null,
        restarts,
        rewrite: null,
        estimate,
        disclosure,
      };
    }
    await options.beforeOpen?.(plan);
    if (mode === "rewrite") {
      const parent = options.tmpDir ?? splitPath(output).dir;
      await requireFreeSpace(parent, estimate.stagingBytes, "the block built beside the archive");
      const done = await _rewriteArchive(plan, output, host, options, estimate.archiveBytes);
      if (done) return { plan, output, restarts, estimate, ...done };
      if (attempt === _MAX_ATTEMPTS) {
        throw new PromcaseError(
          `the data dir kept changing under the export (${attempt} attempts): try again`,
        );
      }
      restarts++;
      continue;
    }
    const done = await _writeArchive(plan, output, host, options);
    if (done) return { plan, output, restarts, rewrite: null, estimate, ...done };
    if (attempt === _MAX_ATTEMPTS) {
      throw new PromcaseError(
        `the data dir kept changing under the export (${attempt} attempts): try again`,
      );
    }
    restarts++;
  }
}

/** The default archive name: host, incident time and window length, e.g. `promcase-db1-20261125T1030Z-24h.tar.gz`. */
export function defaultArchiveName(
  host: string,
  window: IncidentWindow,
  compression: Compression,
  encrypted = false,
): string {
  const safeHost = host.replace(/[^A-Za-z0-9._-]+/g, "_") || "host";
  return `promcase-${safeHost}-${formatCompactTime(window.at)}-${
    formatDuration(window.to - window.from)
  }${COMPRESSION_SUFFIX[compression]}${encrypted ? AGE_SUFFIX : ""}`;
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
    `no data in the window ${formatTime(plan.window.from)} to ${formatTime(plan.window.to)}` +
      `${_leadInNote(plan.window.from - plan.shipped.from)}: ` +
      `${range}; ${plan.head.reason}`,
  );
}

/** The raw copy's files, opened ahead of it (see {@link _openAll}). */
interface _OpenFiles {
  /**
   * The handle of file `index` of the plan, which the caller closes; the block files up to `limit`
   * after it are opened first. Null when one of them had vanished or shrunk.
   */
  take(index: number): Promise<Deno.FsFile | null>;
  /** Closes every handle not taken. */
  close(): void;
}

/**
 * Opens the plan's files before the copy needs them: the head's (a WAL truncation may delete them
 * at any moment) and the first `limit` block files at once, then each further block file while the
 * copy is `limit` files before it. Null when a file has vanished or shrunk since the scan (the
 * selection must start over).
 */
async function _openAll(
  root: string,
  plan: ExportPlan,
  limit: number,
): Promise<_OpenFiles | null> {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new RangeError(`openFiles must be a positive integer, not ${limit}`);
  }
  const { files } = plan;
  const headStart = files.length - plan.head.files.length;
  const handles = new Map<number, Deno.FsFile>();
  let ahead = 0;
  const open = async (index: number): Promise<boolean> => {
    const info = files[index];
    try {
      const handle = await Deno.open(`${root}/${info.path}`, { read: true });
      handles.set(index, handle);
      return (await handle.stat()).size >= info.size;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return false;
      throw new PromcaseError(`cannot read ${info.path}: ${describeError(err)}`);
    }
  };
  const openUpTo = async (end: number): Promise<boolean> => {
    for (; ahead < Math.min(end, headStart); ahead++) if (!(await open(ahead))) return false;
    return true;
  };
  const close = () => {
    for (const handle of handles.values()) handle.close();
    handles.clear();
  };
  let complete = false;
  try {
    for (let index = headStart; index < files.length; index++) {
      if (!(await open(index))) return null;
    }
    if (!(await openUpTo(limit))) return null;
    complete = true;
  } finally {
    if (!complete) close();
  }
  return {
    async take(index) {
      if (!(await openUpTo(index + limit))) return null;
      const handle = handles.get(index)!;
      handles.delete(index);
      return handle;
    },
    close,
  };
}

/** Copies the plan's files into the archive; null when one vanished before it was opened. */
async function _writeArchive(
  plan: ExportPlan,
  output: string,
  host: string,
  options: ExportOptions,
): Promise<{ archive: WrittenArchive; manifest: Manifest; disclosure: DisclosureResult } | null> {
  const opened = await _openAll(plan.dataDir.path, plan, options.openFiles ?? _OPEN_FILES);
  if (opened === null) return null;
  try {
    // What is copied: the blocks whole, the head's series records (see disclosure.ts), read
    // now, while the plan's files are there (Prometheus may truncate the WAL or delete blocks
    // during the copy, which holds them open); one gone already: planned again, as above.
    let pending: PendingDisclosure;
    try {
      pending = await discloseShipped({ plan });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
    const writer = await ArchiveWriter.create(output, options.compression, {
      split: options.split,
      encrypt: options.encrypt,
      // Tar headers and padding on top of the data: at most 1.5 KiB a file.
      estimatedBytes: plan.bytes + 1536 * (plan.files.length + 16),
      compressor: { workers: _RAW_COMPRESSION_WORKERS },
    });
    writer.backgroundCompression = true;
    const release = onInterrupt(() => writer.abort());
    try {
      const addParents = _parentAdder(writer);
      if (plan.head.included) {
        // Prometheus expects these even when empty.
        await addParents(`${DATA_PREFIX}wal/x`);
        await addParents(`${DATA_PREFIX}chunks_head/x`);
      }
      // The chunk encodings and WAL record types are read from the bytes as they are copied.
      const scan = new RawContentScan();
      let buffer: Uint8Array | undefined;
      let done = 0;
      for (const [index, info] of plan.files.entries()) {
        const handle = await opened.take(index);
        if (handle === null) {
          await writer.abort();
          return null;
        }
        const path = DATA_PREFIX + info.path;
        const mtime = Math.floor(info.mtime / 1000);
        const onRead = async (bytes: number) => {
          await options.throttle?.take(bytes);
          done += bytes;
          options.onProgress?.(done, plan.bytes, info.path);
        };
        const scanner = scan.scanner(info.path);
        try {
          await addParents(path);
          if (scanner) {
            buffer ??= new Uint8Array(PIECE_SIZE);
            await writer.addFile(
              path,
              info.size,
              _readScanned(handle, info.size, buffer, info.path, onRead, scanner),
              mtime,
            );
          } else {
            await writer.addFileFrom(path, handle, info.size, { mtime, onRead });
          }
        } finally {
          handle.close();
        }
      }
      const manifest = await _manifest(plan, host, options.compression, options.leadIn);
      manifest.mode = "raw";
      const needs = rawMinPrometheusVersion(scan.contents);
      manifest.minPrometheusVersion = needs.version;
      manifest.warnings = [...manifest.warnings, ...needs.warnings];
      return await _finishArchive(writer, manifest, options, addParents, pending);
    } catch (err) {
      await writer.abort();
      throw err;
    } finally {
      release();
    }
  } finally {
    opened.close();
  }
}

/**
 * Yields exactly `size` bytes of `file` in `buffer` (each piece valid until the next is asked
 * for), after `scanner` has seen them.
 */
async function* _readScanned(
  file: Deno.FsFile,
  size: number,
  buffer: Uint8Array,
  label: string,
  onRead: (bytes: number) => Promise<void>,
  scanner: FileScanner,
): AsyncGenerator<Uint8Array> {
  for await (const piece of readExactly(file, size, label, { buffer, onRead })) {
    scanner.push(piece);
    yield piece;
  }
  scanner.end();
}

/**
 * Adds the context files and the disclosure report (its context part from the files as written),
 * completes the manifest and finishes the archive.
 */
async function _finishArchive(
  writer: ArchiveWriter,
  manifest: Omit<Manifest, "files">,
  options: Pick<ExportOptions, "context" | "pseudonymizer">,
  addParents: (path: string) => Promise<void>,
  pending: PendingDisclosure,
): Promise<{ archive: WrittenArchive; manifest: Manifest; disclosure: DisclosureResult }> {
  const mtime = Math.floor(Date.now() / 1000);
  const contexts = Object.values(options.context ?? {});
  const pz = options.pseudonymizer;
  // The context was registered before the series were mapped (preparePseudonyms).
  for (const file of contexts.flatMap((c) => c.files)) {
    const path = pz ? pz.mapText(file.path) : file.path;
    const text = pz ? pz.mapContextText(file.text) : file.text;
    await addParents(path);
    await writer.addBytes(path, new TextEncoder().encode(text), mtime);
    // What is written, pseudonyms and all, is what the report may show.
    pending.addContext(path, text);
  }
  const disclosure = pending.finish();
  const report = formatDisclosure(disclosure.report);
  await writer.addBytes(
    DISCLOSURE_PATH,
    // A safety net: the report is built from mapped data, yet any original is mapped here too.
    new TextEncoder().encode(pz ? pz.mapContextText(report) : report),
    mtime,
  );
  manifest.disclosure = {
    path: DISCLOSURE_PATH,
    series: disclosure.report.series,
    totals: disclosure.report.totals,
  };
  manifest.warnings = [...manifest.warnings, ...disclosure.warnings.map((w) => `disclosure: ${w}`)];
  if (options.context) {
    manifest.context = Object.fromEntries(
      Object.entries(options.context).map(([source, c]) => [source, c.summary]),
    );
    manifest.warnings = [...manifest.warnings, ...contexts.flatMap((c) => c.warnings)];
  }
  if (pz) {
    // Selectors, the data dir's path, URLs and warnings may name originals.
    Object.assign(manifest, pz.mapJson(manifest));
    manifest.pseudonymized = pz.manifestInfo();
    // The last value is mapped: the table takes them all, or the archive is not finished.
    await pz.commitTable();
  }
  const archive = await writer.finish(manifest);
  return { archive, manifest: { ...manifest, files: writer.files }, disclosure };
}

/**
 * Readies pseudonymization in an export's staging dir, before any series is mapped: the journal of
 * values spills there, and the values of chosen labels that only the context names (a target that
 * is down, a dashboard variable) are registered first, so that they are mapped wherever they stand,
 * in series labels too.
 */
export function preparePseudonyms(
  pz: Pseudonymizer,
  staging: string,
  context: Record<string, ContextCapture> | undefined,
): void {
  pz.useSpillDir(staging);
  for (const file of Object.values(context ?? {}).flatMap((c) => c.files)) {
    try {
      pz.registerJson(JSON.parse(file.text));
    } catch { /* not JSON: mapped as text */ }
  }
}

/** A writer's `addParents`: adds each parent directory entry of a path once. */
function _parentAdder(writer: ArchiveWriter): (path: string) => Promise<void> {
  const dirs = new Set<string>();
  return async (path: string) => {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      if (!dirs.has(dir)) {
        dirs.add(dir);
        await writer.addDirectory(dir);
      }
    }
  };
}

/**
 * The rewrite: reads the selected blocks and replays the head into one new block that holds
 * exactly the window (built in a temporary dir beside the output, never in the data dir), then
 * archives that block. Null when a file vanished before it was opened (start over).
 */
async function _rewriteArchive(
  plan: ExportPlan,
  output: string,
  host: string,
  options: ExportOptions,
  archiveBytes: number,
): Promise<
  {
    archive: WrittenArchive;
    manifest: Manifest;
    rewrite: RewriteSummary;
    disclosure: DisclosureResult;
  } | null
> {
  const parent = options.tmpDir ?? splitPath(output).dir;
  return await withTempDirUntilDone(parent, ".promcase-export-", async (staging, signal) => {
    if (options.pseudonymizer) preparePseudonyms(options.pseudonymizer, staging, options.context);
    // The lead-in is read and written like the window: the block starts at the shipped range.
    const window = plan.shipped;
    const root = plan.dataDir.path;
    const readers: BlockReader[] = [];
    let head: HeadReplay | null = null;
    let archive: BlockArchive | null = null;
    try {
      try {
        for (const block of plan.blocks) {
          readers.push(await BlockReader.open(`${root}/${block.ulid}`));
        }
        if (plan.head.included) {
          options.onStatus?.("replaying the head (WAL)");
          head = await HeadReplay.replay({
            wal: _segments(root, [...plan.dataDir.head.checkpoint?.files ?? []])
              .concat(_segments(root, plan.dataDir.head.walSegments)),
            wbl: _segments(root, plan.dataDir.head.wbl),
            headChunksDir: `${root}/chunks_head`,
            minValidTime: headMinValidTime(plan.dataDir),
            from: window.from,
            to: window.to,
            tmpDir: staging,
            pace: _pace(options.throttle),
            signal,
            onProgress: (n) => options.onStatus?.(`replaying the head: ${n} records`),
            ...options.headLimits,
          });
        }
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) return null;
        if (isDiskFull(err)) throw _stagingFull(err, staging);
        if (signal.aborted) throw err;
        // Name the file, relative to the data dir, where the OS error tells it.
        const path = /'([^']+)'/.exec(err instanceof Error ? err.message : "")?.[1];
        const name = path?.startsWith(`${root}/`) ? path.slice(root.length + 1) : "the data dir";
        throw new PromcaseError(`cannot read ${name}: ${describeError(err)}`);
      }
      const sources: SeriesSource[] = readers.map((r) =>
        blockSource(r, window.from, window.to, _pace(options.throttle))
      );
      if (head) sources.push(head.series());
      let written;
      let excludedBefore = 0;
      archive = await BlockArchive.create(output, options, archiveBytes);
      try {
        const pseudonymized = await pseudonymizeSeries(options.pseudonymizer, sources, staging, {
          keep: options.selection?.keep,
          signal,
          onStatus: options.onStatus,
        });
        excludedBefore = pseudonymized.excluded;
        written = await writeWindowBlock(staging, pseudonymized.sources, {
          from: window.from,
          to: window.to,
          keep: pseudonymized.keep,
          keepEncodings: options.keepEncodings,
          block: archive.blockOptions(options.chunkSegmentBytes),
          signal,
          onSeries: (n) => {
            if (n % 1000 === 0) options.onStatus?.(`writing the block: ${n} series`);
          },
        });
      } catch (err) {
        if (err instanceof UnknownChunkEncodingError) {
          // The block being built is removed with the staging dir: nothing is written.
          throw new PromcaseError(
            `cannot rewrite: ${err.message}; nothing was written (--raw ships the blocks as they ` +
              `are)`,
          );
        }
        throw isDiskFull(err) ? _stagingFull(err, staging) : err;
      }
      const headStats = head?.stats ?? null;
      for (const r of readers.splice(0)) r.close();
      await head?.close();
      head = null;
      const block = written.block;
      if (!block) {
        throw new PromcaseError(
          `no samples in the window ${formatTime(plan.window.from)} to ` +
            `${formatTime(plan.window.to)}` + _leadInNote(plan.window.from - window.from) +
            (options.selection ? " for the selected series" : ""),
        );
      }
      const rewrite: RewriteSummary = {
        sourceBlocks: plan.blocks.map((b) => b.ulid),
        head: headStats,
        chunks: written.chunks,
        series: block.stats.numSeries,
        samples: block.stats.numSamples,
        seriesExcluded: written.seriesExcluded + excludedBefore,
      };
      options.onStatus?.("writing the archive");
      signal.throwIfAborted();
      const manifest = await _manifest(plan, host, options.compression, options.leadIn);
      manifest.head = {
        included: false,
        reason: plan.head.included
          ? `${plan.head.reason}: replayed into the block`
          : plan.head.reason,
        checkpoint: null,
        walSegments: [],
        chunksHead: [],
        wbl: [],
      };
      manifest.rewrite = { ...rewrite };
      const damage = headStats?.corruption;
      if (damage) {
        manifest.warnings = [
          ...manifest.warnings,
          `${damage.message}: the head's samples from there on were dropped, as Prometheus ` +
          `drops them when it repairs its WAL`,
        ];
      }
      manifest.warnings = [...manifest.warnings, ..._skippedHeadWarnings(headStats)];
      const done = await archive.finish({ ...written, block }, manifest, options);
      archive = null;
      return { ...done, rewrite };
    } finally {
      for (const r of readers) r.close();
      await head?.close();
      await archive?.abort();
    }
  });
}

/**
 * What the head replay left out because a newer Prometheus wrote it: WAL records of types
 * promcase does not know and histograms of unknown schemas. Prometheus skips both too, so the
 * served data matches the customer's; the support engineer should still know (the counts are in
 * the manifest's `rewrite.head`).
 */
function _skippedHeadWarnings(stats: HeadReplayStats | null): string[] {
  const out: string[] = [];
  const unknown = Object.entries(stats?.skippedRecords ?? {})
    .filter(([name]) => name.startsWith("unknown type "))
    .map(([name, n]) => `${name.slice("unknown type ".length)} (${n})`);
  if (unknown.length > 0) {
    out.push(
      `the WAL holds records of types promcase does not know, from a newer Prometheus: ` +
        `${unknown.join(", ")}; skipped, as Prometheus skips them`,
    );
  }
  if (stats?.droppedUnknownSchema) {
    out.push(
      `${stats.droppedUnknownSchema} histogram samples of an unknown schema were skipped, ` +
        `as Prometheus skips them`,
    );
  }
  return out;
}

/** `" (nor in its lead-in of 15m)"`, or nothing without a lead-in. */
function _leadInNote(leadInMs: bigint): string {
  return leadInMs > 0n ? ` (nor in its lead-in of ${formatDuration(leadInMs)})` : "";
}

/** The rate limit as the TSDB readers' pacing hook. */
function _pace(throttle: Throttle | undefined): ((bytes: number) => Promise<void>) | undefined {
  return throttle && ((bytes) => throttle.take(bytes));
}

/** The one-line error of a full disk while the block is built. */
function _stagingFull(err: unknown, staging: string): PromcaseError {
  return new PromcaseError(
    `disk full while writing ${staging}/: partial archive removed (${diskFullReason(err)}); ` +
      `free space there, or build the block elsewhere with --tmp-dir`,
  );
}

/** Chunk segment size of the block a rewrite writes (see {@link BlockArchive}). */
export const REWRITE_SEGMENT_BYTES = 64 * 1024 * 1024;
/**
 * Complete chunk segments a {@link BlockArchive} lets wait for their turn (each an open file)
 * before the block writer waits for the oldest.
 */
export const SEGMENTS_QUEUED = 4;

/**
 * The archive of the block a rewrite writes, begun before the block so that the two overlap: the
 * block writer hands over each chunk segment as soon as it is complete
 * ({@link BlockArchive.onChunkSegment}, its `onChunkSegment` hook), and the segment is archived
 * while the block's later series and its index are still being written, compressed on the
 * worker threads only, which the block writing leaves idle (hence the rewrite's segments of
 * {@link REWRITE_SEGMENT_BYTES}, not Prometheus' 512 MiB: each is archived as soon as it is
 * complete). {@link BlockArchive.finish} adds the rest of the block (index, tombstones, meta.json),
 * the context files and the manifest. All or nothing: on failure, or {@link BlockArchive.abort},
 * the partial archive is removed.
 *
 * Memory: segments are archived one at a time, in order, through the archive writer's one read
 * buffer; a segment waiting its turn holds an open file, no bytes, and at most
 * {@link SEGMENTS_QUEUED} wait.
 */
export class BlockArchive {
  #writer: ArchiveWriter;
  #addParents: (path: string) => Promise<void>;
  #failure: { error: unknown } | null = null;
  /** Paths in the block already archived. */
  #archived = new Set<string>();
  /**
   * The segments' archiving, one after the other, as each segment joined it (settles when that
   * segment is archived, never rejects: see #failure); the last is the whole queue's end.
   */
  #queued: Promise<void>[] = [];

  private constructor(writer: ArchiveWriter) {
    this.#writer = writer;
    this.#addParents = _parentAdder(writer);
  }

  /**
   * Starts the archive at `output` (refusing an existing one, and with `estimatedBytes` too
   * little free space, before the block is begun).
   */
  static async create(
    output: string,
    options: Pick<ExportOptions, "compression" | "split" | "encrypt">,
    estimatedBytes?: number,
  ): Promise<BlockArchive> {
    const writer = await ArchiveWriter.create(output, options.compression, {
      split: options.split,
      encrypt: options.encrypt,
      estimatedBytes,
    });
    writer.backgroundCompression = true;
    return new BlockArchive(writer);
  }

  /**
   * The block writer's `onChunkSegment`: opens the complete segment at once (the block's dir is
   * renamed at its commit) and queues it to be archived; with more than
   * {@link SEGMENTS_QUEUED} queued, waits for the oldest (the block writer waits meanwhile).
   * Throws the archive's failure, if it failed, which stops the block.
   */
  readonly onChunkSegment = async (segment: ChunkSegment): Promise<void> => {
    this.#throwIfFailed();
    const file = Deno.openSync(segment.path, { read: true });
    let stat;
    try {
      stat = file.statSync();
    } catch (e) {
      file.close();
      throw e;
    }
    this.#archived.add(segment.name);
    const path = `${DATA_PREFIX}${segment.ulid}/${segment.name}`;
    const queued = (this.#queued.at(-1) ?? Promise.resolve())
      .then(async () => {
        try {
          if (this.#failure) return;
          await this.#addParents(path);
          await this.#writer.addFileFrom(path, file, stat.size, { mtime: _mtime(stat) });
        } finally {
          file.close();
        }
      })
      .catch((error) => {
        this.#failure ??= { error };
      });
    this.#queued.push(queued);
    if (this.#queued.length > SEGMENTS_QUEUED) await this.#queued.shift();
    this.#throwIfFailed();
  };

  /**
   * The block writer's options for the block this archives: chunk segments of `segmentSize`
   * handed over as each is complete ({@link BlockArchive.onChunkSegment}), and the block
   * temporary (archived as it is written, then removed: the archive is what is synced).
   */
  blockOptions(
    segmentSize = REWRITE_SEGMENT_BYTES,
  ): Pick<BlockWriterOptions, "segmentSize" | "onChunkSegment" | "temporary"> {
    return { segmentSize, onChunkSegment: this.onChunkSegment, temporary: true };
  }

  #throwIfFailed(): void {
    if (this.#failure) throw this.#failure.error;
  }

  /**
   * Waits for the segments, then archives the rest of the block `written`, the context files,
   * the disclosure report and the manifest (completed with the mode, the oldest Prometheus that
   * can serve the block, the selectors and its meta.json), and finishes the archive.
   */
  async finish(
    written: WindowBlockResult & { block: WrittenBlock },
    manifest: Omit<Manifest, "files">,
    options: Pick<ExportOptions, "context" | "selection" | "pseudonymizer">,
  ): Promise<{ archive: WrittenArchive; manifest: Manifest; disclosure: DisclosureResult }> {
    await this.#queued.at(-1);
    this.#throwIfFailed();
    const writer = this.#writer;
    // Nothing else to do now: the calling thread compresses too.
    writer.backgroundCompression = false;
    const { block } = written;
    for (const rel of await _listFiles(block.dir)) {
      if (this.#archived.has(rel)) continue;
      const path = `${DATA_PREFIX}${block.ulid}/${rel}`;
      await this.#addParents(path);
      using file = await Deno.open(`${block.dir}/${rel}`, { read: true });
      const stat = await file.stat();
      await writer.addFileFrom(path, file, stat.size, { mtime: _mtime(stat) });
    }
    manifest.mode = "rewrite";
    manifest.minPrometheusVersion = minPrometheusVersion(written.encodings, written.customBuckets);
    if (options.selection) {
      manifest.selection = { match: options.selection.match, exclude: options.selection.exclude };
    }
    manifest.blocks = [{
      ulid: block.ulid,
      minTime: Number(block.minTime),
      maxTime: Number(block.maxTime),
      level: 1,
      meta: JSON.parse(await Deno.readTextFile(`${block.dir}/meta.json`)),
    }];
    // The block just written holds exactly the shipped series.
    const pending = await discloseShipped({
      blocks: [{ ulid: block.ulid, file: `${block.dir}/index` }],
    });
    return await _finishArchive(writer, manifest, options, this.#addParents, pending);
  }

  /** Removes the partial archive (after the block failed, or had no samples). */
  async abort(): Promise<void> {
    await this.#writer.abort();
    await this.#queued.at(-1);
  }
}

/** A file's modification time in seconds, for its tar entry (now when the OS has none). */
function _mtime(stat: Deno.FileInfo): number {
  return Math.floor((stat.mtime?.getTime() ?? Date.now()) / 1000);
}

/**
 * The manifest fields every export writes the same way: format, tool, host, source, the incident
 * window and the shipped range (the window and `leadIn` before it; none when not given).
 */
export function manifestHeader(
  host: string,
  source: Manifest["source"],
  prometheus: Manifest["prometheus"],
  window: IncidentWindow,
  compression: Compression,
  leadIn: LeadIn = { ms: 0n, reason: "none" },
): Pick<
  Manifest,
  | "format"
  | "formatVersion"
  | "tool"
  | "createdAt"
  | "host"
  | "source"
  | "prometheus"
  | "window"
  | "shipped"
  | "incident"
  | "compression"
> {
  const shippedFrom = window.from - leadIn.ms;
  return {
    format: ARCHIVE_FORMAT,
    formatVersion: ARCHIVE_FORMAT_VERSION,
    tool: { name: "promcase", version: VERSION },
    createdAt: new Date().toISOString(),
    host,
    source,
    prometheus,
    window: {
      fromMs: Number(window.from),
      toMs: Number(window.to),
      from: formatTime(window.from),
      to: formatTime(window.to),
    },
    shipped: {
      fromMs: Number(shippedFrom),
      toMs: Number(window.to),
      from: formatTime(shippedFrom),
      to: formatTime(window.to),
      leadInMs: Number(leadIn.ms),
      leadInReason: leadIn.reason,
    },
    incident: { at: formatTime(window.at), atMs: Number(window.at) },
    compression,
  };
}

async function _manifest(
  plan: ExportPlan,
  host: string,
  compression: Compression,
  leadIn: LeadIn | undefined,
): Promise<Omit<Manifest, "files">> {
  const { window, dataDir, head } = plan;
  const shipped = head.included ? dataDir.head : null;
  const names = (files: DataFile[] | undefined) =>
    (files ?? []).map((f) => f.path.slice(f.path.lastIndexOf("/") + 1));
  return {
    ...manifestHeader(
      host,
      { kind: "datadir", dataDir: dataDir.path },
      {
        version: await detectPrometheusVersion(dataDir.holders),
        running: dataDir.holders.length > 0,
      },
      window,
      compression,
      leadIn,
    ),
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

/** WAL segment refs of data-dir files, ordered by segment number. */
function _segments(root: string, files: readonly DataFile[]): SegmentRef[] {
  return files
    .map((f) => ({
      index: Number(f.path.slice(f.path.lastIndexOf("/") + 1)),
      path: `${root}/${f.path}`,
    }))
    .filter((s) => Number.isInteger(s.index))
    .sort((a, b) => a.index - b.index);
}

/** Files under `dir`, relative, `/`-separated, sorted (meta.json last: Prometheus writes it last). */
async function _listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${dir}/${prefix}`)) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await _listFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort((a, b) => (a === "meta.json" ? 1 : b === "meta.json" ? -1 : a < b ? -1 : 1));
}

function _hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown";
  }
}
