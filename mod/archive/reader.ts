/**
 * Reads an archive in one streaming pass: hashes the archive file (or each of its parts, checked
 * against the `.sha256` sidecar as each one ends), decrypts it when it is age-encrypted (`age.ts`),
 * decompresses it, walks the tar entries, rejects
 * unsafe ones, hashes every file (optionally handing it to an extractor), and finally compares
 * everything with the manifest. `verify` and `restore`
 * are both built on {@link checkArchive}.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { describeError, PromcaseError } from "../errors.ts";
import { hashing } from "../fileio.ts";
import { type AgeKeys, decryptIfEncrypted } from "./age.ts";
import { decompress } from "./compression.ts";
import { type Manifest, MANIFEST_PATH, MAX_MANIFEST_BYTES, parseManifest } from "./manifest.ts";
import { locateArchive, PartReader } from "./parts.ts";
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
  /** SHA-256 of the archive as read (of all its parts in order, for a split archive). */
  sha256: string;
  /** Size of the archive (all parts). */
  size: number;
  /** Regular files in the archive, the manifest included. */
  files: number;
  /** Their bytes. */
  bytes: number;
  /** The sidecar comparison (of every part, for a split archive). */
  sidecar: SidecarState;
  /** The archive's name: the file, or for a split archive the name before `.partNNN`. */
  path: string;
  /** The files read: the archive, or its parts in order. */
  parts: string[];
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
  /**
   * Keys for an age-encrypted archive (see `age.ts`): it is decrypted as it is read, after the
   * sidecar's hash (which covers the file as sent). Without them an encrypted archive is refused.
   */
  decrypt?: AgeKeys;
}

/**
 * Reads and checks a whole archive: a file, or a split archive named by any of its parts (see
 * {@link locateArchive}). Problems of content (a checksum mismatch, a missing or extra file, an
 * unsafe entry, a corrupt or truncated stream, a part that differs from the sidecar) end up in
 * `problems`, or are thrown with `failFast`; an archive that cannot be opened at all is a usage
 * error, and a missing or short part is an error before anything is read.
 */
export async function checkArchive(
  path: string | string[],
  options: CheckOptions = {},
): Promise<ArchiveCheck> {
  const location = await locateArchive(path);
  const total = location.parts.reduce((sum, part) => sum + part.size, 0);
  const problems: string[] = [];
  const report = (problem: string) => {
    if (options.failFast) throw new PromcaseError(problem);
    problems.push(problem);
  };
  let sidecar: SidecarState = location.hasSidecar ? "ok" : "missing";
  // Reported after the stream's own problems, which say more; a restore stops at a bad part.
  const badParts: string[] = [];
  const reader = new PartReader(location, (part, sha256) => {
    if (part.expectedSha256 === null || part.expectedSha256 === sha256) return;
    sidecar = "mismatch";
    const problem = location.split
      ? `part ${part.path} does not match its checksum in ${location.sidecar} ` +
        "(the part is damaged or incomplete)"
      : `archive does not match its checksum file ${location.sidecar} (the file was changed)`;
    if (location.split && options.failFast) throw new _PartError(problem);
    badParts.push(problem);
  });
  const raw = async function* () {
    for await (const piece of reader.pieces()) {
      options.onProgress?.(reader.bytesRead, total);
      yield piece;
    }
  };
  const seen = new Map<string, { size: number; sha256: string }>();
  let manifestText: string | null = null;
  let files = 0;
  let bytes = 0;
  let current = "";
  try {
    const stream = _keepOpen(decompress(decryptIfEncrypted(raw(), options.decrypt)));
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
      reader.close();
      if (
        err instanceof PromcaseError && !(err instanceof _PartError) && current &&
        !err.message.includes(current)
      ) {
        throw new PromcaseError(`${err.message} (while reading ${current})`, err.exitCode);
      }
      throw err;
    }
    problems.push(current ? `${err.message} (while reading ${current})` : err.message);
    // Hash the rest anyway, so that the sidecar comparison still means something.
    try {
      for await (const _ of raw()) { /* hashing only */ }
    } catch (rest) {
      reader.close();
      throw rest;
    }
  }
  reader.close();
  const sha256 = reader.digest();
  for (const problem of badParts) report(problem);
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
  return {
    manifest,
    manifestText,
    problems,
    sha256,
    size: reader.bytesRead,
    files,
    bytes,
    sidecar,
    path: location.path,
    parts: location.parts.map((p) => p.path),
  };
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

/** A problem of a whole part, not of the entry being read when it was found. */
class _PartError extends PromcaseError {}

/** An iterable that ignores `return()`, so that the tar reader stopping does not stop the source. */
function _keepOpen(source: AsyncGenerator<Uint8Array>): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]: () => ({
      next: () => source.next(),
      return: () => Promise.resolve({ done: true, value: undefined }),
    }),
  };
}
