/**
 * The XOR ("Gorilla") float chunk, encoding 1 (`tsdb/chunkenc/xor.go`), bit for bit.
 *
 * Layout: BE16 sample count; sample 0 is a varint timestamp and the 64 raw value bits; sample 1
 * a uvarint time delta and an XOR-encoded value; later samples a delta-of-delta timestamp in one of
 * the buckets `0`, `10`+14, `110`+17, `1110`+20 or `1111`+64 bits, then an XOR-encoded value.
 * Chunks are decoded by their sample count, never by their length: old Prometheus versions left a
 * trailing zero byte.
 *
 * Timestamps are int64 (`bigint`) and values raw IEEE-754 bit patterns (`bigint`), so NaN payloads
 * such as the stale marker `0x7FF0000000000002` survive.
 *
 * @module
 */

import { FormatError } from "../encoding.ts";
import { BitReader, BitWriter, clz64, ctz64, joinBig, splitBig } from "./bstream.ts";
import { bitRange } from "./varbit.ts";

/** Samples of a float chunk, column by column. */
export interface FloatSamples {
  /** Timestamps (ms). */
  t: BigInt64Array;
  /** Raw float64 bit patterns of the values. */
  v: BigUint64Array;
}

/** The bit pattern of Prometheus' stale marker, a NaN with payload 2. */
export const STALE_NAN_BITS = 0x7ff0000000000002n;

/** Most samples one chunk can hold (the count is a BE16). */
export const MAX_XOR_SAMPLES = 0xffff;

// Typed-array halves: on little-endian hosts element i of a 64-bit array is (lo, hi) at 2i, 2i+1.
const _LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const _LO = _LE ? 0 : 1;
const _HI = _LE ? 1 : 0;
const _TWO32 = 0x1_0000_0000;
// Delta-of-delta payload bits by the number of one bits in the prefix.
const _DOD_BITS = [0, 14, 17, 20];

/**
 * The running state of one XOR-encoded value: the previous bits (`hi:lo`) and the window of
 * meaningful bits. A reader's window starts at 0/0 as in Go (the first change always opens a new
 * window, so the start value is never used on valid data).
 */
export class XorValueReader {
  /** High 32 bits of the current value. */
  hi = 0;
  /** Low 32 bits of the current value. */
  lo = 0;
  /** Leading zero bits of the window. */
  leading = 0;
  /** Trailing zero bits of the window. */
  trailing = 0;
  #format: string;

  /** `format` names the encoding in errors ("XOR", "XOR2"). */
  constructor(format = "XOR") {
    this.#format = format;
  }

  /** Sets the current value from raw bits. */
  set(hi: number, lo: number): void {
    this.hi = hi;
    this.lo = lo;
  }

  /** Reads one XOR-encoded value change (Go's `xorRead`) and applies it. */
  read(r: BitReader): void {
    if (r.readBit() === 0) return; // unchanged
    if (r.readBit() === 0) this.reuse(r);
    else this.fresh(r);
  }

  /** Reads the bits of the current window (`64 − leading − trailing`) and applies them. */
  reuse(r: BitReader): void {
    this.#apply(r, 64 - this.leading - this.trailing);
  }

  /** Reads a new window (5 bits leading, 6 bits significant, 0 meaning 64) and its bits. */
  fresh(r: BitReader): void {
    this.leading = r.readBits(5);
    let mbits = r.readBits(6);
    if (mbits === 0) mbits = 64; // 64 significant bits are written as 0
    this.trailing = 64 - this.leading - mbits;
    if (this.trailing < 0) {
      throw new FormatError(
        `${this.#format} value window ${this.leading}+${mbits} exceeds 64 bits`,
      );
    }
    this.#apply(r, mbits);
  }

  // XORs `n` bits, read and shifted left past the trailing zeros, into the current value.
  #apply(r: BitReader, n: number): void {
    r.readHiLo(n);
    let h = r.hi;
    let l = r.lo;
    const s = this.trailing;
    if (s >= 32) {
      h = s === 64 ? 0 : l << (s - 32);
      l = 0;
    } else if (s > 0) {
      h = (h << s) | (l >>> (32 - s));
      l = l << s;
    }
    this.hi = (this.hi ^ h) >>> 0;
    this.lo = (this.lo ^ l) >>> 0;
  }

  /** The current value's bits. */
  get bits(): bigint {
    return joinBig(this.hi, this.lo);
  }
}

