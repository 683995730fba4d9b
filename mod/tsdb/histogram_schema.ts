/**
 * Native histogram schemas as Prometheus accepts them when it reads them back (`model/histogram`,
 * since 3.7): exponential schemas −4…8 are valid; −9…52 are "known" (reserved for finer or
 * coarser resolutions of later releases), and a histogram with a schema of 9…52 read from the WAL
 * is reduced to schema 8 (`record.go`, `ReduceResolution`), so that any release serves it. Schemas
 * −9…−5 are kept as they are (there is no finer resolution to reduce them to), custom buckets
 * (−53) too, and every other schema is unknown: Prometheus skips such histograms.
 *
 * Bucket counts keep the WAL's representation: integer histograms delta-encoded `bigint`s (int64,
 * wrapping as in Go), float histograms float64 bit patterns.
 *
 * @module
 */

import { FormatError } from "./encoding.ts";
import type { FloatHistogram, Histogram, Span } from "./record.ts";

/** The finest exponential schema every release reads (`histogram.ExponentialSchemaMax`). */
export const EXPONENTIAL_SCHEMA_MAX = 8;
/** The finest schema Prometheus reads and reduces (`ExponentialSchemaMaxReserved`). */
export const EXPONENTIAL_SCHEMA_MAX_RESERVED = 52;
/** The coarsest valid exponential schema (`ExponentialSchemaMin`). */
export const EXPONENTIAL_SCHEMA_MIN = -4;
/** The coarsest schema Prometheus reads (`ExponentialSchemaMinReserved`). */
export const EXPONENTIAL_SCHEMA_MIN_RESERVED = -9;
/** Schema of native histograms with custom bucket bounds (NHCB). */
export const CUSTOM_BUCKETS_SCHEMA = -53;

/**
 * Whether Prometheus reads a histogram of this schema back (`histogram.IsKnownSchema`): custom
 * buckets or an exponential schema −9…52. Others are skipped when the WAL is replayed.
 */
export function isKnownHistogramSchema(schema: number): boolean {
  return schema === CUSTOM_BUCKETS_SCHEMA ||
    (schema >= EXPONENTIAL_SCHEMA_MIN_RESERVED && schema <= EXPONENTIAL_SCHEMA_MAX_RESERVED);
}

/** Whether a schema is one Prometheus reduces to {@link EXPONENTIAL_SCHEMA_MAX} on reading. */
export function needsSchemaReduction(schema: number): boolean {
  return schema > EXPONENTIAL_SCHEMA_MAX && schema <= EXPONENTIAL_SCHEMA_MAX_RESERVED;
}

/**
 * The histogram with a schema of 9…52 reduced to schema 8 as Prometheus' WAL decoder reduces it;
 * any other histogram is returned as it is. Throws a `FormatError` when its spans and buckets do
 * not match (Prometheus then fails the record as corrupt).
 */
export function reduceToMaxSchema<H extends Histogram | FloatHistogram>(h: H, float: boolean): H {
  if (!needsSchemaReduction(h.schema)) return h;
  return reduceHistogramResolution(h, EXPONENTIAL_SCHEMA_MAX, float);
}

/**
 * A copy of `h` at the coarser exponential schema `target`: each bucket goes into the target
 * bucket that holds its range, and neighbours are merged. Zero bucket, count and sum stay. As
 * Go's `Histogram.ReduceResolution` and `FloatHistogram.ReduceResolution`.
 */
export function reduceHistogramResolution<H extends Histogram | FloatHistogram>(
  h: H,
  target: number,
  float: boolean,
): H {
  if (h.schema === CUSTOM_BUCKETS_SCHEMA || target === CUSTOM_BUCKETS_SCHEMA) {
    throw new RangeError("cannot reduce the resolution of custom-bucket histograms");
  }
  if (target >= h.schema) {
    throw new RangeError(`cannot reduce resolution from schema ${h.schema} to ${target}`);
  }
  const add = float ? _addFloatBits : _addInt64;
  const pos = _reduce(h.positiveSpans, h.positiveBuckets, h.schema, target, !float, add);
  const neg = _reduce(h.negativeSpans, h.negativeBuckets, h.schema, target, !float, add);
  return {
    ...h,
    schema: target,
    positiveSpans: pos.spans,
    positiveBuckets: pos.buckets,
    negativeSpans: neg.spans,
    negativeBuckets: neg.buckets,
  };
}

