/**
 * Decoding remote-read responses (`storage/remote/chunked.go`, `codec.go`).
 *
 * Streamed (`application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse`): frames of
 * `uvarint size | BE32 CRC32C(message) | message`, each a `ChunkedReadResponse` with one series (a
 * series may continue in the next frames), read one frame at a time from the body stream.
 *
 * Sampled (`application/x-protobuf`, `Content-Encoding: snappy`): one snappy block holding a
 * `ReadResponse`, decoded with the raw-bits view of `samples_bits.proto` so NaN payloads survive.
 *
 * @module
 */

import { snappyLength } from "../tsdb/wlog.ts";
import { fromBinary } from "@bufbuild/protobuf";
import { uncompress as snappyUncompress } from "snappyjs";
import { crc32c } from "../tsdb/crc32c.ts";
import { type ChunkedReadResponse, ChunkedReadResponseSchema } from "./proto/remote_pb.ts";
import {
  type ReadResponse as BitsReadResponse,
  ReadResponseSchema,
} from "./proto/samples_bits_pb.ts";
import { HttpFailure } from "./http.ts";

/** Reads a byte stream in pieces of exactly the sizes asked for. */
export class StreamReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunks: Uint8Array[] = [];
  #available = 0;
  #done = false;
  #position = 0;
  /** Called whenever bytes arrive (resets idle timers); gets the number of new bytes. */
  onData?: (bytes: number) => void;

  /** Reads from `stream` (which this reader locks). */
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** Bytes handed out so far. */
  get position(): number {
    return this.#position;
  }

  async #fill(n: number): Promise<boolean> {
    while (this.#available < n) {
      if (this.#done) return false;
      const { done, value } = await this.#reader.read();
      if (done) {
        this.#done = true;
        return this.#available >= n;
      }
      if (value.length === 0) continue;
      this.#chunks.push(value);
      this.#available += value.length;
      this.onData?.(value.length);
    }
    return true;
  }

  #take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.#chunks[0];
    let out: Uint8Array;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      out = new Uint8Array(n);
      let at = 0;
      while (at < n) {
        const c = this.#chunks[0];
        const k = Math.min(c.length, n - at);
        out.set(c.subarray(0, k), at);
        at += k;
        if (k === c.length) this.#chunks.shift();
        else this.#chunks[0] = c.subarray(k);
      }
    }
    this.#available -= n;
    this.#position += n;
    return out;
  }

  /** Whether the stream has ended with nothing left to read. */
  async atEnd(): Promise<boolean> {
    return !(await this.#fill(1));
  }

  /** Exactly `n` bytes, or `undefined` if the stream ends first (then nothing is consumed). */
  async read(n: number): Promise<Uint8Array | undefined> {
    if (n === 0) return new Uint8Array(0);
    if (!(await this.#fill(n))) return undefined;
    return this.#take(n);
  }

  /** A uvarint (up to 2^53), `undefined` at the end of the stream, or -1 when malformed. */
  async uvarint(): Promise<number | undefined> {
    let value = 0;
    for (let i = 0, mul = 1; i < 8; i++, mul *= 128) {
      if (!(await this.#fill(1))) return i === 0 ? undefined : -1;
      const b = this.#take(1)[0];
      value += (b & 0x7f) * mul;
      if (b < 0x80) return value;
    }
    return -1;
  }

  /** Up to `max` of the remaining bytes (for error messages). */
  async rest(max: number): Promise<Uint8Array> {
    await this.#fill(max);
    return this.#take(Math.min(max, this.#available));
  }

  /** Stops reading and releases the stream. */
  async cancel(): Promise<void> {
    this.#chunks = [];
    this.#available = 0;
    await this.#reader.cancel().catch(() => {});
  }
}

function _uvarintBytes(v: number): number[] {
  const out: number[] = [];
  let x = v;
  while (x >= 0x80) {
    out.push((x % 128) | 0x80);
    x = Math.floor(x / 128);
  }
  out.push(x);
  return out;
}

/**
 * After a frame did not check out: Prometheus writes its error text into the body when a query
 * fails after streaming has started (`http.Error` on an already started response). If what
 * follows reads as text, that is the server's message; otherwise the stream is corrupt.
 */
async function _badFrame(
  r: StreamReader,
  consumed: Uint8Array,
  why: string,
): Promise<HttpFailure> {
  const rest = await r.rest(600);
  const bytes = new Uint8Array(consumed.length + rest.length);
  bytes.set(consumed);
  bytes.set(rest, consumed.length);
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  const printable = text.replace(/[^\x20-\x7e\t\r\n]/g, "").length;
  if (bytes.length > 0 && printable >= bytes.length * 0.95) {
    const one = text.replace(/\s+/g, " ").trim().slice(0, 300);
    return new HttpFailure(`the server failed in the middle of the response: ${one}`, true);
  }
  return new HttpFailure(`corrupt streamed response: ${why}`, true);
}

/** Options of {@link readChunkedFrames}. */
export interface FrameOptions {
  /** Largest frame accepted (default 64 MiB; Prometheus' default frame is 1 MiB). */
  maxFrameBytes?: number;
  /** Called with the size of each frame. */
  onFrame?: (bytes: number) => void;
}

/**
 * Yields the `ChunkedReadResponse` messages of a streamed response, one frame at a time. Throws
 * {@link HttpFailure} for a CRC mismatch, a cut-off frame or the server's mid-stream error text.
 */
export async function* readChunkedFrames(
  r: StreamReader,
  options: FrameOptions = {},
): AsyncGenerator<ChunkedReadResponse> {
  const maxFrame = options.maxFrameBytes ?? 64 * 1024 * 1024;
  for (;;) {
    const at = r.position;
    const size = await r.uvarint();
    if (size === undefined) return;
    const sizeBytes = size < 0 ? [] : _uvarintBytes(size);
    if (size < 0 || size > maxFrame) {
      throw await _badFrame(
        r,
        new Uint8Array(sizeBytes),
        size < 0 ? `bad frame length at byte ${at}` : `frame of ${size} bytes at byte ${at}`,
      );
    }
    const crcBytes = await r.read(4);
    if (!crcBytes) {
      throw await _badFrame(r, new Uint8Array(sizeBytes), `response cut off at byte ${at}`);
    }
    const data = await r.read(size);
    if (!data) {
      throw await _badFrame(
        r,
        new Uint8Array([...sizeBytes, ...crcBytes]),
        `response cut off in the frame at byte ${at}`,
      );
    }
    const want = ((crcBytes[0] << 24) | (crcBytes[1] << 16) | (crcBytes[2] << 8) | crcBytes[3]) >>>
      0;
    if (crc32c(data) !== want) {
      const consumed = new Uint8Array(sizeBytes.length + 4 + data.length);
      consumed.set(sizeBytes);
      consumed.set(crcBytes, sizeBytes.length);
      consumed.set(data, sizeBytes.length + 4);
      throw await _badFrame(r, consumed, `CRC32C mismatch in the frame at byte ${at}`);
    }
    options.onFrame?.(size);
    let message: ChunkedReadResponse;
    try {
      message = fromBinary(ChunkedReadResponseSchema, data);
    } catch (err) {
      throw new HttpFailure(
        `undecodable ChunkedReadResponse at byte ${at}: ${
          err instanceof Error ? err.message : err
        }`,
        false,
      );
    }
    yield message;
  }
}

/** Decodes a sampled response body (one snappy block holding a `ReadResponse`). */
export function decodeSampledResponse(body: Uint8Array): BitsReadResponse {
  const length = snappyLength(body);
  // A snappy element of n bytes expands to at most 64/3 n bytes: a larger length is damage.
  if (length < 0 || length > body.length * 22 + 16) {
    throw new HttpFailure("sampled response is not a snappy block", false);
  }
  let raw: Uint8Array;
  try {
    raw = snappyUncompress(body);
  } catch (err) {
    throw new HttpFailure(
      `sampled response: snappy: ${err instanceof Error ? err.message : err}`,
      false,
    );
  }
  try {
    return fromBinary(ReadResponseSchema, raw);
  } catch (err) {
    throw new HttpFailure(
      `undecodable ReadResponse: ${err instanceof Error ? err.message : err}`,
      false,
    );
  }
}
