/**
 * The head replay takes the memory-mapped head chunks (`chunks_head/`) as Prometheus' startup
 * does (`head.go` loadMmappedChunks, `head_wal.go` processWALSamples), and whatever is wrong with
 * them costs only speed: a damaged entry, a ref whose chunks do not follow each other, an encoding
 * it does not copy, out-of-order chunks, chunks before minValidTime, files that are not
 * consecutive. Each case gives the samples of the WAL alone (which holds every sample of a head
 * chunk); the counters say which chunks were taken. The check against promtool at scale is
 * tests/head_scale_test.ts.
 */
import assert from "node:assert/strict";
import { withTempDir } from "./_files.ts";
import { encodeHeadChunkEntry, HEAD_CHUNK_FILE_HEADER, writeHeadWal } from "./_head_gen.ts";
import { decodeSamples } from "../mod/tsdb/compact.ts";
import { HeadReplay, type HeadReplayStats } from "../mod/tsdb/head.ts";
import { type HeadChunk, readHeadChunks } from "../mod/tsdb/head_chunks.ts";
import { decodeRecord } from "../mod/tsdb/record.ts";
import { type SegmentRef, WalReader, WalSegmentWriter } from "../mod/tsdb/wlog.ts";
import { concatBytes, Encbuf } from "../mod/tsdb/encoding.ts";
import { samplesV1Record } from "./_wal_records.ts";

const START = Date.UTC(2026, 10, 20, 9, 0, 0);

/** A head of 60 series, 100 scrapes, chunks of 20 samples in files of about 8 KiB. */
async function build(dir: string, redeclareLate = false): Promise<{ headChunkSamples: number }> {
  const gen = await writeHeadWal(dir, {
    series: 60,
    metrics: 6,
    scrapes: 100,
    start: START,
    seed: 5,
    histogramEvery: 10,
    headChunks: true,
    samplesPerChunk: 20,
    headChunkFileBytes: 8 * 1024,
    redeclareLate,
  });
  return { headChunkSamples: gen.headChunkSamples };
}

/** The chunks of `chunks_head/`, file by file. */
async function readFiles(dir: string): Promise<HeadChunk[][]> {
  const files: HeadChunk[][] = [];
  for await (const c of readHeadChunks(`${dir}/chunks_head`)) {
    (files[c.file - 1] ??= []).push(c);
  }
  return files;
}

/** Writes `chunks_head/` anew: file i + 1 holds `files[i]`, encoded as Prometheus does. */
async function writeFiles(dir: string, files: HeadChunk[][]): Promise<void> {
  await Deno.remove(`${dir}/chunks_head`, { recursive: true });
  await Deno.mkdir(`${dir}/chunks_head`);
  for (let i = 0; i < files.length; i++) {
    const parts = [HEAD_CHUNK_FILE_HEADER, ...files[i].map((c) => entry(c))];
    await Deno.writeFile(
      `${dir}/chunks_head/${String(i + 1).padStart(6, "0")}`,
      concatBytes(parts),
    );
  }
}

function entry(c: HeadChunk, encodingByte = c.encoding | (c.ooo ? 0x80 : 0)): Uint8Array {
  return encodeHeadChunkEntry(
    Number(c.seriesRef),
    Number(c.mint),
    Number(c.maxt),
    encodingByte,
    c.data,
  );
}

interface Replayed {
  /** Every sample, `labels t value` (float bits, or the histogram as JSON). */
  lines: string[];
  /** The chunks' time ranges. */
  ranges: [bigint, bigint][];
  stats: HeadReplayStats;
}

/** The WAL's segments, in order. */
async function walSegments(dir: string): Promise<SegmentRef[]> {
  const wal: SegmentRef[] = [];
  for await (const e of Deno.readDir(`${dir}/wal`)) {
    wal.push({ index: Number(e.name), path: `${dir}/wal/${e.name}` });
  }
  return wal.sort((a, b) => a.index - b.index);
}

/**
 * Refs whose label set a later series record names again: Prometheus keeps the head chunks of the
 * later ref only.
 */
async function supersededRefs(dir: string): Promise<Set<bigint>> {
  const last = new Map<string, bigint>();
  const out = new Set<bigint>();
  for await (const rec of new WalReader(await walSegments(dir))) {
    const r = decodeRecord(rec.bytes);
    if (r.type !== "series") continue;
    for (const s of r.series) {
      const key = JSON.stringify(s.labels);
      const before = last.get(key);
      if (before !== undefined && before !== s.ref) out.add(before);
      last.set(key, s.ref);
    }
  }
  return out;
}

