/**
 * HTTP access to a customer's Prometheus with their authentication and TLS settings: bearer token
 * or basic auth from files, extra headers, CA and client certificates, skipping certificate
 * verification, and a subset of Prometheus' `http_config` YAML (`--http-config-file`).
 *
 * Secrets (tokens, passwords, header values that may be keys) are kept in {@link HttpAuth.secrets}
 * and masked in every message this module builds, including the server's error bodies.
 *
 * TLS in Deno: `fetch` with a `Deno.HttpClient` takes extra CA certificates and a client
 * certificate, but has no per-client switch to skip verification (`--unsafely-ignore-certificate-
 * errors` is a process-wide runtime flag, and baked in at `deno compile` time). Requests that must
 * skip verification therefore go through `node:https` with `rejectUnauthorized: false`, which Deno
 * implements per agent.
 *
 * @module
 */

import https from "node:https";
import { Readable } from "node:stream";
import { dirname, isAbsolute, join } from "node:path";
import { parse as parseYaml } from "yaml";
import { describeError, PromcaseError, usageError } from "../errors.ts";
import { concatBytes } from "../tsdb/encoding.ts";

/** Authentication and TLS settings for requests to one server. Plain data: holds no resources. */
export interface HttpAuth {
  /** Headers sent with every request (`Authorization` and extra headers). */
  headers: Record<string, string>;
  /** Extra trusted CA certificates (PEM). */
  caCerts: string[];
  /** Client certificate (PEM), with {@link HttpAuth.key}. */
  cert?: string;
  /** Client key (PEM). */
  key?: string;
  /** Skip verification of the server's certificate (chain and name). */
  insecureSkipVerify: boolean;
  /** HTTP(S) proxy URL (`proxy_url`); by default the `HTTP(S)_PROXY` environment applies. */
  proxyUrl?: string;
  /** Values that must never appear in a message or log. */
  secrets: string[];
  /** What is used, without secrets, e.g. `bearer token from /etc/token, CA from ca.pem`. */
  description: string;
}

/** No authentication, default TLS. */
export const NO_AUTH: HttpAuth = Object.freeze({
  headers: {},
  caCerts: [],
  insecureSkipVerify: false,
  secrets: [],
  description: "no authentication",
}) as HttpAuth;

/** Command-line style inputs of {@link loadHttpAuth}; every file is read once. */
export interface HttpAuthFlags {
  /** File holding a bearer token (surrounding whitespace is trimmed, as Prometheus does). */
  bearerTokenFile?: string;
  /** Basic auth user name. */
  basicAuthUser?: string;
  /** File holding the basic auth password. */
  basicAuthPasswordFile?: string;
  /** Extra headers, each `Name: value` (values are treated as secrets). */
  headers?: string[];
  /** PEM file of CA certificates to trust in addition to the system's. */
  caFile?: string;
  /** PEM file of a client certificate (with {@link HttpAuthFlags.keyFile}). */
  certFile?: string;
  /** PEM file of the client certificate's key. */
  keyFile?: string;
  /** Do not verify the server's certificate. */
  insecureSkipVerify?: boolean;
  /** A file in Prometheus' `http_config` YAML format (see {@link parseHttpConfig}). */
  httpConfigFile?: string;
}

// Headers the remote-read protocol or HTTP itself sets; a user must not override them.
const _RESERVED_HEADERS = new Set([
  "content-type",
  "content-encoding",
  "content-length",
  "accept-encoding",
  "host",
  "connection",
  "transfer-encoding",
  "x-prometheus-remote-read-version",
]);

interface _AuthParts {
  authorization?: { value: string; what: string };
  headers: Record<string, string>;
  caCerts: string[];
  cert?: string;
  key?: string;
  insecureSkipVerify: boolean;
  proxyUrl?: string;
  secrets: string[];
  described: string[];
}

function _emptyParts(): _AuthParts {
  return { headers: {}, caCerts: [], insecureSkipVerify: false, secrets: [], described: [] };
}

