/**
 * Runs a local `grafana server` for `promcase view`: finds the binary (PATH, then where Debian's
 * package puts it), finds its home directory from the binary's real path (Grafana exits with
 * "Could not find config defaults" without one), starts it with the written `grafana.ini`, and
 * waits until `/api/health` answers, failing in one line if the process exits first.
 *
 * @module
 */

import { EXIT_USAGE, PromcaseError } from "../errors.ts";
import { splitPath } from "../fileio.ts";
import { type LoggedProcess, spawnLogged } from "./process.ts";

/** Directories searched for a `grafana` binary after PATH (Debian's package: /usr/sbin). */
export const GRAFANA_EXTRA_BIN_DIRS = ["/usr/sbin", "/usr/share/grafana/bin"];

/** Install directories tried when none is found next to the binary. */
export const GRAFANA_HOME_FALLBACKS = ["/usr/share/grafana", "/opt/grafana"];

/** The `grafana` binary on PATH or in {@linkcode GRAFANA_EXTRA_BIN_DIRS}, or null. */
export async function findGrafanaBinary(
  path: string = Deno.env.get("PATH") ?? "",
  extraDirs: string[] = GRAFANA_EXTRA_BIN_DIRS,
): Promise<string | null> {
  for (const dir of [...path.split(":"), ...extraDirs]) {
    if (dir && await _isFile(`${dir}/grafana`)) return `${dir}/grafana`;
  }
  return null;
}

/**
 * Grafana's home (the directory holding `conf/defaults.ini`) for a binary: from the binary's real
 * path (symlinks resolved, as Homebrew's and the release tarball's are laid out), `<bin dir>/..`
 * (tarball: `grafana-v12/bin/grafana`) or `<bin dir>/../share/grafana` (Homebrew, `/usr/local`),
 * then the fallbacks (`/usr/share/grafana` of the deb and rpm packages, `/opt/grafana`). Null when
 * none holds `conf/defaults.ini`.
 */
export async function findGrafanaHome(
  bin: string,
  fallbacks: string[] = GRAFANA_HOME_FALLBACKS,
): Promise<string | null> {
  const candidates: string[] = [];
  const real = await _realBinary(bin);
  if (real) {
    const parent = splitPath(splitPath(real).dir).dir;
    candidates.push(parent, `${parent}/share/grafana`);
  }
  candidates.push(...fallbacks);
  for (const home of candidates) {
    if (await _isFile(`${home}/conf/defaults.ini`)) return home;
  }
  return null;
}

/** What {@linkcode startGrafana} needs. */
export interface StartGrafanaOptions {
  /** The `grafana` binary (a path or a name on PATH). */
  bin: string;
  /** The `grafana.ini` written by `grafanaIni`. */
  config: string;
  /** The port it was told to listen on (for the health check). */
  port: number;
  /** Where its output goes. */
  logFile: string;
  /** Install directories tried after the binary's own (default {@linkcode GRAFANA_HOME_FALLBACKS}). */
  homeFallbacks?: string[];
  /** How long to wait for `/api/health` (default 120 s). */
  readyTimeoutMs?: number;
}

/** A running Grafana. */
export interface RunningGrafana extends LoggedProcess {
  /** Its base URL. */
  url: string;
  /** The home directory it was started with. */
  home: string;
}

/**
 * Starts `grafana server --homepath HOME --config CONFIG` and waits until `/api/health` answers
 * 200. Throws a one-line PromcaseError when no home is found, the process exits during start-up
 * (with the last line of its log, e.g. "bind: address already in use"), or it is not ready in time.
 */
export async function startGrafana(options: StartGrafanaOptions): Promise<RunningGrafana> {
  const home = await findGrafanaHome(options.bin, options.homeFallbacks);
  if (!home) {
    throw new PromcaseError(
      `cannot find Grafana's home for ${options.bin} (a directory with conf/defaults.ini next to ` +
        "the binary, /usr/share/grafana or /opt/grafana): pass --grafana-bin of a complete install",
      EXIT_USAGE,
    );
  }
  const args = ["server", "--homepath", home, "--config", options.config];
  const process = await spawnLogged("Grafana", options.bin, args, options.logFile, EXIT_USAGE);
  let status: Deno.CommandStatus | undefined;
  process.exited.then((s) => (status = s));
  const url = `http://127.0.0.1:${options.port}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 120_000);
  while (true) {
    if (status) {
      const last = await _lastLine(options.logFile);
      throw new PromcaseError(
        `Grafana exited during start-up (code ${status.code})${last ? `: ${last}` : ""} ` +
          `(log: ${options.logFile})`,
      );
    }
    try {
      const response = await fetch(`${url}/api/health`, { signal: AbortSignal.timeout(2000) });
      await response.body?.cancel();
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await process.stop();
      throw new PromcaseError(`Grafana was not ready in time: see ${options.logFile}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return { ...process, url, home };
}

async function _realBinary(bin: string): Promise<string | null> {
  let path = bin;
  if (!bin.includes("/")) {
    const dirs = (Deno.env.get("PATH") ?? "").split(":").filter((d) => d);
    const found = [];
    for (const dir of dirs) if (await _isFile(`${dir}/${bin}`)) found.push(`${dir}/${bin}`);
    if (found.length === 0) return null;
    path = found[0];
  }
  try {
    return await Deno.realPath(path);
  } catch {
    return null;
  }
}

async function _isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

async function _lastLine(path: string): Promise<string> {
  try {
    const lines = (await Deno.readTextFile(path)).split("\n").map((l) => l.trim()).filter((l) => l);
    return (lines.at(-1) ?? "").slice(0, 300);
  } catch {
    return "";
  }
}