async function replay(
  dir: string,
  headChunks: boolean,
  minValidTime: bigint | null = null,
  window: { from: bigint; to: bigint } = { from: 0n, to: 2n ** 62n },
  wbl?: SegmentRef[],
): Promise<Replayed> {
  const head = await HeadReplay.replay({
    wal: await walSegments(dir),
    wbl,
    headChunksDir: headChunks ? `${dir}/chunks_head` : undefined,
    minValidTime,
    from: window.from,
    to: window.to,
    tmpDir: dir,
    // Several shards, a spill to its file: the head chunks take those paths too.
    shardWalBytes: 16 * 1024,
    shardSeries: 8,
    memoryBudget: 2048,
  });
  const lines: string[] = [];
  const ranges: [bigint, bigint][] = [];
  for await (const s of head.series()) {
    const labels = s.labels.map((l) => `${l.name}=${l.value}`).join(",");
    for (const c of s.chunks) {
      ranges.push([c.mint, c.maxt]);
      for (const x of decodeSamples(c)) {
        // Without a histogram's counter reset hint: it comes from where its chunk starts, and the
        // WAL's samples are cut into chunks elsewhere than the head's (promtool does not show it).
        const v = x.kind === "float" ? x.v.toString(16) : JSON.stringify(
          x.h,
          (k, v) => (k === "counterResetHint" ? undefined : typeof v === "bigint" ? `${v}` : v),
        );
        lines.push(`${labels} ${x.t} ${v}`);
      }
    }
  }
  return { lines, ranges, stats: head.stats };
}

/**
 * Replays with and without the head chunks: the same samples. `conflicts`: whether the replay must
 * have run twice (null: either).
 */
async function sameAsWalAlone(
  dir: string,
  conflicts: boolean | null = false,
): Promise<Replayed> {
  const alone = await replay(dir, false);
  const mapped = await replay(dir, true);
  assert.ok(alone.lines.length > 5000, `${alone.lines.length} samples`);
  assert.deepEqual(mapped.lines, alone.lines);
  if (conflicts !== null) assert.equal(mapped.stats.headChunkConflicts > 0, conflicts);
  return mapped;
}

/** The chunks `keep` takes, of refs not superseded. */
async function count(
  dir: string,
  files: HeadChunk[][],
  keep: (c: HeadChunk) => boolean = () => true,
): Promise<number> {
  const superseded = await supersededRefs(dir);
  return files.flat().filter((c) => keep(c) && !superseded.has(c.seriesRef)).length;
}

Deno.test("head chunks are taken as they are, and skip exactly the WAL samples they hold", async () => {
  await withTempDir("promcase-head-chunks-", async (dir) => {
    const gen = await build(dir);
    const files = await readFiles(dir);
    assert.ok(files.length >= 4, `${files.length} head chunk files`);
    const got = await sameAsWalAlone(dir);
    assert.equal(got.stats.headChunksDamage, null);
    // Every chunk but those of a ref whose label set was declared again...
    assert.equal(got.stats.headChunks, await count(dir, files));
    assert.ok((await supersededRefs(dir)).size >= 1);
    // ...and the WAL samples of every chunk (of superseded refs too, while they were the
    // series'), once each (a duplicate sample now and then besides).
    const skipped = got.stats.walSamplesInHeadChunks;
    assert.ok(
      skipped >= gen.headChunkSamples && skipped <= gen.headChunkSamples + 100 / 7,
      `${skipped} WAL samples skipped, ${gen.headChunkSamples} in the head chunks`,
    );
  });
});

Deno.test("a label set's later ref with fewer head chunks: replayed again, nothing skipped at the split", async () => {
  await withTempDir("promcase-head-chunks-", async (dir) => {
    // A few label sets declared again 10 scrapes before the end, and a sample of each old ref
    // from 25 scrapes back after the new record: Prometheus appends it, as the new ref has no
    // head chunk; the split, going by the old ref's chunks, would have skipped it.
    await build(dir, true);
    const got = await sameAsWalAlone(dir, true);
    assert.ok(got.stats.headChunks > 100);
  });
});

/** The replay's sample lines (`series time value`) whose time lies in `window`. */
function inWindow(lines: string[], window: { from: bigint; to: bigint }): string[] {
  return lines.filter((l) => {
    const t = BigInt(l.split(" ")[1]);
    return t >= window.from && t <= window.to;
  });
}

