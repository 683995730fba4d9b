/**
 * What is in a Prometheus storage dir: blocks with their meta.json, the head's parts (WAL segments,
 * checkpoint, `chunks_head/`, `wbl/`), the lock, leftovers and problems. Only reads.
 *
 * @module
 */

import { describeError, PromcaseError, usageError } from "./errors.ts";
import { prometheusVersion } from "./prometheus.ts";
import { type BlockMeta, movesHeadMinValidTime, parseBlockMeta } from "./tsdb/meta.ts";

/** A file inside the data dir. */
export interface DataFile {
  /** Path relative to the data dir, `/`-separated (`01H…/chunks/000001`, `wal/00000012`). */
  path: string;
  /** Size in bytes when scanned. */
  size: number;
  /** Last modification when scanned, in ms since the epoch (0 where the OS does not tell). */
  mtime: number;
}

/** One block dir. */
export interface BlockInfo {
  /** The block's ULID (its dir name). */
  ulid: string;
  /** The parsed meta.json. */
  meta: BlockMeta;
  /** Every file of the block, meta.json first. */
  files: DataFile[];
  /** Bytes on disk. */
  size: number;
  /** Size of the `tombstones` file (9 bytes when empty; 0 when missing). */
  tombstonesSize: number;
}

/** The head's on-disk parts. */
export interface HeadInfo {
  /** WAL segments after the newest checkpoint (all segments when there is none), in order. */
  walSegments: DataFile[];
  /** WAL segments that the newest checkpoint already covers (about to be deleted by Prometheus). */
  coveredWalSegments: DataFile[];
  /** The newest checkpoint dir's name (`checkpoint.00000012`) and files, if any. */
  checkpoint: { name: string; files: DataFile[] } | null;
  /** Files in `chunks_head/`. */
  chunksHead: DataFile[];
  /** Out-of-order WAL segments in `wbl/`. */
  wbl: DataFile[];
  /** Bytes of everything above. */
  size: number;
}

/** A process that holds the data dir. */
export interface HolderProcess {
  /** Process id. */
  pid: number;
  /** Its command line. */
  command: string;
}

/** Everything `scanDataDir` found. */
export interface DataDirInfo {
  /** Absolute, resolved path of the data dir. */
  path: string;
  /** Readable blocks, sorted by minTime. */
  blocks: BlockInfo[];
  /** The head's parts. */
  head: HeadInfo;
  /** Whether the `lock` file exists (Prometheus removes it on a clean shutdown). */
  lockFile: boolean;
  /** Running Prometheus processes that use this dir, where `/proc` tells. */
  holders: HolderProcess[];
  /** Leftover `.tmp*` dirs that Prometheus would clean up and promcase skips. */
  tmpDirs: string[];
  /** Bytes of all blocks and head parts. */
  size: number;
  /** Problems found (unreadable meta.json, WAL gaps, …), one sentence each. */
  problems: string[];
}

const _ULID_RE = /^[0-9A-HJKMNP-TV-Z]{26}$/i;
const _SEGMENT_RE = /^\d{8}$/;
const _CHECKPOINT_RE = /^checkpoint\.(\d{8})$/;
const _HEAD_CHUNKS_RE = /^\d{6}$/;

/**
 * Where Prometheus usually keeps its data: the official container image, the Debian/Ubuntu
 * package, and `./data` of a binary started by hand.
 */
export const DEFAULT_DATA_DIRS = ["/prometheus", "/var/lib/prometheus/metrics2", "./data"];

/** The data dir to use: the one given, else the first usual location that exists. */
export async function findDataDir(given: string | undefined): Promise<string> {
  if (given !== undefined) return given;
  for (const candidate of DEFAULT_DATA_DIRS) {
    try {
      if ((await Deno.stat(candidate)).isDirectory) return candidate;
    } catch {
      // Not there: try the next one.
    }
  }
  throw usageError(
    `no data dir given and none found at ${
      DEFAULT_DATA_DIRS.join(", ")
    }: name the Prometheus data dir`,
  );
}

/**
 * Scans a Prometheus storage dir. Throws a usage error when the path is missing, not a directory,
 * or holds nothing Prometheus would have written.
 */
