// The head of a newer Prometheus (tests/testdata/wal_newer/, see tests/_wal_newer_fixture.ts):
// samples V2 and histogram samples V2 (records 11-13, with start timestamps, in the checkpoint, the
// WAL and the WBL), histograms of schemas 9, 20 and 52 (reduced to 8 as Prometheus' record
// decoder reduces them since 3.7: tsdb/record/record.go:567-574; without that 2.42 panics serving
// them), -9 (kept) and 100 (skipped, record.go:563-566), and record types no release writes (14
// of three lengths, 15, 50, 200, 255: skipped as head_wal.go:247-248 skips them). Exported by
// promcase, restored, and read back by Prometheus 2.42: promtool tsdb dump for the float samples
// (stale marker included), the query API for the histograms. What 2.42 must show is derived from
// the fixture's description, not from promcase.
import assert from "node:assert/strict";
import { exportAllArgs, runCliJson } from "./_cli.ts";
import { withTempDir } from "./_files.ts";
import { findPrometheus, startPrometheus } from "./_prometheus.ts";
import { promtoolDump } from "./_promtool.ts";
import {
  type FixtureHistogramSeries,
  floatValue,
  histogramCounts,
  OUT_OF_ORDER,
  SCRAPES,
  scrapeTime,
  WAL_NEWER,
  writeWalNewer,
} from "./_wal_newer_fixture.ts";

const FIXTURE = new URL("./testdata/wal_newer/datadir", import.meta.url).pathname;
const FILES = ["wal/checkpoint.00000000/00000000", "wal/00000001", "wbl/00000000"];

interface Restored {
  dir: string;
  dataDir: string;
  serveCommand: string[];
}

/** One bucket as Prometheus' API gives it: boundary rule, lower and upper bound, count. */
type Bucket = [rule: number, lower: number, upper: number, count: number];

/**
 * The buckets Prometheus serves for a fixture histogram: each original bucket i of schema s goes
 * into bucket ⌈i/2^(s-8)⌉ of schema 8 when s > 8 (its range (2^((i-1)/2^s), 2^(i/2^s)] lies inside
 * that one), else stays; bounds are 2^(i/2^schema), negative buckets mirrored; the zero bucket
 * when it has observations.
 */
function expectedBuckets(s: FixtureHistogramSeries, k: number): Bucket[] {
  const schema = Math.min(s.schema, 8);
  const shift = BigInt(s.schema - schema);
  const ceilDiv = (i: bigint) => {
    const d = 1n << shift;
    return i > 0n ? (i + d - 1n) / d : -(-i / d);
  };
  const counts = histogramCounts(s, k);
  const side = (spans: [number, number][], values: number[]) => {
    const byIndex = new Map<bigint, number>();
    let i = 0n;
    let n = 0;
    for (const [offset, length] of spans) {
      i += BigInt(offset);
      for (let j = 0; j < length; j++, i++) {
        const target = ceilDiv(i);
        byIndex.set(target, (byIndex.get(target) ?? 0) + values[n++]);
      }
    }
    return byIndex;
  };
  const bound = (i: bigint) => 2 ** (Number(i) * 2 ** -schema);
  const out: Bucket[] = [];
  for (const [i, c] of side(s.positive, counts.positive)) out.push([0, bound(i - 1n), bound(i), c]);
  for (const [i, c] of side(s.negative, counts.negative)) {
    out.push([1, -bound(i), -bound(i - 1n), c]);
  }
  const zt = s.schema === -9 ? 0 : 2.938735877055719e-39;
  if (counts.zero > 0) out.push([3, -zt, zt, counts.zero]);
  return out.sort((a, b) => a[1] - b[1]);
}

function assertBuckets(got: Bucket[], want: Bucket[], what: string): void {
  const sorted = got.toSorted((a, b) => a[1] - b[1]);
  const near = (a: number, b: number) => a === b || Math.abs(a - b) <= 1e-12 * Math.abs(b);
  const ok = sorted.length === want.length &&
    sorted.every((g, n) =>
      g[0] === want[n][0] && near(g[1], want[n][1]) && near(g[2], want[n][2]) && g[3] === want[n][3]
    );
  assert.ok(ok, `${what}: got ${JSON.stringify(sorted)}, want ${JSON.stringify(want)}`);
}

