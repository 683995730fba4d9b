// The committed data dir (blocks of two levels, a WAL with a checkpoint, chunks_head/) exported,
// restored and served by real Prometheus releases answers exactly like the original dir served by
// the same release. A window that leaves old blocks out ships none of them.
import assert from "node:assert/strict";
import { runCliJson } from "./_cli.ts";
import { findPrometheus, startPrometheus } from "./_prometheus.ts";
import { assertSameSamples } from "./_samples.ts";
import { copyTree, TEST_DATADIR, withTempDir } from "./_files.ts";

const DATADIR = TEST_DATADIR;

interface Inspect {
  blocks: { ulid: string; minTimeMs: number; maxTimeMs: number }[];
}

const CASES = [["oldest", "rewrite"], ["newest", "rewrite"], ["oldest", "raw"]] as const;

for (const [release, mode] of CASES) {
  Deno.test(`restored test data (${mode}) served by the ${release} Prometheus equals the original`, async () => {
    const { prometheus, version } = await findPrometheus(release);
    await withTempDir("promcase-serve-", async (work) => {
      const info = await runCliJson<Inspect>(["inspect", DATADIR]);
      const blocks = info.blocks.toSorted((a, b) => a.minTimeMs - b.minTimeMs);
      const newest = blocks[blocks.length - 1];
      // From inside the second block to well past the head: the first block stays out.
      const from = blocks[1].minTimeMs + 1;
      const to = newest.maxTimeMs + 3_600_000;
      const summary = await runCliJson<{ blocks: string[]; skippedBlocks: string[] }>([
        "export",
        DATADIR,
        "--from",
        String(from),
        "--to",
        String(to),
        "-o",
        `${work}/a.tar.gz`,
        ...(mode === "raw" ? ["--raw"] : []),
      ]);
      assert.ok(summary.skippedBlocks.includes(blocks[0].ulid));
      assert.ok(!summary.blocks.includes(blocks[0].ulid));
      const restored = await runCliJson<{ dataDir: string; serveCommand: string[] }>([
        "restore",
        `${work}/a.tar.gz`,
        "--into",
        `${work}/restored`,
        "--prometheus-bin",
        prometheus,
      ]);
      const flags = restored.serveCommand.filter((a) =>
        a.startsWith("--storage.tsdb.retention.time=") || a.startsWith("--enable-feature=")
      );
      await copyTree(DATADIR, `${work}/original`);
      await using original = await startPrometheus({
        bin: prometheus,
        dataDir: `${work}/original`,
        args: flags,
      });
      await using copy = await startPrometheus({
        bin: prometheus,
        dataDir: restored.dataDir,
        args: flags,
      });
      const compared = await assertSameSamples(original, copy, from, to);
      assert.ok(compared.series > 10, `series compared: ${compared.series}`);
      assert.ok(compared.floats > 1000, `samples compared: ${compared.floats}`);
      // Samples newer than every block come from the WAL and checkpoint replay.
      const headOnly = await assertSameSamples(original, copy, newest.maxTimeMs, to);
      assert.ok(headOnly.floats > 100, `head samples compared: ${headOnly.floats}`);
      console.log(`Prometheus ${version}: ${JSON.stringify(compared)}; head: ${headOnly.floats}`);
    });
  });
}
