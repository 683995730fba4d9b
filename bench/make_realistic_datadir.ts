/**
 * Builds a realistic Prometheus data dir for the benchmarks (`bench/export_bench.sh`), or reuses
 * the one already there. Everything is real TSDB format, written with promcase's own writers
 * (`BlockWriter`, `XorAppender`, `WalSegmentWriter`; WAL records encoded here with the layouts of
 * `tsdb/record`), so `promtool tsdb analyze` and any Prometheus can read it.
 *
 * What it looks like (all deterministic: seeded hashes, a fixed end time):
 *
 * - Targets scraped every 15 s at their own offset, with a few ms of jitter on some scrapes:
 *   node_exporter hosts (per-CPU counters in 1/100 s, memory and filesystem gauges in 4 KiB
 *   steps, network/disk byte counters, noisy load and temperatures, `node_time_seconds`); app pods
 *   of six deployments (`http_requests_total` by handler/method/code, classic histograms
 *   `http_request_duration_seconds_bucket{le=...}` with `_sum`/`_count`, process and Go runtime
 *   metrics); one kube-state-metrics target with per-pod series; `up` and `scrape_*` for each.
 * - Churn: every deployment is rolled out every 20-40 h; the old pods' series (and their
 *   kube-state-metrics series) end with a stale marker, new pods bring new series.
 * - Blocks as Prometheus with a 30d retention (block ranges 2h, 6h, 18h, 54h) leaves them: the
 *   head was cut into 2h level-1 blocks (the first one starting at the first sample), and the
 *   compaction planner (simulated with Prometheus' rules: aligned ranges, the newest block left
 *   out) merged them; meta.json has the real level, sorted sources and parents. Chunks are cut as
 *   the head cuts them (about 120 samples, never across a 2h boundary, at most 1005 bytes).
 *   `--max-block-hours H` drops the ranges above H hours, as Prometheus'
 *   `--storage.tsdb.max-block-duration` does: with 2 nothing is compacted and every block is a 2h
 *   level-1 block, as on hosts whose blocks a Thanos sidecar uploads (thousands of small blocks
 *   with `--days 200`).
 * - `--values random-walk` replaces every value model by a random walk with three decimals that
 *   moves on every scrape (high-entropy values, as many exporters' gauges are); the series, times,
 *   churn and stale markers stay the same. `--size` then underestimates: give `--units`.
 * - The head from the newest block's end: `wal/checkpoint.N` (series records, then the first
 *   20 min of samples), segment N+1 (samples up to the head truncation an hour into the head, when
 *   the newest block was cut) and N+2... (128 MiB at most, the last one live, i.e. not padded),
 *   snappy-compressed; one Series record per target scrape that creates series, one Samples
 *   record per scrape. An empty `chunks_head/`; with `--head-chunks`, the chunks the head has
 *   memory-mapped there, as a running Prometheus has them: each series' chunk once full (120
 *   samples, or at a 2h boundary), written after the WAL record of its last sample; the open chunks
 *   are in the WAL alone. (Memory then grows with the head: its open chunks.)
 *
 * The size is reached by the number of hosts and pods ("units": one host and about two pods); the
 * real size is printed. Memory stays bounded by one block's index (labels and chunk metas), never
 * its samples: series are written in label order and their samples generated on the fly, each
 * series carrying only its running value from one block to the next.
 *
 * A marker file next to the dir (`DIR.complete`, holding the layout and a summary) tells a later
 * run with the same layout that the dir is complete and reusable. The summary (JSON, including
 * the newest sample's time) is printed on stdout either way.
 *
 * Usage: deno run -A bench/make_realistic_datadir.ts DIR [--size 2GiB] [--days 7]
 *          [--end 2026-11-25T14:17:00Z] [--seed N] [--units N] [--max-block-hours 54]
 *          [--values realistic|random-walk] [--head-chunks]
 *
 * @module
 */

import { parseByteSize } from "../mod/bytesize.ts";
import { type BlockDesc, BlockWriter } from "../mod/tsdb/block.ts";
import { Encoding } from "../mod/tsdb/chunkenc/mod.ts";
import { STALE_NAN_BITS, XorAppender } from "../mod/tsdb/chunkenc/xor.ts";
import { compareUtf8 } from "../mod/tsdb/encoding.ts";
import { compareLabels, type Label } from "../mod/tsdb/index.ts";
import { RecordType } from "../mod/tsdb/record.ts";
import { WalSegmentWriter } from "../mod/tsdb/wlog.ts";
import { HeadChunkMapper, STALE_HI, STALE_LO } from "../tests/_head_gen.ts";

const MIB = 1024 * 1024;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const SCRAPE_MS = 15_000;
const CHUNK_RANGE = 2 * HOUR;
/** Prometheus' block ranges with a 30d retention (max block duration 3d). */
const BLOCK_RANGES = [2 * HOUR, 6 * HOUR, 18 * HOUR, 54 * HOUR];
const WAL_SEGMENT_SIZE = 128 * MIB;
const WAL_PAGE = 32 * 1024;
/** Samples Prometheus aims to put in one head chunk. */
const SAMPLES_PER_CHUNK = 120;
/** `chunkenc.MaxBytesPerXORChunk` (1024) less room for one maximal sample (19). */
const MAX_BYTES_PER_XOR_CHUNK = 1024 - 19;
/** Bytes one unit (a host, ~2 pods, their kube-state-metrics series) takes per day, measured. */
const BYTES_PER_UNIT_DAY = 6.2 * MIB;
/** Bumped whenever the output for the same options changes. */
const GENERATOR_VERSION = 1;

// ---------------------------------------------------------------------------------------------
// Deterministic randomness: a stateless hash per (seed, scrape, draw) so that every series can
// compute its own values (and the members of one histogram the same request counts) in any order.

function _mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** A uniform number in [0, 1) for draw `j` of scrape `k` of the thing seeded `seed`. */
function _u(seed: number, k: number, j: number): number {
  return _mix32(seed + Math.imul(k, 0x9e3779b1) + Math.imul(j + 1, 0x85ebca77)) / 4294967296;
}

/** Roughly standard normal (sum of four uniforms). */
function _gauss(seed: number, k: number, j: number): number {
  return (_u(seed, k, j) + _u(seed, k, j + 1) + _u(seed, k, j + 2) + _u(seed, k, j + 3) - 2) *
    1.7320508;
}

/** A seed derived from a string and the run's seed. */
function _seedOf(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return _mix32(h);
}

/** A sequential PRNG for one-off choices (ULIDs, layouts). */
class _Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    this.#s = (this.#s + 0x9e3779b9) >>> 0;
    return _mix32(this.#s);
  }
  below(n: number): number {
    return this.next() % n;
  }
  unit(): number {
    return this.next() / 4294967296;
  }
}

const _CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** A ULID for `timeMs` with 80 bits from `rng`. */
function _ulid(timeMs: number, rng: _Rng): string {
  let out = "";
  let t = timeMs;
  for (let i = 0; i < 10; i++) {
    out = _CROCKFORD[t % 32] + out;
    t = Math.floor(t / 32);
  }
  for (let i = 0; i < 16; i++) out += _CROCKFORD[rng.below(32)];
  return out;
}

// ---------------------------------------------------------------------------------------------
// Value models. Each returns the value of scrape `k` at time `t`; it is called once per scrape,
// in time order, and keeps its running state (counter total, gauge level) between calls.

type _Next = (k: number, t: number) => number;

function _constant(v: number): _Next {
  return () => v;
}

/** A counter growing by about `rate` units per scrape (integers, then divided by `div`). */
function _counter(seed: number, rate: number, start: number, div = 1): _Next {
  let c = start;
  return (k) => {
    c += Math.floor(rate * (0.5 + _u(seed, k, 0)) + _u(seed, k, 1));
    return c / div;
  };
}