export async function scanDataDir(dir: string): Promise<DataDirInfo> {
  let path: string;
  try {
    path = await Deno.realPath(dir);
    if (!(await Deno.stat(path)).isDirectory) throw usageError(`${dir} is not a directory`);
  } catch (err) {
    if (err instanceof PromcaseError) throw err;
    throw usageError(`cannot open data dir ${dir}: ${describeError(err)}`);
  }
  const problems: string[] = [];
  const blocks: BlockInfo[] = [];
  const tmpDirs: string[] = [];
  let lockFile = false;
  let sawHeadDir = false;
  for (const entry of await _readDirSorted(path, dir)) {
    if (entry.name === "lock") lockFile = true;
    if (entry.name === "wal" || entry.name === "chunks_head") sawHeadDir = true;
    if (!entry.isDirectory) continue;
    if (/\.tmp/.test(entry.name)) {
      tmpDirs.push(entry.name);
    } else if (_ULID_RE.test(entry.name)) {
      const block = await _scanBlock(path, entry.name, problems);
      if (block) blocks.push(block);
    }
  }
  if (blocks.length === 0 && !sawHeadDir) {
    throw usageError(
      `${dir} is not a Prometheus data dir: no blocks, no wal/ and no chunks_head/ in it`,
    );
  }
  blocks.sort((a, b) => _compareBigint(a.meta.minTime, b.meta.minTime));
  const head = await _scanHead(path, problems);
  const size = blocks.reduce((sum, b) => sum + b.size, 0) + head.size;
  return {
    path,
    blocks,
    head,
    lockFile,
    holders: await _findHolders(path),
    tmpDirs,
    size,
    problems,
  };
}

/**
 * The head's minValidTime, below which Prometheus drops in-order head samples on replay: the
 * newest maxTime of the blocks that count for it (out-of-order and stale-series blocks do not,
 * see {@link movesHeadMinValidTime}); null when none does.
 */
export function headMinValidTime(info: DataDirInfo): bigint | null {
  let newest: bigint | null = null;
  for (const block of info.blocks) {
    if (!movesHeadMinValidTime(block.meta)) continue;
    if (newest === null || block.meta.maxTime > newest) newest = block.meta.maxTime;
  }
  return newest;
}

async function _scanBlock(
  root: string,
  ulid: string,
  problems: string[],
): Promise<BlockInfo | null> {
  let meta: BlockMeta;
  try {
    meta = parseBlockMeta(await Deno.readTextFile(`${root}/${ulid}/meta.json`));
  } catch (err) {
    problems.push(`block ${ulid}: cannot use meta.json: ${describeError(err)}; block skipped`);
    return null;
  }
  // A block without its index or chunks would stop the restoring Prometheus from starting: such
  // a block is reported and left out rather than shipped.
  const files: DataFile[] = [];
  let tombstonesSize = 0;
  try {
    files.push(await _fileInfo(root, `${ulid}/meta.json`), await _fileInfo(root, `${ulid}/index`));
    const chunks = await _readDirSorted(`${root}/${ulid}/chunks`, `${ulid}/chunks`);
    for (const entry of chunks) {
      if (entry.isFile) files.push(await _fileInfo(root, `${ulid}/chunks/${entry.name}`));
    }
  } catch (err) {
    problems.push(`block ${ulid}: ${describeError(err)} (index or chunks/); block skipped`);
    return null;
  }
  try {
    const tombstones = await _fileInfo(root, `${ulid}/tombstones`);
    files.push(tombstones);
    tombstonesSize = tombstones.size;
  } catch (err) {
    // A missing tombstones file means no tombstones (Prometheus' own reading).
    if (!(err instanceof Deno.errors.NotFound)) {
      problems.push(`block ${ulid}: tombstones: ${describeError(err)}; block skipped`);
      return null;
    }
  }
  return {
    ulid,
    meta,
    files,
    size: files.reduce((sum, f) => sum + f.size, 0),
    tombstonesSize,
  };
}

async function _scanHead(root: string, problems: string[]): Promise<HeadInfo> {
  const segments: DataFile[] = [];
  let checkpoint: HeadInfo["checkpoint"] = null;
  let checkpointIndex = -1;
  for (const entry of await _readDirIfExists(root, "wal", problems)) {
    const match = _CHECKPOINT_RE.exec(entry.name);
    if (entry.isFile && _SEGMENT_RE.test(entry.name)) {
      segments.push(await _fileInfo(root, `wal/${entry.name}`));
    } else if (entry.isDirectory && match && Number(match[1]) > checkpointIndex) {
      checkpointIndex = Number(match[1]);
      checkpoint = { name: entry.name, files: [] };
    }
  }
  if (checkpoint) {
    for (const entry of await _readDirIfExists(root, `wal/${checkpoint.name}`, problems)) {
      if (entry.isFile && _SEGMENT_RE.test(entry.name)) {
        checkpoint.files.push(await _fileInfo(root, `wal/${checkpoint.name}/${entry.name}`));
      }
    }
  }
  const segmentNumber = (f: DataFile) => Number(f.path.slice(-8));
  const walSegments = segments.filter((f) => segmentNumber(f) > checkpointIndex);
  const coveredWalSegments = segments.filter((f) => segmentNumber(f) <= checkpointIndex);
  _checkConsecutive(walSegments.map(segmentNumber), "wal/", problems);
  if (
    checkpoint && walSegments.length > 0 && segmentNumber(walSegments[0]) !== checkpointIndex + 1
  ) {
    problems.push(
      `wal/: ${checkpoint.name} is followed by segment ${segmentNumber(walSegments[0])}, ` +
        `not ${checkpointIndex + 1}: WAL data is missing`,
    );
  }
  const chunksHead: DataFile[] = [];
  for (const entry of await _readDirIfExists(root, "chunks_head", problems)) {
    if (entry.isFile && _HEAD_CHUNKS_RE.test(entry.name)) {
      chunksHead.push(await _fileInfo(root, `chunks_head/${entry.name}`));
    }
  }
  const wbl: DataFile[] = [];
  for (const entry of await _readDirIfExists(root, "wbl", problems)) {
    if (entry.isFile && _SEGMENT_RE.test(entry.name)) {
      wbl.push(await _fileInfo(root, `wbl/${entry.name}`));
    }
  }
  _checkConsecutive(wbl.map(segmentNumber), "wbl/", problems);
  const all = [...walSegments, ...(checkpoint?.files ?? []), ...chunksHead, ...wbl];
  return {
    walSegments,
    coveredWalSegments,
    checkpoint,
    chunksHead,
    wbl,
    size: all.reduce((sum, f) => sum + f.size, 0),
  };
}

