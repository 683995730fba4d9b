/**
 * Builds a real Prometheus data dir at high cardinality for `bench/highcard_bench.sh`: a real
 * Prometheus (the newest fetched release, 3.5.3) scrapes one target (`tests/_scrape_target.ts`) of
 * `--series` series over `--metrics` metric names, values random walks with three decimals that
 * change on every scrape, every `--interval` for `--minutes`; then the target stops (the next,
 * failed scrape writes a stale marker for every series) and Prometheus shuts down. The result is a
 * head only: WAL segments and `chunks_head/` (head chunks memory-mapped once 120 samples full).
 *
 * A marker file `DIR.complete` (the layout and the summary) makes a later run with the same
 * layout reuse the dir. The summary (JSON) goes to stdout: `endMs` (after the stale markers: the
 * `--at` to export), `firstSampleMs`, scrapes served and failed, the slowest body build and
 * Prometheus' peak RSS.
 *
 * `--native-histograms` adds what the e2e tests use to get native histograms into a real
 * Prometheus (which ingests them only from the protobuf format): Prometheus runs with
 * `--enable-feature=native-histograms` and scrapes itself at the same interval, so its own
 * `prometheus_http_request_duration_seconds` and friends are stored as native histograms (a few
 * dozen series, never stale-marked: Prometheus stops scraping itself without one).
 *
 * Every wait is bounded (the scraping by `--minutes`, each later step by a few intervals);
 * SIGINT/SIGTERM, errors and the end stop the target and Prometheus. With `--pid-file FILE`,
 * Prometheus' pid is written there while it runs, so a calling script can kill it should this
 * process die.
 *
 * Memory: the target holds ~75 bytes a series and builds one body per scrape (~60 bytes a
 * series); Prometheus' own memory grows with the series (a few KiB each).
 *
 * Usage: deno run -A bench/highcard_datadir.ts DIR [--series 200000] [--metrics 100]
 *          [--minutes 10] [--interval 5] [--seed 1] [--native-histograms] [--pid-file FILE]
 *
 * @module
 */

import { findPrometheus, startPrometheus } from "../tests/_prometheus.ts";
import { startScrapeTarget } from "../tests/_scrape_target.ts";

/** Bumped whenever the output for the same options changes. */
const BUILDER_VERSION = 1;

/** Everything that decides the output; a change makes the next run rebuild the dir. */
interface _Layout {
  builder: number;
  series: number;
  metrics: number;
  minutes: number;
  intervalSeconds: number;
  seed: number;
  prometheus: string;
  /** Set by `--native-histograms`. */
  nativeHistograms?: true;
}

interface _Summary {
  dir: string;
  layout: _Layout;
  /** First scrape's time (ms, the target's clock: Prometheus stamps it at most a few ms later). */
  firstSampleMs: number;
  /** A time after every stale marker: the export's `--at`. */
  endMs: number;
  scrapesServed: number;
  /** Scrapes Prometheus recorded as failed (`up == 0`) while the target ran. */
  scrapesFailed: number;
  maxBodyBuildMs: number;
  prometheusPeakRssMiB: number | null;
  bytes: number;
  generationSeconds: number;
}

const _sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });

/** Peak RSS of a process in MiB (VmHWM), or null when /proc cannot tell. */
async function _peakRssMiB(pid: number): Promise<number | null> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
    return kb ? Math.round(Number(kb) / 1024) : null;
  } catch {
    return null;
  }
}

async function _duBytes(path: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(path)) {
    const p = `${path}/${e.name}`;
    if (e.isDirectory) total += await _duBytes(p);
    else if (e.isFile) total += (await Deno.stat(p)).size;
  }
  return total;
}

function _log(text: string): void {
  console.error(`highcard_datadir: ${text}`);
}

