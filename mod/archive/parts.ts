/**
 * The files an archive is made of: one `NAME`, or with a split size the parts `NAME.part001`,
 * `NAME.part002`, … of at most that many bytes each, and beside them `NAME.sha256` in
 * `sha256sum -c` format listing the archive (or every part).
 *
 * The parts are plain slices of the one byte stream, so `cat NAME.part* > NAME` gives back the
 * whole archive (the fixed-width numbers sort in order) and `sha256sum -c NAME.sha256` checks each
 * part without promcase. Every file is written under a hidden temporary name and renamed only when
 * the whole archive is complete; the sidecar comes last, so its presence means "complete".
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { describeError, PromcaseError, usageError } from "../errors.ts";
import { exists, PIECE_SIZE, randomSuffix, splitPath, writeAll } from "../fileio.ts";
import { onInterrupt } from "../interrupt.ts";

/** The most parts an archive may have (three digits keep `NAME.part*` in order for `cat`). */
export const MAX_PARTS = 999;
/** The smallest split size accepted. */
export const MIN_PART_BYTES = 1024;

const _PART_RE = /^(.+)\.part(\d{3,}|\*)$/;

/** The path of part `index` (1-based) of the archive `path`: `path.part001`. */
export function partPath(path: string, index: number): string {
  return `${path}.part${String(index).padStart(3, "0")}`;
}

/** One finished file of an archive. */
export interface WrittenPart {
  /** Final path. */
  path: string;
  /** Size in bytes. */
  size: number;
  /** Lowercase hex SHA-256. */
  sha256: string;
}

/**
 * Refuses when `path`, its sidecar or any `path.partNNN` exists, so that a new archive can never
 * be mistaken for (or mixed with) an older one of the same name.
 */
export async function requireUnusedArchiveName(path: string): Promise<void> {
  for (const taken of [path, `${path}.sha256`]) {
    if (await exists(taken)) {
      throw usageError(`${taken} already exists: choose another name with -o`);
    }
  }
  const part = (await _partsOnDisk(path))[0];
  if (part !== undefined) {
    throw usageError(`${part.path} already exists: choose another name with -o`);
  }
}

/**
 * The byte sink of an archive being written: one temporary file, or with `split` a new temporary
 * part every `split` bytes. {@link ArchiveFiles.commit} renames everything into place and writes
 * the sidecar; {@link ArchiveFiles.discard} removes whatever was written.
 */
export class ArchiveFiles {
  #path: string;
  #split: number;
  #tempBase: string;
  #parts: (WrittenPart & { temp: string })[] = [];
  #file: Deno.FsFile | null = null;
  #hash: Hash | null = null;
  #wholeHash = createHash("sha256");
  #size = 0;
  #opening: Promise<unknown> = Promise.resolve();
  #renamed: string[] = [];
  #sidecarTemp: string;
  #discarded = false;
  #interrupted = false;
  #committed = false;
  #release: () => void = () => {};
  #inFlight: Promise<unknown> = Promise.resolve();
  #suffix: string;

  private constructor(path: string, split: number) {
    const { dir, base } = splitPath(path);
    this.#path = path;
    this.#split = split;
    this.#tempBase = `${dir}/.${base}`;
    this.#suffix = randomSuffix();
    this.#sidecarTemp = `${this.#tempBase}.sha256.promcase-tmp-${this.#suffix}`;
  }

