/**
 * Streaming compression of the archive with `node:zlib` (gzip and zstd are native there): writing
 * compresses frames in parallel on every core (`compressor.ts`), reading decompresses here.
 * Memory stays bounded whatever the archive size: writing by a fixed set of reused buffers,
 * reading by backpressure.
 *
 * @module
 */

import type { Duplex } from "node:stream";
import zlib from "node:zlib";
import { PromcaseError } from "../errors.ts";
import { type CompressorOptions, FrameCompressor } from "./compressor.ts";
import { ZstdFrameWalker } from "./zstd_frames.ts";

/** The compressions an archive can have. */
export type Compression = "gzip" | "zstd" | "none";

/** Every value of {@link Compression}, for flag validation. */
export const COMPRESSIONS: readonly Compression[] = ["gzip", "zstd", "none"];

/** File name suffix for each compression. */
export const COMPRESSION_SUFFIX: Record<Compression, string> = {
  gzip: ".tar.gz",
  zstd: ".tar.zst",
  none: ".tar",
};

/** A byte sink: resolves once it no longer needs the chunk. */
export type Sink = (chunk: Uint8Array) => Promise<void>;

/** A sink that compresses into another sink. */
export interface CompressingSink {
  /** Takes uncompressed bytes; the chunk may be reused once this resolves. */
  write: Sink;
  /** Flushes the compressor and waits until everything reached the inner sink. */
  end(): Promise<void>;
  /** Stops compressing after a failure. */
  destroy(): void;
  /**
   * Where compression can move off the calling thread: whether it runs only there while the
   * calling thread is busy with other work (see {@link FrameCompressor.background}).
   */
  setBackground?(on: boolean): void;
}

/**
 * Wraps `sink` so that what is written is compressed with `compression` first, in frames
 * compressed in parallel (see {@link FrameCompressor}, which `options` tune).
 */
export function compressInto(
  sink: Sink,
  compression: Compression,
  options: CompressorOptions = {},
): CompressingSink {
  if (compression === "none") return { write: sink, end: () => Promise.resolve(), destroy() {} };
  const compressor = new FrameCompressor(sink, compression, options);
  return {
    write: (chunk) => compressor.write(chunk),
    end: () => compressor.end(),
    destroy: () => compressor.destroy(),
    setBackground: (on) => (compressor.background = on),
  };
}

const _GZIP_MAGIC = [0x1f, 0x8b];
const _ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/** Tells the compression of an archive from its first bytes. */
export function detectCompression(head: Uint8Array): Compression {
  const starts = (magic: number[]) => magic.every((b, i) => head[i] === b);
  if (starts(_GZIP_MAGIC)) return "gzip";
  if (starts(_ZSTD_MAGIC)) return "zstd";
  return "none";
}

/**
 * Decompresses a byte stream, detecting gzip, zstd or plain tar from its first bytes. Errors of
 * the decompressor become one-line "archive is corrupt" or "archive is truncated" errors, raised
 * only after every byte decompressed before the damage was handed on, so that the reader can say
 * in which entry the stream broke. An error of the source itself is passed on as it is.
 *
 * zstd input is cut at frame boundaries and each frame gets its own decoder: Node's zstd stream
 * decoder drops whatever follows the first frame of a write, and accepts a frame cut short at the
 * end of its input, so a walk over the frame structure both keeps every frame and notices a cut.
 */
export async function* decompress(
  source: AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  const iterator = source[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) throw new PromcaseError("archive is empty");
  const input = new _Pieces(first.value, iterator);
  try {
    const compression = detectCompression(first.value);
    if (compression === "none") {
      yield* input.rest();
    } else if (compression === "gzip") {
      yield* _inflate(zlib.createGunzip(), input.rest(), "gzip");
    } else {
      const frames = new ZstdFrameWalker();
      while (await input.more()) {
        yield* _inflate(zlib.createZstdDecompress(), _nextFrame(frames, input), "zstd", true);
      }
      if (!frames.atBoundary) {
        throw new PromcaseError("archive is truncated (zstd stream ends early)");
      }
    }
  } finally {
    await iterator.return?.();
  }
}

/** The source's pieces, with room to push back the unread rest of one. */
class _Pieces {
  #iterator: AsyncIterator<Uint8Array>;
  #pending: Uint8Array[];

  constructor(first: Uint8Array, iterator: AsyncIterator<Uint8Array>) {
    this.#pending = [first];
    this.#iterator = iterator;
  }

  /** The next piece, or null at the end. */
  async next(): Promise<Uint8Array | null> {
    const pending = this.#pending.shift();
    if (pending !== undefined) return pending;
    const next = await this.#iterator.next();
    return next.done ? null : next.value;
  }

