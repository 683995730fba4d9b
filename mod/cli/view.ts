/**
 * `promcase view ARCHIVE`: the support engineer's one command. Restores the archive into a work
 * dir (reusing an earlier restore of the same archive), writes Grafana provisioning with the
 * customer's dashboards pointed at the local Prometheus and set to the incident window, a
 * docker-compose.yml, and starts Prometheus (and Grafana, where a binary is at hand) until Ctrl-C.
 *
 * @module
 */

import type { Manifest } from "../archive/manifest.ts";
import { parseManifest } from "../archive/manifest.ts";
import { locateArchive } from "../archive/parts.ts";
import { restoreArchive } from "../archive/restore.ts";
import { describeError, EXIT_USAGE, PromcaseError, usageError } from "../errors.ts";
import { exists, splitPath } from "../fileio.ts";
import { onInterrupt } from "../interrupt.ts";
import { checkPrometheusVersion, compareVersions, prometheusVersion } from "../prometheus.ts";
import { SERVE_CONFIG, SERVE_CONFIG_NAME, serveCommand, shellQuote } from "../serve.ts";
import {
  composeFile,
  containerPrometheusArgs,
  type CustomerDatasource,
  dashboardLink,
  grafanaIni,
  provisioningFiles,
  rewriteDashboard,
} from "../view/grafana.ts";
import { spawnLogged } from "../view/process.ts";
import { startPrometheus } from "../view/prometheus.ts";
import { type Command, parseFlags, toJson } from "./args.ts";
import { createProgress } from "./progress.ts";

const _HELP = `Usage: promcase view ARCHIVE [options]

Shows the customer's data and dashboards at the incident time: verifies and restores the archive
into a work dir (a previous restore of the same archive is reused), writes Grafana provisioning (a
Prometheus datasource with the uid the dashboards reference, the dashboards from the archive and
--dashboards with their folders, each set to the incident window) and a docker-compose.yml, then
starts a local Prometheus on the data, and Grafana when a grafana binary is found. Prints the URLs,
with a Grafana link per dashboard. Ctrl-C stops everything.

Options:
  --workdir DIR          where to restore and write files (default: next to the archive, named
                         after it)
  --dashboards DIR       more dashboard JSON files (subdirectories become folders)
  --prometheus-bin BIN   the Prometheus binary (default: prometheus on PATH)
  --grafana-bin BIN      the Grafana binary (default: grafana on PATH, if any)
  --port-prometheus N    local Prometheus port (default 9090)
  --port-grafana N       local Grafana port (default 3000)
  --no-start             only write the files, start nothing
  --json                 print what was written and started as JSON on stdout
  -h, --help

Examples:
  promcase view promcase-db1-20261125T1030Z-24h.tar.gz
  promcase view case.tar.gz --dashboards ./customer-dashboards --port-prometheus 19090
  promcase view case.tar.gz --no-start && (cd case && docker compose up)
`;

/** The datasource every dashboard is pointed at. */
const _DATASOURCE = { uid: "promcase", name: "Prometheus" };
/** Marker in the work dir: which archive it holds. */
const _SOURCE_MARKER = "promcase-archive.sha256";

