/**
 * Regenerates the WAL fixtures in this directory with a REAL Prometheus (the newest fetched
 * release, 3.5.3 when written): see README.md here.
 *
 *   usage: deno run -A tests/testdata/wal/generate.ts [NAME...]   (from the project dir; 1-2 min)
 *
 * NAME picks fixtures (zstd, snappy, none); default all.
 *
 * Each fixture is the `wal/` (and for zstd also `chunks_head/`) of a Prometheus that scraped
 * itself every second, with native histograms, custom-bucket conversion of classic histograms,
 * metadata WAL records and recording rules that write float histograms:
 *
 * - `zstd/`: `--storage.tsdb.wal-compression-type=zstd`, 1-minute chunk range
 *   (`--storage.tsdb.min-block-duration=1m`), started so that it runs past a full minute: every
 *   series' first chunk is cut there and m-mapped into `chunks_head/`. Stopped before the head
 *   spans 1.5 minutes, so nothing is compacted and the WAL has no checkpoint.
 * - `snappy/`: the default snappy compression, 5 s after the rules' first results.
 * - `none/`: `--no-storage.tsdb.wal-compression`, a few seconds, plus a rule that copies every
 *   series: its first Series record spans more than two pages (first, middle, last fragments).
 *
 * Each fixture also gets `manifest.json`: the version, the flags and the wall-clock times of the
 * run, which the tests compare the decoded samples with.
 *
 * @module
 */

import { findPrometheus, startPrometheus, waitFor } from "../../_prometheus.ts";

const here = new URL(".", import.meta.url).pathname;

const rules = `groups:
  - name: promcase
    interval: 1s
    rules:
      # Sums of native histograms are float histograms (WAL record type 8).
      - record: promcase:http_request_duration_seconds:sum
        expr: sum by (handler) (prometheus_http_request_duration_seconds)
      # Sums of custom-bucket histograms are float NHCB (record type 10).
      - record: promcase:http_response_size_bytes:sum
        expr: sum by (handler) (prometheus_http_response_size_bytes)
`;

// For the uncompressed fixture: one rule that copies every scraped series with a 200-byte extra
// label, so that its first evaluation logs a Series record of more than two pages (first, middle
// and last fragments).
const pad = "promcase WAL fixture padding. ".repeat(7).slice(0, 200);
const bigRule = `      - record: promcase:copy
        expr: >-
          label_replace(
            label_replace({__name__=~".+",__name__!~"promcase:.*"}, "orig", "$1", "__name__", "(.+)"),
            "pad", "${pad}", "", "")
`;

function config(rulesFile: string): string {
  return `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: ["${rulesFile}"]
scrape_configs:
  - job_name: prometheus
    convert_classic_histograms_to_nhcb: true
    static_configs:
      - targets: ["127.0.0.1:{{port}}"]
`;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Fixture {
  name: string;
  compression: "zstd" | "snappy" | "none";
  /** Run until this many ms after the first full minute past the start (or for `runMs`). */
  pastMinuteMs?: number;
  runMs?: number;
  copy: string[];
  /** Adds {@link bigRule}. */
  bigRecords?: boolean;
}

const fixtures: Fixture[] = [
  { name: "zstd", compression: "zstd", pastMinuteMs: 6_000, copy: ["wal", "chunks_head"] },
  { name: "snappy", compression: "snappy", runMs: 5_000, copy: ["wal"] },
  { name: "none", compression: "none", runMs: 1_500, copy: ["wal"], bigRecords: true },
];

const bins = await findPrometheus("newest");
const tmp = await Deno.makeTempDir({ prefix: "promcase-walfix-" });
try {
  for (const fx of fixtures.filter((f) => Deno.args.length === 0 || Deno.args.includes(f.name))) {
    const rulesFile = `${tmp}/rules-${fx.name}.yml`;
    const fxRules = rules + (fx.bigRecords ? bigRule : "");
    await Deno.writeTextFile(rulesFile, fxRules);
    const dataDir = `${tmp}/${fx.name}`;
    await Deno.mkdir(dataDir);
    if (fx.pastMinuteMs !== undefined) {
      // Start 20 s before a full minute (so the run crosses exactly one chunk boundary).
      const s = new Date().getSeconds();
      if (s < 38 || s > 42) await sleep((((40 - s) % 60 + 60) % 60) * 1000);
    }
    const args = [
      fx.compression === "none"
        ? "--no-storage.tsdb.wal-compression"
        : `--storage.tsdb.wal-compression-type=${fx.compression}`,
      "--enable-feature=native-histograms,metadata-wal-records",
      "--storage.tsdb.min-block-duration=1m",
      "--storage.tsdb.max-block-duration=1m",
    ];
    const startMs = Date.now();
    const server = await startPrometheus({
      bin: bins.prometheus,
      dataDir,
      config: config(rulesFile),
      args,
    });
    // Wait until the rules have written their first results (so every record type is there).
    const wanted = fx.bigRecords ? "promcase:copy" : "promcase:http_response_size_bytes:sum";
    await waitFor(async () => {
      const r = await server.query(`count(${wanted})`, Date.now() / 1000) as { result: unknown[] };
      return r.result.length > 0;
    }, 60_000, `${wanted} in ${fx.name}`);
    const runUntil = fx.pastMinuteMs !== undefined
      ? (Math.floor(startMs / 60_000) + 1) * 60_000 + fx.pastMinuteMs
      : Date.now() + (fx.runMs ?? 5_000);
    await sleep(Math.max(0, runUntil - Date.now()));
    await server.stop();
    const stopMs = Date.now();
    // A clean shutdown releases the lock file.
    if (await Deno.stat(`${dataDir}/lock`).then(() => true, () => false)) {
      throw new Error(`${fx.name}: unclean shutdown (lock file left)`);
    }

    const out = `${here}${fx.name}`;
    await Deno.remove(out, { recursive: true }).catch(() => {});
    await Deno.mkdir(out, { recursive: true });
    for (const sub of fx.copy) {
      const cp = await new Deno.Command("cp", { args: ["-a", `${dataDir}/${sub}`, `${out}/`] })
        .output();
      if (!cp.success) throw new Error(`cp ${sub} failed`);
    }
    const manifest = {
      prometheus: server.version,
      args,
      config: config("rules.yml"),
      rules: fxRules,
      startMs,
      stopMs,
      generated: new Date().toISOString(),
    };
    await Deno.writeTextFile(`${out}/manifest.json`, JSON.stringify(manifest, null, 2) + "\n");
    console.error(`${fx.name}: Prometheus ${server.version}, ${(stopMs - startMs) / 1000} s`);
  }
} finally {
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
}