/**
 * Reads the files named by `flags` and returns the settings for {@link fetchJson} and
 * `readRemote`. At most one way of authenticating may be given (flags and config file together).
 * Throws a usage error naming the flag or key at fault, never a secret.
 */
export async function loadHttpAuth(flags: HttpAuthFlags = {}): Promise<HttpAuth> {
  const parts = _emptyParts();
  if (flags.httpConfigFile) {
    let text: string;
    try {
      text = await Deno.readTextFile(flags.httpConfigFile);
    } catch (err) {
      throw usageError(`--http-config-file ${flags.httpConfigFile}: ${describeError(err)}`);
    }
    const config = await _parseHttpConfigParts(text, dirname(flags.httpConfigFile))
      .catch((err) => {
        if (err instanceof PromcaseError) {
          throw usageError(`--http-config-file ${flags.httpConfigFile}: ${err.message}`);
        }
        throw err;
      });
    _mergeParts(parts, config, "--http-config-file");
  }
  const fromFlags = _emptyParts();
  if (flags.bearerTokenFile) {
    const token = await _readSecretFile(flags.bearerTokenFile, "--bearer-token-file");
    _setAuthorization(fromFlags, `Bearer ${token}`, `bearer token from ${flags.bearerTokenFile}`);
    fromFlags.secrets.push(token);
  }
  if (flags.basicAuthUser !== undefined || flags.basicAuthPasswordFile) {
    if (flags.basicAuthUser === undefined) {
      throw usageError("--basic-auth-password-file needs --basic-auth-user");
    }
    const password = flags.basicAuthPasswordFile
      ? await _readSecretFile(flags.basicAuthPasswordFile, "--basic-auth-password-file")
      : "";
    _setBasic(fromFlags, flags.basicAuthUser, password, `basic auth as ${flags.basicAuthUser}`);
  }
  for (const header of flags.headers ?? []) {
    const m = /^([^:\s]+)\s*:\s?(.*)$/.exec(header);
    if (!m) throw usageError(`--header "${_clip(header, 40)}": expected "Name: value"`);
    _addHeader(fromFlags, m[1], m[2], true, "--header");
  }
  if (flags.caFile) {
    fromFlags.caCerts.push(await _readPem(flags.caFile, "--tls-ca-file"));
    fromFlags.described.push(`CA from ${flags.caFile}`);
  }
  if (flags.certFile || flags.keyFile) {
    if (!flags.certFile || !flags.keyFile) {
      throw usageError("a client certificate needs both --tls-cert-file and --tls-key-file");
    }
    fromFlags.cert = await _readPem(flags.certFile, "--tls-cert-file");
    fromFlags.key = await _readPem(flags.keyFile, "--tls-key-file");
    fromFlags.secrets.push(fromFlags.key);
    fromFlags.described.push(`client certificate ${flags.certFile}`);
  }
  if (flags.insecureSkipVerify) {
    fromFlags.insecureSkipVerify = true;
    fromFlags.described.push("certificate NOT verified");
  }
  _mergeParts(parts, fromFlags, "flags");
  return _finish(parts);
}

/**
 * Parses a Prometheus `http_config` document (the format of promtool's `--http.config.file`):
 * `authorization` (`type`, `credentials`, `credentials_file`), `basic_auth` (`username`,
 * `username_file`, `password`, `password_file`), `bearer_token`, `bearer_token_file`,
 * `tls_config` (`ca`, `ca_file`, `cert`, `cert_file`, `key`, `key_file`, `insecure_skip_verify`),
 * `http_headers` (`values`, `secrets`, `files`), `proxy_url`. Relative file names are relative to
 * `baseDir`, as in Prometheus. Settings that would change who we are or what we trust but are not
 * implemented (`oauth2`, `sigv4`, `tls_config.server_name`, …) are refused rather than ignored.
 */
