/**
 * Reads an archive in one streaming pass: hashes the archive file, decompresses it, walks the tar
 * entries, rejects unsafe ones, hashes every file (optionally handing it to an extractor), and
 * finally compares everything with the manifest and the `.sha256` sidecar. `verify` and `restore`
 * are both built on {@link checkArchive}.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { describeError, PromcaseError, usageError } from "../errors.ts";
import { hashing, PIECE_SIZE } from "../fileio.ts";
import { decompress } from "./compression.ts";
import { type Manifest, MANIFEST_PATH, MAX_MANIFEST_BYTES, parseManifest } from "./manifest.ts";
import { readTar, type TarHeader } from "./tar.ts";

/** How the archive compares with its `.sha256` sidecar. */
export type SidecarState = "ok" | "missing" | "mismatch";

/** What {@link checkArchive} found. */
export interface ArchiveCheck {
  /** The manifest, when one was found and parsed. */
  manifest: Manifest | null;
  /** The manifest exactly as stored, when one was found. */
  manifestText: string | null;
  /** Everything wrong, one sentence each, naming the file concerned. Empty when all is well. */
  problems: string[];
  /** SHA-256 of the archive file as read. */
  sha256: string;
  /** Size of the archive file. */
  size: number;
  /** Regular files in the archive, the manifest included. */
  files: number;
  /** Their bytes. */
  bytes: number;
  /** The sidecar comparison. */
  sidecar: SidecarState;
}