/** The view command. */
export const viewCommand: Command = {
  name: "view",
  summary: "restore an archive and show it in a local Prometheus and Grafana",
  help: _HELP,
  async run(args) {
    const { values, positionals } = parseFlags("view", args, {
      workdir: { type: "string" },
      dashboards: { type: "string" },
      "prometheus-bin": { type: "string" },
      "grafana-bin": { type: "string" },
      "port-prometheus": { type: "string", default: "9090" },
      "port-grafana": { type: "string", default: "3000" },
      "no-start": { type: "boolean" },
      json: { type: "boolean" },
    }, 1);
    if (values.help) {
      console.log(_HELP);
      return 0;
    }
    if (positionals.length === 0) throw usageError("name the archive to view");
    const archive = positionals[0];
    const portPrometheus = _port(values["port-prometheus"], "--port-prometheus");
    const portGrafana = _port(values["port-grafana"], "--port-grafana");
    const workdir = values.workdir ?? _defaultWorkdir(archive);
    const { manifest, reused } = await _restoreOrReuse(archive, workdir);
    const dir = await Deno.realPath(workdir);
    const log = (line: string) => values.json ? console.error(line) : console.log(line);
    log(`${reused ? "Reusing" : "Restored"} ${archive} in ${dir}`);

    const promBin = values["prometheus-bin"] ?? "prometheus";
    const promVersion = await prometheusVersion(promBin);
    const grafanaUrl = `http://127.0.0.1:${portGrafana}`;
    const prometheusUrl = `http://127.0.0.1:${portPrometheus}`;
    const dashboards = await _writeGrafanaFiles(dir, manifest, values.dashboards, {
      prometheusUrl,
      portGrafana,
      portPrometheus,
    });
    const links = dashboards.map((d) => ({
      title: d.title,
      folder: d.folder,
      url: dashboardLink(grafanaUrl, d.uid, manifest.window.fromMs, manifest.window.toMs),
    }));
    const summary = {
      workdir: dir,
      reused,
      window: manifest.window,
      incident: manifest.incident,
      dashboards: links,
      prometheus: null as null | { url: string; version: string | null; command: string[] },
      grafana: null as null | { url: string; bin: string },
    };
    const tooOld = checkPrometheusVersion(manifest, promVersion);
    if (tooOld) {
      console.error(`warning: ${tooOld}`);
    } else if (promVersion && manifest.prometheus.version && !manifest.minPrometheusVersion) {
      // A raw archive: blocks and WAL as the customer's release wrote them.
      const theirs = manifest.prometheus.version.split("+")[0];
      if (compareVersions(promVersion, theirs) < 0) {
        console.error(
          `warning: local Prometheus ${promVersion} is older than the customer's ${theirs}: ` +
            "a WAL or blocks written by a newer release may not load",
        );
      }
    }
    if (values["no-start"]) {
      _printFiles(log, dir, links);
      if (values.json) console.log(toJson(summary));
      return 0;
    }
    if (!promVersion) {
      throw usageError(
        `no Prometheus found as "${promBin}": install one, pass --prometheus-bin, or use ` +
          `--no-start and run "docker compose up" in ${dir}`,
      );
    }
    const prometheus = await startPrometheus({
      bin: promBin,
      version: promVersion,
      dir,
      manifest,
      port: portPrometheus,
      logFile: `${dir}/prometheus.log`,
    });
    const stops = [prometheus.stop];
    const release = onInterrupt(async () => {
      for (const stop of stops) await stop();
    });
    try {
      summary.prometheus = {
        url: prometheus.url,
        version: promVersion,
        command: prometheus.command,
      };
      log(`Prometheus ${promVersion}: ${prometheus.url} (log: ${dir}/prometheus.log)`);
      log(`  ${shellQuote(prometheus.command)}`);
      const grafanaBin = values["grafana-bin"] ?? (await _onPath("grafana") ? "grafana" : null);
      if (grafanaBin) {
        const grafana = await _startGrafana(grafanaBin, dir);
        stops.push(grafana.stop);
        summary.grafana = { url: grafanaUrl, bin: grafanaBin };
        log(`Grafana: ${grafanaUrl} (log: ${dir}/grafana.log)`);
      } else {
        log(`No grafana binary found: for dashboards run "docker compose up grafana" in ${dir}`);
      }
      for (const link of links) {
        log(`  ${link.folder ? link.folder + "/" : ""}${link.title}: ${link.url}`);
      }
      if (values.json) console.log(toJson(summary));
      log("Press Ctrl-C to stop.");
      await prometheus.exited;
      throw new PromcaseError(`Prometheus stopped unexpectedly: see ${dir}/prometheus.log`);
    } finally {
      for (const stop of stops) await stop();
      release();
    }
  },
};

