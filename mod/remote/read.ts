/**
 * Reading a time window of raw series data from a Prometheus server through its remote-read API
 * (`POST /api/v1/read`), built for large servers:
 *
 * - the window is read in time slices (`sliceMs`, default 2h, aligned to multiples of it since
 *   the epoch like Prometheus' blocks) and series batches (metric names found with
 *   `/api/v1/label/__name__/values`, `batchSize` names per query, per selector), one request per
 *   slice and batch, at most `concurrency` at a time, so the customer's server is never asked for
 *   everything at once;
 * - each answer is written as it streams in to sorted run files in a temp dir, and the runs are
 *   merged at the end (k-way, bounded fan-in), so memory stays bounded whatever the window holds;
 * - a series' chunks from every slice and batch come out as one {@link SeriesChunks}, in time
 *   order with exact duplicates removed, the series in {@link compareLabels} order.
 *
 * Prometheus trims the chunks at a query's edges (it re-encodes a chunk that crosses the start or
 * end of the query, `tsdb/querier.go`), so slices do not produce overlapping chunks; other servers
 * may send whole chunks, which are kept as they are (trimming to the window is the block writer's
 * job).
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import { compress as snappyCompress } from "snappyjs";
import { PromcaseError, usageError } from "../errors.ts";
import { concatBytes } from "../tsdb/encoding.ts";
import { compareLabels, type Label } from "../tsdb/index.ts";
import type { SeriesChunks, SeriesSource, TimedChunk } from "../tsdb/series.ts";
import { encodingName } from "../tsdb/chunkenc/mod.ts";
import { VERSION } from "../version.ts";
import { decodeSampledResponse, readChunkedFrames, StreamReader } from "./frames.ts";
import {
  apiUrl,
  authFromUrl,
  getJson,
  type HttpAuth,
  HttpFailure,
  HttpTransport,
  networkFailure,
  NO_AUTH,
  readText,
  safeUrl,
  statusFailure,
} from "./http.ts";
import {
  ALL_SERIES,
  formatMatchers,
  type LabelMatcher,
  matchTypeToProto,
  metricNamesMatcher,
  validateSelector,
} from "./matchers.ts";
import { ReadRequest_ResponseType, ReadRequestSchema } from "./proto/remote_pb.ts";
import { seriesChunks, sortedLabels } from "./samples.ts";
import { type CombineStats, mergeRuns, RunWriter } from "./spill.ts";

/** Options of {@link readRemote}. */
export interface RemoteReadOptions {
  /** Base URL of the server, e.g. `http://prometheus:9090` (a path prefix is kept). */
  url: string;
  /** Window start (ms, inclusive). */
  from: bigint;
  /** Window end (ms, inclusive). */
  to: bigint;
  /** Selectors, OR-ed; each a list of AND-ed matchers. None: every series. */
  matchers?: readonly (readonly LabelMatcher[])[];
  /** Requests in flight at once (default 2). */
  concurrency?: number;
  /** Time slice length (ms, default 2h). */
  sliceMs?: bigint;
  /** Metric names per request (default 100). */
  batchSize?: number;
  /**
   * A request fails when the server sends nothing for this long (ms, default 120 000): before
   * the answer starts and between its pieces, so a long but flowing stream is fine.
   */
  timeoutMs?: number;
  /** Retries of a failed request (network errors, timeouts, 5xx, 429), default 3. */
  retries?: number;
  /** First retry delay (ms, default 1000), doubled each time, at most 30 s, with jitter. */
  retryDelayMs?: number;
  /** Where to spill (a temp dir is made inside and removed at the end); default the OS's. */
  tmpDir?: string;
  /** Authentication and TLS (see `loadHttpAuth`). */
  auth?: HttpAuth;
  /**
   * Response types to accept: `auto` (streamed chunks, else raw samples; the default),
   * `streamed`, or `samples` (raw samples re-encoded into chunks here; for servers or proxies
   * that only do that, and for tests).
   */
  responseType?: "auto" | "streamed" | "samples";
  /** Skip the metric-name discovery and send each selector as is (one request per slice). */
  noDiscovery?: boolean;
  /** An empty result is not an error (default: it is, with a message naming window and URL). */
  allowEmpty?: boolean;
  /** Largest sampled (non-streamed) answer accepted, compressed (default 256 MiB). */
  maxSampledBytes?: number;
  /** Called as work progresses (after each request and every 1000 series put out). */
  onProgress?: (p: RemoteProgress) => void;
  /** Cancels everything; the iteration then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Progress of {@link readRemote}. */
export interface RemoteProgress {
  /** `discover` (listing metric names), `read` (requests), `merge` (putting series out), `done`. */
  phase: "discover" | "read" | "merge" | "done";
  /** Time slices of the window. */
  slices: number;
  /** Slices whose every batch has been read. */
  slicesDone: number;
  /** Series batches (queries) per slice. */
  batches: number;
  /** Requests in all (slices × batches). */
  requests: number;
  /** Requests answered completely. */
  requestsDone: number;
  /** Series received (a series counts once per slice and batch it appears in). */
  seriesReceived: number;
  /** Bytes of answers received. */
  bytesReceived: number;
  /** Series put out so far. */
  seriesDone: number;
}

/** What {@link readRemote} did, for summaries and tests. */
export interface RemoteReadStats {
  /** Metric names found by discovery (0 when not used). */
  metricNames: number;
  /** Queries per slice. */
  batches: number;
  /** Time slices. */
  slices: number;
  /** HTTP requests sent (remote read and discovery, retries included). */
  requests: number;
  /** Retries after failures. */
  retries: number;
  /** Answers received as streamed chunks. */
  streamedResponses: number;
  /** Answers received as raw samples. */
  sampledResponses: number;
  /** Bytes of remote-read answers. */
  bytesReceived: number;
  /** Streamed frames. */
  frames: number;
  /** Series parts received (per request). */
  seriesReceived: number;
  /** Chunks received (sampled answers: chunks encoded here). */
  chunksReceived: number;
  /** Raw samples received in sampled answers. */
  samplesReceived: number;
  /** Exact duplicate chunks dropped while merging. */
  duplicateChunks: number;
  /** Series put out. */
  series: number;
  /** Chunks put out. */
  chunks: number;
  /** Chunks put out by encoding name (`XOR`, `histogram`, …). */
  chunkEncodings: Record<string, number>;
  /** Bytes written to run files (all merge passes). */
  spilledBytes: number;
  /** Run files written by the requests. */
  runs: number;
  /** Merge passes over the runs (1 when they fit one merge). */
  mergePasses: number;
  /** Things the user should know that did not stop the read. */
  warnings: string[];
}

const _DEFAULT_SLICE_MS = 2n * 3600n * 1000n;
const _MERGE_FAN_IN = 64;
const _MAX_RETRY_DELAY_MS = 30_000;

/**
 * Reads the window `[from, to]` from the server at `url` (see the module doc). Nothing is sent
 * until the result is iterated; all requests complete before the first series comes out (global
 * order needs every answer). Failures reject the iteration with a one-line {@link PromcaseError};
 * the temp files are removed however the iteration ends.
 *
 * @example
 * ```ts
 * const source = readRemote({ url: "http://localhost:9090", from: 0n, to: 7_200_000n });
 * for await (const series of source) console.log(series.labels, series.chunks.length);
 * console.log(source.stats());
 * ```
 */
export function readRemote(
  opts: RemoteReadOptions,
): SeriesSource & { stats(): RemoteReadStats } {
  const o = _validate(opts);
  const stats: RemoteReadStats = {
    metricNames: 0,
    batches: 0,
    slices: 0,
    requests: 0,
    retries: 0,
    streamedResponses: 0,
    sampledResponses: 0,
    bytesReceived: 0,
    frames: 0,
    seriesReceived: 0,
    chunksReceived: 0,
    samplesReceived: 0,
    duplicateChunks: 0,
    series: 0,
    chunks: 0,
    chunkEncodings: {},
    spilledBytes: 0,
    runs: 0,
    mergePasses: 0,
    warnings: [],
  };
  return {
    [Symbol.asyncIterator]: () => _read(o, stats)[Symbol.asyncIterator](),
    stats: () => ({
      ...stats,
      chunkEncodings: { ...stats.chunkEncodings },
      warnings: [...stats.warnings],
    }),
  };
}

interface _Options {
  url: string;
  from: bigint;
  to: bigint;
  selectors: LabelMatcher[][] | undefined;
  concurrency: number;
  sliceMs: bigint;
  batchSize: number;
  timeoutMs: number;
  retries: number;
  retryDelayMs: number;
  tmpDir: string | undefined;
  auth: HttpAuth;
  responseTypes: ReadRequest_ResponseType[];
  noDiscovery: boolean;
  allowEmpty: boolean;
  maxSampledBytes: number;
  onProgress: ((p: RemoteProgress) => void) | undefined;
  signal: AbortSignal | undefined;
}

function _validate(opts: RemoteReadOptions): _Options {
  apiUrl(opts.url, "/api/v1/read"); // throws a usage error for a bad URL
  if (typeof opts.from !== "bigint" || typeof opts.to !== "bigint" || opts.from > opts.to) {
    throw usageError("remote read: the window's start must not be after its end");
  }
  const int = (v: number | undefined, def: number, min: number, what: string): number => {
    if (v === undefined) return def;
    if (!Number.isInteger(v) || v < min) throw usageError(`remote read: ${what} must be ≥ ${min}`);
    return v;
  };
  const sliceMs = opts.sliceMs ?? _DEFAULT_SLICE_MS;
  if (sliceMs < 1000n) throw usageError("remote read: the slice must be at least 1s");
  const selectors = opts.matchers && opts.matchers.length > 0
    ? opts.matchers.map((s) => s.map(({ name, type, value }) => ({ name, type, value })))
    : undefined;
  for (const s of selectors ?? []) {
    const problem = validateSelector(s);
    if (problem) throw usageError(`remote read: ${problem}`);
  }
  const responseTypes = opts.responseType === "samples"
    ? [ReadRequest_ResponseType.SAMPLES]
    : opts.responseType === "streamed"
    ? [ReadRequest_ResponseType.STREAMED_XOR_CHUNKS]
    : [ReadRequest_ResponseType.STREAMED_XOR_CHUNKS, ReadRequest_ResponseType.SAMPLES];
  return {
    url: opts.url.replace(/\/+$/, ""),
    from: opts.from,
    to: opts.to,
    selectors,
    concurrency: int(opts.concurrency, 2, 1, "concurrency"),
    sliceMs,
    batchSize: int(opts.batchSize, 100, 1, "batch size"),
    timeoutMs: int(opts.timeoutMs, 120_000, 1, "timeout"),
    retries: int(opts.retries, 3, 0, "retries"),
    retryDelayMs: int(opts.retryDelayMs, 1000, 0, "retry delay"),
    tmpDir: opts.tmpDir,
    auth: authFromUrl(opts.url, opts.auth ?? NO_AUTH),
    responseTypes,
    noDiscovery: opts.noDiscovery ?? false,
    allowEmpty: opts.allowEmpty ?? false,
    maxSampledBytes: int(opts.maxSampledBytes, 256 * 1024 * 1024, 1, "sampled answer limit"),
    onProgress: opts.onProgress,
    signal: opts.signal,
  };
}

interface _Unit {
  slice: number;
  batch: number;
  start: bigint;
  end: bigint;
  matchers: LabelMatcher[];
}

/** The window's slices, cut at multiples of `size` since the epoch. */
export function timeSlices(from: bigint, to: bigint, size: bigint): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  for (let start = from; start <= to;) {
    let k = start / size;
    if (start < 0n && start % size !== 0n) k -= 1n; // floor for negative times
    const boundary = (k + 1n) * size - 1n;
    const end = boundary < to ? boundary : to;
    out.push([start, end]);
    start = end + 1n;
  }
  return out;
}

