// End to end, as the issue asks: a real Prometheus (newest release) with days of backfilled history
// compacted by the server into blocks of several levels and live self-scraping with native
// histograms; export a 24h window while it runs; restore; serve it with another release; every raw
// sample of the window must be identical.
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
} from "./_prometheus.ts";

interface ExportSummary {
  archive: string;
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

Deno.test("export of a live Prometheus restores to identical raw samples on another release", async () => {
  const newest = await findPrometheus("newest");
  const other = await findPrometheus("middle");
  assert.notEqual(newest.version, other.version);
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
      args: ["--enable-feature=native-histograms"],
    });
    // The server compacts the backfilled 2h blocks about a minute after start.
    await waitFor(
      async () => Math.max(...await blockLevels(dataDir)) >= 3,
      180_000,
      "compaction to level 3",
    );
    await waitFor(
      async () => {
        const data = await source.query(
          "prometheus_http_request_duration_seconds",
          Date.now() / 1000,
        ) as {
          result: { histogram?: unknown }[];
        };
        return data.result.some((s) => s.histogram !== undefined);
      },
      60_000,
      "a native histogram sample",
    );
    // Some seconds of live native histograms in the head.
    await new Promise((resolve) => setTimeout(resolve, 20_000));

    // The incident a few seconds ago, so that every sample up to it is in the WAL already.
    const at = Date.now() - 5_000;
    const archive = `${work}/case.tar.gz`;
    const summary = await runCliJson<ExportSummary>([
      "export",
      dataDir,
      "--at",
      String(at),
      "--before",
      "24h",
      "-o",
      archive,
    ]);
    assert.ok(summary.head.included, "the window reaches into the head");
    assert.ok(summary.blocks.length >= 2, "blocks overlap the window");
    assert.ok(summary.skippedBlocks.length >= 1, "older blocks lie outside the window");

    // Blocks outside the window are not in the archive; the ones inside are (GNU tar as oracle).
    const listing = await tarListing(archive);
    for (const ulid of summary.skippedBlocks) assert.ok(!listing.includes(ulid), `${ulid} shipped`);
    for (const ulid of summary.blocks) assert.ok(listing.includes(`data/${ulid}/index`));
    assert.match(listing, /data\/wal\/\d{8}/);

    const verified = await runCliJson<{ ok: boolean; sidecar: string }>(["verify", archive]);
    assert.equal(verified.ok, true);
    assert.equal(verified.sidecar, "ok");

    const restored = await runCliJson<{ dataDir: string; serveCommand: string[] }>([
      "restore",
      archive,
      "--into",
      `${work}/restored`,
      "--prometheus-bin",
      other.prometheus,
    ]);
    const serveFlags = restored.serveCommand.filter((a) =>
      a.startsWith("--storage.tsdb.retention.time=") || a.startsWith("--enable-feature=")
    );
    assert.ok(serveFlags.some((a) => a.startsWith("--storage.tsdb.retention.time=")));
    await using copy = await startPrometheus({
      bin: other.prometheus,
      dataDir: restored.dataDir,
      args: serveFlags,
    });

    const compared = await assertSameSamples(source, copy, at - 86_400_000, at);
    assert.ok(compared.floats > 4 * 1000, `float samples compared: ${compared.floats}`);
    assert.ok(
      compared.histograms > 10,
      `native histogram samples compared: ${compared.histograms}`,
    );
    console.log(
      `block levels ${(await blockLevels(dataDir)).sort().join(",")}; ` +
        `compared ${compared.series} series, ${compared.floats} float and ` +
        `${compared.histograms} histogram samples ` +
        `(${newest.version} -> ${other.version})`,
    );
  });
});