function _checkConsecutive(numbers: number[], where: string, problems: string[]): void {
  for (let i = 1; i < numbers.length; i++) {
    if (numbers[i] !== numbers[i - 1] + 1) {
      problems.push(
        `${where}: segments ${numbers[i - 1] + 1} to ${
          numbers[i] - 1
        } are missing (gap in the WAL)`,
      );
    }
  }
}

async function _readDirIfExists(
  root: string,
  rel: string,
  problems: string[],
): Promise<Deno.DirEntry[]> {
  try {
    return await _readDirSorted(`${root}/${rel}`, rel);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) problems.push(`${rel}/: ${describeError(err)}`);
    return [];
  }
}

async function _readDirSorted(path: string, shown: string): Promise<Deno.DirEntry[]> {
  const entries: Deno.DirEntry[] = [];
  try {
    for await (const entry of Deno.readDir(path)) entries.push(entry);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw err;
    throw new PromcaseError(`cannot read ${shown}: ${describeError(err)}`);
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function _fileInfo(root: string, rel: string): Promise<DataFile> {
  const stat = await Deno.stat(`${root}/${rel}`);
  return { path: rel, size: stat.size, mtime: stat.mtime?.getTime() ?? 0 };
}

function _compareBigint(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Finds running processes that hold the data dir: those with an open file descriptor on its
 * `lock` file, or whose command line names it as `--storage.tsdb.path`. Linux only; elsewhere, or
 * without permission to look, the list is empty.
 */
async function _findHolders(path: string): Promise<HolderProcess[]> {
  if (Deno.build.os !== "linux") return [];
  const holders: HolderProcess[] = [];
  let procEntries: Deno.DirEntry[];
  try {
    procEntries = await Array.fromAsync(Deno.readDir("/proc"));
  } catch {
    return [];
  }
  for (const entry of procEntries) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    let argv: string[];
    try {
      argv = (await Deno.readTextFile(`/proc/${entry.name}/cmdline`)).split("\0").filter((a) =>
        a !== ""
      );
    } catch {
      continue;
    }
    if (argv.length === 0 || !/prometheus/i.test(argv[0].split("/").pop() ?? "")) continue;
    if (await _processUsesDir(entry.name, argv, path)) {
      holders.push({ pid: Number(entry.name), command: argv.join(" ") });
    }
  }
  return holders;
}

async function _processUsesDir(pid: string, argv: string[], path: string): Promise<boolean> {
  try {
    for await (const fd of Deno.readDir(`/proc/${pid}/fd`)) {
      const target = await Deno.readLink(`/proc/${pid}/fd/${fd.name}`).catch(() => "");
      if (target === `${path}/lock`) return true;
    }
  } catch {
    // Another user's process: fall back to its command line.
  }
  let storage = "data/";
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i].replace(/^--?/, "");
    if (arg === "storage.tsdb.path" && i + 1 < argv.length) storage = argv[i + 1];
    else if (arg.startsWith("storage.tsdb.path=")) storage = arg.slice("storage.tsdb.path=".length);
  }
  try {
    const cwd = await Deno.readLink(`/proc/${pid}/cwd`);
    const resolved = await Deno.realPath(storage.startsWith("/") ? storage : `${cwd}/${storage}`);
    return resolved === path;
  } catch {
    return false;
  }
}

/**
 * Asks a running Prometheus binary for its version (`/proc/PID/exe --version`), where the process
 * is visible. Returns null when it cannot tell.
 */
export async function detectPrometheusVersion(holders: HolderProcess[]): Promise<string | null> {
  for (const holder of holders) {
    const version = await prometheusVersion(`/proc/${holder.pid}/exe`);
    if (version) return version;
  }
  return null;
}