/** ISO 8601 time of a ms timestamp, for messages. */
function _iso(ms: bigint): string {
  const n = Number(ms);
  if (!Number.isFinite(n) || Math.abs(n) > 8.64e15) return `${ms}ms`;
  return new Date(n).toISOString().replace(".000Z", "Z");
}

function _seconds(ms: bigint): string {
  const neg = ms < 0n;
  const a = neg ? -ms : ms;
  const frac = a % 1000n;
  return `${neg ? "-" : ""}${a / 1000n}${frac ? `.${String(frac).padStart(3, "0")}` : ""}`;
}

function _sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

class _Reader {
  readonly o: _Options;
  readonly stats: RemoteReadStats;
  readonly transport: HttpTransport;
  readonly dir: string;
  readonly combine: CombineStats;
  readonly progress: RemoteProgress;
  #runCount = 0;

  constructor(o: _Options, stats: RemoteReadStats, transport: HttpTransport, dir: string) {
    this.o = o;
    this.stats = stats;
    this.transport = transport;
    this.dir = dir;
    this.combine = stats;
    this.progress = {
      phase: "discover",
      slices: 0,
      slicesDone: 0,
      batches: 0,
      requests: 0,
      requestsDone: 0,
      seriesReceived: 0,
      bytesReceived: 0,
      seriesDone: 0,
    };
  }

