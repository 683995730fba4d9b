/**
 * The frame structure of zstd streams, walked without decompressing: where a frame ends. The
 * reader cuts a stream into frames with it, the compressor knows when its frame is complete.
 *
 * @module
 */

import { PromcaseError } from "../errors.ts";

const _ZSTD_MAGIC_LE = 0xfd2fb528;

/**
 * Walks the frame structure of a zstd stream (frame headers, block headers, checksums, skippable
 * frames) without decompressing, in O(1) memory, to cut the stream at frame boundaries and to know
 * whether it ends at one. Throws a one-line "archive is corrupt" error on a malformed header.
 */
export class ZstdFrameWalker {
  #header = new Uint8Array(14);
  #headerLength = 0;
  #need = 4;
  #skip = 0;
  #state: "magic" | "skippableSize" | "descriptor" | "frameHeader" | "block" | "checksum" = "magic";
  #checksum = false;
  #offset = 0;

  /** Whether everything read so far ends exactly at the end of a frame. */
  get atBoundary(): boolean {
    return this.#state === "magic" && this.#headerLength === 0 && this.#skip === 0;
  }

  /**
   * Reads from `bytes` up to the end of the current frame (or all of them); returns how many bytes
   * it took.
   */
  consume(bytes: Uint8Array): number {
    let at = 0;
    while (at < bytes.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, bytes.length - at);
        this.#skip -= n;
        at += n;
        this.#offset += n;
      } else {
        const n = Math.min(this.#need - this.#headerLength, bytes.length - at);
        this.#header.set(bytes.subarray(at, at + n), this.#headerLength);
        this.#headerLength += n;
        at += n;
        this.#offset += n;
        if (this.#headerLength === this.#need) this.#advance();
      }
      if (this.atBoundary) return at;
    }
    return at;
  }

  #advance(): void {
    const h = this.#header;
    const view = new DataView(h.buffer, 0, this.#need);
    this.#headerLength = 0;
    switch (this.#state) {
      case "magic": {
        const magic = view.getUint32(0, true);
        if (magic === _ZSTD_MAGIC_LE) {
          this.#state = "descriptor";
          this.#need = 1;
        } else if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) {
          this.#state = "skippableSize";
          this.#need = 4;
        } else {
          throw this.#corrupt("unknown frame");
        }
        return;
      }
      case "skippableSize":
        this.#skip = view.getUint32(0, true);
        this.#state = "magic";
        this.#need = 4;
        return;
      case "descriptor": {
        const fhd = h[0];
        if (fhd & 0x08) throw this.#corrupt("reserved bit set in a frame header");
        const singleSegment = (fhd >> 5) & 1;
        this.#checksum = ((fhd >> 2) & 1) === 1;
        const fcs = [singleSegment ? 1 : 0, 2, 4, 8][fhd >> 6];
        this.#need = (singleSegment ? 0 : 1) + [0, 1, 2, 4][fhd & 3] + fcs;
        this.#state = "frameHeader";
        if (this.#need === 0) this.#advance();
        return;
      }
      case "frameHeader":
        this.#state = "block";
        this.#need = 3;
        return;
      case "block": {
        const header = h[0] | (h[1] << 8) | (h[2] << 16);
        const type = (header >> 1) & 3;
        if (type === 3) throw this.#corrupt("reserved block type");
        this.#skip = type === 1 ? 1 : header >>> 3;
        if ((header & 1) === 0) {
          this.#need = 3;
        } else if (this.#checksum) {
          this.#state = "checksum";
          this.#need = 4;
        } else {
          this.#state = "magic";
          this.#need = 4;
        }
        return;
      }
      case "checksum":
        this.#state = "magic";
        this.#need = 4;
        return;
    }
  }

  #corrupt(what: string): PromcaseError {
    return new PromcaseError(`archive is corrupt (zstd: ${what} at offset ${this.#offset})`);
  }
}
