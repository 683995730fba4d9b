/**
 * Streaming POSIX tar (ustar + pax extended headers) writer and reader.
 *
 * Both directions work in pieces: the writer passes file data through to its sink as it arrives
 * and the reader hands out entry bodies as subarrays of the input chunks, so memory stays bounded
 * by the chunk size whatever the size of the entries. The only data buffered whole are extended
 * headers (pax records, GNU long names), which are capped at 1 MiB.
 *
 * @example Write and read back
 * ```ts
 * import { readTar, TarWriter } from "./tar.ts";
 *
 * const chunks: Uint8Array[] = [];
 * // The writer may reuse its buffers once the sink's promise resolves, so keep copies.
 * const writer = new TarWriter(async (chunk) => void chunks.push(chunk.slice()));
 * const data = new TextEncoder().encode("hello\n");
 * await writer.addDirectory("docs");
 * await writer.addFile("docs/hello.txt", data.length, (async function* () {
 *   yield data;
 * })());
 * await writer.finish();
 *
 * for await (const entry of readTar((async function* () {
 *   yield* chunks;
 * })())) {
 *   let bytes = 0;
 *   for await (const piece of entry.body) bytes += piece.length; // read before the next entry
 *   console.log(entry.header.type, entry.header.path, bytes);
 * }
 * ```
 *
 * @module
 */

import { PromcaseError } from "../errors.ts";

/** The kind of a tar entry, as far as promcase cares. */
export type TarEntryType = "file" | "directory" | "symlink" | "hardlink" | "other";

/** The decoded header of one tar entry, with pax and GNU extensions already applied. */
export interface TarHeader {
  /** Full path, with pax `path` / GNU long name applied; directories have no trailing slash. */
  path: string;
  /** What the entry is. */
  type: TarEntryType;
  /** The raw typeflag character ("0", "5", "2", ...); a NUL typeflag is reported as "0". */
  typeflag: string;
  /** Size of the body in bytes, with pax `size` applied. */
  size: number;
  /** Permission bits (`mode & 0o7777`). */
  mode: number;
  /** Modification time in whole seconds since the epoch, with pax `mtime` applied. */
  mtime: number;
  /** Link target for symlinks and hardlinks; "" otherwise. */
  linkName: string;
}

/** One entry of a tar stream: its header and its body, which must be read in order. */
export interface TarEntry {
  /** The decoded header. */
  header: TarHeader;
  /** The entry's data, in pieces; yields exactly `header.size` bytes for files. */
  body: AsyncIterable<Uint8Array>;
}

/** Options for entries added with {@linkcode TarWriter}. */
export interface TarEntryOptions {
  /** Permission bits; defaults to 0o644 for files and 0o755 for directories. */
  mode?: number;
  /** Modification time in seconds since the epoch; defaults to 0. Fractions are dropped. */
  mtime?: number;
}

// Largest pax header or GNU long name the reader accepts: these are the only things it buffers.
const _MAX_EXTENDED_HEADER_SIZE = 1024 * 1024;

const _BLOCK = 512;
// Largest value an 11-digit octal field (size, mtime) can hold: 8 GiB - 1.
const _MAX_OCTAL_11 = 0o77777777777;
// Shared, never-written zeros for padding and end blocks; the sink contract lets us reuse them.
const _ZEROS = new Uint8Array(2 * _BLOCK);
const _EMPTY = new Uint8Array(0);
const _encoder = new TextEncoder();
// Non-fatal: a name with bad UTF-8 should still be listed (and then rejected by path checks).
const _decoder = new TextDecoder("utf-8");

// ustar header field offsets and lengths.
const _NAME = [0, 100] as const;
const _MODE = [100, 8] as const;
const _UID = [108, 8] as const;
const _GID = [116, 8] as const;
const _SIZE = [124, 12] as const;
const _MTIME = [136, 12] as const;
const _CHKSUM = [148, 8] as const;
const _TYPEFLAG = 156;
const _LINKNAME = [157, 100] as const;
const _MAGIC = [257, 6] as const;
const _VERSION = [263, 2] as const;
const _DEVMAJOR = [329, 8] as const;
const _DEVMINOR = [337, 8] as const;
const _PREFIX = [345, 155] as const;

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/**
 * Writes a tar stream to `sink`, which must have consumed (or copied) each chunk before its promise
 * resolves.
 *
 * Calls must not overlap: await each `add*` before the next, and call {@linkcode TarWriter.finish}
 * last. After an entry fails (for example a body of the wrong size) the stream is unusable.
 */
