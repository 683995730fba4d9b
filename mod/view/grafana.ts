/**
 * The Grafana side of `promcase view`: the customer's own dashboards, rewritten so that every
 * Prometheus query goes to the restored data and the time range is the incident window, plus the
 * files that start a Grafana on them (provisioning YAML, a docker-compose file, or a `grafana.ini`
 * for a local `grafana server`). Everything here is pure: it returns texts and objects, the caller
 * writes files and starts processes.
 *
 * Layout the generated files assume, relative to one directory of the caller's choosing:
 *
 * ```text
 * provisioning/datasources/promcase.yaml          the restored Prometheus, the default datasource
 * provisioning/dashboards/promcase.yaml           a file provider reading dashboards/ with folders
 * compose-provisioning/datasources/promcase.yaml  the same two for the Grafana container, which
 * compose-provisioning/dashboards/promcase.yaml   sees Prometheus and dashboards/ under other names
 * dashboards/<folder>/<file>.json                 the rewritten dashboards ("" folder = General)
 * ```
 *
 * @example
 * ```ts
 * import {
 *   composeFile,
 *   containerPrometheusArgs,
 *   dashboardLink,
 *   grafanaIni,
 *   provisioningFiles,
 *   rewriteDashboard,
 * } from "./grafana.ts";
 * const out = "/tmp/case-1234/grafana";
 * const window = { from: "2026-11-25T08:00:00Z", to: "2026-11-25T11:00:00Z" };
 * const customerDashboard = JSON.parse(await Deno.readTextFile("node-exporter-full.json"));
 * const { dashboard } = rewriteDashboard(customerDashboard, {
 *   datasourceUid: "promcase",
 *   datasourceName: "promcase",
 *   ...window,
 * });
 * // Write each of these at `${out}/${path}`.
 * const files = provisioningFiles({
 *   datasourceUid: "promcase",
 *   datasourceName: "promcase",
 *   prometheusUrl: "http://127.0.0.1:9090", // the local Prometheus, for a local grafana server
 *   dashboardsPath: `${out}/dashboards`,
 *   dashboards: [{ folder: "Infra", fileName: "node.json", dashboard }],
 * });
 * // Either a local `grafana server --homepath /usr/share/grafana --config ${out}/grafana.ini` ...
 * const ini = grafanaIni({ dataDir: `${out}/data`, provisioningDir: `${out}/provisioning` });
 * // ... or docker compose, with the compose-provisioning/ set.
 * const compose = composeFile({
 *   dataDir: "/tmp/case-1234/data",
 *   configFile: "/tmp/case-1234/prometheus.yml",
 *   provisioningDir: `${out}/compose-provisioning`,
 *   dashboardsDir: `${out}/dashboards`,
 *   prometheusArgs: containerPrometheusArgs(["--storage.tsdb.retention.time=3660d"]),
 * });
 * dashboardLink("http://127.0.0.1:3000", String(dashboard.uid), window.from, window.to);
 * ```
 *
 * @module
 */

import { PromcaseError, usageError } from "../errors.ts";
import { parseDuration, parseTime } from "../window.ts";
import { toYaml } from "./_yaml.ts";

/** Prometheus image used by {@linkcode composeFile} unless told otherwise (an LTS release). */
export const DEFAULT_PROMETHEUS_IMAGE = "prom/prometheus:v3.5.0";
/** Grafana image used by {@linkcode composeFile} unless told otherwise. */
export const DEFAULT_GRAFANA_IMAGE = "grafana/grafana:12.2.1";

/** Name of the provisioned datasource, unless the caller picks another. */
export const DEFAULT_DATASOURCE_NAME = "promcase";
/** UID of the provisioned datasource, unless the caller picks another. */
export const DEFAULT_DATASOURCE_UID = "promcase";

/**
 * The provisioning dir for a Grafana that sees the given `prometheusUrl` and `dashboardsPath`
 * (a local `grafana server`, see {@linkcode grafanaIni}), relative to the output directory.
 */
export const PROVISIONING_DIR = "provisioning";
/** The datasource provisioning file, relative to the output directory. */
export const PROVISIONING_DATASOURCES_FILE = `${PROVISIONING_DIR}/datasources/promcase.yaml`;
/** The dashboard provider file, relative to the output directory. */
export const PROVISIONING_DASHBOARDS_FILE = `${PROVISIONING_DIR}/dashboards/promcase.yaml`;
/**
 * The provisioning dir for the Grafana container of {@linkcode composeFile}: the same, with the
 * datasource at {@linkcode COMPOSE_PROMETHEUS_URL} and the provider reading
 * {@linkcode GRAFANA_CONTAINER_DASHBOARDS_DIR}. A second set, because the two Grafanas reach
 * Prometheus and the dashboards under different names.
 */
export const COMPOSE_PROVISIONING_DIR = "compose-provisioning";
/** The container's datasource provisioning file, relative to the output directory. */
export const COMPOSE_PROVISIONING_DATASOURCES_FILE =
  `${COMPOSE_PROVISIONING_DIR}/datasources/promcase.yaml`;
/** The container's dashboard provider file, relative to the output directory. */
export const COMPOSE_PROVISIONING_DASHBOARDS_FILE =
  `${COMPOSE_PROVISIONING_DIR}/dashboards/promcase.yaml`;
/** Where the dashboard JSON files go, relative to the output directory. */
export const DASHBOARDS_DIR = "dashboards";

/** Where the Grafana container reads provisioning files (the image's default). */
export const GRAFANA_CONTAINER_PROVISIONING_DIR = "/etc/grafana/provisioning";
/** Where the Grafana container sees the dashboards directory; the provider points here. */
export const GRAFANA_CONTAINER_DASHBOARDS_DIR = "/var/lib/grafana/dashboards";
/** Where the Prometheus container keeps its storage (the image's default). */
export const PROMETHEUS_CONTAINER_DATA_DIR = "/prometheus";
/** Where the Prometheus container reads its config (the image's default). */
export const PROMETHEUS_CONTAINER_CONFIG_FILE = "/etc/prometheus/prometheus.yml";
/** The Prometheus URL as the Grafana container reaches it inside the compose network. */
export const COMPOSE_PROMETHEUS_URL = "http://prometheus:9090";

/** A Grafana organization role. */
export type GrafanaRole = "Viewer" | "Editor" | "Admin";

/** One of the customer's datasources, as Grafana's `/api/datasources` lists it. */
export interface CustomerDatasource {
  /** The datasource UID. */
  uid?: string;
  /** The datasource name. */
  name?: string;
  /** The plugin id, e.g. `prometheus`, `loki`. */
  type?: string;
}

