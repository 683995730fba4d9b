/**
 * Decodes a whole snappy block (the raw format, no framing) into a buffer, as Prometheus' WAL
 * compresses each record.
 *
 * The output of an intact block is what snappyjs' `uncompressToBuffer` gives (the reference the
 * tests hold it to): output past the buffer's end is dropped, and a block that decodes shorter
 * leaves the rest as it was. Damage fails, as `SnappyStreamDecoder` fails it (an element cut
 * by the block's end, a copy from before the output's start); snappyjs lets some of it through.
 * Long literals and copies are copied with `set` and `copyWithin` instead of byte by byte.
 *
 * Memory: none beyond the output buffer.
 *
 * @module
 */

/** Elements at least this long are copied by the engine; shorter ones byte by byte. */
const _BULK_BYTES = 16;

/**
 * Decodes `block` (its uvarint length first) into `out`; false when it is damaged. Only
 * `out.length` bytes are written, whatever the block claims.
 */
export function snappyDecodeInto(block: Uint8Array, out: Uint8Array): boolean {
  let pos = 0;
  // The claimed length: validated by the caller, skipped here (as snappyjs does).
  for (let shift = 0;; shift += 7) {
    if (pos >= block.length || shift >= 35) return false;
    if (block[pos++] < 0x80) break;
  }
  const end = block.length;
  const outEnd = out.length;
  let outPos = 0;
  while (pos < end) {
    const tag = block[pos++];
    const kind = tag & 3;
    if (kind === 0) {
      let len = (tag >>> 2) + 1;
      if (len > 60) {
        const lenBytes = len - 60;
        if (pos + lenBytes > end) return false;
        len = 0;
        for (let i = lenBytes - 1; i >= 0; i--) len = len * 256 + block[pos + i];
        len += 1;
        pos += lenBytes;
      }
      if (pos + len > end) return false;
      const n = Math.min(len, outEnd - outPos);
      if (n >= _BULK_BYTES) out.set(block.subarray(pos, pos + n), outPos);
      else for (let i = 0; i < n; i++) out[outPos + i] = block[pos + i];
      pos += len;
      outPos += len;
      continue;
    }
    let len: number;
    let offset: number;
    if (kind === 1) {
      if (pos + 1 > end) return false;
      len = ((tag >>> 2) & 7) + 4;
      offset = block[pos] + ((tag >>> 5) << 8);
      pos += 1;
    } else if (kind === 2) {
      if (pos + 2 > end) return false;
      len = (tag >>> 2) + 1;
      offset = block[pos] + (block[pos + 1] << 8);
      pos += 2;
    } else {
      if (pos + 4 > end) return false;
      len = (tag >>> 2) + 1;
      offset = block[pos] + (block[pos + 1] << 8) + (block[pos + 2] << 16) +
        block[pos + 3] * 0x1000000;
      pos += 4;
    }
    if (offset === 0 || offset > outPos) return false;
    const n = Math.min(len, outEnd - outPos);
    if (n >= _BULK_BYTES && offset >= n) {
      out.copyWithin(outPos, outPos - offset, outPos - offset + n);
    } else for (let i = 0; i < n; i++) out[outPos + i] = out[outPos - offset + i];
    outPos += len;
  }
  return true;
}
