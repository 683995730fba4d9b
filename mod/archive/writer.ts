/**
 * Writes an archive: a tar stream, compressed, into temporary files next to the destination
 * (one file, or numbered parts with a split size; see `parts.ts`), hashing every file on the way;
 * the manifest goes last, then the files are synced and renamed into place, and the `FILE.sha256`
 * sidecar is written. Before a byte is written the caller's size estimate is compared with the
 * free space; a full disk mid-way, a failure or an abandoned write leaves nothing.
 *
 * Memory: files copied with {@link ArchiveWriter.addFileFrom} are read through one reused buffer
 * of `readBytes`, and the compressor's buffers are fixed (see `compressor.ts`); what grows with the
 * number of files is only their manifest entries (path, size, SHA-256), which the manifest lists.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { diskFullReason, isDiskFull, requireFreeSpace } from "../diskspace.ts";
import { describeError, PromcaseError } from "../errors.ts";
import { hashing, PIECE_SIZE, readExactly, splitPath } from "../fileio.ts";
import { type AgeEncryption, encryptedSize, encryptInto } from "./age.ts";
import { type CompressingSink, compressInto, type Compression } from "./compression.ts";
import type { CompressorOptions } from "./compressor.ts";
import {
  formatManifestPieces,
  type Manifest,
  MANIFEST_PATH,
  type ManifestFile,
} from "./manifest.ts";
import { ArchiveFiles, requireUnusedArchiveName, type WrittenPart } from "./parts.ts";
import { TarWriter } from "./tar.ts";

/** What a finished archive is. */
export interface WrittenArchive {
  /**
   * The archive's name: the file, or for a split archive the name the parts add `.partNNN` to
   * (no file has this exact name then; `cat PATH.part* > PATH` makes it).
   */
  path: string;
  /** Path of the `.sha256` sidecar. */
  sidecarPath: string;
  /** SHA-256 of the whole archive (of all parts in order). */
  sha256: string;
  /** Size of the whole archive. */
  size: number;
  /** The files written, in order: the archive itself, or its parts. */
  parts: WrittenPart[];
}

/** Options of {@link ArchiveWriter.create}. */
export interface ArchiveWriterOptions {
  /**
   * Split the archive into parts `PATH.part001`, `PATH.part002`, … of at most this many bytes
   * (at least `MIN_PART_BYTES`, 1 KiB; at most `MAX_PARTS`, 999 parts). The sidecar then lists
   * every part.
   */
  split?: number;
  /**
   * An upper bound of the archive's size in bytes. When given, the free space of the output's file
   * system is checked before anything is written, and too little of it is refused with both
   * numbers. For a compressed archive the uncompressed size is a safe bound.
   */
  estimatedBytes?: number;
  /** Set to false to skip the free-space check even with `estimatedBytes` (default true). */
  freeSpaceCheck?: boolean;
  /** Tuning of the compression (level, frame and buffer sizes, worker threads). */
  compressor?: CompressorOptions;
  /** Size of the buffer {@link ArchiveWriter.addFileFrom} reads through (default 1 MiB). */
  readBytes?: number;
  /**
   * Encrypt the compressed stream with age to these recipients or this passphrase (see `age.ts`):
   * the files and the sidecar are then the ciphertext, the manifest inside lists the content.
   */
  encrypt?: AgeEncryption;
}

/** Options of {@link ArchiveWriter.addFileFrom}. */
export interface AddFileFromOptions {
  /** Modification time in seconds since the epoch. */
  mtime?: number;
  /** Called with each piece's length after it was read, before it is archived (rate limits, progress). */
  onRead?: (bytes: number) => Promise<void> | void;
}

/** Streams files into a new archive. Call {@link ArchiveWriter.finish} or {@link ArchiveWriter.abort}. */
export class ArchiveWriter {
  /** Files added so far, with their hashes, in archive order. */
  readonly files: ManifestFile[] = [];
  #path: string;
  #output: ArchiveFiles;
  #compressor: CompressingSink;
  #encryptor: CompressingSink | null;
  #tar: TarWriter;
  #readBytes: number;
  #readBuffer: Uint8Array | null = null;

