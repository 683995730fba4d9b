/**
 * A high-cardinality scrape target for tests and benchmarks: `series` series spread over
 * `metrics` metric names, served on 127.0.0.1 in the Prometheus text format (0.0.4), with values
 * that change on every scrape and carry three decimals (random walks; some families are
 * counters), which is the worst case for XOR chunks (high-entropy values, ~50-64 bits a sample).
 *
 * Everything is deterministic: scrape `k` (counted from 0 in the order the target serves them) of
 * a target with seed `seed` has the same body every time. {@link Exposition} builds the bodies
 * without a server, so a test can recompute the values a Prometheus must have stored.
 *
 * Stopping the target (`stop()`) closes the listener: the next scrape fails with a refused
 * connection and Prometheus writes stale markers for every series of the previous scrape (a failed
 * scrape is handled as an empty one: `scrapeLoop.scrapeAndReport` appends an empty body, and
 * `updateStaleMarkers` marks each series it no longer saw). A Prometheus shut down while the
 * target still answers writes none (its scrape loops stop with end-of-run staleness disabled).
 *
 * Memory: the label part of every line is encoded once (one byte array for all series, ~60 bytes
 * a series) with a Float64Array of running values; a scrape allocates one body (~80 bytes a
 * series: 16 MiB at 200,000 series) that is dropped when it has been sent. Measured on a shared
 * 2-core VM at 200,000 series: setup 1 s, an 11.6 MiB body in 110-600 ms (1 M series: ~1 s).
 *
 * Usage as a program (serves until SIGINT/SIGTERM; `--measure N` builds N bodies and prints how
 * long each took instead):
 *
 *   deno run -A tests/_scrape_target.ts [--series 200000] [--metrics 100] [--seed N]
 *     [--port 0] [--label name=value]... [--counter-share 0.25] [--measure N]
 *
 * @module
 */

/** Options of {@link Exposition} and {@link startScrapeTarget}. */
export interface ExpositionOptions {
  /** Number of series (default 1000). */
  series?: number;
  /** Number of metric names (families) the series are spread over (default 100, at most `series`). */
  metrics?: number;
  /**
   * Constant labels on every series, e.g. `{ region: "eu-1" }`: legacy names (`[a-zA-Z_]\w*`, not
   * `__*`, `shard` or `series`), any values.
   */
  labels?: Record<string, string>;
  /** Seed of every value and name (default 1). */
  seed?: number;
  /** Share of the metric names that are counters (`_total`, only growing); default 0.25. */
  counterShare?: number;
}

/** One metric family of an {@link Exposition}. */
export interface ExpositionFamily {
  /** Metric name, e.g. `highcard_3fa91c_value` or `highcard_0d17e2_total`. */
  name: string;
  /** `gauge` (random walk) or `counter` (grows on every scrape). */
  type: "gauge" | "counter";
  /** Index of its first series. */
  first: number;
  /** Number of its series. */
  count: number;
}

const _encoder = new TextEncoder();
const _NEWLINE = 0x0a;
/** Longest value text: sign, 16 integer digits, point, 3 decimals. */
const _MAX_VALUE_BYTES = 21;

/** A 32-bit avalanche hash (the finalizer of murmur3). */
function _mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** A uniform 32-bit number for series `i` at scrape `k` of the target seeded `seed`. */
function _draw(seed: number, i: number, k: number): number {
  return _mix32(_mix32(seed ^ Math.imul(i + 1, 0x9e3779b1)) ^ Math.imul(k + 1, 0x85ebca77));
}

