/**
 * Byte-level decoding and encoding shared by Prometheus' formats (`tsdb/encoding`): big-endian
 * integers, Go's unsigned LEB128 varints (uvarint) and zig-zag signed varints (varint). 64-bit
 * values are `bigint`, so timestamps and sample bit patterns survive exactly.
 *
 * @module
 */

import { keepHiddenClass } from "./_hidden_class.ts";

/** A decoding error: the bytes end early or hold an impossible value. */
export class FormatError extends Error {
  /** Creates a format error. */
  constructor(message: string) {
    super(message);
    this.name = "FormatError";
  }
}

/** Reads values from a byte array, moving forward. */
export class Decbuf {
  /** The bytes. */
  readonly bytes: Uint8Array;
  /** Position of the next byte to read. */
  offset: number;
  #view: DataView;

  /** Decodes `bytes` from `offset`. */
  constructor(bytes: Uint8Array, offset = 0) {
    this.bytes = bytes;
    this.offset = offset;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Bytes left. */
  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  #need(n: number): void {
    if (this.offset + n > this.bytes.length) {
      throw new FormatError(`unexpected end of data at offset ${this.offset} (need ${n} bytes)`);
    }
  }

  /** One byte. */
  byte(): number {
    this.#need(1);
    return this.bytes[this.offset++];
  }

  /** Big-endian uint16. */
  be16(): number {
    this.#need(2);
    const v = this.#view.getUint16(this.offset);
    this.offset += 2;
    return v;
  }

  /** Big-endian uint32. */
  be32(): number {
    this.#need(4);
    const v = this.#view.getUint32(this.offset);
    this.offset += 4;
    return v;
  }

  /** Big-endian uint64. */
  be64(): bigint {
    this.#need(8);
    const v = this.#view.getBigUint64(this.offset);
    this.offset += 8;
    return v;
  }

  /** Big-endian int64. */
  be64signed(): bigint {
    this.#need(8);
    const v = this.#view.getBigInt64(this.offset);
    this.offset += 8;
    return v;
  }

  /**
   * A uvarint of at most 7 bytes (below 2^49) as a number, or -1 with the offset unchanged. Nearly
   * every varint (lengths, symbol refs, timestamps and their deltas) takes this path, which
   * allocates nothing; the bigint path costs several allocations per byte.
   */
  #smallUvarint(): number {
    const b = this.bytes;
    let p = this.offset;
    let v = 0;
    let scale = 1;
    for (let i = 0; i < 7 && p < b.length; i++) {
      const x = b[p++];
      v += (x & 0x7f) * scale;
      if (x < 0x80) {
        this.offset = p;
        return v;
      }
      scale *= 128;
    }
    return -1;
  }

  /** Go `binary.Uvarint` as bigint (up to 64 bits). */
  uvarint64(): bigint {
    const small = this.#smallUvarint();
    if (small >= 0) return BigInt(small);
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) {
        if (i === 9 && b > 1) throw new FormatError(`uvarint overflows 64 bits at ${this.offset}`);
        return result;
      }
      shift += 7n;
    }
    throw new FormatError(`uvarint overflows 64 bits at offset ${this.offset}`);
  }

  /** Go `binary.Uvarint` as a number; throws beyond 2^53. */
  uvarint(): number {
    const small = this.#smallUvarint();
    if (small >= 0) return small;
    const v = this.uvarint64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new FormatError(`uvarint ${v} too large at offset ${this.offset}`);
    }
    return Number(v);
  }

  /** Go `binary.Varint` (zig-zag) as a number; throws beyond 2^53 in magnitude. */
  varint(): number {
    const u = this.uvarint();
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
  }

  /** Go `binary.Varint` (zig-zag) as bigint. */
  varint64(): bigint {
    const small = this.#smallUvarint();
    if (small >= 0) return BigInt(small % 2 === 0 ? small / 2 : -(small + 1) / 2);
    const u = this.uvarint64();
    return (u & 1n) === 0n ? u >> 1n : ~(u >> 1n);
  }

  /** `n` bytes, as a view into the buffer (not a copy). */
  take(n: number): Uint8Array {
    this.#need(n);
    const out = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  /** A uvarint length followed by that many bytes, as UTF-8. */
  uvarintString(): string {
    return _decoder.decode(this.take(this.uvarint()));
  }
}