/** A gauge that moves by 1..maxSteps steps with probability `pChange` per scrape. */
function _walk(
  seed: number,
  start: number,
  step: number,
  maxSteps: number,
  min: number,
  max: number,
  pChange: number,
): _Next {
  let v = start;
  return (k) => {
    const r = _u(seed, k, 0);
    if (r < pChange) {
      const n = 1 + Math.floor(_u(seed, k, 1) * maxSteps);
      v += (r < pChange / 2 ? -n : n) * step;
      if (v < min) v = min;
      if (v > max) v = max;
    }
    return v;
  };
}

/**
 * A noisy gauge around `mean` (AR(1) noise of deviation `sd`), rounded to `decimals` (full
 * precision when negative), changing with probability `pChange` per scrape.
 */
function _noise(seed: number, mean: number, sd: number, decimals: number, pChange = 1): _Next {
  let x = 0;
  let v = mean;
  const scale = 10 ** Math.max(decimals, 0);
  return (k) => {
    if (pChange < 1 && _u(seed, k, 9) >= pChange) return v;
    x = 0.8 * x + 0.6 * _gauss(seed, k, 0);
    v = Math.max(0, mean + sd * x);
    if (decimals >= 0) v = Math.round(v * scale) / scale;
    return v;
  };
}

/**
 * `--values random-walk`: a value with three decimals that moves on every scrape, the worst case
 * for XOR chunks (counters, by name, grow by 0.001-99.991; the rest step by a non-zero ±9.999).
 * Computed in integer thousandths, so each value is exactly the nearest float64 to its decimal.
 */
function _randomWalk(seed: number, counter: boolean): _Next {
  let milli = counter
    ? Math.floor(_u(seed, -1, 0) * 1e9)
    : Math.floor(_u(seed, -1, 0) * 2_000_001) - 1_000_000;
  return (k) => {
    const r = Math.floor(_u(seed, k, 5) * 19_999);
    milli += counter ? 1 + r * 5 : r - 9_999 || 1;
    return milli / 1000;
  };
}

/** `node_time_seconds`: the scrape time with sub-millisecond noise. */
function _clock(seed: number): _Next {
  return (k, t) => t / 1000 + _u(seed, k, 0) * 0.0009;
}

/** One classic histogram (request counts per scrape shared by its buckets, `_sum`, `_count`). */
interface _Histogram {
  seed: number;
  /** Requests per scrape. */
  lambda: number;
  /** Mean latency, seconds. */
  mean: number;
  /** ln-space mean and deviation of the latency. */
  mu: number;
  sigma: number;
}

/** The request count of scrape `k`; the same for every member of the histogram. */
function _requests(h: _Histogram, k: number): number {
  return Math.floor(h.lambda * (0.5 + _u(h.seed, k, 0)) + _u(h.seed, k, 1));
}

function _erf(x: number): number {
  // Abramowitz and Stegun 7.1.26: plenty for bucket fractions.
  const s = x < 0 ? -1 : 1;
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const y = 1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t * Math.exp(-a * a);
  return s * y;
}

/** Cumulative bucket `le`: the share of requests at most `le`, rounded with a shared draw. */
function _bucket(h: _Histogram, le: number): _Next {
  const cdf = le === Infinity
    ? 1
    : 0.5 * (1 + _erf((Math.log(le) - h.mu) / (h.sigma * Math.SQRT2)));
  let c = 0;
  // One uniform per scrape for all buckets keeps them monotone in `le` and +Inf == _count.
  return (k) => {
    c += Math.floor(_requests(h, k) * cdf + _u(h.seed, k, 2));
    return c;
  };
}

function _histCount(h: _Histogram): _Next {
  let c = 0;
  return (k) => {
    c += _requests(h, k);
    return c;
  };
}

function _histSum(h: _Histogram): _Next {
  let s = 0;
  return (k) => {
    s += _requests(h, k) * h.mean * (0.6 + 0.8 * _u(h.seed, k, 3));
    return s;
  };
}

// ---------------------------------------------------------------------------------------------
// Targets and series.

/** A scrape target: its own offset in the 15 s interval and jitter. */
interface _Target {
  id: number;
  seed: number;
  offset: number;
  /** Series in exposition order (also the order of the WAL records' samples). */
  series: _Series[];
}

interface _Series {
  labels: Label[];
  target: _Target;
  next: _Next;
  /** First scrape index with a sample. */
  kFirst: number;
  /** First scrape index without one: the stale marker goes there (when it is in the data). */
  kEnd: number;
  /** WAL series ref (creation order). */
  ref: number;
}

/** Scrape times: `base + k*15s + offset`, one scrape in 20 a few ms late or early. */
class _Clock {
  constructor(readonly base: number) {}

  time(target: _Target, k: number): number {
    const r = _u(target.seed, k, 77);
    const jitter = r < 0.95
      ? 0
      : r < 0.975
      ? -1 - Math.floor((r - 0.95) * 160)
      : 1 + Math.floor((r - 0.975) * 160);
    return this.base + k * SCRAPE_MS + target.offset + jitter;
  }

  /** The first scrape index of `target` at or after `ms`. */
  firstAt(target: _Target, ms: number): number {
    if (ms === Infinity) return Number.MAX_SAFE_INTEGER;
    let k = Math.ceil((ms - this.base - target.offset) / SCRAPE_MS);
    while (this.time(target, k - 1) >= ms) k--;
    while (this.time(target, k) < ms) k++;
    return k;
  }
}

const LE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, Infinity];

function _le(v: number): string {
  return v === Infinity ? "+Inf" : String(v);
}

interface _Deployment {
  name: string;
  weight: number;
  /** [method, handler, share of the pod's requests]. */
  handlers: [string, string, number][];
  /** Requests per second per pod. */
  rps: number;
  /** Mean latency, seconds. */
  latency: number;
}

const DEPLOYMENTS: _Deployment[] = [
  {
    name: "frontend",
    weight: 3,
    rps: 20,
    latency: 0.03,
    handlers: [
      ["GET", "/", 0.3],
      ["GET", "/product/:id", 0.35],
      ["GET", "/cart", 0.15],
      ["POST", "/cart", 0.05],
      ["GET", "/static/*", 0.15],
    ],
  },
  {
    name: "cart",
    weight: 2,
    rps: 8,
    latency: 0.01,
    handlers: [
      ["GET", "/api/cart", 0.6],
      ["POST", "/api/cart/items", 0.25],
      ["DELETE", "/api/cart/items/:id", 0.1],
      ["GET", "/healthz", 0.05],
    ],
  },
  {
    name: "search",
    weight: 2,
    rps: 10,
    latency: 0.08,
    handlers: [["GET", "/api/search", 0.7], ["GET", "/api/suggest", 0.28], [
      "GET",
      "/healthz",
      0.02,
    ]],
  },
  {
    name: "catalog",
    weight: 1,
    rps: 5,
    latency: 0.02,
    handlers: [
      ["GET", "/api/products", 0.4],
      ["GET", "/api/products/:id", 0.5],
      ["PUT", "/api/products/:id", 0.05],
      ["GET", "/healthz", 0.05],
    ],
  },
  {
    name: "checkout",
    weight: 1,
    rps: 2,
    latency: 0.2,
    handlers: [["POST", "/api/checkout", 0.5], ["GET", "/api/orders/:id", 0.4], [
      "GET",
      "/healthz",
      0.1,
    ]],
  },
  {
    name: "payments",
    weight: 1,
    rps: 1,
    latency: 0.4,
    handlers: [["POST", "/api/payments", 0.8], ["POST", "/api/refunds", 0.1], [
      "GET",
      "/healthz",
      0.1,
    ]],
  },
];

/** Everything that decides the output; a change makes the next run rebuild the dir. */
interface _Layout {
  generator: number;
  seed: number;
  units: number;
  days: number;
  endMs: number;
  /** The largest block range in hours; absent for the default 54 (so older markers still match). */
  maxBlockHours?: number;
  /** `random-walk` for `--values random-walk`; absent for the default value models. */
  values?: "random-walk";
  /** True with `--head-chunks`; absent without (so older markers still match). */
  headChunks?: true;
}

