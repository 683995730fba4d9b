/**
 * Streaming compression of the archive with `node:zlib` (gzip and zstd are native there), with
 * backpressure so that memory stays bounded whatever the archive size.
 *
 * @module
 */

import { once } from "node:events";
import { Readable } from "node:stream";
import zlib from "node:zlib";
import { PromcaseError } from "../errors.ts";

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
  /** Takes uncompressed bytes. The chunk must not be changed afterwards. */
  write: Sink;
  /** Flushes the compressor and waits until everything reached the inner sink. */
  end(): Promise<void>;
  /** Stops compressing after a failure. */
  destroy(): void;
}

/** Wraps `sink` so that what is written is compressed with `compression` first. */
export function compressInto(
  sink: Sink,
  compression: Compression,
  level?: number,
): CompressingSink {
  if (compression === "none") return { write: sink, end: () => Promise.resolve(), destroy() {} };
  const stream = compression === "gzip"
    ? zlib.createGzip({ level: level ?? 6 })
    : zlib.createZstdCompress({
      params: { [zlib.constants.ZSTD_c_compressionLevel]: level ?? 3 },
    });
  // One consumer drains the compressor into the sink; a failure on either side ends both.
  const drained = (async () => {
    for await (const chunk of stream) await sink(chunk as Uint8Array);
  })();
  drained.catch(() => stream.destroy());
  const failed = drained.then(() => {
    throw new Error("compressor ended early");
  });
  failed.catch(() => {});
  return {
    async write(chunk) {
      if (!stream.write(chunk)) await Promise.race([once(stream, "drain"), failed]);
    },
    async end() {
      stream.end();
      await drained;
    },
    destroy() {
      stream.destroy();
    },
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
 * the decompressor become one-line "archive is corrupt" or "archive is truncated" errors.
 */
export async function* decompress(
  source: AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  const iterator = source[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) throw new PromcaseError("archive is empty");
  const compression = detectCompression(first.value);
  const rest: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: () => {
      let sentFirst = false;
      return {
        next: () => {
          if (!sentFirst) {
            sentFirst = true;
            return Promise.resolve({ done: false, value: first.value });
          }
          return iterator.next();
        },
      };
    },
  };
  if (compression === "none") {
    yield* rest;
    return;
  }
  const inflater = compression === "gzip" ? zlib.createGunzip() : zlib.createZstdDecompress();
  const input = Readable.from(rest, { objectMode: false });
  input.on("error", (err) => inflater.destroy(err));
  input.pipe(inflater);
  try {
    for await (const chunk of inflater) yield chunk as Uint8Array;
  } catch (err) {
    if (err instanceof PromcaseError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    if (/unexpected end|truncated|incomplete/i.test(message)) {
      throw new PromcaseError(`archive is truncated (${compression} stream ends early)`);
    }
    throw new PromcaseError(`archive is corrupt (${compression}: ${message})`);
  } finally {
    input.unpipe(inflater);
    input.destroy();
    inflater.destroy();
  }
}