/** Escapes a label value for the text format (backslash, double quote, newline). */
function _escapeLabelValue(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** Writes the integer `milli` (thousandths) as `[-]int.ddd` at `pos`; returns the new position. */
function _writeMilli(out: Uint8Array, pos: number, milli: number): number {
  let a = milli;
  if (a < 0) {
    out[pos++] = 0x2d; // "-"
    a = -a;
  }
  const frac = a % 1000;
  let int = (a - frac) / 1000;
  // Integer digits, written backwards into place.
  let digits = 1;
  for (let x = int; x >= 10; x = Math.floor(x / 10)) digits++;
  for (let d = pos + digits - 1; d >= pos; d--) {
    out[d] = 0x30 + (int % 10);
    int = Math.floor(int / 10);
  }
  pos += digits;
  out[pos++] = 0x2e; // "."
  out[pos++] = 0x30 + Math.floor(frac / 100);
  out[pos++] = 0x30 + (Math.floor(frac / 10) % 10);
  out[pos++] = 0x30 + (frac % 10);
  return pos;
}

/**
 * The series of a target and their values scrape by scrape. Values are held as integers in
 * thousandths, so each is exactly the decimal the body shows (`12.345`), and move on every
 * scrape: gauges by a non-zero step in ±9.999, counters by 0.001-99.999.
 */
export class Exposition {
  /** The metric families, in exposition order (not in name order: names are hashes). */
  readonly families: readonly ExpositionFamily[];
  /** Number of series. */
  readonly seriesCount: number;
  /** Bodies built so far: the next {@link next} builds scrape `scrapes`. */
  scrapes = 0;
  readonly #seed: number;
  /** `name{labels} ` of every series, back to back. */
  readonly #prefixes: Uint8Array;
  /** Start of series i's prefix in #prefixes; one more entry for the end. */
  readonly #offsets: Uint32Array;
  /** `# TYPE` line of family f, written before its first series. */
  readonly #typeLines: Uint8Array[];
  /** Whether series i is a counter. */
  readonly #counter: Uint8Array;
  /** Series i's value at the last built scrape, in thousandths. */
  readonly #milli: Float64Array;

  constructor(options: ExpositionOptions = {}) {
    const series = Math.floor(options.series ?? 1000);
    const metrics = Math.min(Math.floor(options.metrics ?? 100), series);
    if (!(series >= 1 && metrics >= 1)) {
      throw new Error("Exposition: series and metrics must be at least 1");
    }
    const seed = (options.seed ?? 1) >>> 0;
    const counterShare = options.counterShare ?? 0.25;
    this.#seed = seed;
    this.seriesCount = series;
    for (const name of Object.keys(options.labels ?? {})) {
      if (
        !/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name) || name.startsWith("__") ||
        /^(shard|series)$/.test(name)
      ) {
        throw new Error(`Exposition: bad constant label name ${JSON.stringify(name)}`);
      }
    }
    const constant = Object.entries(options.labels ?? {})
      .map(([n, v]) => `${n}="${_escapeLabelValue(v)}",`)
      .join("");
    const families: ExpositionFamily[] = [];
    const base = Math.floor(series / metrics);
    let first = 0;
    for (let m = 0; m < metrics; m++) {
      const h = _mix32(seed ^ Math.imul(m + 1, 0x27d4eb2f));
      const type = (h & 0xffff) / 65536 < counterShare ? "counter" : "gauge";
      const hex = (h >>> 8).toString(16).padStart(6, "0");
      const name = `highcard_${hex}_${m}_${type === "counter" ? "total" : "value"}`;
      const count = base + (m < series % metrics ? 1 : 0);
      families.push({ name, type, first, count });
      first += count;
    }
    this.families = families;

    this.#typeLines = families.map((f) => _encoder.encode(`# TYPE ${f.name} ${f.type}\n`));
    // One string for all prefixes, encoded at once: per-series encoding takes seconds at 10^6.
    const constantBytes = _encoder.encode(constant).length;
    const texts: string[] = [];
    const offsets = new Uint32Array(series + 1);
    let length = 0;
    this.#counter = new Uint8Array(series);
    this.#milli = new Float64Array(series);
    for (const f of families) {
      // Only the name and the constant labels can hold non-ASCII text.
      const nameBytes = _encoder.encode(f.name).length;
      for (let j = 0; j < f.count; j++) {
        const i = f.first + j;
        // A second label with few values makes postings of realistic shapes.
        const rest = `shard="${i % 16}",series="${i}"} `;
        texts.push(`${f.name}{${constant}${rest}`);
        offsets[i] = length;
        length += nameBytes + 1 + constantBytes + rest.length;
        const counter = f.type === "counter";
        this.#counter[i] = counter ? 1 : 0;
        const h = _draw(seed, i, -1);
        this.#milli[i] = counter ? h % 1_000_000_000 : (h % 2_000_001) - 1_000_000;
      }
    }
    offsets[series] = length;
    this.#prefixes = _encoder.encode(texts.join(""));
    if (this.#prefixes.length !== length) throw new Error("Exposition: prefix lengths differ");
    this.#offsets = offsets;
  }

  /** Name and labels of series `i` as the body shows them, e.g. `m{shard="1",series="1"}`. */
  seriesText(i: number): string {
    return new TextDecoder().decode(this.#prefixes.subarray(this.#offsets[i], this.#offsets[i + 1]))
      .trimEnd();
  }

  /** Value of series `i` at the last built scrape, in thousandths (exact). */
  milli(i: number): number {
    return this.#milli[i];
  }

  /** Advances every value to scrape `scrapes` and returns that scrape's body. */
  next(): Uint8Array<ArrayBuffer> {
    const k = this.scrapes++;
    const seed = this.#seed;
    const milli = this.#milli;
    const counter = this.#counter;
    // Values move first: scrape 0 already differs from the start values.
    for (let i = 0; i < milli.length; i++) {
      const h = _draw(seed, i, k);
      if (counter[i]) {
        milli[i] += 1 + (h % 99_999);
      } else {
        const step = (h % 19_999) - 9_999;
        milli[i] += step === 0 ? 1 : step;
      }
    }
    let size = this.#prefixes.length + this.seriesCount * (_MAX_VALUE_BYTES + 1);
    for (const t of this.#typeLines) size += t.length;
    const out = new Uint8Array(size);
    let pos = 0;
    const prefixes = this.#prefixes;
    const offsets = this.#offsets;
    for (const [f, family] of this.families.entries()) {
      out.set(this.#typeLines[f], pos);
      pos += this.#typeLines[f].length;
      const end = family.first + family.count;
      for (let i = family.first; i < end; i++) {
        out.set(prefixes.subarray(offsets[i], offsets[i + 1]), pos);
        pos += offsets[i + 1] - offsets[i];
        pos = _writeMilli(out, pos, milli[i]);
        out[pos++] = _NEWLINE;
      }
    }
    return out.subarray(0, pos);
  }
}

/** Options of {@link startScrapeTarget}. */
export interface ScrapeTargetOptions extends ExpositionOptions {
  /** Port on 127.0.0.1 (default 0: a free one). */
  port?: number;
}

/** A running target, see {@link startScrapeTarget}. */
export interface ScrapeTarget extends AsyncDisposable {
  /** `127.0.0.1:PORT`, as a Prometheus `static_configs` target. */
  address: string;
  /** `http://127.0.0.1:PORT/metrics`. */
  url: string;
  /** The exposition it serves (its `scrapes` counts the bodies served). */
  exposition: Exposition;
  /** Milliseconds the slowest body took to build. */
  maxBuildMs: number;
  /** Milliseconds the last body took to build. */
  lastBuildMs: number;
  /** Closes the listener (later scrapes are refused: stale markers). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Serves an {@link Exposition} at `/metrics` on 127.0.0.1 until `stop()`. Scrapes are answered one
 * at a time in arrival order, each with the next scrape's body.
 */
export function startScrapeTarget(options: ScrapeTargetOptions = {}): ScrapeTarget {
  const exposition = new Exposition(options);
  const target: Partial<ScrapeTarget> & { maxBuildMs: number; lastBuildMs: number } = {
    exposition,
    maxBuildMs: 0,
    lastBuildMs: 0,
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: options.port ?? 0, onListen() {} },
    (req) => {
      if (new URL(req.url).pathname !== "/metrics") {
        return new Response("not found\n", { status: 404 });
      }
      const started = performance.now();
      const body = exposition.next();
      target.lastBuildMs = performance.now() - started;
      target.maxBuildMs = Math.max(target.maxBuildMs, target.lastBuildMs);
      return new Response(body, {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    },
  );
  const port = server.addr.port;
  let stopping: Promise<void> | undefined;
  const stop = () => stopping ??= server.shutdown();
  Object.assign(target, {
    address: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}/metrics`,
    stop,
    [Symbol.asyncDispose]: stop,
  });
  return target as ScrapeTarget;
}

const _USAGE = "usage: _scrape_target.ts [--series N] [--metrics N] [--seed N] [--port N] " +
  "[--label name=value]... [--counter-share X] [--measure N]";

async function _main(args: string[]): Promise<number> {
  const options: ScrapeTargetOptions = {};
  const labels: Record<string, string> = {};
  let measure = 0;
  for (let i = 0; i < args.length; i++) {
    const m = /^--(series|metrics|seed|port|label|counter-share|measure)(?:=(.*))?$/.exec(args[i]);
    const v = m ? m[2] ?? args[++i] : undefined;
    if (!m || v === undefined) {
      console.error(_USAGE);
      return 2;
    }
    if (m[1] === "label") {
      const eq = v.indexOf("=");
      if (eq <= 0) {
        console.error(_USAGE);
        return 2;
      }
      labels[v.slice(0, eq)] = v.slice(eq + 1);
    } else if (m[1] === "measure") {
      measure = Number(v);
    } else {
      const key = ({ "counter-share": "counterShare" } as Record<string, string>)[m[1]] ?? m[1];
      (options as Record<string, number>)[key] = Number(v);
    }
  }
  options.labels = labels;
  if (measure > 0) {
    const started = performance.now();
    const exposition = new Exposition(options);
    console.log(`setup: ${(performance.now() - started).toFixed(0)} ms`);
    for (let k = 0; k < Math.min(measure, 1000); k++) {
      const t0 = performance.now();
      const body = exposition.next();
      console.log(
        `scrape ${k}: ${(performance.now() - t0).toFixed(0)} ms, ${body.length} bytes, ` +
          `${exposition.seriesCount} series`,
      );
    }
    return 0;
  }
  const target = startScrapeTarget(options);
  console.log(target.url);
  const { promise, resolve } = Promise.withResolvers<void>();
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, resolve);
  await promise;
  await target.stop();
  console.error(`served ${target.exposition.scrapes} scrapes, slowest ${target.maxBuildMs} ms`);
  return 0;
}

if (import.meta.main) Deno.exit(await _main(Deno.args));