async function _restoreOrReuse(
  archive: string,
  workdir: string,
): Promise<{ manifest: Manifest; reused: boolean }> {
  const marker = `${workdir}/${_SOURCE_MARKER}`;
  const identity = await _sidecarIdentity(archive);
  if (await exists(marker)) {
    const recorded = (await Deno.readTextFile(marker)).trim();
    // Without a sidecar the archive cannot be matched cheaply: restore anew into another dir.
    if (identity && identity === recorded) {
      return {
        manifest: parseManifest(await Deno.readTextFile(`${workdir}/manifest.json`)),
        reused: true,
      };
    }
    throw usageError(
      `${workdir} holds a restore of another archive: give a new --workdir or remove it`,
    );
  }
  const progress = createProgress("restore");
  try {
    const restored = await restoreArchive(archive, workdir, {
      onProgress: (d, t) => progress.update(d, t),
      extraFiles: { [SERVE_CONFIG_NAME]: SERVE_CONFIG },
    });
    await Deno.writeTextFile(`${workdir}/${_SOURCE_MARKER}`, `${identity ?? restored.sha256}\n`);
    return { manifest: restored.manifest, reused: false };
  } finally {
    progress.done();
  }
}

/**
 * What identifies an archive cheaply: the SHA-256 sums its sidecar lists (one for a single file,
 * one per part for a split archive, whichever part was named), or null without a sidecar.
 */
async function _sidecarIdentity(archive: string): Promise<string | null> {
  try {
    const { sidecar, hasSidecar } = await locateArchive(archive);
    if (!hasSidecar) return null;
    const sums = (await Deno.readTextFile(sidecar)).split("\n").map((l) => l.trim().split(/\s+/)[0])
      .filter((sum) => sum);
    return sums.length > 0 ? sums.join(",") : null;
  } catch {
    return null;
  }
}

interface _Dashboard {
  uid: string;
  title: string;
  folder: string;
}

/** Reads the archive's and the extra dashboards, rewrites them and writes all Grafana files. */
async function _writeGrafanaFiles(
  dir: string,
  manifest: Manifest,
  extraDir: string | undefined,
  setup: { prometheusUrl: string; portGrafana: number; portPrometheus: number },
): Promise<_Dashboard[]> {
  const found = [
    ...await _findDashboards(`${dir}/context/grafana/dashboards`, true),
    ...(extraDir ? await _findDashboards(extraDir, false) : []),
  ];
  const customerDatasources = await _readJson<CustomerDatasource[]>(
    `${dir}/context/grafana/datasources.json`,
  );
  const dashboards = [];
  const listed: _Dashboard[] = [];
  for (const { folder, path } of found) {
    let source: unknown;
    try {
      source = JSON.parse(await Deno.readTextFile(path));
    } catch (err) {
      console.error(`warning: dashboard ${path} skipped: ${describeError(err)}`);
      continue;
    }
    const { dashboard, warnings } = rewriteDashboard(source, {
      datasourceUid: _DATASOURCE.uid,
      datasourceName: _DATASOURCE.name,
      from: manifest.window.fromMs,
      to: manifest.window.toMs,
      customerDatasources: Array.isArray(customerDatasources) ? customerDatasources : undefined,
    });
    const uid = String(dashboard.uid);
    // The same dashboard from the archive and from --dashboards: the later one wins.
    const earlier = listed.findIndex((d) => d.uid === uid);
    if (earlier >= 0) {
      dashboards.splice(earlier, 1);
      listed.splice(earlier, 1);
    }
    for (const warning of warnings) console.error(`warning: dashboard ${uid}: ${warning}`);
    dashboards.push({ folder, fileName: `${uid}.json`, dashboard });
    listed.push({ uid, title: String(dashboard.title ?? uid), folder });
  }
  const grafanaDir = `${dir}/grafana`;
  const files = provisioningFiles({
    datasourceName: _DATASOURCE.name,
    datasourceUid: _DATASOURCE.uid,
    prometheusUrl: setup.prometheusUrl,
    dashboards,
    dashboardsPath: `${grafanaDir}/dashboards`,
    scrapeInterval: await _scrapeInterval(dir),
    prometheusVersion: manifest.prometheus.version?.split("+")[0],
  });
  await Deno.remove(grafanaDir, { recursive: true }).catch(() => {});
  for (const [rel, text] of Object.entries(files)) {
    const path = `${grafanaDir}/${rel}`;
    await Deno.mkdir(splitPath(path).dir, { recursive: true });
    await Deno.writeTextFile(path, text);
  }
  await Deno.mkdir(`${grafanaDir}/data`, { recursive: true });
  await Deno.writeTextFile(
    `${grafanaDir}/grafana.ini`,
    grafanaIni({
      dataDir: `${grafanaDir}/data`,
      provisioningDir: `${grafanaDir}/provisioning`,
      httpPort: setup.portGrafana,
    }),
  );
  const serveArgv = serveCommand({ dir, manifest, localVersion: null });
  await Deno.writeTextFile(
    `${dir}/docker-compose.yml`,
    composeFile({
      dataDir: `${dir}/data`,
      configFile: `${dir}/${SERVE_CONFIG_NAME}`,
      provisioningDir: `${grafanaDir}/compose-provisioning`,
      dashboardsDir: `${grafanaDir}/dashboards`,
      prometheusArgs: containerPrometheusArgs(serveArgv),
      ports: { grafana: setup.portGrafana, prometheus: setup.portPrometheus },
      prometheusUser: `${Deno.uid() ?? 65534}:${Deno.gid() ?? 65534}`,
    }),
  );
  return listed;
}

