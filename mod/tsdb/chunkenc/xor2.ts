/**
 * The XOR2 float chunk, encoding 4 (`tsdb/chunkenc/xor2.go`, Prometheus 3.11+): XOR values with
 * a joint timestamp/value control prefix and optional start timestamps (ST).
 *
 * Layout: BE16 sample count, then the ST header byte (bit 7: sample 0 carries an ST; bits 0–6:
 * `firstSTChangeOn`, the index of the first sample with a per-sample ST, 0 for none).
 * - Sample 0: varint t, 64 raw value bits, [varint t−st when bit 7 is set].
 * - Sample 1: uvarint Δt, a value (`0` unchanged, `10` same window, `110` new window, `111` stale
 *   NaN), [varbit_int prevT−st when `firstSTChangeOn` is 1].
 * - Samples n ≥ 2: `0` dod 0 and value unchanged; `10` dod 0 and a changed value (`0` same window,
 *   `1` new window); `110`+13-bit, `1110`+20-bit or `11110`+64-bit dod (two's complement) and a
 *   value as for sample 1; `11111` dod 0 and the stale NaN. Then, from `firstSTChangeOn` on, a
 *   varbit_int: prevT−st at `firstSTChangeOn`, later the change of that difference.
 *
 * A stale NaN never becomes the XOR baseline. Prometheus' appender starts per-sample STs at index
 * 127 at the latest (the header has 7 bits), so every chunk of more than 127 samples carries them.
 *
 * {@link Xor2Appender} is written from Prometheus' appender, not checked against chunks written by
 * a real Prometheus 3.11+ (none was available here).
 *
 * @module
 */

import { FormatError } from "../encoding.ts";
import { BitReader, BitWriter, clz64, ctz64, joinBig, splitBig } from "./bstream.ts";
import { putVarbitInt, readVarbitInt } from "./varbit.ts";
import { type FloatSamples, STALE_NAN_BITS, XorValueReader } from "./xor.ts";

/** Samples of an XOR2 chunk: a float chunk's columns plus start timestamps. */
export interface Xor2Samples extends FloatSamples {
  /** Start timestamps (ms); 0 where the chunk has none. */
  st: BigInt64Array;
}

const _HEADER_SIZE = 3;
const _MAX_FIRST_ST_CHANGE_ON = 0x7f;
const _STALE_HI = 0x7ff00000;
const _STALE_LO = 2;

/** The sample count in an XOR2 chunk's header. */
export function xor2NumSamples(data: Uint8Array): number {
  if (data.length < _HEADER_SIZE) {
    throw new FormatError(`XOR2 chunk of ${data.length} bytes has no header`);
  }
  return (data[0] << 8) | data[1];
}

/**
 * Reads a value in the form of sample 1 and of samples with a non-zero dod: returns false for the
 * stale NaN (the baseline stays), true otherwise (the baseline is the value).
 */
function _readValue(r: BitReader, v: XorValueReader): boolean {
  if (r.readBit() === 0) return true; // unchanged
  if (r.readBit() === 0) {
    v.reuse(r);
    return true;
  }
  if (r.readBit() === 0) {
    v.fresh(r);
    return true;
  }
  return false;
}

