/**
 * The rewrite of a large head is exact: a head of high-entropy values (random walks with three
 * decimals, counters, native histograms, churn with stale markers, labels declared again under a
 * new ref, tombstones, duplicate samples) written by `_head_gen.ts`, exported through the sharded
 * head replay, restored, must dump with promtool to exactly the lines promtool dumps of the
 * source over the window. The replay's limits are turned down so that a few thousand series run
 * every path the defaults take only at hundreds of thousands: several shards, shards split again
 * (twice), shard and run buffers that swap and grow, chunks spilled to a file, open chunks whose
 * buffer grows and whose regions move. The full-size version of this check is
 * `bench/highcard_bench.sh --source head`.
 */
import assert from "node:assert/strict";
import { runCliJson } from "./_cli.ts";
import { copyTree, withTempDir } from "./_files.ts";
import { writeHeadWal } from "./_head_gen.ts";
import { findPrometheus } from "./_prometheus.ts";
import { promtoolDump } from "./_promtool.ts";
import { exportArchive } from "../mod/export.ts";
import type { HeadReplayLimits, HeadReplayStats } from "../mod/tsdb/head.ts";
import { BlockReader } from "../mod/tsdb/block.ts";
import { decodeSamples } from "../mod/tsdb/compact.ts";

const START = Date.UTC(2026, 10, 20, 9, 0, 0);

/** Limits small enough that 3,000 series take every path the defaults take at scale. */
const TINY: HeadReplayLimits = {
  memoryBudget: 2048,
  shardSeries: 40,
  shardWalBytes: 1024 * 1024,
  shardBufferSize: 512,
  shardReadSize: 256,
  runBufferSize: 64,
  // Not a divisor of anything: batches end mid-record and mid-buffer.
  batchSize: 3,
  // Shard buffers written inside every record.
  splitFlushBytes: 1,
  openChunks: { initialBytes: 256, firstRegion: 16 },
  // The WAL's records cut into pieces and wrapping around the ring all the time.
  ringBytes: 1024,
};

interface Exported {
  restoredDir: string;
  head: HeadReplayStats;
}

async function exportRestore(
  work: string,
  dataDir: string,
  from: bigint,
  to: bigint,
  limits: HeadReplayLimits | undefined,
  chunkSegmentBytes?: number,
): Promise<Exported> {
  const output = `${work}/a-${crypto.randomUUID()}.tar.zst`;
  const result = await exportArchive({
    dataDir,
    window: { from, to, at: to },
    output,
    compression: "zstd",
    headLimits: limits,
    chunkSegmentBytes,
  });
  const head = result.rewrite!.head!;
  const into = `${work}/r-${crypto.randomUUID()}`;
  const restored = await runCliJson<{ dataDir: string }>(["restore", output, "--into", into]);
  return { restoredDir: restored.dataDir, head };
}