export async function parseHttpConfig(text: string, baseDir = "."): Promise<HttpAuth> {
  return _finish(await _parseHttpConfigParts(text, baseDir));
}

async function _parseHttpConfigParts(text: string, baseDir: string): Promise<_AuthParts> {
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true });
  } catch (err) {
    throw new PromcaseError(`not valid YAML: ${describeError(err)}`);
  }
  doc ??= {};
  const top = _object(doc, "the document");
  const parts = _emptyParts();
  const file = (name: string) => (isAbsolute(name) ? name : join(baseDir, name));
  const str = (v: unknown, key: string): string => {
    if (typeof v !== "string") throw new PromcaseError(`${key} must be a string`);
    return v;
  };
  for (const [key, value] of Object.entries(top)) {
    if (value === null || value === undefined) continue;
    switch (key) {
      case "authorization": {
        const a = _object(value, key);
        _onlyKeys(a, ["type", "credentials", "credentials_file"], key);
        const type = a.type === undefined ? "Bearer" : str(a.type, "authorization.type");
        if (/^basic$/i.test(type)) {
          throw new PromcaseError("authorization.type Basic is not allowed: use basic_auth");
        }
        let credentials: string;
        let what: string;
        if (a.credentials !== undefined && a.credentials_file !== undefined) {
          throw new PromcaseError("authorization: give credentials or credentials_file, not both");
        } else if (a.credentials_file !== undefined) {
          const f = file(str(a.credentials_file, "authorization.credentials_file"));
          credentials = await _readSecretFile(f, "authorization.credentials_file");
          what = `${type} credentials from ${f}`;
        } else {
          credentials = a.credentials === undefined ? "" : str(a.credentials, "credentials");
          what = `${type} credentials`;
        }
        _setAuthorization(parts, `${type} ${credentials}`, what);
        if (credentials) parts.secrets.push(credentials);
        break;
      }
      case "bearer_token":
      case "bearer_token_file": {
        const token = key === "bearer_token"
          ? str(value, key)
          : await _readSecretFile(file(str(value, key)), key);
        const what = key === "bearer_token" ? "bearer token" : `bearer token from ${value}`;
        _setAuthorization(parts, `Bearer ${token}`, what);
        parts.secrets.push(token);
        break;
      }
      case "basic_auth": {
        const b = _object(value, key);
        _onlyKeys(b, ["username", "username_file", "password", "password_file"], key);
        const user = b.username_file !== undefined
          ? await _readSecretFile(file(str(b.username_file, "username_file")), "username_file")
          : b.username === undefined
          ? ""
          : str(b.username, "basic_auth.username");
        if (b.password !== undefined && b.password_file !== undefined) {
          throw new PromcaseError("basic_auth: give password or password_file, not both");
        }
        const password = b.password_file !== undefined
          ? await _readSecretFile(file(str(b.password_file, "password_file")), "password_file")
          : b.password === undefined
          ? ""
          : str(b.password, "basic_auth.password");
        _setBasic(parts, user, password, `basic auth as ${user}`);
        break;
      }
      case "tls_config": {
        const t = _object(value, key);
        _onlyKeys(t, [
          "ca",
          "ca_file",
          "cert",
          "cert_file",
          "key",
          "key_file",
          "insecure_skip_verify",
          "min_version",
          "max_version",
        ], key);
        if (t.ca !== undefined) parts.caCerts.push(str(t.ca, "tls_config.ca"));
        if (t.ca_file !== undefined) {
          const f = file(str(t.ca_file, "tls_config.ca_file"));
          parts.caCerts.push(await _readPem(f, "tls_config.ca_file"));
          parts.described.push(`CA from ${f}`);
        }
        const cert = t.cert_file !== undefined
          ? await _readPem(file(str(t.cert_file, "cert_file")), "tls_config.cert_file")
          : t.cert === undefined
          ? undefined
          : str(t.cert, "tls_config.cert");
        const keyPem = t.key_file !== undefined
          ? await _readPem(file(str(t.key_file, "key_file")), "tls_config.key_file")
          : t.key === undefined
          ? undefined
          : str(t.key, "tls_config.key");
        if ((cert === undefined) !== (keyPem === undefined)) {
          throw new PromcaseError("tls_config: a client certificate needs both cert and key");
        }
        if (cert !== undefined && keyPem !== undefined) {
          parts.cert = cert;
          parts.key = keyPem;
          parts.secrets.push(keyPem);
          parts.described.push("client certificate");
        }
        if (t.insecure_skip_verify !== undefined) {
          if (typeof t.insecure_skip_verify !== "boolean") {
            throw new PromcaseError("tls_config.insecure_skip_verify must be true or false");
          }
          parts.insecureSkipVerify = t.insecure_skip_verify;
          if (t.insecure_skip_verify) parts.described.push("certificate NOT verified");
        }
        break;
      }
      case "http_headers": {
        const h = _object(value, key);
        for (const [name, spec] of Object.entries(h)) {
          const s = _object(spec, `http_headers.${name}`);
          _onlyKeys(s, ["values", "secrets", "files"], `http_headers.${name}`);
          const list = (v: unknown, what: string): string[] => {
            if (v === undefined || v === null) return [];
            if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
              throw new PromcaseError(`http_headers.${name}.${what} must be a list of strings`);
            }
            return v as string[];
          };
          const values = list(s.values, "values").map((v) => ({ v, secret: false }));
          for (const v of list(s.secrets, "secrets")) values.push({ v, secret: true });
          for (const f of list(s.files, "files")) {
            values.push({
              v: await _readSecretFile(file(f), `http_headers.${name}.files`),
              secret: true,
            });
          }
          if (values.length > 0) {
            _addHeader(
              parts,
              name,
              values.map((x) => x.v).join(", "),
              values.some((x) => x.secret),
              "http_headers",
            );
          }
        }
        break;
      }
      case "proxy_url":
        parts.proxyUrl = str(value, key);
        parts.described.push(`proxy ${safeUrl(parts.proxyUrl)}`);
        if (new URL(parts.proxyUrl).password) parts.secrets.push(new URL(parts.proxyUrl).password);
        break;
      case "follow_redirects":
      case "enable_http2":
      case "no_proxy":
      case "proxy_from_environment":
        // fetch follows redirects and negotiates HTTP/2 itself, and reads HTTP(S)_PROXY and
        // NO_PROXY from the environment: nothing to change.
        break;
      case "oauth2":
      case "sigv4":
      case "azuread":
      case "google_iam":
      case "proxy_connect_header":
        throw new PromcaseError(`${key} is not supported by promcase`);
      default:
        throw new PromcaseError(`unknown key "${key}"`);
    }
  }
  return parts;
}