  private constructor(
    path: string,
    output: ArchiveFiles,
    compression: Compression,
    options: ArchiveWriterOptions,
    encryptor: CompressingSink | null,
  ) {
    this.#path = path;
    this.#output = output;
    this.#encryptor = encryptor;
    this.#compressor = compressInto(
      encryptor?.write ?? ((chunk) => output.write(chunk)),
      compression,
      options.compressor,
    );
    this.#tar = new TarWriter(this.#compressor.write);
    this.#readBytes = options.readBytes ?? PIECE_SIZE;
  }

  /**
   * Starts an archive that will appear at `path`. Refuses an existing `path`, sidecar or part
   * (nothing is ever overwritten), and with `options.estimatedBytes` a file system with less free
   * space than that; the bytes go to hidden temporary files in the same directory meanwhile.
   */
  static async create(
    path: string,
    compression: Compression,
    options: ArchiveWriterOptions = {},
  ): Promise<ArchiveWriter> {
    await requireUnusedArchiveName(path);
    if (options.estimatedBytes !== undefined && options.freeSpaceCheck !== false) {
      const bytes = options.encrypt
        ? encryptedSize(options.estimatedBytes, options.encrypt)
        : options.estimatedBytes;
      await requireFreeSpace(splitPath(path).dir, bytes, path);
    }
    const readBytes = options.readBytes ?? PIECE_SIZE;
    if (!Number.isSafeInteger(readBytes) || readBytes < 1) {
      throw new RangeError(`readBytes must be a positive integer, not ${readBytes}`);
    }
    const output = await ArchiveFiles.create(path, options.split);
    try {
      const encryptor = options.encrypt
        ? await encryptInto((chunk) => output.write(chunk), options.encrypt)
        : null;
      return new ArchiveWriter(path, output, compression, options, encryptor);
    } catch (err) {
      await output.discard();
      throw err;
    }
  }

  /**
   * While true, the archive is compressed on worker threads only (where the compression has
   * any), so that the calling thread is free for other work meanwhile: for writing the files
   * being archived. Default false: the calling thread helps when the workers are busy.
   */
  set backgroundCompression(on: boolean) {
    this.#compressor.setBackground?.(on);
  }

  /** Bytes of compressed output written so far. */
  get bytesWritten(): number {
    return this.#output.size;
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

  /**
   * Adds `size` bytes of `file` from its current position, read through the writer's one reused
   * buffer (every piece is hashed and compressed before the next read overwrites it). Throws when
   * the file ends sooner.
   */
  addFileFrom(
    path: string,
    file: Deno.FsFile,
    size: number,
    options: AddFileFromOptions = {},
  ): Promise<ManifestFile> {
    this.#readBuffer ??= new Uint8Array(this.#readBytes);
    return this.addFile(
      path,
      size,
      readExactly(file, size, path, { buffer: this.#readBuffer, onRead: options.onRead }),
      options.mtime,
    );
  }

  /** Adds a file held in memory (small documents: context, the manifest's companions). */
  addBytes(path: string, bytes: Uint8Array, mtime?: number): Promise<ManifestFile> {
    return this.addFile(path, bytes.length, _once(bytes), mtime);
  }

  /**
   * Writes the manifest (with {@link ArchiveWriter.files} filled in) as the last entry, completes
   * the files, renames them into place and writes the sidecar.
   */
  async finish(manifest: Omit<Manifest, "files">): Promise<WrittenArchive> {
    // Encoded piece by piece, twice (its size goes first, in the tar header): with thousands of
    // files and blocks the whole text would be several MiB, twice over.
    const complete = { ...manifest, files: this.files };
    const encoder = new TextEncoder();
    let size = 0;
    for (const piece of formatManifestPieces(complete)) size += encoder.encode(piece).length;
    const encoded = async function* () {
      for (const piece of formatManifestPieces(complete)) yield encoder.encode(piece);
    };
    let done!: Awaited<ReturnType<ArchiveFiles["commit"]>>;
    await this.#guard(async () => {
      await this.#tar.addFile(MANIFEST_PATH, size, encoded(), {
        mtime: Math.floor(Date.now() / 1000),
      });
      await this.#tar.finish();
      await this.#compressor.end();
      await this.#encryptor?.end();
      done = await this.#output.commit();
    });
    return {
      path: this.#path,
      sidecarPath: done.sidecar,
      sha256: done.sha256,
      size: done.size,
      parts: done.parts,
    };
  }

  /** Stops and removes every file written so far. Safe to call more than once, and concurrently. */
  async abort(): Promise<void> {
    this.#compressor.destroy();
    this.#encryptor?.destroy();
    await this.#output.discard();
  }

  /**
   * Runs a write step; any failure removes the partial output before it is reported. After an
   * interrupt removed the output, steps neither run nor fail: the interrupt handler is exiting the
   * process with its own code and message, which a second error must not race.
   */
  async #guard(step: () => Promise<void>): Promise<void> {
    if (this.#output.interrupted) return await _untilExit();
    try {
      await step();
      if (this.#output.interrupted) return await _untilExit();
    } catch (err) {
      if (this.#output.interrupted) return await _untilExit();
      const writing = this.#output.currentPath;
      await this.abort();
      if (isDiskFull(err)) {
        throw new PromcaseError(
          `disk full while writing ${writing}: partial archive removed (${diskFullReason(err)})`,
        );
      }
      if (err instanceof PromcaseError) throw err;
      throw new PromcaseError(
        `writing the archive failed: ${describeError(err)}; nothing was kept`,
      );
    }
  }
}

/** Never settles: the interrupt handler ends the process meanwhile. */
function _untilExit(): Promise<never> {
  return new Promise(() => {});
}

async function* _once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}
