/**
 * Bit streams as Prometheus' chunk encodings use them (`tsdb/chunkenc/bstream.go`): bits are
 * written most-significant first within each byte and a final partial byte is zero-padded.
 *
 * 64-bit quantities travel as two unsigned 32-bit halves (`hi`, `lo`) so that the hot decoding
 * paths stay in plain numbers; `bigint` is only used at the API edges.
 *
 * @module
 */

import { FormatError } from "../encoding.ts";
import { keepHiddenClass } from "../_hidden_class.ts";

/** Reads bits, most significant first, from a byte array. */
export class BitReader {
  #bytes: Uint8Array;
  #pos: number;
  #end: number;
  /** High 32 bits of the last {@link BitReader.readHiLo} result. */
  hi = 0;
  /** Low 32 bits of the last {@link BitReader.readHiLo} result. */
  lo = 0;

  /** Reads `bytes` starting at bit `bitOffset`. */
  constructor(bytes: Uint8Array, bitOffset = 0) {
    this.#bytes = bytes;
    this.#pos = bitOffset;
    this.#end = bytes.length * 8;
  }

  /** Position of the next bit to read. */
  get bitPosition(): number {
    return this.#pos;
  }

  /** Bits left. */
  get bitsLeft(): number {
    return this.#end - this.#pos;
  }

