/**
 * `promcase export`: the customer-side command.
 *
 * @module
 */

import { type Compression, COMPRESSIONS } from "../archive/compression.ts";
import { findDataDir } from "../datadir.ts";
import {
  captureGrafana,
  capturePrometheus,
  type ContextCapture,
  dashboardFiles,
} from "../context.ts";
import { describeError, usageError } from "../errors.ts";
import { exportArchive, type ExportOptions, type ExportResult } from "../export.ts";
import { exportRemote } from "../export_remote.ts";
import { computeLeadIn, type LeadIn, scanRangeSelectors } from "../leadin.ts";
import { parseByteSize } from "../bytesize.ts";
import { parseRate, Throttle } from "../throttle.ts";
import { loadHttpAuth, safeUrl } from "../remote/mod.ts";
import { matchesSelector, parseSelector } from "../selector.ts";
import { lowerPriority } from "../priority.ts";
import {
  formatDuration,
  formatTime,
  type IncidentWindow,
  parseDuration,
  resolveWindow,
} from "../window.ts";
import { AGE_ENCRYPT_FLAGS, ageEncryptionFromFlags } from "./age_flags.ts";
import { type Command, formatBytes, parseFlags, toJson } from "./args.ts";
import { createProgress } from "./progress.ts";
import { formatDisclosureText } from "../disclosure.ts";
import {
  PSEUDONYM_FLAGS,
  PSEUDONYM_HELP,
  pseudonymizerFromFlags,
  pseudonymsLine,
} from "./pseudonym_flags.ts";

