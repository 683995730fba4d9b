/**
 * The files `promcase view` writes into a restored work dir: the customer's dashboards (from the
 * archive and `--dashboards`), rewritten for the local Prometheus, annotated with the incident
 * time and the firing alerts, with titles made unique where Grafana needs them so; Grafana
 * provisioning for a local binary and for containers; `grafana.ini`; `docker-compose.yml`. Files
 * a container reads are made world-readable and the data dir writable for any user, so that a
 * Grafana or Prometheus container (another uid, or a rootless one) can use them even where the
 * engineer's umask is 077.
 *
 * @module
 */

import type { Manifest } from "../archive/manifest.ts";
import { describeError, usageError } from "../errors.ts";
import { splitPath } from "../fileio.ts";
import { SERVE_CONFIG_NAME, serveCommand } from "../serve.ts";
import {
  addIncidentAnnotations,
  composeFile,
  containerPrometheusArgs,
  type CustomerDatasource,
  type DashboardFile,
  grafanaIni,
  provisioningFiles,
  resolveTitleClashes,
  rewriteDashboard,
} from "./grafana.ts";

/** The datasource every dashboard is pointed at. */
export const VIEW_DATASOURCE = { uid: "promcase", name: "Prometheus" };

/** A dashboard as provisioned. */
export interface ViewDashboard {
  /** Its uid. */
  uid: string;
  /** Its title in Grafana (after clashes were resolved). */
  title: string;
  /** Its folder (`""` for General). */
  folder: string;
}

/** What {@linkcode writeViewFiles} needs. */
export interface ViewFilesOptions {
  /** The restored work dir (real path), holding `data/`, `manifest.json` and `context/`. */
  dir: string;
  /** The archive's manifest. */
  manifest: Manifest;
  /** `--dashboards DIR`: more dashboard files, subdirectories as folders. */
  extraDir?: string;
  /** The port the local Prometheus listens on (127.0.0.1). */
  portPrometheus: number;
  /** The port a local or host-network Grafana listens on (127.0.0.1). */
  portGrafana: number;
  /** Version of the local Prometheus that will serve the data, if known. */
  prometheusVersion: string | null;
  /** Receives one line per warning (a dashboard skipped, renamed, or left with references). */
  warn: (line: string) => void;
}