/** Collects a target's series; labels are sorted here. */
class _SeriesBuilder {
  readonly series: _Series[] = [];
  constructor(
    readonly target: _Target,
    readonly common: Record<string, string>,
    readonly startMs: number,
    readonly endMs: number,
  ) {}

  add(name: string, extra: Record<string, string>, next: _Next, life?: [number, number]): void {
    const all: Record<string, string> = { __name__: name, ...this.common, ...extra };
    const labels = Object.entries(all)
      .map(([n, value]) => ({ name: n, value }))
      .sort((a, b) => compareUtf8(a.name, b.name));
    const s: _Series = {
      labels,
      target: this.target,
      next,
      kFirst: 0,
      kEnd: 0,
      ref: 0,
    };
    (s as _Series & { life: [number, number] }).life = life ?? [this.startMs, this.endMs];
    this.series.push(s);
  }
}

/** All targets with their series (scrape indexes resolved), for a layout. */
function _buildTargets(layout: _Layout, clock: _Clock, startMs: number): _Target[] {
  const seed = layout.seed;
  const rng = new _Rng(_seedOf("layout", seed));
  const targets: _Target[] = [];
  const newTarget = (name: string): _Target => {
    const t: _Target = {
      id: targets.length,
      seed: _seedOf(`target/${name}`, seed),
      offset: 0,
      series: [],
    };
    t.offset = t.seed % SCRAPE_MS;
    targets.push(t);
    return t;
  };
  const scrapeSeries = (b: _SeriesBuilder, n: number) => {
    const s = b.target.seed;
    b.add("up", {}, _constant(1));
    b.add("scrape_duration_seconds", {}, _noise(s ^ 1, 0.02 + (s % 40) / 1000, 0.006, -1));
    b.add("scrape_samples_scraped", {}, _constant(n));
    b.add("scrape_samples_post_metric_relabeling", {}, _constant(n));
    b.add("scrape_series_added", {}, _constant(0));
  };

  // node_exporter on every host.
  const hosts: string[] = [];
  for (let h = 0; h < layout.units; h++) {
    const host = `node-${String(h).padStart(3, "0")}`;
    hosts.push(host);
    const instance = `10.0.${h >> 7}.${(h & 127) + 10}:9100`;
    const t = newTarget(instance);
    const b = new _SeriesBuilder(t, { instance, job: "node" }, startMs, Infinity);
    const s = (x: string) => _seedOf(`${instance}/${x}`, seed);
    const cpus = [2, 4, 4, 8][h % 4];
    const util = 0.05 + 0.5 * rng.unit();
    const before = startMs / 1000 - 86400 * (3 + rng.below(60));
    const modes: [string, number][] = [
      ["idle", 1500 * (1 - util)],
      ["iowait", 8 * util],
      ["irq", 0.4],
      ["nice", 0.02],
      ["softirq", 6 * util],
      ["steal", 0.3],
      ["system", 300 * util],
      ["user", 1200 * util],
    ];
    const uptime = startMs / 1000 - before;
    for (let c = 0; c < cpus; c++) {
      for (const [mode, rate] of modes) {
        // Rates are in 1/100 s per scrape: the kernel's USER_HZ ticks.
        b.add(
          "node_cpu_seconds_total",
          { cpu: String(c), mode },
          _counter(s(`cpu${c}${mode}`), rate, Math.floor(rate * uptime / 15), 100),
        );
      }
    }
    for (const [n, m] of [["node_load1", 1], ["node_load5", 0.6], ["node_load15", 0.4]] as const) {
      b.add(n, {}, _noise(s(n), cpus * util, cpus * util * 0.4 * m, 2));
    }
    const memTotal = [8, 16, 32, 64][h % 4] * 1024 ** 3;
    b.add("node_memory_MemTotal_bytes", {}, _constant(memTotal));
    for (
      const [n, share] of [
        ["node_memory_MemAvailable_bytes", 0.5],
        ["node_memory_MemFree_bytes", 0.1],
        ["node_memory_Cached_bytes", 0.35],
        ["node_memory_Buffers_bytes", 0.02],
      ] as const
    ) {
      const start = Math.floor(memTotal * share / 4096) * 4096;
      b.add(n, {}, _walk(s(n), start, 4096, 512, 0, memTotal, 0.9));
    }
    for (const dev of ["eth0", "lo"]) {
      const k = dev === "lo" ? 0.05 : 1;
      for (
        const [n, rate] of [
          ["node_network_receive_bytes_total", 3e6 * util * k],
          ["node_network_transmit_bytes_total", 2e6 * util * k],
          ["node_network_receive_packets_total", 2500 * util * k],
          ["node_network_transmit_packets_total", 2000 * util * k],
        ] as const
      ) {
        b.add(n, { device: dev }, _counter(s(n + dev), rate, Math.floor(rate * 1e4)));
      }
    }
    for (const dev of ["nvme0n1", "sda"]) {
      for (
        const [n, rate, div] of [
          ["node_disk_read_bytes_total", 4e5, 1],
          ["node_disk_written_bytes_total", 9e5, 1],
          ["node_disk_reads_completed_total", 40, 1],
          ["node_disk_writes_completed_total", 120, 1],
          ["node_disk_io_time_seconds_total", 150, 1000],
        ] as const
      ) {
        b.add(n, { device: dev }, _counter(s(n + dev), rate * util, 1e6, div));
      }
    }
    for (
      const [device, mountpoint, fstype, size] of [
        ["/dev/nvme0n1p2", "/", "ext4", 100],
        ["/dev/sda1", "/var/lib", "xfs", 500],
      ] as const
    ) {
      const labels = { device, fstype, mountpoint };
      const bytes = size * 1024 ** 3;
      b.add("node_filesystem_size_bytes", labels, _constant(bytes));
      b.add(
        "node_filesystem_avail_bytes",
        labels,
        _walk(s(mountpoint), Math.floor(bytes * 0.4 / 4096) * 4096, 4096, 256, 0, bytes, 0.7),
      );
      b.add(
        "node_filesystem_files_free",
        labels,
        _walk(s(`${mountpoint}/files`), 6_000_000, 1, 20, 0, 7_000_000, 0.5),
      );
    }
    for (let i = 1; i <= 4; i++) {
      b.add(
        "node_hwmon_temp_celsius",
        { chip: "platform_coretemp_0", sensor: `temp${i}` },
        _noise(s(`temp${i}`), 40 + 20 * util, 4, 0),
      );
    }
    _nodeExtras(b, s, cpus, memTotal, util);
    b.add("node_time_seconds", {}, _clock(s("time")));
    b.add("node_boot_time_seconds", {}, _constant(Math.floor(before)));
    b.add("node_context_switches_total", {}, _counter(s("ctx"), 4e4 * util, 1e9));
    b.add("node_intr_total", {}, _counter(s("intr"), 2.5e4 * util, 7e8));
    b.add("node_procs_running", {}, _walk(s("procs"), 2, 1, 3, 1, 40, 0.6));
    b.add(
      "node_uname_info",
      {
        domainname: "(none)",
        machine: "x86_64",
        nodename: host,
        release: "6.1.0-27-amd64",
        sysname: "Linux",
        version: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1 (2024-11-01)",
      },
      _constant(1),
    );
    scrapeSeries(b, b.series.length + 5);
    t.series = b.series;
  }

  // App pods: each deployment rolled out every 20-40 h.
  const ksm = newTarget("kube-state-metrics");
  const ksmBuilder = new _SeriesBuilder(
    ksm,
    { instance: "10.0.250.10:8080", job: "kube-state-metrics" },
    startMs,
    Infinity,
  );
  const weights = DEPLOYMENTS.reduce((a, d) => a + d.weight, 0);
  let podIndex = 0;
  const endMs = layout.endMs;
  for (const d of DEPLOYMENTS) {
    const replicas = Math.max(1, Math.round(2 * layout.units * d.weight / weights));
    const period = (20 + 20 * rng.unit()) * HOUR;
    const rollouts = [-Infinity];
    for (
      let at = startMs + period * rng.unit();
      at < endMs;
      at += period * (0.8 + 0.4 * rng.unit())
    ) {
      rollouts.push(Math.floor(at));
    }
    for (let g = 0; g < rollouts.length; g++) {
      const rs = _podName(rng, 10);
      for (let i = 0; i < replicas; i++) {
        const born = g === 0 ? startMs : rollouts[g] + i * 20_000;
        const dies = g + 1 < rollouts.length ? rollouts[g + 1] + i * 20_000 + 30_000 : Infinity;
        const pod = `${d.name}-${rs}-${_podName(rng, 5)}`;
        const n = ++podIndex;
        const ip = `10.244.${(n >> 8) & 255}.${n & 255}`;
        const instance = `${ip}:8080`;
        const t = newTarget(instance);
        const b = new _SeriesBuilder(
          t,
          { instance, job: d.name, namespace: "shop", pod },
          born,
          dies,
        );
        const s = (x: string) => _seedOf(`${pod}/${x}`, seed);
        const load = 0.6 + 0.8 * rng.unit();
        for (const [method, handler, share] of d.handlers) {
          const perScrape = d.rps * 15 * share * load;
          for (const [code, part] of [["200", 0.975], ["404", 0.02], ["500", 0.002]] as const) {
            b.add(
              "http_requests_total",
              { code, handler, method },
              _counter(s(`${handler}${method}${code}`), perScrape * part, 0),
            );
          }
          const hist: _Histogram = {
            seed: s(`hist${handler}${method}`),
            lambda: perScrape,
            mean: d.latency,
            mu: Math.log(d.latency) - 0.5,
            sigma: 1,
          };
          for (const le of LE_BUCKETS) {
            b.add(
              "http_request_duration_seconds_bucket",
              { handler, le: _le(le), method },
              _bucket(hist, le),
            );
          }
          b.add("http_request_duration_seconds_sum", { handler, method }, _histSum(hist));
          b.add("http_request_duration_seconds_count", { handler, method }, _histCount(hist));
        }
        const rss = Math.floor((80 + 200 * rng.unit()) * MIB / 4096) * 4096;
        b.add("process_cpu_seconds_total", {}, _counter(s("cpu"), 40 * load, 0, 100));
        b.add(
          "process_resident_memory_bytes",
          {},
          _walk(s("rss"), rss, 4096, 64, rss / 2, rss * 3, 0.8),
        );
        b.add(
          "process_virtual_memory_bytes",
          {},
          _walk(s("vsz"), rss * 8, 4096 * 16, 4, rss * 4, rss * 16, 0.2),
        );
        b.add("process_open_fds", {}, _walk(s("fds"), 40, 1, 3, 10, 500, 0.4));
        b.add("process_max_fds", {}, _constant(1048576));
        b.add("process_start_time_seconds", {}, _constant(Math.floor(born / 1000) - 3 + (n % 5)));
        b.add("go_goroutines", {}, _walk(s("goroutines"), 60, 1, 5, 20, 2000, 0.7));
        b.add("go_threads", {}, _walk(s("threads"), 12, 1, 1, 8, 40, 0.02));
        for (const q of ["0", "0.25", "0.5", "0.75", "1"]) {
          const base = 2e-5 * (1 + Number(q) * 8);
          b.add(
            "go_gc_duration_seconds",
            { quantile: q },
            _noise(s(`gc${q}`), base, base * 0.3, -1, 0.4),
          );
        }
        b.add("go_gc_duration_seconds_sum", {}, _counter(s("gcsum"), 3e4 * load, 0, 1e9));
        b.add("go_gc_duration_seconds_count", {}, _counter(s("gccount"), 1.5 * load, 0));
        b.add(
          "go_memstats_alloc_bytes",
          {},
          _walk(s("alloc"), rss / 3, 8, 100_000, 1e6, rss * 2, 0.95),
        );
        b.add("go_memstats_alloc_bytes_total", {}, _counter(s("alloct"), 4e6 * load, 0));
        b.add(
          "go_memstats_heap_inuse_bytes",
          {},
          _walk(s("heap"), rss / 2, 8192, 64, 1e6, rss * 2, 0.6),
        );
        b.add("go_info", { version: "go1.23.4" }, _constant(1));
        // [name, share of the RSS, chance of a change per scrape]
        // deno-fmt-ignore
        const memstats = [
          ["buck_hash_sys", 0.005, 0.01], ["gc_sys", 0.03, 0.05], ["heap_idle", 0.3, 0.5],
          ["heap_released", 0.2, 0.3], ["heap_sys", 0.8, 0.1], ["mcache_inuse", 0.0001, 0],
          ["mspan_inuse", 0.004, 0.4], ["mspan_sys", 0.005, 0.05], ["next_gc", 0.4, 0.3],
          ["other_sys", 0.006, 0.02], ["stack_inuse", 0.003, 0.2], ["sys", 0.9, 0.05],
        ] as const;
        for (const [n, share, p] of memstats) {
          const v = Math.floor(rss * share / 8192) * 8192;
          b.add(`go_memstats_${n}_bytes`, {}, _walk(s(n), v, 8192, 16, 0, rss * 4, p));
        }
        b.add("go_memstats_frees_total", {}, _counter(s("frees"), 4e4 * load, 0));
        b.add("go_memstats_mallocs_total", {}, _counter(s("mallocs"), 4.1e4 * load, 0));
        b.add("go_memstats_lookups_total", {}, _constant(0));
        b.add("go_memstats_last_gc_time_seconds", {}, _clock(s("lastgc")));
        b.add("promhttp_metric_handler_requests_in_flight", {}, _constant(1));
        for (const code of ["200", "500", "503"]) {
          b.add(
            "promhttp_metric_handler_requests_total",
            { code },
            code === "200" ? _counter(s("promhttp"), 1, 0) : _constant(0),
          );
        }
        scrapeSeries(b, b.series.length + 5);
        t.series = b.series;

        // kube-state-metrics sees the pod a little after it starts and stops.
        const life: [number, number] = [born + 5_000, dies === Infinity ? Infinity : dies + 5_000];
        const node = hosts[_mix32(n) % hosts.length];
        const podLabels = { namespace: "shop", pod };
        const k = (x: string) => _seedOf(`ksm/${pod}/${x}`, seed);
        ksmBuilder.add(
          "kube_pod_info",
          {
            ...podLabels,
            created_by_kind: "ReplicaSet",
            created_by_name: `${d.name}-${rs}`,
            host_ip: `10.0.${(_mix32(n) % hosts.length) >> 7}.${
              ((_mix32(n) % hosts.length) & 127) + 10
            }`,
            node,
            pod_ip: ip,
            uid: _uuid(k("uid")),
          },
          _constant(1),
          life,
        );
        for (const phase of ["Failed", "Pending", "Running", "Succeeded", "Unknown"]) {
          ksmBuilder.add(
            "kube_pod_status_phase",
            { ...podLabels, phase },
            _constant(phase === "Running" ? 1 : 0),
            life,
          );
        }
        for (const condition of ["false", "true", "unknown"]) {
          ksmBuilder.add(
            "kube_pod_status_ready",
            { ...podLabels, condition },
            _constant(condition === "true" ? 1 : 0),
            life,
          );
        }
        const container = { ...podLabels, container: d.name };
        ksmBuilder.add(
          "kube_pod_container_status_restarts_total",
          container,
          _counter(k("restarts"), 0.0002, 0),
          life,
        );
        ksmBuilder.add("kube_pod_container_status_running", container, _constant(1), life);
        ksmBuilder.add(
          "kube_pod_container_resource_requests",
          { ...container, node, resource: "cpu", unit: "core" },
          _constant(0.25),
          life,
        );
        ksmBuilder.add(
          "kube_pod_container_resource_requests",
          { ...container, node, resource: "memory", unit: "byte" },
          _constant(268435456),
          life,
        );
        ksmBuilder.add("kube_pod_start_time", podLabels, _constant(Math.floor(born / 1000)), life);
      }
    }
  }
  scrapeSeries(ksmBuilder, 0);
  ksm.series = ksmBuilder.series;

  for (const t of targets) {
    for (const s of t.series) {
      const [from, to] = (s as _Series & { life: [number, number] }).life;
      s.kFirst = clock.firstAt(t, from);
      s.kEnd = clock.firstAt(t, to);
    }
  }
  return targets;
}

