/**
 * Whole blocks against real Prometheus: every committed block (written by Prometheus 2.42 and
 * 3.5.3) is read with BlockReader and compared with `promtool tsdb dump`, re-written with
 * BlockWriter and checked with `promtool tsdb analyze` and `dump` of 2.42 and 3.5.3.
 */
import assert from "node:assert/strict";
import { findPrometheus, type PrometheusBinaries } from "./_prometheus.ts";
import { promtoolAnalyze, promtoolDump as dumpDir } from "./_promtool.ts";
import { type BlockChunk, BlockReader, BlockWriter, formatMetaJson } from "../mod/tsdb/block.ts";
import { decodeXor, Encoding, XorAppender } from "../mod/tsdb/chunkenc/mod.ts";
import { dumpBlock, type DumpFlavor } from "../mod/tsdb/dump.ts";
import { IndexReader } from "../mod/tsdb/index.ts";
import { parseTombstones, readTombstones } from "../mod/tsdb/tombstones.ts";
import { isUlid, newUlid, ulidTime } from "../mod/tsdb/ulid.ts";

const DATA = new URL("./testdata/", import.meta.url).pathname;

interface Fixture {
  /** e.g. "datadir/01M89…" or "native/01M…". */
  name: string;
  dir: string;
  ulid: string;
  /** Whether it holds native histogram chunks (Prometheus 2.42 cannot read custom buckets). */
  histograms: boolean;
}

async function fixtures(): Promise<Fixture[]> {
  const out: Fixture[] = [];
  const add = async (dir: string, prefix: string) => {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isDirectory || !isUlid(e.name)) continue;
      out.push({
        name: `${prefix}/${e.name}`,
        dir: `${dir}/${e.name}`,
        ulid: e.name,
        histograms: prefix === "native",
      });
    }
  };
  await add(`${DATA}datadir`, "datadir");
  for (const f of ["backfill", "tombstoned", "native"]) await add(`${DATA}tsdb/${f}`, f);
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

async function ourDump(dir: string, flavor: DumpFlavor): Promise<string[]> {
  using block = await BlockReader.open(dir);
  const lines: string[] = [];
  for await (const l of dumpBlock(block, { flavor })) lines.push(l);
  return lines;
}

const flavorOf = (bin: PrometheusBinaries): DumpFlavor =>
  bin.version.startsWith("2.42") ? "floats" : "three-loops";

/**
 * Compares dump lines. Histogram bucket bounds may differ in the last bits: Prometheus takes them
 * from a precomputed table that is up to 4 ulp off the correctly rounded values promcase computes.
 * Everything else (labels, timestamps, counts, sums, bucket counts) must match exactly.
 */
function assertDumpEqual(got: string[], want: string[], what: string): void {
  assert.equal(got.length, want.length, `${what}: line count`);
  const bucket = /([[(])([^,[(]+),([^\])]+)([\])]):/g;
  for (let i = 0; i < got.length; i++) {
    if (got[i] === want[i]) continue;
    const strip = (l: string) => l.replace(bucket, "$1_,_$4:");
    assert.equal(strip(got[i]), strip(want[i]), `${what}: line ${i + 1}`);
    const bounds = (l: string) =>
      [...l.matchAll(bucket)].flatMap((m) => [Number(m[2]), Number(m[3])]);
    const g = bounds(got[i]);
    const w = bounds(want[i]);
    assert.equal(g.length, w.length);
    for (let k = 0; k < g.length; k++) {
      const tolerance = 1e-15 * Math.abs(w[k]);
      assert.ok(
        Math.abs(g[k] - w[k]) <= tolerance,
        `${what}: line ${i + 1}: bound ${g[k]} vs ${w[k]}`,
      );
    }
  }
}

const promtoolDump = (bin: PrometheusBinaries, blockDir: string, extra: string[] = []) =>
  dumpDir(bin, blockDir, extra, { block: true });

const releases = async () => [await findPrometheus("oldest"), await findPrometheus("newest")];

