// `export --url` against a real Prometheus (backfilled history, live self-scrape with native
// histograms): the archive read over remote read and the archive of the same window read from the
// data dir restore to the same raw samples, and both equal the source server's.
import assert from "node:assert/strict";
import { isOneLineError, runCli, runCliJson } from "./_cli.ts";
import { withTempDir } from "./_files.ts";
import { assertSameSamples } from "./_samples.ts";
import {
  backfillOpenMetrics,
  findPrometheus,
  generateOpenMetrics,
  startPrometheus,
  waitForNativeHistogram,
} from "./_prometheus.ts";

Deno.test("export --url and export DATA_DIR of the same window restore to the same samples", async () => {
  const newest = await findPrometheus("newest");
  const middle = await findPrometheus("middle");
  await withTempDir("promcase-remote-export-", async (work) => {
    const dataDir = `${work}/prometheus`;
    const now = Date.now();
    await backfillOpenMetrics(
      newest.promtool,
      generateOpenMetrics({
        start: now - 10 * 3_600_000,
        end: now - 3 * 3_600_000,
        stepMs: 30_000,
        series: 6,
      }),
      dataDir,
    );
    await using source = await startPrometheus({
      bin: newest.prometheus,
      dataDir,
      selfScrapeInterval: "1s",
      args: ["--enable-feature=native-histograms"],
    });
    await waitForNativeHistogram(source);
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const at = Date.now() - 3_000;
    const common = ["--at", String(at), "--before", "8h", "--no-prometheus-api"];
    const remote = await runCliJson<{ archive: string; source: { kind: string; url: string } }>([
      "export",
      "--url",
      source.url,
      ...common,
      "-o",
      `${work}/remote.tar.gz`,
    ]);
    assert.equal(remote.source.kind, "remote");
    await runCliJson(["export", dataDir, ...common, "-o", `${work}/local.tar.gz`]);

    const served = [];
    for (const name of ["remote", "local"]) {
      const restored = await runCliJson<{ dataDir: string; serveCommand: string[] }>([
        "restore",
        `${work}/${name}.tar.gz`,
        "--into",
        `${work}/${name}`,
        "--prometheus-bin",
        middle.prometheus,
      ]);
      served.push(
        await startPrometheus({
          bin: middle.prometheus,
          dataDir: restored.dataDir,
          args: restored.serveCommand.filter((a) =>
            a.startsWith("--storage.tsdb.retention.time=") || a.startsWith("--enable-feature=")
          ),
        }),
      );
    }
    try {
      const from = at - 8 * 3_600_000;
      const c = await assertSameSamples(served[1], served[0], from, at);
      assert.ok(c.floats > 1000 && c.histograms > 5, JSON.stringify(c));
      await assertSameSamples(source, served[0], from, at);
      console.log(`remote and local archives: ${JSON.stringify(c)}`);
    } finally {
      for (const s of served) await s[Symbol.asyncDispose]();
    }

    // A server that is gone: a one-line error after the retries, no archive.
    const gone = await runCli([
      "export",
      "--url",
      "http://127.0.0.1:9",
      ...common,
      "-o",
      `${work}/gone.tar.gz`,
    ]);
    assert.equal(gone.code, 1, gone.stderr);
    assert.ok(isOneLineError(gone), gone.stderr);
    assert.ok(!(await Array.fromAsync(Deno.readDir(work))).some((e) => e.name.startsWith("gone")));
  });
});
