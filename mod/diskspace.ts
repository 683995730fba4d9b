/**
 * Free space on the archive's file system, and telling a full disk from other write errors. Deno
 * has no statfs, so the free space comes from `df`: GNU `df -B1 --output=avail` (exact bytes)
 * where it exists, POSIX `df -Pk` (macOS, BusyBox) otherwise; where neither runs (Windows, a hung
 * network mount) the answer is "unknown" and callers go ahead without the check.
 *
 * @module
 */

import { formatBytes } from "./bytesize.ts";
import { PromcaseError } from "./errors.ts";

/** How long `df` may take: a dead network mount must not hang the export. */
const _DF_TIMEOUT_MS = 5000;

/** Bytes available to an unprivileged writer on the file system holding `path`; null if unknown. */
export async function freeBytes(path: string): Promise<number | null> {
  const gnu = await _df(["-B1", "--output=avail", "--", path]);
  if (gnu !== null) {
    const value = Number(gnu.trim().split("\n").at(-1)?.trim());
    if (Number.isSafeInteger(value) && value >= 0) return value;
  }
  const posix = await _df(["-P", "-k", "--", path]);
  if (posix === null) return null;
  // "Filesystem 1024-blocks Used Available Capacity Mounted on": the mount point may hold spaces,
  // so the available column is found as the one before the "NN%" capacity.
  const fields = posix.trim().split("\n").at(-1)?.trim().split(/\s+/) ?? [];
  const capacity = fields.findIndex((f, i) => i > 0 && /^\d+%$/.test(f));
  const kib = capacity > 0 ? Number(fields[capacity - 1]) : NaN;
  return Number.isSafeInteger(kib) && kib >= 0 ? kib * 1024 : null;
}

/**
 * Refuses (one line, both numbers) when the file system holding `dir` has fewer than
 * `neededBytes` free for `target`. Does nothing when the free space cannot be told.
 */
export async function requireFreeSpace(
  dir: string,
  neededBytes: number,
  target: string,
): Promise<void> {
  const free = await freeBytes(dir);
  if (free === null || free >= neededBytes) return;
  throw new PromcaseError(
    `not enough free space for ${target}: it needs up to ${formatBytes(neededBytes)} ` +
      `(${neededBytes} bytes) but ${dir} has ${formatBytes(free)} (${free} bytes) free`,
  );
}

/**
 * Whether a write failed because the disk (or a quota, or the file size limit) is full: ENOSPC,
 * EDQUOT or EFBIG, by error code or by the OS message Deno passes on.
 */
export function isDiskFull(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: string }).code;
  if (code === "ENOSPC" || code === "EDQUOT" || code === "EFBIG") return true;
  return /no space left on device|disk quota exceeded|file too large|os error (27|28|122)\b/i.test(
    err.message,
  );
}

/** The short reason for a full-disk error, e.g. "no space left on device". */
export function diskFullReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  if (/file too large|os error 27\b/i.test(text)) return "file too large";
  if (/quota|os error 122\b/i.test(text)) return "disk quota exceeded";
  return "no space left on device";
}

async function _df(args: string[]): Promise<string | null> {
  try {
    const output = await new Deno.Command("df", {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
      env: { LC_ALL: "C" },
      signal: AbortSignal.timeout(_DF_TIMEOUT_MS),
    }).output();
    return output.success ? new TextDecoder().decode(output.stdout) : null;
  } catch {
    return null;
  }
}
