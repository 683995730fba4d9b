/**
 * Compression on every core: a {@link CompressingSink} that cuts what it is given into frames of
 * `frameBytes` (each a complete gzip member or zstd frame, which every gzip and zstd reader takes
 * one after the other as one stream) and compresses them in parallel: in worker threads
 * (`compressor_worker.ts`) and, while the workers are busy, in the calling thread. The compressed
 * frames reach the sink in order.
 *
 * The calling thread also reads, hashes and tars, so it takes a frame only when every worker has
 * `workerBacklog` frames unfinished or has not started yet (loading its modules takes up to a
 * second, which the calling thread would otherwise spend waiting), and the first frame (a stream
 * shorter than one frame starts no thread at all); it compresses its frames only when it would
 * otherwise wait: for an input buffer to come back, or for the end. In the
 * {@link FrameCompressor.background} mode, for a caller that writes what it archives meanwhile,
 * it takes none: frames wait for a worker, and the caller's writes for them.
 *
 * Memory is bounded by buffers that are reused rather than reallocated (spent buffers are memory
 * outside V8's heap, which it frees late), all `bufferBytes` long: input buffers for
 * `workerBacklog` frames per worker and `queueDepth` more (2 + 4 MiB by default), and per lane (a
 * worker, or the calling thread) `queueDepth` output buffers plus enough for a whole frame, so that
 * a lane can finish its frame while an earlier frame is still being written (2 × 3 MiB); and one
 * compressor's state per lane. When every input buffer is out, {@link FrameCompressor.write}
 * waits for one to come back; a lane whose output buffers are all out (waiting for an earlier
 * frame, or for the sink) waits for one to be recycled.
 *
 * @module
 */

import type { CompressingSink, Sink } from "./compression.ts";
import type { StartWorker } from "./compressor_worker.ts";
import { FramePump, type FramePumpOptions, type FromLane, type ToLane } from "./frame_pump.ts";
import type { StreamCompression } from "./zlib_stream.ts";

/** Tuning of the compression; every field has a default. */
export interface CompressorOptions {
  /** Compression level: gzip 1-9 (default 6), zstd 1-19 (default 3). */
  level?: number;
  /**
   * Uncompressed bytes per frame (default 2 MiB). Frames are compressed independently, so smaller
   * ones compress a little worse (zstd -3 on TSDB files: 1 MiB frames 2.5% larger, 4 MiB 0.5%).
   */
  frameBytes?: number;
  /** Size of each buffer handed to and from a lane (default 256 KiB). */
  bufferBytes?: number;
  /** Buffers each way per lane (default 4, at least 2). */
  queueDepth?: number;
  /** Worker threads (default 1; 0: the calling thread compresses every frame). */
  workers?: number;
  /** Frames a worker may have unfinished before the calling thread takes the next (default 2). */
  workerBacklog?: number;
}

/** The defaults of {@link CompressorOptions}. */
export const COMPRESSOR_DEFAULTS: Readonly<Required<Omit<CompressorOptions, "level">>> = {
  frameBytes: 2 * 1024 * 1024,
  bufferBytes: 256 * 1024,
  queueDepth: 4,
  workers: 1,
  workerBacklog: 2,
};

/** Where frames are compressed: a worker, or the calling thread. */
interface _Lane {
  post(message: ToLane, transfer: ArrayBuffer[]): void;
  /** The calling thread's lane only: compresses up to one input buffer; false when it cannot. */
  work?(): boolean;
  /** Frames sent to the lane whose last output has not come back, oldest first. */
  frames: number[];
  /**
   * Whether the lane takes frames: a worker once it has started (loading its modules takes a
   * while, during which the calling thread compresses instead of waiting for it).
   */
  ready: boolean;
  stop(): void;
}

/** A compressed piece waiting for its turn to be written. */
interface _Output {
  lane: _Lane;
  buffer: ArrayBuffer;
  length: number;
  frameEnd: boolean;
}

/** Compresses frames in parallel into `sink`; see the module doc. */
export class FrameCompressor implements CompressingSink {
  #sink: Sink;
  #options: Required<Omit<CompressorOptions, "level">>;
  #pumpOptions: FramePumpOptions;
  #inputBuffers: number;
  #workers: _Lane[] = [];
  #inline: _Lane | null = null;
  #spare: ArrayBuffer[] = [];
  #allocated = 0;
  #filling: Uint8Array | null = null;
  #filled = 0;
  /** The frame being filled, and how much of it is. */
  #frame = 0;
  #frameFill = 0;
  #frameLane: _Lane | null = null;
  /** Compressed pieces by frame, and the frame whose pieces are written next. */
  #outputs = new Map<number, _Output[]>();
  #nextWrite = 0;
  #draining = false;
  #ended = false;
  #stopped = false;
  #failure: { error: unknown } | null = null;
  #wake: (() => void) | null = null;
  #frameCounts = { workers: 0, inline: 0 };
  #background = false;