// Go's span and bucket indexes are int32 and wrap; `| 0` does the same here.
const _i32 = (x: number) => x | 0;

/** Go's `targetIdx`: `((idx - 1) >> (origin - target)) + 1` in int32. */
function _targetIndex(idx: number, shift: number): number {
  const x = _i32(idx - 1);
  // Go shifts a signed int32 by 32 or more into all sign bits; JavaScript masks the count to 5
  // bits, so the large shifts of schema 52 → 8 (44) need their own case.
  const shifted = shift >= 32 ? (x < 0 ? -1 : 0) : x >> shift;
  return _i32(shifted + 1);
}

const _addInt64 = (a: bigint, b: bigint) => BigInt.asIntN(64, a + b);

const _f64 = new DataView(new ArrayBuffer(8));

function _addFloatBits(a: bigint, b: bigint): bigint {
  _f64.setBigUint64(0, a);
  const x = _f64.getFloat64(0);
  _f64.setBigUint64(0, b);
  _f64.setFloat64(0, x + _f64.getFloat64(0));
  return _f64.getBigUint64(0);
}

/**
 * Go's `reduceResolution` (model/histogram/generic.go) step for step: the same merges, the same
 * errors, and the same silence where Go's switch has no case (a bucket index going backwards,
 * which only wrapped int32 offsets can cause, is dropped).
 */
function _reduce(
  spans: readonly Span[],
  buckets: readonly bigint[],
  origin: number,
  target: number,
  deltas: boolean,
  add: (a: bigint, b: bigint) => bigint,
): { spans: Span[]; buckets: bigint[] } {
  const shift = origin - target;
  const outSpans: Span[] = [];
  const out: bigint[] = [];
  let bucketIdx = 0;
  let at = 0;
  // The last origin bucket's absolute count and the last target bucket's, for delta buckets.
  let lastCount = 0n;
  let lastTargetIdx = 0;
  let lastTargetCount = 0n;
  for (const [n, span] of spans.entries()) {
    if (n > 0 && span.offset < 0) {
      throw new FormatError(
        `histogram span number ${n + 1} with offset ${span.offset}: ` +
          `histogram has a span whose offset is negative`,
      );
    }
    bucketIdx = _i32(bucketIdx + span.offset);
    for (let j = 0; j < span.length; j++) {
      if (at >= buckets.length) {
        throw new FormatError(
          `histogram has ${buckets.length} buckets but spans need more`,
        );
      }
      const b = buckets[at];
      const targetIdx = _targetIndex(bucketIdx, shift);
      const next = _i32(lastTargetIdx + 1);
      if (outSpans.length === 0) {
        outSpans.push({ offset: targetIdx, length: 1 });
        out.push(b);
        lastTargetIdx = targetIdx;
        lastCount = b;
        lastTargetCount = b;
      } else if (lastTargetIdx === targetIdx) {
        // Into the same target bucket as the previous one.
        if (deltas) {
          lastCount = add(lastCount, b);
          out[out.length - 1] = add(out[out.length - 1], lastCount);
          lastTargetCount = add(lastTargetCount, lastCount);
        } else {
          out[out.length - 1] = add(out[out.length - 1], b);
        }
      } else if (next <= targetIdx) {
        // A new target bucket: next to the previous one (same span), or after a gap (new span).
        if (next === targetIdx) {
          outSpans[outSpans.length - 1].length++;
          lastTargetIdx = next;
        } else {
          outSpans.push({ offset: _i32(targetIdx - lastTargetIdx - 1), length: 1 });
          lastTargetIdx = targetIdx;
        }
        if (deltas) {
          lastCount = add(lastCount, b);
          out.push(add(lastCount, -lastTargetCount));
          lastTargetCount = lastCount;
        } else {
          out.push(b);
        }
      }
      bucketIdx = _i32(bucketIdx + 1);
      at++;
    }
  }
  if (at !== buckets.length) {
    throw new FormatError(`histogram spans need ${at} buckets, have ${buckets.length} buckets`);
  }
  return { spans: outSpans, buckets: out };
}
