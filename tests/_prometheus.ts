/**
 * Test harness for running real Prometheus and promtool binaries (used by the e2e tests).
 *
 * The releases are the ones unpacked by the project's `bash tools/fetch-prometheus.sh` (Debian's
 * archive where apt is configured, else the upstream release tarballs). `deno task test` runs it
 * first; a test run without it (`deno test tests/x_test.ts`) runs it on the first release that is
 * missing. Tests that need a release FAIL (not skip) when it cannot be had.
 *
 * @module
 */

import { compareVersions } from "../mod/prometheus.ts";

/** Which of the fetched releases to use: bookworm (oldest), trixie (middle) or sid (newest). */
export type PrometheusRelease = "oldest" | "middle" | "newest";

/** Paths of one Prometheus release. */
export interface PrometheusBinaries {
  /** Version, e.g. "2.42.0". */
  version: string;
  /** Absolute path of the `prometheus` binary. */
  prometheus: string;
  /** Absolute path of the `promtool` binary. */
  promtool: string;
}

const SUITES: Record<PrometheusRelease, string> = {
  oldest: "bookworm",
  middle: "trixie",
  newest: "sid",
};

const FETCH_SCRIPT = new URL("../tools/fetch-prometheus.sh", import.meta.url).pathname;
const FETCH_HINT = `run \`bash ${FETCH_SCRIPT}\` (it says why it could not fetch them)`;

