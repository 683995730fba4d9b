/**
 * Sampled remote-read answers (`ReadResponse`, the fallback for servers without streamed chunks)
 * turned into the same currency as streamed ones: series with encoded chunks. Floats become XOR
 * chunks of at most {@link SAMPLES_PER_CHUNK} samples, as Prometheus cuts them; native histograms
 * go through Prometheus' histogram chunk encoders (`chunkenc/histogram_appender.ts`).
 *
 * @module
 */

import { PromcaseError } from "../errors.ts";
import { compareUtf8 } from "../tsdb/encoding.ts";
import type { Label } from "../tsdb/index.ts";
import type { TimedChunk } from "../tsdb/series.ts";
import { Encoding } from "../tsdb/chunkenc/mod.ts";
import type {
  CounterResetHintValue,
  FloatHistogramSample,
  HistogramSample,
} from "../tsdb/chunkenc/histogram.ts";
import { XorAppender } from "../tsdb/chunkenc/xor.ts";
import {
  encodeFloatHistogramChunks,
  encodeHistogramChunks,
} from "../tsdb/chunkenc/histogram_appender.ts";
import type { Histogram, TimeSeries } from "./proto/samples_bits_pb.ts";

/** Samples per XOR chunk, Prometheus' target (`tsdb/head_append.go`). */
export const SAMPLES_PER_CHUNK = 120;

/** Labels of a protobuf series as promcase's sorted {@link Label} list. */
export function sortedLabels(labels: readonly { name: string; value: string }[]): Label[] {
  const out = labels.map(({ name, value }) => ({ name, value }));
  for (let i = 1; i < out.length; i++) {
    if (compareUtf8(out[i - 1].name, out[i].name) > 0) {
      out.sort((a, b) => compareUtf8(a.name, b.name));
      break;
    }
  }
  return out;
}

/** Encodes float samples (time order) into XOR chunks of at most `perChunk` samples. */
export function floatChunks(
  t: ArrayLike<bigint>,
  v: ArrayLike<bigint>,
  perChunk = SAMPLES_PER_CHUNK,
): TimedChunk[] {
  const out: TimedChunk[] = [];
  for (let i = 0; i < t.length; i += perChunk) {
    const end = Math.min(t.length, i + perChunk);
    const app = new XorAppender();
    for (let k = i; k < end; k++) app.append(t[k], v[k]);
    out.push({ mint: t[i], maxt: t[end - 1], encoding: Encoding.xor, data: app.bytes() });
  }
  return out;
}

/** A protobuf histogram (raw-bits view) as an integer histogram sample. */
export function toHistogramSample(h: Histogram): HistogramSample {
  return {
    ..._histogramBase(h),
    zeroCount: h.zeroCount.case === "zeroCountInt" ? h.zeroCount.value : 0n,
    count: h.count.case === "countInt" ? h.count.value : 0n,
    positiveBuckets: [...h.positiveDeltas],
    negativeBuckets: [...h.negativeDeltas],
  };
}

/** A protobuf histogram (raw-bits view) as a float histogram sample. */
export function toFloatHistogramSample(h: Histogram): FloatHistogramSample {
  return {
    ..._histogramBase(h),
    zeroCount: h.zeroCount.case === "zeroCountFloat" ? h.zeroCount.value : 0n,
    count: h.count.case === "countFloat" ? h.count.value : 0n,
    positiveBuckets: [...h.positiveCounts],
    negativeBuckets: [...h.negativeCounts],
  };
}

function _histogramBase(h: Histogram) {
  return {
    t: h.timestamp,
    // prompb's ResetHint numbers equal Go's CounterResetHint (unknown, yes, no, gauge).
    counterResetHint: h.resetHint as number as CounterResetHintValue,
    schema: h.schema,
    zeroThreshold: h.zeroThreshold,
    sum: h.sum,
    positiveSpans: h.positiveSpans.map(({ offset, length }) => ({ offset, length })),
    negativeSpans: h.negativeSpans.map(({ offset, length }) => ({ offset, length })),
    customValues: [...h.customValues],
  };
}

/** Whether a protobuf histogram is a float histogram (Go's `IsFloatHistogram`). */
export function isFloatHistogram(h: Histogram): boolean {
  return h.count.case === "countFloat";
}

/**
 * Encodes the samples of one sampled series into chunks: floats as XOR chunks, native histograms
 * with Prometheus' histogram chunk encoders (a run of integer histograms and a run of float
 * histograms each get their own chunks). Chunks come back in time order.
 */
export function seriesChunks(ts: TimeSeries): TimedChunk[] {
  const n = ts.samples.length;
  const t = new BigInt64Array(n);
  const v = new BigUint64Array(n);
  for (let i = 0; i < n; i++) {
    t[i] = ts.samples[i].timestamp;
    v[i] = ts.samples[i].value;
    if (i > 0 && t[i] <= t[i - 1]) {
      throw new PromcaseError("sampled remote-read answer: float samples out of time order");
    }
  }
  const chunks = floatChunks(t, v);
  // Consecutive histograms of one kind form one run for the encoder.
  const hs = ts.histograms;
  for (let i = 0; i < hs.length;) {
    const float = isFloatHistogram(hs[i]);
    let end = i + 1;
    while (end < hs.length && isFloatHistogram(hs[end]) === float) end++;
    try {
      const encoded = float
        ? encodeFloatHistogramChunks(hs.slice(i, end).map(toFloatHistogramSample))
        : encodeHistogramChunks(hs.slice(i, end).map(toHistogramSample));
      chunks.push(...encoded);
    } catch (err) {
      throw new PromcaseError(
        `sampled remote-read answer: cannot encode the native histograms of a series: ${
          err instanceof Error ? err.message : err
        }`,
      );
    }
    i = end;
  }
  if (hs.length > 0 && n > 0) {
    chunks.sort((a, b) => (a.mint < b.mint ? -1 : a.mint > b.mint ? 1 : 0));
  }
  return chunks;
}
