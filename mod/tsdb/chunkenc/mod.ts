/**
 * Prometheus chunk encodings (`tsdb/chunkenc`): the XOR float chunk, the integer and float native
 * histogram chunks, the XOR2 float chunk of 3.11+ and the histogram chunks with start timestamps of
 * 3.14+ (decoders and encoders), and the conversions between the encodings with and without start
 * timestamps (`convert.ts`).
 *
 * @module
 */

import { FormatError } from "../encoding.ts";
import {
  decodeFloatHistogram,
  decodeFloatHistogramST,
  decodeHistogram,
  decodeHistogramST,
  type FloatHistogramSample,
  histogramNumSamples,
  type HistogramSample,
} from "./histogram.ts";
import { decodeXor, type FloatSamples, xorNumSamples } from "./xor.ts";
import { decodeXor2 } from "./xor2.ts";

export * from "./bstream.ts";
export * from "./convert.ts";
export * from "./histogram.ts";
export * from "./histogram_appender.ts";
export * from "./st.ts";
export * from "./varbit.ts";
export * from "./xor.ts";
export * from "./xor2.ts";

/** Chunk encoding bytes (`chunkenc.Encoding`). */
export const Encoding = {
  /** No encoding (never stored). */
  none: 0,
  /** XOR float chunk. */
  xor: 1,
  /** Integer native histogram chunk. */
  histogram: 2,
  /** Float native histogram chunk. */
  floatHistogram: 3,
  /** XOR2 float chunk with start timestamps (Prometheus 3.11+; `decodeXor2` keeps them). */
  xor2: 4,
  /** Integer histogram chunk with start timestamps (3.14+; `decodeHistogramST` keeps them). */
  histogramST: 5,
  /** Float histogram chunk with start timestamps (3.14+; `decodeFloatHistogramST` keeps them). */
  floatHistogramST: 6,
} as const;

/** Name of an encoding byte, as Prometheus prints it. */
export function encodingName(encoding: number): string {
  switch (encoding) {
    case Encoding.none:
      return "none";
    case Encoding.xor:
      return "XOR";
    case Encoding.histogram:
      return "histogram";
    case Encoding.floatHistogram:
      return "floathistogram";
    case Encoding.xor2:
      return "XOR2";
    case Encoding.histogramST:
      return "histogramST";
    case Encoding.floatHistogramST:
      return "floathistogramST";
    default:
      return `<unknown encoding ${encoding}>`;
  }
}

/** The decoded samples of one chunk, tagged by kind. */
export type DecodedChunk =
  | { kind: "float"; samples: FloatSamples }
  | { kind: "histogram"; samples: HistogramSample[] }
  | { kind: "floatHistogram"; samples: FloatHistogramSample[] };

/**
 * Decodes a chunk's data by its encoding byte (start timestamps are dropped); throws
 * {@link FormatError} for encodings Prometheus does not know.
 */
export function decodeChunk(encoding: number, data: Uint8Array): DecodedChunk {
  switch (encoding) {
    case Encoding.xor:
      return { kind: "float", samples: decodeXor(data) };
    case Encoding.xor2:
      return { kind: "float", samples: decodeXor2(data) };
    case Encoding.histogram:
      return { kind: "histogram", samples: decodeHistogram(data) };
    case Encoding.floatHistogram:
      return { kind: "floatHistogram", samples: decodeFloatHistogram(data) };
    case Encoding.histogramST:
      return { kind: "histogram", samples: decodeHistogramST(data).samples };
    case Encoding.floatHistogramST:
      return { kind: "floatHistogram", samples: decodeFloatHistogramST(data).samples };
    default:
      throw new FormatError(`cannot decode chunk encoding ${encodingName(encoding)}`);
  }
}

/** The sample count stored in a chunk's header, without decoding it. */
export function chunkNumSamples(encoding: number, data: Uint8Array): number {
  switch (encoding) {
    case Encoding.xor:
    case Encoding.xor2:
      return xorNumSamples(data);
    case Encoding.histogram:
    case Encoding.floatHistogram:
      return histogramNumSamples(data);
    case Encoding.histogramST:
    case Encoding.floatHistogramST:
      // The top two bits of the first header bytes hold the counter-reset header there.
      return histogramNumSamples(data) & 0x3fff;
    default:
      throw new FormatError(`unknown chunk encoding ${encoding}`);
  }
}
