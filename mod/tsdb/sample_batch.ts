/**
 * Float samples handed on in bulk, in typed arrays. The head replay moves every WAL sample
 * through several steps (WAL record, shard file, open chunk); passed one at a time as arguments,
 * a timestamp (about 1.8e12, not a small integer) becomes a heap number at every call V8 does not
 * inline, which was hundreds of bytes of garbage per sample. Read from a typed array inside a
 * loop it stays a machine double.
 *
 * Memory: the batch's capacity (default 4096 samples, 25 bytes each); producers hand a full
 * batch on and reuse it.
 *
 * @module
 */

import { keepHiddenClass } from "./_hidden_class.ts";

/** A batch of float sample entries: kind, series ref, timestamp and the value's raw bits. */
export class SampleBatch {
  /** Entry kinds (what they mean is the producer's and consumer's business). */
  readonly kind: Uint8Array;
  /** Series refs (safe integers). */
  readonly ref: Float64Array;
  /** Timestamps in ms (safe integers). */
  readonly t: Float64Array;
  /** High 32 bits of the value's IEEE 754 bits. */
  readonly vh: Int32Array;
  /** Low 32 bits of the value's IEEE 754 bits. */
  readonly vl: Int32Array;
  /** Entries in use. */
  length = 0;

  constructor(capacity = 4096) {
    if (!(Number.isInteger(capacity) && capacity >= 1)) {
      throw new RangeError(`batch capacity must be a positive integer, not ${capacity}`);
    }
    this.kind = new Uint8Array(capacity);
    this.ref = new Float64Array(capacity);
    this.t = new Float64Array(capacity);
    this.vh = new Int32Array(capacity);
    this.vl = new Int32Array(capacity);
  }

  /** Most entries the batch holds. */
  get capacity(): number {
    return this.t.length;
  }

  /** Adds an entry (a convenience for tests and rare paths; hot loops fill the arrays). */
  push(kind: number, ref: number, t: number, vh: number, vl: number): void {
    const i = this.length++;
    this.kind[i] = kind;
    this.ref[i] = ref;
    this.t[i] = t;
    this.vh[i] = vh;
    this.vl[i] = vl;
  }
}

/**
 * Checks a WAL samples record (type 2, `record.go` Samples): every entry decodes and its ref and
 * timestamp stay safe integers. Returns the number of samples, or -1 when the record is not one
 * (or needs the general decoder: bigint refs or times).
 */
export function samplesV1Count(bytes: Uint8Array): number {
  if (bytes.length < 1 || bytes[0] !== 2) return -1;
  if (bytes.length === 1) return 0;
  if (bytes.length < 17) return -1;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const refHi = view.getUint32(1);
  const tHi = view.getInt32(9);
  if (refHi >= 0x200000 || tHi >= 0x200000 || tHi < -0x200000) return -1;
  let n = 0;
  let p = 17;
  while (p < bytes.length) {
    for (let k = 0; k < 2; k++) {
      // A varint of at most 7 bytes (49 bits) stays exact as a double.
      for (let i = 0;; i++) {
        if (p >= bytes.length || i >= 7) return -1;
        if (bytes[p++] < 0x80) break;
      }
    }
    if (p + 8 > bytes.length) return -1;
    p += 8;
    n++;
  }
  return n;
}

/**
 * Decodes the samples of a WAL samples record that {@link samplesV1Count} accepted, from byte
 * `at` (0 for the first), into `batch` until it is full; every entry gets `kind`. Returns the
 * byte to go on from, `bytes.length` when the record is done.
 */
export function readSamplesV1(
  bytes: Uint8Array,
  at: number,
  batch: SampleBatch,
  kind: number,
): number {
  if (bytes.length < 17) return bytes.length;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const baseRef = view.getUint32(1) * 0x1_0000_0000 + view.getUint32(5);
  const baseT = view.getInt32(9) * 0x1_0000_0000 + view.getUint32(13);
  const { kind: kinds, ref: refs, t: times, vh, vl } = batch;
  const capacity = times.length;
  let p = at === 0 ? 17 : at;
  let i = batch.length;
  while (p < bytes.length && i < capacity) {
    let u = 0;
    let scale = 1;
    let b: number;
    do {
      b = bytes[p++];
      u += (b & 0x7f) * scale;
      scale *= 128;
    } while (b >= 0x80);
    refs[i] = baseRef + (u % 2 === 0 ? u / 2 : -(u + 1) / 2);
    u = 0;
    scale = 1;
    do {
      b = bytes[p++];
      u += (b & 0x7f) * scale;
      scale *= 128;
    } while (b >= 0x80);
    times[i] = baseT + (u % 2 === 0 ? u / 2 : -(u + 1) / 2);
    vh[i] = view.getInt32(p);
    vl[i] = view.getInt32(p + 4);
    kinds[i] = kind;
    p += 8;
    i++;
  }
  batch.length = i;
  return p;
}

// A batch lives for a shard file or a WAL read (see _hidden_class.ts).
keepHiddenClass(new SampleBatch(1));