export class TarWriter {
  #sink: (chunk: Uint8Array) => Promise<void>;
  #bytesWritten = 0;
  #busy = false;
  #finished = false;
  #failed = false;

  /** Creates a writer that sends every piece of the archive to `sink`, in order. */
  constructor(sink: (chunk: Uint8Array) => Promise<void>) {
    this.#sink = sink;
  }

  /** Bytes written so far. */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /** Adds a directory entry (typeflag '5', stored with a trailing slash). */
  async addDirectory(path: string, options: TarEntryOptions = {}): Promise<void> {
    const name = _checkPath(path).replace(/\/+$/, "");
    if (name === "") throw new PromcaseError(`cannot archive directory ${JSON.stringify(path)}`);
    const headers = _buildHeaders(name + "/", "5", 0, options, 0o755);
    await this.#run(async () => {
      await this.#write(headers);
    });
  }

  /**
   * Streams exactly `size` bytes from body; throws PromcaseError if body yields more or fewer bytes
   * than `size` (message names the path).
   */
  async addFile(
    path: string,
    size: number,
    body: AsyncIterable<Uint8Array>,
    options: TarEntryOptions = {},
  ): Promise<void> {
    const name = _checkPath(path);
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new PromcaseError(`cannot archive ${name}: invalid size ${size}`);
    }
    // Built before #run so that bad options fail without poisoning the writer.
    const headers = _buildHeaders(name, "0", size, options, 0o644);
    await this.#run(async () => {
      await this.#write(headers);
      let written = 0;
      // Chunks go to the sink as they are (subarrays, no copies); the size is enforced as we go
      // so that a growing file never corrupts the stream with an oversized entry.
      for await (const chunk of body) {
        if (chunk.length === 0) continue;
        if (written + chunk.length > size) {
          throw new PromcaseError(
            `cannot archive ${name}: it has more than the expected ${size} bytes (file changed?)`,
          );
        }
        written += chunk.length;
        await this.#write(chunk);
      }
      if (written !== size) {
        throw new PromcaseError(
          `cannot archive ${name}: expected ${size} bytes, got ${written} (file changed?)`,
        );
      }
      const padding = _padding(size);
      if (padding > 0) await this.#write(_ZEROS.subarray(0, padding));
    });
  }

  /** Writes the two zero end blocks. */
  async finish(): Promise<void> {
    await this.#run(async () => {
      await this.#write(_ZEROS);
      this.#finished = true;
    });
  }

  // Serialises use and poisons the writer after a failure: a half-written entry cannot be undone.
  async #run(work: () => Promise<void>): Promise<void> {
    if (this.#busy) throw new Error("TarWriter: previous call has not finished");
    if (this.#finished) throw new Error("TarWriter: already finished");
    if (this.#failed) throw new Error("TarWriter: unusable after a failed entry");
    this.#busy = true;
    try {
      await work();
    } catch (err) {
      this.#failed = true;
      throw err;
    } finally {
      this.#busy = false;
    }
  }

  async #write(chunk: Uint8Array): Promise<void> {
    await this.#sink(chunk);
    this.#bytesWritten += chunk.length;
  }
}

function _checkPath(path: string): string {
  if (path === "") throw new PromcaseError("cannot archive an empty path");
  if (path.includes("\0")) {
    throw new PromcaseError(`cannot archive ${JSON.stringify(path)}: path contains a NUL byte`);
  }
  // A lone surrogate would silently become U+FFFD in UTF-8, so the name would not round-trip.
  if (!path.isWellFormed()) {
    throw new PromcaseError(`cannot archive ${JSON.stringify(path)}: path is not valid Unicode`);
  }
  return path;
}

function _padding(size: number): number {
  return (_BLOCK - (size % _BLOCK)) % _BLOCK;
}

