/**
 * A snappy block decoded as its bytes arrive, for WAL records too large to hold whole: Prometheus
 * logs all the series one scrape creates in one record (about 100 MiB for a million series), and
 * compresses it as one snappy block, which its WAL then cuts into 32 KiB pages.
 *
 * Memory: a window of the last `windowBytes` of output (Go's and the reference encoders compress
 * in 64 KiB blocks, so no copy reaches further back; a copy that does fails the stream), an output
 * buffer of the same size, and the few bytes of an element cut between two inputs.
 *
 * The output is what snappyjs' `uncompressToBuffer` gives into a zeroed buffer of the length the
 * block claims (as `wlog.ts` decodes whole records): bytes past that length are dropped, and a
 * block that decodes shorter ends in zeros.
 *
 * @module
 */

/**
 * Whether a snappy block of `compressedBytes` can decode to `claimed` bytes: an element of n bytes
 * expands to at most 64/3 n bytes (a 3-byte copy of 64), so a larger claim is damage (checked
 * first, it also keeps a bogus header from sizing anything).
 */
export function snappyClaimFits(claimed: number, compressedBytes: number): boolean {
  return claimed >= 0 && claimed <= compressedBytes * 22 + 16;
}

/** Thrown for a block that cannot be decoded. */
export class SnappyStreamError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "SnappyStreamError";
  }
}

/** Decodes one snappy block pushed in pieces; see the module doc. */
export class SnappyStreamDecoder {
  #emit: (bytes: Uint8Array) => void;
  #window: number;
  /** Output: the window's history, then what is not yet emitted. */
  #out: Uint8Array;
  #used = 0;
  /** Where the not yet emitted output starts in #out. */
  #emitFrom = 0;
  /** Bytes of output produced so far (all of them, dropped ones included). */
  #produced = 0;
  /** The claimed length, once its varint is read (-1 before). */
  #claimed = -1;
  #lengthBytes = 0;
  #lengthValue = 0;
  /** An element's bytes cut by the end of an input (at most 5). */
  #carry = new Uint8Array(8);
  #carried = 0;
  /** Literal bytes still to come from the next inputs. */
  #literal = 0;
  /** Input bytes taken. */
  #consumed = 0;

  /** A decoder handing its output to `emit` (valid until it returns); `windowBytes` of history. */
  constructor(emit: (bytes: Uint8Array) => void, windowBytes = 64 * 1024) {
    this.#emit = emit;
    this.#window = windowBytes;
    this.#out = new Uint8Array(2 * windowBytes);
  }

