/**
 * The head chunks' bytes, written once: the head replay copies each head chunk that reaches into
 * the window to this file and moves only a reference to it through its shard files, chunk spills
 * and sorted runs. The bytes are read back for the block writer, series by series, and for the
 * few series the replay must decode (out-of-order samples, deletions). Writing the bytes to each
 * of those files instead cost more than the rest of the replay of a head that is mostly head
 * chunks (a real one: 120 of every 122 samples).
 *
 * A reference is a chunk whose encoding has {@link HEAD_CHUNK_REF} set and whose data is
 * {@link HEAD_CHUNK_REF_BYTES} bytes: the bytes' offset in the store and their length, and the
 * chunk's samples in the window (the replay counts them without the bytes).
 *
 * Memory: a write buffer; reading, the bytes of one series' chunks.
 *
 * @module
 */

import { BufferedFileWriter } from "./_io.ts";
import { readAtSync } from "./_stream.ts";
import { FormatError } from "./encoding.ts";
import type { TimedChunk } from "./series.ts";

/** Set in the encoding of a chunk that is a reference into a {@link HeadChunkStore}. */
export const HEAD_CHUNK_REF = 0x80;
/** Bytes of a reference's data. */
export const HEAD_CHUNK_REF_BYTES = 16;

/** Whether a chunk is a reference into a {@link HeadChunkStore}. */
export function isHeadChunkRef(encoding: number): boolean {
  return (encoding & HEAD_CHUNK_REF) !== 0;
}

/** The bytes a reference refers to: none for a chunk outside the window (see `add`). */
export function headChunkRefLength(data: Uint8Array): number {
  return new DataView(data.buffer, data.byteOffset, data.length).getUint32(8, true);
}

/** The samples in the window that a reference counts. */
export function headChunkRefSamples(data: Uint8Array): number {
  return new DataView(data.buffer, data.byteOffset, data.length).getUint32(12, true);
}

/** Appends head chunks' bytes to a temporary file and gives references to them. */
export class HeadChunkStore {
  #writer: BufferedFileWriter;
  #ref = new Uint8Array(HEAD_CHUNK_REF_BYTES);
  #refView = new DataView(this.#ref.buffer);

  private constructor(writer: BufferedFileWriter) {
    this.#writer = writer;
  }

  /** Creates the store file `path` (removed with the replay's dir). */
  static async create(path: string, bufferSize = 1024 * 1024): Promise<HeadChunkStore> {
    return new HeadChunkStore(
      await BufferedFileWriter.create(path, bufferSize, { temporary: true }),
    );
  }

  /**
   * Stores a chunk's `data` and returns the reference's data, valid until the next call. `data`
   * is null for a chunk outside the window, whose bytes are never read: its reference has none,
   * which tells the replay to leave it out (every chunk in the window has bytes).
   */
  async add(data: Uint8Array | null, samples: number): Promise<Uint8Array> {
    const at = this.#writer.position;
    const length = data?.length ?? 0;
    if (data) await this.#writer.write(data);
    this.#refView.setFloat64(0, at, true);
    this.#refView.setUint32(8, length, true);
    this.#refView.setUint32(12, samples, true);
    return this.#ref;
  }

  /** Completes the file. */
  async close(): Promise<void> {
    await this.#writer.close();
  }

  /** Closes the file without flushing (after an error). */
  abort(): void {
    this.#writer.abort();
  }
}

/** Reads the bytes of references from a {@link HeadChunkStore} file. */
export class HeadChunkStoreReader {
  #file: Deno.FsFile;
  #buf = new Uint8Array(64 * 1024);

  private constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /** Opens the store file `path`. */
  static open(path: string): HeadChunkStoreReader {
    return new HeadChunkStoreReader(Deno.openSync(path, { read: true }));
  }

  /**
   * `chunks` with each reference replaced by the chunk it refers to (its data valid until the
   * next call); the array is changed in place and returned.
   */
  resolve(chunks: TimedChunk[]): TimedChunk[] {
    let bytes = 0;
    for (const c of chunks) if (isHeadChunkRef(c.encoding)) bytes += headChunkRefLength(c.data);
    if (bytes === 0) return chunks;
    if (bytes > this.#buf.length) this.#buf = new Uint8Array(Math.max(bytes, 2 * this.#buf.length));
    let used = 0;
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i];
      if (!isHeadChunkRef(c.encoding)) continue;
      const view = new DataView(c.data.buffer, c.data.byteOffset, c.data.length);
      const at = view.getFloat64(0, true);
      const length = headChunkRefLength(c.data);
      const data = this.#buf.subarray(used, used + length);
      if (readAtSync(this.#file, at, data) !== length) {
        throw new FormatError(`head chunk store: ends before byte ${at + length}`);
      }
      used += length;
      chunks[i] = { encoding: c.encoding & ~HEAD_CHUNK_REF, mint: c.mint, maxt: c.maxt, data };
    }
    return chunks;
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }
}