const _HELP = `Usage: promcase export [DATA_DIR] --at TIME [--before DUR] [--after DUR] [options]
       promcase export [DATA_DIR] --from TIME --to TIME [options]
       promcase export --url http://HOST:9090 --at TIME [--before DUR] [options]

Writes one checksummed archive of the data around an incident. By default the archive holds one new
block with exactly the window's samples: the blocks that overlap the window are read (chunks wholly
inside copied byte for byte, boundary chunks cut at sample precision, deletions applied) and the
head (checkpoint, WAL, wbl/) is replayed into it with Prometheus' replay rules, so no WAL is shipped
and any Prometheus from 2.x on can serve it (every chunk in the oldest encoding that holds its
samples: XOR2 and histogram chunks with start timestamps become XOR and histogram chunks, start
timestamps dropped). --raw ships the overlapping blocks and head files as they are instead. Reads
the data dir only (safe while Prometheus runs), runs at low CPU and I/O priority, and writes to a
temporary name that is renamed when complete, next to a FILE.sha256.

DATA_DIR defaults to the first of /prometheus, /var/lib/prometheus/metrics2, ./data that exists.

Window:
  --at TIME           incident time
  --before DUR        how much before --at (default 24h)
  --after DUR         how much after --at (default 0)
  --from TIME --to TIME   an explicit window instead of --at
  --lead-in DUR       also ship DUR before the window, so that rate(x[5m]) and the like are right
                      from the window's first minute (default 15m, raised to the longest range
                      selector in the captured rules and dashboards, up to 1h; 0 for none);
                      the manifest keeps the incident window apart, view opens on it
  TIME: RFC 3339 (2026-11-25T10:30:00Z), Unix seconds or milliseconds, now, now-2h
  DUR:  Prometheus durations: 24h, 1d12h, 90m

Context (stored under context/ in the archive, secrets masked, tokens never stored):
  --prometheus-url URL      Prometheus API to capture build info, flags, config, rules, alerts,
                            targets, TSDB status and metadata from (default http://localhost:9090;
                            skipped with a warning when unreachable)
  --no-prometheus-api       do not capture from the Prometheus API
  --grafana-url URL         Grafana to save dashboards (with folders) and datasources from
  --grafana-token TOKEN     Grafana API token (prefer --grafana-token-file)
  --grafana-token-file F    file holding the Grafana API token
  --dashboard UID           only this dashboard (repeatable; default all)
  --folder NAME             only dashboards in this folder (repeatable)
  --dashboard-file FILE     add an exported dashboard JSON file (repeatable)

Network (when the data dir is out of reach: Kubernetes, managed platforms):
  --url URL                 read the window from this Prometheus by remote read (POST
                            /api/v1/read, streamed chunks) instead of a data dir; the archive is
                            the same kind (one block of the window), its manifest names the URL
  --concurrency N           requests in flight at once (default 2)
  --bearer-token-file F     send "Authorization: Bearer <contents of F>"
  --basic-auth-user U       basic auth user (with --basic-auth-password-file)
  --basic-auth-password-file F
  --header "Name: value"    extra request header (repeatable)
  --tls-ca FILE             CA certificates to trust (PEM)
  --insecure-skip-verify    do not verify the server's TLS certificate
  --http-config-file F      Prometheus http_config YAML (authorization, basic_auth, tls_config,
                            http_headers, proxy_url)

Series (PromQL series selectors, as promtool takes them):
  --match SELECTOR    ship only series matching it (repeatable: any of them), e.g.
                      'up', '{job="node"}', 'http_requests_total{code=~"5.."}'
  --exclude SELECTOR  leave out series matching it (repeatable)

Production safety:
  --rate-limit RATE   cap reading the data dir, e.g. 50MB/s, 10MiB/s
  --no-nice           keep normal CPU and I/O priority (default: nice 19 and idle I/O class)
  --max-size SIZE     refuse, before writing anything, when the estimated archive is larger
                      (e.g. 500MB, 2GiB); --dry-run prints the estimate
  --split SIZE        write the archive as NAME.part001, NAME.part002, ... of at most SIZE each
                      (verify and restore take any part); cat NAME.part* > NAME joins them
  --tmp-dir DIR       where the rewrite builds its block (default: the output's directory)

Encryption (age format: the stock age CLI decrypts it; the file is NAME.tar.gz.age, its sidecar
covers the file as sent, the manifest inside the content):
  --encrypt-to RECIPIENT    encrypt to this age recipient, age1... (repeatable; the support team
                            publishes theirs with promcase keygen)
  --encrypt-to-file FILE    encrypt to every recipient in FILE, one a line (age -R's format)
  --passphrase-file FILE    encrypt with the passphrase on FILE's first line (age's scrypt mode)
  --scrypt-work-factor N    scrypt's work factor with --passphrase-file, 10-20 (default 16:
                            64 MiB once; age -p uses 18: 256 MiB, brute force 4x dearer)

${PSEUDONYM_HELP}

Options:
  --raw               copy whole blocks and the head files instead of rewriting
  --keep-encodings    copy XOR2 chunks and histogram chunks with start timestamps as they are
                      (served by Prometheus 3.11 / 3.14 and newer only; see minPrometheusVersion)
  --replay-workers N  replay the head on N more threads (default 0): faster on a large head
                      (a sixth at 1M series with 1), about 40 MiB more memory each
  -o, --output FILE   archive path (default promcase-HOST-<at>-<length>.tar.gz here)
  --compression C     gzip (default), zstd or none
  --dry-run           show what would be shipped, write nothing
  --json              print a machine-readable summary on stdout
  -h, --help

Examples:
  promcase export /var/lib/prometheus/metrics2 --at "2026-11-25T10:30:00Z" --before 24h
  promcase export --at now-1h --before 6h --after 1h --compression zstd -o incident.tar.zst
  promcase export ./data --from 2026-11-24T00:00:00Z --to 2026-11-25T00:00:00Z --dry-run
  promcase export ./data --at now --before 2h --lead-in 6h   # increase(x[6h]) from the start
  promcase export ./data --at now --match '{job="api"}' --exclude '{__name__=~"go_.*"}'
  promcase export ./data --at now --raw
  promcase export ./data --at now --pseudonymize instance,node,pod --pseudonym-key ~/.promcase-pseudonym.key
  promcase export ./data --at now --keep-encodings
  promcase export --at now --rate-limit 20MB/s --max-size 2GB --split 25MB
  promcase export --url http://localhost:9090 --at now --before 6h --bearer-token-file token
  promcase export ./data --at now --encrypt-to age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
  promcase export /prometheus --at now --grafana-url http://grafana:3000 \\
    --grafana-token-file ~/.grafana-token --folder Kubernetes --dashboard-file extra.json
`;

