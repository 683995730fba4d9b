/**
 * Synchronous streaming compression (gzip or zstd) into buffers the caller owns, on the native
 * handle of a `node:zlib` stream: the `writeSync(flush, in, inOffset, inLength, out, outOffset,
 * outLength)` binding that Node's (and Deno's) own zlib streams drive.
 *
 * Why not the public stream or one-shot APIs: each hands out its output in freshly allocated
 * buffers. Their memory lives outside V8's heap, and V8 collects spent ones only every few dozen
 * MiB, so compressing a few GiB that way keeps 60-200 MiB of garbage resident. Here nothing is
 * allocated per call: memory is the compressor's own state (a few MiB for zstd -3, 256 KiB for
 * gzip) whatever the stream's length.
 *
 * @module
 */

import zlib from "node:zlib";
import { ZstdFrameWalker } from "./zstd_frames.ts";

/** The compressions a {@link ZlibStreamCompressor} can write. */
export type StreamCompression = "gzip" | "zstd";

/** The native handle of a `node:zlib` stream, as far as it is used here. */
interface _NativeHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inputOffset: number,
    inputLength: number,
    output: Uint8Array,
    outputOffset: number,
    outputLength: number,
  ): void;
}

/** A `node:zlib` stream's internals that expose the handle and its result. */
interface _StreamInternals {
  _handle?: _NativeHandle;
  /** `[output bytes still free, input bytes not consumed]` after each `writeSync`. */
  _writeState?: Uint32Array;
  destroyed: boolean;
  reset(): void;
  close(): void;
}

const _EMPTY = new Uint8Array(0);

/**
 * One compressed stream (one gzip member or one zstd frame with a content checksum), fed input
 * with {@link ZlibStreamCompressor.push} and drained with {@link ZlibStreamCompressor.compressInto}.
 *
 * @example
 * ```ts
 * const compressor = new ZlibStreamCompressor("zstd");
 * const output = new Uint8Array(64 * 1024);
 * compressor.push(new TextEncoder().encode("hello"), true);
 * let length = 0;
 * while (!compressor.finished) length = compressor.compressInto(output, length);
 * compressor.close();
 * ```
 */
export class ZlibStreamCompressor {
  #stream: _StreamInternals;
  #handle: _NativeHandle;
  #state: Uint32Array;
  #flushContinue: number;
  #flushEnd: number;
  #input: Uint8Array = _EMPTY;
  #inputOffset = 0;
  #inputLength = 0;
  #last = false;
  #finished = false;
  /** zstd only: follows the frame written so far, to tell when it is complete. */
  #frame: ZstdFrameWalker | null;
  #frameBytes = 0;
  #compression: StreamCompression;

  /** Starts a stream; `level` defaults to 6 for gzip and 3 for zstd. */
  constructor(compression: StreamCompression, level?: number) {
    const stream = compression === "gzip"
      ? zlib.createGzip({ level: level ?? 6 })
      : zlib.createZstdCompress({
        params: {
          [zlib.constants.ZSTD_c_compressionLevel]: level ?? 3,
          // A content checksum, as gzip has its CRC: damage that still decodes is caught.
          [zlib.constants.ZSTD_c_checksumFlag]: 1,
        },
      });
    const internals = stream as unknown as _StreamInternals;
    if (
      typeof internals._handle?.writeSync !== "function" ||
      !(internals._writeState instanceof Uint32Array)
    ) {
      stream.destroy();
      throw new Error("this runtime's node:zlib has no native handle to compress with");
    }
    this.#stream = internals;
    this.#handle = internals._handle;
    this.#state = internals._writeState;
    this.#flushContinue = compression === "gzip"
      ? zlib.constants.Z_NO_FLUSH
      : zlib.constants.ZSTD_e_continue;
    this.#flushEnd = compression === "gzip" ? zlib.constants.Z_FINISH : zlib.constants.ZSTD_e_end;
    this.#compression = compression;
    this.#frame = compression === "zstd" ? new ZstdFrameWalker() : null;
  }

  /** Whether the input given last has been consumed and more is wanted. */
  get needsInput(): boolean {
    return this.#inputLength === 0 && !this.#last;
  }

  /** Whether the stream is complete: its last input consumed and every byte handed out. */
  get finished(): boolean {
    return this.#finished;
  }

  /**
   * Gives the next input, which must stay unchanged until {@link needsInput} (or
   * {@link finished}). `last` ends the stream after it.
   */
  push(input: Uint8Array, last: boolean): void {
    if (!this.needsInput) {
      throw new Error("ZlibStreamCompressor: input pushed before it was needed");
    }
    this.#input = input;
    this.#inputOffset = 0;
    this.#inputLength = input.length;
    this.#last = last;
  }

  /**
   * Compresses into `output` from `offset` until it is full, the input is consumed, or the stream
   * is finished; returns the new end of the output's used part. Compressed bytes not yet handed
   * out stay in the compressor until the next call.
   */
  compressInto(output: Uint8Array, offset: number): number {
    while (offset < output.length && !this.#finished && !this.needsInput) {
      this.#handle.writeSync(
        this.#last ? this.#flushEnd : this.#flushContinue,
        this.#input,
        this.#inputOffset,
        this.#inputLength,
        output,
        offset,
        output.length - offset,
      );
      // The handle reports failures by destroying its stream (the error event comes later).
      if (this.#stream.destroyed) throw new Error("compression failed");
      const [outputFree, inputLeft] = this.#state;
      this.#inputOffset += this.#inputLength - inputLeft;
      this.#inputLength = inputLeft;
      let end = output.length - outputFree;
      if (this.#frame !== null) {
        // Ending, the zstd handle goes on into a new frame while it has room (in the same call
        // or the next), so whether the frame is complete only its own structure tells.
        const used = this.#frame.consume(output.subarray(offset, end));
        this.#frameBytes += used;
        if (this.#frameBytes > 0 && this.#frame.atBoundary) {
          if (!this.#last) throw new Error("compression failed: the zstd frame ended early");
          this.#finished = true;
          end = offset + used;
        }
      } else if (this.#last && inputLeft === 0 && outputFree > 0) {
        // Ending, deflate writes until the output is full: room left means it is done.
        this.#finished = true;
      }
      offset = end;
    }
    if (this.#inputLength === 0) {
      // Let go of the consumed input (the caller reuses it); an ending stream flushes from here.
      this.#input = _EMPTY;
      this.#inputOffset = 0;
    }
    return offset;
  }

  /**
   * Starts the next stream (gzip member, zstd frame) with the same settings and native state,
   * which is cheaper than a new compressor, and fragments the native heap less.
   */
  restart(): void {
    this.#stream.reset();
    this.#input = _EMPTY;
    this.#inputOffset = 0;
    this.#inputLength = 0;
    this.#last = false;
    this.#finished = false;
    this.#frame = this.#compression === "zstd" ? new ZstdFrameWalker() : null;
    this.#frameBytes = 0;
  }

  /** Frees the compressor's native state. */
  close(): void {
    this.#input = _EMPTY;
    this.#stream.close();
  }
}