  /** Puts back bytes to be read again first. */
  unread(bytes: Uint8Array): void {
    if (bytes.length > 0) this.#pending.unshift(bytes);
  }

  /** Whether any bytes are left. */
  async more(): Promise<boolean> {
    const piece = await this.next();
    if (piece === null) return false;
    this.unread(piece);
    return true;
  }

  /** Everything left. */
  async *rest(): AsyncGenerator<Uint8Array> {
    for (let piece = await this.next(); piece !== null; piece = await this.next()) yield piece;
  }
}

/**
 * Runs `input` through `inflater` in a pull loop. The stream's own async iterator drops output
 * still buffered when the inflater fails, which would hide how far the good data went.
 */
async function* _inflate(
  inflater: Duplex,
  input: AsyncIterable<Uint8Array>,
  compression: Compression,
  strayErrors = false,
): AsyncGenerator<Uint8Array> {
  let failure: { error: unknown } | null = null;
  const deliver = (error: unknown) => {
    failure ??= { error };
    signal();
  };
  if (strayErrors) _watchStrayZstdErrors(deliver);
  let ended = false;
  let stopped = false;
  let wake: (() => void) | null = null;
  const signal = () => {
    wake?.();
    wake = null;
  };
  inflater.on("readable", signal);
  inflater.on("end", () => {
    ended = true;
    signal();
  });
  inflater.on("error", (error) => {
    failure ??= { error };
    signal();
  });
  let sourceFailure: { error: unknown } | null = null;
  const feeding = (async () => {
    for await (const piece of input) {
      if (stopped || failure !== null || ended) return;
      if (!inflater.write(piece)) await _anyOf(inflater, ["drain", "close", "end", "error"]);
    }
    if (!stopped && failure === null && !ended) inflater.end();
  })().catch((error) => {
    sourceFailure = { error };
    inflater.destroy();
    signal();
  });
  try {
    while (true) {
      const chunk = inflater.read() as Uint8Array | null;
      if (chunk !== null) {
        yield chunk;
        continue;
      }
      if (sourceFailure !== null) throw (sourceFailure as { error: unknown }).error;
      if (failure !== null) throw _inflateError((failure as { error: unknown }).error, compression);
      if (ended) {
        // The decoder may end by itself (zstd, at its frame's end): let the feeder finish.
        await feeding;
        if (sourceFailure !== null) throw (sourceFailure as { error: unknown }).error;
        return;
      }
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    stopped = true;
    inflater.destroy();
    await feeding;
    if (strayErrors) _unwatchStrayZstdErrors(deliver);
  }
}

// Deno's zstd decoder throws some errors (a frame checksum mismatch) from a callback instead of
// emitting them on the stream: they would end the process as uncaught exceptions with a stack
// trace. While a zstd decoder runs, such errors are taken from the global error event and handed
// to it as its failure.
const _strayZstdWatchers = new Set<(error: unknown) => void>();

function _onStrayError(event: ErrorEvent): void {
  const error = event.error;
  if (!(error instanceof Error) || !/^Zstd decompress error/.test(error.message)) return;
  event.preventDefault();
  for (const deliver of _strayZstdWatchers) deliver(error);
}

function _watchStrayZstdErrors(deliver: (error: unknown) => void): void {
  if (_strayZstdWatchers.size === 0) globalThis.addEventListener("error", _onStrayError);
  _strayZstdWatchers.add(deliver);
}

function _unwatchStrayZstdErrors(deliver: (error: unknown) => void): void {
  _strayZstdWatchers.delete(deliver);
  if (_strayZstdWatchers.size === 0) globalThis.removeEventListener("error", _onStrayError);
}

/** Resolves at the first of `events`, leaving no listener behind. */
function _anyOf(emitter: Duplex, events: string[]): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      for (const event of events) emitter.off(event, done);
      resolve();
    };
    for (const event of events) emitter.on(event, done);
  });
}

function _inflateError(err: unknown, compression: Compression): PromcaseError {
  if (err instanceof PromcaseError) return err;
  const message = (err instanceof Error ? err.message : String(err))
    .replace(/^Zstd decompress error: /i, "");
  if (/unexpected end|truncated|incomplete/i.test(message)) {
    return new PromcaseError(`archive is truncated (${compression} stream ends early)`);
  }
  return new PromcaseError(`archive is corrupt (${compression}: ${message})`);
}

/** The bytes of the next zstd frame, read from `input` (which keeps what follows the frame). */
async function* _nextFrame(frames: ZstdFrameWalker, input: _Pieces): AsyncGenerator<Uint8Array> {
  let started = false;
  while (!(started && frames.atBoundary)) {
    const piece = await input.next();
    if (piece === null) return;
    started = true;
    const used = frames.consume(piece);
    input.unread(piece.subarray(used));
    if (used > 0) yield piece.subarray(0, used);
  }
}