/**
 * The writing side of one XOR-encoded value (Go's `xorWrite`). The window starts as "none"
 * (Go's 0xff sentinel), so the first change always writes a new window.
 */
export class XorValueWriter {
  /** High 32 bits of the previous value. */
  hi = 0;
  /** Low 32 bits of the previous value. */
  lo = 0;
  #leading = 0xff;
  #trailing = 0;

  /** Sets the previous value without writing anything (after sample 0's raw bits). */
  set(hi: number, lo: number): void {
    this.hi = hi;
    this.lo = lo;
  }

  /** Writes `hi:lo` as an XOR against the previous value and makes it the previous value. */
  write(w: BitWriter, hi: number, lo: number): void {
    // int32, not uint32: values above 2^31 would be heap numbers (see XorAppenderSet).
    const xh = hi ^ this.hi;
    const xl = lo ^ this.lo;
    this.hi = hi;
    this.lo = lo;
    if (xh === 0 && xl === 0) {
      w.writeBit(0);
      return;
    }
    w.writeBit(1);
    // The leading count is clamped to 31 because only 5 bits store it.
    const leading = Math.min(clz64(xh, xl), 31);
    const trailing = ctz64(xh, xl);
    if (this.#leading !== 0xff && leading >= this.#leading && trailing >= this.#trailing) {
      w.writeBit(0);
      w.writeShifted(xh, xl, this.#trailing, 64 - this.#leading - this.#trailing);
      return;
    }
    this.#leading = leading;
    this.#trailing = trailing;
    w.writeBit(1);
    w.writeBits(leading, 5);
    const sigbits = 64 - leading - trailing;
    w.writeBits(sigbits & 63, 6); // 64 is written as 0
    w.writeShifted(xh, xl, trailing, sigbits);
  }
}

/** The sample count in a float (XOR) chunk's header. */
export function xorNumSamples(data: Uint8Array): number {
  if (data.length < 2) throw new FormatError(`XOR chunk of ${data.length} bytes has no header`);
  return (data[0] << 8) | data[1];
}

/** XOR chunk samples with number timestamps and values as uint32 halves. */
export interface XorNumbers {
  /** Timestamps (ms). */
  t: Float64Array;
  /** High 32 bits of each value's float64 bits. */
  hi: Uint32Array;
  /** Low 32 bits of each value's float64 bits. */
  lo: Uint32Array;
}

/**
 * {@link decodeXor}'s samples as numbers, for hot paths that would otherwise make a BigInt per
 * timestamp and value read; null when a timestamp is not a safe integer.
 */
export function decodeXorNumbers(data: Uint8Array): XorNumbers | null {
  const { t, v } = decodeXor(data);
  const tw = new Uint32Array(t.buffer);
  const vw = new Uint32Array(v.buffer);
  const out = {
    t: new Float64Array(t.length),
    hi: new Uint32Array(t.length),
    lo: new Uint32Array(t.length),
  };
  for (let i = 0; i < t.length; i++) {
    const high = tw[2 * i + _HI] | 0;
    if (high < -0x200000 || high >= 0x200000) return null;
    out.t[i] = high * _TWO32 + tw[2 * i + _LO];
    out.hi[i] = vw[2 * i + _HI];
    out.lo[i] = vw[2 * i + _LO];
  }
  return out;
}

/** Decodes every sample of an XOR chunk's data (the bytes after the encoding byte). */
export function decodeXor(data: Uint8Array): FloatSamples {
  const n = xorNumSamples(data);
  const t = new BigInt64Array(n);
  const v = new BigUint64Array(n);
  if (n === 0) return { t, v };
  const tw = new Uint32Array(t.buffer);
  const vw = new Uint32Array(v.buffer);
  const r = new BitReader(data, 16);
  const val = new XorValueReader();

  // Timestamps are tracked as numbers while they are safe integers (exact), and switch to bigint
  // with Go's int64 wrap-around as soon as one is not.
  let fast = true;
  let tN = 0;
  let dN = 0;
  let tB = 0n;
  let dB = 0n;

  const t0 = BigInt.asIntN(64, r.readVarint());
  if (t0 >= -Number.MAX_SAFE_INTEGER && t0 <= Number.MAX_SAFE_INTEGER) {
    tN = Number(t0);
  } else {
    fast = false;
    tB = t0;
  }
  r.readHiLo(64);
  val.set(r.hi, r.lo);

  for (let i = 0;;) {
    if (fast) {
      const hi = Math.floor(tN / _TWO32);
      tw[2 * i + _LO] = tN - hi * _TWO32;
      tw[2 * i + _HI] = hi >>> 0;
    } else {
      t[i] = tB;
    }
    vw[2 * i + _LO] = val.lo;
    vw[2 * i + _HI] = val.hi;
    if (++i === n) break;

    if (i === 1) {
      const delta = BigInt.asIntN(64, r.readUvarint());
      if (fast) {
        const d = Number(delta);
        if (Number.isSafeInteger(d) && Number.isSafeInteger(tN + d)) {
          dN = d;
          tN += d;
        } else {
          fast = false;
          tB = BigInt(tN);
        }
      }
      if (!fast) {
        dB = delta;
        tB = BigInt.asIntN(64, tB + dB);
      }
    } else {
      let dod = 0;
      let dodB: bigint | undefined;
      // Prefix: up to four bits, 0 / 10 / 110 / 1110 / 1111.
      let ones = 0;
      while (ones < 4 && r.readBit() === 1) ones++;
      if (ones === 4) {
        dodB = BigInt.asIntN(64, r.readBigBits(64));
        if (dodB >= -Number.MAX_SAFE_INTEGER && dodB <= Number.MAX_SAFE_INTEGER) {
          dod = Number(dodB);
          dodB = undefined;
        }
      } else if (ones > 0) {
        const sz = _DOD_BITS[ones];
        dod = r.readBits(sz);
        // Above 2^(sz-1) is negative; exactly 2^(sz-1) stays positive (Go's strict `>`).
        if (dod > 2 ** (sz - 1)) dod -= 2 ** sz;
      }
      if (fast) {
        const d = dN + dod;
        if (dodB === undefined && Number.isSafeInteger(d) && Number.isSafeInteger(tN + d)) {
          dN = d;
          tN += d;
        } else {
          fast = false;
          tB = BigInt(tN);
          dB = BigInt(dN);
        }
      }
      if (!fast) {
        dB = BigInt.asIntN(64, dB + (dodB ?? BigInt(dod)));
        tB = BigInt.asIntN(64, tB + dB);
      }
    }
    val.read(r);
  }
  return { t, v };
}

/**
 * Builds an XOR chunk sample by sample, exactly as Prometheus' `xorAppender` does, so that the
 * bytes equal those Prometheus writes for the same samples.
 */
export class XorAppender {
  #w = new BitWriter(2);
  #n = 0;
  #t = 0n;
  #tDelta = 0n; // uint64 as in Go
  // The same state as doubles, used while #big is false (see #appendNumber).
  #tn = 0;
  #dn = 0;
  #big = false;
  #val = new XorValueWriter();

