/**
 * Many open XOR chunks at once, in shared memory: what a head replay needs, one open chunk per
 * series, written a sample at a time in the order the WAL interleaves the series.
 *
 * Why not one {@link XorAppender} per series: each is five objects (appender, value writer, bit
 * writer, typed array, buffer) spread over the heap, so every sample of a WAL with tens of
 * thousands of series touched several cold cache lines, and the objects cost ~700 bytes a
 * series. Here a series' state is one 64-byte row and its bytes a region of one buffer; series
 * that Prometheus created together (and scrapes together) sit side by side. The bytes are those
 * XorAppender writes (tests compare them).
 *
 * @module
 */

import { SampleBatch } from "../sample_batch.ts";
import { clz64, ctz64, putBits, putShifted } from "./bstream.ts";

// Row fields: last timestamp, last delta, samples, bits written (the 2-byte header included),
// leading and trailing zeros of the last stored XOR (leading 0xff before the first), value bits.
const _T = 0;
const _DELTA = 1;
const _N = 2;
const _BITS = 3;
const _LEADING = 4;
const _TRAILING = 5;
const _HI = 6;
const _LO = 7;
const _ROW = 8;

/** Most bytes one sample adds: a 64-bit dod with its 4-bit prefix, a 77-bit value, rounding. */
const _MAX_SAMPLE_BYTES = 20;
const _MAX_T = 2 ** 52;
/**
 * Most bytes of the shared buffer: bit positions (byte offset x 8 + bit) are indexed with `>>> 3`,
 * which wraps at 2^32 bits; past this the set refuses to grow rather than write wrong bits.
 */
export const XOR_SET_MAX_BYTES = 2 ** 28;

/** Options of {@link XorAppenderSet}. */
export interface XorAppenderSetOptions {
  /** Initial size of the shared buffer (default 1 MiB); it doubles when full. */
  initialBytes?: number;
  /** Smallest region of a slot (default 128 bytes, a power of two); it doubles when full. */
  firstRegion?: number;
  /** Most bytes of the shared buffer (default and at most {@link XOR_SET_MAX_BYTES}). */
  maxBytes?: number;
}

/**
 * Open XOR chunks of numbered slots (small non-negative integers, e.g. series ids). Memory: one
 * 64-byte row per slot and a region per slot of a shared buffer, a power of two at least as large
 * as the slot's chunk (regions left by a slot that moved to a larger one are reused); the caller
 * bounds the number of slots (a head replay shard).
 */
export class XorAppenderSet {
  #rows = new Float64Array(1024 * _ROW);
  // Region of each slot in #bytes: start and capacity (0 capacity: none yet).
  #regions = new Int32Array(1024 * 2);
  #bytes: Uint8Array;
  #used = 0;
  #firstRegion: number;
  #maxBytes: number;
  // Free regions by capacity (powers of two from the first region's size).
  #free = new Map<number, number[]>();
  #one = new SampleBatch(1);

  constructor(options: XorAppenderSetOptions = {}) {
    this.#bytes = new Uint8Array(options.initialBytes ?? 1 << 20);
    this.#firstRegion = options.firstRegion ?? 128;
    this.#maxBytes = Math.min(options.maxBytes ?? XOR_SET_MAX_BYTES, XOR_SET_MAX_BYTES);
  }

  /** Samples in the slot's open chunk. */
  numSamples(slot: number): number {
    return slot * _ROW < this.#rows.length ? this.#rows[slot * _ROW + _N] : 0;
  }

  /** The timestamp of the slot's last sample (meaningful while it has samples). */
  lastTimestamp(slot: number): number {
    return this.#rows[slot * _ROW + _T];
  }

  /**
   * Appends a sample: `t` a timestamp in ms above the previous one of the slot, below 2^52 in
   * magnitude; the value's raw bits as two uint32 halves.
   */
  append(slot: number, t: number, vh: number, vl: number): void {
    const one = this.#one;
    one.t[0] = t;
    one.vh[0] = vh;
    one.vl[0] = vl;
    this.appendAt(slot, one, 0);
  }

