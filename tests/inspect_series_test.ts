// `promcase inspect --series`: series per metric name of the real 2.42 data dir under
// tests/testdata and of archives exported from it, checked against what a real Prometheus serving
// a copy of the dir reports (/api/v1/series, /api/v1/status/tsdb) and against the blocks'
// meta.json.
import assert from "node:assert/strict";
import { parseBlockMeta } from "../mod/tsdb/meta.ts";
import { exportAllArgs, isOneLineError, runCli, runCliJson } from "./_cli.ts";
import { copyTree, TEST_DATADIR, withTempDir } from "./_files.ts";
import { findPrometheus, type PrometheusServer, startPrometheus } from "./_prometheus.ts";

const DATADIR = TEST_DATADIR;

interface MetricSeries {
  metric: string;
  series: number;
  blockSeries: number;
  headSeries: number;
  chunks: number;
}

interface SeriesReport {
  kind: string;
  selector: string | null;
  blocks: string[];
  head: { included: boolean; segments: number };
  exact: boolean;
  totals: {
    metrics: number;
    series: number;
    blockSeries: number;
    headSeries: number;
    chunks: number;
  };
  metrics: MetricSeries[];
  omittedMetrics: number;
  warnings: string[];
}

const inspect = (args: string[]) => runCliJson<SeriesReport>(["inspect", ...args]);

/** metric name -> series, from inspect's JSON. */
const counts = (report: SeriesReport) =>
  Object.fromEntries(report.metrics.map((m) => [m.metric, m.series]));

/** metric name -> series, as Prometheus' series API reports them. */
async function prometheusCounts(
  server: PrometheusServer,
  match: string,
  range: { start?: string; end?: string } = {},
): Promise<Record<string, number>> {
  const series = await server.api("/api/v1/series", { "match[]": match, ...range }) as Record<
    string,
    string
  >[];
  const out: Record<string, number> = {};
  for (const s of series) out[s.__name__ ?? ""] = (out[s.__name__ ?? ""] ?? 0) + 1;
  return out;
}

async function metaChunks(dir: string, ulids: string[]): Promise<number> {
  let sum = 0;
  for (const ulid of ulids) {
    sum += parseBlockMeta(await Deno.readTextFile(`${dir}/${ulid}/meta.json`)).stats.numChunks;
  }
  return sum;
}