function _object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new PromcaseError(`${what} must be a mapping`);
  }
  return value as Record<string, unknown>;
}

function _onlyKeys(obj: Record<string, unknown>, keys: string[], what: string): void {
  for (const key of Object.keys(obj)) {
    if (key === "server_name" && what === "tls_config") {
      throw new PromcaseError(
        "tls_config.server_name is not supported (Deno's fetch cannot set the TLS server name)",
      );
    }
    if (!keys.includes(key)) throw new PromcaseError(`unknown key "${what}.${key}"`);
  }
}

function _setAuthorization(parts: _AuthParts, value: string, what: string): void {
  if (parts.authorization) {
    throw new PromcaseError(
      `give one way to authenticate, not ${parts.authorization.what} and ${what}`,
    );
  }
  parts.authorization = { value, what };
}

function _setBasic(parts: _AuthParts, user: string, password: string, what: string): void {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  const encoded = btoa(String.fromCharCode(...bytes));
  _setAuthorization(parts, `Basic ${encoded}`, what);
  parts.secrets.push(encoded);
  if (password) parts.secrets.push(password);
}

function _addHeader(
  parts: _AuthParts,
  name: string,
  value: string,
  secret: boolean,
  what: string,
): void {
  const lower = name.toLowerCase();
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
    throw new PromcaseError(`${what}: "${_clip(name, 40)}" is not a header name`);
  }
  if (_RESERVED_HEADERS.has(lower)) {
    throw new PromcaseError(`${what}: header ${name} is set by promcase and cannot be replaced`);
  }
  if (lower === "authorization") {
    _setAuthorization(parts, value, `an Authorization header (${what})`);
  } else {
    if (Object.keys(parts.headers).some((k) => k.toLowerCase() === lower)) {
      throw new PromcaseError(`${what}: header ${name} given twice`);
    }
    parts.headers[name] = value;
    parts.described.push(`header ${name}`);
  }
  if (secret && value) parts.secrets.push(value);
}