/** The many slow or constant series node_exporter exposes besides the busy ones. */
function _nodeExtras(
  b: _SeriesBuilder,
  s: (x: string) => number,
  cpus: number,
  memTotal: number,
  util: number,
): void {
  const collectors = (
    "arp bcache bonding btrfs conntrack cpu cpufreq diskstats dmi edac entropy fibrechannel " +
    "filefd filesystem hwmon infiniband ipvs loadavg mdadm meminfo netclass netdev netstat nfs " +
    "nfsd nvme os powersupplyclass pressure rapl schedstat selinux sockstat softnet stat systemd " +
    "tapestats textfile thermal_zone time timex udp_queues uname vmstat xfs zfs"
  ).split(" ");
  for (const [i, collector] of collectors.entries()) {
    b.add("node_scrape_collector_success", { collector }, _constant(i % 13 === 5 ? 0 : 1));
    if (i % 4 === 0) {
      b.add(
        "node_scrape_collector_duration_seconds",
        { collector },
        _noise(s(`coll${collector}`), 0.0004 * (1 + (i % 7)), 0.0001, -1),
      );
    }
  }
  for (let c = 0; c < cpus; c++) {
    for (const mode of ["nice", "user"]) {
      b.add("node_cpu_guest_seconds_total", { cpu: String(c), mode }, _constant(0));
    }
    b.add(
      "node_cpu_scaling_frequency_hertz",
      { cpu: String(c) },
      _walk(s(`freq${c}`), 2.4e9, 1e8, 6, 8e8, 3.6e9, 0.3),
    );
  }
  // deno-fmt-ignore
  const constMem = [
    ["SwapTotal", 0], ["SwapFree", 0], ["HugePages_Total", 0], ["HugePages_Free", 0],
    ["Hugepagesize", 2097152], ["CommitLimit", memTotal / 2], ["VmallocTotal", 35184372087808],
    ["DirectMap4k", 331776 * 1024], ["DirectMap2M", memTotal * 0.6], ["Mlocked", 0],
    ["Unevictable", 0], ["HardwareCorrupted", 0],
  ] as const;
  for (const [n, v] of constMem) b.add(`node_memory_${n}_bytes`, {}, _constant(v));
  // [name, share of the memory, chance of a change per scrape]
  // deno-fmt-ignore
  const slowMem = [
    ["Active", 0.3, 0.6], ["Inactive", 0.25, 0.5], ["Active_anon", 0.15, 0.5],
    ["Inactive_anon", 0.02, 0.2], ["Active_file", 0.15, 0.4], ["Inactive_file", 0.2, 0.4],
    ["Dirty", 0.0005, 0.9], ["Writeback", 0, 0.05], ["AnonPages", 0.15, 0.5],
    ["Mapped", 0.03, 0.2], ["Shmem", 0.01, 0.05], ["Slab", 0.04, 0.3],
    ["SReclaimable", 0.03, 0.3], ["SUnreclaim", 0.01, 0.2], ["KernelStack", 0.001, 0.1],
    ["PageTables", 0.004, 0.2], ["Committed_AS", 0.4, 0.5], ["VmallocUsed", 0.002, 0.05],
  ] as const;
  for (const [n, share, p] of slowMem) {
    const v = Math.floor(memTotal * share / 4096) * 4096;
    b.add(`node_memory_${n}_bytes`, {}, _walk(s(n), v, 4096, 32, 0, memTotal, p));
  }
  // [name, increments per scrape at full load]
  // deno-fmt-ignore
  const vmstat = [
    ["pgfault", 8e4], ["pgmajfault", 2], ["pgpgin", 400], ["pgpgout", 900], ["pswpin", 0],
    ["pswpout", 0], ["oom_kill", 0.00005],
  ] as const;
  for (const [n, rate] of vmstat) {
    b.add(`node_vmstat_${n}`, {}, _counter(s(n), rate * util, Math.floor(rate * 1e5)));
  }
  // deno-fmt-ignore
  const netstat = [
    ["Tcp_ActiveOpens", 30], ["Tcp_PassiveOpens", 45], ["Tcp_RetransSegs", 3],
    ["Tcp_InErrs", 0.001], ["Tcp_OutSegs", 9000], ["Tcp_InSegs", 9500], ["Udp_InDatagrams", 80],
    ["Udp_OutDatagrams", 80], ["Udp_InErrors", 0], ["Icmp_InMsgs", 0.2], ["Icmp_OutMsgs", 0.2],
    ["TcpExt_ListenDrops", 0.0002], ["TcpExt_ListenOverflows", 0.0002],
    ["TcpExt_SyncookiesSent", 0],
  ] as const;
  for (const [n, rate] of netstat) {
    b.add(`node_netstat_${n}`, {}, _counter(s(n), rate * util, Math.floor(rate * 2e5)));
  }
  b.add("node_netstat_Tcp_CurrEstab", {}, _walk(s("estab"), 120, 1, 6, 10, 5000, 0.6));
  for (const device of ["eth0", "lo"]) {
    b.add("node_network_up", { device }, _constant(device === "eth0" ? 1 : 0));
    b.add("node_network_mtu_bytes", { device }, _constant(device === "eth0" ? 1500 : 65536));
    b.add("node_network_carrier", { device }, _constant(1));
    b.add("node_network_receive_drop_total", { device }, _counter(s(`drop${device}`), 0.01, 12));
    b.add("node_network_receive_errs_total", { device }, _constant(0));
    b.add("node_network_transmit_queue_length", { device }, _constant(1000));
  }
  b.add("node_sockstat_TCP_inuse", {}, _walk(s("tcpin"), 90, 1, 5, 5, 3000, 0.6));
  b.add("node_sockstat_TCP_alloc", {}, _walk(s("tcpal"), 110, 1, 5, 5, 3000, 0.6));
  b.add("node_sockstat_TCP_tw", {}, _walk(s("tcptw"), 60, 1, 8, 0, 3000, 0.7));
  b.add("node_sockstat_UDP_inuse", {}, _walk(s("udpin"), 8, 1, 1, 2, 40, 0.05));
  b.add("node_sockstat_sockets_used", {}, _walk(s("socks"), 400, 1, 6, 50, 9000, 0.7));
  b.add("node_entropy_available_bits", {}, _constant(256));
  b.add("node_filefd_allocated", {}, _walk(s("fd"), 3000, 32, 3, 500, 90000, 0.5));
  b.add("node_filefd_maximum", {}, _constant(9223372036854776000));
  b.add("node_nf_conntrack_entries", {}, _walk(s("ct"), 900, 1, 20, 10, 262144, 0.8));
  b.add("node_nf_conntrack_entries_limit", {}, _constant(262144));
  b.add("node_procs_blocked", {}, _walk(s("blocked"), 0, 1, 1, 0, 8, 0.05));
  b.add("node_forks_total", {}, _counter(s("forks"), 60 * util, 3e7));
  b.add("node_timex_offset_seconds", {}, _noise(s("offset"), 0.0002, 0.0001, 6, 0.25));
  b.add("node_timex_sync_status", {}, _constant(1));
  const systemd = (
    "containerd cron dbus docker kubelet node_exporter rsyslog ssh systemd-journald " +
    "systemd-logind systemd-resolved systemd-timesyncd"
  ).split(" ");
  for (const name of systemd) {
    for (const state of ["activating", "active", "deactivating", "failed", "inactive"]) {
      b.add(
        "node_systemd_unit_state",
        { name: `${name}.service`, state, type: name === "cron" ? "forking" : "simple" },
        _constant(state === "active" ? 1 : 0),
      );
    }
  }
  b.add("node_systemd_units", { state: "active" }, _constant(187));
  b.add("node_systemd_units", { state: "failed" }, _constant(0));
  b.add("node_systemd_units", { state: "inactive" }, _constant(96));
}