/** The customer's global scrape interval, from the captured config, for Grafana's step. */
async function _scrapeInterval(dir: string): Promise<string | undefined> {
  const config = await _readJson<{ data?: { yaml?: string } }>(
    `${dir}/context/prometheus/config.json`,
  );
  const yaml = config?.data?.yaml ?? "";
  return /^global:\n(?:[ \t]+.*\n)*?[ \t]+scrape_interval:[ \t]*(\S+)/m.exec(yaml)?.[1];
}

async function _readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch {
    return null;
  }
}

/**
 * Dashboard files below `root`: the first directory level is the folder. In the archive, the
 * `files` folder holds `--dashboard-file` additions and goes to the root folder.
 */
async function _findDashboards(
  root: string,
  fromArchive: boolean,
): Promise<{ folder: string; path: string }[]> {
  const out: { folder: string; path: string }[] = [];
  const walk = async (dir: string, folder: string | null) => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound && fromArchive) return;
      throw usageError(`cannot read dashboards in ${dir}: ${describeError(err)}`);
    }
    for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) {
        await walk(path, folder ?? entry.name);
      } else if (entry.isFile && entry.name.toLowerCase().endsWith(".json")) {
        const name = folder ?? "";
        out.push({
          folder: fromArchive && (name === "files" || name === "General") ? "" : name,
          path,
        });
      }
    }
  };
  await walk(root, null);
  return out;
}

async function _startGrafana(bin: string, dir: string) {
  const homepath = ["/usr/share/grafana", "/opt/grafana"].find((p) => {
    try {
      return Deno.statSync(p).isDirectory;
    } catch {
      return false;
    }
  });
  const args = [
    "server",
    "--config",
    `${dir}/grafana/grafana.ini`,
    ...(homepath ? ["--homepath", homepath] : []),
  ];
  return await spawnLogged("Grafana", bin, args, `${dir}/grafana.log`, EXIT_USAGE);
}

function _printFiles(
  log: (line: string) => void,
  dir: string,
  links: { title: string; url: string }[],
) {
  log(
    `Wrote ${dir}/grafana (provisioning, ${links.length} dashboards) and ${dir}/docker-compose.yml`,
  );
  log(`Start everything with: (cd ${shellQuote([dir])} && docker compose up)`);
  for (const link of links) log(`  ${link.title}: ${link.url}`);
}

function _defaultWorkdir(archive: string): string {
  const { dir, base } = splitPath(archive);
  const name = base.replace(/\.(tar\.gz|tgz|tar\.zst|tar)$/i, "");
  return `${dir}/${name === base ? `${base}.view` : name}`;
}

function _port(text: string | undefined, flag: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw usageError(`${flag} must be a port number, not ${JSON.stringify(text)}`);
  }
  return port;
}

async function _onPath(bin: string): Promise<boolean> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir && await exists(`${dir}/${bin}`)) return true;
  }
  return false;
}