Deno.test("inspect --series counts what Prometheus serves from the data dir, selected and windowed", async () => {
  const { prometheus } = await findPrometheus("newest");
  await withTempDir("promcase-inspect-series-", async (work) => {
    const all = await inspect(["--series", DATADIR, "--top", "0"]);
    assert.equal(all.kind, "datadir");
    assert.equal(all.blocks.length, 5);
    assert.ok(all.head.included && all.head.segments === 4, JSON.stringify(all.head));
    assert.ok(all.exact);
    assert.equal(all.omittedMetrics, 0);
    assert.deepEqual(all.warnings, []);
    // Every chunk of every block, once.
    assert.equal(all.totals.chunks, await metaChunks(DATADIR, all.blocks));
    assert.equal(all.totals.series, all.metrics.reduce((s, m) => s + m.series, 0));

    await copyTree(DATADIR, `${work}/data`);
    await using server = await startPrometheus({
      bin: prometheus,
      dataDir: `${work}/data`,
      args: ["--storage.tsdb.retention.time=3652d"],
    });
    assert.deepEqual(counts(all), await prometheusCounts(server, '{__name__=~".+"}'));
    // The head after replay: the checkpoint's 25 series, all of them also in blocks.
    const status = await server.api("/api/v1/status/tsdb") as { headStats: { numSeries: number } };
    assert.equal(all.totals.headSeries, status.headStats.numSeries);
    assert.equal(all.totals.headSeries, 25);
    assert.equal(all.totals.blockSeries, all.totals.series);

    const selector = '{__name__=~"promcase_.*|up", code!="500"}';
    const selected = await inspect(["--series", selector, DATADIR, "--top", "0"]);
    assert.deepEqual(counts(selected), await prometheusCounts(server, selector));
    assert.equal(selected.selector, '{__name__=~"promcase_.*|up",code!="500"}');
    assert.ok(Object.keys(counts(selected)).length >= 3);

    // A window inside the newest block but one: only that block, no head.
    const blocks = await Promise.all(all.blocks.map(async (ulid) => ({
      ulid,
      meta: parseBlockMeta(await Deno.readTextFile(`${DATADIR}/${ulid}/meta.json`)),
    })));
    blocks.sort((a, b) => Number(a.meta.minTime - b.meta.minTime));
    const inner = blocks[blocks.length - 2];
    const from = inner.meta.minTime + 10_000n;
    const to = inner.meta.minTime + 20_000n;
    const windowed = await inspect([
      "--series",
      DATADIR,
      "--from",
      String(from),
      "--to",
      String(to),
      "--top",
      "0",
    ]);
    assert.deepEqual(windowed.blocks, [inner.ulid]);
    assert.equal(windowed.head.included, false);
    assert.equal(windowed.totals.headSeries, 0);
    const range = { start: String(Number(from) / 1000), end: String(Number(to) / 1000) };
    assert.deepEqual(counts(windowed), await prometheusCounts(server, '{__name__=~".+"}', range));
    assert.ok(windowed.totals.chunks < (await metaChunks(DATADIR, [inner.ulid])) + 1);

    // The first head block starts 30 s before its first sample: a window in that gap overlaps the
    // block, but no series has a sample there, and Prometheus lists none either.
    const first = blocks.find((b) => b.meta.stats.numSeries === 25)!;
    const gap = { from: first.meta.minTime + 1000n, to: first.meta.minTime + 20_000n };
    const empty = await inspect([
      "--series",
      DATADIR,
      "--from",
      String(gap.from),
      "--to",
      String(gap.to),
    ]);
    assert.deepEqual(empty.blocks, [first.ulid]);
    assert.deepEqual(empty.metrics, []);
    assert.deepEqual(
      await prometheusCounts(server, '{__name__=~".+"}', {
        start: String(Number(gap.from) / 1000),
        end: String(Number(gap.to) / 1000),
      }),
      {},
    );
  });
});

Deno.test("inspect --series reads archives: raw and rewritten exports count as the data dir", async () => {
  await withTempDir("promcase-inspect-archive-", async (work) => {
    const dir = await inspect(["--series", DATADIR, "--top", "0"]);
    await runCliJson([
      ...exportAllArgs(DATADIR, `${work}/raw.tar.zst`),
      "--raw",
      "--compression",
      "zstd",
    ]);
    await runCliJson(exportAllArgs(DATADIR, `${work}/rewritten.tar.gz`));

    const raw = await inspect(["--series", `${work}/raw.tar.zst`, "--top", "0"]);
    assert.equal(raw.kind, "archive");
    assert.deepEqual(raw.warnings, []);
    assert.deepEqual(raw.blocks.toSorted(), dir.blocks.toSorted());
    assert.ok(raw.head.included && raw.head.segments === 4, JSON.stringify(raw.head));
    // Same blocks and WAL, so the same counts in every column.
    assert.deepEqual(raw.metrics, dir.metrics);
    assert.deepEqual(raw.totals, dir.totals);

    const rewritten = await inspect(["--series", `${work}/rewritten.tar.gz`, "--top", "0"]);
    assert.deepEqual(rewritten.warnings, []);
    assert.deepEqual(counts(rewritten), counts(dir));

    const selected = await inspect([
      "--series=promcase_requests_total",
      `${work}/raw.tar.zst`,
      "--top",
      "0",
    ]);
    assert.deepEqual(counts(selected), { promcase_requests_total: 4 });

    // A damaged archive: the problem is reported, the counts of what could be read still come.
    const bytes = await Deno.readFile(`${work}/raw.tar.zst`);
    await Deno.writeFile(`${work}/cut.tar.zst`, bytes.subarray(0, bytes.length - 200));
    const cut = await runCli(["inspect", "--series", `${work}/cut.tar.zst`, "--json"]);
    assert.equal(cut.code, 0, cut.stderr);
    const cutReport = JSON.parse(cut.stdout) as SeriesReport;
    assert.ok(cutReport.warnings.some((w) => /archive: .*truncated/.test(w)), cut.stdout);
  });
});

