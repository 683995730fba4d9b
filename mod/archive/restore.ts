/**
 * Restores an archive. {@link restoreArchive} extracts into a hidden sibling of a new directory
 * while verifying, and renames it into place only when every check passed. {@link addArchive} adds
 * an archive's blocks to a data dir that already holds data, building each block where Prometheus
 * builds its own (`<ULID>.tmp-for-creation`) and renaming the blocks in only when the whole archive
 * checked out. A bad archive leaves nothing behind, and nothing that exists is ever overwritten.
 *
 * @module
 */

import { describeError, PromcaseError, usageError } from "../errors.ts";
import { exists, randomSuffix, splitPath, writeAll } from "../fileio.ts";
import { onInterrupt } from "../interrupt.ts";
import { DATA_PREFIX, type Manifest, MANIFEST_PATH } from "./manifest.ts";
import type { AgeKeys } from "./age.ts";
import { checkArchive } from "./reader.ts";
import type { TarHeader } from "./tar.ts";

/** What {@link restoreArchive} produced. */
export interface RestoredArchive {
  /** The directory the archive was restored into. */
  dir: string;
  /** The manifest. */
  manifest: Manifest;
  /** Files written. */
  files: number;
  /** Bytes written. */
  bytes: number;
  /** SHA-256 of the archive (all parts, for a split archive). */
  sha256: string;
}

/** Options of {@link restoreArchive} and {@link addArchive}. */
export interface RestoreOptions {
  /** Progress: compressed bytes read of the total. */
  onProgress?: (done: number, total: number) => void;
  /** Extra files to write into the directory once the archive checked out (e.g. a config). */
  extraFiles?: Record<string, string>;
  /** Keys of an age-encrypted archive (decrypted as it is read; see `age.ts`). */
  decrypt?: AgeKeys;
}

/**
 * Extracts `archive` (a file, or any part(s) of a split archive) into `dir`, which must not exist
 * or be empty. The archive's entries keep their paths, so the Prometheus storage dir ends up at
 * `dir/data`.
 */
export async function restoreArchive(
  archive: string | string[],
  dir: string,
  options: RestoreOptions = {},
): Promise<RestoredArchive> {
  const dirExists = await _requireEmptyOrMissing(dir);
  const { dir: parent, base } = splitPath(dir.replace(/\/+$/, "") || "/");
  try {
    await Deno.mkdir(parent, { recursive: true });
  } catch (err) {
    throw usageError(`cannot create ${parent}: ${describeError(err)}`);
  }
  const staging = `${parent}/.${base}.promcase-restore-${randomSuffix()}`;
  try {
    await Deno.mkdir(staging);
  } catch (err) {
    throw usageError(`cannot write in ${parent}: ${describeError(err)}`);
  }
  const guard = new _Interruptible();
  const release = onInterrupt(() => guard.stop(() => Deno.remove(staging, { recursive: true })));
  let files = 0;
  let bytes = 0;
  try {
    const check = await checkArchive(archive, {
      failFast: true,
      onProgress: options.onProgress,
      decrypt: options.decrypt,
      onDirectory: (path) =>
        guard.run(async () => {
          await Deno.mkdir(`${staging}/${path}`, { recursive: true });
        }),
      onFile: (path, header, body) =>
        guard.run(async () => {
          await _writeFile(`${staging}/${path}`, header, guard.stoppable(body), false);
          files++;
          bytes += header.size;
        }),
    });
    if (!check.manifest || check.manifestText === null) {
      throw new PromcaseError("archive has no manifest");
    }
    const written = { [MANIFEST_PATH]: check.manifestText, ...options.extraFiles };
    for (const [name, text] of Object.entries(written)) {
      await Deno.writeTextFile(`${staging}/${name}`, text, { createNew: true });
    }
    await guard.run(async () => {
      if (dirExists) await Deno.remove(dir); // empty, checked above; rename needs it gone
      await Deno.rename(staging, dir);
    });
    return { dir, manifest: check.manifest, files, bytes, sha256: check.sha256 };
  } catch (err) {
    if (guard.stopped) await _untilExit();
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    if (err instanceof PromcaseError) throw err;
    throw new PromcaseError(`restore failed: ${describeError(err)}; nothing was kept`);
  } finally {
    release();
  }
}

