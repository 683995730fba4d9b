/**
 * Runs a local Prometheus on restored data for `promcase view`: the serve command of `serve.ts`
 * on a loopback port, its output in a log file, a bounded wait until it is ready, and a clean stop.
 *
 * @module
 */

import type { Manifest } from "../archive/manifest.ts";
import { describeError, PromcaseError } from "../errors.ts";
import { serveCommand } from "../serve.ts";
import { type LoggedProcess, spawnLogged } from "./process.ts";

/** A running Prometheus. */
export interface RunningPrometheus extends LoggedProcess {
  /** Its base URL. */
  url: string;
}

/** What {@link startPrometheus} needs. */
export interface StartPrometheusOptions {
  /** The Prometheus binary. */
  bin: string;
  /** Its version (for the native-histograms flag), or null. */
  version: string | null;
  /** The restored dir holding `data/` and `prometheus.yml`. */
  dir: string;
  /** The archive's manifest. */
  manifest: Manifest;
  /** Loopback port to listen on. */
  port: number;
  /** Where its output goes. */
  logFile: string;
  /** How long to wait for readiness. */
  readyTimeoutMs?: number;
}

/** Starts Prometheus on restored data and waits until it answers `/-/ready`. */
export async function startPrometheus(options: StartPrometheusOptions): Promise<RunningPrometheus> {
  const address = `127.0.0.1:${options.port}`;
  const [bin, ...args] = serveCommand({
    dir: options.dir,
    manifest: options.manifest,
    localVersion: options.version,
    bin: options.bin,
    listenAddress: address,
  });
  const process = await spawnLogged("Prometheus", bin, args, options.logFile);
  const { stop, exited } = process;
  const url = `http://${address}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 120_000);
  let ended = false;
  exited.then(() => (ended = true));
  while (true) {
    if (ended) {
      throw new PromcaseError(`Prometheus exited during start-up: see ${options.logFile}`);
    }
    try {
      const response = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2000) });
      await response.body?.cancel();
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new PromcaseError(`Prometheus was not ready in time: see ${options.logFile}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  try {
    await checkServesDir(url, `${options.dir}/data`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, ...process };
}

/**
 * Checks that the Prometheus answering at `url` is the one serving `dataDir` (its
 * `storage.tsdb.path` flag, from `/api/v1/status/flags`), not another server that happens to
 * answer `/-/ready` on the same port. Throws a one-line PromcaseError otherwise.
 */
export async function checkServesDir(url: string, dataDir: string): Promise<void> {
  let path: unknown;
  try {
    const response = await fetch(`${url}/api/v1/status/flags`, {
      signal: AbortSignal.timeout(5000),
    });
    const body = await response.json();
    path = body?.data?.["storage.tsdb.path"];
  } catch (err) {
    throw new PromcaseError(
      `the server at ${url} does not show its flags (${describeError(err)}): not our Prometheus`,
    );
  }
  const mine = await _realPath(dataDir);
  const same = typeof path === "string" &&
    (path === dataDir || (mine !== null && await _realPath(path) === mine));
  if (!same) {
    throw new PromcaseError(
      `another Prometheus answers at ${url} (serving ${JSON.stringify(path)}, not ${dataDir}): ` +
        "stop it or pick another --port-prometheus",
    );
  }
}

async function _realPath(path: string): Promise<string | null> {
  try {
    return await Deno.realPath(path);
  } catch {
    return null;
  }
}
