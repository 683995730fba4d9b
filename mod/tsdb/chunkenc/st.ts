/**
 * Start timestamps (ST) in chunks (`tsdb/chunkenc/st.go`, Prometheus 3.11+ for XOR2 and 3.14+ for
 * the histogram encodings 5 and 6): one header byte and bits after each sample.
 *
 * Header byte: bit 7 (`firstSTKnown`) says sample 0 carries an ST; bits 0–6 (`firstSTChangeOn`)
 * give the index of the first sample with per-sample ST data (0: none). After sample 0: when bit 7
 * is set, a zig-zag varint `t − st`. From sample `firstSTChangeOn` on, after each sample: a varbit
 * integer, at `firstSTChangeOn` the difference `prevT − st` (prevT: the previous sample's
 * timestamp), later the change of that difference. Samples without ST data keep the ST before
 * them. The writer starts per-sample data at index 127 at the latest (the most 7 bits can say), so
 * chunks of more than 127 samples always carry it.
 *
 * {@link STReader} and {@link STWriter} are shared by the histogram chunks with ST; the XOR2 chunk
 * (`xor2.ts`) follows the same rules inline.
 *
 * @module
 */

import type { BitReader, BitWriter } from "./bstream.ts";
import { putVarbitInt, readVarbitInt } from "./varbit.ts";

/** The highest index the header can name as the first one with per-sample ST data. */
export const MAX_FIRST_ST_CHANGE_ON = 0x7f;

/** Reads the ST bits of a chunk, sample after sample. */
export class STReader {
  readonly #firstSTKnown: boolean;
  readonly #firstSTChangeOn: number;
  #st = 0n;
  #stDiff = 0n;

  /** A reader for a chunk whose ST header byte is `header`. */
  constructor(header: number) {
    this.#firstSTKnown = (header & 0x80) !== 0;
    this.#firstSTChangeOn = header & 0x7f;
  }

  /**
   * Reads what follows sample `index` (0-based; its timestamp `t`, the previous one's `prevT`)
   * and returns its ST (0 when the chunk has none).
   */
  read(r: BitReader, index: number, t: bigint, prevT: bigint): bigint {
    if (index === 0) {
      if (this.#firstSTKnown) this.#st = BigInt.asIntN(64, t - r.readVarint());
      return this.#st;
    }
    const first = this.#firstSTChangeOn;
    if (first === 0 || index < first) return this.#st;
    const d = readVarbitInt(r);
    this.#stDiff = index === first ? d : BigInt.asIntN(64, this.#stDiff + d);
    this.#st = BigInt.asIntN(64, prevT - this.#stDiff);
    return this.#st;
  }
}

/** Writes the ST bits of a chunk as Prometheus' `stEncoder` does. */
export class STWriter {
  #firstSTKnown = false;
  #firstSTChangeOn = 0;
  #st = 0n;
  #stDiff = 0n;

  /** The header byte so far. */
  get header(): number {
    return (this.#firstSTKnown ? 0x80 : 0) | this.#firstSTChangeOn;
  }

  /**
   * Writes what follows sample `index` (0-based), whose timestamp is `t` and ST `st` (0 for
   * none); `prevT` is the previous sample's timestamp.
   */
  write(w: BitWriter, index: number, t: bigint, prevT: bigint, st: bigint): void {
    if (index === 0) {
      if (st !== 0n) {
        w.writeVarint(BigInt.asIntN(64, t - st));
        this.#firstSTKnown = true;
      }
    } else if (this.#firstSTChangeOn > 0) {
      const diff = BigInt.asIntN(64, prevT - st);
      putVarbitInt(w, BigInt.asIntN(64, diff - this.#stDiff));
      this.#stDiff = diff;
    } else if (st !== this.#st || index === MAX_FIRST_ST_CHANGE_ON) {
      // The first change (forced at index 127, the last one the header can name).
      this.#stDiff = BigInt.asIntN(64, prevT - st);
      this.#firstSTChangeOn = index;
      putVarbitInt(w, this.#stDiff);
    }
    this.#st = st;
  }
}