  report(): void {
    this.progress.seriesReceived = this.stats.seriesReceived;
    this.progress.bytesReceived = this.stats.bytesReceived;
    this.progress.seriesDone = this.stats.series;
    this.o.onProgress?.({ ...this.progress });
  }

  newRunPath(): string {
    return `${this.dir}/run-${String(this.#runCount++).padStart(6, "0")}`;
  }

  get readUrl(): string {
    return `${safeUrl(this.o.url)}/api/v1/read`;
  }

  /** Runs `attempt` with retries and backoff for retryable failures. */
  async withRetries<T>(
    signal: AbortSignal,
    what: () => string,
    attempt: () => Promise<T>,
  ): Promise<T> {
    for (let n = 0;; n++) {
      try {
        this.stats.requests++;
        return await attempt();
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        if (!(err instanceof HttpFailure)) throw err;
        if (err.retryable && n < this.o.retries) {
          this.stats.retries++;
          const base = Math.min(this.o.retryDelayMs * 2 ** n, _MAX_RETRY_DELAY_MS);
          await _sleep(base * (0.5 + Math.random() / 2), signal);
          continue;
        }
        const tries = n + 1;
        throw new PromcaseError(
          `${what()}: ${err.message}${tries > 1 ? ` (${tries} attempts)` : ""}`,
        );
      }
    }
  }