/** Hooks and switches for {@link checkArchive}. */
export interface CheckOptions {
  /** Throw at the first problem instead of collecting them (restore uses this). */
  failFast?: boolean;
  /** Receives each safe regular file; must consume `body`. */
  onFile?: (path: string, header: TarHeader, body: AsyncIterable<Uint8Array>) => Promise<void>;
  /** Receives each safe directory entry. */
  onDirectory?: (path: string, header: TarHeader) => Promise<void>;
  /** Progress: compressed bytes read of the total. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Reads and checks a whole archive. Problems of content (a checksum mismatch, a missing or extra
 * file, an unsafe entry, a corrupt or truncated stream) end up in `problems`, or are thrown with
 * `failFast`; an archive that cannot be opened at all is a usage error.
 */
export async function checkArchive(
  path: string,
  options: CheckOptions = {},
): Promise<ArchiveCheck> {
  let file: Deno.FsFile;
  let total: number;
  try {
    file = await Deno.open(path, { read: true });
    const stat = await file.stat();
    if (!stat.isFile) {
      file.close();
      throw usageError(`${path} is not a file`);
    }
    total = stat.size;
  } catch (err) {
    if (err instanceof PromcaseError) throw err;
    throw usageError(`cannot open archive ${path}: ${describeError(err)}`);
  }
  const problems: string[] = [];
  const report = (problem: string) => {
    if (options.failFast) throw new PromcaseError(problem);
    problems.push(problem);
  };
  const archiveHash = createHash("sha256");
  let size = 0;
  const raw = async function* () {
    while (true) {
      const buffer = new Uint8Array(PIECE_SIZE);
      const n = await file.read(buffer);
      if (n === null) return;
      const piece = buffer.subarray(0, n);
      archiveHash.update(piece);
      size += n;
      options.onProgress?.(size, total);
      yield piece;
    }
  };
  const seen = new Map<string, { size: number; sha256: string }>();
  let manifestText: string | null = null;
  let files = 0;
  let bytes = 0;
  let current = "";
  try {
    const stream = _keepOpen(decompress(raw()));
    for await (const entry of readTar(stream)) {
      const { header } = entry;
      current = header.path;
      const unsafe = _unsafeReason(header);
      if (unsafe) {
        report(`unsafe entry ${JSON.stringify(header.path)}: ${unsafe}`);
        continue;
      }
      if (header.type === "directory") {
        await options.onDirectory?.(header.path, header);
        continue;
      }
      if (seen.has(header.path)) {
        report(`${header.path}: appears twice in the archive`);
        continue;
      }
      files++;
      bytes += header.size;
      if (header.path === MANIFEST_PATH) {
        if (header.size > MAX_MANIFEST_BYTES) {
          report(`${MANIFEST_PATH} is ${header.size} bytes, more than a manifest can be`);
          continue;
        }
        manifestText = new TextDecoder().decode(await _collect(entry.body, header.size));
        seen.set(header.path, { size: header.size, sha256: "" });
        continue;
      }
      const hash = createHash("sha256");
      const body = hashing(entry.body, hash);
      if (options.onFile) await options.onFile(header.path, header, body);
      else for await (const _ of body) { /* hashing only */ }
      seen.set(header.path, { size: header.size, sha256: hash.digest("hex") });
    }
    current = "";
    // Read what follows the tar end blocks too, so that the archive hash covers the whole file.
    for await (const _ of stream) { /* padding after the end blocks */ }
  } catch (err) {
    if (!(err instanceof PromcaseError) || err.exitCode !== 1 || options.failFast) {
      file.close();
      if (err instanceof PromcaseError && current && !err.message.includes(current)) {
        throw new PromcaseError(`${err.message} (while reading ${current})`, err.exitCode);
      }
      throw err;
    }
    problems.push(current ? `${err.message} (while reading ${current})` : err.message);
    // Hash the rest of the file anyway, so that the sidecar comparison still means something.
    for await (const _ of raw()) { /* hashing only */ }
  }
  file.close();
  const sha256 = archiveHash.digest("hex");
  let manifest: Manifest | null = null;
  if (manifestText === null) {
    if (problems.length === 0) report(`no ${MANIFEST_PATH} in the archive: not a promcase archive`);
  } else {
    try {
      manifest = parseManifest(manifestText);
    } catch (err) {
      report(describeError(err));
    }
  }
  if (manifest) _compareWithManifest(manifest, seen, report, problems.length > 0);
  const sidecar = await _checkSidecar(path, sha256);
  if (sidecar === "mismatch") {
    report(`archive does not match its checksum file ${path}.sha256 (the file was changed)`);
  }
  return { manifest, manifestText, problems, sha256, size, files, bytes, sidecar };
}

function _compareWithManifest(
  manifest: Manifest,
  seen: Map<string, { size: number; sha256: string }>,
  report: (problem: string) => void,
  streamBroken: boolean,
): void {
  const listed = new Set<string>();
  for (const expected of manifest.files) {
    listed.add(expected.path);
    const actual = seen.get(expected.path);
    if (!actual) {
      // After a broken stream, files past the break are missing for that reason alone.
      if (!streamBroken) {
        report(`${expected.path}: listed in the manifest but missing from the archive`);
      }
    } else if (actual.size !== expected.size) {
      report(`${expected.path}: size ${actual.size} differs from the manifest's ${expected.size}`);
    } else if (actual.sha256 !== expected.sha256) {
      report(`${expected.path}: SHA-256 does not match the manifest (content is corrupt)`);
    }
  }
  for (const path of seen.keys()) {
    if (path !== MANIFEST_PATH && !listed.has(path)) {
      report(`${path}: in the archive but not listed in the manifest`);
    }
  }
}

async function _checkSidecar(path: string, sha256: string): Promise<SidecarState> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${path}.sha256`);
  } catch {
    return "missing";
  }
  const expected = text.trim().split(/\s+/)[0]?.toLowerCase();
  return expected === sha256 ? "ok" : "mismatch";
}

/**
 * Why a tar entry must not be extracted, or null when it is safe: only plain files and
 * directories with relative paths that stay inside the target.
 */
function _unsafeReason(header: TarHeader): string | null {
  if (header.type !== "file" && header.type !== "directory") {
    return `${header.type} entries are not allowed`;
  }
  const path = header.path;
  if (path === "" || path.includes("\0")) return "empty or invalid path";
  if (path.startsWith("/") || /^[A-Za-z]:/.test(path)) return "absolute path";
  if (path.includes("\\")) return "backslash in path";
  if (path.split("/").some((part) => part === ".." || part === "." || part === "")) {
    return "path leaves or re-enters the target directory";
  }
  return null;
}

async function _collect(body: AsyncIterable<Uint8Array>, size: number): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let at = 0;
  for await (const chunk of body) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** An iterable that ignores `return()`, so that the tar reader stopping does not stop the source. */
function _keepOpen(source: AsyncGenerator<Uint8Array>): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]: () => ({
      next: () => source.next(),
      return: () => Promise.resolve({ done: true, value: undefined }),
    }),
  };
}