/** What {@link addArchive} did. */
export interface AddedArchive {
  /** The data dir the blocks were added to. */
  dataDir: string;
  /** The manifest. */
  manifest: Manifest;
  /** The blocks added (their ULIDs), in archive order. */
  blocks: string[];
  /** Files written. */
  files: number;
  /** Bytes written. */
  bytes: number;
  /** SHA-256 of the archive. */
  sha256: string;
  /** Things the user should know: blocks that overlap those already there, retention. */
  warnings: string[];
}

const _ULID_RE = /^[0-9A-HJKMNP-TV-Z]{26}$/i;
// Prometheus builds blocks under this suffix and deletes such dirs when it starts, so a block left
// half-written by an interrupted promcase is cleaned up by Prometheus itself.
const _TMP_SUFFIX = ".tmp-for-creation";

/**
 * Adds the blocks of `archive` to `dataDir`, a Prometheus data dir that may already hold data.
 * Only archives that carry nothing but blocks (mode "rewrite": the head already turned into
 * blocks) are accepted; WAL, head chunks and the like are refused, since they cannot be merged
 * into another Prometheus' head. A block whose ULID is already in `dataDir` is refused before any
 * of its files is written, and nothing is ever renamed in before the whole archive checked out.
 * Everything else in the archive (manifest, context) is verified but not written.
 */