  /** The queries per slice: selectors × batches of metric names. */
  async plan(signal: AbortSignal): Promise<LabelMatcher[][]> {
    const selectors = this.o.selectors ?? [[...ALL_SERIES]];
    if (this.o.noDiscovery) return selectors;
    const queries: LabelMatcher[][] = [];
    const names = new Set<string>();
    for (const selector of selectors) {
      const target = apiUrl(this.o.url, "/api/v1/label/__name__/values", {
        "match[]": formatMatchers(selector),
        start: _seconds(this.o.from),
        end: _seconds(this.o.to),
      });
      let found: string[];
      try {
        const body = await this.withRetries(
          signal,
          () => `listing metric names at ${safeUrl(target)}`,
          async () => {
            try {
              return await getJson(this.transport, target, {
                timeoutMs: this.o.timeoutMs,
                signal,
              }) as { data?: unknown };
            } catch (err) {
              // A failure of this helper request other than the network (a proxy that only lets
              // /api/v1/read through, an old server) is not fatal: read by selector instead.
              if (err instanceof HttpFailure && err.status !== undefined && !err.retryable) {
                throw new _NoDiscovery(err.message);
              }
              throw err;
            }
          },
        );
        if (!Array.isArray(body.data) || body.data.some((n) => typeof n !== "string")) {
          throw new _NoDiscovery("the answer is not a list of names");
        }
        found = body.data as string[];
      } catch (err) {
        if (!(err instanceof _NoDiscovery)) throw err;
        this.stats.warnings.push(
          `could not list metric names (${err.message}); reading by selector without batches`,
        );
        return selectors;
      }
      found.sort();
      for (const n of found) names.add(n);
      for (let i = 0; i < found.length; i += this.o.batchSize) {
        queries.push([...selector, metricNamesMatcher(found.slice(i, i + this.o.batchSize))]);
      }
    }
    this.stats.metricNames = names.size;
    return queries;
  }

