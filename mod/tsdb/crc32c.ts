/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), which every Prometheus on-disk format uses.
 * Slicing-by-16 tables over 32-bit loads (on a little-endian host, as all we run on are; else
 * slicing-by-8 over bytes): about twice as fast as slicing-by-8 over bytes, and WAL records,
 * head chunks and written chunks are all checksummed.
 *
 * @module
 */

const _TABLES: Uint32Array[] = (() => {
  const tables = Array.from({ length: 16 }, () => new Uint32Array(256));
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    tables[0][i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++) {
    for (let t = 1; t < 16; t++) {
      const prev = tables[t - 1][i];
      tables[t][i] = (prev >>> 8) ^ tables[0][prev & 0xff];
    }
  }
  return tables;
})();
const [_T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7, _T8, _T9, _T10, _T11, _T12, _T13, _T14, _T15] =
  _TABLES;

const _LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** Shorter inputs skip the word loop (its view costs more than it saves). */
const _WORDS_FROM = 64;

/**
 * Updates a running CRC32C with `bytes`. Start with 0; the result is the finished checksum (the
 * pre- and post-inversion happen inside, as Go's `crc32.Update` does).
 *
 * @example
 * ```ts
 * crc32c(new TextEncoder().encode("123456789")); // 0xe3069283
 * ```
 */
export function crc32c(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  let i = 0;
  const n = bytes.length;
  if (_LITTLE_ENDIAN && n >= _WORDS_FROM) {
    // Bytes up to a 4-byte boundary, then 16 bytes at a time as four aligned words.
    const head = (4 - (bytes.byteOffset & 3)) & 3;
    for (; i < head; i++) c = _T0[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset + head, (n - head) >>> 2);
    const end = words.length - (words.length & 3);
    for (let w = 0; w < end; w += 4) {
      const a = c ^ words[w];
      const b = words[w + 1];
      const d = words[w + 2];
      const e = words[w + 3];
      c = _T15[a & 0xff] ^ _T14[(a >>> 8) & 0xff] ^ _T13[(a >>> 16) & 0xff] ^ _T12[a >>> 24] ^
        _T11[b & 0xff] ^ _T10[(b >>> 8) & 0xff] ^ _T9[(b >>> 16) & 0xff] ^ _T8[b >>> 24] ^
        _T7[d & 0xff] ^ _T6[(d >>> 8) & 0xff] ^ _T5[(d >>> 16) & 0xff] ^ _T4[d >>> 24] ^
        _T3[e & 0xff] ^ _T2[(e >>> 8) & 0xff] ^ _T1[(e >>> 16) & 0xff] ^ _T0[e >>> 24];
    }
    i = head + 4 * end;
  }
  const end8 = i + ((n - i) & ~7);
  for (; i < end8; i += 8) {
    const lo =
      (c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24))) >>> 0;
    c = _T7[lo & 0xff] ^ _T6[(lo >>> 8) & 0xff] ^ _T5[(lo >>> 16) & 0xff] ^ _T4[lo >>> 24] ^
      _T3[bytes[i + 4]] ^ _T2[bytes[i + 5]] ^ _T1[bytes[i + 6]] ^ _T0[bytes[i + 7]];
  }
  for (; i < n; i++) c = _T0[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
