// Prometheus' own test blocks (tests/testdata/prometheus, copied byte for byte from Prometheus
// v3.5.3, see its README) as an independent corpus of old formats:
//
// - `index_format_v1`: a block of Prometheus 2.0 (index format v1: symbols and series referenced
//   by file offset, an unsorted postings offset table). It must be read, exported, restored and
//   served by 2.42 with the series and samples that `tsdb/block_test.go` TestReadIndexFormatV1
//   expects, and equal promtool 2.42's dump of the original block.
// - `repair_index_version`: a block of Prometheus 2.1 (meta.json version 2, an index whose header
//   says version 1 over version 2 content). Prometheus repairs it when it opens the data dir
//   (`tsdb/repair.go` repairBadIndexVersion: index byte 4 set to 2, meta.json version back to
//   1); promcase must read it exactly so, as `tsdb/repair_test.go` expects, never as version 1.
//   The fixture's two series have no chunks, so the same mislabelling is also applied to a block
//   with samples (the 3.5.3 `backfill` block), which Prometheus 2.42 repairs and serves.
//
// `../shared/reference/tsdb-format.md` §1.1 says a meta.json version other than 1 is rejected:
// true of `readMetaFile` (`tsdb/block.go`), but `tsdb/db.go` `open` first runs the repair, which
// accepts version 2 (`tsdb/repair.go` readBogusMetaFile). The code wins: version 2 is repaired.
import assert from "node:assert/strict";
import { isOneLineError, runCli, runCliJson } from "./_cli.ts";
import { copyTree, withTempDir } from "./_files.ts";
import { findPrometheus, type PrometheusServer, startPrometheus } from "./_prometheus.ts";
import { promtoolDump } from "./_promtool.ts";
import { assertSameSamples } from "./_samples.ts";
import { BlockReader } from "../mod/tsdb/block.ts";
import { IndexReader } from "../mod/tsdb/index.ts";
import { FormatError } from "../mod/tsdb/encoding.ts";

const TESTDATA = new URL("./testdata/", import.meta.url).pathname;
const V1_ULID = "01DXXFZDYD1MQW6079WK0K6EDQ";
const V1_BLOCK = `${TESTDATA}prometheus/index_format_v1`;
const REPAIR_ULID = "01BZJ9WJQPWHGNC2W4J9TA62KC";
const REPAIR_BLOCK = `${TESTDATA}prometheus/repair_index_version/${REPAIR_ULID}`;
const BACKFILL_ULID = "01M89EXCBJTTARVKZ7E0Z911K2";
const BACKFILL_BLOCK = `${TESTDATA}tsdb/backfill/${BACKFILL_ULID}`;

interface Summary {
  blocks: string[];
  warnings: string[];
  rewrite?: { series: number; samples: number };
}

interface Restored {
  dataDir: string;
  serveCommand: string[];
}

/**
 * Exports `dataDir` from `fromMs` (rewrite or raw), restores it for `prometheus`; both outputs
 * and the flags to serve it with.
 */
async function exportRestore(
  dataDir: string,
  fromMs: number,
  work: string,
  prometheus: string,
  raw = false,
): Promise<{ summary: Summary; restored: Restored; flags: string[] }> {
  const archive = `${work}/${raw ? "raw" : "rewrite"}.tar.gz`;
  const summary = await runCliJson<Summary>([
    "export",
    dataDir,
    "--from",
    String(fromMs),
    "--to",
    "now",
    "-o",
    archive,
    "--no-prometheus-api",
    ...(raw ? ["--raw"] : []),
  ]);
  const restored = await runCliJson<Restored>([
    "restore",
    archive,
    "--into",
    `${work}/restored-${raw ? "raw" : "rewrite"}`,
    "--prometheus-bin",
    prometheus,
  ]);
  const flags = restored.serveCommand.filter((a) =>
    a.startsWith("--storage.tsdb.retention.time=") || a.startsWith("--enable-feature=")
  );
  return { summary, restored, flags };
}