/** Builds the ustar header for an entry, preceded by a pax 'x' header when one is needed. */
function _buildHeaders(
  name: string,
  typeflag: string,
  size: number,
  options: TarEntryOptions,
  defaultMode: number,
): Uint8Array {
  const mode = options.mode ?? defaultMode;
  if (!Number.isSafeInteger(mode) || mode < 0) {
    throw new PromcaseError(`cannot archive ${name}: invalid mode ${mode}`);
  }
  const mtime = Math.floor(options.mtime ?? 0);
  if (!Number.isSafeInteger(mtime)) {
    throw new PromcaseError(`cannot archive ${name}: invalid mtime ${options.mtime}`);
  }

  const nameBytes = _encoder.encode(name);
  const records: [string, string][] = [];
  // Non-ASCII names also go to pax: ustar fields have no declared charset, pax `path` is UTF-8.
  if (nameBytes.length > _NAME[1] || nameBytes.length !== name.length) records.push(["path", name]);
  if (size > _MAX_OCTAL_11) records.push(["size", String(size)]);
  if (mtime < 0 || mtime > _MAX_OCTAL_11) records.push(["mtime", String(mtime)]);

  const header = _ustarHeader(
    _truncateUtf8(nameBytes, _NAME[1]),
    typeflag,
    mode & 0o7777,
    size > _MAX_OCTAL_11 ? 0 : size,
    mtime < 0 || mtime > _MAX_OCTAL_11 ? 0 : mtime,
  );
  if (records.length === 0) return header;

  const pax = _encoder.encode(records.map(([key, value]) => _paxRecord(key, value)).join(""));
  const paxName = _encoder.encode("PaxHeaders/" + _asciiBaseName(name));
  const paxHeader = _ustarHeader(
    paxName.subarray(0, _NAME[1]),
    "x",
    0o644,
    pax.length,
    mtime < 0 || mtime > _MAX_OCTAL_11 ? 0 : mtime,
  );
  // One buffer for pax header + records + padding + real header: a single sink call per entry.
  const out = new Uint8Array(2 * _BLOCK + pax.length + _padding(pax.length));
  out.set(paxHeader, 0);
  out.set(pax, _BLOCK);
  out.set(header, out.length - _BLOCK);
  return out;
}

function _ustarHeader(
  name: Uint8Array,
  typeflag: string,
  mode: number,
  size: number,
  mtime: number,
): Uint8Array {
  const block = new Uint8Array(_BLOCK);
  block.set(name, _NAME[0]);
  _putOctal(block, _MODE, mode);
  _putOctal(block, _UID, 0);
  _putOctal(block, _GID, 0);
  _putOctal(block, _SIZE, size);
  _putOctal(block, _MTIME, mtime);
  block[_TYPEFLAG] = typeflag.charCodeAt(0);
  block.set(_encoder.encode("ustar\0"), _MAGIC[0]);
  block.set(_encoder.encode("00"), _VERSION[0]);
  _putOctal(block, _DEVMAJOR, 0);
  _putOctal(block, _DEVMINOR, 0);
  // The checksum is computed with its own field read as eight spaces, then stored as
  // six octal digits, NUL, space (the historical layout every reader accepts).
  block.fill(0x20, _CHKSUM[0], _CHKSUM[0] + _CHKSUM[1]);
  const sum = _unsignedSum(block);
  block.set(_encoder.encode(sum.toString(8).padStart(6, "0") + "\0 "), _CHKSUM[0]);
  return block;
}

// Writes a zero-padded octal number followed by a NUL, filling the field.
function _putOctal(block: Uint8Array, [offset, length]: readonly [number, number], n: number) {
  const text = n.toString(8).padStart(length - 1, "0");
  for (let i = 0; i < length - 1; i++) block[offset + i] = text.charCodeAt(i);
  block[offset + length - 1] = 0;
}

/** Formats one pax record, "%d key=value\n", where the length counts its own digits. */
function _paxRecord(key: string, value: string): string {
  const rest = _encoder.encode(` ${key}=${value}\n`).length;
  // Adding the length's digits can make the length one digit longer; iterate until stable.
  let length = rest + String(rest).length;
  while (String(length).length + rest !== length) length = rest + String(length).length;
  return `${length} ${key}=${value}\n`;
}