Deno.test("a window that cuts head chunks: the counters count the samples in it, as without them", async () => {
  await withTempDir("promcase-head-chunks-", async (dir) => {
    await build(dir);
    // Off any scrape, inside chunks of 20 samples at both ends.
    const window = { from: BigInt(START + 27 * 15_000 + 3), to: BigInt(START + 71 * 15_000 + 2) };
    const alone = await replay(dir, false, null, window);
    const mapped = await replay(dir, true, null, window);
    assert.ok(mapped.ranges.some(([mint, maxt]) => mint < window.from && maxt >= window.from));
    assert.ok(mapped.ranges.some(([mint, maxt]) => mint <= window.to && maxt > window.to));
    assert.ok(
      alone.stats.floatSamples > 1000 && alone.stats.histogramSamples > 100,
      JSON.stringify(alone.stats),
    );
    assert.equal(mapped.stats.floatSamples, alone.stats.floatSamples);
    assert.equal(mapped.stats.histogramSamples, alone.stats.histogramSamples);
    // The samples themselves: those of the WAL alone, once cut to the window (the block writer
    // cuts the head chunks, kept whole here).
    assert.deepEqual(inWindow(mapped.lines, window), alone.lines);
  });
});

Deno.test("a window whose ends are scrapes: their samples are counted, as without head chunks", async () => {
  await withTempDir("promcase-head-chunks-", async (dir) => {
    await build(dir);
    // The exact timestamps of two scrapes inside head chunks (they jitter by a few ms).
    const times = (await replay(dir, false)).lines.map((l) => BigInt(l.split(" ")[1]));
    const scrapes = [...new Set(times)].sort((a, b) => (a < b ? -1 : 1));
    const window = { from: scrapes[scrapes.length >> 2], to: scrapes[(3 * scrapes.length) >> 2] };
    const alone = await replay(dir, false, null, window);
    const mapped = await replay(dir, true, null, window);
    assert.ok(mapped.stats.headChunks > 0 && alone.stats.floatSamples > 1000);
    assert.equal(mapped.stats.floatSamples, alone.stats.floatSamples);
    assert.equal(mapped.stats.histogramSamples, alone.stats.histogramSamples);
  });
});

Deno.test("a window that starts at a head chunk's last sample and ends at one's first keeps both", async () => {
  await withTempDir("promcase-head-chunks-", async (dir) => {
    await build(dir);
    const chunks = (await readFiles(dir)).flat().sort((a, b) => (a.maxt < b.maxt ? -1 : 1));
    // A chunk that touches the window by one sample at each end: it holds a sample in the window.
    const first = chunks[Math.floor(chunks.length / 4)];
    const last = chunks.find((c) => c.mint > first.maxt + 60_000n)!;
    const window = { from: first.maxt, to: last.mint };
    const alone = await replay(dir, false, null, window);
    const mapped = await replay(dir, true, null, window);
    assert.ok(mapped.ranges.some(([mint, maxt]) => mint < window.from && maxt === window.from));
    assert.ok(mapped.ranges.some(([mint, maxt]) => mint === window.to && maxt > window.to));
    assert.deepEqual(inWindow(mapped.lines, window), alone.lines);
    assert.equal(mapped.stats.floatSamples, alone.stats.floatSamples);
    assert.equal(mapped.stats.histogramSamples, alone.stats.histogramSamples);
  });
});

Deno.test("out-of-order samples and deletions in series with head chunks: their bytes are decoded", async () => {
  await withTempDir("promcase-head-chunks-", async (dir) => {
    await build(dir);
    const segments = await walSegments(dir);
    const write = async (path: string, records: Uint8Array[]) => {
      const w = await WalSegmentWriter.create(path);
      for (const r of records) await w.log(r);
      await w.close();
    };
    // Ref 2 loses scrapes 10 to 30, inside its head chunks (a tombstone record after the WAL).
    const stones = new Encbuf().byte(3).be64(2n).varint(BigInt(START + 10 * 15_000))
      .varint(BigInt(START + 30 * 15_000)).get().slice();
    const next = String(segments[segments.length - 1].index + 1).padStart(8, "0");
    await write(`${dir}/wal/${next}`, [stones]);
    // Ref 1 gains two samples between its scrapes, inside its head chunks (from the WBL).
    await Deno.mkdir(`${dir}/wbl`);
    const ooo = [5, 40].map((k) => BigInt(START + k * 15_000 + 7_000));
    await write(`${dir}/wbl/00000000`, [
      samplesV1Record(ooo.map((t) => ({ ref: 1, t, v: 0x4045000000000000n }))),
    ]);
    const wbl = [{ index: 0, path: `${dir}/wbl/00000000` }];
    const alone = await replay(dir, false, null, undefined, wbl);
    const mapped = await replay(dir, true, null, undefined, wbl);
    assert.ok(mapped.stats.headChunks > 0);
    assert.equal(mapped.stats.outOfOrderSamples, 2);
    assert.deepEqual(mapped.lines, alone.lines);
    for (const t of ooo) {
      assert.equal(mapped.lines.filter((l) => l.endsWith(` ${t} 4045000000000000`)).length, 1);
    }
  });
});

