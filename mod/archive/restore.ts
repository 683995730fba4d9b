/**
 * Restores an archive into a new directory: extracts into a hidden sibling while verifying, and
 * renames it into place only when every check passed. A bad archive leaves no half-restored
 * directory, and nothing that exists is ever overwritten.
 *
 * @module
 */

import { describeError, PromcaseError, usageError } from "../errors.ts";
import { randomSuffix, splitPath, writeAll } from "../fileio.ts";
import { onInterrupt } from "../interrupt.ts";
import { type Manifest, MANIFEST_PATH } from "./manifest.ts";
import { checkArchive } from "./reader.ts";

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
  /** SHA-256 of the archive file. */
  sha256: string;
}

/** Options of {@link restoreArchive}. */
export interface RestoreOptions {
  /** Progress: compressed bytes read of the total. */
  onProgress?: (done: number, total: number) => void;
  /** Extra files to write into the directory once the archive checked out (e.g. a config). */
  extraFiles?: Record<string, string>;
}

/**
 * Extracts `archive` into `dir`, which must not exist or be empty. The archive's entries keep their
 * paths, so the Prometheus storage dir ends up at `dir/data`.
 */
export async function restoreArchive(
  archive: string,
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
  const release = onInterrupt(() => Deno.remove(staging, { recursive: true }));
  let files = 0;
  let bytes = 0;
  try {
    const check = await checkArchive(archive, {
      failFast: true,
      onProgress: options.onProgress,
      onDirectory: async (path) => {
        await Deno.mkdir(`${staging}/${path}`, { recursive: true });
      },
      onFile: async (path, header, body) => {
        const target = `${staging}/${path}`;
        await Deno.mkdir(splitPath(target).dir, { recursive: true });
        using file = await Deno.open(target, { write: true, createNew: true, mode: 0o644 });
        for await (const chunk of body) await writeAll(file, chunk);
        if (header.mtime > 0) await file.utime(header.mtime, header.mtime);
        files++;
        bytes += header.size;
      },
    });
    if (!check.manifest || check.manifestText === null) {
      throw new PromcaseError("archive has no manifest");
    }
    const written = { [MANIFEST_PATH]: check.manifestText, ...options.extraFiles };
    for (const [name, text] of Object.entries(written)) {
      await Deno.writeTextFile(`${staging}/${name}`, text, { createNew: true });
    }
    if (dirExists) await Deno.remove(dir); // empty, checked above; rename needs it gone
    await Deno.rename(staging, dir);
    return { dir, manifest: check.manifest, files, bytes, sha256: check.sha256 };
  } catch (err) {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    if (err instanceof PromcaseError) throw err;
    throw new PromcaseError(`restore failed: ${describeError(err)}; nothing was kept`);
  } finally {
    release();
  }
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