  /** A compressor writing `compression` into `sink`. */
  constructor(sink: Sink, compression: StreamCompression, options: CompressorOptions = {}) {
    const settings = { ...COMPRESSOR_DEFAULTS };
    for (const key of Object.keys(settings) as (keyof typeof settings)[]) {
      const value = options[key] ?? settings[key];
      // Two buffers each way at least: one filled while the lane works on the other.
      const least = key === "queueDepth" ? 2 : key === "workers" ? 0 : 1;
      if (!Number.isSafeInteger(value) || value < least) {
        throw new RangeError(`${key} must be an integer of at least ${least}, not ${value}`);
      }
      settings[key] = value;
    }
    this.#sink = sink;
    this.#options = settings;
    const frameBuffers = Math.ceil(settings.frameBytes / settings.bufferBytes);
    this.#inputBuffers = settings.queueDepth +
      settings.workers * settings.workerBacklog * frameBuffers;
    this.#pumpOptions = {
      compression,
      level: options.level,
      outputBytes: settings.bufferBytes,
      outputBuffers: settings.queueDepth + frameBuffers,
    };
  }

  /** Frames given to the workers and to the calling thread so far. */
  get frames(): { workers: number; inline: number } {
    return { ...this.#frameCounts };
  }

  /** Workers that have started (and take frames). */
  get readyWorkers(): number {
    return this.#workers.filter((w) => w.ready).length;
  }

  /**
   * Whether only the workers compress (default false). Set while the calling thread has other
   * work to do (writing the data being archived): frames then wait for a worker instead of taking
   * the calling thread's time. Without workers the calling thread compresses all the same.
   */
  get background(): boolean {
    return this.#background;
  }

  set background(on: boolean) {
    this.#background = on;
    this.#signal();
  }

  /** Copies `chunk` into the buffers (the caller may reuse it once this resolves). */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.#ended) throw new Error("FrameCompressor: write after end");
    const { frameBytes } = this.#options;
    let at = 0;
    while (at < chunk.length) {
      this.#throwIfFailed();
      this.#filling ??= await this.#takeBuffer();
      this.#frameLane ??= await this.#chooseLane();
      const n = Math.min(
        chunk.length - at,
        this.#filling.length - this.#filled,
        frameBytes - this.#frameFill,
      );
      this.#filling.set(chunk.subarray(at, at + n), this.#filled);
      this.#filled += n;
      this.#frameFill += n;
      at += n;
      if (this.#frameFill === frameBytes) this.#send(true);
      else if (this.#filled === this.#filling.length) this.#send(false);
    }
  }

  /** Ends the stream and waits until every compressed byte has reached the sink. */
  async end(): Promise<void> {
    if (this.#ended) throw new Error("FrameCompressor: end called twice");
    this.#ended = true;
    this.#throwIfFailed();
    // The frame under way ends here; a stream with no bytes at all is one empty frame.
    if (this.#frameFill > 0 || this.#frame === 0) {
      this.#filling ??= await this.#takeBuffer();
      this.#frameLane ??= await this.#chooseLane();
      this.#send(true);
    }
    while (this.#nextWrite < this.#frame) {
      this.#throwIfFailed();
      if (!this.#workInline()) await this.#changed();
    }
    this.#throwIfFailed();
    this.#stop();
  }

  /** Stops the workers and drops everything not yet written. */
  destroy(): void {
    this.#fail(new Error("compression stopped"));
  }

  /** An input buffer: a spare one, a new one while the lanes have fewer, or the next returned. */
  async #takeBuffer(): Promise<Uint8Array> {
    const { bufferBytes } = this.#options;
    while (true) {
      this.#throwIfFailed();
      const spare = this.#spare.pop();
      if (spare !== undefined) return new Uint8Array(spare);
      if (this.#allocated < this.#inputBuffers) {
        this.#allocated++;
        return new Uint8Array(bufferBytes);
      }
      if (!this.#workInline()) await this.#changed();
    }
  }

  /**
   * The lane for a new frame: a worker with room, a new worker, or this thread; in the background,
   * the first worker with room, waited for.
   */
  async #chooseLane(): Promise<_Lane> {
    const { workers, workerBacklog } = this.#options;
    while (true) {
      this.#throwIfFailed();
      const lane = this.#workers.find((w) => w.ready && w.frames.length < workerBacklog);
      // The first frame waits for no worker (a stream shorter than one frame starts none), unless
      // the calling thread is busy elsewhere.
      const wanted = this.#frame > 0 || this.#inBackground();
      if (this.#workers.length < workers && wanted) this.#startWorker();
      if (lane || !this.#inBackground()) {
        if (lane) this.#frameCounts.workers++;
        else this.#frameCounts.inline++;
        const chosen = lane ?? this.#inline ?? this.#startInline();
        chosen.frames.push(this.#frame);
        return chosen;
      }
      await this.#changed();
    }
  }

  /** Whether frames wait for the workers (see {@link FrameCompressor.background}). */
  #inBackground(): boolean {
    return this.#background && this.#options.workers > 0;
  }

  /**
   * Compresses a piece of a frame of this thread's, if it has one and may: in the background
   * only frames it had taken before.
   */
  #workInline(): boolean {
    const inline = this.#inline;
    if (inline === null || (this.#inBackground() && inline.frames.length === 0)) return false;
    return inline.work!();
  }

  /** Hands the buffer being filled to the frame's lane (it is unusable here afterwards). */
  #send(frameEnd: boolean): void {
    const buffer = this.#filling!.buffer as ArrayBuffer;
    const length = this.#filled;
    const lane = this.#frameLane!;
    this.#filling = null;
    this.#filled = 0;
    if (frameEnd) {
      this.#frame++;
      this.#frameFill = 0;
      this.#frameLane = null;
    }
    lane.post({ kind: "input", buffer, length, frameEnd }, [buffer]);
  }

  #startWorker(): void {
    const worker = new Worker(new URL("./compressor_worker.ts", import.meta.url).href, {
      type: "module",
    });
    const lane: _Lane = {
      post: (message, transfer) => worker.postMessage(message, transfer),
      frames: [],
      ready: false,
      stop: () => worker.terminate(),
    };
    worker.onmessage = (event: MessageEvent<FromLane>) => this.#receive(lane, event.data);
    worker.onerror = (event) => {
      // Handled here: unhandled, a worker's error would end the whole process.
      event.preventDefault();
      this.#fail(new Error(`the compression worker failed: ${event.message}`));
    };
    worker.onmessageerror = () => this.#fail(new Error("the compression worker sent garbage"));
    worker.postMessage({ kind: "start", options: this.#pumpOptions } satisfies StartWorker);
    this.#workers.push(lane);
  }

  #startInline(): _Lane {
    const pump = new FramePump(this.#pumpOptions, (message) => this.#receive(lane, message));
    const lane: _Lane = {
      post: (message) => pump.receive(message),
      work: () => pump.run(1),
      frames: [],
      ready: true,
      stop: () => pump.close(),
    };
    this.#inline = lane;
    return lane;
  }

  #receive(lane: _Lane, message: FromLane): void {
    if (this.#stopped) return;
    switch (message.kind) {
      case "consumed":
        this.#spare.push(message.buffer);
        break;
      case "output": {
        const frame = lane.frames[0];
        if (message.frameEnd) lane.frames.shift();
        const outputs = this.#outputs.get(frame) ?? [];
        outputs.push({ lane, ...message });
        this.#outputs.set(frame, outputs);
        void this.#drain();
        break;
      }
      case "failed":
        this.#fail(new Error(`compression failed: ${message.message}`));
        break;
      case "ready":
        lane.ready = true;
        break;
    }
    this.#signal();
  }

  /** Writes the pieces of the frame whose turn it is, in order, recycling each buffer after. */
  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (!this.#stopped) {
        const output = this.#outputs.get(this.#nextWrite)?.shift();
        if (output === undefined) return;
        await this.#sink(new Uint8Array(output.buffer, 0, output.length));
        if (this.#stopped) return;
        output.lane.post({ kind: "recycle", buffer: output.buffer }, [output.buffer]);
        if (output.frameEnd) this.#outputs.delete(this.#nextWrite++);
        this.#signal();
      }
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#draining = false;
    }
  }

  /** Resolves at the next message from a lane, written piece or failure. */
  #changed(): Promise<void> {
    return new Promise((resolve) => (this.#wake = resolve));
  }

  #signal(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  #fail(error: unknown): void {
    this.#failure ??= { error };
    this.#stop();
    this.#signal();
  }

  #throwIfFailed(): void {
    if (this.#failure !== null) throw this.#failure.error;
  }

  #stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const lane of this.#workers) lane.stop();
    this.#inline?.stop();
    this.#workers = [];
    this.#inline = null;
    this.#spare = [];
    this.#filling = null;
    this.#outputs.clear();
  }
}