Deno.test("a newer Prometheus' WAL (records 11-13, unknown types, schemas > 8) served by 2.42", async () => {
  const bin = await findPrometheus("oldest");
  assert.equal(bin.version, "2.42.0");
  await withTempDir("promcase-wal-newer-", async (work) => {
    // The committed fixture is what its description writes.
    await writeWalNewer(`${work}/regenerated`);
    for (const f of FILES) {
      assert.deepEqual(
        await Deno.readFile(`${work}/regenerated/${f}`),
        await Deno.readFile(`${FIXTURE}/${f}`),
        `${f} is what tests/testdata/wal_newer/generate.ts writes`,
      );
    }

    const exported = await runCliJson<{
      rewrite: { head: Record<string, unknown> };
      warnings: string[];
    }>([...exportAllArgs(FIXTURE, `${work}/a.tar.gz`), "--no-prometheus-api"]);
    const restored = await runCliJson<Restored>([
      "restore",
      `${work}/a.tar.gz`,
      "--into",
      `${work}/restored`,
      "--prometheus-bin",
      bin.prometheus,
    ]);

    // The manifest counts what was skipped, by record type and for unknown schemas.
    const manifest = JSON.parse(await Deno.readTextFile(`${restored.dir}/manifest.json`));
    const unknownRecords = Object.fromEntries(
      Object.entries(WAL_NEWER.unknownRecords).map(([code, n]) => [`unknown type ${code}`, n]),
    );
    for (const head of [manifest.rewrite.head, exported.rewrite.head]) {
      assert.deepEqual(head.skippedRecords, unknownRecords);
      assert.equal(head.droppedUnknownSchema, SCRAPES);
      assert.equal(head.corruption, null);
    }
    assert.ok(
      manifest.warnings.some((w: string) => /records of types .*14 \(3\), 15 \(1\)/.test(w)),
      manifest.warnings.join("\n"),
    );
    assert.equal(manifest.minPrometheusVersion, "2.42.0");

    // Float samples, V1 and V2, as 2.42's promtool dumps them: every scrape, the stale marker
    // (the last sample of st="none") as NaN.
    const dumped = new Map<string, [number, number][]>();
    for (const line of await promtoolDump(bin, restored.dataDir)) {
      const m = /^(\{.*\}) (\S+) (\d+)$/.exec(line);
      assert.ok(m, line);
      dumped.set(m[1], [...dumped.get(m[1]) ?? [], [Number(m[3]), Number(m[2])]]);
    }
    const labelText = (labels: [string, string][]) =>
      `{${labels.map(([n, v]) => `${n}="${v}"`).join(", ")}}`;
    const ooo = Number(OUT_OF_ORDER.t);
    for (const s of WAL_NEWER.floats) {
      const want = Array.from(
        { length: SCRAPES },
        (_, k) => [Number(scrapeTime(k)), floatValue(s.ref, k)],
      );
      // The WBL's out-of-order sample joins its series.
      if (s.ref === OUT_OF_ORDER.floatRef) want.splice(6, 0, [ooo, OUT_OF_ORDER.floatValue]);
      assert.deepEqual(dumped.get(labelText(s.labels)), want, labelText(s.labels));
      dumped.delete(labelText(s.labels));
    }
    assert.deepEqual([...dumped.keys()], [], "no other float series");

    // Histograms through 2.42's query API: bounds and counts of the reduced buckets.
    await using server = await startPrometheus({
      bin: bin.prometheus,
      dataDir: restored.dataDir,
      args: restored.serveCommand.filter((a) =>
        a.startsWith("--storage.tsdb.retention.time=") || a.startsWith("--enable-feature=")
      ),
    });
    // One series per query: 2.42 serves wrong values for integer histograms when one matrix
    // selector selects several histogram series (2.53 serves this same block right).
    const end = Number(scrapeTime(SCRAPES - 1)) / 1000;
    const names = await server.api("/api/v1/series", { "match[]": '{__name__=~"newer_hist.*"}' });
    const known = WAL_NEWER.histograms.filter((s) => s.schema !== 100);
    assert.deepEqual(
      (names as Record<string, string>[]).map((m) => m.schema).sort(),
      known.map((s) => String(s.schema)).sort(),
      "every histogram series but the one of an unknown schema",
    );
    let compared = 0;
    for (const s of known) {
      const selector = `{${s.labels.map(([n, v]) => `${n}="${v}"`).join(",")}}[1h]`;
      const data = await server.query(selector, end) as {
        result: {
          histograms?: [number, { count: string; sum: string; buckets?: unknown[][] }][];
          values?: unknown[];
        }[];
      };
      assert.equal(data.result.length, 1, selector);
      const series = data.result[0];
      assert.equal(series.values, undefined, `schema ${s.schema}: no float samples`);
      // Scrape times, and the WBL's out-of-order sample (with scrape 5's counts) in its place.
      const scrapes = Array.from({ length: SCRAPES }, (_, k) => [Number(scrapeTime(k)), k]);
      if (s.ref === OUT_OF_ORDER.histogramRef) {
        scrapes.splice(6, 0, [ooo, OUT_OF_ORDER.histogramScrape]);
      }
      assert.equal(series.histograms?.length, scrapes.length, `schema ${s.schema}`);
      for (const [n, [t, h]] of series.histograms!.entries()) {
        const [ms, k] = scrapes[n];
        const what = `schema ${s.schema} (record ${s.code}) at ${ms}`;
        const c = histogramCounts(s, k);
        assert.equal(t, ms / 1000, what);
        const total = c.zero + [...c.positive, ...c.negative].reduce((a, b) => a + b, 0);
        assert.deepEqual([Number(h.count), Number(h.sum)], [total, c.sum], what);
        const buckets = (h.buckets ?? []).map((b) => b.map(Number) as Bucket);
        assertBuckets(buckets, expectedBuckets(s, k), what);
        compared++;
      }
    }
    assert.equal(compared, known.length * SCRAPES + 1);
  });
});