function _mergeParts(into: _AuthParts, from: _AuthParts, what: string): void {
  try {
    if (from.authorization) {
      _setAuthorization(into, from.authorization.value, from.authorization.what);
    }
    for (const [name, value] of Object.entries(from.headers)) {
      _addHeader(into, name, value, false, what);
    }
  } catch (err) {
    throw err instanceof PromcaseError ? usageError(err.message) : err;
  }
  into.caCerts.push(...from.caCerts);
  if (from.cert) {
    if (into.cert) throw usageError("two client certificates given (flags and --http-config-file)");
    into.cert = from.cert;
    into.key = from.key;
  }
  into.insecureSkipVerify ||= from.insecureSkipVerify;
  into.proxyUrl ??= from.proxyUrl;
  into.secrets.push(...from.secrets);
  into.described.push(...from.described);
}

function _finish(parts: _AuthParts): HttpAuth {
  const headers = { ...parts.headers };
  const described = [...parts.described];
  if (parts.authorization) {
    headers["Authorization"] = parts.authorization.value;
    described.unshift(parts.authorization.what);
  }
  return {
    headers,
    caCerts: parts.caCerts,
    cert: parts.cert,
    key: parts.key,
    insecureSkipVerify: parts.insecureSkipVerify,
    proxyUrl: parts.proxyUrl,
    // Longest first, so that a secret containing another is masked whole.
    secrets: [...new Set(parts.secrets.filter((s) => s.length > 0))].sort((a, b) =>
      b.length - a.length
    ),
    description: described.length > 0 ? described.join(", ") : "no authentication",
  };
}

async function _readSecretFile(path: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw usageError(`${what} ${path}: ${describeError(err)}`);
  }
  const value = text.trim();
  if (value === "") throw usageError(`${what} ${path} is empty`);
  if (/[\r\n]/.test(value)) throw usageError(`${what} ${path} holds more than one line`);
  return value;
}

async function _readPem(path: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw usageError(`${what} ${path}: ${describeError(err)}`);
  }
  if (!text.includes("-----BEGIN ")) throw usageError(`${what} ${path} is not a PEM file`);
  return text;
}

/** Replaces every secret of `auth` in `text` by `<secret>`. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s) out = out.replaceAll(s, "<secret>");
  return out;
}

/** The URL without user info, query or fragment (safe to show). */
export function safeUrl(url: string | URL): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    u.search = "";
    u.hash = "";
    return u.href.replace(/\/$/, "");
  } catch {
    return "<invalid URL>";
  }
}

function _clip(text: string, max: number): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > max ? `${one.slice(0, max)}…` : one;
}

/** A request as {@link HttpTransport.request} takes it. */
export interface TransportRequest {
  /** HTTP method. */
  method: "GET" | "POST";
  /** Headers besides those of the auth settings. */
  headers?: Record<string, string>;
  /** Request body. */
  body?: Uint8Array;
  /** Aborts the request and its response body. */
  signal?: AbortSignal;
}

