/**
 * Variable-width integers of the histogram chunk encodings (`tsdb/chunkenc/varbit.go`): a unary
 * prefix of up to 8 one bits chooses a payload of 0, 3, 6, 9, 12, 18, 25, 56 or 64 bits.
 *
 * @module
 */

import { FormatError } from "../encoding.ts";
import type { BitReader, BitWriter } from "./bstream.ts";

// Payload bits per number of leading one bits in the prefix.
const _SIZES = [0, 3, 6, 9, 12, 18, 25, 56, 64];

/** Go's `bitRange`: whether `x` fits `n` bits as the chunk encodings use them. */
export function bitRange(x: bigint, n: number): boolean {
  const half = 1n << BigInt(n - 1);
  return -(half - 1n) <= x && x <= half;
}

// Per prefix length i (1 to 7): the range of a signed payload of _SIZES[i] bits (Go's bitRange)
// and the end of an unsigned one, as bigints computed once (the writers run for every bucket of
// every histogram sample).
const _SIGNED_MIN = _SIZES.map((n) => n === 0 ? 0n : -((1n << BigInt(n - 1)) - 1n));
const _SIGNED_MAX = _SIZES.map((n) => n === 0 ? 0n : 1n << BigInt(n - 1));
const _UNSIGNED_END = _SIZES.map((n) => 1n << BigInt(n));
/** The first prefix length with a payload too wide for a number's bit writer (56 bits). */
const _WIDE = 7;
// 2^(n-1) per prefix length, as numbers, for payloads of up to 25 bits.
const _HALF = _SIZES.map((n) => n === 0 ? 0 : 2 ** (n - 1));

function _readPrefix(r: BitReader): number {
  let ones = 0;
  while (ones < 8 && r.readBit() === 1) ones++;
  return ones;
}

/** Reads a varbit-encoded signed integer (int64). */
export function readVarbitInt(r: BitReader): bigint {
  const sz = _SIZES[_readPrefix(r)];
  if (sz === 0) return 0n;
  if (sz === 64) return BigInt.asIntN(64, r.readBigBits(64));
  if (sz <= 32) {
    let v = r.readBits(sz);
    // Values above 2^(sz-1) are negative; exactly 2^(sz-1) stays positive (Go's strict `>`).
    if (v > 2 ** (sz - 1)) v -= 2 ** sz;
    return BigInt(v);
  }
  let v = r.readBigBits(sz);
  if (v > 1n << BigInt(sz - 1)) v -= 1n << BigInt(sz);
  return v;
}

/** Reads a varbit-encoded unsigned integer (uint64). */
export function readVarbitUint(r: BitReader): bigint {
  const sz = _SIZES[_readPrefix(r)];
  if (sz === 0) return 0n;
  return sz <= 32 ? BigInt(r.readBits(sz)) : r.readBigBits(sz);
}

/** Reads a varbit-encoded unsigned integer that must fit a JS number (span counts, lengths). */
export function readVarbitUintNumber(r: BitReader): number {
  const v = readVarbitUint(r);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`varbit value ${v} too large`);
  return Number(v);
}

/** Writes a signed integer (int64) in varbit encoding. */
export function putVarbitInt(w: BitWriter, v: bigint): void {
  const x = BigInt.asIntN(64, v);
  // Payloads of up to 25 bits are written from a number, the wider two from the bigint.
  if (_SIGNED_MIN[_WIDE - 1] <= x && x <= _SIGNED_MAX[_WIDE - 1]) {
    putVarbitIntNumber(w, Number(x));
  } else if (_SIGNED_MIN[_WIDE] <= x && x <= _SIGNED_MAX[_WIDE]) {
    w.writeBits((1 << (_WIDE + 1)) - 2, _WIDE + 1);
    w.writeBigBits(x, _SIZES[_WIDE]);
  } else {
    w.writeBits(0xff, 8);
    w.writeBigBits(x, 64);
  }
}

/**
 * {@link putVarbitInt} of a safe integer: the same bits, without a bigint for payloads of up to
 * 25 bits (the bucket deltas of nearly every histogram sample).
 */
export function putVarbitIntNumber(w: BitWriter, x: number): void {
  if (x === 0) {
    w.writeBit(0);
    return;
  }
  for (let i = 1; i < _WIDE; i++) {
    const half = _HALF[i];
    if (-(half - 1) <= x && x <= half) {
      w.writeBits((1 << (i + 1)) - 2, i + 1); // i one bits, then a zero bit
      w.writeBits(x, _SIZES[i]);
      return;
    }
  }
  putVarbitInt(w, BigInt(x));
}

/** Writes an unsigned integer (uint64) in varbit encoding. */
export function putVarbitUint(w: BitWriter, v: bigint): void {
  const x = BigInt.asUintN(64, v);
  if (x === 0n) {
    w.writeBit(0);
    return;
  }
  for (let i = 1; i < _SIZES.length - 1; i++) {
    if (x < _UNSIGNED_END[i]) {
      w.writeBits((1 << (i + 1)) - 2, i + 1);
      _writePayload(w, x, _SIZES[i]);
      return;
    }
  }
  w.writeBits(0xff, 8);
  w.writeBigBits(x, 64);
}

// The low `n` bits of `x` (two's complement): payloads of up to 32 bits go as one number (x is
// within ±2^31 there), wider ones through the 64-bit writer.
function _writePayload(w: BitWriter, x: bigint, n: number): void {
  if (n <= 32) w.writeBits(Number(x), n);
  else w.writeBigBits(x, n);
}