  /** One request for one unit, with its answer written to run files; returns their paths. */
  async fetchUnit(unit: _Unit, signal: AbortSignal): Promise<string[]> {
    const files: string[] = [];
    const what = () =>
      `remote read ${this.readUrl} for ${_iso(unit.start)} to ${_iso(unit.end)}` +
      (this.progress.batches > 1 ? ` (batch ${unit.batch + 1} of ${this.progress.batches})` : "");
    return await this.withRetries(signal, what, async () => {
      try {
        await this.#readOnce(unit, signal, files);
        return [...files];
      } catch (err) {
        for (const f of files) await Deno.remove(f).catch(() => {});
        files.length = 0;
        throw err;
      }
    });
  }

  async #readOnce(unit: _Unit, outer: AbortSignal, files: string[]): Promise<void> {
    const o = this.o;
    const request = create(ReadRequestSchema, {
      queries: [{
        startTimestampMs: unit.start,
        endTimestampMs: unit.end,
        matchers: unit.matchers.map((m) => ({
          type: matchTypeToProto(m.type),
          name: m.name,
          value: m.value,
        })),
        // Prometheus takes the chunk querier's range from the hints when they are present.
        hints: { startMs: unit.start, endMs: unit.end },
      }],
      acceptedResponseTypes: o.responseTypes,
    });
    const body = snappyCompress(toBinary(ReadRequestSchema, request));
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    // One timer per request, re-armed for the rest of the period when data came meanwhile
    // (resetting a timer for every piece of a large answer costs measurable CPU).
    let lastData = Date.now();
    const check = () => {
      const idle = Date.now() - lastData;
      if (idle < o.timeoutMs) {
        timer = setTimeout(check, o.timeoutMs - idle);
        return;
      }
      ctl.abort(new DOMException("timed out", "TimeoutError"));
    };
    const arm = () => {
      lastData = Date.now();
      timer ??= setTimeout(check, o.timeoutMs);
    };
    const onOuter = () => ctl.abort(outer.reason);
    outer.addEventListener("abort", onOuter, { once: true });
    let writer: RunWriter | undefined;
    let reader: StreamReader | undefined;
    const secrets = this.transport.auth.secrets;
    try {
      arm();
      let response: Response;
      try {
        response = await this.transport.request(apiUrl(o.url, "/api/v1/read"), {
          method: "POST",
          headers: {
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "snappy",
            "Accept-Encoding": "snappy",
            "User-Agent": `promcase/${VERSION}`,
            "X-Prometheus-Remote-Read-Version": "0.1.0",
          },
          body,
          signal: ctl.signal,
        });
      } catch (err) {
        throw this.#networkFailure(err, ctl.signal, outer);
      }
      if (!response.ok) {
        const text = await readText(response, 64 * 1024).catch(() => "");
        throw statusFailure(response.status, response.statusText, text, secrets);
      }
      const type = response.headers.get("content-type") ?? "";
      if (!response.body) throw new HttpFailure("empty answer", true);
      reader = new StreamReader(response.body);
      reader.onData = (n) => {
        this.stats.bytesReceived += n;
        arm();
      };
      if (type.startsWith("application/x-streamed-protobuf")) {
        if (!/proto=prometheus\.ChunkedReadResponse/.test(type)) {
          throw new HttpFailure(`unexpected streamed answer type "${type}"`, false);
        }
        this.stats.streamedResponses++;
        const frames = readChunkedFrames(reader, { onFrame: () => this.stats.frames++ });
        let last: Label[] | undefined;
        try {
          for await (const frame of frames) {
            if (frame.queryIndex !== 0n) {
              throw new HttpFailure(`answer for query ${frame.queryIndex}, asked for one`, false);
            }
            for (const cs of frame.chunkedSeries) {
              const labels = sortedLabels(cs.labels);
              const chunks: TimedChunk[] = cs.chunks.map((c) => ({
                mint: c.minTimeMs,
                maxt: c.maxTimeMs,
                encoding: c.type,
                data: c.data,
              }));
              if (!writer || !writer.accepts(labels)) {
                // Series arrive sorted (Prometheus sorts them), but external labels or another
                // server may break that: a new sorted run keeps the merge correct either way.
                await writer?.close();
                writer = await RunWriter.create(this.newRunPath());
                files.push(writer.path);
              }
              if (!last || !_sameLabels(last, labels)) this.stats.seriesReceived++;
              last = labels;
              this.stats.chunksReceived += chunks.length;
              await writer.append(labels, chunks);
            }
          }
        } catch (err) {
          throw err instanceof HttpFailure ? err : this.#networkFailure(err, ctl.signal, outer);
        }
      } else if (type.startsWith("application/x-protobuf")) {
        this.stats.sampledResponses++;
        const bytes = await this.#readAll(reader, ctl.signal, outer);
        const decoded = decodeSampledResponse(bytes);
        const series = (decoded.results[0]?.timeseries ?? []).map((ts) => ({
          labels: sortedLabels(ts.labels),
          ts,
        }));
        series.sort((a, b) => compareLabels(a.labels, b.labels));
        if (series.length > 0) {
          writer = await RunWriter.create(this.newRunPath());
          files.push(writer.path);
        }
        for (const { labels, ts } of series) {
          this.stats.samplesReceived += ts.samples.length + ts.histograms.length;
          const chunks = seriesChunks(ts);
          this.stats.seriesReceived++;
          this.stats.chunksReceived += chunks.length;
          await writer!.append(labels, chunks);
        }
      } else {
        const text = await reader.rest(200).then((b) => new TextDecoder().decode(b)).catch(() =>
          ""
        );
        throw new HttpFailure(
          `the answer is not remote-read data (Content-Type "${type}"` +
            `${text ? `: ${text.replace(/\s+/g, " ").slice(0, 100)}` : ""}); is this a Prometheus?`,
          false,
        );
      }
      await writer?.close();
      if (writer) this.stats.spilledBytes += writer.bytes;
      writer = undefined;
    } finally {
      clearTimeout(timer);
      outer.removeEventListener("abort", onOuter);
      writer?.abort();
      await reader?.cancel();
    }
  }

  async #readAll(
    reader: StreamReader,
    own: AbortSignal,
    outer: AbortSignal,
  ): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let total = 0;
    try {
      while (!(await reader.atEnd())) {
        const part = await reader.rest(1024 * 1024);
        total += part.length;
        if (total > this.o.maxSampledBytes) {
          throw new HttpFailure(
            `the sampled answer is larger than ${this.o.maxSampledBytes} bytes; use smaller ` +
              "slices or batches",
            false,
          );
        }
        parts.push(part.slice());
      }
    } catch (err) {
      throw err instanceof HttpFailure ? err : this.#networkFailure(err, own, outer);
    }
    return concatBytes(parts);
  }

  /** The failure to report for an error of fetch or the body stream. */
  #networkFailure(err: unknown, own: AbortSignal, outer: AbortSignal): unknown {
    if (outer.aborted) return outer.reason;
    if (err instanceof HttpFailure) return err;
    if (own.aborted && (own.reason as Error | undefined)?.name === "TimeoutError") {
      return new HttpFailure(`the server sent nothing for ${this.o.timeoutMs / 1000} s`, true);
    }
    return networkFailure(err, this.transport.auth.secrets);
  }
}