async function _build(
  dir: string,
  layout: _Layout,
  pidFile: string | undefined,
): Promise<_Summary> {
  const started = performance.now();
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, onSignal);
  const intervalMs = layout.intervalSeconds * 1000;
  const bin = await findPrometheus("newest");
  const target = startScrapeTarget({
    series: layout.series,
    metrics: layout.metrics,
    seed: layout.seed,
  });
  let prometheus: Awaited<ReturnType<typeof startPrometheus>> | undefined;
  try {
    _log(`target ${target.url} (${layout.series} series); starting Prometheus ${bin.version}`);
    prometheus = await startPrometheus({
      bin: bin.prometheus,
      dataDir: dir,
      config: [
        "global:",
        `  scrape_interval: ${layout.intervalSeconds}s`,
        `  scrape_timeout: ${layout.intervalSeconds}s`,
        "scrape_configs:",
        "  - job_name: highcard",
        "    static_configs:",
        `      - targets: ["${target.address}"]`,
        ...(layout.nativeHistograms
          ? [
            "  - job_name: prometheus",
            "    static_configs:",
            '      - targets: ["127.0.0.1:{{port}}"]',
          ]
          : []),
        "",
      ].join("\n"),
      args: layout.nativeHistograms ? ["--enable-feature=native-histograms"] : [],
    });
    if (pidFile) await Deno.writeTextFile(pidFile, `${prometheus.pid}\n`);
    const server = prometheus;
    const up = async (expr: string) => {
      const data = await server.query(expr, Date.now() / 1000) as {
        result: { value: [number, string] }[];
      };
      return data.result.map((r) => Number(r.value[1]));
    };

    // The first scrape starts the clock.
    const firstDeadline = Date.now() + 2 * intervalMs + 30_000;
    while (target.exposition.scrapes === 0 && !abort.signal.aborted) {
      if (Date.now() > firstDeadline) throw new Error("Prometheus did not scrape the target");
      await _sleep(100, abort.signal);
    }
    const firstSampleMs = Date.now();
    const stopAt = firstSampleMs + layout.minutes * 60_000;
    while (Date.now() < stopAt && !abort.signal.aborted) {
      await _sleep(Math.min(30_000, stopAt - Date.now()), abort.signal);
      _log(
        `${((Date.now() - firstSampleMs) / 60_000).toFixed(1)}/${layout.minutes} min: ` +
          `${target.exposition.scrapes} scrapes, body ${target.lastBuildMs.toFixed(0)} ms ` +
          `(max ${target.maxBuildMs.toFixed(0)}), Prometheus RSS peak ` +
          `${await _peakRssMiB(server.pid)} MiB`,
      );
    }
    if (abort.signal.aborted) throw new Error("interrupted");
    const window = `${Math.ceil((Date.now() - firstSampleMs) / 1000) + layout.intervalSeconds}s`;
    const [failed] = await up(
      `count_over_time((up{job="highcard"} == 0)[${window}:${layout.intervalSeconds}s])`,
    ).catch(() => [0]);

    // Stop the target: the next scrape fails and stale-marks every series, with up=0.
    await target.stop();
    const scrapesServed = target.exposition.scrapes;
    _log(`target stopped after ${scrapesServed} scrapes; waiting for the failed scrape`);
    const staleDeadline = Date.now() + 3 * intervalMs + 30_000;
    for (;;) {
      if (abort.signal.aborted) throw new Error("interrupted");
      if ((await up('up{job="highcard"}')).includes(0)) break;
      if (Date.now() > staleDeadline) throw new Error("no failed scrape after the target stopped");
      await _sleep(250, abort.signal);
    }
    const endMs = Date.now();
    const prometheusPeakRssMiB = await _peakRssMiB(server.pid);
    await server.stop();
    return {
      dir,
      layout,
      firstSampleMs,
      endMs,
      scrapesServed,
      scrapesFailed: failed ?? 0,
      maxBodyBuildMs: Math.round(target.maxBuildMs),
      prometheusPeakRssMiB,
      bytes: await _duBytes(dir),
      generationSeconds: Math.round((performance.now() - started) / 100) / 10,
    };
  } catch (e) {
    if (prometheus && !abort.signal.aborted) {
      _log(`Prometheus log tail:\n${await prometheus.logTail(20)}`);
    }
    throw e;
  } finally {
    await target.stop();
    await prometheus?.stop();
    if (pidFile) await Deno.remove(pidFile).catch(() => {});
    for (const s of ["SIGINT", "SIGTERM"] as const) Deno.removeSignalListener(s, onSignal);
  }
}

const USAGE = "usage: highcard_datadir.ts DIR [--series 200000] [--metrics 100] [--minutes 10] " +
  "[--interval 5] [--seed 1] [--native-histograms] [--pid-file FILE]";

async function main(args: string[]): Promise<number> {
  let dir: string | undefined;
  const opts: Record<string, string> = {};
  let nativeHistograms = false;
  for (let i = 0; i < args.length; i++) {
    const m = /^--(series|metrics|minutes|interval|seed|pid-file)(?:=(.*))?$/.exec(args[i]);
    if (args[i] === "--native-histograms") {
      nativeHistograms = true;
    } else if (m) {
      const v = m[2] ?? args[++i];
      if (v === undefined) return _usage();
      opts[m[1]] = v;
    } else if (!args[i].startsWith("-") && dir === undefined) {
      dir = args[i].replace(/\/+$/, "");
    } else {
      return _usage();
    }
  }
  if (dir === undefined) return _usage();
  const bin = await findPrometheus("newest");
  const layout: _Layout = {
    builder: BUILDER_VERSION,
    series: Number(opts.series ?? 200_000),
    metrics: Number(opts.metrics ?? 100),
    minutes: Number(opts.minutes ?? 10),
    intervalSeconds: Number(opts.interval ?? 5),
    seed: Number(opts.seed ?? 1),
    prometheus: bin.version,
  };
  if (nativeHistograms) layout.nativeHistograms = true;
  const ok = (n: number, max: number) => Number.isFinite(n) && n > 0 && n <= max;
  if (
    !ok(layout.series, 20_000_000) || !ok(layout.metrics, layout.series) ||
    !ok(layout.minutes, 24 * 60) || !ok(layout.intervalSeconds, 3600) ||
    !Number.isInteger(layout.seed)
  ) {
    return _usage();
  }
  const marker = `${dir}.complete`;
  const existing = await Deno.readTextFile(marker).then(JSON.parse).catch(() => null) as
    | _Summary
    | null;
  if (existing && JSON.stringify(existing.layout) === JSON.stringify(layout)) {
    _log(`reusing ${dir}`);
    console.log(JSON.stringify(existing, null, 2));
    return 0;
  }
  await Deno.remove(marker).catch(() => {});
  await Deno.remove(dir, { recursive: true }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
  await Deno.mkdir(dir, { recursive: true });
  let summary: _Summary;
  try {
    summary = await _build(dir, layout, opts["pid-file"]);
  } catch (e) {
    _log(`failed: ${e instanceof Error ? e.message : e}`);
    return 1;
  }
  const text = JSON.stringify(summary, null, 2);
  await Deno.writeTextFile(marker, `${text}\n`);
  _log(
    `wrote ${(summary.bytes / 1048576).toFixed(0)} MiB to ${dir} in ${summary.generationSeconds}s`,
  );
  console.log(text);
  return 0;
}

function _usage(): number {
  console.error(USAGE);
  return 2;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