/** A range query's series as `labels -> [[seconds, value], …]`, sorted by labels. */
async function matrix(
  server: PrometheusServer,
  expr: string,
  timeSeconds: number,
): Promise<[string, [number, string][]][]> {
  const data = await server.query(expr, timeSeconds) as {
    result: { metric: Record<string, string>; values: [number, string][] }[];
  };
  return data.result
    .map((s): [string, [number, string][]] => [JSON.stringify(s.metric), s.values])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** The labels of every series of a block, in index order, read by promcase. */
async function blockLabels(dir: string): Promise<string[]> {
  const block = await BlockReader.open(dir);
  try {
    const out: string[] = [];
    for await (const s of block.series()) {
      assert.deepEqual(s.chunks, [], "the fixture's series have no chunks");
      out.push(JSON.stringify(s.labels));
    }
    return out;
  } finally {
    block.close();
  }
}

const label = (name: string, value: string) => ({ name, value });

Deno.test("index format v1 (Prometheus 2.0): exported, restored and served by 2.42 as block_test.go expects", async () => {
  const bin = await findPrometheus("oldest");
  assert.match(bin.version, /^2\.42\./);
  // tsdb/block_test.go TestReadIndexFormatV1: foo="bar" (t=1, v=2), foo="baz" (t=3, v=4) and
  // bar="0".."99" at t=0 with value 0 (foo="meh" at 4h is not in the block); promtool tsdb dump
  // writes `LABELS VALUE TIMESTAMP`.
  const expected = [
    `{foo="bar"} 2 1`,
    `{foo="baz"} 4 3`,
    ...Array.from({ length: 100 }, (_, i) => `{bar="${i}"} 0 0`),
  ].sort();
  await withTempDir("promcase-prom-v1-", async (work) => {
    const data = `${work}/data`;
    await Deno.mkdir(data);
    // Prometheus only loads dirs named by a ULID: the block goes in under its meta.json's.
    await copyTree(V1_BLOCK, `${data}/${V1_ULID}`);
    assert.equal(new Uint8Array(await Deno.readFile(`${data}/${V1_ULID}/index`))[4], 1);
    assert.deepEqual((await promtoolDump(bin, data)).sort(), expected, "promtool: the original");

    // The lookups block_test.go's queries make: postings through the v1 postings offset table,
    // which 2.0 wrote unsorted, and series by their v1 IDs (file offsets).
    const reader = await BlockReader.open(`${data}/${V1_ULID}`);
    try {
      assert.equal(reader.index.version, 1);
      const bars = Array.from({ length: 100 }, (_, i) => String(i)).sort();
      assert.deepEqual(await reader.index.labelNames(), ["bar", "foo"]);
      assert.deepEqual(await reader.index.labelValues("bar"), bars);
      assert.deepEqual(await reader.index.labelValues("foo"), ["bar", "baz"]);
      assert.equal((await reader.index.allPostings()).length, 102);
      // Series IDs as the series section gives them (what tombstones refer to).
      const idOf = new Map<string, number>();
      for await (const s of reader.series()) idOf.set(JSON.stringify(s.labels), s.id);
      assert.equal(idOf.size, 102);
      const pairs = [["foo", "bar", 1n], ["foo", "baz", 3n], ...bars.map((v) => ["bar", v, 0n])];
      for (const [name, value, t] of pairs as [string, string, bigint][]) {
        const ids = await reader.index.postings(name, value);
        assert.equal(ids.length, 1, `${name}=${value}`);
        const series = await reader.index.seriesById(ids[0]);
        assert.deepEqual(series.labels, [label(name, value)]);
        assert.deepEqual(series.chunks.map((c) => [c.mint, c.maxt]), [[t, t]]);
        assert.equal(idOf.get(JSON.stringify(series.labels)), ids[0], `${name}=${value}: ID`);
      }
    } finally {
      reader.close();
    }

    const { summary, restored, flags } = await exportRestore(data, 0, work, bin.prometheus);
    assert.deepEqual(summary.blocks, [V1_ULID]);
    assert.deepEqual(summary.warnings, []);
    assert.equal(summary.rewrite?.series, 102);
    assert.equal(summary.rewrite?.samples, 102);
    assert.deepEqual(
      (await promtoolDump(bin, restored.dataDir)).sort(),
      expected,
      "promtool: the restored block",
    );

    // The queries of block_test.go, over [0, 1000] ms (2.x range selectors include both ends).
    const want = {
      bar: [[`{"foo":"bar"}`, [[0.001, "2"]]]],
      notShort: [[`{"foo":"bar"}`, [[0.001, "2"]]], [`{"foo":"baz"}`, [[0.003, "4"]]]],
      bars: Array.from({ length: 100 }, (_, i) => [`{"bar":"${i}"}`, [[0, "0"]]]).sort((a, b) =>
        a[0] < b[0] ? -1 : 1
      ),
    };
    const ask = async (server: PrometheusServer) => ({
      bar: await matrix(server, `{foo="bar"}[1s]`, 1),
      notShort: await matrix(server, `{foo!~"^.?$"}[1s]`, 1),
      bars: await matrix(server, `{bar=~".+"}[1s]`, 1),
    });
    {
      await using copy = await startPrometheus({
        bin: bin.prometheus,
        dataDir: restored.dataDir,
        args: flags,
      });
      assert.deepEqual(await ask(copy), want, "2.42 serving the restored block");
    }
    await copyTree(data, `${work}/original`);
    await using original = await startPrometheus({
      bin: bin.prometheus,
      dataDir: `${work}/original`,
      args: flags,
    });
    assert.deepEqual(await ask(original), want, "2.42 serving the original block");
  });
});

Deno.test("repair_index_version (Prometheus 2.1): read as Prometheus repairs it, as repair_test.go expects", async () => {
  const bin = await findPrometheus("oldest");
  await withTempDir("promcase-prom-repair-", async (work) => {
    const data = `${work}/data`;
    const block = `${data}/${REPAIR_ULID}`;
    await Deno.mkdir(data);
    await copyTree(REPAIR_BLOCK, block);
    // The fixture has no chunks/ dir; repair_test.go creates one "to imitate them".
    await Deno.mkdir(`${block}/chunks`);
    const meta = JSON.parse(await Deno.readTextFile(`${block}/meta.json`));
    assert.equal(meta.version, 2);
    assert.equal(new Uint8Array(await Deno.readFile(`${block}/index`))[4], 1);

    // Read as its header says (version 1), the index is unusable, as in repair_test.go before
    // the repair: an error, never labels.
    const asV1 = await IndexReader.open(`${block}/index`);
    try {
      assert.equal(asV1.version, 1);
      await assert.rejects(() => Array.fromAsync(asV1.series()), FormatError);
    } finally {
      asV1.close();
    }

    // As repaired: the postings of b="1" are the two series of repair_test.go.
    const want = [
      JSON.stringify([label("a", "1"), label("b", "1")]),
      JSON.stringify([label("a", "2"), label("b", "1")]),
    ];
    const reader = await BlockReader.open(block);
    try {
      assert.equal(reader.meta.badIndexVersion, true);
      assert.equal(reader.index.version, 2);
      const ids = await reader.index.postings("b", "1");
      const viaPostings = [];
      for (const id of ids) {
        viaPostings.push(JSON.stringify((await reader.index.seriesById(id)).labels));
      }
      assert.deepEqual(viaPostings, want);
      // The script of repair_test.go wrote no other postings list.
      assert.deepEqual(await reader.index.labelNames(), ["b"]);
    } finally {
      reader.close();
    }
    assert.deepEqual(await blockLabels(block), want);
    // Nothing of it is touched: promcase reads, Prometheus repairs.
    assert.deepEqual(
      await Deno.readFile(`${block}/index`),
      await Deno.readFile(`${REPAIR_BLOCK}/index`),
    );

    const series = await runCliJson<{
      totals: { series: number; blockSeries: number; chunks: number };
      warnings: string[];
    }>(["inspect", "--series", data]);
    assert.deepEqual(series.totals.series, 2);
    assert.deepEqual(series.totals.blockSeries, 2);
    assert.deepEqual(series.totals.chunks, 0);
    assert.deepEqual(series.warnings, []);

    // Series without chunks hold no sample: the export says so in one line. Prometheus agrees:
    // its queriers skip series without chunks (tsdb/querier.go), and so does its compaction.
    const exported = await runCli([
      "export",
      data,
      "--from",
      "0",
      "--to",
      "now",
      "-o",
      `${work}/a.tar.gz`,
      "--no-prometheus-api",
    ]);
    assert.equal(exported.code, 1, exported.stderr);
    assert.ok(isOneLineError(exported), exported.stderr);
    assert.match(exported.stderr, /no samples in the window/);

    // Prometheus 2.42 opening a copy repairs the block in place and then reads it: its label
    // APIs answer from the postings offset table, which holds b="1" only.
    await copyTree(data, `${work}/served`);
    const served = `${work}/served/${REPAIR_ULID}`;
    {
      await using prom = await startPrometheus({
        bin: bin.prometheus,
        dataDir: `${work}/served`,
        args: ["--storage.tsdb.retention.time=36500d"],
      });
      assert.match(await prom.logTail(200), /Fixing broken block/);
      assert.deepEqual(await prom.api("/api/v1/labels"), ["b"]);
      assert.deepEqual(await prom.api("/api/v1/label/b/values"), ["1"]);
      assert.deepEqual(await prom.api("/api/v1/series", { "match[]": `{b="1"}` }), []);
    }
    assert.equal(new Uint8Array(await Deno.readFile(`${served}/index`))[4], 2);
    assert.equal(JSON.parse(await Deno.readTextFile(`${served}/meta.json`)).version, 1);
    // promcase reads Prometheus' repaired block like the broken original.
    assert.deepEqual(await blockLabels(served), want);
  });
});

for (const raw of [false, true]) {
  Deno.test(`a block mislabelled as Prometheus 2.1 wrote it, exported ${raw ? "raw" : "rewritten"}, is served by 2.42 as the original`, async () => {
    const bin = await findPrometheus("oldest");
    await withTempDir("promcase-prom-repair21-", async (work) => {
      // The inverse of repair.go on a block with samples (index v2 written by 3.5.3): the index
      // header's version byte set to 1 and meta.json's version to 2, what 2.1 wrote.
      const data = `${work}/data`;
      const block = `${data}/${BACKFILL_ULID}`;
      await Deno.mkdir(data);
      await copyTree(BACKFILL_BLOCK, block);
      const index = await Deno.readFile(`${block}/index`);
      assert.equal(index[4], 2);
      index[4] = 1;
      await Deno.writeFile(`${block}/index`, index);
      const meta = JSON.parse(await Deno.readTextFile(`${block}/meta.json`));
      assert.equal(meta.version, 1);
      await Deno.writeTextFile(`${block}/meta.json`, JSON.stringify({ ...meta, version: 2 }));

      const { summary, restored, flags } = await exportRestore(
        data,
        meta.minTime,
        work,
        bin.prometheus,
        raw,
      );
      assert.deepEqual(summary.blocks, [BACKFILL_ULID]);
      assert.deepEqual(summary.warnings, []);
      if (!raw) {
        assert.equal(summary.rewrite?.series, meta.stats.numSeries);
        assert.equal(summary.rewrite?.samples, meta.stats.numSamples);
        // promtool reads the rewritten block as the untouched 3.5.3 block (it skips the broken
        // one: a read-only DB does not repair).
        assert.deepEqual(
          await promtoolDump(bin, restored.dataDir),
          await promtoolDump(bin, BACKFILL_BLOCK, [], { block: true }),
        );
      }
      // Series counted from the archive: a raw archive ships the 2.1 block as it is.
      const counted = await runCliJson<{ totals: { series: number; chunks: number } }>([
        "inspect",
        "--series",
        `${work}/${raw ? "raw" : "rewrite"}.tar.gz`,
      ]);
      assert.deepEqual(counted.totals.series, meta.stats.numSeries);
      assert.deepEqual(counted.totals.chunks, meta.stats.numChunks);

      await copyTree(data, `${work}/original`);
      await using original = await startPrometheus({
        bin: bin.prometheus,
        dataDir: `${work}/original`,
        args: flags,
      });
      assert.match(await original.logTail(200), /Fixing broken block/);
      await using copy = await startPrometheus({
        bin: bin.prometheus,
        dataDir: restored.dataDir,
        args: flags,
      });
      const compared = await assertSameSamples(
        original,
        copy,
        meta.minTime - 1,
        meta.maxTime,
      );
      assert.equal(compared.series, meta.stats.numSeries);
      assert.equal(compared.floats, meta.stats.numSamples);
    });
  });
}