const _DEFAULT_PROMETHEUS_URL = "http://localhost:9090";

/** The export command. */
export const exportCommand: Command = {
  name: "export",
  summary: "write an archive of the data around an incident",
  help: _HELP,
  async run(args) {
    const { values, positionals } = parseFlags("export", args, {
      at: { type: "string" },
      before: { type: "string" },
      after: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      "lead-in": { type: "string" },
      output: { type: "string", short: "o" },
      compression: { type: "string", default: "gzip" },
      "dry-run": { type: "boolean" },
      json: { type: "boolean" },
      raw: { type: "boolean" },
      "keep-encodings": { type: "boolean" },
      "replay-workers": { type: "string" },
      match: { type: "string", multiple: true },
      exclude: { type: "string", multiple: true },
      "rate-limit": { type: "string" },
      "no-nice": { type: "boolean" },
      "max-size": { type: "string" },
      split: { type: "string" },
      "tmp-dir": { type: "string" },
      url: { type: "string" },
      concurrency: { type: "string" },
      "bearer-token-file": { type: "string" },
      "basic-auth-user": { type: "string" },
      "basic-auth-password-file": { type: "string" },
      header: { type: "string", multiple: true },
      "tls-ca": { type: "string" },
      "insecure-skip-verify": { type: "boolean" },
      "http-config-file": { type: "string" },
      ...AGE_ENCRYPT_FLAGS,
      ...PSEUDONYM_FLAGS,
      "prometheus-url": { type: "string", default: _DEFAULT_PROMETHEUS_URL },
      "no-prometheus-api": { type: "boolean" },
      "grafana-url": { type: "string" },
      "grafana-token": { type: "string" },
      "grafana-token-file": { type: "string" },
      dashboard: { type: "string", multiple: true },
      folder: { type: "string", multiple: true },
      "dashboard-file": { type: "string", multiple: true },
    }, 1);
    if (values.help) {
      console.log(_HELP);
      return 0;
    }
    const compression = values.compression as Compression;
    if (!COMPRESSIONS.includes(compression)) {
      throw usageError(`--compression must be one of ${COMPRESSIONS.join(", ")}`);
    }
    const window = resolveWindow(values);
    const leadIn = _leadInFlag(values["lead-in"]);
    const selection = _selection(values.match ?? [], values.exclude ?? []);
    if (selection && values.raw) {
      throw usageError("--match and --exclude need the rewrite: they cannot be used with --raw");
    }
    if (values["keep-encodings"] && values.raw) {
      throw usageError("--keep-encodings is for the rewrite: --raw copies every chunk as it is");
    }
    const replayWorkers = _replayWorkers(values["replay-workers"], values.raw);
    const safety = { ..._safety(values), encrypt: await ageEncryptionFromFlags(values) };
    const pseudonyms = await pseudonymizerFromFlags(values);
    if (values.url !== undefined) {
      return await _exportRemote(values, positionals, window, leadIn, selection, {
        ...safety,
        pseudonyms,
      });
    }
    const dataDir = await findDataDir(positionals[0]);
    // A dry run captures the context too: its disclosure report shows what the context holds.
    const context = await _captureContext(values);
    const lead = _leadIn(leadIn, context);
    if (!values["no-nice"]) await lowerPriority();
    const progress = createProgress("export");
    let result: ExportResult;
    try {
      result = await exportArchive({
        dataDir,
        window,
        leadIn: lead.leadIn,
        output: values.output,
        compression,
        dryRun: values["dry-run"],
        mode: values.raw ? "raw" : "rewrite",
        keepEncodings: values["keep-encodings"],
        headLimits: replayWorkers === undefined ? undefined : { replayWorkers },
        selection,
        context,
        pseudonymizer: pseudonyms?.pseudonymizer,
        onProgress: (done, total, file) => progress.update(done, total, file),
        onStatus: (text) => progress.status(text),
        ...safety,
      });
    } finally {
      progress.done();
    }
    if (pseudonyms && result.archive) {
      const line = pseudonymsLine(pseudonyms.pseudonymizer, pseudonyms.keyPath);
      if (line) console.error(line);
    }
    // The manifest's warnings: the plan's, the context capture's and the export's own.
    for (const warning of result.manifest?.warnings ?? result.plan.warnings) {
      console.error(`warning: ${warning}`);
    }
    if (!result.archive) {
      for (const warning of result.disclosure.warnings) console.error(`warning: ${warning}`);
    }
    console.log(
      values.json
        ? toJson(_summary(result, lead))
        : `${_text(result, lead.leadIn)}\n\n${
          result.archive
            ? formatDisclosureText(result.disclosure.report).split("\n")[0] +
              " (disclosure.json in the archive; promcase inspect --disclosure shows it)"
            : formatDisclosureText(result.disclosure.report)
        }`,
    );
    return 0;
  },
};