/** Decodes every sample of an XOR2 chunk's data (the bytes after the encoding byte). */
export function decodeXor2(data: Uint8Array): Xor2Samples {
  const n = xor2NumSamples(data);
  const t = new BigInt64Array(n);
  const vs = new BigUint64Array(n);
  const sts = new BigInt64Array(n);
  if (n === 0) return { t, v: vs, st: sts };
  const firstSTKnown = (data[2] & 0x80) !== 0;
  const firstSTChangeOn = data[2] & 0x7f;
  const r = new BitReader(data, _HEADER_SIZE * 8);
  // The baseline (last non-stale value) and the XOR window, as XOR keeps them.
  const val = new XorValueReader("XOR2");

  let ts = BigInt.asIntN(64, r.readVarint());
  r.readHiLo(64);
  let stale = r.hi === _STALE_HI && r.lo === _STALE_LO;
  if (!stale) {
    val.hi = r.hi;
    val.lo = r.lo;
  }
  let st = 0n;
  if (firstSTKnown) st = BigInt.asIntN(64, ts - BigInt.asIntN(64, r.readVarint()));
  let tDelta = 0n;
  let stDiff = 0n;
  const put = (i: number) => {
    t[i] = ts;
    vs[i] = stale ? STALE_NAN_BITS : joinBig(val.hi, val.lo);
    sts[i] = st;
  };
  put(0);

  for (let i = 1; i < n; i++) {
    const prevT = ts;
    if (i === 1) {
      tDelta = BigInt.asIntN(64, r.readUvarint());
      ts = BigInt.asIntN(64, ts + tDelta);
      stale = !_readValue(r, val);
      if (firstSTChangeOn === 1) {
        stDiff = readVarbitInt(r);
        st = BigInt.asIntN(64, prevT - stDiff);
      }
      put(i);
      continue;
    }
    let ones = 0;
    while (ones < 5 && r.readBit() === 1) ones++;
    if (ones === 0 || ones === 1 || ones === 5) {
      ts = BigInt.asIntN(64, ts + tDelta); // dod 0
      if (ones === 0) stale = false; // value unchanged: the baseline
      else if (ones === 5) stale = true;
      else {
        if (r.readBit() === 0) val.reuse(r);
        else val.fresh(r);
        stale = false;
      }
    } else {
      const w = ones === 2 ? 13 : ones === 3 ? 20 : 64;
      let dod = r.readBigBits(w);
      if (w < 64) {
        if (dod >= 1n << BigInt(w - 1)) dod -= 1n << BigInt(w);
      } else {
        dod = BigInt.asIntN(64, dod);
      }
      tDelta = BigInt.asIntN(64, tDelta + dod);
      ts = BigInt.asIntN(64, ts + tDelta);
      stale = !_readValue(r, val);
    }
    if (firstSTChangeOn > 0 && i >= firstSTChangeOn) {
      const d = readVarbitInt(r);
      stDiff = i === firstSTChangeOn ? d : BigInt.asIntN(64, stDiff + d);
      st = BigInt.asIntN(64, prevT - stDiff);
    }
    put(i);
  }
  return { t, v: vs, st: sts };
}

/**
 * Builds an XOR2 chunk as Prometheus' `xor2Appender` does (written from its source; see the
 * module note). Start timestamps are optional: 0 means none.
 */
export class Xor2Appender {
  #w = new BitWriter(_HEADER_SIZE);
  #n = 0;
  #st = 0n;
  #t = 0n;
  #vHi = 0; // the baseline: the last non-stale value
  #vLo = 0;
  #tDelta = 0n;
  #stDiff = 0n;
  #leading = 0xff;
  #trailing = 0;
  #stHeader = 0;
  #firstSTChangeOn = 0;

  /** Samples appended so far. */
  get numSamples(): number {
    return this.#n;
  }

  /** Size of the chunk data so far, in bytes. */
  get byteLength(): number {
    return this.#w.byteLength;
  }