  /**
   * Starts the files of an archive that will appear at `path` (split into parts of `split` bytes
   * when given). The first temporary file is created at once, so that an unwritable directory is
   * reported before any work is done.
   */
  static async create(path: string, split?: number): Promise<ArchiveFiles> {
    if (split !== undefined && (!Number.isSafeInteger(split) || split < MIN_PART_BYTES)) {
      throw usageError(`the split size must be at least ${MIN_PART_BYTES} bytes`);
    }
    const files = new ArchiveFiles(path, split ?? Infinity);
    // Registered before the first file exists: an interrupt at any moment from here on removes
    // everything, whether or not the caller has registered its own cleanup yet.
    files.#release = onInterrupt(async () => {
      files.#interrupted = true;
      await files.discard();
    });
    try {
      await files.#openNext();
    } catch (err) {
      files.#release();
      throw err;
    }
    return files;
  }

  /**
   * Whether an interrupt (SIGINT, SIGTERM) removed the files: the process is about to exit, and
   * failures of writes still under way are consequences of that, not news for the user.
   */
  get interrupted(): boolean {
    return this.#interrupted;
  }

  /** Whether the archive is split into parts. */
  get split(): boolean {
    return this.#split !== Infinity;
  }

  /** The final path of the file being written (for messages). */
  get currentPath(): string {
    return this.#parts.at(-1)?.path ?? this.#path;
  }

  /** Bytes written so far, over all parts. */
  get size(): number {
    return this.#size;
  }

  /** Appends bytes, starting a new part whenever the current one is full. */
  async write(chunk: Uint8Array): Promise<void> {
    let at = 0;
    while (at < chunk.length) {
      if (this.#discarded) throw new PromcaseError(`writing ${this.#path} was stopped`);
      let part = this.#parts.at(-1)!;
      if (part.size >= this.#split) {
        await this.#closeCurrent();
        await this.#openNext();
        part = this.#parts.at(-1)!;
      }
      const piece = chunk.subarray(at, at + Math.min(chunk.length - at, this.#split - part.size));
      await writeAll(this.#file!, piece);
      // An archive in one file is its one part: the whole's hash is the part's.
      if (this.split) this.#hash!.update(piece);
      this.#wholeHash.update(piece);
      part.size += piece.length;
      this.#size += piece.length;
      at += piece.length;
    }
  }

  /**
   * Syncs and closes the last file, renames every file into place (never over an existing one) and
   * writes the sidecar last. On failure everything written is removed.
   */
  async commit(): Promise<{ parts: WrittenPart[]; sha256: string; size: number; sidecar: string }> {
    const sidecar = `${this.#path}.sha256`;
    const sha256 = this.#wholeHash.digest("hex");
    try {
      await this.#step(() => this.#closeCurrent());
      if (!this.split) this.#parts[0].sha256 = sha256;
      const { base } = splitPath(this.#path);
      const lines = this.#parts.map((p) =>
        `${p.sha256}  ${this.split ? splitPath(p.path).base : base}\n`
      );
      await this.#step(() =>
        Deno.writeTextFile(this.#sidecarTemp, lines.join(""), { createNew: true })
      );
      for (const part of this.#parts) {
        await this.#step(async () => {
          if (await exists(part.path)) {
            throw usageError(`${part.path} appeared meanwhile: not overwritten`);
          }
          await Deno.rename(part.temp, part.path);
          this.#renamed.push(part.path);
        });
      }
      await this.#step(async () => {
        if (await exists(sidecar)) {
          throw usageError(`${sidecar} appeared meanwhile: not overwritten`);
        }
        await Deno.rename(this.#sidecarTemp, sidecar);
        this.#committed = true;
      });
      this.#release();
    } catch (err) {
      await this.discard();
      throw err;
    }
    return {
      parts: this.#parts.map(({ path, size, sha256 }) => ({ path, size, sha256 })),
      sha256,
      size: this.#size,
      sidecar,
    };
  }

  /**
   * Removes every file written. Safe to call more than once, and concurrently with a pending write
   * or commit (an interrupt): the file-system step under way is waited for, no further one starts,
   * and then everything goes, even an archive whose last rename was that step. After a completed
   * commit, only an interrupt during it removes anything.
   */
  async discard(): Promise<void> {
    this.#discarded = true;
    if (!this.#interrupted) this.#release();
    await this.#opening.catch(() => {});
    await this.#inFlight;
    if (this.#committed && !this.#interrupted) return;
    this.#closeQuietly();
    const leftovers = [
      ...this.#parts.map((p) => p.temp),
      this.#sidecarTemp,
      ...this.#renamed,
      ...(this.#committed ? [`${this.#path}.sha256`] : []),
    ];
    for (const path of leftovers) await Deno.remove(path).catch(() => {});
  }

  /** Runs one file-system step of the commit, unless the files were discarded meanwhile. */
  #step<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#discarded) {
      return Promise.reject(new PromcaseError(`writing ${this.#path} was stopped`));
    }
    const running = operation();
    this.#inFlight = running.catch(() => {});
    return running;
  }

  async #openNext(): Promise<void> {
    const index = this.#parts.length + 1;
    if (index > (this.split ? MAX_PARTS : 1)) {
      throw new PromcaseError(
        `the archive needs more than ${MAX_PARTS} parts of ${this.#split} bytes: ` +
          "give a larger split size",
      );
    }
    const path = this.split ? partPath(this.#path, index) : this.#path;
    const temp = this.split
      ? `${this.#tempBase}.part${String(index).padStart(3, "0")}.promcase-tmp-${this.#suffix}`
      : `${this.#tempBase}.promcase-tmp-${this.#suffix}`;
    // Registered before it exists, so that a discard meanwhile removes it once the open is done.
    this.#parts.push({ path, temp, size: 0, sha256: "" });
    const opening = Deno.open(temp, { write: true, createNew: true, mode: 0o644 });
    this.#opening = opening;
    let file: Deno.FsFile;
    try {
      file = await opening;
    } catch (err) {
      this.#parts.pop();
      throw new PromcaseError(`cannot write to ${splitPath(temp).dir}: ${describeError(err)}`);
    }
    if (this.#discarded) {
      file.close();
      await Deno.remove(temp).catch(() => {});
      throw new PromcaseError(`writing ${this.#path} was stopped`);
    }
    this.#file = file;
    this.#hash = this.split ? createHash("sha256") : null;
  }

  async #closeCurrent(): Promise<void> {
    if (this.#file === null) return;
    await this.#file.sync();
    if (this.split) this.#parts.at(-1)!.sha256 = this.#hash!.digest("hex");
    this.#file.close();
    this.#file = null;
  }

  #closeQuietly(): void {
    try {
      this.#file?.close();
    } catch {
      // Already closed by a failed write.
    }
    this.#file = null;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/** One file of an archive to read. */
export interface ArchivePart {
  /** Its path. */
  path: string;
  /** Its size. */
  size: number;
  /** Its SHA-256 as the sidecar lists it; null without a sidecar entry. */
  expectedSha256: string | null;
}

/** Where an archive's bytes are. */
export interface ArchiveLocation {
  /** The archive's name: the file, or for a split archive the name before `.partNNN`. */
  path: string;
  /** Whether it is split into parts. */
  split: boolean;
  /** Its files, in order. */
  parts: ArchivePart[];
  /** The sidecar's path. */
  sidecar: string;
  /** Whether the sidecar exists (and lists the parts, for a split archive). */
  hasSidecar: boolean;
}

/**
 * Finds the files of an archive from what the user named: the archive file; or for a split archive
 * any of its parts, several of them (a shell glob `NAME.part*`), the literal `NAME.part*`, or
 * `NAME`. The sidecar, when present, says how many parts there are; otherwise the parts on disk do.
 * A missing part, or one shorter than the others, is a one-line error naming it, raised before any
 * byte is read.
 */
export async function locateArchive(paths: string | string[]): Promise<ArchiveLocation> {
  const given = typeof paths === "string" ? [paths] : paths;
  if (given.length === 0) throw usageError("name the archive");
  const bases = new Set(given.map((p) => _PART_RE.exec(p)?.[1] ?? p));
  if (bases.size > 1) {
    throw usageError(
      `${
        given.map((p) => JSON.stringify(p)).join(" ")
      }: give one archive, or parts of one split archive`,
    );
  }
  const first = given[0];
  const partMatch = _PART_RE.exec(first);
  const sidecar = (base: string) => `${base}.sha256`;
  if (partMatch === null) {
    const stat = await _statFile(first);
    if (stat !== null) {
      const expected = await _readSidecar(sidecar(first));
      return {
        path: first,
        split: false,
        parts: [{
          path: first,
          size: stat.size,
          expectedSha256: expected === null ? null : expected[0]?.sha256 ?? "",
        }],
        sidecar: sidecar(first),
        hasSidecar: expected !== null,
      };
    }
  }
  const base = partMatch?.[1] ?? first;
  const location = await _locateParts(base);
  if (location === null) {
    throw usageError(`cannot open archive ${first}: no such file or directory`);
  }
  return location;
}

async function _locateParts(base: string): Promise<ArchiveLocation | null> {
  const { base: name } = splitPath(base);
  const sidecarPath = `${base}.sha256`;
  const entries = await _readSidecar(sidecarPath);
  const listed = (entries ?? []).flatMap((e) => {
    const match = _PART_RE.exec(e.name);
    return match && match[1] === name && match[2] !== "*"
      ? [{ index: Number(match[2]), sha256: e.sha256 }]
      : [];
  });
  let numbers: { index: number; sha256: string | null }[];
  if (listed.length > 0) {
    numbers = listed;
  } else {
    const onDisk = await _partsOnDisk(base);
    if (onDisk.length === 0) return null;
    numbers = onDisk.map((p) => ({ index: p.index, sha256: null }));
  }
  numbers.sort((a, b) => a.index - b.index);
  const count = numbers.at(-1)!.index;
  const missing = (index: number) =>
    new PromcaseError(
      `missing part ${partPath(base, index)}: ` +
        (listed.length > 0
          ? `${sidecarPath} lists ${count} parts`
          : `the parts on disk go up to ${partPath(base, count)}`),
    );
  for (let i = 1; i <= count; i++) {
    if (numbers[i - 1]?.index !== i) throw missing(i);
  }
  const parts: ArchivePart[] = [];
  for (const { index, sha256 } of numbers) {
    const path = partPath(base, index);
    const stat = await _statFile(path);
    if (stat === null) throw missing(index);
    parts.push({ path, size: stat.size, expectedSha256: sha256 });
  }
  // Every part but the last is exactly the split size, the largest of them.
  const full = Math.max(...parts.map((p) => p.size));
  parts.forEach((part, i) => {
    if (part.size === 0 || (i < parts.length - 1 && part.size < full)) {
      throw new PromcaseError(
        `part ${part.path} is truncated: ${part.size} bytes where the parts before the last have ${full}`,
      );
    }
  });
  return {
    path: base,
    split: true,
    parts,
    sidecar: sidecarPath,
    hasSidecar: listed.length > 0,
  };
}

/**
 * Reads the files of an archive as one byte stream, hashing each file and the whole, and calls
 * `onPartEnd` when a file has been read to its end. Pieces are fresh buffers (a consumer may keep
 * them). {@link PartReader.pieces} can be called again after a consumer stopped early: it goes on
 * where the last one left off, so that the whole archive is hashed even after a broken stream.
 */
export class PartReader {
  #location: ArchiveLocation;
  #onPartEnd: (part: ArchivePart, sha256: string) => void;
  #index = 0;
  #file: Deno.FsFile | null = null;
  #hash: Hash | null = null;
  #wholeHash = createHash("sha256");
  #bytes = 0;
  #queue: Promise<unknown> = Promise.resolve();

  /** Creates a reader over `location`'s files. */
  constructor(location: ArchiveLocation, onPartEnd: (part: ArchivePart, sha256: string) => void) {
    this.#location = location;
    this.#onPartEnd = onPartEnd;
  }

  /** Bytes read so far. */
  get bytesRead(): number {
    return this.#bytes;
  }

  /** SHA-256 of all bytes read (of the whole archive once everything was read). */
  digest(): string {
    return this.#wholeHash.digest("hex");
  }

  /** Yields the remaining bytes. */
  async *pieces(): AsyncGenerator<Uint8Array> {
    while (true) {
      // One read at a time, even when an abandoned consumer still has one pending.
      const next = this.#queue.then(() => this.#read());
      this.#queue = next.catch(() => {});
      const piece = await next;
      if (piece === null) return;
      yield piece;
    }
  }

  /** Closes the open file, if any. Safe to call more than once. */
  close(): void {
    this.#file?.close();
    this.#file = null;
  }

  async #read(): Promise<Uint8Array | null> {
    const parts = this.#location.parts;
    while (this.#index < parts.length) {
      const part = parts[this.#index];
      if (this.#file === null) {
        try {
          this.#file = await Deno.open(part.path, { read: true });
        } catch (err) {
          throw new PromcaseError(`cannot open ${part.path}: ${describeError(err)}`);
        }
        this.#hash = createHash("sha256");
      }
      const buffer = new Uint8Array(PIECE_SIZE);
      let n: number | null;
      try {
        n = await this.#file.read(buffer);
      } catch (err) {
        throw new PromcaseError(`cannot read ${part.path}: ${describeError(err)}`);
      }
      if (n === null) {
        this.close();
        this.#index++;
        this.#onPartEnd(part, this.#hash!.digest("hex"));
        continue;
      }
      const piece = buffer.subarray(0, n);
      this.#hash!.update(piece);
      this.#wholeHash.update(piece);
      this.#bytes += n;
      return piece;
    }
    return null;
  }
}

/** The parts of `base` present on disk (`base.partNNN`, temporary files excluded), by number. */
async function _partsOnDisk(base: string): Promise<{ index: number; path: string }[]> {
  const { dir, base: name } = splitPath(base);
  const found: { index: number; path: string }[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      const match = _PART_RE.exec(entry.name);
      if (match && match[1] === name && match[2] !== "*") {
        found.push({ index: Number(match[2]), path: `${base}.part${match[2]}` });
      }
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw usageError(`cannot read ${dir}: ${describeError(err)}`);
  }
  return found.sort((a, b) => a.index - b.index);
}

/** The entries of a `sha256sum` file, or null when there is none. Comment lines are skipped. */
async function _readSidecar(path: string): Promise<{ sha256: string; name: string }[] | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return null;
  }
  return text.split("\n").flatMap((line) => {
    const match = /^\s*([0-9a-fA-F]+)\s+\*?(.*?)\s*$/.exec(line);
    return match && !line.startsWith("#")
      ? [{ sha256: match[1].toLowerCase(), name: splitPath(match[2]).base }]
      : [];
  });
}

/** A file's stat; null when nothing is there; a usage error for anything that is not a file. */
async function _statFile(path: string): Promise<Deno.FileInfo | null> {
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw usageError(`cannot open archive ${path}: ${describeError(err)}`);
  }
  if (!stat.isFile) throw usageError(`${path} is not a file`);
  return stat;
}
