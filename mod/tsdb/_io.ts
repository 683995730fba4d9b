/**
 * File helpers shared by the TSDB readers and writers: positioned reads and a buffered writer
 * that knows its position.
 *
 * @module
 */

import { setImmediate } from "node:timers";

/** Reads into `buf` at file position `pos`; returns the bytes read (fewer only at end of file). */
export async function readAt(file: Deno.FsFile, pos: number, buf: Uint8Array): Promise<number> {
  await file.seek(pos, Deno.SeekMode.Start);
  return await readFull(file, buf);
}

/** Reads from the current position until `buf` is full or the file ends; returns the bytes read. */
export async function readFull(file: Deno.FsFile, buf: Uint8Array): Promise<number> {
  let done = 0;
  while (done < buf.length) {
    const n = await file.read(buf.subarray(done));
    if (n === null) break;
    done += n;
  }
  return done;
}

/**
 * One turn of the event loop, for a reader that otherwise blocks on its reads: signals and V8's
 * garbage collection tasks run there. setImmediate, not setTimeout(0), which waits about 2 ms
 * each time in Deno 2.9 (a second per GiB read).
 */
export function turnEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * {@link readFull} with blocking reads: for a reader that reads a file front to back in large
 * pieces, where each async read's trip through the thread pool left the thread idle. The caller
 * yields to the event loop now and then (signals and V8's collection tasks run there).
 */
export function readFullSync(file: Deno.FsFile, buf: Uint8Array): number {
  let done = 0;
  while (done < buf.length) {
    const n = file.readSync(buf.subarray(done));
    if (n === null) break;
    done += n;
  }
  return done;
}

/** Reads exactly `length` bytes at `pos`, or throws `what` if the file ends first. */
export async function readExactAt(
  file: Deno.FsFile,
  pos: number,
  length: number,
  what: string,
): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  if (await readAt(file, pos, buf) !== length) {
    throw new RangeError(`${what}: file ends before byte ${pos + length}`);
  }
  return buf;
}

/** Serialises async operations on one file handle (seek + read is not atomic). */
export class FileLock {
  #queue: Promise<unknown> = Promise.resolve();

  /** Runs `fn` after every earlier call has settled. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn);
    this.#queue = next.catch(() => {});
    return next;
  }
}

/** Options of {@link BufferedFileWriter.create}. */
export interface BufferedFileWriterOptions {
  /**
   * A temporary file, removed before the run ends: {@link BufferedFileWriter.close} does not
   * fsync it. On the production host that is hundreds of disk flushes fewer per export, which
   * would compete with Prometheus' own writes.
   */
  temporary?: boolean;
}

/** Appends to a new file through a buffer, tracking the file position. */
export class BufferedFileWriter {
  #file: Deno.FsFile;
  #buf: Uint8Array;
  #buffered = 0;
  #pos = 0;
  #temporary: boolean;

  private constructor(file: Deno.FsFile, bufferSize: number, temporary: boolean) {
    this.#file = file;
    this.#buf = new Uint8Array(bufferSize);
    this.#temporary = temporary;
  }

  /** Creates `path` (which must not exist) for writing. */
  static async create(
    path: string,
    bufferSize = 1024 * 1024,
    options: BufferedFileWriterOptions = {},
  ): Promise<BufferedFileWriter> {
    const file = await Deno.open(path, { write: true, createNew: true });
    return new BufferedFileWriter(file, bufferSize, options.temporary ?? false);
  }

  /** Bytes written so far, buffered ones included. */
  get position(): number {
    return this.#pos;
  }

  // Blocking writes: an async write's trip through the thread pool left this thread idle (a
  // write goes to the page cache, which takes about as long as the trip).
  #writeAll(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) done += this.#file.writeSync(bytes.subarray(done));
  }

  /** Writes the buffered bytes to the file (at once: the promise is for callers' sake). */
  // deno-lint-ignore require-await
  async flush(): Promise<void> {
    this.#writeAll(this.#buf.subarray(0, this.#buffered));
    this.#buffered = 0;
  }

  /** Bytes that {@link BufferedFileWriter.writeBuffered} can take before a flush is needed. */
  get room(): number {
    return this.#buf.length - this.#buffered;
  }

  /**
   * Appends the first `length` bytes of `bytes` (all by default) to the buffer at once; they must
   * fit in {@link BufferedFileWriter.room}.
   */
  writeBuffered(bytes: Uint8Array, length = bytes.length): void {
    if (length > this.room || length > bytes.length) {
      throw new RangeError("BufferedFileWriter: buffer overflow");
    }
    if (length === bytes.length) this.#buf.set(bytes, this.#buffered);
    else for (let i = 0; i < length; i++) this.#buf[this.#buffered + i] = bytes[i];
    this.#buffered += length;
    this.#pos += length;
  }

  /** Appends `bytes`. */
  async write(bytes: Uint8Array): Promise<void> {
    if (this.#buffered + bytes.length > this.#buf.length) {
      await this.flush();
      if (bytes.length > this.#buf.length) {
        this.#writeAll(bytes);
        this.#pos += bytes.length;
        return;
      }
    }
    this.#buf.set(bytes, this.#buffered);
    this.#buffered += bytes.length;
    this.#pos += bytes.length;
  }

  /** Appends zero bytes up to a multiple of `alignment`. */
  async pad(alignment: number): Promise<void> {
    const extra = (alignment - (this.#pos % alignment)) % alignment;
    if (extra > 0) await this.write(new Uint8Array(extra));
  }

  /** Flushes, fsyncs (unless temporary) and closes the file. */
  async close(): Promise<void> {
    await this.flush();
    if (!this.#temporary) await this.#file.sync();
    this.#file.close();
  }

  /** Closes the file without flushing (after an error). */
  abort(): void {
    try {
      this.#file.close();
    } catch { /* already closed */ }
  }
}