/** How to rewrite a dashboard. */
export interface RewriteOptions {
  /** UID of the provisioned local Prometheus datasource. */
  datasourceUid: string;
  /** Name of the provisioned local Prometheus datasource. */
  datasourceName: string;
  /**
   * Start of the incident window: RFC 3339, Unix milliseconds (13+ digits) or seconds as text
   * (what `parseTime` takes), or milliseconds as a number or bigint.
   */
  from: string | number | bigint;
  /** End of the incident window, in the same forms as `from`. */
  to: string | number | bigint;
  /**
   * The customer's datasources (from the captured `datasources.json`), to tell which references by
   * name or bare UID are Prometheus. Without it, such references count as Prometheus when nothing
   * in the dashboard points at another kind of datasource.
   */
  customerDatasources?: CustomerDatasource[];
}

/** A rewritten dashboard and what was done to it. */
export interface RewriteResult {
  /** The new dashboard; the input is left untouched. */
  dashboard: Record<string, unknown>;
  /**
   * How many datasource references, datasource variables, inlined library panels and `${...}`
   * import placeholders were rewritten (time range, refresh, `id` and `uid` are not counted).
   */
  changes: number;
  /** The distinct Prometheus datasource references found (`${DS_PROMETHEUS}`, a UID, a name). */
  datasourcesSeen: string[];
  /** References to datasources that are not Prometheus (or not known to be), left as they were. */
  unmapped: string[];
  /** What the rewritten dashboard will still lack, in words. */
  warnings: string[];
}

/** One dashboard to provision. */
export interface DashboardFile {
  /** Folder title in Grafana; `""` (or `"General"`) is the root. */
  folder: string;
  /** File name; `.json` is added when missing. */
  fileName: string;
  /** The (rewritten) dashboard. */
  dashboard: Record<string, unknown>;
}

/** What {@linkcode provisioningFiles} needs. */
export interface ProvisioningOptions {
  /** Name of the Prometheus datasource to provision. */
  datasourceName: string;
  /** UID of the Prometheus datasource to provision (Grafana UID rules: 1 to 40 of `[A-Za-z0-9_-]`). */
  datasourceUid: string;
  /**
   * URL at which the Grafana reading `provisioning/` reaches Prometheus, e.g.
   * `http://127.0.0.1:9090` for a local `grafana server` (the compose set always uses
   * {@linkcode COMPOSE_PROMETHEUS_URL}).
   */
  prometheusUrl: string;
  /** The dashboards. */
  dashboards: DashboardFile[];
  /**
   * The absolute path at which the Grafana reading `provisioning/` sees the `dashboards/`
   * directory (a local `grafana server`: the real path of `<output dir>/dashboards`). Defaults to
   * {@linkcode GRAFANA_CONTAINER_DASHBOARDS_DIR}; the compose set always uses that.
   */
  dashboardsPath?: string;
  /**
   * The customer's scrape interval (Prometheus duration, e.g. `30s`), for the datasource's
   * `timeInterval`: `$__rate_interval` and the minimum step derive from it, and with the 15s
   * default a slower scrape leaves `rate()` panels empty.
   */
  scrapeInterval?: string;
  /**
   * The version of the Prometheus that serves the data to the Grafana reading `provisioning/`
   * (the local binary), so Grafana picks the APIs that release has. Not the customer's: their
   * release does not answer the queries.
   */
  prometheusVersion?: string;
  /**
   * The version of the Prometheus container the `compose-provisioning/` set talks to (default:
   * the tag of {@linkcode DEFAULT_PROMETHEUS_IMAGE}).
   */
  composePrometheusVersion?: string;
}

/** Host ports for {@linkcode composeFile}. */
export interface ComposePorts {
  /** Host port for Grafana (default 3000). */
  grafana?: number;
  /** Host port for Prometheus' own UI (default 9090); `null` publishes none. */
  prometheus?: number | null;
  /** Host address to publish on (default `127.0.0.1`: customer data stays off the network). */
  address?: string;
}

/** What {@linkcode composeFile} needs. Host paths are best absolute. */
export interface ComposeOptions {
  /** Host path of the restored Prometheus storage dir; mounted read-write (Prometheus locks it). */
  dataDir: string;
  /** Host path of the Prometheus config file. */
  configFile: string;
  /**
   * Host path of the `compose-provisioning/` dir written from {@linkcode provisioningFiles}
   * (its `datasources/` and `dashboards/` are mounted).
   */
  provisioningDir: string;
  /** Host path of the `dashboards/` dir written from {@linkcode provisioningFiles}. */
  dashboardsDir: string;
  /**
   * Prometheus flags with container paths and a listen address reachable from Grafana's container;
   * {@linkcode containerPrometheusArgs} turns `serveCommand`'s argv into them.
   */
  prometheusArgs: string[];
  /** Prometheus image with a pinned tag or digest (default {@linkcode DEFAULT_PROMETHEUS_IMAGE}). */
  prometheusImage?: string;
  /** Grafana image with a pinned tag or digest (default {@linkcode DEFAULT_GRAFANA_IMAGE}). */
  grafanaImage?: string;
  /** Published ports. */
  ports?: ComposePorts;
  /**
   * `uid:gid` to run Prometheus as. The image runs as `nobody`, which cannot write a data dir the
   * engineer restored as themselves; pass their ids (`Deno.uid()`, `Deno.gid()`).
   */
  prometheusUser?: string;
  /** Compose project name (lowercase letters, digits, `-`, `_`; others are replaced). */
  projectName?: string;
  /** Role of anonymous visitors (default `Editor`: Explore needs it, see {@linkcode grafanaIni}). */
  anonymousRole?: GrafanaRole;
  /**
   * A second Grafana service, `grafana-host`, for when Prometheus already runs on the host (the
   * one `view` started): on the host network, reading the `provisioning/` set written for a local
   * Grafana, so its datasource is the host's `http://127.0.0.1:PORT`. It is in the `host`
   * profile, so a plain `docker compose up` leaves it out; `docker compose up grafana-host`
   * starts it alone (no `depends_on`: no second Prometheus on the same data).
   */
  hostGrafana?: HostGrafanaOptions;
}

/** What the `grafana-host` service of {@linkcode composeFile} needs. */
export interface HostGrafanaOptions {
  /** Host path of the `provisioning/` dir (its datasource URL is a host loopback URL). */
  provisioningDir: string;
  /**
   * Host path of the `dashboards/` dir, as the `provisioning/` provider names it: it is mounted
   * at the same path inside the container.
   */
  dashboardsDir: string;
  /** Port Grafana listens on, on the host's loopback (default 3000). */
  port?: number;
}

