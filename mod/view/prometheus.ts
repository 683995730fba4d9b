/**
 * Runs a local Prometheus on restored data for `promcase view`: the serve command of `serve.ts`
 * on a loopback port, its output in a log file, a bounded wait until it is ready, and a clean stop.
 *
 * @module
 */

import type { Manifest } from "../archive/manifest.ts";
import { PromcaseError } from "../errors.ts";
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
  return { url, ...process };
}
