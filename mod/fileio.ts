/**
 * Small streaming file helpers shared by export, verify and restore. Reads go in pieces of
 * {@link PIECE_SIZE} into fresh buffers, so a piece handed on can be kept by a compressor without
 * being overwritten by the next read.
 *
 * @module
 */

import type { Hash } from "node:crypto";
import { PromcaseError } from "./errors.ts";

/** How much is read at a time. */
export const PIECE_SIZE = 1024 * 1024;

/** Options of {@link readExactly}. */
export interface ReadExactlyOptions {
  /**
   * Read into this buffer again and again (each piece valid until the next is asked for), for a
   * consumer that is done with a piece when it asks for the next; default: a fresh buffer of
   * {@link PIECE_SIZE} per piece.
   */
  buffer?: Uint8Array;
  /** Awaited with the size of each piece read (e.g. to cap the read rate, or report progress). */
  onRead?: (bytes: number) => void | Promise<void>;
}

/**
 * Yields exactly `size` bytes from `file`'s current position. Throws when the file ends sooner,
 * which for a file being copied means it changed under the copy.
 */
export async function* readExactly(
  file: Deno.FsFile,
  size: number,
  label: string,
  options: ReadExactlyOptions = {},
): AsyncGenerator<Uint8Array> {
  let left = size;
  while (left > 0) {
    const n = Math.min(options.buffer?.length ?? PIECE_SIZE, left);
    const piece = options.buffer ? options.buffer.subarray(0, n) : new Uint8Array(n);
    let filled = 0;
    while (filled < piece.length) {
      const got = await file.read(piece.subarray(filled));
      if (got === null) {
        throw new PromcaseError(
          `${label} shrank while it was read (${size - left + filled} of ${size} bytes)`,
        );
      }
      filled += got;
    }
    left -= filled;
    await options.onRead?.(filled);
    yield piece;
  }
}

/** Yields a whole file in pieces. */
export async function* readPieces(path: string): AsyncGenerator<Uint8Array> {
  using file = await Deno.open(path, { read: true });
  while (true) {
    const buffer = new Uint8Array(PIECE_SIZE);
    const n = await file.read(buffer);
    if (n === null) return;
    yield n === buffer.length ? buffer : buffer.subarray(0, n);
  }
}

/** Writes all of `bytes`, looping over short writes. */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

/** A random suffix for temporary names, so that concurrent runs never collide. */
export function randomSuffix(): string {
  return crypto.getRandomValues(new Uint32Array(2)).reduce(
    (s, n) => s + n.toString(36).padStart(7, "0"),
    "",
  );
}

/** Whether a path exists (without following a final symlink). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Splits a path into its directory and base name, accepting both separators. */
export function splitPath(path: string): { dir: string; base: string } {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return i < 0
    ? { dir: ".", base: path }
    : { dir: path.slice(0, i) || "/", base: path.slice(i + 1) };
}

/** Passes `body` through unchanged, feeding every piece to `hash` on the way. */
export async function* hashing(
  body: AsyncIterable<Uint8Array>,
  hash: Hash,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) {
    hash.update(chunk);
    yield chunk;
  }
}
