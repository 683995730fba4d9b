// WalReader on real WALs (Prometheus 2.42 data dir with a checkpoint, Prometheus 3.5.3 fixtures
// with zstd, snappy and no compression), on damaged copies of them, and on WALs of our writer.
import assert from "node:assert/strict";
import { FormatError } from "../mod/tsdb/encoding.ts";
import { decodeRecord, float64Bits } from "../mod/tsdb/record.ts";
import {
  CorruptionError,
  listCheckpoints,
  listSegments,
  WAL_PAGE_SIZE,
  WalReader,
  type WalReaderOptions,
  type WalRecord,
  walReplaySegments,
  WalSegmentWriter,
} from "../mod/tsdb/wlog.ts";

const DATADIR = new URL("./testdata/datadir/", import.meta.url).pathname;
const FIXTURES = new URL("./testdata/wal/", import.meta.url).pathname;

/** A fragment as found by a deliberately separate, minimal parser of the page layout. */
interface RawFragment {
  offset: number;
  type: number;
  flags: number;
  length: number;
}

function rawFragments(bytes: Uint8Array): RawFragment[] {
  const out: RawFragment[] = [];
  for (let page = 0; page < bytes.length; page += WAL_PAGE_SIZE) {
    let p = page;
    while (p + 7 <= Math.min(page + WAL_PAGE_SIZE, bytes.length)) {
      const type = bytes[p] & 7;
      if (type === 0) break;
      const length = (bytes[p + 1] << 8) | bytes[p + 2];
      out.push({ offset: p, type, flags: bytes[p] & 0x18, length });
      p += 7 + length;
    }
  }
  return out;
}

/** Reads everything; returns the records and the error that stopped the reader, if any. */
async function readAll(
  segments: string[],
  options?: WalReaderOptions,
): Promise<{ records: WalRecord[]; reader: WalReader; error?: unknown }> {
  const reader = new WalReader(segments, options);
  const records: WalRecord[] = [];
  try {
    for await (const rec of reader) records.push(rec);
  } catch (error) {
    return { records, reader, error };
  }
  return { records, reader };
}

/** Copies the given files into a fresh temp dir; returns the dir. */
async function copyToTemp(files: string[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "promcase-wal-test-" });
  for (const f of files) await Deno.copyFile(f, `${dir}/${f.split("/").pop()}`);
  return dir;
}