  /** Decodes `input`, the next bytes of the block. */
  push(input: Uint8Array): void {
    this.#consumed += input.length;
    let p = 0;
    while (this.#claimed < 0 && p < input.length) {
      const c = input[p++];
      if (this.#lengthBytes >= 5) throw new SnappyStreamError("invalid length header");
      this.#lengthValue += (c & 0x7f) * 2 ** (7 * this.#lengthBytes++);
      if (c < 0x80) this.#claimed = this.#lengthValue;
    }
    while (p < input.length) {
      if (this.#literal > 0) {
        const n = Math.min(this.#literal, input.length - p);
        this.#write(input, p, n);
        this.#literal -= n;
        p += n;
        continue;
      }
      // An element's header: take it whole from the carry and the input, or carry what is here.
      const tag = this.#carried > 0 ? this.#carry[0] : input[p];
      const size = _headerSize(tag);
      if (this.#carried + (input.length - p) < size) {
        this.#carry.set(input.subarray(p), this.#carried);
        this.#carried += input.length - p;
        return;
      }
      if (this.#carried > 0) {
        const need = size - this.#carried;
        this.#carry.set(input.subarray(p, p + need), this.#carried);
        p += need;
        this.#carried = 0;
        this.#element(this.#carry, 0, size);
      } else {
        // In place: an element is a few bytes, and a block of 100 MiB has millions of them.
        this.#element(input, p, size);
        p += size;
      }
    }
  }

  /** Ends the block: emits the rest, and zeros up to the claimed length. */
  end(): void {
    if (this.#claimed < 0) throw new SnappyStreamError("block ends inside its length header");
    if (this.#carried > 0 || this.#literal > 0) {
      throw new SnappyStreamError("block ends inside an element");
    }
    if (!snappyClaimFits(this.#claimed, this.#consumed)) {
      throw new SnappyStreamError(`invalid length header (length ${this.#claimed})`);
    }
    if (this.#produced < this.#claimed) {
      const zeros = new Uint8Array(Math.min(this.#window, this.#claimed - this.#produced));
      while (this.#produced < this.#claimed) {
        const n = Math.min(zeros.length, this.#claimed - this.#produced);
        this.#write(zeros, 0, n);
      }
    }
    this.#flush();
  }

  /** Decodes one element from its header at `h[at..]` (a literal's bytes follow in the input). */
  #element(h: Uint8Array, at: number, size: number): void {
    const tag = h[at];
    const kind = tag & 3;
    if (kind === 0) {
      let len = (tag >>> 2) + 1;
      if (len > 60) {
        len = 0;
        for (let i = size - 1; i >= 1; i--) len = len * 256 + h[at + i];
        len += 1;
      }
      this.#literal = len;
      return;
    }
    let len: number;
    let offset: number;
    if (kind === 1) {
      len = ((tag >>> 2) & 7) + 4;
      offset = h[at + 1] + ((tag >>> 5) << 8);
    } else if (kind === 2) {
      len = (tag >>> 2) + 1;
      offset = h[at + 1] + (h[at + 2] << 8);
    } else {
      len = (tag >>> 2) + 1;
      offset = (h[at + 1] + (h[at + 2] << 8) + (h[at + 3] << 16)) + h[at + 4] * 2 ** 24;
    }
    if (offset === 0 || offset > this.#produced) {
      throw new SnappyStreamError(`copy offset ${offset} before the start of the block`);
    }
    if (offset > this.#window) {
      throw new SnappyStreamError(`copy offset ${offset} beyond the ${this.#window}-byte window`);
    }
    // Byte by byte: a copy may overlap what it writes (a run).
    for (let i = 0; i < len; i++) {
      if (this.#used === this.#out.length) this.#slide();
      this.#out[this.#used] = this.#out[this.#used - offset];
      this.#used++;
      this.#produced++;
    }
  }

  #write(from: Uint8Array, at: number, n: number): void {
    while (n > 0) {
      if (this.#used === this.#out.length) this.#slide();
      const k = Math.min(n, this.#out.length - this.#used);
      this.#out.set(from.subarray(at, at + k), this.#used);
      this.#used += k;
      this.#produced += k;
      at += k;
      n -= k;
    }
  }

  /** Emits what is pending and keeps the last window's worth at the front. */
  #slide(): void {
    this.#flush();
    const keep = Math.min(this.#window, this.#used);
    this.#out.copyWithin(0, this.#used - keep, this.#used);
    this.#used = keep;
    this.#emitFrom = keep;
  }

  /** Emits the output not emitted yet, cut at the claimed length. */
  #flush(): void {
    const pending = this.#used - this.#emitFrom;
    if (pending <= 0) return;
    // Of the output so far, the bytes before #emitFrom's counterpart were emitted already.
    const start = this.#produced - pending;
    const upTo = Math.min(this.#produced, this.#claimed) - start;
    if (upTo > 0) this.#emit(this.#out.subarray(this.#emitFrom, this.#emitFrom + upTo));
    this.#emitFrom = this.#used;
  }
}

/** Bytes of an element's header: the tag and its length or offset bytes. */
function _headerSize(tag: number): number {
  switch (tag & 3) {
    case 0:
      return (tag >>> 2) < 60 ? 1 : 1 + (tag >>> 2) - 59;
    case 1:
      return 2;
    case 2:
      return 3;
    default:
      return 5;
  }
}