/** What {@linkcode grafanaIni} needs: paths are as the local `grafana server` sees them. */
export interface GrafanaIniOptions {
  /** Grafana's state (SQLite database, sessions): a fresh, throwaway directory. */
  dataDir: string;
  /** The `provisioning/` dir written from {@linkcode provisioningFiles}. */
  provisioningDir: string;
  /** Log directory (default `<dataDir>/log`). */
  logsDir?: string;
  /** Plugin directory (default `<dataDir>/plugins`). */
  pluginsDir?: string;
  /** Address to listen on (default `127.0.0.1`). */
  httpAddr?: string;
  /** Port to listen on (default 3000). */
  httpPort?: number;
  /** Role of anonymous visitors (default `Editor`, so that Explore works). */
  anonymousRole?: GrafanaRole;
}

// Plugin ids whose queries are PromQL against the Prometheus HTTP API: they can be served by the
// local Prometheus datasource as they are.
const _PROMETHEUS_TYPES = new Set([
  "prometheus",
  "grafana-amazonprometheus-datasource",
  "grafana-azureprometheus-datasource",
]);
// Grafana's built-in pseudo datasources (annotations and alerts, mixed, dashboard, expressions).
const _BUILTIN_UIDS = new Set([
  "grafana",
  "-- Grafana --",
  "-- Mixed --",
  "-- Dashboard --",
  "__expr__",
]);
const _BUILTIN_TYPES = new Set(["datasource", "grafana", "__expr__", "mixed", "dashboard"]);
// A whole-string variable reference in any of Grafana's syntaxes: $x, ${x}, ${x:fmt}, [[x]].
const _VARIABLE_REF = /^(?:\$(\w+)|\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\])$/;
// Grafana's dashboard and datasource UID rule (util.IsValidShortUID and MaxUIDLength).
const _UID = /^[A-Za-z0-9_-]{1,40}$/;

type _Kind = "prometheus" | "builtin" | "default" | "other" | "unknown";

interface _Input {
  type: string;
  pluginId?: string;
  value?: unknown;
}

interface _Context {
  uid: string;
  name: string;
  inputs: Map<string, _Input>;
  variables: Map<string, string>;
  customerByUid: Map<string, string>;
  customerByName: Map<string, string>;
  prometheusOnly: boolean;
}

interface _State {
  changes: number;
  seen: Set<string>;
  unmapped: Set<string>;
  warnings: string[];
}

/**
 * Rewrites a customer's dashboard for the local Grafana: every Prometheus datasource reference
 * (string names, `${DS_X}` import placeholders, `$var` datasource variables, `{type, uid}` objects,
 * in panels, nested row panels, old-style `rows`, targets, template variables and annotations)
 * points at the provisioned datasource; datasource template variables select it; library panels
 * carried in `__elements` are inlined; `__inputs` is removed after its constants are substituted;
 * the time range is the incident window, auto-refresh is off, `id` is null and `uid` is kept
 * (derived from the title when missing, made valid when Grafana would refuse it). Grafana's built-in datasources and those of
 * other kinds are left as they are.
 *
 * Accepts the dashboard itself or the API's `{dashboard, meta}` shape.
 *
 * @example
 * ```ts
 * import { rewriteDashboard } from "./grafana.ts";
 * const json = JSON.parse(await Deno.readTextFile("bind9-full.json"));
 * const { dashboard, datasourcesSeen } = rewriteDashboard(json, {
 *   datasourceUid: "promcase",
 *   datasourceName: "promcase",
 *   from: "2026-11-25T08:00:00Z",
 *   to: "2026-11-25T11:00:00Z",
 * });
 * datasourcesSeen; // ["${DS_PROMETHEUS}", "000000001"]
 * dashboard.time; // { from: "2026-11-25T08:00:00.000Z", to: "2026-11-25T11:00:00.000Z" }
 * ```
 */
export function rewriteDashboard(dashboard: unknown, options: RewriteOptions): RewriteResult {
  _checkDatasource(options.datasourceUid, options.datasourceName);
  const source = _unwrap(dashboard);
  const from = _toMs(options.from, "from");
  const to = _toMs(options.to, "to");
  if (from >= to) {
    throw usageError(`the time window is empty: from ${_iso(from)} is not before to ${_iso(to)}`);
  }

  const dash = structuredClone(source);
  const state: _State = { changes: 0, seen: new Set(), unmapped: new Set(), warnings: [] };
  _inlineLibraryPanels(dash, state);
  const ctx = _context(dash, options);
  delete dash.__inputs;
  delete dash.__elements;

  // __requires lists plugin ids, not references: it stays as it is (Grafana ignores it here).
  for (const [key, value] of Object.entries(dash)) {
    if (key !== "__requires") _mapDatasources(value, ctx, state);
  }
  _updateDatasourceVariables(dash, ctx, state);
  _substituteInputs(dash, ctx, state);

  dash.id = null;
  dash.uid = _dashboardUid(dash, state);
  dash.time = { from: _iso(from), to: _iso(to) };
  dash.refresh = "";

  return {
    dashboard: dash,
    changes: state.changes,
    datasourcesSeen: [...state.seen].sort(),
    unmapped: [...state.unmapped].sort(),
    warnings: state.warnings,
  };
}

/**
 * The provisioning files for a Grafana showing `dashboards` against the local Prometheus, keyed by
 * path relative to the output directory (see the module docs for the layout): the datasource file
 * and the dashboard provider (`foldersFromFilesStructure`, so each folder becomes a Grafana folder)
 * for a local Grafana in `provisioning/` and for the compose container in `compose-provisioning/`,
 * and one JSON file per dashboard, shared by both.
 *
 * Throws when two dashboards would land in the same file (also on case-insensitive file systems)
 * or share a UID, since Grafana would then show only one of them.
 */
