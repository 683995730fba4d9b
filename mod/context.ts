/**
 * Context captured with the data, so the support engineer sees what the customer's Prometheus
 * was told and what it saw: build info, flags, config, rules, alerts, targets, TSDB status and
 * metric metadata from the Prometheus HTTP API, and the customer's Grafana dashboards with their
 * folders and datasources. Everything is masked for secrets before it is stored, and no token
 * ever lands in what is returned.
 *
 * @module
 */

import { describeError, usageError } from "./errors.ts";

/** One captured document, to be stored at `path` inside the archive. */
export interface ContextFile {
  /** Path inside the archive, under `context/`. */
  path: string;
  /** The (masked) content. */
  text: string;
}

/** What a capture produced. */
export interface ContextCapture {
  /** The documents. */
  files: ContextFile[];
  /** Summary for the manifest. */
  summary: Record<string, unknown>;
  /** Why something could not be captured. */
  warnings: string[];
}

/** Responses larger than this are not kept: a capture must not exhaust memory. */
const _MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
const _TIMEOUT_MS = 15_000;
const _MASK = "<masked by promcase>";

/** The Prometheus API documents captured, by file name. */
const _PROMETHEUS_ENDPOINTS: Record<string, string> = {
  buildinfo: "/api/v1/status/buildinfo",
  runtimeinfo: "/api/v1/status/runtimeinfo",
  flags: "/api/v1/status/flags",
  config: "/api/v1/status/config",
  rules: "/api/v1/rules",
  alerts: "/api/v1/alerts",
  targets: "/api/v1/targets",
  tsdb: "/api/v1/status/tsdb",
  metadata: "/api/v1/metadata",
};

/**
 * Captures the Prometheus API documents at `url`. An unreachable Prometheus is not an error: the
 * capture comes back empty with a warning, since the data matters more than its context.
 */
export async function capturePrometheus(url: string): Promise<ContextCapture> {
  const base = url.replace(/\/+$/, "");
  const files: ContextFile[] = [];
  const warnings: string[] = [];
  const captured: string[] = [];
  let version: string | null = null;
  for (const [name, path] of Object.entries(_PROMETHEUS_ENDPOINTS)) {
    let body: unknown;
    try {
      body = await _getJson(`${base}${path}`, {});
    } catch (err) {
      if (name === "buildinfo") {
        warnings.push(
          `Prometheus API at ${base} not reachable (${describeError(err)}): no context captured`,
        );
        break;
      }
      warnings.push(`Prometheus ${path}: ${describeError(err)}`);
      continue;
    }
    if (name === "buildinfo") {
      version = ((body as { data?: { version?: string } }).data?.version) ?? null;
    }
    files.push({ path: `context/prometheus/${name}.json`, text: _json(maskSecrets(body)) });
    captured.push(name);
  }
  return { files, summary: { url: base, version, captured }, warnings };
}

/** Which Grafana dashboards to capture. */
export interface GrafanaSelection {
  /** Only these dashboard UIDs (all when empty). */
  uids?: string[];
  /** Only dashboards in these folders (by title). */
  folders?: string[];
}

/**
 * Captures dashboards (with their folder structure) and datasources from Grafana's HTTP API.
 * Unlike the Prometheus capture, a failure here is an error: the user asked for it explicitly.
 */
export async function captureGrafana(
  url: string,
  token: string | undefined,
  selection: GrafanaSelection = {},
): Promise<ContextCapture> {
  const base = url.replace(/\/+$/, "");
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  const files: ContextFile[] = [];
  const warnings: string[] = [];
  let found: { uid: string; title: string; folderTitle?: string; type?: string }[];
  try {
    found = await _getJson(`${base}/api/search?type=dash-db&limit=5000`, headers) as typeof found;
  } catch (err) {
    throw usageError(`cannot list dashboards at ${base}: ${_redact(describeError(err), token)}`);
  }
  const uids = selection.uids ?? [];
  const folders = selection.folders ?? [];
  const wanted = found.filter((d) =>
    (d.type === undefined || d.type === "dash-db") &&
    (uids.length === 0 || uids.includes(d.uid)) &&
    (folders.length === 0 || folders.includes(d.folderTitle ?? "General"))
  );
  for (const uid of uids) {
    if (!found.some((d) => d.uid === uid)) warnings.push(`Grafana dashboard ${uid} not found`);
  }
  const captured: { uid: string; title: string; folder: string }[] = [];
  for (const entry of wanted) {
    try {
      const body = await _getJson(
        `${base}/api/dashboards/uid/${encodeURIComponent(entry.uid)}`,
        headers,
      ) as { dashboard?: unknown; meta?: { folderTitle?: string } };
      const folder = body.meta?.folderTitle ?? entry.folderTitle ?? "General";
      files.push({
        path: `context/grafana/dashboards/${_safeName(folder)}/${_safeName(entry.uid)}.json`,
        text: _json(maskSecrets(body.dashboard ?? body)),
      });
      captured.push({ uid: entry.uid, title: entry.title, folder });
    } catch (err) {
      warnings.push(`Grafana dashboard ${entry.uid}: ${_redact(describeError(err), token)}`);
    }
  }
  try {
    const datasources = await _getJson(`${base}/api/datasources`, headers);
    files.push({ path: "context/grafana/datasources.json", text: _json(maskSecrets(datasources)) });
  } catch (err) {
    warnings.push(`Grafana datasources: ${_redact(describeError(err), token)}`);
  }
  return { files, summary: { url: base, dashboards: captured }, warnings };
}

