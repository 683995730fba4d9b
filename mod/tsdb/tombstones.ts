/**
 * A block's `tombstones` file (`tsdb/tombstones/tombstones.go`): deleted time ranges per series.
 *
 * Layout: magic `0x0130BA30` (BE32), version byte 1, entries `uvarint seriesID | varint mint |
 * varint maxt`, and a CRC32C over the entries only (not the version byte). An empty file is the 9
 * bytes `01 30 BA 30 01 00 00 00 00`; a missing file means no tombstones. Intervals are closed,
 * `[mint, maxt]`.
 *
 * @module
 */

import { crc32c } from "./crc32c.ts";
import { Decbuf, Encbuf, FormatError } from "./encoding.ts";

/** Magic number at the start of a tombstones file. */
export const MAGIC_TOMBSTONES = 0x0130ba30;
/** Name of the file in a block directory. */
export const TOMBSTONES_FILENAME = "tombstones";

/** A closed time range `[mint, maxt]` (ms). */
export interface Interval {
  /** First deleted millisecond. */
  mint: bigint;
  /** Last deleted millisecond. */
  maxt: bigint;
}

/** Deleted intervals per series ID (the index's series ID), each list sorted and merged. */
export type Tombstones = Map<number, Interval[]>;

/**
 * Adds `iv` to a sorted, merged interval list, merging overlapping and adjacent intervals as
 * Prometheus does (timestamps are discrete, so `[1,2]` and `[3,4]` become `[1,4]`).
 */
export function addInterval(list: Interval[], iv: Interval): Interval[] {
  const all = [...list, { ...iv }].sort((a, b) => (a.mint < b.mint ? -1 : a.mint > b.mint ? 1 : 0));
  const out: Interval[] = [];
  for (const cur of all) {
    const last = out[out.length - 1];
    if (last && cur.mint <= last.maxt + 1n) {
      if (cur.maxt > last.maxt) last.maxt = cur.maxt;
    } else {
      out.push({ ...cur });
    }
  }
  return out;
}

/** Whether `t` lies in one of the intervals. */
export function isDeleted(list: readonly Interval[], t: bigint): boolean {
  for (const iv of list) if (t >= iv.mint && t <= iv.maxt) return true;
  return false;
}

/** Parses the bytes of a tombstones file, checking magic, version and CRC. */
export function parseTombstones(bytes: Uint8Array): Tombstones {
  if (bytes.length < 9) throw new FormatError(`tombstones: ${bytes.length} bytes is too short`);
  const d = new Decbuf(bytes.subarray(0, bytes.length - 4));
  const magic = d.be32();
  if (magic !== MAGIC_TOMBSTONES) {
    throw new FormatError(`tombstones: bad magic 0x${magic.toString(16)}`);
  }
  const version = d.byte();
  if (version !== 1) throw new FormatError(`tombstones: unsupported version ${version}`);
  const want = new DataView(bytes.buffer, bytes.byteOffset + bytes.length - 4, 4).getUint32(0);
  if (crc32c(bytes.subarray(5, bytes.length - 4)) !== want) {
    throw new FormatError("tombstones: CRC32C mismatch");
  }
  const out: Tombstones = new Map();
  while (d.remaining > 0) {
    const ref = d.uvarint();
    const mint = d.varint64();
    const maxt = d.varint64();
    out.set(ref, addInterval(out.get(ref) ?? [], { mint, maxt }));
  }
  return out;
}

/** Reads `<dir>/tombstones`; a missing file gives no tombstones. */
export async function readTombstones(dir: string): Promise<Tombstones> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(`${dir}/${TOMBSTONES_FILENAME}`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return new Map();
    throw e;
  }
  return parseTombstones(bytes);
}

/** Encodes tombstones (series in ascending ID order) into the bytes of a tombstones file. */
export function encodeTombstones(stones: Tombstones = new Map()): Uint8Array {
  const e = new Encbuf();
  e.be32(MAGIC_TOMBSTONES).byte(1);
  for (const ref of [...stones.keys()].sort((a, b) => a - b)) {
    for (const iv of stones.get(ref)!) e.uvarint(ref).varint(iv.mint).varint(iv.maxt);
  }
  const crc = crc32c(e.get().subarray(5));
  return e.be32(crc).get().slice();
}

/** Number of intervals, as Prometheus counts `numTombstones`. */
export function countTombstones(stones: Tombstones): number {
  let n = 0;
  for (const list of stones.values()) n += list.length;
  return n;
}

/**
 * Writes `<dir>/tombstones` through a temporary file, fsynced (unless the block is `temporary`,
 * only read before it is removed), then renamed into place.
 */
export async function writeTombstones(
  dir: string,
  stones: Tombstones = new Map(),
  temporary = false,
): Promise<void> {
  const path = `${dir}/${TOMBSTONES_FILENAME}`;
  const tmp = `${path}.tmp`;
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    const bytes = encodeTombstones(stones);
    let done = 0;
    while (done < bytes.length) done += await f.write(bytes.subarray(done));
    if (!temporary) await f.sync();
  } finally {
    f.close();
  }
  await Deno.rename(tmp, path);
}
