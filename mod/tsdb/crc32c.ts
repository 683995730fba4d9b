/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), which every Prometheus on-disk format uses.
 * Slicing-by-8 tables: several times faster than a byte-wise table on large inputs.
 *
 * @module
 */

const _TABLES: Uint32Array[] = (() => {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    tables[0][i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++) {
    for (let t = 1; t < 8; t++) {
      const prev = tables[t - 1][i];
      tables[t][i] = (prev >>> 8) ^ tables[0][prev & 0xff];
    }
  }
  return tables;
})();

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
  const [t0, t1, t2, t3, t4, t5, t6, t7] = _TABLES;
  let c = ~crc >>> 0;
  let i = 0;
  const end8 = bytes.length - (bytes.length % 8);
  for (; i < end8; i += 8) {
    const lo =
      (c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24))) >>> 0;
    c = t7[lo & 0xff] ^ t6[(lo >>> 8) & 0xff] ^ t5[(lo >>> 16) & 0xff] ^ t4[lo >>> 24] ^
      t3[bytes[i + 4]] ^ t2[bytes[i + 5]] ^ t1[bytes[i + 6]] ^ t0[bytes[i + 7]];
  }
  for (; i < bytes.length; i++) c = t0[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