export async function addArchive(
  archive: string | string[],
  dataDir: string,
  options: Pick<RestoreOptions, "onProgress" | "decrypt"> = {},
): Promise<AddedArchive> {
  await _requireDirectory(dataDir);
  const root = dataDir.replace(/\/+$/, "") || "/";
  const staged: string[] = [];
  const renamed: string[] = [];
  // All or nothing, also when interrupted: blocks already renamed in go out again.
  const cleanup = async () => {
    for (const ulid of renamed.splice(0)) {
      await Deno.rename(`${root}/${ulid}`, `${root}/${ulid}${_TMP_SUFFIX}`).catch(() => {});
    }
    for (const ulid of staged) {
      await Deno.remove(`${root}/${ulid}${_TMP_SUFFIX}`, { recursive: true }).catch(() => {});
    }
  };
  const guard = new _Interruptible();
  const release = onInterrupt(() => guard.stop(cleanup));
  let files = 0;
  let bytes = 0;
  try {
    const stage = async (path: string): Promise<string | null> => {
      if (!path.startsWith(DATA_PREFIX)) return null; // manifest, context: checked, not written
      const [ulid, ...rest] = path.slice(DATA_PREFIX.length).split("/");
      if (!_ULID_RE.test(ulid)) {
        throw usageError(
          `the archive holds ${path}, which is not part of a block: --add only adds blocks ` +
            "(archives exported as a block rewrite); restore this one into a new dir with --into",
        );
      }
      if (!staged.includes(ulid)) {
        if (await exists(`${root}/${ulid}`)) {
          throw usageError(
            `block ${ulid} is already in ${dataDir}: this archive (or part of it) was added ` +
              "before; nothing was changed",
          );
        }
        try {
          await Deno.mkdir(`${root}/${ulid}${_TMP_SUFFIX}`);
        } catch (err) {
          if (err instanceof Deno.errors.AlreadyExists) {
            throw usageError(
              `${root}/${ulid}${_TMP_SUFFIX} exists (an unfinished block): remove it or start ` +
                "Prometheus once, which deletes it",
            );
          }
          throw usageError(`cannot write in ${dataDir}: ${describeError(err)}`);
        }
        staged.push(ulid);
      }
      return [`${root}/${ulid}${_TMP_SUFFIX}`, ...rest].join("/");
    };
    const check = await checkArchive(archive, {
      failFast: true,
      onProgress: options.onProgress,
      decrypt: options.decrypt,
      onDirectory: (path) =>
        guard.run(async () => {
          if (path === "data") return;
          const target = await stage(path);
          if (target !== null) await Deno.mkdir(target, { recursive: true });
        }),
      onFile: (path, header, body) =>
        guard.run(async () => {
          const target = await stage(path);
          if (target === null) {
            for await (const _ of guard.stoppable(body)) { /* verified, not written */ }
            return;
          }
          await _writeFile(target, header, guard.stoppable(body), true);
          files++;
          bytes += header.size;
        }),
    });
    const manifest = check.manifest;
    if (!manifest) throw new PromcaseError("archive has no manifest");
    if (manifest.mode !== "rewrite") {
      throw usageError(
        `the archive was exported as ${manifest.mode ?? "raw"} data (whole blocks and the head ` +
          "as found): --add only adds the blocks of a block-rewrite archive; restore this one " +
          "into a new dir with --into",
      );
    }
    for (const ulid of staged) {
      for (const needed of ["meta.json", "index"]) {
        if (!(await exists(`${root}/${ulid}${_TMP_SUFFIX}/${needed}`))) {
          throw new PromcaseError(`block ${ulid} in the archive has no ${needed}: not added`);
        }
      }
    }
    const warnings = await _addWarnings(root, manifest, staged);
    await _matchOwner(root, staged.map((ulid) => `${root}/${ulid}${_TMP_SUFFIX}`));
    for (const ulid of staged) {
      await guard.run(async () => {
        if (await exists(`${root}/${ulid}`)) {
          throw usageError(`block ${ulid} appeared in ${dataDir} meanwhile: nothing was changed`);
        }
        await Deno.rename(`${root}/${ulid}${_TMP_SUFFIX}`, `${root}/${ulid}`);
        renamed.push(ulid);
      });
    }
    return {
      dataDir,
      manifest,
      blocks: staged,
      files,
      bytes,
      sha256: check.sha256,
      warnings,
    };
  } catch (err) {
    if (guard.stopped) await _untilExit();
    await cleanup();
    if (err instanceof PromcaseError) throw err;
    throw new PromcaseError(`adding the archive failed: ${describeError(err)}; nothing was kept`);
  } finally {
    release();
  }
}

/**
 * Lets an interrupt (SIGINT, SIGTERM) stop an extraction cleanly: the cleanup waits for the write
 * under way to stop (a body being copied stops at its next piece), so that nothing is created
 * after the staging area was removed; after that no step runs or fails any more, since the
 * interrupt handler is about to exit with its own code and message.
 */
class _Interruptible {
  stopped = false;
  #current: Promise<unknown> = Promise.resolve();

  /** Runs one step, unless stopped (then it never settles). */
  run<T>(step: () => Promise<T>): Promise<T> {
    if (this.stopped) return _untilExit();
    const running = step();
    this.#current = running.catch(() => {});
    return running;
  }

  /** Passes `body` on, throwing at the next piece once stopped. */
  async *stoppable(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const piece of body) {
      if (this.stopped) throw new PromcaseError("interrupted");
      yield piece;
    }
  }

  /** Stops: waits for the step under way, then cleans up. */
  async stop(cleanup: () => Promise<void>): Promise<void> {
    this.stopped = true;
    await this.#current;
    await cleanup();
  }
}

/** Never settles: the interrupt handler ends the process meanwhile. */
function _untilExit(): Promise<never> {
  return new Promise(() => {});
}

