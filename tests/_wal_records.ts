/**
 * Encodes WAL records the way Prometheus' `record.Encoder` (tsdb/record/record.go on main) writes
 * them, for test data: series, float samples V1 (type 2) and V2 (11, with start timestamps),
 * histogram samples V1 (7, 8, and 9/10 for custom buckets) and V2 (12, 13). promcase itself only
 * decodes records; this is the other half, written from the Go encoder, not from our decoder.
 *
 * @module
 */

import { Encbuf } from "../mod/tsdb/encoding.ts";
import type { FloatHistogram, Histogram } from "../mod/tsdb/record.ts";

/** A float sample: ref, timestamp, value bits and an optional start timestamp (0: none). */
export interface WalSample {
  ref: number;
  t: bigint;
  v: bigint;
  st?: bigint;
}

/** A histogram sample; `h` is an integer or a float histogram as record.ts decodes them. */
export interface WalHistogramSample<H = Histogram | FloatHistogram> {
  ref: number;
  t: bigint;
  h: H;
  st?: bigint;
}

/**
 * Series with labels of 40 to 340 bytes (a record of a few thousand spans many 32 KiB pages), refs
 * from `from` on.
 */
export function longSeries(n: number, from: number): { ref: number; labels: [string, string][] }[] {
  return Array.from({ length: n }, (_, i) => ({
    ref: from + i,
    labels: [
      ["__name__", `metric_${(from + i) % 17}`],
      ["instance", `10.0.${(from + i) >> 8}.${(from + i) & 255}:9100`],
      ["path", `/${"x".repeat((from + i) % 300)}`],
    ] as [string, string][],
  }));
}

/** A series record (type 1); labels are written in the order given (sort them by name). */
export function seriesRecord(series: { ref: number; labels: [string, string][] }[]): Uint8Array {
  const e = new Encbuf().byte(1);
  for (const s of series) {
    e.be64(BigInt(s.ref)).uvarint(s.labels.length);
    for (const [name, value] of s.labels) e.uvarintString(name).uvarintString(value);
  }
  return e.get().slice();
}

/** `Encoder.samplesV1` (record.go:937): base ref and time, then deltas to the first sample. */
export function samplesV1Record(samples: WalSample[]): Uint8Array {
  const e = new Encbuf().byte(2);
  if (samples.length === 0) return e.get().slice();
  const first = samples[0];
  e.be64(BigInt(first.ref)).be64(first.t);
  for (const s of samples) e.varint(s.ref - first.ref).varint(s.t - first.t).be64(s.v);
  return e.get().slice();
}

/**
 * `Encoder.samplesV2` (record.go:971): the first sample's ref, t and st as varints, later ones
 * with the ref delta to the previous sample, the time delta to the first, and an st marker.
 */
export function samplesV2Record(samples: WalSample[]): Uint8Array {
  const e = new Encbuf().byte(11);
  if (samples.length === 0) return e.get().slice();
  const first = samples[0];
  e.varint(first.ref).varint(first.t).varint(first.st ?? 0n).be64(first.v);
  for (let i = 1; i < samples.length; i++) {
    const s = samples[i];
    const prev = samples[i - 1];
    e.varint(s.ref - prev.ref).varint(s.t - first.t);
    _stMarker(e, s.st ?? 0n, first.st ?? 0n, prev.st ?? 0n);
    e.be64(s.v);
  }
  return e.get().slice();
}

// writeSTMarker (record.go:1002): 0 none, 1 same as the previous sample, 2 delta to the first.
function _stMarker(e: Encbuf, st: bigint, firstST: bigint, prevST: bigint): void {
  if (st === 0n) e.byte(0);
  else if (st === prevST) e.byte(1);
  else e.byte(2).varint(st - firstST);
}

/**
 * A V1 histogram record: `code` 7 or 9 (integer), 8 or 10 (float). Unlike Go's encoder it does
 * not move custom-bucket histograms into a record of their own: tests choose the code.
 */
export function histogramsV1Record(
  code: 7 | 8 | 9 | 10,
  samples: WalHistogramSample[],
): Uint8Array {
  const e = new Encbuf().byte(code);
  if (samples.length === 0) return e.get().slice();
  const first = samples[0];
  e.be64(BigInt(first.ref)).be64(first.t);
  for (const s of samples) {
    e.varint(s.ref - first.ref).varint(s.t - first.t);
    putHistogram(e, s.h, code === 8 || code === 10);
  }
  return e.get().slice();
}

/**
 * `Encoder.histogramSamplesV2` / `floatHistogramSamplesV2` (record.go:1120, :1271): type 12 or 13,
 * the first entry's ref, t, st and histogram without a marker, then deltas (ref to the previous
 * entry, t to the first) and st markers.
 */
export function histogramsV2Record(code: 12 | 13, samples: WalHistogramSample[]): Uint8Array {
  const e = new Encbuf().byte(code);
  const float = code === 13;
  if (samples.length === 0) return e.get().slice();
  const first = samples[0];
  e.varint(first.ref).varint(first.t).varint(first.st ?? 0n);
  putHistogram(e, first.h, float);
  for (let i = 1; i < samples.length; i++) {
    const s = samples[i];
    const prev = samples[i - 1];
    e.varint(s.ref - prev.ref).varint(s.t - first.t);
    _stMarker(e, s.st ?? 0n, first.st ?? 0n, prev.st ?? 0n);
    putHistogram(e, s.h, float);
  }
  return e.get().slice();
}

/** `EncodeHistogram` / `EncodeFloatHistogram` (record.go:1186, :1336). */
export function putHistogram(e: Encbuf, h: Histogram | FloatHistogram, float: boolean): void {
  e.byte(h.counterResetHint).varint(h.schema).be64(h.zeroThreshold);
  if (float) e.be64(h.zeroCount).be64(h.count);
  else e.uvarint(h.zeroCount).uvarint(h.count);
  e.be64(h.sum);
  for (const spans of [h.positiveSpans, h.negativeSpans]) {
    e.uvarint(spans.length);
    for (const s of spans) e.varint(s.offset).uvarint(s.length);
  }
  for (const buckets of [h.positiveBuckets, h.negativeBuckets]) {
    e.uvarint(buckets.length);
    for (const b of buckets) float ? e.be64(b) : e.varint(b);
  }
  if (h.schema === -53) {
    e.uvarint(h.customValues.length);
    for (const v of h.customValues) e.be64(v);
  }
}
