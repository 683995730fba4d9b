// Tests of the real-Prometheus harness (tests/_prometheus.ts). They need the releases fetched by
// `bash tools/fetch-prometheus.sh` (which `deno task test` runs first) and fail without them.
import assert from "node:assert/strict";
import {
  backfillOpenMetrics,
  findPrometheus,
  freePort,
  generateOpenMetrics,
  startPrometheus,
  waitFor,
} from "./_prometheus.ts";

interface VectorSample {
  metric: Record<string, string>;
  value?: [number, string];
  histogram?: [number, { count: string; sum: string; buckets?: unknown[] }];
}

function vector(data: unknown): VectorSample[] {
  const d = data as { resultType: string; result: VectorSample[] };
  assert.equal(d.resultType, "vector");
  return d.result;
}

Deno.test("findPrometheus finds all three releases, and fails clearly without them", async () => {
  const oldest = await findPrometheus("oldest");
  const middle = await findPrometheus("middle");
  const newest = await findPrometheus("newest");
  assert.match(oldest.version, /^2\.\d+\.\d+/);
  assert.match(newest.version, /^\d+\.\d+\.\d+/);
  assert.ok(oldest.prometheus.endsWith("/prometheus") && newest.promtool.endsWith("/promtool"));
  const parts = (v: string) => v.split(".").map(Number);
  const [a, b, c] = [oldest, middle, newest].map((r) => parts(r.version));
  assert.ok(a[0] * 1e6 + a[1] * 1e3 + a[2] <= b[0] * 1e6 + b[1] * 1e3 + b[2]);
  assert.ok(b[0] * 1e6 + b[1] * 1e3 + b[2] <= c[0] * 1e6 + c[1] * 1e3 + c[2]);

  const empty = await Deno.makeTempDir();
  const saved = Deno.env.get("PROMCASE_PROMETHEUS_RELEASES");
  try {
    Deno.env.set("PROMCASE_PROMETHEUS_RELEASES", empty);
    // The message names the project's own script, which exists in every clone.
    const err = await findPrometheus("newest").then(() => undefined, (e: Error) => e);
    const script = /run `bash (\S+\/tools\/fetch-prometheus\.sh)`/.exec(err?.message ?? "")?.[1];
    assert.ok(script, `no fetch hint in: ${err?.message}`);
    assert.ok((await Deno.stat(script)).isFile, script);
  } finally {
    if (saved === undefined) Deno.env.delete("PROMCASE_PROMETHEUS_RELEASES");
    else Deno.env.set("PROMCASE_PROMETHEUS_RELEASES", saved);
    await Deno.remove(empty, { recursive: true });
  }
  const port = freePort();
  assert.ok(port > 0 && port < 65536);
});

Deno.test("newest Prometheus self-scrapes native histograms", async () => {
  const { prometheus, version } = await findPrometheus("newest");
  const dataDir = await Deno.makeTempDir({ prefix: "promcase-harness-" });
  try {
    await using server = await startPrometheus({
      bin: prometheus,
      dataDir,
      selfScrapeInterval: "1s",
      args: ["--enable-feature=native-histograms"],
    });
    assert.equal(server.version, version);
    let hist: VectorSample | undefined;
    await waitFor(
      async () => {
        const res = vector(
          await server.query("prometheus_http_request_duration_seconds", Date.now() / 1000),
        );
        hist = res.find((s) => s.histogram !== undefined);
        return hist !== undefined;
      },
      30_000,
      "a native histogram sample of prometheus_http_request_duration_seconds",
    );
    assert.ok(Number(hist!.histogram![1].count) > 0);
    const up = vector(await server.query("up", Date.now() / 1000));
    assert.equal(up.length, 1);
    assert.equal(up[0].value![1], "1");
    await assert.rejects(server.query("up{", Date.now() / 1000), /bad_data/);
    await server.stop();
    await server.stop(); // idempotent
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("oldest promtool backfills two days of generated OpenMetrics into blocks", async () => {
  const { promtool } = await findPrometheus("oldest");
  const outDir = await Deno.makeTempDir({ prefix: "promcase-backfill-" });
  try {
    const hour = 3600_000;
    const start = Math.floor(Date.now() / hour) * hour - 3 * 24 * hour + 1_500; // fractional s
    const end = start + 2 * 24 * hour;
    const text = generateOpenMetrics({ start, end, stepMs: 60_000, series: 4 });
    assert.ok(text.endsWith("# EOF\n"));
    assert.ok(text.includes('room="café"'));
    await backfillOpenMetrics(promtool, text, outDir);
    const metas = [];
    for await (const e of Deno.readDir(outDir)) {
      if (!e.isDirectory) continue;
      metas.push(JSON.parse(await Deno.readTextFile(`${outDir}/${e.name}/meta.json`)));
    }
    assert.ok(metas.length >= 12, `expected 2h blocks for 2 days, got ${metas.length}`);
    const minT = Math.min(...metas.map((m) => m.minTime));
    const maxT = Math.max(...metas.map((m) => m.maxTime));
    assert.equal(minT, start);
    assert.equal(maxT, end + 1);
    // 7 series (4 counters, 2 temperatures, 1 up), one sample per minute each.
    const samples = metas.reduce((n, m) => n + m.stats.numSamples, 0);
    assert.equal(samples, 7 * (2 * 24 * 60 + 1));
    await assert.rejects(backfillOpenMetrics(promtool, "garbage\n", outDir), /failed/);
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});