/** `--lead-in DUR` in ms, or undefined when not given. */
function _leadInFlag(text: string | undefined): bigint | undefined {
  if (text === undefined) return undefined;
  try {
    return parseDuration(text);
  } catch {
    const shown = JSON.stringify(text);
    throw usageError(
      `--lead-in: invalid duration ${shown}: use Prometheus' syntax, e.g. 15m, 1h, 1h30m, or 0`,
    );
  }
}

/** The lead-in to ship: `--lead-in`, or the default raised by the captured context's ranges. */
function _leadIn(
  explicit: bigint | undefined,
  context: Record<string, ContextCapture> | undefined,
): { leadIn: LeadIn; ignored: string[] } {
  if (explicit !== undefined) return { leadIn: computeLeadIn(explicit), ignored: [] };
  if (context === undefined) {
    // A dry run captures no context: the export itself may raise the lead-in.
    const leadIn = computeLeadIn(undefined);
    leadIn.reason += "; a dry run captures no rules or dashboards that could raise it";
    return { leadIn, ignored: [] };
  }
  const scan = scanRangeSelectors(Object.values(context).flatMap((c) => c.files));
  return { leadIn: computeLeadIn(undefined, scan), ignored: scan.ignored };
}

/** The lead-in's line of the text output. */
function _leadInLine(leadIn: LeadIn, window: IncidentWindow): string {
  return leadIn.ms === 0n
    ? `Lead-in: none (${leadIn.reason}): the data starts at the window`
    : `Lead-in: ${formatDuration(leadIn.ms)} (${leadIn.reason}): data shipped from ` +
      formatTime(window.from - leadIn.ms);
}

/** The lead-in for `--json`. */
function _leadInJson(lead: { leadIn: LeadIn; ignored: string[] }, window: IncidentWindow) {
  return {
    shipped: { from: formatTime(window.from - lead.leadIn.ms), to: formatTime(window.to) },
    leadIn: {
      ms: Number(lead.leadIn.ms),
      duration: formatDuration(lead.leadIn.ms),
      reason: lead.leadIn.reason,
      ignoredRanges: lead.ignored,
    },
  };
}