Deno.test("inspect --series deduplicates head series and counts a head without blocks", async () => {
  await withTempDir("promcase-inspect-head-", async (work) => {
    await copyTree(DATADIR, `${work}/data`);
    for await (const entry of Deno.readDir(`${work}/data`)) {
      if (/^[0-9A-Z]{26}$/.test(entry.name)) {
        await Deno.remove(`${work}/data/${entry.name}`, { recursive: true });
      }
    }
    // The checkpoint's series records once more, as WAL segment 5: each series is still one.
    await Deno.copyFile(
      `${work}/data/wal/checkpoint.00000001/00000000`,
      `${work}/data/wal/00000005`,
    );
    const report = await inspect(["--series", `${work}/data`, "--top", "0"]);
    assert.equal(report.head.segments, 5);
    assert.deepEqual(report.blocks, []);
    assert.equal(report.totals.series, 25);
    assert.equal(report.totals.headSeries, 25);
    assert.equal(report.totals.blockSeries, 0);
    assert.equal(report.totals.chunks, 0);
    assert.ok(report.exact);
  });
});

Deno.test("inspect --series: text table, --top, and one-line usage errors", async () => {
  await withTempDir("promcase-inspect-cli-", async (work) => {
    const text = await runCli(["inspect", "--series", "--top", "3", DATADIR]);
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.split("\n");
    const header = lines.findIndex((l) =>
      /^\s+METRIC\s+SERIES\s+BLOCKS\s+HEAD\s+CHUNKS\s+SHARE$/.test(l)
    );
    assert.ok(header > 0, text.stdout);
    assert.match(
      lines[header + 1],
      /^\s+prometheus_http_request_duration_seconds_bucket\s+10\s+10\s+10\s+30\s+31\.3%$/,
    );
    assert.match(lines[header + 4], /^\s+\(16 more metric names\)\s+16\s+/);
    assert.match(
      lines[header + 5],
      /^\s+TOTAL \(19 metric names\)\s+32\s+32\s+25\s+152\s+100\.0%$/,
    );

    // A selector right after --series, then the dir; a name that is a path stays the dir.
    const up = await inspect(["--series", "up", DATADIR]);
    assert.deepEqual(counts(up), { up: 1 });
    await copyTree(DATADIR, `${work}/up`);
    const dirNamedUp = await runCliJson<SeriesReport>(["inspect", "--series", "up"], { cwd: work });
    assert.equal(dirNamedUp.totals.series, 32);

    const archive = `${work}/a.tar.gz`;
    await runCliJson(exportAllArgs(DATADIR, archive));
    const cases: [string[], RegExp][] = [
      [["--series", '{a=""}', DATADIR], /non-empty matcher/],
      [["--series", "--top", "x", DATADIR], /--top must be a whole number/],
      [["--top", "3", DATADIR], /--top goes with --series/],
      [["--at", "now", DATADIR], /--at goes with --series/],
      [["--series", archive, "--at", "now"], /an archive is counted whole/],
      [["--series", "--before", "1h", DATADIR], /--at/],
      [[archive], /is a file, not a data dir: inspect --series/],
      [["--series", `${work}/missing`], /missing/],
    ];
    for (const [args, want] of cases) {
      const result = await runCli(["inspect", ...args]);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.ok(isOneLineError(result), result.stderr);
      assert.match(result.stderr, want);
    }
    // Not an archive at all: a failure of the work (exit 1), not a table of nothing.
    await Deno.writeTextFile(`${work}/junk.tar`, "not a tar file");
    const junk = await runCli(["inspect", "--series", `${work}/junk.tar`]);
    assert.equal(junk.code, 1, junk.stderr);
    assert.ok(isOneLineError(junk), junk.stderr);
    assert.match(junk.stderr, /cannot count the series of .*junk\.tar: archive is/);
  });
});