  /**
   * Appends entry `i` of `batch` (timestamp and value bits; its kind and ref are not looked at):
   * the per-sample path of a head replay, which reads the sample from the batch's arrays so that
   * no number is boxed on the way (see `sample_batch.ts`).
   */
  appendAt(slot: number, batch: SampleBatch, i: number): void {
    const t = batch.t[i];
    const vh = batch.vh[i];
    const vl = batch.vl[i];
    if (!(t > -_MAX_T && t < _MAX_T)) throw new RangeError(`timestamp ${t} beyond ±2^52 ms`);
    if ((slot + 1) * _ROW > this.#rows.length) this.#grow(slot);
    const r = slot * _ROW;
    const rows = this.#rows;
    const n = rows[r + _N];
    let bits = rows[r + _BITS];
    if (n === 0) bits = 16;
    const start = this.#room(slot, bits);
    const buf = this.#bytes;
    let p = start * 8 + bits;
    if (n === 0) {
      p = _putUvarint(buf, p, t >= 0 ? 2 * t : -2 * t - 1);
      p = putBits(buf, p, vh, 32);
      p = putBits(buf, p, vl, 32);
      rows[r + _DELTA] = 0;
      rows[r + _LEADING] = 0xff;
      rows[r + _TRAILING] = 0;
    } else {
      const delta = t - rows[r + _T];
      if (n === 1) {
        p = _putUvarint(buf, p, delta);
      } else {
        const dod = delta - rows[r + _DELTA];
        if (dod === 0) {
          p++;
        } else if (dod >= -8191 && dod <= 8192) {
          p = putBits(buf, p, 0b10, 2);
          p = putBits(buf, p, dod & 0x3fff, 14);
        } else if (dod >= -65535 && dod <= 65536) {
          p = putBits(buf, p, 0b110, 3);
          p = putBits(buf, p, dod & 0x1ffff, 17);
        } else if (dod >= -524287 && dod <= 524288) {
          p = putBits(buf, p, 0b1110, 4);
          p = putBits(buf, p, dod & 0xfffff, 20);
        } else {
          p = putBits(buf, p, 0b1111, 4);
          // dod as a 64-bit two's complement value.
          const hi = Math.floor(dod / 2 ** 32);
          p = putBits(buf, p, hi >>> 0, 32);
          p = putBits(buf, p, (dod - hi * 2 ** 32) >>> 0, 32);
        }
      }
      rows[r + _DELTA] = delta;
      p = this.#putValue(r, p, vh, vl);
    }
    rows[r + _T] = t;
    rows[r + _HI] = vh;
    rows[r + _LO] = vl;
    rows[r + _N] = n + 1;
    rows[r + _BITS] = p - start * 8;
  }

  // The value as XorValueWriter writes it: 0 for "same as before", else the meaningful bits of
  // the XOR, reusing the previous leading/trailing window when it fits.
  #putValue(r: number, bitPos: number, vh: number, vl: number): number {
    const rows = this.#rows;
    const buf = this.#bytes;
    let p = bitPos;
    // The XOR's halves as int32 (not uint32): V8 keeps them in registers, where uint32 values
    // above 2^31 would become heap numbers on every sample.
    const xh = vh ^ rows[r + _HI];
    const xl = vl ^ rows[r + _LO];
    if ((xh | xl) === 0) return p + 1;
    buf[p >>> 3] |= 0x80 >>> (p & 7);
    p++;
    const leading = Math.min(clz64(xh, xl), 31);
    const trailing = ctz64(xh, xl);
    const prevLeading = rows[r + _LEADING];
    const prevTrailing = rows[r + _TRAILING];
    if (prevLeading !== 0xff && leading >= prevLeading && trailing >= prevTrailing) {
      return putShifted(buf, p + 1, xh, xl, prevTrailing, 64 - prevLeading - prevTrailing);
    }
    rows[r + _LEADING] = leading;
    rows[r + _TRAILING] = trailing;
    buf[p >>> 3] |= 0x80 >>> (p & 7);
    p = putBits(buf, p + 1, leading, 5);
    const sigbits = 64 - leading - trailing;
    p = putBits(buf, p, sigbits & 63, 6);
    return putShifted(buf, p, xh, xl, trailing, sigbits);
  }