/**
 * Sends requests with one server's {@link HttpAuth}: `fetch` (with a `Deno.HttpClient` when CA
 * or client certificates or a proxy are set), or `node:https` when certificate verification is
 * skipped. Owns a connection pool: call {@link HttpTransport.close} (or `using`).
 */
export class HttpTransport implements Disposable {
  #auth: HttpAuth;
  #client: Deno.HttpClient | undefined;
  #agent: https.Agent | undefined;

  /** A transport for `auth`; creates no connection yet. */
  constructor(auth: HttpAuth = NO_AUTH) {
    this.#auth = auth;
  }

  /** The settings in use. */
  get auth(): HttpAuth {
    return this.#auth;
  }

  /** Sends one request; resolves when the response headers are in. */
  request(url: URL, req: TransportRequest): Promise<Response> {
    const headers = { ...this.#auth.headers, ...req.headers };
    if (this.#auth.insecureSkipVerify && url.protocol === "https:") {
      return this.#nodeRequest(url, req, headers);
    }
    const a = this.#auth;
    if (!this.#client && (a.caCerts.length > 0 || a.cert || a.proxyUrl)) {
      this.#client = Deno.createHttpClient({
        ...(a.caCerts.length > 0 ? { caCerts: a.caCerts } : {}),
        ...(a.cert && a.key ? { cert: a.cert, key: a.key } : {}),
        ...(a.proxyUrl ? { proxy: { url: a.proxyUrl } } : {}),
      });
    }
    return fetch(url, {
      method: req.method,
      headers,
      body: req.body as BodyInit | undefined,
      signal: req.signal,
      redirect: "follow",
      ...(this.#client ? { client: this.#client } : {}),
    });
  }

  #nodeRequest(
    url: URL,
    req: TransportRequest,
    headers: Record<string, string>,
  ): Promise<Response> {
    this.#agent ??= new https.Agent({
      keepAlive: true,
      rejectUnauthorized: false,
      ...(this.#auth.caCerts.length > 0 ? { ca: this.#auth.caCerts } : {}),
      ...(this.#auth.cert ? { cert: this.#auth.cert, key: this.#auth.key } : {}),
    });
    const agent = this.#agent;
    return new Promise<Response>((resolve, reject) => {
      const r = https.request(url, {
        method: req.method,
        headers: req.body ? { ...headers, "Content-Length": String(req.body.length) } : headers,
        agent,
        rejectUnauthorized: false,
        signal: req.signal,
      }, (res) => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(", ") : v);
        }
        const status = res.statusCode ?? 502;
        const body = status === 204 || status === 304
          ? null
          : Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>;
        if (!body) res.resume();
        resolve(new Response(body, { status, statusText: res.statusMessage ?? "", headers: h }));
      });
      r.on("error", reject);
      r.end(req.body);
    });
  }

  /** Closes pooled connections. */
  close(): void {
    this.#client?.close();
    this.#client = undefined;
    this.#agent?.destroy();
    this.#agent = undefined;
  }

  /** Same as {@link HttpTransport.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** What went wrong with a request, classified for retries and messages. */
export class HttpFailure extends Error {
  /** Whether trying again later may help (network trouble, timeouts, 5xx, 429). */
  readonly retryable: boolean;
  /** HTTP status, when the server answered. */
  readonly status?: number;

  /** A failure with a one-line, secret-free message. */
  constructor(message: string, retryable: boolean, status?: number) {
    super(message);
    this.name = "HttpFailure";
    this.retryable = retryable;
    this.status = status;
  }
}

