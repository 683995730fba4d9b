/**
 * Moving chunks between the encodings with and without start timestamps: XOR2 (4) and XOR (1),
 * histograms with ST (5) and without (2), float histograms with ST (6) and without (3).
 *
 * The samples (timestamps, values, histogram fields, the counter-reset header) stay exactly as
 * they are: only the start timestamps are dropped or added. An encoding-1 chunk is what Prometheus
 * before 3.11 reads, 2 what 2.40 reads, 3 what 2.42 reads; 4 needs 3.11, 5 and 6 need 3.14.
 *
 * @module
 */

import { FormatError } from "../encoding.ts";
import {
  decodeFloatHistogram,
  decodeFloatHistogramST,
  decodeHistogram,
  decodeHistogramST,
  histogramCounterResetHeader,
  histogramSTCounterResetHeader,
} from "./histogram.ts";
import {
  FloatHistogramAppender,
  FloatHistogramSTAppender,
  HistogramAppender,
  HistogramSTAppender,
} from "./histogram_appender.ts";
import { decodeXor, XorAppender } from "./xor.ts";
import { decodeXor2, Xor2Appender } from "./xor2.ts";

/** A chunk's encoding byte and data. */
export interface EncodedData {
  /** Encoding byte. */
  encoding: number;
  /** Chunk data (after the encoding byte). */
  data: Uint8Array;
}

/** Whether Prometheus knows the encoding (Go's `chunkenc.IsValidEncoding` on main: 1 to 6). */
export function isKnownEncoding(encoding: number): boolean {
  return encoding >= 1 && encoding <= 6;
}

/** Whether the encoding stores start timestamps (XOR2, histograms with ST). */
export function hasStartTimestamps(encoding: number): boolean {
  return encoding >= 4 && encoding <= 6;
}

/** The encoding without start timestamps that holds the same samples: 4→1, 5→2, 6→3. */
export function oldestEncoding(encoding: number): number {
  return hasStartTimestamps(encoding) ? encoding - 3 : encoding;
}

/**
 * The chunk in {@link oldestEncoding}: the same samples and counter-reset header, start
 * timestamps dropped. Chunks of other encodings are returned as they are.
 */
export function toOldestEncoding<C extends EncodedData>(chunk: C): C {
  if (!hasStartTimestamps(chunk.encoding)) return chunk;
  let encoding: number;
  let data: Uint8Array;
  if (chunk.encoding === 4) {
    const d = decodeXor2(chunk.data);
    const app = new XorAppender();
    for (let i = 0; i < d.t.length; i++) app.append(d.t[i], d.v[i]);
    [encoding, data] = [1, app.bytes()];
  } else if (chunk.encoding === 5) {
    const app = new HistogramAppender(histogramSTCounterResetHeader(chunk.data));
    for (const h of decodeHistogramST(chunk.data).samples) app.appendDecoded(h);
    [encoding, data] = [2, app.bytes()];
  } else {
    const app = new FloatHistogramAppender(histogramSTCounterResetHeader(chunk.data));
    for (const h of decodeFloatHistogramST(chunk.data).samples) app.appendDecoded(h);
    [encoding, data] = [3, app.bytes()];
  }
  // A CRC given with the chunk (see `RawChunk.crc`) was for the old bytes.
  const { crc: _crc, ...rest } = chunk as C & { crc?: number };
  return { ...rest, encoding, data } as unknown as C;
}

/**
 * A chunk without start timestamps (1, 2 or 3) in the matching encoding with them (4, 5, 6): the
 * same samples and counter-reset header, each sample with the start timestamp `st` gives for its
 * timestamp (0 for none).
 */
export function withStartTimestamps(chunk: EncodedData, st: (t: bigint) => bigint): EncodedData {
  switch (chunk.encoding) {
    case 1: {
      const d = decodeXor(chunk.data);
      const app = new Xor2Appender();
      for (let i = 0; i < d.t.length; i++) app.append(st(d.t[i]), d.t[i], d.v[i]);
      return { encoding: 4, data: app.bytes() };
    }
    case 2: {
      const app = new HistogramSTAppender(histogramCounterResetHeader(chunk.data));
      for (const h of decodeHistogram(chunk.data)) app.appendDecodedST(st(h.t), h);
      return { encoding: 5, data: app.bytes() };
    }
    case 3: {
      const app = new FloatHistogramSTAppender(histogramCounterResetHeader(chunk.data));
      for (const h of decodeFloatHistogram(chunk.data)) app.appendDecodedST(st(h.t), h);
      return { encoding: 6, data: app.bytes() };
    }
    default:
      throw new FormatError(`chunk encoding ${chunk.encoding} has no form with start timestamps`);
  }
}