const _decoder = new TextDecoder("utf-8", { fatal: true });
const _encoder = new TextEncoder();
const _MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const _MAX_ZIGZAG = 2n ** 52n;

/** Appends values to a growing byte buffer. */
export class Encbuf {
  #bytes = new Uint8Array(256);
  #view = new DataView(this.#bytes.buffer);
  #length = 0;

  /** Bytes written so far. */
  get length(): number {
    return this.#length;
  }

  #grow(n: number): void {
    if (this.#length + n <= this.#bytes.length) return;
    let size = this.#bytes.length * 2;
    while (size < this.#length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = next;
    this.#view = new DataView(next.buffer);
  }

  /** One byte. */
  byte(b: number): this {
    this.#grow(1);
    this.#bytes[this.#length++] = b;
    return this;
  }

  /** Big-endian uint16. */
  be16(v: number): this {
    this.#grow(2);
    this.#view.setUint16(this.#length, v);
    this.#length += 2;
    return this;
  }

  /** Big-endian uint32. */
  be32(v: number): this {
    this.#grow(4);
    this.#view.setUint32(this.#length, v);
    this.#length += 4;
    return this;
  }

  /** Big-endian 64-bit value (signed or unsigned bit pattern). */
  be64(v: bigint): this {
    this.#grow(8);
    this.#view.setBigUint64(this.#length, BigInt.asUintN(64, v));
    this.#length += 8;
    return this;
  }

  /** Go `binary.PutUvarint`. */
  uvarint(v: number | bigint): this {
    // Safe integers, nearly all values, go without bigint arithmetic.
    const n = typeof v === "number" ? v : v >= 0n && v <= _MAX_SAFE ? Number(v) : -1;
    if (n >= 0 && n <= Number.MAX_SAFE_INTEGER && Number.isInteger(n)) {
      let x = n;
      while (x >= 0x80) {
        this.byte((x % 0x80) | 0x80);
        x = Math.floor(x / 0x80);
      }
      return this.byte(x);
    }
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.byte(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    return this.byte(Number(x));
  }

  /** Go `binary.PutVarint` (zig-zag). */
  varint(v: number | bigint): this {
    // Zig-zag of a value below 2^52 in magnitude stays a safe integer.
    const n = typeof v === "number" ? v : v > -_MAX_ZIGZAG && v < _MAX_ZIGZAG ? Number(v) : NaN;
    if (Number.isInteger(n) && Math.abs(n) < 2 ** 52) {
      return this.uvarint(n >= 0 ? 2 * n : -2 * n - 1);
    }
    const x = BigInt.asIntN(64, BigInt(v));
    return this.uvarint(BigInt.asUintN(64, (x << 1n) ^ (x >> 63n)));
  }

  /** Raw bytes. */
  bytes(b: Uint8Array): this {
    this.#grow(b.length);
    this.#bytes.set(b, this.#length);
    this.#length += b.length;
    return this;
  }

  /** A uvarint length followed by the UTF-8 bytes of `s`. */
  uvarintString(s: string): this {
    const b = _encoder.encode(s);
    return this.uvarint(b.length).bytes(b);
  }

  /** Zero bytes up to a multiple of `alignment`. */
  pad(alignment: number): this {
    const extra = (alignment - (this.#length % alignment)) % alignment;
    this.#grow(extra);
    this.#bytes.fill(0, this.#length, this.#length + extra);
    this.#length += extra;
    return this;
  }

  /** The bytes written, as a view (valid until the next write). */
  get(): Uint8Array {
    return this.#bytes.subarray(0, this.#length);
  }

  /** Forgets what was written, keeping the buffer. */
  reset(): void {
    this.#length = 0;
  }
}

/** The byte arrays one after the other, in one new array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const part of parts) size += part.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Compares two byte strings the way Go compares strings: byte-wise, shorter prefix first. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

/** Compares two strings by their UTF-8 bytes, as Prometheus sorts labels and symbols. */
export function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  // For strings without surrogates UTF-16 code unit order equals UTF-8 byte order.
  if (!/[\ud800-\udfff]/.test(a) && !/[\ud800-\udfff]/.test(b)) return a < b ? -1 : 1;
  return compareBytes(_encoder.encode(a), _encoder.encode(b));
}

// Decoders and encoders live for a record or an entry (see _hidden_class.ts).
keepHiddenClass(new Decbuf(new Uint8Array(0)));
keepHiddenClass(new Encbuf());