// Cuts UTF-8 bytes to at most `max` bytes without splitting a character.
function _truncateUtf8(bytes: Uint8Array, max: number): Uint8Array {
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

// The pax header's own name only matters to readers without pax support; keep it short and ASCII.
function _asciiBaseName(name: string): string {
  const base = name.replace(/\/+$/, "").split("/").pop() ?? "";
  return base.replace(/[^\x20-\x7e]/g, "_") || "entry";
}

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

/**
 * Reads entries from a tar byte stream. Each entry's body must be consumed before asking for the
 * next entry; an unconsumed body is skipped automatically. Handles pax 'x' (path, size, linkpath,
 * mtime) and 'g' headers (ignored), GNU 'L'/'K' long names, ustar prefix field, base-256 sizes,
 * header checksum validation. Throws PromcaseError: "archive is truncated" (stream ends inside a
 * header or body or without end blocks — also when it ends without the two zero blocks after at
 * least one entry; say "archive is truncated (in PATH)" where a body was cut), "archive is corrupt:
 * bad tar header checksum at offset N", etc.
 *
 * Reading stops at the end blocks; anything after them (such as record padding) is not read, and
 * the source iterator is closed (`return()`) when the generator ends, fails or is abandoned.
 */
export async function* readTar(source: AsyncIterable<Uint8Array>): AsyncGenerator<TarEntry> {
  const input = new _Input(source);
  try {
    let pax = new Map<string, string>();
    let longName: string | undefined;
    let longLink: string | undefined;
    let pendingExtension = false;
    while (true) {
      const offset = input.offset;
      const block = await input.readBlock();
      if (block === null) throw _truncated();
      if (_isZeroBlock(block)) {
        if (pendingExtension) {
          throw _corrupt(`extended header without an entry at offset ${offset}`);
        }
        const second = await input.readBlock();
        if (second === null) throw _truncated();
        if (!_isZeroBlock(second)) throw _corrupt(`lone zero block at offset ${offset}`);
        return;
      }
      _verifyChecksum(block, offset);

      const rawFlag = String.fromCharCode(block[_TYPEFLAG]);
      const fieldSize = _parseNumeric(block, _SIZE, "size", offset);

      if (rawFlag === "x" || rawFlag === "g" || rawFlag === "L" || rawFlag === "K") {
        if (fieldSize > _MAX_EXTENDED_HEADER_SIZE) {
          throw _corrupt(`extended header of ${fieldSize} bytes at offset ${offset} is too large`);
        }
        const data = await input.readExact(fieldSize);
        if (data === null || !(await input.skip(_padding(fieldSize)))) throw _truncated();
        if (rawFlag === "x") {
          for (const [key, value] of _parsePax(data, offset)) {
            // An empty value cancels the key, so the ustar field applies again.
            if (value === "") pax.delete(key);
            else pax.set(key, value);
          }
        } else if (rawFlag === "L") {
          longName = _cString(data, 0, data.length);
        } else if (rawFlag === "K") {
          longLink = _cString(data, 0, data.length);
        } // 'g' (global) headers only carry defaults promcase does not use: ignored.
        pendingExtension = true;
        continue;
      }

      const magic = _cString(block, _MAGIC[0], _MAGIC[1] + _VERSION[1]);
      // Only POSIX ustar has a prefix field; old GNU headers ("ustar  ") keep atime/ctime there.
      const isUstar = magic.startsWith("ustar") && block[_MAGIC[0] + 5] === 0;
      let path = pax.get("path") ?? longName;
      if (path === undefined) {
        path = _cString(block, _NAME[0], _NAME[1]);
        const prefix = isUstar ? _cString(block, _PREFIX[0], _PREFIX[1]) : "";
        if (prefix !== "") path = prefix + "/" + path;
      }
      const linkName = pax.get("linkpath") ?? longLink ??
        _cString(block, _LINKNAME[0], _LINKNAME[1]);

      let typeflag = rawFlag === "\0" ? "0" : rawFlag;
      // Pre-POSIX archives mark directories only by a trailing slash on a regular-file entry.
      if (rawFlag === "\0" && path.endsWith("/")) typeflag = "5";
      const type = _entryType(typeflag);

      let size = fieldSize;
      const paxSize = pax.get("size");
      if (paxSize !== undefined) size = _parsePaxInteger(paxSize, "size", offset);
      // POSIX: links, devices, fifos and directories store no data whatever the size field says.
      if ("123456".includes(rawFlag)) size = 0;

      let mtime = _parseNumeric(block, _MTIME, "mtime", offset);
      const paxMtime = pax.get("mtime");
      if (paxMtime !== undefined) mtime = _parsePaxTime(paxMtime, offset);

      if (rawFlag === "S" && block[482] !== 0) {
        // Old GNU sparse entries continue their sparse map in extra 512-byte blocks; step over
        // them so that the data (reported as an "other" entry) is where we expect it.
        let more = true;
        while (more) {
          const extension = await input.readBlock();
          if (extension === null) throw _truncated();
          more = extension[504] !== 0;
        }
      }

      const header: TarHeader = {
        path: path.length > 1 ? path.replace(/\/+$/, "") : path,
        type,
        typeflag,
        size,
        mode: _parseNumeric(block, _MODE, "mode", offset) & 0o7777,
        mtime,
        linkName: type === "symlink" || type === "hardlink" ? linkName : "",
      };
      pax = new Map();
      longName = undefined;
      longLink = undefined;
      pendingExtension = false;

      const state: _BodyState = { remaining: size, active: true, reading: false };
      yield { header, body: _body(input, state, header.path) };
      if (state.reading) {
        throw new Error("readTar: next entry requested while a body read is pending");
      }
      state.active = false;
      // Skip what the consumer left unread, then the padding up to the next block.
      const skip = state.remaining + _padding(size);
      state.remaining = 0;
      if (!(await input.skip(skip))) throw _truncated(header.path);
    }
  } finally {
    await input.close();
  }
}

interface _BodyState {
  remaining: number;
  active: boolean;
  reading: boolean;
}

async function* _body(input: _Input, state: _BodyState, path: string): AsyncGenerator<Uint8Array> {
  if (!state.active) {
    throw new Error(`readTar: body of ${path} read after moving to the next entry`);
  }
  while (state.remaining > 0) {
    if (!state.active) {
      throw new Error(`readTar: body of ${path} read after moving to the next entry`);
    }
    state.reading = true;
    let piece: Uint8Array | null;
    try {
      piece = await input.read(state.remaining);
    } finally {
      state.reading = false;
    }
    if (piece === null) throw _truncated(path);
    state.remaining -= piece.length;
    yield piece;
  }
}

function _entryType(typeflag: string): TarEntryType {
  switch (typeflag) {
    case "0":
    case "7": // contiguous file: a regular file everywhere that matters
      return "file";
    case "5":
      return "directory";
    case "2":
      return "symlink";
    case "1":
      return "hardlink";
    default:
      return "other";
  }
}

function _truncated(path?: string): PromcaseError {
  return new PromcaseError(
    path === undefined ? "archive is truncated" : `archive is truncated (in ${path})`,
  );
}

function _corrupt(what: string): PromcaseError {
  return new PromcaseError(`archive is corrupt: ${what}`);
}

function _isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < _BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

function _unsignedSum(block: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < _BLOCK; i++) sum += block[i];
  return sum;
}