// The snappy WAL's shards are replayed by the main thread and two workers. With the full chunks
// memory-mapped to chunks_head/ as well, those are taken as they are (cut at the window's start);
// label sets declared again shortly before the end make the replay run a second time, without
// skipping WAL samples at the split.
for (
  const [compression, replayWorkers, headChunks, redeclareLate] of [
    ["none", 0, false, false],
    ["none", 0, true, false],
    ["snappy", 2, true, true],
  ] as const
) {
  const mapped = headChunks ? `, chunks_head${redeclareLate ? ", replayed twice" : ""}` : "";
  Deno.test(`a high-entropy head exports exactly through every shard path (WAL ${compression}${mapped}, ${replayWorkers} replay workers)`, async () => {
    const newest = await findPrometheus("newest");
    await withTempDir("promcase-head-scale-", async (work) => {
      const src = `${work}/data`;
      const gen = await writeHeadWal(src, {
        series: 3000,
        metrics: 30,
        scrapes: 150,
        start: START,
        seed: compression === "none" ? 7 + Number(headChunks) : 9,
        segmentBytes: 1 << 20,
        compression,
        headChunks,
        headChunkFileBytes: 256 * 1024,
        // Several chunks a series: the label sets declared again half way have some under both
        // refs, and the old ref's must go (Prometheus keeps only the new ref's).
        samplesPerChunk: 40,
        redeclareLate,
      });
      assert.ok(gen.segments >= 3, `${gen.segments} segments`);
      // Off any scrape: the window cuts chunks at both ends.
      const from = BigInt(START + 5 * 60_000 + 1234);
      const to = BigInt(gen.end - 3 * 60_000 - 567);
      const want = await promtoolDump(newest, src, [`--min-time=${from}`, `--max-time=${to}`]);
      if (headChunks) {
        // The head chunks hold what the WAL holds: Prometheus replays the same samples without.
        assert.ok(gen.headChunks > 7500, `${gen.headChunks} head chunks`);
        const walOnly = `${work}/wal-only`;
        await Deno.mkdir(walOnly);
        await copyTree(`${src}/wal`, `${walOnly}/wal`);
        const dumped = await promtoolDump(newest, walOnly, [
          `--min-time=${from}`,
          `--max-time=${to}`,
        ]);
        assert.deepEqual(dumped.sort(), [...want].sort(), "the same samples without chunks_head");
      }
      // Stale markers of float series (promtool prints a histogram series' differently).
      const histogramSeries = new Set(
        want.filter((l) => l.includes("{count:")).map((l) => l.slice(0, l.indexOf("} ") + 1)),
      );
      const stale = want.filter((l) =>
        / NaN \d+$/.test(l) && !histogramSeries.has(l.slice(0, l.indexOf("} ") + 1))
      ).length;
      assert.ok(want.length > 300_000, `${want.length} samples in the window`);
      assert.ok(
        want.some((l) =>
          l.includes("{count:")
        ),
        "histograms in the window",
      );
      assert.ok(stale > 10, `${stale} stale markers in the window`);

      // Chunk segments of 64 KiB: dozens are archived while the block is still being written.
      const got = await exportRestore(work, src, from, to, { ...TINY, replayWorkers }, 65536);
      const names = [...Deno.readDirSync(got.restoredDir)].map((e) => e.name);
      const block = names.find((name) => /^[0-9A-Z]{26}$/.test(name));
      const segments = [...Deno.readDirSync(`${got.restoredDir}/${block}/chunks`)].length;
      assert.ok(segments >= 20, `${segments} chunk segments`);
      // Shards of 1 MiB of WAL (about 500 series), each split into parts of at most 40 series.
      assert.ok(got.head.shards >= 3000 / 40, `${got.head.shards} shards replayed`);
      assert.equal(got.head.series, 3000, "every label set once");
      if (headChunks) {
        assert.ok(got.head.headChunks > 5000, `${got.head.headChunks} head chunks taken`);
        // Exactly the WAL samples the chunks hold are skipped, those of a label set's first ref
        // too while it had its chunks (and now and then a duplicate).
        const skipped = got.head.walSamplesInHeadChunks;
        assert.ok(
          skipped >= gen.headChunkSamples && skipped <= gen.headChunkSamples + 150 / 7,
          `${skipped} WAL samples skipped, ${gen.headChunkSamples} in the head chunks`,
        );
        assert.equal(got.head.headChunksDamage, null);
        assert.equal(got.head.headChunkConflicts > 0, redeclareLate);
      } else assert.equal(got.head.headChunks, 0);
      // promtool dumps a head in the order it created the series, a block in label order.
      const dumped = (await promtoolDump(newest, got.restoredDir)).sort();
      want.sort();
      assert.equal(dumped.length, want.length, "as many samples as the source's window");
      for (let i = 0; i < want.length; i++) {
        if (dumped[i] !== want[i]) assert.fail(`line ${i}: got ${dumped[i]}, want ${want[i]}`);
      }
      // promtool prints every NaN alike: the stale markers' own bits must have survived.
      const staleBits = await countStaleMarkers(got.restoredDir);
      assert.equal(staleBits, stale, "stale markers kept bit for bit");
    });
  });
}

Deno.test("the default limits give the same block as the turned-down ones", async () => {
  await withTempDir("promcase-head-defaults-", async (work) => {
    const src = `${work}/data`;
    const gen = await writeHeadWal(src, { series: 500, scrapes: 130, start: START, seed: 3 });
    const from = BigInt(START);
    const to = BigInt(gen.end);
    const small = await exportRestore(work, src, from, to, TINY);
    const plain = await exportRestore(work, src, from, to, undefined);
    // The WAL read on the calling thread, not through a worker.
    const here = await exportRestore(work, src, from, to, { ringBytes: 0 });
    assert.equal(plain.head.shards, 1, "a small head is one shard by default");
    const want = await blockSamples(plain.restoredDir);
    assert.deepEqual(await blockSamples(small.restoredDir), want);
    assert.deepEqual(await blockSamples(here.restoredDir), want);
  });
});

/** Every series' samples of the one block in `dir`, as text with the values' bits. */
async function blockSamples(dir: string): Promise<string[]> {
  const out: string[] = [];
  await forEachSample(dir, (labels, t, bits) => out.push(`${labels} ${t} ${bits}`));
  return out;
}

/** Stale markers (their exact bits) in the series of `dir`'s block that hold no histogram. */
async function countStaleMarkers(dir: string): Promise<number> {
  const stale = new Map<string, number>();
  const histograms = new Set<string>();
  await forEachSample(dir, (labels, _t, bits) => {
    if (bits === "histogram") histograms.add(labels);
    if (bits === "7ff0000000000002") stale.set(labels, (stale.get(labels) ?? 0) + 1);
  });
  let n = 0;
  for (const [labels, count] of stale) if (!histograms.has(labels)) n += count;
  return n;
}

async function forEachSample(
  dir: string,
  fn: (labels: string, t: bigint, bits: string) => void,
): Promise<void> {
  const ulid = [...Deno.readDirSync(dir)].find((e) => /^[0-9A-Z]{26}$/.test(e.name))!.name;
  const reader = await BlockReader.open(`${dir}/${ulid}`);
  try {
    for await (const s of reader.series()) {
      const labels = s.labels.map((l) => `${l.name}=${l.value}`).join(",");
      for (const c of s.chunks) {
        for (const x of decodeSamples(c)) {
          const bits = x.kind === "float" ? BigInt.asUintN(64, x.v).toString(16) : "histogram";
          fn(labels, x.t, bits);
        }
      }
    }
  } finally {
    reader.close();
  }
}
