/**
 * Writes an archive: a tar stream, compressed, into a temporary file next to the destination,
 * hashing every file on the way; the manifest goes last, then the file is synced and renamed into
 * place, and its `FILE.sha256` sidecar is written. A failed or abandoned write leaves nothing.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { describeError, PromcaseError, usageError } from "../errors.ts";
import { exists, hashing, randomSuffix, splitPath, writeAll } from "../fileio.ts";
import { type CompressingSink, compressInto, type Compression } from "./compression.ts";
import { formatManifest, type Manifest, MANIFEST_PATH, type ManifestFile } from "./manifest.ts";
import { TarWriter } from "./tar.ts";

/** What a finished archive is. */
export interface WrittenArchive {
  /** Final path. */
  path: string;
  /** Path of the `.sha256` sidecar. */
  sidecarPath: string;
  /** SHA-256 of the archive file. */
  sha256: string;
  /** Size of the archive file. */
  size: number;
}

/** Streams files into a new archive. Call {@link ArchiveWriter.finish} or {@link ArchiveWriter.abort}. */
export class ArchiveWriter {
  /** Files added so far, with their hashes, in archive order. */
  readonly files: ManifestFile[] = [];
  #path: string;
  #tempPath: string;
  #file: Deno.FsFile;
  #compressor: CompressingSink;
  #tar: TarWriter;
  #hash = createHash("sha256");
  #size = 0;
  #closed = false;

  private constructor(path: string, tempPath: string, file: Deno.FsFile, compression: Compression) {
    this.#path = path;
    this.#tempPath = tempPath;
    this.#file = file;
    this.#compressor = compressInto(async (chunk) => {
      this.#hash.update(chunk);
      this.#size += chunk.length;
      await writeAll(this.#file, chunk);
    }, compression);
    this.#tar = new TarWriter(this.#compressor.write);
  }

  /**
   * Starts an archive that will appear at `path`. Refuses an existing `path` (nothing is ever
   * overwritten); the bytes go to a hidden temporary file in the same directory meanwhile.
   */
  static async create(path: string, compression: Compression): Promise<ArchiveWriter> {
    for (const taken of [path, `${path}.sha256`]) {
      if (await exists(taken)) {
        throw usageError(`${taken} already exists: choose another name with -o`);
      }
    }
    const { dir, base } = splitPath(path);
    const tempPath = `${dir}/.${base}.promcase-tmp-${randomSuffix()}`;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(tempPath, { write: true, createNew: true, mode: 0o644 });
    } catch (err) {
      throw new PromcaseError(`cannot write to ${dir}: ${describeError(err)}`);
    }
    return new ArchiveWriter(path, tempPath, file, compression);
  }

  /** Bytes of compressed output written so far. */
  get bytesWritten(): number {
    return this.#size;
  }

  /** Adds a directory entry. */
  async addDirectory(path: string, mtime?: number): Promise<void> {
    await this.#guard(() => this.#tar.addDirectory(path, { mtime }));
  }

  /** Adds a file of exactly `size` bytes, hashing it on the way. */
  async addFile(
    path: string,
    size: number,
    body: AsyncIterable<Uint8Array>,
    mtime?: number,
  ): Promise<ManifestFile> {
    const hash = createHash("sha256");
    await this.#guard(() => this.#tar.addFile(path, size, hashing(body, hash), { mtime }));
    const entry = { path, size, sha256: hash.digest("hex") };
    this.files.push(entry);
    return entry;
  }

  /** Adds a file held in memory (small documents: context, the manifest's companions). */
  addBytes(path: string, bytes: Uint8Array, mtime?: number): Promise<ManifestFile> {
    return this.addFile(path, bytes.length, _once(bytes), mtime);
  }

  /**
   * Writes the manifest (with {@link ArchiveWriter.files} filled in) as the last entry, completes
   * the file, renames it into place and writes the sidecar.
   */
  async finish(manifest: Omit<Manifest, "files">): Promise<WrittenArchive> {
    const bytes = new TextEncoder().encode(formatManifest({ ...manifest, files: this.files }));
    await this.#guard(async () => {
      await this.#tar.addFile(MANIFEST_PATH, bytes.length, _once(bytes), {
        mtime: Math.floor(Date.now() / 1000),
      });
      await this.#tar.finish();
      await this.#compressor.end();
      await this.#file.sync();
    });
    this.#file.close();
    this.#closed = true;
    const sha256 = this.#hash.digest("hex");
    const { base } = splitPath(this.#path);
    const sidecarPath = `${this.#path}.sha256`;
    const sidecarTemp = `${this.#tempPath}.sha256`;
    let renamed = false;
    try {
      await Deno.writeTextFile(sidecarTemp, `${sha256}  ${base}\n`);
      if (await exists(this.#path)) {
        throw usageError(`${this.#path} appeared meanwhile: not overwritten`);
      }
      await Deno.rename(this.#tempPath, this.#path);
      renamed = true;
      await Deno.rename(sidecarTemp, sidecarPath);
    } catch (err) {
      // All or nothing: an archive without its sidecar is not left behind either.
      if (renamed) await Deno.remove(this.#path).catch(() => {});
      await this.abort();
      if (err instanceof PromcaseError) throw err;
      throw new PromcaseError(`cannot complete ${this.#path}: ${describeError(err)}`);
    }
    return { path: this.#path, sidecarPath, sha256, size: this.#size };
  }

  /** Stops and removes the temporary file. Safe to call more than once. */
  async abort(): Promise<void> {
    this.#compressor.destroy();
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#file.close();
      } catch {
        // Already closed by a failed write.
      }
    }
    for (const leftover of [this.#tempPath, `${this.#tempPath}.sha256`]) {
      await Deno.remove(leftover).catch(() => {});
    }
  }

  /** Runs a write step; any failure removes the partial output before it is reported. */
  async #guard(step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (err) {
      await this.abort();
      if (err instanceof PromcaseError) throw err;
      throw new PromcaseError(
        `writing the archive failed: ${describeError(err)}; nothing was kept`,
      );
    }
  }
}

async function* _once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}