function _verifyChecksum(block: Uint8Array, offset: number): void {
  const [start, length] = _CHKSUM;
  let expected = -1;
  try {
    expected = _parseOctal(block, start, length);
  } catch {
    // An unreadable checksum field is reported as a bad checksum below.
  }
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < _BLOCK; i++) {
    const byte = i >= start && i < start + length ? 0x20 : block[i];
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  // Some historic tars summed signed chars; accepting either costs nothing.
  if (expected !== unsigned && expected !== signed) {
    throw _corrupt(`bad tar header checksum at offset ${offset}`);
  }
}

// Reads a numeric header field: octal text, or GNU base-256 when the top bit is set.
function _parseNumeric(
  block: Uint8Array,
  [start, length]: readonly [number, number],
  what: string,
  offset: number,
): number {
  if (block[start] & 0x80) {
    if (block[start] === 0xff) throw _corrupt(`negative ${what} in tar header at offset ${offset}`);
    let value = block[start] & 0x7f;
    for (let i = 1; i < length; i++) {
      value = value * 256 + block[start + i];
      if (value > Number.MAX_SAFE_INTEGER) {
        throw _corrupt(`${what} too large in tar header at offset ${offset}`);
      }
    }
    return value;
  }
  try {
    return _parseOctal(block, start, length);
  } catch {
    throw _corrupt(`bad ${what} field in tar header at offset ${offset}`);
  }
}

// Octal text with optional leading spaces, ended by NUL, space or the field's end.
function _parseOctal(block: Uint8Array, start: number, length: number): number {
  const end = start + length;
  let i = start;
  while (i < end && block[i] === 0x20) i++;
  let value = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = block[i];
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw new SyntaxError("not octal");
    value = value * 8 + (c - 0x30);
    digits++;
  }
  for (; i < end; i++) {
    if (block[i] !== 0 && block[i] !== 0x20) throw new SyntaxError("not octal");
  }
  // An all-blank field is how some writers say zero, except for the checksum which must be set.
  if (digits === 0 && start === _CHKSUM[0]) throw new SyntaxError("empty");
  return value;
}

function _cString(block: Uint8Array, start: number, length: number): string {
  let end = start;
  while (end < start + length && block[end] !== 0) end++;
  return _decoder.decode(block.subarray(start, end));
}

