/**
 * Byte sizes as people write them on a command line: `100MB`, `2GiB`, `500M`, `4096`.
 *
 * @module
 */

import { usageError } from "./errors.ts";

// Decimal units for KB/MB/…, binary ones for KiB/MiB/… and, as GNU `split -b` and `dd` read them,
// for the bare letters K/M/G/T. Matched case-insensitively: "mb" is megabytes, never megabits.
const _UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

/**
 * Parses a positive byte size: a number (fractions allowed) and an optional unit: B; KB, MB, GB,
 * TB (powers of 1000); KiB, MiB, GiB, TiB or K, M, G, T (powers of 1024). Throws a usage error
 * naming `what` (e.g. "--split") for anything else. The result is rounded down to whole bytes.
 */
export function parseByteSize(text: string, what = "size"): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match ? _UNITS[match[2].toLowerCase()] : undefined;
  const bytes = match && unit !== undefined ? Math.floor(Number(match[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw usageError(
      `invalid ${what} ${JSON.stringify(text)}: give a size such as 100MB, 2GiB or 500M`,
    );
  }
  return bytes;
}

/** Formats a byte count for people: `1.2 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}