Deno.test("a damaged head chunk: the chunks before it are taken, the WAL gives the rest", async () => {
  await withTempDir("promcase-head-chunks-", async (dir) => {
    await build(dir);
    const files = await readFiles(dir);
    // One data byte of the first entry of the second file, its CRC left as it was.
    const path = `${dir}/chunks_head/000002`;
    const bytes = await Deno.readFile(path);
    bytes[8 + 8 + 8 + 8 + 1 + 2 + 3] ^= 0x10;
    await Deno.writeFile(path, bytes);
    // The chunks after the damage are missing: a label set declared again may now have fewer
    // under its new ref than under its old one, which replays twice.
    const got = await sameAsWalAlone(dir, null);
    assert.match(got.stats.headChunksDamage!.message, /checksum mismatch/);
    assert.equal(got.stats.headChunksDamage!.path, path);
    assert.equal(got.stats.headChunks, await count(dir, [files[0]]));
  });
});

Deno.test("a ref whose head chunk does not start after the one before keeps none", async () => {
  await withTempDir("promcase-head-chunks-", async (dir) => {
    await build(dir);
    const files = await readFiles(dir);
    // A chunk again, at the end (Prometheus: "out of sequence m-mapped chunk").
    const again = files[0][0];
    files[files.length - 1].push(again);
    await writeFiles(dir, files);
    const got = await sameAsWalAlone(dir);
    const ofRef = (c: HeadChunk) => c.seriesRef === again.seriesRef;
    assert.equal(got.stats.headChunks, await count(dir, files, (c) => !ofRef(c)));
  });
});

Deno.test("a ref with a head chunk of an encoding the replay does not copy keeps none", async () => {
  await withTempDir("promcase-head-chunks-", async (dir) => {
    await build(dir);
    const files = await readFiles(dir);
    // XOR2 (4): Prometheus 3.11+ could write it; the replay takes that ref's samples from the WAL.
    const odd = files[1][2];
    const bytes = concatBytes([
      HEAD_CHUNK_FILE_HEADER,
      ...files[1].map((c) => entry(c, c === odd ? 4 : undefined)),
    ]);
    await Deno.writeFile(`${dir}/chunks_head/000002`, bytes);
    const got = await sameAsWalAlone(dir);
    assert.equal(
      got.stats.headChunks,
      await count(dir, files, (c) => c.seriesRef !== odd.seriesRef),
    );
  });
});

Deno.test("out-of-order head chunks are left to the WBL", async () => {
  await withTempDir("promcase-head-chunks-", async (dir) => {
    await build(dir);
    const files = await readFiles(dir);
    // An out-of-order chunk after a ref's in-order ones: as an in-order chunk it would be out of
    // sequence and cost the ref all of its chunks.
    const last = files[files.length - 1];
    last.push({ ...last[0], ooo: true });
    await writeFiles(dir, files);
    const got = await sameAsWalAlone(dir);
    assert.equal(got.stats.headChunks, await count(dir, files, (c) => !c.ooo));
  });
});

Deno.test("head chunks that end before minValidTime are left out, as Prometheus does", async () => {
  await withTempDir("promcase-head-chunks-", async (dir) => {
    await build(dir);
    const files = await readFiles(dir);
    const minValid = BigInt(START + 40 * 15_000 - 100);
    const mapped = await replay(dir, true, minValid);
    const alone = await replay(dir, false, minValid);
    // A chunk that reaches minValidTime is kept whole (its samples before it too, as Prometheus
    // serves them); the samples from minValidTime on are the WAL's.
    assert.ok(mapped.ranges.every(([, maxt]) => maxt >= minValid));
    const from = (lines: string[]) => lines.filter((l) => BigInt(l.split(" ")[1]) >= minValid);
    assert.deepEqual(from(mapped.lines), alone.lines);
    assert.equal(mapped.stats.headChunks, await count(dir, files, (c) => c.maxt >= minValid));
  });
});

Deno.test("head chunk files that are not consecutive are not read", async () => {
  await withTempDir("promcase-head-chunks-", async (dir) => {
    await build(dir);
    const files = await readFiles(dir);
    const n = String(files.length).padStart(6, "0");
    await Deno.rename(
      `${dir}/chunks_head/${n}`,
      `${dir}/chunks_head/${String(files.length + 1).padStart(6, "0")}`,
    );
    const got = await sameAsWalAlone(dir);
    assert.match(got.stats.headChunksDamage!.message, /not consecutive/);
    assert.equal(got.stats.headChunks, 0);
  });
});