  /**
   * The slot's chunk data (2-byte sample count, then the bit stream) as a view, valid until the
   * next append or reset of any slot.
   */
  view(slot: number): Uint8Array {
    const r = slot * _ROW;
    const n = this.numSamples(slot);
    if (n === 0) return new Uint8Array(2); // an empty chunk: the header alone
    const start = this.#regions[slot * 2];
    this.#bytes[start] = n >>> 8;
    this.#bytes[start + 1] = n & 0xff;
    return this.#bytes.subarray(start, start + ((this.#rows[r + _BITS] + 7) >>> 3));
  }

  /** Empties the slot's chunk (its region stays for the next one). */
  reset(slot: number): void {
    if (slot * _ROW >= this.#rows.length) return;
    const r = slot * _ROW;
    const start = this.#regions[slot * 2];
    this.#bytes.fill(0, start, start + ((this.#rows[r + _BITS] + 7) >>> 3));
    this.#rows[r + _N] = 0;
    this.#rows[r + _BITS] = 0;
  }

  /** Empties every slot, keeping the memory for the next use (a head replay's next shard). */
  clear(): void {
    this.#bytes.fill(0, 0, this.#used);
    this.#rows.fill(0);
    this.#regions.fill(0);
    this.#used = 0;
    this.#free.clear();
  }

  // The slot's region start, moved to a larger region when the next sample might not fit.
  #room(slot: number, bits: number): number {
    const regions = this.#regions;
    const start = regions[slot * 2];
    const capacity = regions[slot * 2 + 1];
    const need = ((bits + 7) >>> 3) + _MAX_SAMPLE_BYTES;
    if (need <= capacity) return start;
    let size = Math.max(this.#firstRegion, capacity * 2);
    while (size < need) size *= 2;
    const next = this.#allocate(size);
    const bytes = this.#bytes;
    if (capacity > 0) {
      const used = (bits + 7) >>> 3;
      bytes.copyWithin(next, start, start + used);
      bytes.fill(0, start, start + capacity);
      const list = this.#free.get(capacity);
      if (list) list.push(start);
      else this.#free.set(capacity, [start]);
    }
    regions[slot * 2] = next;
    regions[slot * 2 + 1] = size;
    return next;
  }

  #allocate(size: number): number {
    const reused = this.#free.get(size)?.pop();
    if (reused !== undefined) return reused;
    if (this.#used + size > this.#bytes.length) {
      if (this.#used + size > this.#maxBytes) {
        throw new RangeError(`open XOR chunks exceed ${this.#maxBytes} bytes`);
      }
      let length = this.#bytes.length * 2;
      while (this.#used + size > length) length *= 2;
      length = Math.min(length, this.#maxBytes);
      const bigger = new Uint8Array(length);
      bigger.set(this.#bytes.subarray(0, this.#used));
      this.#bytes = bigger;
    }
    const at = this.#used;
    this.#used += size;
    return at;
  }

  #grow(slot: number): void {
    let slots = this.#rows.length / _ROW;
    while (slots <= slot) slots *= 2;
    const rows = new Float64Array(slots * _ROW);
    rows.set(this.#rows);
    this.#rows = rows;
    const regions = new Int32Array(slots * 2);
    regions.set(this.#regions);
    this.#regions = regions;
  }
}

/** Go `binary.PutUvarint` of a safe non-negative integer, a byte at a time into the bits. */
function _putUvarint(buf: Uint8Array, p: number, v: number): number {
  let x = v;
  let bits = p;
  while (x >= 0x80) {
    bits = putBits(buf, bits, (x % 0x80) | 0x80, 8);
    x = Math.floor(x / 0x80);
  }
  return putBits(buf, bits, x, 8);
}
