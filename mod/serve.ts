/**
 * How to serve restored data with a stock Prometheus: a config that scrapes nothing, retention far
 * beyond the data's age (Prometheus measures retention from the newest block, so a short retention
 * silently deletes old imports), and the native-histograms flag where the release needs it.
 *
 * @module
 */

import type { Manifest } from "./archive/manifest.ts";
import { compareVersions } from "./prometheus.ts";

/** The config restore writes beside the data: no scrape targets, so the data stays as shipped. */
export const SERVE_CONFIG = `# Written by promcase: serves the restored data only; scrapes nothing.
global:
  scrape_interval: 1m
scrape_configs: []
`;

/** Name of that config file in a restored directory. */
export const SERVE_CONFIG_NAME = "prometheus.yml";

/** What is needed to build the serve command. */
export interface ServeOptions {
  /** The restored directory (holding `data/` and the config). */
  dir: string;
  /** The archive's manifest. */
  manifest: Manifest;
  /** Version of the local Prometheus, or null when unknown. */
  localVersion: string | null;
  /** Address to listen on. */
  listenAddress?: string;
  /** The Prometheus binary. */
  bin?: string;
  /** Current time in ms, for the retention. */
  now?: number;
}

/** The serve command as argv. */
export function serveCommand(options: ServeOptions): string[] {
  const dayMs = 86_400_000;
  // The oldest shipped sample: the oldest block's start, or for a head-only archive the window's.
  const { blocks, window } = options.manifest;
  const oldest = blocks.length > 0 ? Math.min(...blocks.map((b) => b.minTime)) : window.fromMs;
  const ageDays = Math.max(0, Math.ceil(((options.now ?? Date.now()) - oldest) / dayMs));
  const args = [
    options.bin ?? "prometheus",
    `--config.file=${options.dir}/${SERVE_CONFIG_NAME}`,
    `--storage.tsdb.path=${options.dir}/data`,
    `--storage.tsdb.retention.time=${ageDays + 3650}d`,
    `--web.listen-address=${options.listenAddress ?? "127.0.0.1:9090"}`,
  ];
  if (needsNativeHistogramsFlag(options.localVersion)) {
    args.push("--enable-feature=native-histograms");
  }
  return args;
}

/**
 * Whether `--enable-feature=native-histograms` is wanted: from 2.40, where native histograms came,
 * until 3.8, where they became stable and the flag a no-op. Unknown versions get it: older
 * releases only warn about a feature they do not know.
 */
export function needsNativeHistogramsFlag(version: string | null): boolean {
  if (version === null) return true;
  return compareVersions(version, "2.40.0") >= 0 && compareVersions(version, "3.8.0") < 0;
}

/** Quotes argv for a POSIX shell, so that the printed command can be pasted as it is. */
export function shellQuote(argv: string[]): string {
  return argv.map((arg) => /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`)
    .join(" ");
}
