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
import { PromcaseError, usageError } from "../errors.ts";
import { exists, splitPath } from "../fileio.ts";
import { onInterrupt } from "../interrupt.ts";
import { checkPrometheusVersion, compareVersions, prometheusVersion } from "../prometheus.ts";
import { SERVE_CONFIG, SERVE_CONFIG_NAME, shellQuote } from "../serve.ts";
import { dashboardLink } from "../view/grafana.ts";
import { findGrafanaBinary, startGrafana } from "../view/grafana_server.ts";
import { choosePort } from "../view/ports.ts";
import { startPrometheus } from "../view/prometheus.ts";
import { writeViewFiles } from "../view/setup.ts";
import type { AgeKeys } from "../archive/age.ts";
import { AGE_KEY_FLAGS, ageKeysFromFlags } from "./age_flags.ts";
import { type Command, parseFlags, toJson } from "./args.ts";
import { createProgress } from "./progress.ts";

const _HELP = `Usage: promcase view ARCHIVE [options]

Shows the customer's data and dashboards at the incident time: verifies and restores the archive
into a work dir (a previous restore of the same archive is reused), writes Grafana provisioning (a
Prometheus datasource with the uid the dashboards reference, the dashboards from the archive and
--dashboards with their folders, each set to the incident window) and a docker-compose.yml, then
starts a local Prometheus on the data, and Grafana when a grafana binary is found (PATH, /usr/sbin).
Every dashboard gets annotations at the incident time and for the customer's firing alerts. Prints
the URLs, with a Grafana link per dashboard. Ctrl-C stops everything. Without a grafana binary,
"docker compose up grafana-host" in the work dir runs Grafana alone on the host network (Linux),
reading the Prometheus view started.

Options:
  --workdir DIR          where to restore and write files (default: next to the archive, named
                         after it)
  --dashboards DIR       more dashboard JSON files (subdirectories become folders)
  --prometheus-bin BIN   the Prometheus binary (default: prometheus on PATH)
  --grafana-bin BIN      the Grafana binary (default: grafana on PATH, if any)
  --port-prometheus N    local Prometheus port (default 9090, or a free one when that is taken;
                         a port given here that is taken is an error)
  --port-grafana N       local Grafana port (default 3000, likewise)
  --no-start             only write the files, start nothing
  -i, --identity FILE    the key of an age-encrypted archive (.age; repeatable)
  --passphrase-file FILE the passphrase of one encrypted with a passphrase
  --json                 print what was written and started as JSON on stdout
  -h, --help

Examples:
  promcase view promcase-db1-20261125T1030Z-24h.tar.gz
  promcase view case.tar.gz --dashboards ./customer-dashboards --port-prometheus 19090
  promcase view case.tar.gz --no-start && (cd case && docker compose up)
`;

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
      "port-prometheus": { type: "string" },
      "port-grafana": { type: "string" },
      "no-start": { type: "boolean" },
      ...AGE_KEY_FLAGS,
      json: { type: "boolean" },
    }, 1);
    if (values.help) {
      console.log(_HELP);
      return 0;
    }
    if (positionals.length === 0) throw usageError("name the archive to view");
    const archive = positionals[0];
    const askedPrometheus = _port(values["port-prometheus"] ?? "9090", "--port-prometheus");
    const askedGrafana = _port(values["port-grafana"] ?? "3000", "--port-grafana");
    const workdir = values.workdir ?? _defaultWorkdir(archive);
    const decrypt = await ageKeysFromFlags(values);
    const { manifest, reused } = await _restoreOrReuse(archive, workdir, decrypt);
    const dir = await Deno.realPath(workdir);
    const log = (line: string) => values.json ? console.error(line) : console.log(line);
    log(`${reused ? "Reusing" : "Restored"} ${archive} in ${dir}`);

    const promBin = values["prometheus-bin"] ?? "prometheus";
    const promVersion = await prometheusVersion(promBin);
    const start = !values["no-start"];
    // Ports are settled before any file names them. Files for --no-start name the ports asked for:
    // nothing listens yet, and docker compose publishes them later.
    const prometheusPort = start
      ? choosePort(
        askedPrometheus,
        values["port-prometheus"] !== undefined,
        "Prometheus",
        "--port-prometheus",
      )
      : { port: askedPrometheus };
    const grafanaPort = start
      ? choosePort(askedGrafana, values["port-grafana"] !== undefined, "Grafana", "--port-grafana")
      : { port: askedGrafana };
    for (
      const [what, chosen] of [["Prometheus", prometheusPort], ["Grafana", grafanaPort]] as const
    ) {
      if (chosen.taken) log(`Port ${chosen.taken} is taken: ${what} gets port ${chosen.port}`);
    }
    const portPrometheus = prometheusPort.port;
    const portGrafana = grafanaPort.port;
    const grafanaUrl = `http://127.0.0.1:${portGrafana}`;
    const dashboards = await writeViewFiles({
      dir,
      manifest,
      extraDir: values.dashboards,
      portPrometheus,
      portGrafana,
      prometheusVersion: promVersion,
      warn: (line) => console.error(`warning: ${line}`),
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
      const grafanaBin = values["grafana-bin"] ?? await findGrafanaBinary();
      if (grafanaBin) {
        const grafana = await startGrafana({
          bin: grafanaBin,
          config: `${dir}/grafana/grafana.ini`,
          port: portGrafana,
          logFile: `${dir}/grafana.log`,
        });
        stops.push(grafana.stop);
        summary.grafana = { url: grafanaUrl, bin: grafanaBin };
        log(`Grafana: ${grafanaUrl} (home ${grafana.home}, log: ${dir}/grafana.log)`);
      } else {
        // The compose file's own grafana service depends on its prometheus service, which would
        // start a second Prometheus on this data and port: grafana-host reads this one instead.
        log(
          `No grafana binary found: for dashboards run "docker compose up grafana-host" in ` +
            `${shellQuote([dir])} (Linux: Grafana on the host network, reading this Prometheus), ` +
            `or stop this and run "docker compose up" there`,
        );
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
  decrypt?: AgeKeys,
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
      decrypt,
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
  const name = base.replace(/\.(tar\.gz|tgz|tar\.zst|tar)(\.age)?$/i, "");
  return `${dir}/${name === base ? `${base}.view` : name}`;
}

function _port(text: string | undefined, flag: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw usageError(`${flag} must be a port number, not ${JSON.stringify(text)}`);
  }
  return port;
}