/**
 * Adds dashboard JSON files given on the command line (as exported from Grafana's UI, or the API's
 * `{dashboard, meta}` shape) under `context/grafana/dashboards/files/`.
 */
export async function dashboardFiles(paths: string[]): Promise<ContextCapture> {
  const files: ContextFile[] = [];
  const names: string[] = [];
  for (const path of paths) {
    let value: unknown;
    try {
      value = JSON.parse(await Deno.readTextFile(path));
    } catch (err) {
      throw usageError(`cannot use dashboard file ${path}: ${describeError(err)}`);
    }
    const dashboard = (value as { dashboard?: unknown }).dashboard ?? value;
    if (
      typeof dashboard !== "object" || dashboard === null ||
      !("panels" in dashboard || "rows" in dashboard)
    ) {
      throw usageError(`${path} is not a Grafana dashboard (no panels)`);
    }
    const base = path.split(/[\\/]/).pop()!.replace(/\.json$/i, "");
    files.push({
      path: `context/grafana/dashboards/files/${_safeName(base)}.json`,
      text: _json(maskSecrets(dashboard)),
    });
    names.push(base);
  }
  return { files, summary: { files: names }, warnings: [] };
}

const _SECRET_KEY =
  /pass(word|wd)?|secret|token|api[-_]?key|credential|private[-_]?key|authorization|bearer|access[-_]?key|client[-_]?key|session[-_]?key|cookie/i;
// Prometheus' own mask, and names that only look like secrets.
const _ALREADY_MASKED = /^(<secret>|<masked by promcase>|)$/;
const _NOT_SECRET_KEY = /(_file|_files|File|Fields|password_set|passwordSet)$/;

/**
 * Masks what looks like a secret anywhere in a JSON value: values of keys named like passwords,
 * tokens, keys or credentials, passwords in URLs (`user:pass@host`), bearer tokens, and the same
 * `key: value` lines inside YAML strings (Prometheus' `/status/config` returns its config as YAML).
 * Returns a new value.
 */
export function maskSecrets(value: unknown, key = ""): unknown {
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v, key));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, maskSecrets(v, k)]),
    );
  }
  if (typeof value !== "string") return value;
  if (_isSecretKey(key) && !_ALREADY_MASKED.test(value)) return _MASK;
  return maskSecretsInText(value);
}

/** Masks secrets in free text: YAML/INI `key: value` lines, URL passwords, bearer tokens. */
export function maskSecretsInText(text: string): string {
  return text
    .replace(
      // [ \t], not \s: a match must not run on into the next line and hide it.
      /^([ \t]*-?[ \t]*["']?)([\w.-]+)(["']?[ \t]*[:=][ \t]*)(.+)$/gm,
      (line, pre, key, sep, val) =>
        _isSecretKey(key) && !_ALREADY_MASKED.test(val.trim().replace(/^["']|["']$/g, ""))
          ? `${pre}${key}${sep}${_MASK}`
          : line,
    )
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:)([^@\s/]+)@/gi, `$1${_MASK}@`)
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/g, `$1 ${_MASK}`);
}

function _isSecretKey(key: string): boolean {
  return _SECRET_KEY.test(key) && !_NOT_SECRET_KEY.test(key);
}

async function _getJson(url: string, headers: Record<string, string>): Promise<unknown> {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(_TIMEOUT_MS) });
  const length = Number(response.headers.get("content-length") ?? "0");
  if (length > _MAX_RESPONSE_BYTES) {
    await response.body?.cancel();
    throw new Error(`response of ${length} bytes is too large to keep`);
  }
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`HTTP ${response.status}: ${text.slice(0, 200).replace(/\s+/g, " ")}`);
  }
  if (text.length > _MAX_RESPONSE_BYTES) throw new Error("response too large to keep");
  try {
    return JSON.parse(text);
  } catch {
    throw new Error("response is not JSON");
  }
}

function _json(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}

function _safeName(name: string): string {
  return name.replace(/[^\w. -]+/g, "_").replace(/^\.+/, "_").slice(0, 100) || "_";
}

/** Never echo a token back, not even inside an error message. */
function _redact(text: string, token: string | undefined): string {
  return token ? text.replaceAll(token, _MASK) : text;
}