/** Reads the archive's and the extra dashboards, rewrites them and writes all Grafana files. */
export async function writeViewFiles(options: ViewFilesOptions): Promise<ViewDashboard[]> {
  const { dir, manifest, warn } = options;
  const found = [
    ...await _findDashboards(`${dir}/context/grafana/dashboards`, true),
    ...(options.extraDir ? await _findDashboards(options.extraDir, false) : []),
  ];
  const customerDatasources = await _readJson<CustomerDatasource[]>(
    `${dir}/context/grafana/datasources.json`,
  );
  const dashboards: DashboardFile[] = [];
  for (const { folder, path } of found) {
    let source: unknown;
    let result;
    try {
      source = JSON.parse(await Deno.readTextFile(path));
      result = rewriteDashboard(source, {
        datasourceUid: VIEW_DATASOURCE.uid,
        datasourceName: VIEW_DATASOURCE.name,
        from: manifest.window.fromMs,
        to: manifest.window.toMs,
        customerDatasources: Array.isArray(customerDatasources) ? customerDatasources : undefined,
      });
    } catch (err) {
      warn(`dashboard ${path} skipped: ${describeError(err)}`);
      continue;
    }
    const { dashboard, warnings, unmapped } = result;
    const uid = String(dashboard.uid);
    const name = `${uid} (${JSON.stringify(String(dashboard.title ?? ""))})`;
    // The same dashboard from the archive and from --dashboards: the later one wins.
    const earlier = dashboards.findIndex((d) => d.dashboard.uid === uid);
    if (earlier >= 0) dashboards.splice(earlier, 1);
    for (const warning of warnings) warn(`dashboard ${name}: ${warning}`);
    for (const ref of unmapped) {
      warn(
        `dashboard ${name}: datasource ${JSON.stringify(ref)} is not a Prometheus one (or not ` +
          "known to be): its panels and queries stay on it and show an error",
      );
    }
    addIncidentAnnotations(dashboard, {
      datasourceUid: VIEW_DATASOURCE.uid,
      datasourceName: VIEW_DATASOURCE.name,
      atMs: manifest.incident.atMs,
    });
    dashboards.push({ folder, fileName: `${uid}.json`, dashboard });
  }
  for (const line of resolveTitleClashes(dashboards)) warn(line);

  const grafanaDir = `${dir}/grafana`;
  const files = provisioningFiles({
    datasourceName: VIEW_DATASOURCE.name,
    datasourceUid: VIEW_DATASOURCE.uid,
    prometheusUrl: `http://127.0.0.1:${options.portPrometheus}`,
    dashboards,
    dashboardsPath: `${grafanaDir}/dashboards`,
    scrapeInterval: await _scrapeInterval(dir),
    prometheusVersion: options.prometheusVersion ?? undefined,
  });
  await Deno.remove(grafanaDir, { recursive: true }).catch(() => {});
  for (const [rel, text] of Object.entries(files)) {
    const path = `${grafanaDir}/${rel}`;
    await Deno.mkdir(splitPath(path).dir, { recursive: true });
    await Deno.writeTextFile(path, text);
  }
  await Deno.writeTextFile(
    `${grafanaDir}/grafana.ini`,
    grafanaIni({
      dataDir: `${grafanaDir}/data`,
      provisioningDir: `${grafanaDir}/provisioning`,
      httpPort: options.portGrafana,
    }),
  );
  // Readable by a Grafana container's own user (472) and rootless containers' mapped ids.
  await _chmodTree(grafanaDir, 0o755, 0o644);
  await Deno.mkdir(`${grafanaDir}/data`, { recursive: true });
  const serveArgv = serveCommand({ dir, manifest, localVersion: null });
  await Deno.writeTextFile(
    `${dir}/docker-compose.yml`,
    composeFile({
      dataDir: `${dir}/data`,
      configFile: `${dir}/${SERVE_CONFIG_NAME}`,
      provisioningDir: `${grafanaDir}/compose-provisioning`,
      dashboardsDir: `${grafanaDir}/dashboards`,
      prometheusArgs: containerPrometheusArgs(serveArgv),
      ports: { grafana: options.portGrafana, prometheus: options.portPrometheus },
      prometheusUser: `${Deno.uid() ?? 65534}:${Deno.gid() ?? 65534}`,
      hostGrafana: {
        provisioningDir: `${grafanaDir}/provisioning`,
        dashboardsDir: `${grafanaDir}/dashboards`,
        port: options.portGrafana,
      },
    }),
  );
  await _addMode(`${dir}/docker-compose.yml`, 0o644);
  await _addMode(`${dir}/${SERVE_CONFIG_NAME}`, 0o644);
  await _addMode(dir, 0o755);
  // The Prometheus container runs as the engineer's uid:gid, which rootless Docker and Podman map
  // to another host uid: it must create files (lock, WAL segments, compacted blocks) and remove
  // them in every directory of the throwaway restored copy, and reopen `lock`/`queries.active`.
  await _chmodTree(`${dir}/data`, 0o777, 0o666);
  return dashboards.map(({ folder, dashboard }) => ({
    uid: String(dashboard.uid),
    title: String(dashboard.title ?? dashboard.uid),
    folder,
  }));
}

/** Sets `dirMode` on every directory and adds `fileMode`'s bits to every file below `root`. */
async function _chmodTree(root: string, dirMode: number, fileMode: number): Promise<void> {
  await Deno.chmod(root, dirMode);
  for await (const entry of Deno.readDir(root)) {
    const path = `${root}/${entry.name}`;
    if (entry.isDirectory) await _chmodTree(path, dirMode, fileMode);
    else if (entry.isFile) await _addMode(path, fileMode);
  }
}

async function _addMode(path: string, bits: number): Promise<void> {
  try {
    const mode = (await Deno.stat(path)).mode ?? 0;
    if ((mode & bits) !== bits) await Deno.chmod(path, (mode & 0o7777) | bits);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
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