Deno.test("BlockReader reads every real block exactly as promtool tsdb dump prints it", async () => {
  const bins = [...await releases(), await findPrometheus("middle")];
  const all = await fixtures();
  assert.equal(all.length, 8);
  await Promise.all(all.flatMap((f) =>
    // 2.53 stops its dump silently at the first custom-bucket histogram (supported from 2.54).
    bins.filter((bin) => !(f.histograms && bin.version.startsWith("2.53"))).map(async (bin) => {
      const want = await promtoolDump(bin, f.dir);
      const got = await ourDump(f.dir, flavorOf(bin));
      assertDumpEqual(got, want, `${f.name} vs promtool ${bin.version}`);
      assert.ok(want.length > 200, `${f.name}: ${want.length} lines`);
    })
  ));
});

Deno.test("meta.json is written exactly as Go writes it", async () => {
  for (const f of await fixtures()) {
    const text = await Deno.readTextFile(`${f.dir}/meta.json`);
    const raw = JSON.parse(text);
    const parents = (raw.compaction.parents ?? []).map((p: Record<string, number | string>) => ({
      ulid: p.ulid,
      minTime: BigInt(p.minTime),
      maxTime: BigInt(p.maxTime),
    }));
    const ours = formatMetaJson({
      ulid: raw.ulid,
      minTime: BigInt(raw.minTime),
      maxTime: BigInt(raw.maxTime),
      stats: raw.stats,
      level: raw.compaction.level,
      sources: raw.compaction.sources,
      parents,
      hints: raw.compaction.hints,
    });
    assert.equal(ours, text, f.name);
  }
});