  /** Samples appended so far. */
  get numSamples(): number {
    return this.#n;
  }

  /** Size of the chunk data so far, in bytes. */
  get byteLength(): number {
    return this.#w.byteLength;
  }

  /** Size of the chunk data so far, in bits (header included). */
  get bitLength(): number {
    return this.#w.bitLength;
  }

  /** Appends a sample: timestamp (ms, int64) and raw float64 bits. */
  append(t: bigint, v: bigint): void {
    const [vh, vl] = splitBig(v);
    if (!this.#big && t >= _MIN_SAFE && t <= _MAX_SAFE) this.#appendNumber(Number(t), vh, vl);
    else this.#appendBig(t, vh, vl);
  }

  /**
   * Appends a sample given as a timestamp number (ms, a safe integer) and the value's raw bits as
   * two uint32 halves: the allocation-free path for hot loops (the bits are the same).
   */
  appendNumber(t: number, vh: number, vl: number): void {
    if (!this.#big && Number.isSafeInteger(t)) this.#appendNumber(t, vh >>> 0, vl >>> 0);
    else this.#appendBig(BigInt(t), vh >>> 0, vl >>> 0);
  }

  // Timestamps, deltas and deltas of deltas as doubles while they are exact (the usual case);
  // anything else switches the chunk to the bigint path for good.
  #appendNumber(t: number, vh: number, vl: number): void {
    const w = this.#w;
    const n = this.#n;
    if (n >= MAX_XOR_SAMPLES) throw new RangeError("XOR chunk capacity (65535 samples) exceeded");
    if (n === 0) {
      w.writeVarint(BigInt(t));
      w.writeHiLo(vh, vl, 64);
      this.#val.set(vh, vl);
      this.#tn = t;
      this.#dn = 0;
      this.#n = 1;
      return;
    }
    const delta = t - this.#tn;
    if (delta < 0) {
      // Go's uint64 delta wraps around: only the bigint path writes that.
      this.#toBig();
      this.#appendBig(BigInt(t), vh, vl);
      return;
    }
    if (n === 1) {
      w.writeUvarint(BigInt(delta));
    } else {
      const dod = delta - this.#dn;
      if (dod === 0) {
        w.writeBit(0);
      } else if (dod >= -8191 && dod <= 8192) {
        w.writeBits(0b10, 2);
        w.writeBits(dod & 0x3fff, 14);
      } else if (dod >= -65535 && dod <= 65536) {
        w.writeBits(0b110, 3);
        w.writeBits(dod & 0x1ffff, 17);
      } else if (dod >= -524287 && dod <= 524288) {
        w.writeBits(0b1110, 4);
        w.writeBits(dod & 0xfffff, 20);
      } else {
        w.writeBits(0b1111, 4);
        w.writeBigBits(BigInt(dod), 64);
      }
    }
    this.#val.write(w, vh, vl);
    this.#tn = t;
    this.#dn = delta;
    this.#n = n + 1;
  }

  #toBig(): void {
    if (this.#big) return;
    this.#big = true;
    this.#t = BigInt(this.#tn);
    this.#tDelta = BigInt(this.#dn);
  }

  #appendBig(t: bigint, vh: number, vl: number): void {
    this.#toBig();
    const w = this.#w;
    const n = this.#n;
    if (n >= MAX_XOR_SAMPLES) throw new RangeError("XOR chunk capacity (65535 samples) exceeded");
    let tDelta = 0n;
    if (n === 0) {
      w.writeVarint(t);
      w.writeHiLo(vh, vl, 64);
      this.#val.set(vh, vl);
    } else if (n === 1) {
      tDelta = BigInt.asUintN(64, t - this.#t);
      w.writeUvarint(tDelta);
      this.#val.write(w, vh, vl);
    } else {
      tDelta = BigInt.asUintN(64, t - this.#t);
      const dod = BigInt.asIntN(64, tDelta - this.#tDelta);
      if (dod === 0n) {
        w.writeBit(0);
      } else if (bitRange(dod, 14)) {
        w.writeBits(0b10, 2);
        w.writeBigBits(dod, 14);
      } else if (bitRange(dod, 17)) {
        w.writeBits(0b110, 3);
        w.writeBigBits(dod, 17);
      } else if (bitRange(dod, 20)) {
        w.writeBits(0b1110, 4);
        w.writeBigBits(dod, 20);
      } else {
        w.writeBits(0b1111, 4);
        w.writeBigBits(dod, 64);
      }
      this.#val.write(w, vh, vl);
    }
    this.#t = BigInt.asIntN(64, t);
    this.#tDelta = tDelta;
    this.#n = n + 1;
  }

  /** The chunk data (header with the sample count, then the bit stream), as a copy. */
  bytes(): Uint8Array {
    return this.view().slice();
  }

  /** The chunk data as a view into the appender's buffer, valid until the next append. */
  view(): Uint8Array {
    this.#w.setByte(0, this.#n >>> 8);
    this.#w.setByte(1, this.#n & 0xff);
    return this.#w.bytes();
  }
}

const _MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const _MIN_SAFE = -_MAX_SAFE;

/** Encodes samples (timestamps and raw float64 bits) into one XOR chunk's data. */
export function encodeXor(t: ArrayLike<bigint>, v: ArrayLike<bigint>): Uint8Array {
  if (t.length !== v.length) throw new RangeError("encodeXor: t and v differ in length");
  const app = new XorAppender();
  for (let i = 0; i < t.length; i++) app.append(t[i], v[i]);
  return app.bytes();
}