/** Parses pax records ("%d key=value\n"), checking each length against the data. */
function _parsePax(data: Uint8Array, offset: number): [string, string][] {
  const records: [string, string][] = [];
  let pos = 0;
  while (pos < data.length) {
    // Some writers pad pax data with NULs; nothing follows them.
    if (data[pos] === 0) break;
    let length = 0;
    let i = pos;
    while (i < data.length && data[i] >= 0x30 && data[i] <= 0x39 && i - pos < 16) {
      length = length * 10 + (data[i] - 0x30);
      i++;
    }
    if (i === pos || data[i] !== 0x20 || length <= i - pos + 1 || pos + length > data.length) {
      throw _corrupt(`bad pax record in extended header at offset ${offset}`);
    }
    const record = data.subarray(i + 1, pos + length);
    const equals = record.indexOf(0x3d);
    if (equals <= 0 || record[record.length - 1] !== 0x0a) {
      throw _corrupt(`bad pax record in extended header at offset ${offset}`);
    }
    records.push([
      _decoder.decode(record.subarray(0, equals)),
      _decoder.decode(record.subarray(equals + 1, record.length - 1)),
    ]);
    pos += length;
  }
  return records;
}

function _parsePaxInteger(value: string, what: string, offset: number): number {
  const n = /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw _corrupt(`bad pax ${what} ${JSON.stringify(value)} in header at offset ${offset}`);
  }
  return n;
}

// pax times are decimal seconds, possibly negative and with a fraction; keep whole seconds.
function _parsePaxTime(value: string, offset: number): number {
  const n = /^-?[0-9]+(\.[0-9]*)?$/.test(value) ? Math.floor(Number(value)) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw _corrupt(`bad pax mtime ${JSON.stringify(value)} in header at offset ${offset}`);
  }
  return n;
}

/**
 * Pulls bytes from an async iterable of chunks of any size. Pieces handed out are subarrays of the
 * input chunks (never copies) except where a header straddles two chunks.
 */
class _Input {
  #iterator: AsyncIterator<Uint8Array>;
  #chunk: Uint8Array = _EMPTY;
  #pos = 0;
  #done = false;
  #scratch = new Uint8Array(_BLOCK);
  /** Bytes consumed so far, for error messages. */
  offset = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#iterator = source[Symbol.asyncIterator]();
  }

  // Makes sure unread bytes are available; false at end of input.
  async #fill(): Promise<boolean> {
    while (this.#pos >= this.#chunk.length) {
      if (this.#done) return false;
      const result = await this.#iterator.next();
      if (result.done) {
        this.#done = true;
        this.#chunk = _EMPTY;
        this.#pos = 0;
        return false;
      }
      this.#chunk = result.value;
      this.#pos = 0;
    }
    return true;
  }

  /** Up to `max` bytes as a subarray of the current chunk, or null at end of input. */
  async read(max: number): Promise<Uint8Array | null> {
    if (!(await this.#fill())) return null;
    const n = Math.min(max, this.#chunk.length - this.#pos);
    const piece = this.#chunk.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    this.offset += n;
    return piece;
  }

  /**
   * The next 512-byte block, valid only until the next call; null at a clean end of input.
   * Throws "truncated" if the input ends inside the block.
   */
  async readBlock(): Promise<Uint8Array | null> {
    if (!(await this.#fill())) return null;
    if (this.#chunk.length - this.#pos >= _BLOCK) {
      const block = this.#chunk.subarray(this.#pos, this.#pos + _BLOCK);
      this.#pos += _BLOCK;
      this.offset += _BLOCK;
      return block;
    }
    // The block straddles chunks: assemble it in a reused buffer.
    let filled = 0;
    while (filled < _BLOCK) {
      const piece = await this.read(_BLOCK - filled);
      if (piece === null) throw _truncated();
      this.#scratch.set(piece, filled);
      filled += piece.length;
    }
    return this.#scratch;
  }

  /** Exactly `n` bytes in a new buffer, or null if the input ends first. */
  async readExact(n: number): Promise<Uint8Array | null> {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const piece = await this.read(n - filled);
      if (piece === null) return null;
      out.set(piece, filled);
      filled += piece.length;
    }
    return out;
  }

  /** Discards `n` bytes; false if the input ends first. */
  async skip(n: number): Promise<boolean> {
    while (n > 0) {
      const piece = await this.read(n);
      if (piece === null) return false;
      n -= piece.length;
    }
    return true;
  }

  /** Releases the source (closes a file stream left unfinished). */
  async close(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    try {
      await this.#iterator.return?.();
    } catch {
      // A source that fails while being closed has nothing more to tell us; keep the first error.
    }
  }
}