export function provisioningFiles(options: ProvisioningOptions): Record<string, string> {
  _checkDatasource(options.datasourceUid, options.datasourceName);
  _checkUrl(options.prometheusUrl);
  const dashboardsPath = options.dashboardsPath ?? GRAFANA_CONTAINER_DASHBOARDS_DIR;
  if (!dashboardsPath) throw new TypeError("dashboardsPath must not be empty");

  const jsonData: Record<string, unknown> = { httpMethod: "POST", prometheusType: "Prometheus" };
  if (options.scrapeInterval !== undefined) {
    parseDuration(options.scrapeInterval); // throws a usage error with the accepted syntax
    jsonData.timeInterval = options.scrapeInterval.trim();
  }
  const datasource = (url: string, version: string | undefined) =>
    _datasourceYaml(
      options,
      url,
      // Without build metadata ("2.42.0+ds" of Debian's package): Grafana compares semver.
      version
        ? { ...jsonData, prometheusVersion: version.replace(/^v/, "").split("+")[0] }
        : jsonData,
    );

  const files: Record<string, string> = {};
  files[PROVISIONING_DATASOURCES_FILE] = datasource(
    options.prometheusUrl,
    options.prometheusVersion,
  );
  files[PROVISIONING_DASHBOARDS_FILE] = _providerYaml(dashboardsPath);
  files[COMPOSE_PROVISIONING_DATASOURCES_FILE] = datasource(
    COMPOSE_PROMETHEUS_URL,
    options.composePrometheusVersion ?? imageVersion(DEFAULT_PROMETHEUS_IMAGE),
  );
  files[COMPOSE_PROVISIONING_DASHBOARDS_FILE] = _providerYaml(GRAFANA_CONTAINER_DASHBOARDS_DIR);

  const paths = new Map<string, string>();
  const uids = new Map<string, string>();
  for (const entry of options.dashboards) {
    const path = dashboardFilePath(entry.folder, entry.fileName);
    const key = path.toLowerCase();
    if (paths.has(key)) {
      throw new PromcaseError(`two dashboards would be written to ${path} (and ${paths.get(key)})`);
    }
    paths.set(key, path);
    const uid = entry.dashboard.uid;
    if (typeof uid === "string") {
      if (uids.has(uid)) {
        throw new PromcaseError(`dashboards ${uids.get(uid)} and ${path} have the same uid ${uid}`);
      }
      uids.set(uid, path);
    }
    files[path] = JSON.stringify(entry.dashboard, null, 2) + "\n";
  }
  return files;
}

/**
 * Where {@linkcode provisioningFiles} writes a dashboard: `dashboards/<folder>/<file>.json`, or
 * `dashboards/<file>.json` for the General folder (`""` or `"General"`, which Grafana reserves).
 * Folder and file names become single safe path segments: separators, characters Windows forbids
 * and control characters turn into `_`, and `.`/`..` cannot escape the directory.
 */
export function dashboardFilePath(folder: string, fileName: string): string {
  const base = fileName.replace(/\.json$/i, "");
  const file = `${_safeSegment(base)}.json`;
  const trimmed = folder.trim();
  if (trimmed === "" || trimmed.toLowerCase() === "general") return `${DASHBOARDS_DIR}/${file}`;
  return `${DASHBOARDS_DIR}/${_safeSegment(trimmed)}/${file}`;
}

/**
 * A docker-compose file running the restored data in a pinned Prometheus image and the customer's
 * dashboards in a pinned Grafana image: anonymous access, no login form, no calls home, the
 * provisioning files and dashboards mounted read-only, ports published on loopback only.
 *
 * Throws when an image is not pinned (no tag, `latest`), since the point is to show the same
 * thing every time, or when Prometheus would listen on a loopback address Grafana cannot reach.
 */
export function composeFile(options: ComposeOptions): string {
  const prometheusImage = options.prometheusImage ?? DEFAULT_PROMETHEUS_IMAGE;
  const grafanaImage = options.grafanaImage ?? DEFAULT_GRAFANA_IMAGE;
  _checkPinned(prometheusImage);
  _checkPinned(grafanaImage);
  for (const key of ["dataDir", "configFile", "provisioningDir", "dashboardsDir"] as const) {
    if (!options[key]) throw new TypeError(`composeFile: ${key} must not be empty`);
  }
  for (const arg of options.prometheusArgs) {
    if (/^--web\.listen-address=(127\.|localhost|\[::1\])/.test(arg)) {
      throw new TypeError(
        `composeFile: ${arg} is unreachable from the Grafana container; use 0.0.0.0:9090`,
      );
    }
  }
  const address = options.ports?.address ?? "127.0.0.1";
  const grafanaPort = _port(options.ports?.grafana ?? 3000);
  const prometheusPort = options.ports?.prometheus === null
    ? null
    : _port(options.ports?.prometheus ?? 9090);
  const publish = (port: number, inner: number) =>
    `${address.includes(":") ? `[${address}]` : address}:${port}:${inner}`;

  const prometheus: Record<string, unknown> = {
    image: prometheusImage,
    user: options.prometheusUser,
    command: options.prometheusArgs,
    volumes: [
      _bind(options.dataDir, PROMETHEUS_CONTAINER_DATA_DIR, false),
      _bind(options.configFile, PROMETHEUS_CONTAINER_CONFIG_FILE, true),
    ],
    ports: prometheusPort === null ? undefined : [publish(prometheusPort, 9090)],
  };
  const environment: Record<string, string> = {};
  for (const [section, key, value] of _grafanaSettings(options.anonymousRole ?? "Editor")) {
    environment[`GF_${section.toUpperCase().replace(/[.-]/g, "_")}_${key.toUpperCase()}`] = value;
  }
  const grafana: Record<string, unknown> = {
    image: grafanaImage,
    depends_on: ["prometheus"],
    environment,
    // Only the two provisioning kinds we write are mounted, so the image's other (empty)
    // provisioning dirs stay and Grafana does not complain about missing ones.
    volumes: [
      _bind(
        _joinHost(options.provisioningDir, "datasources"),
        `${GRAFANA_CONTAINER_PROVISIONING_DIR}/datasources`,
        true,
      ),
      _bind(
        _joinHost(options.provisioningDir, "dashboards"),
        `${GRAFANA_CONTAINER_PROVISIONING_DIR}/dashboards`,
        true,
      ),
      _bind(options.dashboardsDir, GRAFANA_CONTAINER_DASHBOARDS_DIR, true),
    ],
    ports: [publish(grafanaPort, 3000)],
  };
  const services: Record<string, unknown> = { prometheus, grafana };
  if (options.hostGrafana) {
    const host = options.hostGrafana;
    const port = _port(host.port ?? 3000);
    services["grafana-host"] = {
      image: grafanaImage,
      profiles: ["host"],
      network_mode: "host",
      environment: {
        ...environment,
        GF_SERVER_HTTP_ADDR: "127.0.0.1",
        GF_SERVER_HTTP_PORT: String(port),
      },
      volumes: [
        _bind(
          _joinHost(host.provisioningDir, "datasources"),
          `${GRAFANA_CONTAINER_PROVISIONING_DIR}/datasources`,
          true,
        ),
        _bind(
          _joinHost(host.provisioningDir, "dashboards"),
          `${GRAFANA_CONTAINER_PROVISIONING_DIR}/dashboards`,
          true,
        ),
        // At the same path: the provider of provisioning/ names the host path.
        _bind(host.dashboardsDir, host.dashboardsDir, true),
      ],
    };
  }
  const project = options.projectName === undefined
    ? undefined
    : options.projectName.toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^[^a-z0-9]+/, "") ||
      "promcase";
  return "# Written by promcase view: the restored Prometheus data and the customer's dashboards.\n" +
    toYaml({ name: project, services }, { escapeDollar: true });
}