/** Turns a `fetch`/`node:https` error into a short reason (secrets masked). */
export function networkFailure(err: unknown, secrets: readonly string[] = []): HttpFailure {
  const texts: string[] = [];
  for (let e: unknown = err, depth = 0; e && depth < 6; depth++) {
    if (e instanceof Error) {
      texts.push(`${e.name}: ${e.message} ${(e as { code?: string }).code ?? ""}`);
      e = e.cause;
    } else {
      texts.push(String(e));
      break;
    }
  }
  const all = texts.join(" | ");
  const reason = (() => {
    if (/ECONNREFUSED|Connection refused|os error 111|actively refused/i.test(all)) {
      return "connection refused";
    }
    if (/dns error|ENOTFOUND|EAI_AGAIN|failed to lookup|Name or service not known/i.test(all)) {
      return "host not found";
    }
    if (/certificate|UnknownIssuer|CERT_|self[- ]signed|NotValidForName/i.test(all)) {
      return `TLS certificate not accepted (${_clip(_innermost(all), 120)}); trust its CA ` +
        "(tls_config.ca_file) or skip verification (insecure_skip_verify)";
    }
    if (/ECONNRESET|Connection reset|os error 104|broken pipe/i.test(all)) {
      return "connection reset by the server";
    }
    if (/TimeoutError|timed out/i.test(all)) return "timed out";
    if (/ETIMEDOUT/i.test(all)) return "connection timed out";
    if (/EHOSTUNREACH|ENETUNREACH|No route to host|unreachable/i.test(all)) {
      return "host unreachable";
    }
    if (/IncompleteMessage|connection closed|unexpected end|error reading a body|EOF/i.test(all)) {
      return "connection closed in the middle of the response";
    }
    return _clip(_innermost(all), 160);
  })();
  return new HttpFailure(redact(reason, secrets), true);
}

function _innermost(all: string): string {
  const parts = all.split(" | ");
  return parts[parts.length - 1].replace(/^(TypeError|Error): /, "").trim();
}

/**
 * A failure for a non-2xx answer: the status, its meaning for remote read, and the start of the
 * server's own message (one line, secrets masked). 5xx and 429 are retryable.
 */
export function statusFailure(
  status: number,
  statusText: string,
  body: string,
  secrets: readonly string[] = [],
): HttpFailure {
  const text = _clip(redact(body, secrets), 300);
  const head = `HTTP ${status}${statusText ? ` ${statusText}` : ""}`;
  const said = text ? `: ${text}` : "";
  let hint = "";
  if (status === 401) {
    hint = "; the server wants credentials: check the bearer token, basic auth or http config";
  } else if (status === 403) {
    hint = "; the credentials are not allowed to do this (a proxy or the server forbids it)";
  } else if (status === 404 || status === 405) {
    hint = "; the endpoint is not served here (a Prometheus in agent mode, or a path or proxy " +
      "that blocks it)";
  } else if (/exceeded sample limit/.test(text)) {
    hint = "; the server's --storage.remote.read-sample-limit is too low for this request";
  } else if (status === 422 && /agent/i.test(text)) {
    hint = "; a Prometheus in agent mode keeps no data to read";
  }
  const retryable = status >= 500 || status === 429;
  return new HttpFailure(`${head}${said}${hint}`, retryable, status);
}

/** Options of {@link fetchJson}. */
export interface FetchJsonOptions {
  /** Query parameters; an array value repeats the parameter (e.g. `match[]`). */
  params?: Record<string, string | string[]>;
  /** Abort after this many ms (default 30 000). */
  timeoutMs?: number;
  /** Largest response accepted (default 64 MiB). */
  maxBytes?: number;
  /** Cancels the request. */
  signal?: AbortSignal;
  /** A transport to reuse (its auth wins over `auth`); otherwise one is made and closed. */
  transport?: HttpTransport;
}

/**
 * GETs `path` (e.g. `/api/v1/status/buildinfo`) from the server at `url` with `auth` and returns
 * the parsed JSON body. Non-2xx answers, bodies that are not JSON and Prometheus API errors
 * (`status: "error"`) throw a {@link PromcaseError} with a one-line, secret-free message.
 */