  #eof(n: number): never {
    throw new FormatError(
      `bit stream ends early: need ${n} bits at bit ${this.#pos} of ${this.#end}`,
    );
  }

  /** One bit, 0 or 1. */
  readBit(): number {
    const pos = this.#pos;
    if (pos >= this.#end) this.#eof(1);
    this.#pos = pos + 1;
    return (this.#bytes[pos >>> 3] >>> (7 - (pos & 7))) & 1;
  }

  /** `n` bits (0 to 32) as an unsigned number. */
  readBits(n: number): number {
    if (n === 0) return 0;
    const pos = this.#pos;
    if (pos + n > this.#end) this.#eof(n);
    const bytes = this.#bytes;
    let i = pos >>> 3;
    let have = 8 - (pos & 7);
    let v = bytes[i] & (0xff >>> (pos & 7));
    // At most 5 bytes are touched, so v stays below 2^40: exact in a double.
    while (have < n) {
      v = v * 256 + bytes[++i];
      have += 8;
    }
    this.#pos = pos + n;
    const drop = have - n;
    if (drop === 0) return v;
    return have <= 31 ? v >>> drop : Math.floor(v / 2 ** drop);
  }

  /** `n` bits (0 to 64) into {@link BitReader.hi} and {@link BitReader.lo}. */
  readHiLo(n: number): void {
    if (n > 32) {
      this.hi = this.readBits(n - 32);
      this.lo = this.readBits(32);
    } else {
      this.hi = 0;
      this.lo = this.readBits(n);
    }
  }

  /** `n` bits (0 to 64) as an unsigned bigint. */
  readBigBits(n: number): bigint {
    this.readHiLo(n);
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  /** 8 bits. */
  readByte(): number {
    return this.readBits(8);
  }

  /** Go `binary.ReadUvarint` over the bit stream (bytes need not be aligned). */
  readUvarint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      const b = this.readByte();
      if (b < 0x80) {
        if (i === 9 && b > 1) throw new FormatError("uvarint overflows 64 bits in bit stream");
        return result | (BigInt(b) << shift);
      }
      result |= BigInt(b & 0x7f) << shift;
      shift += 7n;
    }
    throw new FormatError("uvarint overflows 64 bits in bit stream");
  }

  /** Go `binary.ReadVarint` (zig-zag) over the bit stream. */
  readVarint(): bigint {
    const u = this.readUvarint();
    return (u & 1n) === 0n ? u >> 1n : ~(u >> 1n);
  }
}

/** Appends bits, most significant first, to a growing byte array. */
export class BitWriter {
  #buf: Uint8Array;
  #bits = 0;

  /** Starts with `headerBytes` zero bytes (a chunk's header, filled in later). */
  constructor(headerBytes = 0, capacity = 128) {
    this.#buf = new Uint8Array(Math.max(capacity, headerBytes + 16));
    this.#bits = headerBytes * 8;
  }

  /** Bits written, including the header. */
  get bitLength(): number {
    return this.#bits;
  }

  /** Bytes used, including a final partial byte. */
  get byteLength(): number {
    return (this.#bits + 7) >>> 3;
  }

  #grow(extraBits: number): void {
    const need = (this.#bits + extraBits + 7) >>> 3;
    if (need <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.byteLength));
    this.#buf = next;
  }

  /** One bit (any non-zero value writes 1). */
  writeBit(bit: number): void {
    this.#grow(1);
    if (bit) this.#buf[this.#bits >>> 3] |= 0x80 >>> (this.#bits & 7);
    this.#bits++;
  }

  /** The low `n` bits (0 to 32) of `v`, most significant first. */
  writeBits(v: number, n: number): void {
    if (n === 0) return;
    this.#grow(n);
    this.#bits = putBits(this.#buf, this.#bits, v, n);
  }

  /** The low `n` bits (0 to 64) of the 64-bit value `hi:lo`. */
  writeHiLo(hi: number, lo: number, n: number): void {
    if (n > 32) {
      this.writeBits(hi, n - 32);
      this.writeBits(lo, 32);
    } else {
      this.writeBits(lo, n);
    }
  }

  /** The low `n` bits of the 64-bit value `(hi:lo) >> shift` (the meaningful bits of an XOR). */
  writeShifted(hi: number, lo: number, shift: number, n: number): void {
    this.#grow(n);
    this.#bits = putShifted(this.#buf, this.#bits, hi, lo, shift, n);
  }

  /** The low `n` bits (0 to 64) of `v`. */
  writeBigBits(v: bigint, n: number): void {
    const u = BigInt.asUintN(64, v);
    this.writeHiLo(Number(u >> 32n), Number(u & 0xffffffffn), n);
  }

  /** 8 bits. */
  writeByte(b: number): void {
    this.writeBits(b & 0xff, 8);
  }

  /** Go `binary.PutUvarint`, byte by byte into the bit stream. */
  writeUvarint(v: bigint): void {
    let x = BigInt.asUintN(64, v);
    while (x >= 0x80n) {
      this.writeByte(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.writeByte(Number(x));
  }

  /** Go `binary.PutVarint` (zig-zag), byte by byte into the bit stream. */
  writeVarint(v: bigint): void {
    const x = BigInt.asIntN(64, v);
    this.writeUvarint((x << 1n) ^ (x >> 63n));
  }

  /** Sets a header byte (written as zero at construction). */
  setByte(index: number, value: number): void {
    this.#buf[index] = value;
  }

  /** The bytes so far, as a view (valid until the next write). */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.byteLength);
  }
}

/**
 * Writes the low `n` bits (0 to 32) of `v`, most significant first, into `buf` at bit `pos`
 * (bits there must be zero); returns the bit position after them. The bit writing under
 * {@link BitWriter} and other writers that manage their own buffers.
 */
export function putBits(buf: Uint8Array, pos: number, v: number, n: number): number {
  const offset = pos & 7;
  if (offset + n > 32) {
    // Spans five bytes: the high bits first, then the low 16.
    return putBits(buf, putBits(buf, pos, v >>> 16, n - 16), v & 0xffff, 16);
  }
  if (n === 0) return pos;
  // The n bits at the top of a 32-bit word, moved right to the bit offset: up to four bytes
  // written whole instead of a loop per byte (this is the per-sample path of every encoder).
  const word = (v << (32 - n)) >>> offset;
  const i = pos >>> 3;
  const end = offset + n;
  buf[i] |= word >>> 24;
  if (end > 8) buf[i + 1] |= word >>> 16;
  if (end > 16) buf[i + 2] |= word >>> 8;
  if (end > 24) buf[i + 3] |= word;
  return pos + n;
}

/**
 * Writes the low `n` bits (0 to 64) of the 64-bit value `(hi:lo) >> shift` (the meaningful bits
 * of an XOR) as {@link putBits} does; returns the bit position after them.
 */
export function putShifted(
  buf: Uint8Array,
  pos: number,
  hi: number,
  lo: number,
  shift: number,
  n: number,
): number {
  let h = hi;
  let l = lo;
  if (shift >= 32) {
    l = hi >>> (shift - 32);
    h = 0;
  } else if (shift > 0) {
    l = ((lo >>> shift) | (hi << (32 - shift))) >>> 0;
    h = hi >>> shift;
  }
  if (n > 32) return putBits(buf, putBits(buf, pos, h, n - 32), l, 32);
  return putBits(buf, pos, l, n);
}

/** `hi:lo` of a 64-bit bigint. */
export function splitBig(v: bigint): [number, number] {
  const u = BigInt.asUintN(64, v);
  return [Number(u >> 32n), Number(u & 0xffffffffn)];
}

/** The bigint of `hi:lo`. */
export function joinBig(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** Number of leading zero bits of the 64-bit value `hi:lo`. */
export function clz64(hi: number, lo: number): number {
  return hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
}

/** Number of trailing zero bits of the 64-bit value `hi:lo` (64 for zero). */
export function ctz64(hi: number, lo: number): number {
  if (lo !== 0) return 31 - Math.clz32(lo & -lo);
  if (hi !== 0) return 32 + 31 - Math.clz32(hi & -hi);
  return 64;
}

// A reader and a writer live for a chunk (see _hidden_class.ts).
keepHiddenClass(new BitReader(new Uint8Array(0)));
keepHiddenClass(new BitWriter());