/**
 * Turns the argv of a local Prometheus (as `serveCommand` builds it: binary first, `--flag=value`
 * form) into the flags for the Prometheus container: config and storage at the image's paths,
 * listening on all of the container's interfaces so that Grafana's container reaches it; other
 * flags (retention, feature flags) are kept.
 */
export function containerPrometheusArgs(argv: string[]): string[] {
  const wanted: Record<string, string> = {
    "--config.file": PROMETHEUS_CONTAINER_CONFIG_FILE,
    "--storage.tsdb.path": PROMETHEUS_CONTAINER_DATA_DIR,
    "--web.listen-address": "0.0.0.0:9090",
  };
  const args = argv.filter((arg, i) => i > 0 || arg.startsWith("-"))
    .filter((arg) => !(arg.split("=")[0] in wanted));
  return [...Object.entries(wanted).map(([flag, value]) => `${flag}=${value}`), ...args];
}

/**
 * The `grafana.ini` for a local `grafana server --homepath <install dir> --config <this file>`:
 * paths, loopback listener, anonymous access without a login form, no calls home.
 *
 * Throws on a path Grafana would mangle (`${...}`/`$__...` expansion, line breaks, backticks).
 */
export function grafanaIni(options: GrafanaIniOptions): string {
  const port = _port(options.httpPort ?? 3000);
  const settings: [string, string, string][] = [
    ["paths", "data", options.dataDir],
    ["paths", "logs", options.logsDir ?? _joinHost(options.dataDir, "log")],
    ["paths", "plugins", options.pluginsDir ?? _joinHost(options.dataDir, "plugins")],
    ["paths", "provisioning", options.provisioningDir],
    ["server", "http_addr", options.httpAddr ?? "127.0.0.1"],
    ["server", "http_port", String(port)],
    ["log", "mode", "console"],
    ..._grafanaSettings(options.anonymousRole ?? "Editor"),
  ];
  const lines = ["; Written by promcase view: a throwaway Grafana for the customer's dashboards."];
  let current = "";
  for (const [section, key, value] of settings) {
    if (section !== current) {
      lines.push("", `[${section}]`);
      current = section;
    }
    lines.push(`${key} = ${_iniValue(value)}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * The URL of a dashboard at the incident window: `<grafanaUrl>/d/<uid>?from=<ms>&to=<ms>`, with
 * `var-<name>=<value>` for each template variable given.
 */
export function dashboardLink(
  grafanaUrl: string,
  uid: string,
  from: string | number | bigint,
  to: string | number | bigint,
  variables: Record<string, string | string[]> = {},
): string {
  const params = new URLSearchParams({
    from: String(_toMs(from, "from")),
    to: String(_toMs(to, "to")),
  });
  for (const [name, value] of Object.entries(variables)) {
    for (const v of Array.isArray(value) ? value : [value]) params.append(`var-${name}`, v);
  }
  return `${grafanaUrl.replace(/\/+$/, "")}/d/${encodeURIComponent(uid)}?${params}`;
}

/** The version in an image reference's tag (`prom/prometheus:v3.5.0` gives `3.5.0`), if any. */
export function imageVersion(image: string): string | undefined {
  const name = image.split("@")[0];
  const tag = name.slice(name.lastIndexOf("/") + 1).split(":")[1];
  return tag && /^v?\d+\.\d+\.\d+/.test(tag) ? tag.replace(/^v/, "") : undefined;
}

/** Name of the incident annotation {@linkcode addIncidentAnnotations} adds. */
export const INCIDENT_ANNOTATION = "promcase: incident time";
/** Name of the alerts annotation {@linkcode addIncidentAnnotations} adds. */
export const ALERTS_ANNOTATION = "promcase: firing alerts";

/** What {@linkcode addIncidentAnnotations} needs. */
export interface IncidentAnnotationOptions {
  /** UID of the provisioned local Prometheus datasource. */
  datasourceUid: string;
  /** Name of the provisioned local Prometheus datasource. */
  datasourceName: string;
  /** The incident time (`--at` of the export), in Unix milliseconds. */
  atMs: number;
}

/**
 * Adds two annotations to a (rewritten) dashboard, both queries on the local Prometheus, so that
 * they need nothing stored in Grafana's database:
 *
 * - the incident time: `vector(<at ms>)` with "use value for time" (Grafana's Prometheus
 *   annotation support takes the sample value as the event time and merges equal times into one
 *   event, so it is one marker at `--at`, whatever the step);
 * - the customer's alerts: `ALERTS{alertstate="firing"}`, one region per firing alert, titled
 *   by `alertname` and tagged with it and `severity`.
 *
 * Dashboards of schema versions before 33 (Grafana 8.3) name datasources by string, later ones
 * by `{type, uid}`: the annotations follow the dashboard's own schema. Annotations of an earlier
 * run are replaced, not doubled. Mutates and returns `dashboard`.
 */
export function addIncidentAnnotations(
  dashboard: Record<string, unknown>,
  options: IncidentAnnotationOptions,
): Record<string, unknown> {
  if (!Number.isSafeInteger(options.atMs)) throw new TypeError(`atMs ${options.atMs} is invalid`);
  const schema = typeof dashboard.schemaVersion === "number" ? dashboard.schemaVersion : 0;
  const datasource = schema > 0 && schema < 33
    ? options.datasourceName
    : { type: "prometheus", uid: options.datasourceUid };
  const annotations = _isObject(dashboard.annotations) ? dashboard.annotations : {};
  const list = _array(annotations.list).filter((a) =>
    !(_isObject(a) && (a.name === INCIDENT_ANNOTATION || a.name === ALERTS_ANNOTATION))
  );
  list.push(
    {
      name: INCIDENT_ANNOTATION,
      datasource,
      enable: true,
      hide: false,
      iconColor: "red",
      expr: `vector(${options.atMs})`,
      useValueForTime: true,
      step: "60s",
      titleFormat: "Incident",
      textFormat: `promcase export --at ${_iso(options.atMs)}`,
      tagKeys: "",
    },
    {
      name: ALERTS_ANNOTATION,
      datasource,
      enable: true,
      hide: false,
      iconColor: "orange",
      expr: 'ALERTS{alertstate="firing"}',
      step: "60s",
      titleFormat: "{{alertname}}",
      textFormat: "{{alertname}} firing",
      tagKeys: "alertname,severity",
      useValueForTime: false,
    },
  );
  dashboard.annotations = { ...annotations, list };
  return dashboard;
}

/** A dashboard about to be provisioned, for {@linkcode resolveTitleClashes}. */
export interface TitledDashboard {
  /** Folder title; `""` or `"General"` is the root. */
  folder: string;
  /** The dashboard; its `title` is changed when it clashes. */
  dashboard: Record<string, unknown>;
}

/**
 * Makes dashboard titles unique where Grafana needs them unique, renaming in place and returning
 * one line per rename. Grafana keeps one dashboard per title and folder: provisioning saves with
 * overwrite, so a second dashboard of the same title in a folder silently takes the first one's
 * place, and a root dashboard titled like a folder is refused ("a folder with the same name
 * already exists"). Titles are compared trimmed and case-insensitively (MySQL compares them so);
 * the later dashboard gets ` (2)`, ` (3)`…, a root dashboard clashing with a folder
 * ` (dashboard)`.
 */
export function resolveTitleClashes(dashboards: TitledDashboard[]): string[] {
  const key = (text: string) => text.trim().toLowerCase();
  const folderOf = (folder: string) => key(folder) === "general" ? "" : folder.trim();
  const folders = new Set(
    dashboards.map((d) => folderOf(d.folder)).filter((f) => f !== "")
      .map(key),
  );
  const taken = new Map<string, Set<string>>();
  for (const d of dashboards) {
    const folder = folderOf(d.folder);
    if (!taken.has(key(folder))) taken.set(key(folder), new Set());
  }
  const renames: string[] = [];
  for (const d of dashboards) {
    const folder = folderOf(d.folder);
    const used = taken.get(key(folder))!;
    const title = String(d.dashboard.title ?? "").trim() || String(d.dashboard.uid ?? "untitled");
    let next = title;
    if (folder === "" && folders.has(key(next))) next = `${title} (dashboard)`;
    for (let n = 2; used.has(key(next)) || (folder === "" && folders.has(key(next))); n++) {
      next = `${title} (${n})`;
    }
    used.add(key(next));
    if (next !== d.dashboard.title) {
      const where = folder === "" ? "the General folder" : `folder ${JSON.stringify(folder)}`;
      const why = folder === "" && folders.has(key(title))
        ? "is also a folder's title"
        : `is taken in ${where}`;
      renames.push(
        `dashboard ${d.dashboard.uid} titled ${JSON.stringify(title)} ${why}: ` +
          `shown as ${JSON.stringify(next)}`,
      );
      d.dashboard.title = next;
    }
  }
  return renames;
}

// ---------------------------------------------------------------------------------------------
// Dashboard rewriting

function _unwrap(value: unknown): Record<string, unknown> {
  let dash = value;
  // The API's {dashboard, meta} shape, as `dashboardFiles` also accepts it.
  if (_isObject(dash) && _isObject(dash.dashboard) && !("panels" in dash) && !("rows" in dash)) {
    dash = dash.dashboard;
  }
  if (!_isObject(dash) || !(Array.isArray(dash.panels) || Array.isArray(dash.rows))) {
    throw new PromcaseError("not a Grafana dashboard: it has neither panels nor rows");
  }
  return dash;
}

function _context(dash: Record<string, unknown>, options: RewriteOptions): _Context {
  const inputs = new Map<string, _Input>();
  for (const input of _array(dash.__inputs)) {
    if (_isObject(input) && typeof input.name === "string") {
      inputs.set(input.name, {
        type: String(input.type ?? ""),
        pluginId: typeof input.pluginId === "string" ? input.pluginId : undefined,
        value: input.value,
      });
    }
  }
  const variables = new Map<string, string>();
  for (const variable of _variables(dash)) {
    if (variable.type === "datasource" && typeof variable.name === "string") {
      variables.set(variable.name, String(variable.query ?? ""));
    }
  }
  const customerByUid = new Map<string, string>();
  const customerByName = new Map<string, string>();
  for (const ds of options.customerDatasources ?? []) {
    if (!ds.type) continue;
    if (ds.uid) customerByUid.set(ds.uid, ds.type);
    if (ds.name) customerByName.set(ds.name, ds.type);
  }

  // Which kinds of datasource the dashboard names anywhere. When all are Prometheus, a reference
  // that says nothing of its kind (a bare name or UID) can only be Prometheus too.
  const kinds = new Set<string>();
  for (const input of inputs.values()) {
    if (input.type === "datasource" && input.pluginId) kinds.add(input.pluginId);
  }
  for (const req of _array(dash.__requires)) {
    if (_isObject(req) && req.type === "datasource" && typeof req.id === "string") {
      kinds.add(req.id);
    }
  }
  for (const plugin of variables.values()) if (plugin) kinds.add(plugin);
  _forEachDatasourceRef(dash, (ref) => {
    if (_isObject(ref) && typeof ref.type === "string" && ref.type) kinds.add(ref.type);
  });
  const prometheusOnly = [...kinds].every((k) => _BUILTIN_TYPES.has(k) || _PROMETHEUS_TYPES.has(k));

  return {
    uid: options.datasourceUid,
    name: options.datasourceName,
    inputs,
    variables,
    customerByUid,
    customerByName,
    prometheusOnly,
  };
}

function _classify(ref: unknown, ctx: _Context): { kind: _Kind; label: string } {
  if (ref === null || ref === undefined) return { kind: "default", label: "" };
  if (typeof ref === "string") return _classifyName(ref, ctx);
  if (!_isObject(ref)) return { kind: "unknown", label: JSON.stringify(ref) };
  const uid = typeof ref.uid === "string" ? ref.uid : undefined;
  if (uid !== undefined && _BUILTIN_UIDS.has(uid)) return { kind: "builtin", label: uid };
  if (typeof ref.type === "string" && ref.type !== "") {
    if (_BUILTIN_TYPES.has(ref.type)) return { kind: "builtin", label: uid ?? ref.type };
    return {
      kind: _PROMETHEUS_TYPES.has(ref.type) ? "prometheus" : "other",
      label: uid ?? ref.type,
    };
  }
  // A ref without type: {} or {uid: null} is the default datasource, otherwise go by its uid.
  if (uid === undefined || uid === "") return { kind: "default", label: "" };
  return _classifyName(uid, ctx);
}

function _classifyName(name: string, ctx: _Context): { kind: _Kind; label: string } {
  // Old dashboards write the default datasource as "default" (or leave the field empty).
  if (name === "" || name === "default") return { kind: "default", label: "" };
  if (_BUILTIN_UIDS.has(name)) return { kind: "builtin", label: name };
  const variable = _VARIABLE_REF.exec(name);
  let type: string | undefined;
  if (variable) {
    const ref = variable[1] ?? variable[2] ?? variable[3];
    type = ctx.inputs.get(ref)?.pluginId ?? ctx.variables.get(ref);
  } else {
    type = ctx.customerByUid.get(name) ?? ctx.customerByName.get(name);
  }
  if (type === undefined) {
    return { kind: ctx.prometheusOnly ? "prometheus" : "unknown", label: name };
  }
  if (_BUILTIN_TYPES.has(type)) return { kind: "builtin", label: name };
  return { kind: _PROMETHEUS_TYPES.has(type) ? "prometheus" : "other", label: name };
}

/** Calls `visit` with every value of a `datasource` key, wherever it is. */
function _forEachDatasourceRef(node: unknown, visit: (ref: unknown) => void): void {
  if (Array.isArray(node)) {
    for (const item of node) _forEachDatasourceRef(item, visit);
  } else if (_isObject(node)) {
    for (const [key, value] of Object.entries(node)) {
      if (key === "datasource") visit(value);
      else _forEachDatasourceRef(value, visit);
    }
  }
}

// Every `datasource` key is a reference (panels, row panels, targets, variables, annotations,
// ad hoc filters), so the whole tree is walked rather than a list of known places.
function _mapDatasources(node: unknown, ctx: _Context, state: _State): void {
  if (Array.isArray(node)) {
    for (const item of node) _mapDatasources(item, ctx, state);
    return;
  }
  if (!_isObject(node)) return;
  for (const [key, value] of Object.entries(node)) {
    if (key !== "datasource") {
      _mapDatasources(value, ctx, state);
      continue;
    }
    const { kind, label } = _classify(value, ctx);
    if (kind === "other" || kind === "unknown") state.unmapped.add(label);
    if (kind !== "prometheus") continue;
    if (label) state.seen.add(label);
    // Keep the reference's shape: old schemas (before Grafana 8.3) resolve strings by name and
    // migrate them on load; objects are resolved by uid.
    const mapped = typeof value === "string"
      ? ctx.name
      : { ...(value as Record<string, unknown>), type: "prometheus", uid: ctx.uid };
    if (JSON.stringify(mapped) !== JSON.stringify(value)) {
      node[key] = mapped;
      state.changes++;
    }
  }
}

// A datasource variable lists the datasources of its plugin type; the local Grafana has exactly
// one Prometheus, so it is selected up front (label = name, value = uid, as Grafana stores it).
function _updateDatasourceVariables(
  dash: Record<string, unknown>,
  ctx: _Context,
  state: _State,
): void {
  for (const variable of _variables(dash)) {
    if (variable.type !== "datasource" || !_PROMETHEUS_TYPES.has(String(variable.query ?? ""))) {
      continue;
    }
    const before = JSON.stringify(variable);
    variable.query = "prometheus";
    const multi = variable.multi === true;
    variable.current = {
      selected: true,
      text: multi ? [ctx.name] : ctx.name,
      value: multi ? [ctx.uid] : ctx.uid,
    };
    variable.options = [{ selected: true, text: ctx.name, value: ctx.uid }];
    // A name filter written for the customer's datasources would hide the local one.
    if (typeof variable.regex === "string" && variable.regex !== "") {
      if (!_regexAccepts(variable.regex, ctx.name)) variable.regex = "";
    }
    if (JSON.stringify(variable) !== before) state.changes++;
  }
}

// Grafana's stringToJsRegex: "/re/flags", or a bare pattern matched whole.
function _regexAccepts(regex: string, name: string): boolean {
  if (regex.includes("$")) return false; // interpolates other variables: cannot be judged here
  try {
    const match = /^\/(.*)\/([gimsuy]*)$/s.exec(regex);
    const re = match ? new RegExp(match[1], match[2]) : new RegExp(`^${regex}$`);
    return re.test(name);
  } catch {
    return false;
  }
}

// Grafana's importer replaces ${NAME} for every __inputs entry across the whole JSON; provisioning
// does not, so it is done here: Prometheus datasource inputs become the local uid, constants
// their default value. The datasource fields are already mapped; this catches links, titles and
// constant variables.
function _substituteInputs(dash: Record<string, unknown>, ctx: _Context, state: _State): void {
  const values = new Map<string, string>();
  for (const [name, input] of ctx.inputs) {
    if (input.type === "datasource" && _PROMETHEUS_TYPES.has(input.pluginId ?? "")) {
      values.set(name, ctx.uid);
    } else if (input.type === "constant") {
      if (typeof input.value === "string" || typeof input.value === "number") {
        values.set(name, String(input.value));
      } else {
        state.warnings.push(`import input ${name} has no default value: \${${name}} stays`);
      }
    }
  }
  if (values.size === 0) return;
  const replace = (text: string) =>
    text.replace(/\$\{(\w+)\}/g, (whole, name) => values.get(name) ?? whole);
  const walk = (node: unknown): unknown => {
    if (typeof node === "string") {
      const out = replace(node);
      if (out !== node) state.changes++;
      return out;
    }
    if (Array.isArray(node)) {
      node.forEach((item, i) => node[i] = walk(item));
    } else if (_isObject(node)) {
      for (const [key, value] of Object.entries(node)) node[key] = walk(value);
    }
    return node;
  };
  walk(dash);
}

// Library panels live in the customer's Grafana, not in the dashboard; an export for sharing
// carries their models in __elements, which provisioning ignores. Inline them so the panels show.
function _inlineLibraryPanels(dash: Record<string, unknown>, state: _State): void {
  const elements = _isObject(dash.__elements) ? dash.__elements : {};
  const visit = (panels: unknown) => {
    if (!Array.isArray(panels)) return;
    panels.forEach((panel, i) => {
      if (!_isObject(panel)) return;
      const lib = panel.libraryPanel;
      if (_isObject(lib) && typeof lib.uid === "string") {
        const element = elements[lib.uid];
        const model = _isObject(element) ? element.model : undefined;
        if (_isObject(model)) {
          const inlined: Record<string, unknown> = { ...structuredClone(model) };
          delete inlined.libraryPanel;
          inlined.id = panel.id ?? model.id;
          inlined.gridPos = panel.gridPos ?? model.gridPos;
          panels[i] = inlined;
          state.changes++;
        } else {
          state.warnings.push(
            `panel "${panel.title ?? lib.name ?? lib.uid}" is library panel ${lib.uid}, ` +
              `which the dashboard does not carry: it will show an error`,
          );
        }
      }
      visit((panels[i] as Record<string, unknown>).panels);
    });
  };
  visit(dash.panels);
  for (const row of _array(dash.rows)) if (_isObject(row)) visit(row.panels);
}

function _dashboardUid(dash: Record<string, unknown>, state: _State): string {
  const uid = dash.uid;
  if (typeof uid === "string" && _UID.test(uid)) return uid;
  if (typeof uid === "string" && uid !== "") {
    const derived = _deriveUid(uid, false);
    state.warnings.push(`uid ${JSON.stringify(uid)} is not valid in Grafana: using ${derived}`);
    return derived;
  }
  return _deriveUid(typeof dash.title === "string" ? dash.title : "", true);
}

// A stable UID from a title (or an invalid UID): the slug when it fits, otherwise a shortened slug
// and a hash of the whole text, so that long titles sharing a prefix stay apart.
function _deriveUid(text: string, lowercase: boolean): string {
  const folded = text.normalize("NFKD").replace(/[\u0300-\u036f]/g, "");
  const slug = (lowercase ? folded.toLowerCase() : folded)
    .replace(/[^A-Za-z0-9_-]+/g, "-")
    .replace(/^-+|-+$/g, "");
  if (slug === "") return `dashboard-${_fnv1a(text)}`;
  if (slug.length <= 40) return slug;
  return `${slug.slice(0, 31).replace(/-+$/, "")}-${_fnv1a(text)}`;
}

function _fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}

function _variables(dash: Record<string, unknown>): Record<string, unknown>[] {
  const templating = dash.templating;
  if (!_isObject(templating)) return [];
  return _array(templating.list).filter(_isObject);
}

// ---------------------------------------------------------------------------------------------
// Provisioning and process configuration

function _datasourceYaml(
  options: ProvisioningOptions,
  url: string,
  jsonData: Record<string, unknown>,
): string {
  return "# Written by promcase: the restored Prometheus, Grafana's only and default datasource.\n" +
    toYaml({
      apiVersion: 1,
      // Remove datasources provisioned by an earlier `view` of another archive.
      prune: true,
      datasources: [{
        name: options.datasourceName,
        type: "prometheus",
        uid: options.datasourceUid,
        access: "proxy",
        orgId: 1,
        url,
        isDefault: true,
        editable: false,
        jsonData,
      }],
    }, { escapeDollar: true });
}

function _providerYaml(path: string): string {
  return "# Written by promcase: the customer's dashboards, one Grafana folder per directory.\n" +
    toYaml({
      apiVersion: 1,
      providers: [{
        name: "promcase",
        orgId: 1,
        type: "file",
        // `folder` and `folderUid` stay unset: foldersFromFilesStructure needs them empty.
        disableDeletion: false,
        allowUiUpdates: false,
        updateIntervalSeconds: 30,
        options: { path, foldersFromFilesStructure: true },
      }],
    }, { escapeDollar: true });
}

// Settings common to the container (as GF_* variables) and the local binary (as grafana.ini).
function _grafanaSettings(role: GrafanaRole): [string, string, string][] {
  if (!["Viewer", "Editor", "Admin"].includes(role)) {
    throw new TypeError(`anonymous role must be Viewer, Editor or Admin, not ${role}`);
  }
  return [
    ["auth", "disable_login_form", "true"],
    ["auth.anonymous", "enabled", "true"],
    // Editor, because Explore (ad hoc PromQL on the customer's data, half of the engineer's job)
    // needs it since Grafana 12 removed `[users] viewers_can_edit`. The provisioned dashboards
    // (allowUiUpdates: false) and the datasource (editable: false) stay read-only for an Editor.
    ["auth.anonymous", "org_role", role],
    ["users", "allow_sign_up", "false"],
    // Grafana 11.5+ installs its preinstall plugin list from grafana.com at every start: an offline
    // laptop would wait for it and log errors.
    ["plugins", "preinstall_disabled", "true"],
    // Customer data is on screen: nothing calls out to grafana.com or gravatar.
    ["analytics", "reporting_enabled", "false"],
    ["analytics", "check_for_updates", "false"],
    ["analytics", "check_for_plugin_updates", "false"],
    ["analytics", "feedback_links_enabled", "false"],
    ["security", "disable_gravatar", "true"],
    ["news", "news_feed_enabled", "false"],
  ];
}

function _iniValue(value: string): string {
  if (/[\r\n`]/.test(value)) throw new TypeError(`cannot write ${JSON.stringify(value)} to an ini`);
  if (/\$\{|\$__/.test(value)) {
    throw new TypeError(`${JSON.stringify(value)} would be expanded by Grafana as a variable`);
  }
  // go-ini cuts a value at # or ; (inline comment) and trims it, unless it is in backticks.
  return /[#;"']|^\s|\s$/.test(value) ? `\`${value}\`` : value;
}

function _checkDatasource(uid: string, name: string): void {
  if (!_UID.test(uid)) {
    throw new TypeError(`datasource uid ${JSON.stringify(uid)}: use 1 to 40 of A-Z a-z 0-9 _ -`);
  }
  if (name.trim() === "") throw new TypeError("datasource name must not be empty");
}

function _checkUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`prometheusUrl ${JSON.stringify(url)} is not a URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new TypeError(`prometheusUrl ${url} must be http or https`);
  }
}

// A tag after the last path component's colon, or a digest; `latest` is not a pin.
function _checkPinned(image: string): void {
  const digest = image.includes("@sha256:");
  const name = image.split("@")[0];
  const tag = name.slice(name.lastIndexOf("/") + 1).split(":")[1];
  if (!digest && (!tag || tag === "latest")) {
    throw new TypeError(`image ${image} is not pinned: give a version tag or digest`);
  }
}

function _bind(source: string, target: string, readOnly: boolean): Record<string, unknown> {
  // The long syntax: host paths with colons (Windows drives) cannot be misread, and a missing
  // source is an error instead of a silently created empty directory.
  return { type: "bind", source, target, read_only: readOnly || undefined };
}

function _joinHost(dir: string, name: string): string {
  const windows = dir.includes("\\") && !dir.includes("/");
  const sep = windows ? "\\" : "/";
  return dir.endsWith(sep) ? `${dir}${name}` : `${dir}${sep}${name}`;
}

function _port(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(`port ${port} is not between 1 and 65535`);
  }
  return port;
}

function _safeSegment(name: string): string {
  const cleaned = [...name]
    .map((c) => c.charCodeAt(0) < 0x20 || c === "\u007f" || '<>:"/\\|?*'.includes(c) ? "_" : c)
    .join("")
    .trim()
    .replace(/[. ]+$/, "") // Windows drops trailing dots and spaces
    .slice(0, 120);
  return cleaned === "" || /^\.+$/.test(cleaned) ? "_" : cleaned;
}

function _toMs(value: string | number | bigint, what: string): number {
  let ms: number;
  if (typeof value === "bigint") ms = Number(value);
  else if (typeof value === "number") ms = value;
  else ms = Number(parseTime(String(value)));
  // Date's range; beyond it toISOString throws.
  if (!Number.isSafeInteger(ms) || Math.abs(ms) > 8.64e15) {
    throw usageError(`invalid ${what} time ${String(value)}`);
  }
  return ms;
}

// Grafana stores absolute dashboard times as ISO strings in UTC and parses them back.
function _iso(ms: number): string {
  return new Date(ms).toISOString();
}

function _isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function _array(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}