export async function fetchJson(
  url: string,
  path: string,
  auth: HttpAuth = NO_AUTH,
  options: FetchJsonOptions = {},
): Promise<unknown> {
  const target = apiUrl(url, path, options.params);
  const transport = options.transport ?? new HttpTransport(auth);
  try {
    return await getJson(transport, target, options);
  } catch (err) {
    if (err instanceof HttpFailure) {
      throw new PromcaseError(`GET ${safeUrl(target)}: ${err.message}`);
    }
    throw err;
  } finally {
    if (!options.transport) transport.close();
  }
}

/**
 * The request behind {@link fetchJson}: throws {@link HttpFailure} (which tells whether a retry
 * may help) instead of a user error. An abort by `options.signal` rethrows its reason.
 */
export async function getJson(
  transport: HttpTransport,
  target: URL,
  options: Omit<FetchJsonOptions, "params" | "transport"> = {},
): Promise<unknown> {
  const secrets = transport.auth.secrets;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const signals = [AbortSignal.timeout(timeoutMs)];
  if (options.signal) signals.push(options.signal);
  const signal = AbortSignal.any(signals);
  let response: Response;
  let text: string;
  try {
    response = await transport.request(target, {
      method: "GET",
      headers: { Accept: "application/json" },
      signal,
    });
    text = await readText(response, options.maxBytes ?? 64 * 1024 * 1024);
  } catch (err) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (err instanceof HttpFailure) throw err;
    const f = networkFailure(err, secrets);
    if (signal.aborted) {
      throw new HttpFailure(`no complete answer within ${timeoutMs / 1000} s`, true);
    }
    throw f;
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    if (!response.ok) throw statusFailure(response.status, response.statusText, text, secrets);
    throw new HttpFailure(`the answer is not JSON (${_clip(redact(text, secrets), 80)})`, false);
  }
  const api = body as { status?: string; error?: string; errorType?: string };
  if (!response.ok || api.status === "error") {
    const message = api.error ? `${api.errorType ?? "error"}: ${api.error}` : text;
    throw statusFailure(response.status, response.statusText, message, secrets);
  }
  return body;
}

/** `base` + `path` + query parameters, keeping a path prefix of `base` (e.g. `/prometheus`). */
export function apiUrl(
  base: string,
  path: string,
  params: Record<string, string | string[]> = {},
): URL {
  let u: URL;
  try {
    u = new URL(base);
  } catch {
    throw usageError(`"${_clip(base, 80)}" is not a URL (expected e.g. http://prometheus:9090)`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw usageError(`${safeUrl(u)}: only http:// and https:// URLs are supported`);
  }
  u.pathname = `${u.pathname.replace(/\/+$/, "")}${path}`;
  u.username = "";
  u.password = "";
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    for (const item of Array.isArray(v) ? v : [v]) search.append(k, item);
  }
  u.search = search.toString();
  return u;
}

/** Reads a response body as text, refusing more than `maxBytes`. */
export async function readText(response: Response, maxBytes: number): Promise<string> {
  if (!response.body) return "";
  const parts: Uint8Array[] = [];
  let total = 0;
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > maxBytes) {
        throw new HttpFailure(`the answer is larger than ${maxBytes} bytes`, false);
      }
      parts.push(value);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return new TextDecoder().decode(concatBytes(parts));
}

/** Basic auth credentials embedded in a URL (`http://user:pass@host`), as an {@link HttpAuth}. */
export function authFromUrl(url: string, base: HttpAuth = NO_AUTH): HttpAuth {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return base;
  }
  if (!u.username && !u.password) return base;
  if (base.headers["Authorization"]) {
    throw usageError("credentials in the URL and another way to authenticate: give one");
  }
  const user = decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password);
  const parts = _emptyParts();
  _setBasic(parts, user, password, `basic auth as ${user} (from the URL)`);
  const extra = _finish(parts);
  return {
    ...base,
    headers: { ...base.headers, ...extra.headers },
    secrets: [...new Set([...base.secrets, ...extra.secrets])].sort((a, b) => b.length - a.length),
    description: base.description === "no authentication"
      ? extra.description
      : `${extra.description}, ${base.description}`,
  };
}
