/**
 * One compression lane of `compressor.ts`: compresses the frames it is given (each a complete
 * gzip member or zstd frame) from input buffers into output buffers, in order, and hands every
 * buffer back when it is done with it. It runs in a worker (`compressor_worker.ts`), which
 * compresses whenever it can, or as the calling thread's own lane, which compresses only when the
 * calling thread has nothing else to do; the messages are the same either way.
 *
 * Memory: the inputs it was sent, at most `outputBuffers` output buffers of `outputBytes` (it
 * waits for one to be recycled when all are out), and one compressor's state.
 *
 * @module
 */

import { type StreamCompression, ZlibStreamCompressor } from "./zlib_stream.ts";

/** How a lane compresses. */
export interface FramePumpOptions {
  /** gzip or zstd. */
  compression: StreamCompression;
  /** The level; the compressor's default when absent. */
  level?: number;
  /** Size of each output buffer. */
  outputBytes: number;
  /** How many output buffers may exist at once. */
  outputBuffers: number;
}

/** Messages a lane takes. */
export type ToLane =
  /** Bytes to compress: the first `length` of `buffer`; `frameEnd` completes the frame. */
  | { kind: "input"; buffer: ArrayBuffer; length: number; frameEnd: boolean }
  /** An output buffer written out, back for reuse. */
  | { kind: "recycle"; buffer: ArrayBuffer };

/** Messages a lane sends, in order. */
export type FromLane =
  /** An input buffer, consumed. */
  | { kind: "consumed"; buffer: ArrayBuffer }
  /** Compressed bytes: the first `length` of `buffer`; `frameEnd` after the frame's last byte. */
  | { kind: "output"; buffer: ArrayBuffer; length: number; frameEnd: boolean }
  /** Compression failed; nothing more comes. */
  | { kind: "failed"; message: string }
  /** A worker's lane is set up (its first message). */
  | { kind: "ready" };

/** Sends a message (transferring `transfer` when it crosses threads). */
export type PostFromLane = (message: FromLane, transfer: ArrayBuffer[]) => void;

/** A lane's compressing state machine; feed it with {@link FramePump.receive}. */
export class FramePump {
  #options: FramePumpOptions;
  #post: PostFromLane;
  #inputs: { buffer: ArrayBuffer; length: number; frameEnd: boolean }[] = [];
  #current: ArrayBuffer | null = null;
  /** The frame under way; null between frames. */
  #compressor: ZlibStreamCompressor | null = null;
  /** The compressor's state, kept from frame to frame (restarted, not reallocated). */
  #idle: ZlibStreamCompressor | null = null;
  #spare: ArrayBuffer[] = [];
  #allocated = 0;
  #output: Uint8Array | null = null;
  #outputLength = 0;
  #failed = false;

  /** A lane compressing with `options`, sending with `post`. */
  constructor(options: FramePumpOptions, post: PostFromLane) {
    this.#options = options;
    this.#post = post;
  }

  /** Takes a message; {@link FramePump.run} does the work. */
  receive(message: ToLane): void {
    if (message.kind === "input") this.#inputs.push(message);
    else this.#spare.push(message.buffer);
  }

  /**
   * Compresses as far as the inputs and output buffers at hand allow, or until `maxInputs` input
   * buffers have been consumed; returns whether it got anywhere (consumed input or sent output).
   */
  run(maxInputs = Infinity): boolean {
    if (this.#failed) return false;
    try {
      return this.#pump(maxInputs);
    } catch (error) {
      this.#failed = true;
      this.close();
      this.#post({
        kind: "failed",
        message: error instanceof Error ? error.message : String(error),
      }, []);
      return true;
    }
  }

  /** Frees the compressor's native state. */
  close(): void {
    (this.#compressor ?? this.#idle)?.close();
    this.#compressor = null;
    this.#idle = null;
  }

  #pump(maxInputs: number): boolean {
    let consumed = 0;
    let progress = false;
    while (true) {
      if (this.#compressor === null || this.#compressor.needsInput) {
        if (this.#current !== null) {
          this.#post({ kind: "consumed", buffer: this.#current }, [this.#current]);
          this.#current = null;
          progress = true;
          if (++consumed === maxInputs) return progress;
        }
        const next = this.#inputs.shift();
        if (next === undefined) return progress;
        this.#current = next.buffer;
        this.#compressor ??= this.#idle ??
          new ZlibStreamCompressor(this.#options.compression, this.#options.level);
        this.#idle = null;
        this.#compressor.push(new Uint8Array(next.buffer, 0, next.length), next.frameEnd);
      }
      if (this.#output === null) {
        let buffer = this.#spare.pop();
        if (buffer === undefined && this.#allocated < this.#options.outputBuffers) {
          this.#allocated++;
          buffer = new ArrayBuffer(this.#options.outputBytes);
        }
        // Every output buffer is out: go on when one comes back.
        if (buffer === undefined) return progress;
        this.#output = new Uint8Array(buffer);
        this.#outputLength = 0;
      }
      const compressor = this.#compressor;
      this.#outputLength = compressor.compressInto(this.#output, this.#outputLength);
      const frameEnd = compressor.finished;
      if (this.#outputLength === this.#output.length || frameEnd) {
        const buffer = this.#output.buffer as ArrayBuffer;
        this.#output = null;
        this.#post({ kind: "output", buffer, length: this.#outputLength, frameEnd }, [buffer]);
        progress = true;
      }
      if (frameEnd) {
        compressor.restart();
        this.#idle = compressor;
        this.#compressor = null;
      }
    }
  }
}