/** The production-safety flags as export options. */
function _safety(values: {
  "rate-limit"?: string;
  "max-size"?: string;
  split?: string;
  "tmp-dir"?: string;
}): Pick<ExportOptions, "throttle" | "maxBytes" | "split" | "tmpDir"> {
  const rate = values["rate-limit"];
  return {
    throttle: rate === undefined ? undefined : new Throttle(parseRate(rate, "--rate-limit")),
    maxBytes: values["max-size"] === undefined
      ? undefined
      : parseByteSize(values["max-size"], "--max-size"),
    split: values.split === undefined ? undefined : parseByteSize(values.split, "--split"),
    tmpDir: values["tmp-dir"],
  };
}

/** `--replay-workers N`: 0 to 8 more threads for the head replay (rewrite only). */
function _replayWorkers(flag: string | undefined, raw: boolean | undefined): number | undefined {
  if (flag === undefined) return undefined;
  if (raw) throw usageError("--replay-workers is for the rewrite: --raw replays nothing");
  const n = Number(flag);
  if (!/^\d+$/.test(flag) || n > 8) {
    throw usageError(
      `--replay-workers takes a whole number from 0 to 8, not ${JSON.stringify(flag)}`,
    );
  }
  return n;
}

/** `export --url`: the window read by remote read. */
async function _exportRemote(
  values: Record<string, unknown> & _ContextFlags,
  positionals: string[],
  window: IncidentWindow,
  explicitLeadIn: bigint | undefined,
  selection: ReturnType<typeof _selection>,
  safety: ReturnType<typeof _safety> & Pick<ExportOptions, "encrypt"> & {
    pseudonyms: Awaited<ReturnType<typeof pseudonymizerFromFlags>>;
  },
): Promise<number> {
  if (positionals.length > 0) throw usageError("give either DATA_DIR or --url, not both");
  const dataDirOnly = [
    "raw",
    "dry-run",
    "rate-limit",
    "max-size",
    "keep-encodings",
    "replay-workers",
  ];
  for (const flag of dataDirOnly) {
    if (values[flag]) throw usageError(`--${flag} cannot be used with --url`);
  }
  const url = String(values.url);
  try {
    if (!/^https?:$/.test(new URL(url).protocol)) throw new Error();
  } catch {
    throw usageError(`--url must be an http:// or https:// URL, not ${JSON.stringify(url)}`);
  }
  const concurrency = values.concurrency === undefined ? 2 : Number(values.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw usageError("--concurrency must be a whole number from 1 to 64");
  }
  const auth = await loadHttpAuth({
    bearerTokenFile: values["bearer-token-file"] as string | undefined,
    basicAuthUser: values["basic-auth-user"] as string | undefined,
    basicAuthPasswordFile: values["basic-auth-password-file"] as string | undefined,
    headers: values.header as string[] | undefined,
    caFile: values["tls-ca"] as string | undefined,
    insecureSkipVerify: values["insecure-skip-verify"] as boolean | undefined,
    httpConfigFile: values["http-config-file"] as string | undefined,
  });
  // The context comes from the same server unless told otherwise.
  const context = await _captureContext({
    ...values,
    "prometheus-url": values["prometheus-url"] === _DEFAULT_PROMETHEUS_URL
      ? url
      : values["prometheus-url"],
  });
  const lead = _leadIn(explicitLeadIn, context);
  if (!values["no-nice"]) await lowerPriority();
  const progress = createProgress("export");
  let result;
  try {
    result = await exportRemote({
      url,
      window,
      leadIn: lead.leadIn,
      output: values.output as string | undefined,
      compression: values.compression as Compression,
      selection: selection &&
        { ...selection, matchers: selection.match.map((m) => [...parseSelector(m).matchers]) },
      auth,
      concurrency,
      context,
      onStatus: (text) => progress.status(text),
      split: safety.split,
      tmpDir: safety.tmpDir,
      encrypt: safety.encrypt,
      pseudonymizer: safety.pseudonyms?.pseudonymizer,
    });
  } finally {
    progress.done();
  }
  if (safety.pseudonyms) {
    const line = pseudonymsLine(safety.pseudonyms.pseudonymizer, safety.pseudonyms.keyPath);
    if (line) console.error(line);
  }
  for (const warning of result.manifest.warnings) console.error(`warning: ${warning}`);
  const summary = {
    archive: result.archive.path,
    sidecar: result.archive.sidecarPath,
    sha256: result.archive.sha256,
    size: result.archive.size,
    source: result.manifest.source,
    mode: result.manifest.mode,
    minPrometheusVersion: result.manifest.minPrometheusVersion,
    window: { from: formatTime(window.from), to: formatTime(window.to), at: formatTime(window.at) },
    ..._leadInJson(lead, window),
    block: result.block,
    remoteRead: result.read,
    context: result.manifest.context ?? null,
    warnings: result.manifest.warnings,
  };
  console.log(
    values.json ? toJson(summary) : [
      `Window: ${formatTime(window.from)} to ${formatTime(window.to)} (${
        formatDuration(window.to - window.from)
      })`,
      _leadInLine(lead.leadIn, window),
      `Read ${safeUrl(url)}: ${result.read.requests} requests, ${result.read.series} series`,
      `Block ${result.manifest.blocks[0].ulid}: ${result.block.series} series, ` +
      `${result.block.samples} samples`,
      `Wrote ${result.archive.path} (${formatBytes(result.archive.size)}) and ` +
      result.archive.sidecarPath,
      `SHA-256 ${result.archive.sha256}`,
    ].join("\n"),
  );
  return 0;
}

