/**
 * The rewrite: blocks and a replayed head merged into one block holding exactly a window. The
 * reference is `promtool tsdb dump --min-time --max-time` of the original data dir (blocks and
 * head, as Prometheus itself reads them): the block promcase writes must dump to the same lines,
 * and `promtool tsdb analyze` of 2.42 and the newest 3.x must accept it.
 */
import assert from "node:assert/strict";
import { runCliJson } from "./_cli.ts";
import { copyTree, listDir, TEST_DATADIR, withTempDir } from "./_files.ts";
import { findPrometheus } from "./_prometheus.ts";
import { promtoolAnalyze, promtoolDump } from "./_promtool.ts";
import {
  CHUNK_RANGE_MS,
  decodeSamples,
  encodeSamples,
  mergeSeries,
  minPrometheusVersion,
  type Sample,
  trimChunks,
} from "../mod/tsdb/compact.ts";
import { decodeXor, encodeXor, Encoding, STALE_NAN_BITS } from "../mod/tsdb/chunkenc/mod.ts";
import { seededRandom } from "./_random.ts";
import type { SeriesChunks } from "../mod/tsdb/series.ts";

const WAL_ZSTD = new URL("./testdata/wal/zstd", import.meta.url).pathname;

interface Restored {
  dataDir: string;
}

interface Exported {
  archive: string;
  mode: string;
  minPrometheusVersion: string;
  rewrite: { series: number; samples: number; chunks: { copied: number; recoded: number } };
}

/** Exports `dataDir` over `[from, to]` with `extra` flags, restores it; the restored data dir. */
async function exportRestore(
  work: string,
  dataDir: string,
  from: bigint,
  to: bigint,
  extra: string[] = [],
): Promise<{ exported: Exported; dir: string }> {
  const archive = `${work}/a-${crypto.randomUUID()}.tar.gz`;
  const exported = await runCliJson<Exported>([
    "export",
    dataDir,
    "--from",
    String(from),
    "--to",
    String(to),
    "--no-prometheus-api",
    // Exactly the window: what is compared is the trimming at its edges.
    "--lead-in",
    "0",
    "-o",
    archive,
    ...extra,
  ]);
  const into = `${work}/r-${crypto.randomUUID()}`;
  const restored = await runCliJson<Restored>(["restore", archive, "--into", into]);
  return { exported, dir: restored.dataDir };
}

const window = (from: bigint, to: bigint) => [`--min-time=${from}`, `--max-time=${to}`];