/** Overlaps with the blocks already there, and the retention the added blocks need. */
async function _addWarnings(root: string, manifest: Manifest, added: string[]): Promise<string[]> {
  const warnings: string[] = [];
  const existing: { ulid: string; minTime: number; maxTime: number }[] = [];
  for await (const entry of Deno.readDir(root)) {
    if (!entry.isDirectory || !_ULID_RE.test(entry.name)) continue;
    try {
      const meta = JSON.parse(await Deno.readTextFile(`${root}/${entry.name}/meta.json`));
      existing.push({ ulid: entry.name, minTime: meta.minTime, maxTime: meta.maxTime });
    } catch {
      // Not our business: a broken block of the user's own is for Prometheus to report.
    }
  }
  const blocks = manifest.blocks.filter((b) => added.includes(b.ulid));
  const overlapping = existing.filter((e) =>
    blocks.some((b) => b.minTime < e.maxTime && e.minTime < b.maxTime)
  );
  if (overlapping.length > 0) {
    warnings.push(
      `the added blocks overlap ${overlapping.length} block(s) already there in time: ` +
        "Prometheus 2.39 and later merge them (on equal timestamps one sample wins); older " +
        "releases refuse to start without --storage.tsdb.allow-overlapping-blocks",
    );
  }
  if (blocks.length > 0) {
    const oldest = Math.min(...blocks.map((b) => b.minTime));
    const newest = Math.max(...[...blocks, ...existing].map((b) => b.maxTime));
    const days = Math.ceil((Math.max(newest, Date.now()) - oldest) / 86_400_000) + 1;
    warnings.push(
      `Prometheus deletes blocks older than its retention (15d unless set), counted from the ` +
        `newest block: serve this data dir with --storage.tsdb.retention.time=${days}d or more ` +
        "to keep the added blocks",
    );
  }
  return warnings;
}

/**
 * Run as root on a data dir owned by someone else (the `prometheus` user): give the new files to
 * that owner, so that Prometheus can compact and delete them later.
 */
async function _matchOwner(root: string, dirs: string[]): Promise<void> {
  if (Deno.build.os === "windows" || Deno.uid() !== 0) return;
  const { uid, gid } = await Deno.stat(root);
  if (uid === null || gid === null || (uid === 0 && gid === 0)) return;
  const walk = async (path: string): Promise<void> => {
    await Deno.chown(path, uid, gid);
    const stat = await Deno.lstat(path);
    if (!stat.isDirectory) return;
    for await (const entry of Deno.readDir(path)) await walk(`${path}/${entry.name}`);
  };
  for (const dir of dirs) await walk(dir);
}

async function _writeFile(
  target: string,
  header: TarHeader,
  body: AsyncIterable<Uint8Array>,
  sync: boolean,
): Promise<void> {
  await Deno.mkdir(splitPath(target).dir, { recursive: true });
  using file = await Deno.open(target, { write: true, createNew: true, mode: 0o644 });
  for await (const chunk of body) await writeAll(file, chunk);
  // Blocks added to a live data dir must be on disk before they are renamed in, as Prometheus
  // does with its own; a crash must not leave a torn block it would refuse to start with.
  if (sync) await file.syncData();
  if (header.mtime > 0) await file.utime(header.mtime, header.mtime);
}

/** Throws unless `dir` is an existing directory. */
async function _requireDirectory(dir: string): Promise<void> {
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(dir);
  } catch (err) {
    throw usageError(`cannot use data dir ${dir}: ${describeError(err)}`);
  }
  if (!stat.isDirectory) throw usageError(`${dir} is not a directory`);
}

/** Returns whether `dir` exists; throws unless it is missing or an empty directory. */
async function _requireEmptyOrMissing(dir: string): Promise<boolean> {
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(dir);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw usageError(`cannot use ${dir}: ${describeError(err)}`);
  }
  if (!stat.isDirectory) throw usageError(`${dir} exists and is not a directory`);
  for await (const _ of Deno.readDir(dir)) {
    throw usageError(
      `${dir} is not empty: restore never overwrites, give a new or empty directory`,
    );
  }
  return true;
}