/** The series selection of --match/--exclude, or undefined for all series. */
function _selection(match: string[], exclude: string[]): ExportOptions["selection"] {
  if (match.length === 0 && exclude.length === 0) return undefined;
  const parse = (text: string, flag: string) => {
    try {
      return parseSelector(text);
    } catch (err) {
      throw usageError(`${flag} ${JSON.stringify(text)}: ${describeError(err)}`);
    }
  };
  const keep = match.map((m) => parse(m, "--match"));
  const drop = exclude.map((m) => parse(m, "--exclude"));
  return {
    keep: (labels) =>
      (keep.length === 0 || keep.some((sel) => matchesSelector(labels, sel))) &&
      !drop.some((sel) => matchesSelector(labels, sel)),
    match,
    exclude,
  };
}

function _summary(result: ExportResult, lead: { leadIn: LeadIn; ignored: string[] }) {
  const { plan, archive } = result;
  return {
    dryRun: archive === null,
    archive: archive?.path ?? result.output,
    sidecar: archive?.sidecarPath ?? null,
    sha256: archive?.sha256 ?? null,
    size: archive?.size ?? null,
    dataDir: plan.dataDir.path,
    window: {
      from: formatTime(plan.window.from),
      to: formatTime(plan.window.to),
      at: formatTime(plan.window.at),
    },
    ..._leadInJson(lead, plan.window),
    blocks: plan.blocks.map((b) => b.ulid),
    skippedBlocks: plan.skippedBlocks.map((b) => b.ulid),
    head: {
      included: plan.head.included,
      reason: plan.head.reason,
      files: plan.head.files.map((f) => f.path),
    },
    files: plan.files.length,
    bytesRead: plan.bytes,
    restarts: result.restarts,
    mode: result.manifest?.mode ?? null,
    minPrometheusVersion: result.manifest?.minPrometheusVersion ?? null,
    rewrite: result.rewrite,
    estimate: result.estimate,
    disclosure: result.disclosure.report,
    context: result.manifest?.context ?? null,
    warnings: result.manifest?.warnings ?? plan.warnings,
  };
}