function _podName(rng: _Rng, n: number): string {
  const chars = "bcdfghjklmnpqrstvwxz2456789";
  let out = "";
  for (let i = 0; i < n; i++) out += chars[rng.below(chars.length)];
  return out;
}

function _uuid(seed: number): string {
  let hex = "";
  for (let i = 0; i < 4; i++) hex += _mix32(seed + i).toString(16).padStart(8, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${
    hex.slice(20)
  }`;
}

// ---------------------------------------------------------------------------------------------
// Blocks: which exist (the compaction planner), and their chunks.

interface _BlockPlan {
  ulid: string;
  minTime: number;
  maxTime: number;
  level: number;
  sources: string[];
  parents: BlockDesc[];
}

/**
 * The blocks Prometheus leaves when its head is cut into 2h blocks from `firstMs` up to
 * `headMin` and its planner compacts after each cut, as `LeveledCompactor.plan` does: blocks
 * sorted by minTime, the newest left out, groups per aligned range of 6h, 18h, 54h taken when
 * they span the whole range or end before the newest remaining block starts.
 */
function _planBlocks(
  firstMs: number,
  headMin: number,
  rng: _Rng,
  ranges: number[],
): _BlockPlan[] {
  let blocks: _BlockPlan[] = [];
  let lo = firstMs;
  while (lo < headMin) {
    const hi = Math.floor(lo / CHUNK_RANGE) * CHUNK_RANGE + CHUNK_RANGE;
    // The head is compactable once it spans 1.5 chunk ranges; checked about every minute.
    let now = lo + 3 * HOUR + rng.below(MINUTE);
    const id = _ulid(now, rng);
    blocks.push({ ulid: id, minTime: lo, maxTime: hi, level: 1, sources: [id], parents: [] });
    for (;;) {
      blocks.sort((a, b) => a.minTime - b.minTime);
      const group = _selectDirs(blocks.slice(0, -1), ranges);
      if (group.length === 0) break;
      now += 1000 + rng.below(20_000);
      const merged: _BlockPlan = {
        ulid: _ulid(now, rng),
        minTime: Math.min(...group.map((b) => b.minTime)),
        maxTime: Math.max(...group.map((b) => b.maxTime)),
        level: Math.max(...group.map((b) => b.level)) + 1,
        sources: [...new Set(group.flatMap((b) => b.sources))].sort(),
        parents: group.map((b) => ({
          ulid: b.ulid,
          minTime: BigInt(b.minTime),
          maxTime: BigInt(b.maxTime),
        })),
      };
      blocks = blocks.filter((b) => !group.includes(b));
      blocks.push(merged);
    }
    lo = hi;
  }
  return blocks.sort((a, b) => a.minTime - b.minTime);
}

function _selectDirs(ds: _BlockPlan[], ranges: number[]): _BlockPlan[] {
  if (ds.length < 1) return [];
  const highTime = ds[ds.length - 1].minTime;
  for (const iv of ranges.slice(1)) {
    for (const p of _splitByRange(ds, iv)) {
      const mint = p[0].minTime;
      const maxt = p[p.length - 1].maxTime;
      if ((maxt - mint === iv || maxt <= highTime) && p.length > 1) return p;
    }
  }
  return [];
}

function _splitByRange(ds: _BlockPlan[], tr: number): _BlockPlan[][] {
  const out: _BlockPlan[][] = [];
  for (let i = 0; i < ds.length;) {
    const t0 = tr * Math.floor(ds[i].minTime / tr);
    if (ds[i].maxTime > t0 + tr) {
      i++;
      continue;
    }
    const group: _BlockPlan[] = [];
    for (; i < ds.length && ds[i].maxTime <= t0 + tr; i++) group.push(ds[i]);
    if (group.length > 0) out.push(group);
  }
  return out;
}

const _f64 = new Float64Array(1);
const _u64 = new BigUint64Array(_f64.buffer);

interface _Chunk {
  encoding: number;
  data: Uint8Array;
  mint: bigint;
  maxt: bigint;
}

/** Cuts a series' samples into chunks the way the head does (`appendPreprocessor`). */
class _ChunkCutter {
  chunks: _Chunk[] = [];
  #app: XorAppender | undefined;
  #mint = 0;
  #maxt = 0;
  #nextAt = 0;

  append(t: number, bits: bigint): void {
    let app = this.#app;
    let created = false;
    if (app === undefined) {
      app = this.#cut(t);
      created = true;
    }
    if (!created && app.byteLength > MAX_BYTES_PER_XOR_CHUNK) {
      app = this.#cut(t);
      created = true;
    }
    const n = app.numSamples;
    if (n === SAMPLES_PER_CHUNK / 4) {
      // Predict an end so that the chunks left in the 2h range come out the same size.
      const max = this.#nextAt;
      const parts = (max - this.#mint) / ((this.#maxt - this.#mint + 1) * 4);
      this.#nextAt = parts <= 1
        ? max
        : Math.trunc(this.#mint + (max - this.#mint) / Math.floor(parts));
    }
    if (t >= this.#nextAt || n >= SAMPLES_PER_CHUNK * 2) app = this.#cut(t);
    app.append(BigInt(t), bits);
    this.#maxt = t;
  }

  #cut(t: number): XorAppender {
    this.#flush();
    this.#app = new XorAppender();
    this.#mint = t;
    this.#nextAt = Math.floor(t / CHUNK_RANGE) * CHUNK_RANGE + CHUNK_RANGE;
    return this.#app;
  }

  #flush(): void {
    const app = this.#app;
    if (app && app.numSamples > 0) {
      this.chunks.push({
        encoding: Encoding.xor,
        data: app.bytes(),
        mint: BigInt(this.#mint),
        maxt: BigInt(this.#maxt),
      });
    }
    this.#app = undefined;
  }

  /** The chunks, the open one closed. */
  finish(): _Chunk[] {
    this.#flush();
    const out = this.chunks;
    this.chunks = [];
    return out;
  }
}

interface _Counts {
  samples: number;
  stale: number;
}

/** Samples of `s` with `lo <= t < hi` (and `t <= dataEnd`), values advanced in order. */
function _eachSample(
  s: _Series,
  clock: _Clock,
  lo: number,
  hi: number,
  dataEnd: number,
  fn: (t: number, value: number, stale: boolean) => void,
): void {
  const target = s.target;
  let k = Math.max(s.kFirst, clock.firstAt(target, lo));
  for (; k < s.kEnd; k++) {
    const t = clock.time(target, k);
    if (t >= hi || t > dataEnd) return;
    fn(t, s.next(k, t), false);
  }
  if (k === s.kEnd) {
    const t = clock.time(target, k);
    if (t >= lo && t < hi && t <= dataEnd) fn(t, NaN, true);
  }
}

async function _writeBlock(
  dir: string,
  plan: _BlockPlan,
  sorted: _Series[],
  clock: _Clock,
  dataEnd: number,
  counts: _Counts,
): Promise<void> {
  const w = await BlockWriter.create(dir, {
    ulid: plan.ulid,
    minTime: BigInt(plan.minTime),
    maxTime: BigInt(plan.maxTime),
    level: plan.level,
    sources: plan.sources,
    parents: plan.parents,
  });
  try {
    const cutter = new _ChunkCutter();
    for (const s of sorted) {
      _eachSample(s, clock, plan.minTime, plan.maxTime, dataEnd, (t, v, stale) => {
        let bits: bigint;
        if (stale) {
          bits = STALE_NAN_BITS;
          counts.stale++;
        } else {
          _f64[0] = v;
          bits = _u64[0];
        }
        counts.samples++;
        cutter.append(t, bits);
      });
      const chunks = cutter.finish();
      if (chunks.length > 0) await w.addSeries(s.labels, chunks);
    }
    await w.commit();
  } catch (e) {
    await w.abort();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// The head: WAL records (layouts of tsdb/record: Series = 1, Samples = 2).

/** A growing big-endian byte buffer for records, with varints on plain numbers. */
class _RecordBuf {
  bytes = new Uint8Array(64 * 1024);
  view = new DataView(this.bytes.buffer);
  length = 0;

  reset(type: number): void {
    this.length = 0;
    this.byte(type);
  }

  #grow(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    const next = new Uint8Array(Math.max(this.bytes.length * 2, this.length + n));
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
    this.view = new DataView(next.buffer);
  }

  byte(b: number): void {
    this.#grow(1);
    this.bytes[this.length++] = b;
  }

  be64(n: number): void {
    this.#grow(8);
    this.view.setUint32(this.length, Math.floor(n / 4294967296));
    this.view.setUint32(this.length + 4, n >>> 0);
    this.length += 8;
  }

  f64(v: number, stale: boolean): void {
    this.#grow(8);
    if (stale) {
      this.view.setUint32(this.length, 0x7ff00000);
      this.view.setUint32(this.length + 4, 2);
    } else {
      this.view.setFloat64(this.length, v);
    }
    this.length += 8;
  }

  uvarint(n: number): void {
    while (n >= 0x80) {
      this.byte((n % 128) | 0x80);
      n = Math.floor(n / 128);
    }
    this.byte(n);
  }

  varint(n: number): void {
    this.uvarint(n >= 0 ? n * 2 : -n * 2 - 1);
  }

  string(s: string): void {
    const b = _encoder.encode(s);
    this.uvarint(b.length);
    this.#grow(b.length);
    this.bytes.set(b, this.length);
    this.length += b.length;
  }

  get(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }
}

const _encoder = new TextEncoder();

/** A WAL directory's segments: cuts a new one before a record would cross 128 MiB. */
class _WalDir {
  #dir: string;
  #n: number;
  #w: WalSegmentWriter | undefined;
  #used = 0;
  readonly files: string[] = [];

  constructor(dir: string, first: number) {
    this.#dir = dir;
    this.#n = first;
  }

  async log(rec: Uint8Array): Promise<void> {
    // An upper bound of the record's size in the segment: it is stored raw when snappy does not
    // shrink it, plus a header per fragment and the padding of a page end.
    const size = rec.length + 7 * Math.ceil(rec.length / (WAL_PAGE - 7)) + 7;
    if (this.#w === undefined || this.#used + size > WAL_SEGMENT_SIZE) await this.next();
    const start = await this.#w!.log(rec);
    this.#used = start + size;
  }

  /** Closes the current segment (padded, as Prometheus does) and starts the next. */
  async next(): Promise<void> {
    if (this.#w !== undefined) {
      await this.#w.close(true);
      this.#n++;
    }
    const path = `${this.#dir}/${String(this.#n).padStart(8, "0")}`;
    this.#w = await WalSegmentWriter.create(path, { compression: "snappy" });
    this.files.push(path);
    this.#used = 0;
  }

  /** Closes the last segment: padded for a checkpoint, as-is for the live WAL. */
  async close(pad: boolean): Promise<void> {
    if (this.#w === undefined) await this.next();
    await this.#w!.close(pad);
  }
}

function _seriesRecord(buf: _RecordBuf, series: _Series[]): Uint8Array {
  buf.reset(RecordType.Series);
  for (const s of series) {
    buf.be64(s.ref);
    buf.uvarint(s.labels.length);
    for (const l of s.labels) {
      buf.string(l.name);
      buf.string(l.value);
    }
  }
  return buf.get();
}

/**
 * Writes the head `[headMin, dataEnd]`: checkpoint (series records of the series created before,
 * then samples up to `cpEnd`), segment `cpSeg + 1` up to `truncAt`, then segments of at most 128
 * MiB, the last one live.
 */
async function _writeHead(
  walDir: string,
  targets: _Target[],
  clock: _Clock,
  headMin: number,
  cpEnd: number,
  truncAt: number,
  dataEnd: number,
  cpSeg: number,
  counts: _Counts,
  chunks: HeadChunkMapper | null,
): Promise<{ checkpoint: string[]; segments: string[] }> {
  const cpDir = `${walDir}/checkpoint.${String(cpSeg).padStart(8, "0")}`;
  await Deno.mkdir(cpDir, { recursive: true });
  const cp = new _WalDir(cpDir, 0);
  const wal = new _WalDir(walDir, cpSeg + 1);
  const buf = new _RecordBuf();
  const inHead = (s: _Series) => {
    const last = s.kEnd === Number.MAX_SAFE_INTEGER ? Infinity : clock.time(s.target, s.kEnd);
    return clock.time(s.target, s.kFirst) <= dataEnd && last >= headMin;
  };
  // The checkpoint starts with the series created before the head's start, one record per
  // target as they were logged at their first scrape.
  const byTarget = targets
    .filter((t) => t.series.some(inHead))
    .sort((a, b) => a.offset - b.offset || a.id - b.id);
  const kLive = new Map(byTarget.map((t) => [
    t,
    [Math.min(...t.series.map((s) => s.kFirst)), Math.max(...t.series.map((s) => s.kEnd))],
  ]));
  for (const t of byTarget) {
    const old = t.series.filter((s) => inHead(s) && clock.time(t, s.kFirst) < headMin);
    if (old.length > 0) await cp.log(_seriesRecord(buf, old));
  }
  let out = cp;
  let cut = false;
  const kFrom = Math.floor((headMin - clock.base) / SCRAPE_MS) - 1;
  const kTo = Math.ceil((dataEnd - clock.base) / SCRAPE_MS) + 1;
  const fresh: _Series[] = [];
  const bits = new DataView(new ArrayBuffer(8));
  for (let k = kFrom; k <= kTo; k++) {
    for (const t of byTarget) {
      const [kMin, kMax] = kLive.get(t)!;
      if (k < kMin || k > kMax) continue;
      const time = clock.time(t, k);
      if (time < headMin || time > dataEnd) continue;
      if (time >= cpEnd && out === cp) {
        await cp.close(true);
        out = wal;
      }
      if (time >= truncAt && !cut) {
        // The head truncation after the newest block was cut starts a new segment.
        cut = true;
        await wal.next();
      }
      fresh.length = 0;
      let first = -1;
      buf.reset(RecordType.Samples);
      for (const s of t.series) {
        if (k < s.kFirst || k > s.kEnd) continue;
        if (k === s.kFirst && time >= headMin) fresh.push(s);
        const stale = k === s.kEnd;
        if (first < 0) {
          first = s.ref;
          buf.be64(s.ref);
          buf.be64(time);
        }
        buf.varint(s.ref - first);
        buf.varint(0);
        const value = stale ? NaN : s.next(k, time);
        buf.f64(value, stale);
        if (chunks) {
          bits.setFloat64(0, value);
          if (stale) chunks.float(s.ref, s.ref, time, STALE_HI, STALE_LO);
          else chunks.float(s.ref, s.ref, time, bits.getUint32(0), bits.getUint32(4));
        }
        counts.samples++;
        if (stale) counts.stale++;
      }
      if (first < 0) continue;
      const samples = buf.get().slice();
      if (fresh.length > 0) await out.log(_seriesRecord(buf, fresh));
      await out.log(samples);
      // The chunks this scrape's samples cut, after the WAL has them (as the head writes them).
      await chunks?.writeCut();
    }
  }
  if (out === cp) await cp.close(true);
  await wal.close(false);
  return { checkpoint: cp.files, segments: wal.files };
}

// ---------------------------------------------------------------------------------------------

/** The summary printed on stdout and kept in the marker file. */
interface _Summary {
  dir: string;
  layout: _Layout;
  bytes: number;
  oldestSampleMs: number;
  newestSampleMs: number;
  headMinTime: number;
  series: number;
  targets: number;
  samples: number;
  staleMarkers: number;
  blocks: { ulid: string; minTime: number; maxTime: number; level: number; sources: number }[];
  wal: { checkpoint: string[]; segments: string[] };
  generationSeconds: number;
}

async function _duBytes(path: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(path)) {
    const p = `${path}/${e.name}`;
    if (e.isDirectory) total += await _duBytes(p);
    else if (e.isFile) total += (await Deno.stat(p)).size;
  }
  return total;
}

async function _build(dir: string, layout: _Layout): Promise<_Summary> {
  const started = performance.now();
  const endMs = layout.endMs;
  const startMs = endMs - layout.days * DAY;
  const clock = new _Clock(Math.floor(startMs / SCRAPE_MS) * SCRAPE_MS - SCRAPE_MS);
  const targets = _buildTargets(layout, clock, startMs);
  const all = targets.flatMap((t) => t.series);
  if (layout.values === "random-walk") {
    for (const s of all) {
      const name = s.labels.find((l) => l.name === "__name__")?.value ?? "";
      const seed = _seedOf(JSON.stringify(s.labels), layout.seed);
      s.next = _randomWalk(seed, /_(total|count|sum|bucket)$/.test(name));
    }
  }

  // WAL refs in creation order: by first scrape, then target and exposition order.
  const created = all.map((s, i) => ({ s, i, t: clock.time(s.target, s.kFirst) }));
  created.sort((a, b) => a.t - b.t || a.s.target.offset - b.s.target.offset || a.i - b.i);
  created.forEach((c, i) => c.s.ref = i + 1);

  const sorted = [...all].sort((a, b) => compareLabels(a.labels, b.labels));
  for (let i = 1; i < sorted.length; i++) {
    if (compareLabels(sorted[i - 1].labels, sorted[i].labels) === 0) {
      throw new Error(`duplicate series ${JSON.stringify(sorted[i].labels)}`);
    }
  }

  // The head starts at the newest block's end: the 2h boundary at least an hour before the end
  // (the block before it was cut when the head spanned 3h).
  const headMin = Math.floor((endMs - HOUR - 1) / CHUNK_RANGE) * CHUNK_RANGE;
  const firstMs = Math.min(...targets.map((t) => clock.time(t, clock.firstAt(t, startMs))));
  const rng = new _Rng(_seedOf("blocks", layout.seed));
  const ranges = BLOCK_RANGES.filter((r) => r <= (layout.maxBlockHours ?? Infinity) * HOUR);
  const plans = _planBlocks(firstMs, headMin, rng, ranges);

  await Deno.mkdir(`${dir}/wal`, { recursive: true });
  await Deno.mkdir(`${dir}/chunks_head`, { recursive: true });
  const chunks = layout.headChunks
    ? await HeadChunkMapper.create(`${dir}/chunks_head`, 128 * MIB, 120)
    : null;
  const counts: _Counts = { samples: 0, stale: 0 };
  for (const [i, plan] of plans.entries()) {
    await _writeBlock(dir, plan, sorted, clock, endMs, counts);
    const secs = ((performance.now() - started) / 1000).toFixed(0);
    console.error(
      `make_realistic_datadir: block ${i + 1}/${plans.length} ${plan.ulid} level ${plan.level}` +
        ` ${((plan.maxTime - plan.minTime) / HOUR).toFixed(1)}h (${secs}s)`,
    );
  }
  // Segment numbers as after days of 2h truncations and 128 MiB cuts: about one segment per
  // truncation plus what the sample volume fills.
  const perTwoHours = Math.ceil(all.length / layout.days * 480 * 9 / WAL_SEGMENT_SIZE) + 1;
  const cpSeg = layout.days * 12 * perTwoHours;
  const wal = await _writeHead(
    `${dir}/wal`,
    targets,
    clock,
    headMin,
    headMin + 20 * MINUTE,
    headMin + HOUR,
    endMs,
    cpSeg,
    counts,
    chunks,
  );
  chunks?.close();
  let newest = 0;
  for (const t of targets) {
    for (let k = Math.floor((endMs - clock.base) / SCRAPE_MS) + 1; k > 0; k--) {
      const time = clock.time(t, k);
      if (time > endMs) continue;
      if (t.series.some((s) => k >= s.kFirst && k <= s.kEnd)) newest = Math.max(newest, time);
      break;
    }
  }
  return {
    dir,
    layout,
    bytes: await _duBytes(dir),
    oldestSampleMs: firstMs,
    newestSampleMs: newest,
    headMinTime: headMin,
    series: all.length,
    targets: targets.length,
    samples: counts.samples,
    staleMarkers: counts.stale,
    blocks: plans.map((p) => ({
      ulid: p.ulid,
      minTime: p.minTime,
      maxTime: p.maxTime,
      level: p.level,
      sources: p.sources.length,
    })),
    wal: {
      checkpoint: wal.checkpoint.map((p) => p.slice(dir.length + 1)),
      segments: wal.segments.map((p) => p.slice(dir.length + 1)),
    },
    generationSeconds: Math.round((performance.now() - started) / 100) / 10,
  };
}

function _parseTime(text: string): number {
  if (/^\d+$/.test(text)) return text.length >= 13 ? Number(text) : Number(text) * 1000;
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new Error(`bad time ${JSON.stringify(text)}`);
  return ms;
}

const USAGE = "usage: make_realistic_datadir.ts DIR [--size 2GiB] [--days 7] " +
  "[--end 2026-11-25T14:17:00Z] [--seed N] [--units N] [--max-block-hours 54] " +
  "[--values realistic|random-walk] [--head-chunks]";

async function main(args: string[]): Promise<number> {
  let dir: string | undefined;
  const opts: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const m = /^--(size|days|end|seed|units|max-block-hours|values)(?:=(.*))?$/.exec(a);
    if (m) {
      const v = m[2] ?? args[++i];
      if (v === undefined) {
        console.error(USAGE);
        return 2;
      }
      opts[m[1]] = v;
    } else if (a === "--head-chunks") {
      opts["head-chunks"] = "true";
    } else if (!a.startsWith("-") && dir === undefined) {
      dir = a.replace(/\/+$/, "");
    } else {
      console.error(USAGE);
      return 2;
    }
  }
  if (dir === undefined) {
    console.error(USAGE);
    return 2;
  }
  const days = Number(opts.days ?? 7);
  const size = parseByteSize(opts.size ?? "2GiB", "--size");
  const units = opts.units !== undefined
    ? Number(opts.units)
    : Math.max(1, Math.round(size / (BYTES_PER_UNIT_DAY * days)));
  const layout: _Layout = {
    generator: GENERATOR_VERSION,
    seed: Number(opts.seed ?? 0x5eed2026) >>> 0,
    units,
    days,
    endMs: _parseTime(opts.end ?? "2026-11-25T14:17:00Z"),
  };
  const maxBlockHours = Number(opts["max-block-hours"] ?? 54);
  if (maxBlockHours !== 54) layout.maxBlockHours = maxBlockHours;
  if (opts["head-chunks"]) layout.headChunks = true;
  if (opts.values === "random-walk") layout.values = "random-walk";
  else if (opts.values !== undefined && opts.values !== "realistic") {
    console.error(USAGE);
    return 2;
  }
  // Many small blocks need long spans: up to a year when blocks stay small.
  const maxDays = maxBlockHours < 54 ? 400 : 60;
  if (
    !(days > 0 && days <= maxDays && Number.isInteger(units) && units > 0) ||
    !BLOCK_RANGES.includes(maxBlockHours * HOUR)
  ) {
    console.error(USAGE);
    return 2;
  }
  const marker = `${dir}.complete`;
  const existing = await Deno.readTextFile(marker).then(JSON.parse).catch(() => null) as
    | _Summary
    | null;
  if (existing && JSON.stringify(existing.layout) === JSON.stringify(layout)) {
    console.error(`make_realistic_datadir: reusing ${dir}`);
    console.log(JSON.stringify(existing, null, 2));
    return 0;
  }
  await Deno.remove(marker).catch(() => {});
  await Deno.remove(dir, { recursive: true }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
  await Deno.mkdir(dir, { recursive: true });
  const summary = await _build(dir, layout);
  const text = JSON.stringify(summary, null, 2);
  await Deno.writeTextFile(marker, `${text}\n`);
  console.error(
    `make_realistic_datadir: wrote ${(summary.bytes / MIB).toFixed(0)} MiB (${summary.series} ` +
      `series, ${summary.samples} samples) to ${dir} in ${summary.generationSeconds}s`,
  );
  console.log(text);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
