// The lead-in checked against a real Prometheus: `rate(x[5m])` one minute into the window answers
// the same on the source and on the restored archive, for a window that starts in a block and one
// that starts in the head (WAL), and for an export over the network (--url). The test's own control: with `--lead-in 0` the same query on the
// restored archive answers differently (rate extrapolates from the one minute it finds). A rule of
// `increase(x[40m])` in a dashboard file raises the lead-in to 40m, and that query is right too.
import assert from "node:assert/strict";
import { runCliJson } from "./_cli.ts";
import { copyTree, withTempDir } from "./_files.ts";
import {
  backfillOpenMetrics,
  findPrometheus,
  generateOpenMetrics,
  type PrometheusServer,
  startPrometheus,
} from "./_prometheus.ts";
import { writeHeadWal } from "./_head_gen.ts";
import type { Manifest } from "../mod/archive/manifest.ts";

const MIN = 60_000;
const HOUR = 60 * MIN;

/** An instant query's result as sorted `labels -> value` pairs. */
async function instant(server: PrometheusServer, expr: string, ms: number): Promise<string[]> {
  const data = await server.query(expr, ms / 1000) as {
    result: { metric: Record<string, string>; value: [number, string] }[];
  };
  return data.result.map((s) => `${JSON.stringify(s.metric)} ${s.value[1]}`).sort();
}

Deno.test("a lead-in makes rate(x[5m]) one minute into the window equal on the source and the restored archive", async () => {
  const bin = await findPrometheus("oldest");
  await withTempDir("promcase-leadin-", async (work) => {
    // A block of counters and gauges every 15s over [T0, T0+2h), then a head (WAL) with counters
    // and gauges every 15s over [T0+2h, T0+3h).
    const T0 = Math.floor((Date.now() - 24 * HOUR) / (2 * HOUR)) * 2 * HOUR;
    const data = `${work}/data`;
    await Deno.mkdir(data);
    const text = generateOpenMetrics({
      start: T0,
      end: T0 + 2 * HOUR - 1,
      stepMs: 15_000,
      series: 3,
    });
    await backfillOpenMetrics(bin.promtool, text, data);
    await writeHeadWal(data, {
      series: 30,
      metrics: 6,
      scrapes: 240,
      start: T0 + 2 * HOUR,
      histogramEvery: 0,
      seed: 7,
    });
    const dashboard = `${work}/long.json`;
    await Deno.writeTextFile(
      dashboard,
      JSON.stringify({
        title: "long",
        panels: [{ targets: [{ expr: "increase(promcase_requests_total[40m])" }] }],
      }),
    );

    /**
     * Exports (from the data dir, or what `from` names: `--url URL`), restores and serves one
     * window; returns the server and the manifest.
     */
    const serve = async (name: string, from: number, extra: string[], what = [data]) => {
      const summary = await runCliJson<{ leadIn: { ms: number } }>([
        "export",
        ...what,
        "--from",
        String(from),
        "--to",
        String(from + 20 * MIN),
        "-o",
        `${work}/${name}.tar.gz`,
        "--no-prometheus-api",
        ...extra,
      ]);
      const restored = await runCliJson<{ dataDir: string; serveCommand: string[] }>([
        "restore",
        `${work}/${name}.tar.gz`,
        "--into",
        `${work}/${name}`,
        "--prometheus-bin",
        bin.prometheus,
      ]);
      const manifest = JSON.parse(
        await Deno.readTextFile(`${work}/${name}/manifest.json`),
      ) as Manifest;
      const server = await startPrometheus({
        bin: bin.prometheus,
        dataDir: restored.dataDir,
        args: restored.serveCommand.filter((a) => a.startsWith("--storage.tsdb.retention.time=")),
      });
      return { server, manifest, leadInMs: summary.leadIn.ms };
    };

    // The source is served from a copy: Prometheus writes into the dir it serves.
    await copyTree(data, `${work}/source`);
    await using source = await startPrometheus({
      bin: bin.prometheus,
      dataDir: `${work}/source`,
      args: ["--storage.tsdb.retention.time=3650d"],
    });
    const rate = `rate({__name__=~"promcase_requests_total|gen_metric_.*"}[5m])`;

    const windows: [string, number][] = [
      ["a block", T0 + HOUR + 7_000],
      ["the head", T0 + 2 * HOUR + 30 * MIN],
    ];
    for (const [where, from] of windows) {
      const at = from + MIN;
      const want = await instant(source, rate, at);
      assert.ok(want.length >= 3, `${where}: the source answers ${want.length} series`);

      // Default lead-in (15m), or raised to 40m by the dashboard file's increase(x[40m]).
      const raised = where === "a block";
      const withLead = await serve(
        `lead-${raised ? "raised" : "default"}`,
        from,
        raised ? ["--dashboard-file", dashboard] : [],
      );
      try {
        const leadIn = (raised ? 40 : 15) * MIN;
        assert.equal(withLead.leadInMs, leadIn);
        // The manifest keeps the incident window (what view opens dashboards on) apart from the
        // shipped range, and the block starts at the shipped range.
        assert.equal(withLead.manifest.window.fromMs, from);
        assert.equal(withLead.manifest.window.toMs, from + 20 * MIN);
        assert.equal(withLead.manifest.shipped?.fromMs, from - leadIn);
        assert.equal(withLead.manifest.shipped?.leadInMs, leadIn);
        assert.equal(withLead.manifest.blocks[0].minTime, from - leadIn);
        assert.deepEqual(await instant(withLead.server, rate, at), want, where);
        if (raised) {
          const increase = "increase(promcase_requests_total[40m])";
          const wantIncrease = await instant(source, increase, at);
          assert.equal(wantIncrease.length, 3);
          assert.deepEqual(await instant(withLead.server, increase, at), wantIncrease);
        }
      } finally {
        await withLead.server.stop();
      }

      // Over the network (--url): the lead-in is read by remote read too.
      if (raised) {
        const remote = await serve("remote", from, [], ["--url", source.url]);
        try {
          assert.equal(remote.manifest.source.kind, "remote");
          assert.equal(remote.leadInMs, 15 * MIN);
          assert.equal(remote.manifest.shipped?.fromMs, from - 15 * MIN);
          assert.deepEqual(await instant(remote.server, rate, at), want, `${where}, --url`);
        } finally {
          await remote.server.stop();
        }
      }

      // The control: without a lead-in, the same query answers differently.
      const bare = await serve(`bare-${raised ? "block" : "head"}`, from, ["--lead-in", "0"]);
      try {
        assert.equal(bare.leadInMs, 0);
        assert.equal(bare.manifest.shipped?.fromMs, from);
        const got = await instant(bare.server, rate, at);
        assert.equal(got.length, want.length, `${where}: the same series answer`);
        assert.notDeepEqual(got, want, `${where}: without a lead-in rate() must differ`);
      } finally {
        await bare.server.stop();
      }
    }
  });
});