/** Directory holding the unpacked releases (the fetch script's DEST). */
function releasesDir(): string {
  const env = Deno.env.get("PROMCASE_PROMETHEUS_RELEASES");
  if (env) return env;
  const cache = Deno.env.get("XDG_CACHE_HOME") || `${Deno.env.get("HOME") ?? ""}/.cache`;
  return `${cache}/prometheus-releases`;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** Release directory for `which`: the suite symlink, or else the n-th version dir by version. */
async function releaseDir(root: string, which: PrometheusRelease): Promise<string | undefined> {
  const link = `${root}/${SUITES[which]}`;
  if (await isFile(`${link}/usr/bin/prometheus`)) return await Deno.realPath(link);
  const versions: string[] = [];
  try {
    for await (const e of Deno.readDir(root)) {
      if (/^\d+\.\d+/.test(e.name) && await isFile(`${root}/${e.name}/usr/bin/prometheus`)) {
        versions.push(e.name);
      }
    }
  } catch {
    return undefined;
  }
  if (versions.length === 0) return undefined;
  versions.sort(compareVersions);
  const i = which === "oldest"
    ? 0
    : which === "newest"
    ? versions.length - 1
    : Math.floor((versions.length - 1) / 2);
  return await Deno.realPath(`${root}/${versions[i]}`);
}

/**
 * Finds the `prometheus` and `promtool` binaries of one fetched release, in
 * `$PROMCASE_PROMETHEUS_RELEASES` or `${XDG_CACHE_HOME:-$HOME/.cache}/prometheus-releases`.
 * Throws (telling how to fetch them) when they are missing.
 */
export async function findPrometheus(which: PrometheusRelease): Promise<PrometheusBinaries> {
  const root = releasesDir();
  let dir = await releaseDir(root, which);
  if (!dir && !Deno.env.get("PROMCASE_PROMETHEUS_RELEASES")) {
    await fetchReleasesOnce();
    dir = await releaseDir(root, which);
  }
  const prometheus = `${dir}/usr/bin/prometheus`;
  const promtool = `${dir}/usr/bin/promtool`;
  if (!dir || !(await isFile(prometheus)) || !(await isFile(promtool))) {
    throw new Error(
      `Prometheus release "${which}" (${SUITES[which]}) not found in ${root}: ${FETCH_HINT}, ` +
        `or point PROMCASE_PROMETHEUS_RELEASES at its DEST directory`,
    );
  }
  let version = dir.split("/").pop() ?? "";
  if (!/^\d+\.\d+\.\d+/.test(version)) {
    const out = await new Deno.Command(prometheus, { args: ["--version"], stderr: "piped" })
      .output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    version = /version (\d+\.\d+\.\d+)/.exec(text)?.[1] ?? "unknown";
  }
  return { version, prometheus, promtool };
}

let fetching: Promise<void> | undefined;

/**
 * Runs the project's fetch script (once per test process) so that a test run works on a fresh
 * machine; its stderr is printed when it fails, and `findPrometheus` then throws.
 */
function fetchReleasesOnce(): Promise<void> {
  fetching ??= (async () => {
    const out = await new Deno.Command("bash", {
      args: [FETCH_SCRIPT],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    if (!out.success) console.error(new TextDecoder().decode(out.stderr));
  })();
  return fetching;
}

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Options of {@link startPrometheus}. */
export interface StartOptions {
  /** The `prometheus` binary. */
  bin: string;
  /** Storage directory (`--storage.tsdb.path`). */
  dataDir: string;
  /**
   * Prometheus YAML configuration; `{{port}}` is replaced by the listen port. Default: no
   * scrape targets (or a self-scrape when `selfScrapeInterval` is set).
   */
  config?: string;
  /** Extra command-line arguments. */
  args?: string[];
  /** If set (e.g. "1s"), the generated config scrapes Prometheus itself at this interval. */
  selfScrapeInterval?: string;
  /** How long to wait for `/-/ready` (default 60 000 ms). */
  readyTimeoutMs?: number;
}

/** A running Prometheus server, see {@link startPrometheus}. */
export interface PrometheusServer extends AsyncDisposable {
  /** Base URL, e.g. "http://127.0.0.1:45678". */
  url: string;
  /** Listen port on 127.0.0.1. */
  port: number;
  /** Version reported by `/api/v1/status/buildinfo`, e.g. "3.5.3". */
  version: string;
  /** Process id. */
  pid: number;
  /** File receiving the server's stdout and stderr (deleted by `stop`). */
  logFile: string;
  /** The last `lines` lines of the log. */
  logTail(lines?: number): Promise<string>;
  /** Instant query (GET /api/v1/query); returns the response's `data`, throws on errors. */
  query(expr: string, time: string | number): Promise<unknown>;
  /** GET on an API path (e.g. "/api/v1/status/tsdb"); returns `data`, throws on errors. */
  api(path: string, params?: Record<string, string>): Promise<unknown>;
  /** SIGTERM, wait up to 20 s, then SIGKILL; removes the temp files. Idempotent. */
  stop(): Promise<void>;
}

async function readTail(path: string, lines: number): Promise<string> {
  try {
    const text = await Deno.readTextFile(path);
    return text.split("\n").slice(-lines - 1).join("\n");
  } catch (e) {
    return `(no log: ${e})`;
  }
}

/** fetch with a timeout that leaves no timer behind. */
async function fetchWithTimeout(url: string, timeoutMs: number): Promise<Response> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    return await fetch(url, { signal: ctl.signal });
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Calls the Prometheus HTTP API and returns `data`; throws with the error text otherwise. */
async function apiGet(base: string, path: string, params: Record<string, string> = {}) {
  const url = `${base}${path}?${new URLSearchParams(params)}`;
  const res = await fetchWithTimeout(url, 30_000);
  const text = await res.text();
  let body: { status?: string; data?: unknown; errorType?: string; error?: string };
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`GET ${url}: HTTP ${res.status}: ${text.slice(0, 500)}`);
  }
  if (body.status !== "success") {
    throw new Error(`GET ${url}: ${body.errorType ?? res.status}: ${body.error ?? text}`);
  }
  return body.data;
}

function defaultConfig(selfScrapeInterval?: string): string {
  if (!selfScrapeInterval) return "global:\n  evaluation_interval: 1m\nscrape_configs: []\n";
  return [
    "global:",
    `  scrape_interval: ${selfScrapeInterval}`,
    `  scrape_timeout: ${selfScrapeInterval}`,
    "scrape_configs:",
    "  - job_name: prometheus",
    "    static_configs:",
    '      - targets: ["127.0.0.1:{{port}}"]',
    "",
  ].join("\n");
}

/**
 * Starts Prometheus on a free loopback port with the given storage dir and config, waits until
 * `/-/ready` answers 200 (fails with the log tail otherwise) and returns a handle; stop it with
 * `stop()` or `await using`.
 */
export async function startPrometheus(opts: StartOptions): Promise<PrometheusServer> {
  if (opts.config !== undefined && opts.selfScrapeInterval !== undefined) {
    throw new Error("startPrometheus: give either config or selfScrapeInterval, not both");
  }
  const tmp = await Deno.makeTempDir({ prefix: "promcase-prometheus-" });
  try {
    for (let attempt = 1;; attempt++) {
      try {
        return await startOnce(opts, tmp);
      } catch (e) {
        // Another process may have taken the port between freePort() and the bind: retry.
        if (attempt < 3 && e instanceof Error && /address already in use/.test(e.message)) {
          continue;
        }
        throw e;
      }
    }
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}

async function startOnce(opts: StartOptions, tmp: string): Promise<PrometheusServer> {
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const configFile = `${tmp}/prometheus.yml`;
  const logFile = `${tmp}/prometheus.log`;
  const config = (opts.config ?? defaultConfig(opts.selfScrapeInterval))
    .replaceAll("{{port}}", String(port));
  await Deno.writeTextFile(configFile, config);
  const args = [
    `--web.listen-address=127.0.0.1:${port}`,
    `--storage.tsdb.path=${opts.dataDir}`,
    `--config.file=${configFile}`,
    ...(opts.args ?? []),
  ];
  // sh only redirects the output into the log file and then execs Prometheus (same pid).
  const child = new Deno.Command("/bin/sh", {
    args: ["-c", 'log=$1; shift; exec "$@" >"$log" 2>&1', "sh", logFile, opts.bin, ...args],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then((s) => (exited = s));

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!exited) {
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timedOut = await Promise.race([
          status.then(() => false),
          new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), 20_000))),
        ]);
        clearTimeout(timer);
        if (timedOut) {
          try {
            child.kill("SIGKILL");
          } catch { /* already gone */ }
        }
      }
      await status;
    })();
    return stopping;
  };

  const failStart = async (why: string): Promise<never> => {
    await stop();
    const tail = await readTail(logFile, 30);
    throw new Error(`Prometheus ${opts.bin} ${why}; log tail:\n${tail}`);
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (exited) await failStart(`exited with code ${exited.code} before getting ready`);
    try {
      const res = await fetchWithTimeout(`${url}/-/ready`, 2_000);
      await res.body?.cancel();
      if (res.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      await failStart(`not ready after ${opts.readyTimeoutMs ?? 60_000} ms`);
    }
    await sleep(100);
  }

  let version = "unknown";
  try {
    const info = await apiGet(url, "/api/v1/status/buildinfo") as { version?: string };
    version = info.version?.replace(/\+.*$/, "") ?? version;
  } catch (e) {
    await failStart(`buildinfo failed: ${e}`);
  }

  const server: PrometheusServer = {
    url,
    port,
    version,
    pid: child.pid,
    logFile,
    logTail: (lines = 30) => readTail(logFile, lines),
    query: (expr, time) => apiGet(url, "/api/v1/query", { query: expr, time: String(time) }),
    api: (path, params) => apiGet(url, path, params),
    stop: async () => {
      await stop();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    },
    [Symbol.asyncDispose]: () => server.stop(),
  };
  return server;
}