async function withTemp(files: string[], fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await copyToTemp(files);
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function patch(path: string, at: number, fn: (b: number) => number): Promise<void> {
  const bytes = await Deno.readFile(path);
  bytes[at] = fn(bytes[at]);
  await Deno.writeFile(path, bytes);
}

function crc32cOf(bytes: Uint8Array): number {
  // A byte-wise CRC32C, independent of mod/tsdb/crc32c.ts.
  let c = ~0 >>> 0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

const SEG = (n: number) => `${DATADIR}wal/${String(n).padStart(8, "0")}`;

Deno.test("datadir WAL: checkpoint then segments 2-4, as Prometheus replays them", async () => {
  const plan = await walReplaySegments(`${DATADIR}wal`);
  assert.equal(plan.checkpoint?.index, 1);
  assert.deepEqual(
    plan.segments.map((s) => [s.index, s.path.slice(DATADIR.length)]),
    [
      [0, "wal/checkpoint.00000001/00000000"],
      [2, "wal/00000002"],
      [3, "wal/00000003"],
      [4, "wal/00000004"],
    ],
  );
  assert.deepEqual((await listCheckpoints(`${DATADIR}wal`)).map((c) => c.index), [1]);
  assert.deepEqual((await listSegments(`${DATADIR}wal`)).map((s) => s.index), [2, 3, 4]);
});

Deno.test("datadir WAL: every sample has a checkpoint series, head range and up == 1", async () => {
  const { segments } = await walReplaySegments(`${DATADIR}wal`);
  const reader = new WalReader(segments);
  const series = new Map<bigint, string>();
  const counts = new Map<string, number>();
  const up: { t: bigint; v: bigint }[] = [];
  let minT: bigint | undefined;
  let maxT: bigint | undefined;
  let samples = 0;
  const lastOffset = new Map<string, number>();
  for await (const rec of reader) {
    assert.ok(rec.offset > (lastOffset.get(rec.path) ?? -1), "offsets grow within a segment");
    lastOffset.set(rec.path, rec.offset);
    assert.equal(rec.compression, "snappy");
    const d = decodeRecord(rec.bytes);
    const key = `${rec.path.slice(DATADIR.length)}:${d.type}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    if (d.type === "series") {
      for (const s of d.series) {
        series.set(s.ref, s.labels.map((l) => `${l.name}=${JSON.stringify(l.value)}`).join(","));
      }
    } else if (d.type === "samples") {
      for (const s of d.samples) {
        samples++;
        const labels = series.get(s.ref);
        assert.ok(labels, `sample of unknown series ref ${s.ref}`);
        if (minT === undefined || s.t < minT) minT = s.t;
        if (maxT === undefined || s.t > maxT) maxT = s.t;
        if (labels.startsWith('__name__="up",') && labels.includes('job="prometheus"')) {
          up.push({ t: s.t, v: s.v });
        }
      }
    } else {
      assert.fail(`unexpected record type ${d.type}`);
    }
  }
  assert.equal(reader.torn, undefined);
  assert.deepEqual(Object.fromEntries(counts), {
    "wal/checkpoint.00000001/00000000:series": 3,
    "wal/00000002:samples": 82,
    "wal/00000003:samples": 120,
    "wal/00000004:samples": 72,
  });
  assert.deepEqual(reader.stats, {
    segments: 4,
    records: 277,
    streamedRecords: 0,
    fragments: 277,
    snappyRecords: 277,
    zstdRecords: 0,
    skippedRecords: 0,
  });
  assert.equal(series.size, 25);
  // tests/testdata/README.md: the WAL samples run from 13:12:50.485 to 13:15:06.693, and the
  // head Prometheus rebuilds from them covers [1795612440000, 1795612506693].
  assert.equal(minT, 1795612370485n);
  assert.equal(maxT, 1795612506693n);
  assert.ok(samples > 1000);
  // up{job="prometheus"}: value 1 every second; 67 of its samples are in the head.
  assert.equal(up.length, 137);
  assert.ok(up.every((s) => s.v === float64Bits(1)));
  assert.equal(up.filter((s) => s.t >= 1795612440000n).length, 67);
  assert.equal(up[0].t, 1795612370485n);
  assert.equal(up.at(-1)!.t, 1795612506485n);
  // One scrape a second, give or take a few milliseconds.
  for (let i = 1; i < up.length; i++) {
    const step = up[i].t - up[i - 1].t;
    assert.ok(step >= 990n && step <= 1010n, `scrape step ${step} ms`);
  }
});

interface Manifest {
  prometheus: string;
  startMs: number;
  stopMs: number;
}

for (const name of ["zstd", "snappy", "none"] as const) {
  Deno.test(`3.5.3 ${name} fixture: records, compression and fragments`, async () => {
    const dir = `${FIXTURES}${name}/wal`;
    const manifest: Manifest = JSON.parse(
      await Deno.readTextFile(`${FIXTURES}${name}/manifest.json`),
    );
    assert.equal(manifest.prometheus, "3.5.3");
    const segs = await listSegments(dir);
    const { records, reader, error } = await readAll(segs.map((s) => s.path));
    assert.equal(error, undefined);
    assert.equal(reader.torn, undefined);
    assert.ok(records.length > 10);
    const byCompression = Object.groupBy(records, (r) => r.compression);
    if (name === "zstd") {
      assert.ok((byCompression.zstd?.length ?? 0) > 10);
      assert.equal(byCompression.snappy, undefined);
    } else if (name === "snappy") {
      assert.ok((byCompression.snappy?.length ?? 0) > 10);
      assert.equal(byCompression.zstd, undefined);
    } else {
      assert.deepEqual(Object.keys(byCompression), ["none"]);
    }
    // Compressed records that are not stored compressed were not worth it: small ones.
    for (const r of byCompression.none ?? []) if (name !== "none") assert.ok(r.bytes.length < 200);

    // Our fragment count equals a separate parse of the pages; every record's first fragment
    // is at the offset reported.
    let fragments = 0;
    const starts = new Set<string>();
    const kinds = new Set<number>();
    for (const seg of segs) {
      const frags = rawFragments(await Deno.readFile(seg.path));
      fragments += frags.length;
      for (const f of frags) {
        kinds.add(f.type);
        if (f.type === 1 || f.type === 2) starts.add(`${seg.index}:${f.offset}`);
      }
    }
    assert.equal(reader.stats.fragments, fragments);
    assert.deepEqual(new Set(records.map((r) => `${r.segment}:${r.offset}`)), starts);
    assert.ok(kinds.has(2) && kinds.has(4), "records crossing a page boundary");
    if (name === "none") assert.ok(kinds.has(3), "a record of more than two pages");
  });
}

Deno.test("corruption: a flipped payload byte is reported at its fragment", async () => {
  await withTemp([SEG(2), SEG(3), SEG(4)], async (dir) => {
    const files = [2, 3, 4].map((n) => `${dir}/${String(n).padStart(8, "0")}`);
    const clean = await readAll([files[1]]);
    const victim = clean.records[9];
    await patch(files[1], victim.offset + 7 + 3, (b) => b ^ 0x40);
    const { records, error } = await readAll(files);
    assert.ok(error instanceof CorruptionError, String(error));
    assert.equal(error.segment, 3);
    assert.equal(error.offset, victim.offset);
    assert.equal(error.path, files[1]);
    assert.match(error.message, /checksum mismatch in full fragment/);
    assert.equal(records.length, 82 + 9);
  });
});

Deno.test("corruption: a flipped byte in a last fragment points at that fragment", async () => {
  const seg = (await listSegments(`${FIXTURES}none/wal`))[0].path;
  const frags = rawFragments(await Deno.readFile(seg));
  const last = frags.find((f) => f.type === 4 && f.length > 100)!;
  await withTemp([seg], async (dir) => {
    const file = `${dir}/00000000`;
    await patch(file, last.offset + 7 + 50, (b) => b ^ 1);
    const { error } = await readAll([file]);
    assert.ok(error instanceof CorruptionError);
    assert.equal(error.segment, 0);
    assert.equal(error.offset, last.offset);
    assert.equal(last.offset % WAL_PAGE_SIZE, 0, "a last fragment starts a page");
  });
});

Deno.test("corruption: illegal fragment sequences, lengths and padding", async () => {
  const src = SEG(2);
  const frags = rawFragments(await Deno.readFile(src));
  const f = frags[5];
  const cases: [string, (file: string) => Promise<void>, RegExp, number][] = [
    [
      "full as middle",
      (p) => patch(p, f.offset, (b) => (b & ~7) | 3),
      /unexpected middle/,
      f.offset,
    ],
    ["full as last", (p) => patch(p, f.offset, (b) => (b & ~7) | 4), /unexpected last/, f.offset],
    // A first fragment followed by a full one: the full one is out of place.
    [
      "full as first",
      (p) => patch(p, f.offset, (b) => (b & ~7) | 2),
      /unexpected full fragment inside/,
      frags[6].offset,
    ],
    ["type 5", (p) => patch(p, f.offset, (b) => (b & ~7) | 5), /unknown fragment type 5/, f.offset],
    ["length", (p) => patch(p, f.offset + 1, () => 0x7f), /invalid fragment length/, f.offset],
    [
      "padding",
      (p) => patch(p, WAL_PAGE_SIZE - 1, () => 1),
      /non-zero byte in padded page/,
      WAL_PAGE_SIZE - 1,
    ],
  ];
  for (const [what, damage, message, offset] of cases) {
    await withTemp([src], async (dir) => {
      const file = `${dir}/00000002`;
      await damage(file);
      const { error } = await readAll([file]);
      assert.ok(error instanceof CorruptionError, `${what}: ${error}`);
      assert.match(error.message, message, what);
      assert.equal(error.offset, offset, what);
      assert.equal(error.segment, 2, what);
    });
  }
});

Deno.test("corruption: undecodable snappy and zstd data behind a valid CRC", async () => {
  const cases = [
    { src: SEG(2), name: "00000002", flag: 0x08, message: /snappy/ },
    {
      src: (await listSegments(`${FIXTURES}zstd/wal`))[0].path,
      name: "00000000",
      flag: 0x10,
      message: /zstd decoding failed/,
    },
  ];
  for (const { src, name, flag, message } of cases) {
    const f = rawFragments(await Deno.readFile(src)).find((x) => x.type === 1 && x.flags === flag)!;
    await withTemp([src], async (dir) => {
      const file = `${dir}/${name}`;
      const bytes = await Deno.readFile(file);
      const payload = bytes.subarray(f.offset + 7, f.offset + 7 + f.length);
      // Snappy: a claimed length far beyond what the block can hold. Zstd: a broken frame magic.
      payload.set(flag === 0x08 ? [0xff, 0xff, 0xff, 0xff, 0x0f] : [0, 0, 0, 0]);
      new DataView(bytes.buffer).setUint32(f.offset + 3, crc32cOf(payload));
      await Deno.writeFile(file, bytes);
      const { error } = await readAll([file]);
      assert.ok(error instanceof CorruptionError, String(error));
      assert.match(error.message, message);
      assert.equal(error.offset, f.offset);
    });
  }
});

Deno.test("torn tail: the last segment cut inside a record ends normally", async () => {
  await withTemp([SEG(2), SEG(3), SEG(4)], async (dir) => {
    const files = [2, 3, 4].map((n) => `${dir}/${String(n).padStart(8, "0")}`);
    const last = (await readAll([files[2]])).records.at(-1)!;
    await Deno.truncate(files[2], last.offset + 20);
    const { records, reader, error } = await readAll(files);
    assert.equal(error, undefined);
    assert.equal(records.length, 274 - 1);
    assert.deepEqual(reader.torn, { segment: 4, path: files[2], offset: last.offset });
    // Cut inside the header.
    await Deno.truncate(files[2], last.offset + 3);
    const again = await readAll(files);
    assert.equal(again.error, undefined);
    assert.equal(again.reader.torn?.offset, last.offset);
    // Not allowed: a corruption.
    const strict = await readAll(files, { allowTornTail: false });
    assert.ok(strict.error instanceof CorruptionError);
    assert.equal(strict.error.offset, last.offset);
  });
});

Deno.test("torn tail: a multi-page record whose last fragments are missing", async () => {
  const seg = (await listSegments(`${FIXTURES}none/wal`))[0].path;
  const { records } = await readAll([seg]);
  // A record that starts in one page and goes on in the next.
  const i = records.findIndex((r, k) =>
    k + 1 < records.length &&
    Math.floor(r.offset / WAL_PAGE_SIZE) < Math.floor(records[k + 1].offset / WAL_PAGE_SIZE) &&
    records[k + 1].offset % WAL_PAGE_SIZE !== 0
  );
  assert.ok(i >= 0);
  const cut = (Math.floor(records[i].offset / WAL_PAGE_SIZE) + 1) * WAL_PAGE_SIZE;
  await withTemp([seg], async (dir) => {
    const file = `${dir}/00000000`;
    await Deno.truncate(file, cut);
    const got = await readAll([file]);
    assert.equal(got.error, undefined);
    assert.equal(got.records.length, i);
    assert.equal(got.reader.torn?.offset, records[i].offset);
    assert.deepEqual(got.records.map((r) => r.bytes), records.slice(0, i).map((r) => r.bytes));
  });
});

Deno.test("a non-last segment cut inside a record is a corruption, at a record end it is not", async () => {
  await withTemp([SEG(2), SEG(3), SEG(4)], async (dir) => {
    const files = [2, 3, 4].map((n) => `${dir}/${String(n).padStart(8, "0")}`);
    const rec = (await readAll([files[1]])).records[50];
    await Deno.truncate(files[1], rec.offset + 20);
    const { records, error } = await readAll(files);
    assert.ok(error instanceof CorruptionError, String(error));
    assert.equal(error.segment, 3);
    assert.equal(error.offset, rec.offset);
    assert.match(error.message, /segment ends inside a record/);
    assert.equal(records.length, 82 + 50);
    // A short segment reads as if zero-padded: cut at a record boundary, nothing is wrong.
    await Deno.truncate(files[1], rec.offset);
    const ok = await readAll(files);
    assert.equal(ok.error, undefined);
    assert.equal(ok.reader.torn, undefined);
    assert.equal(ok.records.length, 82 + 50 + 72);
  });
});

Deno.test("segment listing: gaps, names, missing segment after a checkpoint", async () => {
  const dir = await Deno.makeTempDir({ prefix: "promcase-wal-test-" });
  try {
    for (const name of ["00000001", "00000002", "00000004", "00000003.repair", "x"]) {
      await Deno.writeFile(`${dir}/${name}`, new Uint8Array(0));
    }
    await Deno.mkdir(`${dir}/checkpoint.00000002`);
    await Deno.mkdir(`${dir}/checkpoint.00000003.tmp`);
    await assert.rejects(() => listSegments(dir), FormatError);
    await Deno.rename(`${dir}/00000004`, `${dir}/00000003`);
    assert.deepEqual((await listSegments(dir)).map((s) => s.index), [1, 2, 3]);
    assert.deepEqual((await listCheckpoints(dir)).map((c) => c.index), [2]);
    const plan = await walReplaySegments(dir);
    assert.deepEqual(plan.segments.map((s) => s.path.slice(dir.length)), ["/00000003"]);
    // Empty segments read as nothing.
    assert.equal((await readAll(plan.segments.map((s) => s.path))).records.length, 0);
    await Deno.remove(`${dir}/00000003`);
    await Deno.writeFile(`${dir}/00000004`, new Uint8Array(0));
    await Deno.remove(`${dir}/00000001`);
    await Deno.remove(`${dir}/00000002`);
    await assert.rejects(() => walReplaySegments(dir), /segment 3 after .* is missing/);
    assert.throws(() => new WalReader([`${dir}/x`]), FormatError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writer: records of every size round-trip, fragments stay inside pages", async () => {
  const dir = await Deno.makeTempDir({ prefix: "promcase-wal-test-" });
  try {
    const rnd = (n: number, seed: number) => {
      const b = new Uint8Array(n);
      let x = seed;
      for (let i = 0; i < n; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        b[i] = (x >>> 16) & (i % 3 === 0 ? 0xff : 0x0f); // compressible, but not trivially
      }
      return b;
    };
    // 32758 leaves 3 bytes in the first page: the writer pads them and starts a new page.
    const sizes = [32758, 0, 1, 100, 32761, 32762, 2 * 32768, 100_000, 7, 5000];
    for (const compression of ["none", "snappy"] as const) {
      const file = `${dir}/00000000`;
      const w = await WalSegmentWriter.create(file, { compression });
      const offsets: number[] = [];
      for (const [i, n] of sizes.entries()) offsets.push(await w.log(rnd(n, i + 1)));
      await w.close();
      assert.equal(offsets[0], 0);
      if (compression === "none") assert.equal(offsets[1], WAL_PAGE_SIZE);
      const bytes = await Deno.readFile(file);
      assert.equal(bytes.length % WAL_PAGE_SIZE, 0);
      for (const f of rawFragments(bytes)) {
        assert.ok(f.offset % WAL_PAGE_SIZE + 7 + f.length <= WAL_PAGE_SIZE);
      }
      const { records, reader, error } = await readAll([file]);
      assert.equal(error, undefined);
      assert.deepEqual(records.map((r) => r.offset), offsets);
      assert.deepEqual(records.map((r) => r.bytes), sizes.map((n, i) => rnd(n, i + 1)));
      if (compression === "snappy") assert.ok(reader.stats.snappyRecords >= 5);
      else assert.ok(rawFragments(bytes).some((f) => f.type === 3));
    }
    // A live segment is not padded: the reader pads it.
    const w = await WalSegmentWriter.create(`${dir}/00000001`);
    await w.log(rnd(40_000, 9));
    await w.log(rnd(10, 10));
    await w.close(false);
    assert.equal((await Deno.stat(`${dir}/00000001`)).size, 40_000 + 14 + 10 + 7);
    const live = await readAll([`${dir}/00000001`]);
    assert.deepEqual(live.records.map((r) => r.bytes), [rnd(40_000, 9), rnd(10, 10)]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("breaking out of the iteration closes the segment; a reader can iterate again", async () => {
  const reader = new WalReader([SEG(2), SEG(3)]);
  for await (const _ of reader) break;
  assert.equal(reader.stats.records, 1);
  let n = 0;
  for await (const _ of reader) n++;
  assert.equal(n, 82 + 120);
  assert.equal(reader.stats.records, 82 + 120);
  assert.equal(reader.stats.segments, 2);
});

Deno.test("reuseBuffer hands out the same records as copies, each valid until the next", async () => {
  const dirs = ["none", "snappy", "zstd"].map((n) =>
    new URL(`./testdata/wal/${n}/wal`, import.meta.url).pathname
  );
  let multiFragment = 0;
  for (const dir of dirs) {
    const segments = await listSegments(dir);
    const copies: Uint8Array[] = [];
    for await (const rec of new WalReader(segments)) copies.push(rec.bytes);
    const reader = new WalReader(segments, { reuseBuffer: true });
    let i = 0;
    let previous: Uint8Array | undefined;
    for await (const rec of reader) {
      assert.deepEqual(rec.bytes, copies[i], `${dir} record ${i}`);
      // The previous record's view now shows this one's bytes (it was overwritten, not copied).
      if (previous && rec.compression === "none" && previous.buffer === rec.bytes.buffer) {
        assert.equal(previous[0], rec.bytes[0]);
      }
      previous = rec.bytes;
      i++;
    }
    assert.equal(i, copies.length);
    multiFragment += reader.stats.fragments - reader.stats.records;
  }
  assert.ok(multiFragment > 0, "records of several fragments were read");
});

Deno.test("reuseBuffer: a snappy block that decodes short leaves zeros, as a fresh buffer does", async () => {
  const dir = await Deno.makeTempDir({ prefix: "promcase-wal-short-snappy-" });
  try {
    // Snappy blocks written as plain records, then flagged as snappy (the CRC covers only the
    // payload): twelve 0xff bytes; then a block that claims 10 bytes but holds a 3-byte literal.
    const w = await WalSegmentWriter.create(`${dir}/00000000`);
    await w.log(new Uint8Array([12, (12 - 1) << 2, ...new Array(12).fill(0xff)]));
    await w.log(new Uint8Array([10, (3 - 1) << 2, 0x61, 0x62, 0x63]));
    await w.close(true);
    const bytes = await Deno.readFile(`${dir}/00000000`);
    for (const f of rawFragments(bytes)) bytes[f.offset] |= 0x08;
    await Deno.writeFile(`${dir}/00000000`, bytes);
    const want = [[...new Array(12).fill(0xff)], [0x61, 0x62, 0x63, 0, 0, 0, 0, 0, 0, 0]];
    for (const reuseBuffer of [false, true]) {
      const got: number[][] = [];
      for await (
        const rec of new WalReader([{ index: 0, path: `${dir}/00000000` }], { reuseBuffer })
      ) {
        assert.equal(rec.compression, "snappy");
        got.push([...rec.bytes]);
      }
      assert.deepEqual(got, want, `reuseBuffer ${reuseBuffer}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("recordTypes yields the chosen records only, skipping the others undecoded", async () => {
  // Prometheus' fixtures (none, snappy, zstd), and records of our writer that are incompressible
  // (one literal: its length in the tag, in 1 or in 2 more bytes) or compressible, with every type.
  const dir = await Deno.makeTempDir({ prefix: "promcase-wal-test-" });
  try {
    const record = (n: number, type: number, seed: number, compressible: boolean) => {
      const b = new Uint8Array(n);
      let x = seed;
      for (let i = 1; i < n; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        b[i] = compressible ? (i >> 4) & 0xff : x >>> 24;
      }
      b[0] = type;
      return b;
    };
    const sizes = [1, 10, 59, 60, 61, 200, 255, 256, 300, 5000, 65535, 65536, 70_000];
    const files: string[] = [];
    for (const [k, compression] of (["none", "snappy"] as const).entries()) {
      const file = `${dir}/0000000${k}`;
      const w = await WalSegmentWriter.create(file, { compression });
      for (const [i, n] of sizes.entries()) {
        for (const type of [1, 2, 7]) await w.log(record(n, type, i * 10 + type, i % 4 === 3));
      }
      await w.close();
      files.push(file);
    }
    // Our two segments are read as one WAL (segments 0 and 1).
    const walks: string[][] = [files];
    for (const n of ["none", "snappy", "zstd"]) {
      walks.push((await listSegments(`${FIXTURES}${n}/wal`)).map((seg) => seg.path));
    }
    for (const paths of walks) {
      const all: WalRecord[] = [];
      for await (const r of new WalReader(paths)) all.push(r);
      for (const types of [new Set([1]), new Set([2, 7]), new Set<number>()]) {
        const reader = new WalReader(paths, { recordTypes: types });
        const got: WalRecord[] = [];
        for await (const r of reader) got.push(r);
        const want = all.filter((r) => types.has(r.bytes[0]));
        // Where and how long first (a diff of megabytes of bytes would take minutes), then bytes.
        const where = (r: WalRecord) =>
          `${r.segment}:${r.offset}:${r.compression}:${r.bytes.length}`;
        assert.deepEqual(got.map(where), want.map(where), `${paths[0]} ${[...types]}`);
        for (const [i, r] of got.entries()) {
          assert.ok(r.bytes.every((b, k) => b === want[i].bytes[k]), `${where(r)} bytes`);
        }
        assert.equal(reader.stats.skippedRecords, all.length - want.length);
      }
    }
    // Damage inside a skipped record goes unnoticed; inside a chosen one it is reported.
    const snappy = files[1];
    const frags = rawFragments(await Deno.readFile(snappy));
    const firstOfType = async (type: number) => {
      for await (const r of new WalReader([snappy])) {
        if (r.bytes[0] === type && r.bytes.length > 100) return r.offset;
      }
      throw new Error("no such record");
    };
    const at = await firstOfType(7);
    const frag = frags.find((f) => f.offset === at)!;
    await patch(snappy, at + 7 + frag.length - 1, (b) => b ^ 0x01);
    const skipped = new WalReader([snappy], { recordTypes: new Set([1]) });
    assert.ok((await Array.fromAsync(skipped)).length > 0);
    await assert.rejects(
      Array.fromAsync(new WalReader([snappy], { recordTypes: new Set([7]) })),
      /checksum mismatch/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readBytes of one page, two pages or the default read the same records and torn tail", async () => {
  const dir = await Deno.makeTempDir({ prefix: "promcase-wal-test-" });
  try {
    const walks: string[][] = [];
    for (const n of ["none", "snappy", "zstd"]) {
      const segments = (await listSegments(`${FIXTURES}${n}/wal`)).map((seg) => seg.path);
      walks.push(segments);
      // The last segment cut inside its middle record's first fragment: a torn tail.
      const last = segments[segments.length - 1];
      const offsets = (await Array.fromAsync(new WalReader([last]))).map((r) => r.offset);
      const bytes = await Deno.readFile(last);
      const cut = `${dir}/${n}/${last.slice(last.lastIndexOf("/") + 1)}`;
      await Deno.mkdir(`${dir}/${n}`);
      await Deno.writeFile(cut, bytes.subarray(0, offsets[offsets.length >> 1] + 9));
      walks.push([...segments.slice(0, -1), cut]);
    }
    let torn = 0;
    const where = (r: WalRecord) => `${r.segment}:${r.offset}:${r.bytes.length}:${r.bytes[0]}`;
    for (const paths of walks) {
      const results = [];
      for (const readBytes of [WAL_PAGE_SIZE, 2 * WAL_PAGE_SIZE, undefined]) {
        const reader = new WalReader(paths, { readBytes });
        const records = (await Array.fromAsync(reader)).map(where);
        results.push({ records, torn: reader.torn, fragments: reader.stats.fragments });
      }
      assert.ok(results[0].records.length > 0 && results[0].fragments > 10, paths.join(" "));
      assert.deepEqual(results[1], results[0], paths.join(" "));
      assert.deepEqual(results[2], results[0], paths.join(" "));
      if (results[0].torn) torn++;
    }
    assert.equal(torn, 3);
    assert.throws(() => new WalReader([], { readBytes: WAL_PAGE_SIZE + 1 }), /multiple of/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