Deno.test("BlockWriter rewrites every real block; promtool 2.42 and 3.5 analyze and dump it identically", async () => {
  const bins = await releases();
  const tmp = await Deno.makeTempDir({ prefix: "promcase-tsdb-rw-" });
  try {
    await Promise.all((await fixtures()).map(async (f) => {
      const parent = `${tmp}/${f.name.replace("/", "-")}`;
      await Deno.mkdir(parent);
      // Symbols read from the file and written through spilled runs: every memory bound of the
      // index turned down, so that these paths meet Prometheus' own blocks.
      using orig = await BlockReader.open(f.dir, {
        sampleInterval: 2,
        symbolCacheSize: 1,
        symbolTableMemoryMax: 0,
        sectionWindowSize: 16,
      });
      const w = await BlockWriter.create(parent, {
        minTime: orig.meta.minTime,
        maxTime: orig.meta.maxTime,
        level: orig.meta.level,
        sources: orig.meta.sources,
        tombstones: orig.tombstones,
        symbolsMemoryBudget: 600,
        postingsMemoryBudget: 24 * 16,
        mergeFanIn: 2,
        spillBufferSize: 16,
        index: { sampleInterval: 2, symbolTableMemoryMax: 0, postingsTableBatch: 3 },
      });
      assert.ok((await Deno.stat(`${parent}/${w.ulid}.tmp-for-creation/chunks`)).isDirectory);
      for await (const s of orig.series()) await w.addSeries(s.labels, s.chunks);
      const written = await w.commit();
      assert.equal(written.dir, `${parent}/${w.ulid}`);
      assert.deepEqual([...Deno.readDirSync(parent)].map((e) => e.name), [w.ulid]);
      assert.equal(written.stats.numSamples, orig.meta.stats.numSamples);
      assert.equal(written.stats.numSeries, orig.meta.stats.numSeries);
      assert.equal(written.stats.numChunks, orig.meta.stats.numChunks);
      assert.equal(written.stats.numTombstones, orig.meta.stats.numTombstones);

      // Chunks copied in index order give Prometheus' own segment file and series section.
      assert.deepEqual(
        await Deno.readFile(`${written.dir}/chunks/000001`),
        await Deno.readFile(`${f.dir}/chunks/000001`),
      );
      using a = await IndexReader.open(`${f.dir}/index`);
      using b = await IndexReader.open(`${written.dir}/index`);
      const ai = await Deno.readFile(`${f.dir}/index`);
      const bi = await Deno.readFile(`${written.dir}/index`);
      assert.deepEqual(bi.subarray(0, b.toc.labelIndices), ai.subarray(0, a.toc.labelIndices));
      assert.deepEqual(await readTombstones(written.dir), orig.tombstones);
      const meta = JSON.parse(await Deno.readTextFile(`${written.dir}/meta.json`));
      assert.equal(meta.ulid, w.ulid);
      assert.equal(meta.version, 1);
      assert.deepEqual(meta.compaction.sources, orig.meta.sources);

      for (const bin of bins) {
        // Prometheus 2.42 predates custom-bucket (schema -53) histogram chunks.
        if (f.histograms && bin.version.startsWith("2.42")) continue;
        const report = await promtoolAnalyze(bin, parent, w.ulid);
        assert.match(report, new RegExp(`Block ID: ${w.ulid}`));
        assert.match(report, new RegExp(`Series: ${orig.meta.stats.numSeries}\\b`));
        const [want, got] = await Promise.all([
          promtoolDump(bin, f.dir),
          promtoolDump(bin, written.dir),
        ]);
        assert.deepEqual(got, want, `${f.name} rewritten, promtool ${bin.version} dump`);
      }
    }));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("a temporary block is the same block, written without a single fsync", async () => {
  const f = (await fixtures())[0];
  const tmp = await Deno.makeTempDir({ prefix: "promcase-tsdb-temporary-" });
  const proto = Deno.FsFile.prototype;
  const { sync, syncSync } = proto;
  let syncs = 0;
  proto.sync = function () {
    syncs++;
    return sync.call(this);
  };
  proto.syncSync = function () {
    syncs++;
    return syncSync.call(this);
  };
  try {
    const files: Record<string, Uint8Array>[] = [];
    const counted: number[] = [];
    for (const temporary of [false, true]) {
      using orig = await BlockReader.open(f.dir);
      const parent = `${tmp}/${temporary}`;
      await Deno.mkdir(parent);
      syncs = 0;
      // Small segments: several are cut, each closed as a temporary file or synced.
      const w = await BlockWriter.create(parent, {
        ulid: orig.meta.ulid,
        minTime: orig.meta.minTime,
        maxTime: orig.meta.maxTime,
        segmentSize: 4096,
        temporary,
      });
      for await (const s of orig.series()) await w.addSeries(s.labels, s.chunks);
      const written = await w.commit();
      counted.push(syncs);
      const out: Record<string, Uint8Array> = {};
      for (const rel of ["index", "meta.json", "tombstones"]) {
        out[rel] = await Deno.readFile(`${written.dir}/${rel}`);
      }
      for await (const e of Deno.readDir(`${written.dir}/chunks`)) {
        out[`chunks/${e.name}`] = await Deno.readFile(`${written.dir}/chunks/${e.name}`);
      }
      files.push(out);
    }
    assert.ok(Object.keys(files[0]).length >= 5, Object.keys(files[0]).join(" "));
    assert.deepEqual(files[1], files[0]);
    assert.ok(counted[0] > 5, `a durable block: ${counted[0]} fsyncs`);
    assert.equal(counted[1], 0, "a temporary block");
  } finally {
    proto.sync = sync;
    proto.syncSync = syncSync;
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("a trimmed, tombstone-free rewrite dumps like the original's window", async () => {
  const bins = await releases();
  const f = (await fixtures()).find((x) => x.name.startsWith("tombstoned/"))!;
  const tmp = await Deno.makeTempDir({ prefix: "promcase-tsdb-trim-" });
  try {
    using orig = await BlockReader.open(f.dir);
    // A window that cuts chunks in the middle and overlaps one deleted interval.
    const a = orig.meta.minTime + 20n * 60_000n + 1n;
    const b = a + 50n * 60_000n;
    const w = await BlockWriter.create(tmp, {
      minTime: a > orig.meta.minTime ? a : orig.meta.minTime,
      maxTime: b < orig.meta.maxTime ? b : orig.meta.maxTime,
      level: 1,
      parents: [{ ulid: orig.meta.ulid, minTime: orig.meta.minTime, maxTime: orig.meta.maxTime }],
    });
    let copied = 0;
    let recoded = 0;
    for await (const s of orig.series()) {
      const chunks: BlockChunk[] = [];
      for (const c of s.chunks) {
        assert.equal(c.encoding, Encoding.xor);
        const deleted = s.tombstones.some((iv) => iv.maxt >= c.mint && iv.mint <= c.maxt);
        if (c.mint >= a && c.maxt < b && !deleted) {
          chunks.push(c); // wholly inside and untouched: byte for byte
          copied++;
          continue;
        }
        const { t, v } = decodeXor(c.data);
        const app = new XorAppender();
        let mint = 0n;
        let maxt = 0n;
        for (let i = 0; i < t.length; i++) {
          if (t[i] < a || t[i] >= b) continue;
          if (s.tombstones.some((iv) => t[i] >= iv.mint && t[i] <= iv.maxt)) continue;
          if (app.numSamples === 0) mint = t[i];
          maxt = t[i];
          app.append(t[i], v[i]);
        }
        if (app.numSamples === 0) continue;
        chunks.push({ mint, maxt, ref: 0n, encoding: Encoding.xor, data: app.bytes() });
        recoded++;
      }
      await w.addSeries(s.labels, chunks);
    }
    const written = await w.commit();
    assert.ok(copied > 0 && recoded > 0, `copied ${copied}, recoded ${recoded}`);
    assert.deepEqual([...await Deno.readFile(`${written.dir}/tombstones`)], [
      1,
      48,
      186,
      48,
      1,
      0,
      0,
      0,
      0,
    ]);
    assert.deepEqual(parseTombstones(await Deno.readFile(`${written.dir}/tombstones`)).size, 0);
    // The expected samples: 3.5's dump of the original restricted to the window. (2.42 cannot
    // serve as the reference: with tombstones present its querier ignores --min-time.)
    const want = await promtoolDump(bins[1], f.dir, [`--min-time=${a}`, `--max-time=${b - 1n}`]);
    assert.ok(want.length > 300, `${want.length} lines`);
    for (const bin of bins) {
      await promtoolAnalyze(bin, tmp, w.ulid);
      assert.deepEqual(await promtoolDump(bin, written.dir), want, `promtool ${bin.version}`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("BlockWriter refuses bad input and cleans up", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "promcase-tsdb-bw-" });
  try {
    const chunk = (t: bigint[]) => {
      const app = new XorAppender();
      for (const x of t) app.append(x, 0x3ff0000000000000n);
      return {
        mint: t[0],
        maxt: t[t.length - 1],
        ref: 0n,
        encoding: Encoding.xor,
        data: app.bytes(),
      };
    };
    const w = await BlockWriter.create(tmp, { minTime: 0n, maxTime: 100n });
    await w.addSeries([{ name: "__name__", value: "b" }], [chunk([1n, 2n])]);
    await assert.rejects(
      () => w.addSeries([{ name: "__name__", value: "a" }], [chunk([1n])]),
      /label order/,
    );
    await w.addSeries([{ name: "__name__", value: "c" }], []); // no chunks: left out
    await w.addSeries([{ name: "__name__", value: "d" }], [chunk([50n, 100n])]);
    await assert.rejects(() => w.commit(), /outside \[0, 100\)/);
    assert.deepEqual([...Deno.readDirSync(tmp)], [], "failed commit removes the tmp dir");

    const w2 = await BlockWriter.create(tmp);
    await w2.addSeries([{ name: "__name__", value: "x" }], [chunk([-20n, 7n])]);
    await w2.abort();
    assert.deepEqual([...Deno.readDirSync(tmp)], []);

    const w3 = await BlockWriter.create(tmp);
    await w3.addSeries([{ name: "__name__", value: "x" }], [chunk([-20n, 7n])]);
    await w3.addSeries([{ name: "__name__", value: "y" }], []);
    const done = await w3.commit();
    assert.deepEqual([done.minTime, done.maxTime], [-20n, 8n]); // maxTime = last sample + 1
    assert.equal(done.stats.numSeries, 1);
    const meta = await Deno.readTextFile(`${done.dir}/meta.json`);
    assert.match(meta, /^\{\n\t"ulid": "[0-9A-Z]{26}",\n\t"minTime": -20,\n\t"maxTime": 8,\n/);
    assert.match(meta, /"numFloatSamples": 2,/);
    assert.doesNotMatch(meta, /numHistogramSamples|numTombstones|parents|hints/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("ULIDs are canonical, time-ordered and unique", () => {
  const now = Date.now();
  const ids = Array.from({ length: 1000 }, () => newUlid(now));
  assert.ok(ids.every(isUlid));
  assert.equal(new Set(ids).size, ids.length);
  assert.deepEqual([...ids].sort(), ids, "monotonic within one millisecond");
  assert.equal(ulidTime(ids[0]), now);
  assert.ok(newUlid(now + 1) > ids[ids.length - 1]);
  // A ULID Prometheus made: 2026-11-25T13:12:49.734Z, when it compacted that block.
  assert.equal(ulidTime("01M89DCRT6C4ANXMSVZQAV4WNR"), 1795612369734);
  assert.throws(() => newUlid(-1), RangeError);
});