function _text(result: ExportResult, leadIn: LeadIn): string {
  const { plan, archive } = result;
  const lines = [
    `Window: ${formatTime(plan.window.from)} to ${formatTime(plan.window.to)} (${
      formatDuration(plan.window.to - plan.window.from)
    })`,
    _leadInLine(leadIn, plan.window),
    `Blocks: ${plan.blocks.length} overlap the window and its lead-in, ` +
    `${plan.skippedBlocks.length} outside them`,
  ];
  for (const block of plan.blocks) {
    lines.push(
      `  ${block.ulid}  ${formatTime(block.meta.minTime)} to ${formatTime(block.meta.maxTime)}` +
        `  level ${block.meta.level}  ${formatBytes(block.size)}`,
    );
  }
  lines.push(
    `Head: ${plan.head.included ? "needed" : "not needed"}: ${plan.head.reason}` +
      (plan.head.included ? ` (${plan.head.files.length} files)` : ""),
  );
  lines.push(`Data: ${plan.files.length} files, ${formatBytes(plan.bytes)}`);
  const rw = result.rewrite;
  if (rw) {
    const block = result.manifest?.blocks[0];
    lines.push(
      `Rewrote into block ${block?.ulid}: ${rw.series} series, ${rw.samples} samples; chunks ` +
        `${rw.chunks.copied} copied, ${rw.chunks.recoded} re-encoded` +
        (rw.chunks.converted
          ? ` (${rw.chunks.converted} into encodings without start timestamps)`
          : "") +
        `, ${rw.chunks.dropped} outside the window` +
        (rw.seriesExcluded ? `; ${rw.seriesExcluded} series excluded` : ""),
    );
    if (rw.head) {
      lines.push(
        `  head: ${rw.head.records} WAL records, ${
          rw.head.floatSamples + rw.head.histogramSamples + rw.head.outOfOrderSamples
        } samples in the window`,
      );
    }
  }
  if (result.manifest?.minPrometheusVersion) {
    lines.push(`Served by Prometheus ${result.manifest.minPrometheusVersion} or newer`);
  }
  if (archive) {
    lines.push(
      `Wrote ${archive.path} (${formatBytes(archive.size)}) and ${archive.sidecarPath}`,
      `SHA-256 ${archive.sha256}`,
    );
  } else {
    lines.push(
      `Dry run: nothing written (would write ${result.output}, about ` +
        `${formatBytes(result.estimate.archiveBytes)})`,
    );
  }
  return lines.join("\n");
}

interface _ContextFlags {
  "prometheus-url"?: string;
  "no-prometheus-api"?: boolean;
  "grafana-url"?: string;
  "grafana-token"?: string;
  "grafana-token-file"?: string;
  dashboard?: string[];
  folder?: string[];
  "dashboard-file"?: string[];
}

/** Captures the context the flags ask for, before any archive is started. */
async function _captureContext(values: _ContextFlags): Promise<Record<string, ContextCapture>> {
  const context: Record<string, ContextCapture> = {};
  const grafanaOnly = ["grafana-token", "grafana-token-file", "dashboard", "folder"] as const;
  if (!values["grafana-url"] && grafanaOnly.some((flag) => values[flag] !== undefined)) {
    throw usageError(
      "--grafana-token, --grafana-token-file, --dashboard and --folder need --grafana-url",
    );
  }
  if (values["grafana-token"] && values["grafana-token-file"]) {
    throw usageError("give either --grafana-token or --grafana-token-file, not both");
  }
  if (!values["no-prometheus-api"]) {
    context.prometheus = await capturePrometheus(values["prometheus-url"]!);
  }
  if (values["grafana-url"]) {
    let token = values["grafana-token"];
    if (values["grafana-token-file"]) {
      try {
        token = (await Deno.readTextFile(values["grafana-token-file"])).trim();
      } catch (err) {
        throw usageError(`cannot read --grafana-token-file: ${describeError(err)}`);
      }
    }
    context.grafana = await captureGrafana(values["grafana-url"], token, {
      uids: values.dashboard,
      folders: values.folder,
    });
  }
  if (values["dashboard-file"]?.length) {
    context.dashboardFiles = await dashboardFiles(values["dashboard-file"]);
  }
  return context;
}
