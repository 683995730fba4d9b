// End to end, as the issues ask: a real Prometheus (newest release, zstd WAL) with days of
// backfilled history compacted by the server into blocks of several levels and live self-scraping
// with native histograms; export a 24h window while it runs, as a rewrite and --raw; restore both;
// serve the rewrite with the oldest release (2.42) and the raw copy with another; every raw sample
// of the window must be identical.
import assert from "node:assert/strict";
import { runCliJson } from "./_cli.ts";
import { tarListing, withTempDir } from "./_files.ts";
import { assertSameSamples } from "./_samples.ts";
import {
  backfillOpenMetrics,
  findPrometheus,
  generateOpenMetrics,
  startPrometheus,
  waitFor,
  waitForNativeHistogram,
} from "./_prometheus.ts";

interface ExportSummary {
  archive: string;
  size: number;
  mode: string;
  blocks: string[];
  skippedBlocks: string[];
  head: { included: boolean };
  window: { from: string; to: string };
}

async function blockLevels(dataDir: string): Promise<number[]> {
  const levels: number[] = [];
  for await (const entry of Deno.readDir(dataDir)) {
    if (!entry.isDirectory || !/^[0-9A-Z]{26}$/.test(entry.name)) continue;
    try {
      const meta = JSON.parse(await Deno.readTextFile(`${dataDir}/${entry.name}/meta.json`));
      levels.push(meta.compaction.level);
    } catch {
      // Being written or deleted right now.
    }
  }
  return levels;
}

Deno.test("export of a live Prometheus restores to identical raw samples on other releases", async () => {
  const newest = await findPrometheus("newest");
  const middle = await findPrometheus("middle");
  const oldest = await findPrometheus("oldest");
  await withTempDir("promcase-e2e-", async (work) => {
    const dataDir = `${work}/prometheus`;
    const now = Date.now();
    // Three days of history, ending before the head's range so that it does not collide with it.
    await backfillOpenMetrics(
      newest.promtool,
      generateOpenMetrics({
        start: now - 3 * 86_400_000,
        end: now - 3 * 3_600_000,
        stepMs: 60_000,
        series: 4,
      }),
      dataDir,
    );
    await using source = await startPrometheus({
      bin: newest.prometheus,
      dataDir,
      selfScrapeInterval: "1s",
      args: ["--enable-feature=native-histograms", "--storage.tsdb.wal-compression-type=zstd"],
    });
    // The server compacts the backfilled 2h blocks about a minute after start.
    await waitFor(
      async () => Math.max(...await blockLevels(dataDir)) >= 3,
      180_000,
      "compaction to level 3",
    );
    await waitForNativeHistogram(source);
    // Some seconds of live native histograms in the head.
    await new Promise((resolve) => setTimeout(resolve, 20_000));

    // The incident a few seconds ago, so that every sample up to it is in the WAL already.
    const at = Date.now() - 5_000;
    const exportAt = async (name: string, extra: string[]) =>
      await runCliJson<ExportSummary>([
        "export",
        dataDir,
        "--at",
        String(at),
        "--before",
        "24h",
        "-o",
        `${work}/${name}`,
        ...extra,
      ]);
    const rewrite = await exportAt("case.tar.gz", []);
    const raw = await exportAt("case-raw.tar.gz", ["--raw"]);
    assert.equal(rewrite.mode, "rewrite");
    assert.equal(raw.mode, "raw");
    assert.ok(raw.head.included, "the window reaches into the head");
    assert.ok(raw.blocks.length >= 2, "blocks overlap the window");
    assert.ok(raw.skippedBlocks.length >= 1, "older blocks lie outside the window");

    // GNU tar as oracle: the raw copy holds the overlapping blocks and the WAL, not the others;
    // the rewrite holds one new block and no WAL.
    const rawListing = await tarListing(raw.archive);
    for (const ulid of raw.skippedBlocks) assert.ok(!rawListing.includes(ulid), `${ulid} shipped`);
    for (const ulid of raw.blocks) assert.ok(rawListing.includes(`data/${ulid}/index`));
    assert.match(rawListing, /data\/wal\/\d{8}/);
    const listing = await tarListing(rewrite.archive);
    const shipped = new Set([...listing.matchAll(/data\/([0-9A-Z]{26})\//g)].map((m) => m[1]));
    assert.equal(shipped.size, 1, listing);
    for (const ulid of raw.blocks) assert.ok(!shipped.has(ulid), "a new block, not a copy");
    assert.doesNotMatch(listing, /data\/wal\//);
    assert.ok(rewrite.size < raw.size, `rewrite ${rewrite.size} B, raw ${raw.size} B`);

    const verified = await runCliJson<{ ok: boolean; sidecar: string }>([
      "verify",
      rewrite.archive,
    ]);
    assert.equal(verified.ok, true);
    assert.equal(verified.sidecar, "ok");

    const compared = [];
    for (const [archive, release] of [[rewrite.archive, oldest], [raw.archive, middle]] as const) {
      const restored = await runCliJson<{ dataDir: string; serveCommand: string[] }>([
        "restore",
        archive,
        "--into",
        `${work}/restored-${release.version}`,
        "--prometheus-bin",
        release.prometheus,
      ]);
      const serveFlags = restored.serveCommand.filter((a) =>
        a.startsWith("--storage.tsdb.retention.time=") || a.startsWith("--enable-feature=")
      );
      assert.ok(serveFlags.some((a) => a.startsWith("--storage.tsdb.retention.time=")));
      await using copy = await startPrometheus({
        bin: release.prometheus,
        dataDir: restored.dataDir,
        args: serveFlags,
      });
      const c = await assertSameSamples(source, copy, at - 86_400_000, at);
      assert.ok(c.floats > 4 * 1000, `float samples compared: ${c.floats}`);
      assert.ok(c.histograms > 10, `native histogram samples compared: ${c.histograms}`);
      compared.push(
        `${release.version}: ${c.series} series, ${c.floats} float and ` +
          `${c.histograms} histogram samples`,
      );
    }
    console.log(
      `block levels ${(await blockLevels(dataDir)).sort().join(",")}; ${newest.version} -> ` +
        `${compared.join("; ")}; archive rewrite ${rewrite.size} B, raw ${raw.size} B`,
    );
  });
});