  /** Appends a sample: start timestamp (0 for none), timestamp and raw float64 bits. */
  append(st: bigint, t: bigint, v: bigint): void {
    const w = this.#w;
    const [vh, vl] = splitBig(v);
    const stale = v === STALE_NAN_BITS;
    let tDelta = 0n;
    let stDiff = 0n;
    if (this.#n >= 0xffff) throw new RangeError("XOR2 chunk capacity (65535 samples) exceeded");
    if (this.#n === 0) {
      w.writeVarint(t);
      w.writeHiLo(vh, vl, 64);
      if (st !== 0n) {
        w.writeVarint(BigInt.asIntN(64, t - st));
        this.#stHeader = 0x80;
      }
    } else if (this.#n === 1) {
      tDelta = BigInt.asUintN(64, t - this.#t);
      w.writeUvarint(tDelta);
      this.#writeValue(vh, vl, stale);
      if (st !== this.#st) {
        stDiff = BigInt.asIntN(64, this.#t - st);
        this.#firstSTChangeOn = 1;
        putVarbitInt(w, stDiff);
      }
    } else {
      tDelta = BigInt.asUintN(64, t - this.#t);
      const dod = BigInt.asIntN(64, tDelta - this.#tDelta);
      this.#writeJoint(dod, vh, vl, stale);
      if (this.#firstSTChangeOn > 0) {
        const newDiff = BigInt.asIntN(64, this.#t - st);
        putVarbitInt(w, BigInt.asIntN(64, newDiff - this.#stDiff));
        stDiff = newDiff;
      } else if (st !== this.#st || this.#n === _MAX_FIRST_ST_CHANGE_ON) {
        // The first change (forced at index 127, the most the header can say).
        stDiff = BigInt.asIntN(64, this.#t - st);
        this.#firstSTChangeOn = this.#n;
        putVarbitInt(w, stDiff);
      }
    }
    this.#st = st;
    this.#t = BigInt.asIntN(64, t);
    if (!stale) {
      this.#vHi = vh;
      this.#vLo = vl;
    }
    this.#tDelta = tDelta;
    this.#stDiff = stDiff;
    this.#n++;
  }

  /** The chunk data (count, ST header, bit stream), as a copy. */
  bytes(): Uint8Array {
    this.#w.setByte(0, this.#n >>> 8);
    this.#w.setByte(1, this.#n & 0xff);
    this.#w.setByte(2, this.#stHeader | this.#firstSTChangeOn);
    return this.#w.bytes().slice();
  }

  /** The joint control prefix of samples n ≥ 2 and their value. */
  #writeJoint(dod: bigint, vh: number, vl: number, stale: boolean): void {
    const w = this.#w;
    if (dod === 0n) {
      if (stale) {
        w.writeBits(0b11111, 5);
        return;
      }
      const xh = (vh ^ this.#vHi) >>> 0;
      const xl = (vl ^ this.#vLo) >>> 0;
      if (xh === 0 && xl === 0) {
        w.writeBit(0);
        return;
      }
      w.writeBits(0b10, 2);
      this.#writeXor(xh, xl, 1);
      return;
    }
    if (dod >= -(1n << 12n) && dod <= (1n << 12n) - 1n) {
      w.writeBits(0b110, 3);
      w.writeBigBits(dod, 13);
    } else if (dod >= -(1n << 19n) && dod <= (1n << 19n) - 1n) {
      w.writeBits(0b1110, 4);
      w.writeBigBits(dod, 20);
    } else {
      w.writeBits(0b11110, 5);
      w.writeBigBits(dod, 64);
    }
    this.#writeValue(vh, vl, stale);
  }

  /** A value as sample 1 and non-zero dods write it: `0`, `10`+bits, `110`+window, `111`. */
  #writeValue(vh: number, vl: number, stale: boolean): void {
    const w = this.#w;
    if (stale) {
      w.writeBits(0b111, 3);
      return;
    }
    const xh = (vh ^ this.#vHi) >>> 0;
    const xl = (vl ^ this.#vLo) >>> 0;
    if (xh === 0 && xl === 0) {
      w.writeBit(0);
      return;
    }
    w.writeBit(1);
    this.#writeXor(xh, xl, 2);
  }

  /**
   * The rest of a non-zero XOR: the window choice and the bits. Form 1 (dod 0, value changed):
   * `0` same window, `1` new window. Form 2 (after the leading `1` of `10`/`110`): `0` same
   * window, `10` new window.
   */
  #writeXor(xh: number, xl: number, form: 1 | 2): void {
    const w = this.#w;
    const leading = Math.min(clz64(xh, xl), 31);
    const trailing = ctz64(xh, xl);
    if (this.#leading !== 0xff && leading >= this.#leading && trailing >= this.#trailing) {
      w.writeBit(0); // same window: `0` (dod-0 form) or the `0` of `10`
      w.writeShifted(xh, xl, this.#trailing, 64 - this.#leading - this.#trailing);
      return;
    }
    this.#leading = leading;
    this.#trailing = trailing;
    if (form === 1) w.writeBit(1);
    else w.writeBits(0b10, 2); // the `10` of `110`
    w.writeBits(leading, 5);
    const sig = 64 - leading - trailing;
    w.writeBits(sig & 63, 6);
    w.writeShifted(xh, xl, trailing, sig);
  }
}