async function runChecked(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const stderr = new TextDecoder().decode(out.stderr);
    throw new Error(`${cmd} ${args.join(" ")} failed (code ${out.code}):\n${stderr}${stdout}`);
  }
  return stdout;
}

/**
 * Backfills OpenMetrics text into blocks in `outDir` with
 * `promtool tsdb create-blocks-from openmetrics` (optionally `--max-block-duration`).
 * Returns promtool's stdout; throws with its stderr on failure.
 */
export async function backfillOpenMetrics(
  promtool: string,
  text: string,
  outDir: string,
  maxBlockDuration?: string,
): Promise<string> {
  const file = await Deno.makeTempFile({ prefix: "promcase-openmetrics-", suffix: ".txt" });
  try {
    await Deno.writeTextFile(file, text);
    const flags = maxBlockDuration ? [`--max-block-duration=${maxBlockDuration}`] : [];
    return await runChecked(promtool, [
      "tsdb",
      "create-blocks-from",
      "openmetrics",
      ...flags,
      file,
      outDir,
    ]);
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}

/** Options of {@link generateOpenMetrics}. */
export interface OpenMetricsOptions {
  /** First sample time, ms since epoch. */
  start: number;
  /** Last sample time (inclusive if on the step grid), ms since epoch. */
  end: number;
  /** Interval between samples, ms. */
  stepMs: number;
  /** Number of series of the counter family (at least 1). */
  series: number;
}

/**
 * Seconds with millisecond precision, written so that promtool's parser (`int64(s*1000)`, and
 * rounding variants) gets exactly `ms` back.
 */
function omTimestamp(ms: number): string {
  const sec = Math.floor(ms / 1000);
  const frac = ms - sec * 1000;
  if (frac === 0) return String(sec);
  const s = `${sec}.${String(frac).padStart(3, "0")}`;
  const back = Number(s) * 1000;
  if (Math.trunc(back) === ms && Math.round(back) === ms) return s;
  return `${s}001`; // 1 µs above: survives truncation and rounding
}

/** Value of the generated counter series `i` at step `k` (k-th sample from `start`). */
export function generatedCounterValue(i: number, k: number): number {
  return k * (i + 1);
}

/**
 * Generates deterministic OpenMetrics text (`# EOF` terminated) as promtool accepts:
 * `promcase_requests_total` (counter, `series` series with labels `handler` and `code`),
 * `promcase_temperature_celsius` (gauge, two series, one label value with UTF-8 "é"), and
 * `promcase_up` (gauge, constant 1). One sample per series every `stepMs` from `start` to `end`.
 */
export function generateOpenMetrics(opts: OpenMetricsOptions): string {
  const { start, end, stepMs } = opts;
  const series = Math.max(1, Math.floor(opts.series));
  if (!(stepMs > 0) || end < start) throw new Error("generateOpenMetrics: bad time range/step");
  const times: string[] = [];
  for (let t = start; t <= end; t += stepMs) times.push(omTimestamp(t));
  const out: string[] = [];
  out.push("# HELP promcase_requests Requests handled.");
  out.push("# TYPE promcase_requests counter");
  for (let i = 0; i < series; i++) {
    const labels = `{handler="/api/v${i}",code="${i % 3 === 0 ? 500 : 200}"}`;
    times.forEach((ts, k) => {
      out.push(`promcase_requests_total${labels} ${generatedCounterValue(i, k)} ${ts}`);
    });
  }
  out.push("# HELP promcase_temperature_celsius Temperature.");
  out.push("# TYPE promcase_temperature_celsius gauge");
  for (const [j, room] of ["café", "kitchen"].entries()) {
    times.forEach((ts, k) => {
      const v = Math.round((20 + 5 * Math.sin((k + j * 10) / 30)) * 1000) / 1000;
      out.push(`promcase_temperature_celsius{room="${room}"} ${v} ${ts}`);
    });
  }
  out.push("# HELP promcase_up Whether the generator was up.");
  out.push("# TYPE promcase_up gauge");
  for (const ts of times) out.push(`promcase_up 1 ${ts}`);
  out.push("# EOF", "");
  return out.join("\n");
}

/**
 * Polls `predicate` (every 250 ms) until it returns true; throws after `timeoutMs`, naming
 * `what` and the predicate's last error, if any.
 */
export async function waitFor(
  predicate: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await predicate()) return;
      lastError = undefined;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const why = lastError === undefined ? "" : ` (last error: ${lastError})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(Math.min(250, Math.max(1, deadline - Date.now())));
  }
}

/** Waits (up to a minute) until a self-scraping server holds a native histogram sample. */
export async function waitForNativeHistogram(server: PrometheusServer): Promise<void> {
  await waitFor(
    async () => {
      const data = await server.query(
        "prometheus_http_request_duration_seconds",
        Date.now() / 1000,
      ) as { result: { histogram?: unknown }[] };
      return data.result.some((s) => s.histogram !== undefined);
    },
    60_000,
    "a native histogram sample",
  );
}