Deno.test("rewrite of blocks and WAL dumps exactly like the original window, read by 2.42 and 3.x", async () => {
  const oldest = await findPrometheus("oldest");
  const newest = await findPrometheus("newest");
  await withTempDir("promcase-compact-", async (work) => {
    const info = await runCliJson<{ blocks: { minTimeMs: number; maxTimeMs: number }[] }>([
      "inspect",
      TEST_DATADIR,
    ]);
    const blocks = info.blocks.toSorted((a, b) => a.minTimeMs - b.minTimeMs);
    const newestEnd = BigInt(blocks[blocks.length - 1].maxTimeMs);
    // Cut inside the second block and inside the head, off any scrape timestamp.
    const from = BigInt(blocks[1].minTimeMs) + 1_234_567n;
    const to = newestEnd + 1_500_001n;
    const { exported, dir } = await exportRestore(work, TEST_DATADIR, from, to);
    assert.equal(exported.mode, "rewrite");
    assert.equal(exported.minPrometheusVersion, "2.0.0");
    assert.ok(exported.rewrite.chunks.copied > 0, "inner chunks copied byte for byte");
    assert.ok(exported.rewrite.chunks.recoded > 0, "boundary chunks re-encoded");
    const entries = await listDir(dir);
    const ulids = entries.filter((e) => /^[0-9A-Z]{26}$/.test(e));
    assert.equal(ulids.length, 1, `one block: ${entries}`);
    assert.ok(!entries.includes("wal") || (await listDir(`${dir}/wal`)).length === 0, "no WAL");
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/${ulids[0]}/meta.json`));
    assert.equal(BigInt(meta.minTime), from);
    assert.equal(BigInt(meta.maxTime), to + 1n);

    const want = await promtoolDump(newest, TEST_DATADIR, window(from, to));
    assert.ok(want.length > 1000, `${want.length} samples in the window`);
    const headSamples = want.filter((l) => BigInt(l.split(" ").at(-1)!) >= newestEnd).length;
    assert.ok(headSamples > 100, `${headSamples} samples from the head`);
    for (const bin of [oldest, newest]) {
      await promtoolAnalyze(bin, dir, ulids[0]);
      assert.deepEqual(await promtoolDump(bin, dir), want, `promtool ${bin.version} dump`);
    }
  });
});

Deno.test("a zstd WAL with native, float and custom-bucket histograms is replayed into a block", async () => {
  const newest = await findPrometheus("newest");
  await withTempDir("promcase-compact-wal-", async (work) => {
    const data = `${work}/data`;
    await copyTree(WAL_ZSTD, data);
    const all = await promtoolDump(newest, data);
    const times = all.map((l) => BigInt(l.split(" ").at(-1)!));
    const min = times.reduce((a, b) => (b < a ? b : a));
    const max = times.reduce((a, b) => (b > a ? b : a));
    // Cut off the first and last few seconds.
    const from = min + 3_500n;
    const to = max - 2_500n;
    const { exported, dir } = await exportRestore(work, data, from, to);
    // Custom-bucket histograms need Prometheus 2.54.
    assert.equal(exported.minPrometheusVersion, "2.54.0");
    const want = await promtoolDump(newest, data, window(from, to));
    assert.ok(want.some((l) => l.includes("{count:")), "histogram samples in the window");
    const ulid = (await listDir(dir)).find((e) => /^[0-9A-Z]{26}$/.test(e))!;
    await promtoolAnalyze(newest, dir, ulid);
    // A head-only dump lists series in head order, a block's in label order: compare as sets.
    assert.deepEqual((await promtoolDump(newest, dir)).sort(), want.sort());
  });
});

Deno.test("--match and --exclude keep exactly the selected series", async () => {
  const newest = await findPrometheus("newest");
  await withTempDir("promcase-compact-match-", async (work) => {
    const { dir } = await exportRestore(work, TEST_DATADIR, 0n, BigInt(Date.now()), [
      "--match",
      '{__name__=~"prometheus_tsdb_.*"}',
      "--match",
      "up",
      "--exclude",
      '{__name__=~".*_total"}',
    ]);
    const names = new Set(
      (await promtoolDump(newest, dir)).map((l) => /__name__="([^"]+)"/.exec(l)![1]),
    );
    assert.ok(names.has("up"), [...names].join(" "));
    assert.ok(names.size > 2);
    for (const n of names) {
      assert.ok(n === "up" || n.startsWith("prometheus_tsdb_"), n);
      assert.ok(!n.endsWith("_total"), n);
    }
  });
});

const f = (t: bigint, v = BigInt(t)): Sample => ({ t, kind: "float", v });

Deno.test("encodeSamples cuts at 120 samples and at 2h chunk-range boundaries", () => {
  const start = 3n * CHUNK_RANGE_MS - 100n * 15_000n;
  const samples = Array.from({ length: 400 }, (_, i) => f(start + BigInt(i) * 15_000n));
  const chunks = encodeSamples(samples);
  // 100 samples before the boundary, then 300 after it: 100 | 120 120 60.
  assert.deepEqual(chunks.map((c) => decodeXor(c.data).t.length), [100, 120, 120, 60]);
  assert.equal(chunks[1].mint, 3n * CHUNK_RANGE_MS);
  for (const c of chunks) {
    assert.equal(c.encoding, Encoding.xor);
    assert.equal(c.mint / CHUNK_RANGE_MS, c.maxt / CHUNK_RANGE_MS, "within one range");
  }
});

Deno.test("trimChunks cuts at the window, applies deletions, merges overlaps and keeps stale markers", () => {
  const a = encodeSamples([f(10n), f(20n), f(30n, STALE_NAN_BITS), f(40n)]);
  const b = encodeSamples([f(25n, 7n), f(30n, 99n), f(50n)]);
  const counts = { copied: 0, recoded: 0, dropped: 0 };
  const out = trimChunks([...a, ...b], 20n, 45n, [{ mint: 24n, maxt: 26n }], counts);
  assert.equal(out.length, 1);
  const { t, v } = decodeXor(out[0].data);
  // 25 deleted, 30 from the earlier chunk (the stale marker), 50 outside.
  assert.deepEqual([...t], [20n, 30n, 40n]);
  assert.deepEqual([...v], [20n, STALE_NAN_BITS, 40n]);
  assert.deepEqual(counts, { copied: 0, recoded: 2, dropped: 0 });
  const inside = trimChunks(a, 0n, 100n, [], counts);
  assert.equal(inside[0].data, a[0].data, "untouched chunks are passed through");
  assert.deepEqual(trimChunks(a, 41n, 100n), []);
});

Deno.test("mergeSeries joins sources by label set, refuses unsorted input, advances sources late", async () => {
  const s = (name: string, t: bigint): SeriesChunks => ({
    labels: [{ name: "__name__", value: name }],
    chunks: encodeSamples([f(t)]),
  });
  async function* src(...xs: SeriesChunks[]) {
    yield* xs;
  }
  const merged = await Array.fromAsync(
    mergeSeries([src(s("a", 1n), s("c", 1n)), src(s("b", 2n), s("c", 2n))]),
  );
  assert.deepEqual(merged.map((m) => [m.labels[0].value, m.chunks.length]), [
    ["a", 1],
    ["b", 1],
    ["c", 2],
  ]);
  await assert.rejects(
    Array.fromAsync(mergeSeries([src(s("b", 1n), s("a", 1n))])),
    /not in label order/,
  );

  // A source that reuses its chunk memory (as blockSource does) must not be asked for its next
  // series while the caller still holds the one it gave: one buffer, overwritten on each step.
  async function* reusing(...names: string[]): AsyncGenerator<SeriesChunks> {
    const buffer = new Uint8Array(64);
    for (const [i, name] of names.entries()) {
      const chunk = s(name, BigInt(i + 1)).chunks[0];
      buffer.fill(0).set(chunk.data);
      yield { ...s(name, 0n), chunks: [{ ...chunk, data: buffer.subarray(0, chunk.data.length) }] };
    }
  }
  const seen: string[] = [];
  for await (const m of mergeSeries([reusing("a", "c"), reusing("b", "d")])) {
    // Decoding here, after the merge handed the series out, sees the sample of this series.
    const [sample] = decodeSamples(m.chunks[0]);
    seen.push(`${m.labels[0].value}@${sample.t}`);
  }
  assert.deepEqual(seen, ["a@1", "b@1", "c@2", "d@2"]);
});

Deno.test("minPrometheusVersion follows the encodings shipped", () => {
  assert.equal(minPrometheusVersion([Encoding.xor], false), "2.0.0");
  assert.equal(minPrometheusVersion([Encoding.xor, Encoding.histogram], false), "2.40.0");
  assert.equal(minPrometheusVersion([Encoding.floatHistogram], false), "2.42.0");
  assert.equal(minPrometheusVersion([Encoding.histogram], true), "2.54.0");
  assert.equal(minPrometheusVersion([Encoding.xor2], true), "3.11.0");
});

Deno.test("trimChunks cuts a lone XOR chunk as decoding and re-encoding its samples would", () => {
  const random = seededRandom(5);
  let cut = 0;
  for (let round = 0; round < 200; round++) {
    // One chunk of up to 300 samples (more than a chunk holds) that may cross a 2h boundary,
    // negative timestamps included, with repeated values and stale markers.
    const n = 1 + Math.floor(random() * 300);
    const t: bigint[] = [];
    const v: bigint[] = [];
    let at = BigInt(Math.floor((random() - 0.2) * 4e12));
    for (let i = 0; i < n; i++) {
      at += BigInt(1 + Math.floor(random() * (random() < 0.01 ? 3_600_000 : 30_000)));
      t.push(at);
      const r = random();
      v.push(
        r < 0.1 ? STALE_NAN_BITS : r < 0.5 && i > 0 ? v[i - 1] : BigInt(Math.floor(r * 2 ** 52)),
      );
    }
    const chunk = { encoding: Encoding.xor, data: encodeXor(t, v), mint: t[0], maxt: t[n - 1] };
    const from = t[Math.floor(random() * n)] - BigInt(Math.floor(random() * 3));
    const to = from + BigInt(Math.floor(random() * 20_000_000));
    if (t[0] >= from && t[n - 1] <= to) continue; // inside the window: copied as it is
    const counts = { copied: 0, recoded: 0, dropped: 0 };
    const got = trimChunks([chunk], from, to, [], counts);
    const want = encodeSamples(decodeSamples(chunk).filter((s) => s.t >= from && s.t <= to));
    assert.deepEqual(got, want, `round ${round}`);
    assert.deepEqual(counts, {
      copied: 0,
      recoded: want.length > 0 ? 1 : 0,
      dropped: want.length > 0 ? 0 : 1,
    });
    cut++;
  }
  assert.ok(cut > 150, `${cut} chunks cut`);
});
