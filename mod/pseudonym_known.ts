/**
 * The set of original values a pseudonymized export has mapped, for finding them in context text.
 *
 * A value is kept as a 64-bit hash (two 32-bit lanes of cyrb53's mixing), not as a string, in an
 * open-addressing table: 16 bytes a value at most (the table doubles at half full), so a chosen
 * label with millions of distinct values (`pod`) costs tens of MiB, where a `Map` of the strings
 * and a regular expression of them took gigabytes. A false match needs two 64-bit hashes to agree:
 * about one in 10^13 for a million values and a few million lookups.
 *
 * {@link KnownValues.findTokens} finds known values in text where they stand as whole tokens (not
 * preceded or followed by a letter, digit or `_`), the longest at each place first; it hashes each
 * candidate incrementally, so text is read once per candidate start, up to the longest value known.
 *
 * @module
 */

const _P1 = 2654435761;
const _P2 = 1597334677;
const _SEED1 = 0xdeadbeef;
const _SEED2 = 0x41c6ce57;

/** Whether a UTF-16 code unit is a word character: `A-Za-z0-9_`. */
function _isWord(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

/** Options of {@link KnownValues}. */
export interface KnownValuesOptions {
  /** Slots of the table at first, a power of two (default 1024); it doubles at half full. */
  initialSlots?: number;
}

/** A set of strings by their 64-bit hashes, with a scan for them in text. */
export class KnownValues {
  #hi: Uint32Array;
  #lo: Uint32Array;
  #size = 0;
  // lengths[n] is 1 when a value of n UTF-16 code units is known.
  #lengths = new Uint8Array(64);
  #maxLength = 0;
  // The finalized hash of the last _hash() call.
  #h1 = 0;
  #h2 = 0;

  /** An empty set. */
  constructor(options: KnownValuesOptions = {}) {
    const slots = options.initialSlots ?? 1024;
    if (!Number.isSafeInteger(slots) || slots < 2 || (slots & (slots - 1)) !== 0) {
      throw new RangeError(`initialSlots must be a power of two, at least 2, not ${slots}`);
    }
    this.#hi = new Uint32Array(slots);
    this.#lo = new Uint32Array(slots);
  }

  /** Values in the set. */
  get size(): number {
    return this.#size;
  }

  /** Slots of the table (its memory is 8 bytes a slot). */
  get slots(): number {
    return this.#hi.length;
  }

  /** Adds `value`; false when it was known already. */
  add(value: string): boolean {
    this.#hash(value);
    if (this.#find(this.#h1, this.#h2) >= 0) return false;
    if (2 * (this.#size + 1) > this.#hi.length) this.#grow();
    this.#insert(this.#h1, this.#h2);
    this.#size++;
    const n = value.length;
    if (n >= this.#lengths.length) {
      const grown = new Uint8Array(Math.max(n + 1, 2 * this.#lengths.length));
      grown.set(this.#lengths);
      this.#lengths = grown;
    }
    this.#lengths[n] = 1;
    if (n > this.#maxLength) this.#maxLength = n;
    return true;
  }

  /** Whether `value` is in the set. */
  has(value: string): boolean {
    this.#hash(value);
    return this.#find(this.#h1, this.#h2) >= 0;
  }

  /**
   * Calls `onMatch(start, end)` for every known value in `text` that stands as a whole token, left
   * to right, the longest one where several start at the same place (as an alternation of the
   * values, longest first, between `(?<!\w)` and `(?!\w)`).
   */
  findTokens(text: string, onMatch: (start: number, end: number) => void): void {
    if (this.#size === 0) return;
    const n = text.length;
    const lengths = this.#lengths;
    const maxLength = this.#maxLength;
    let i = 0;
    while (i < n) {
      if (i > 0 && _isWord(text.charCodeAt(i - 1))) {
        i++;
        continue;
      }
      let h1 = _SEED1;
      let h2 = _SEED2;
      let best = -1;
      const limit = Math.min(n, i + maxLength);
      for (let j = i; j < limit; j++) {
        const c = text.charCodeAt(j);
        h1 = Math.imul(h1 ^ c, _P1);
        h2 = Math.imul(h2 ^ c, _P2);
        const end = j + 1;
        if (lengths[end - i] === 0) continue;
        if (end < n && _isWord(text.charCodeAt(end))) continue;
        this.#finalize(h1, h2);
        if (this.#find(this.#h1, this.#h2) >= 0) best = end;
      }
      if (best > i) {
        onMatch(i, best);
        i = best;
      } else i++;
    }
  }

  #hash(s: string): void {
    let h1 = _SEED1;
    let h2 = _SEED2;
    for (let j = 0; j < s.length; j++) {
      const c = s.charCodeAt(j);
      h1 = Math.imul(h1 ^ c, _P1);
      h2 = Math.imul(h2 ^ c, _P2);
    }
    this.#finalize(h1, h2);
  }

  // cyrb53's final mixing of the two lanes; (0, 0) marks an empty slot, so it becomes (0, 1).
  #finalize(h1: number, h2: number): void {
    let a = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
    a ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    let b = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
    b ^= Math.imul(a ^ (a >>> 13), 3266489909);
    a >>>= 0;
    b >>>= 0;
    this.#h1 = a;
    this.#h2 = a === 0 && b === 0 ? 1 : b;
  }

  #find(a: number, b: number): number {
    const mask = this.#hi.length - 1;
    for (let s = (a ^ Math.imul(b, 0x9e3779b1)) & mask;; s = (s + 1) & mask) {
      const hi = this.#hi[s];
      const lo = this.#lo[s];
      if (hi === a && lo === b) return s;
      if (hi === 0 && lo === 0) return -1;
    }
  }

  #insert(a: number, b: number): void {
    const mask = this.#hi.length - 1;
    let s = (a ^ Math.imul(b, 0x9e3779b1)) & mask;
    while (this.#hi[s] !== 0 || this.#lo[s] !== 0) s = (s + 1) & mask;
    this.#hi[s] = a;
    this.#lo[s] = b;
  }

  #grow(): void {
    const hi = this.#hi;
    const lo = this.#lo;
    this.#hi = new Uint32Array(2 * hi.length);
    this.#lo = new Uint32Array(2 * lo.length);
    for (let s = 0; s < hi.length; s++) {
      if (hi[s] !== 0 || lo[s] !== 0) this.#insert(hi[s], lo[s]);
    }
  }
}