class _NoDiscovery extends Error {}

function _sameLabels(a: readonly Label[], b: readonly Label[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i].name !== b[i].name || a[i].value !== b[i].value) return false;
  }
  return true;
}

/** Runs `fn` on every item with at most `n` at a time; the first failure aborts the rest. */
async function _pool<T>(
  items: readonly T[],
  n: number,
  signal: AbortSignal,
  abort: (reason: unknown) => void,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (!failure && !signal.aborted && next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (err) {
        if (!failure) {
          failure = { err };
          abort(err);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failure) throw failure.err;
  if (signal.aborted) throw signal.reason;
}

async function* _read(o: _Options, stats: RemoteReadStats): AsyncGenerator<SeriesChunks> {
  o.signal?.throwIfAborted();
  const transport = new HttpTransport(o.auth);
  let dir: string | undefined;
  const ctl = new AbortController();
  const onOuter = () => ctl.abort(o.signal!.reason);
  o.signal?.addEventListener("abort", onOuter, { once: true });
  try {
    try {
      dir = await Deno.makeTempDir({ dir: o.tmpDir, prefix: "promcase-remote-" });
    } catch (err) {
      throw new PromcaseError(
        `cannot create a temp dir${o.tmpDir ? ` in ${o.tmpDir}` : ""}: ${
          err instanceof Error ? err.message : err
        }`,
      );
    }
    const r = new _Reader(o, stats, transport, dir);
    const signal = ctl.signal;

    const queries = await r.plan(signal);
    const slices = timeSlices(o.from, o.to, o.sliceMs);
    stats.slices = slices.length;
    stats.batches = queries.length;
    const window = `${_iso(o.from)} to ${_iso(o.to)}`;
    const selectorText = o.selectors
      ? ` matching ${o.selectors.map(formatMatchers).join(" or ")}`
      : "";
    const empty = () =>
      new PromcaseError(
        `no series${selectorText} with data from ${window} at ${safeUrl(o.url)}`,
      );
    if (queries.length === 0) {
      if (o.allowEmpty) return;
      throw empty();
    }
    Object.assign(r.progress, {
      phase: "read",
      slices: slices.length,
      batches: queries.length,
      requests: slices.length * queries.length,
    });
    r.report();

    const units: _Unit[] = [];
    slices.forEach(([start, end], slice) => {
      queries.forEach((matchers, batch) => units.push({ slice, batch, start, end, matchers }));
    });
    const left = slices.map(() => queries.length);
    const runs: string[] = [];
    await _pool(units, o.concurrency, signal, (e) => ctl.abort(e), async (unit) => {
      const files = await r.fetchUnit(unit, signal);
      runs.push(...files);
      stats.runs += files.length;
      r.progress.requestsDone++;
      if (--left[unit.slice] === 0) r.progress.slicesDone++;
      r.report();
    });

    r.progress.phase = "merge";
    r.report();
    let paths = runs;
    while (paths.length > _MERGE_FAN_IN) {
      stats.mergePasses++;
      const next: string[] = [];
      for (let i = 0; i < paths.length; i += _MERGE_FAN_IN) {
        const group = paths.slice(i, i + _MERGE_FAN_IN);
        const writer = await RunWriter.create(r.newRunPath());
        try {
          for await (const s of mergeRuns(group, r.combine)) {
            signal.throwIfAborted();
            await writer.append(s.labels, s.chunks);
          }
          await writer.close();
        } catch (err) {
          writer.abort();
          throw err;
        }
        stats.spilledBytes += writer.bytes;
        next.push(writer.path);
        for (const p of group) await Deno.remove(p).catch(() => {});
      }
      paths = next;
    }
    stats.mergePasses++;
    for await (const s of mergeRuns(paths, r.combine)) {
      signal.throwIfAborted();
      stats.series++;
      stats.chunks += s.chunks.length;
      for (const c of s.chunks) {
        const name = encodingName(c.encoding);
        stats.chunkEncodings[name] = (stats.chunkEncodings[name] ?? 0) + 1;
      }
      if (stats.series % 1000 === 0) r.report();
      yield s;
    }
    if (stats.series === 0 && !o.allowEmpty) throw empty();
    r.progress.phase = "done";
    r.report();
  } finally {
    o.signal?.removeEventListener("abort", onOuter);
    ctl.abort(new DOMException("remote read finished", "AbortError"));
    transport.close();
    if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
