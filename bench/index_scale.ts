/**
 * Scale benchmark of the block index: writes a block of N synthetic series through `BlockWriter`
 * and streams it back through `BlockReader`, to show that memory does not grow with the number of
 * series. Run each phase under `/usr/bin/time -v` for its peak RSS:
 *
 * ```sh
 * /usr/bin/time -v deno run -A --v8-flags=--max-semi-space-size=1,--optimize-for-size \
 *   bench/index_scale.ts write DIR --series 1000000
 * /usr/bin/time -v deno run -A --v8-flags=--max-semi-space-size=1,--optimize-for-size \
 *   bench/index_scale.ts read DIR
 * ```
 *
 * Every series has 10 labels: `__name__` (100 metrics), `cluster`, `container`, `env`,
 * `instance` (500 values), `job`, `namespace`, `node`, and two unique random values,
 * `pod="pod-<12 hex>"` and `uid="<16 hex>"`; so a block of N series holds about 2N symbols and
 * 2N postings lists. Each series has one 1-sample XOR chunk. Series are generated in label order
 * one (metric, instance) group at a time, so the generator's own memory is a group's pods.
 *
 * `write` creates DIR if needed and adds one block to it, and prints the peak RSS of its two
 * phases (adding series, commit) as sampled every 100 ms; `read` streams every block in DIR,
 * checks the series count against meta.json and prints a hash of all labels and a CRC of all
 * chunks, to compare two readers. `write --start MS` puts the first chunk at MS (default 2026-01-01).
 * `--symbols-budget`, `--postings-budget` and `--fan-in` set the writer's memory options.
 *
 * @module
 */

import { BlockReader, BlockWriter, type BlockWriterOptions } from "../mod/tsdb/block.ts";
import { Encoding, XorAppender } from "../mod/tsdb/chunkenc/mod.ts";
import { compareUtf8 } from "../mod/tsdb/encoding.ts";
import type { Label } from "../mod/tsdb/index.ts";
import { crc32c } from "../mod/tsdb/crc32c.ts";

const METRICS = 100;
const INSTANCES = 500;
/** Default time of the first chunk (2026-01-01); `write --start MS` moves the block. */
const T0_DEFAULT = 1_767_225_600_000;

function _usage(): never {
  console.error(
    "usage: index_scale.ts write DIR --series N [--start MS] [--symbols-budget B] " +
      "[--postings-budget B] [--fan-in F]\n       index_scale.ts read DIR",
  );
  Deno.exit(2);
}

/** mulberry32: the same seed gives the same series on every run. */
function _random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function _hex(rand: () => number, digits: number): string {
  let s = "";
  while (s.length < digits) s += rand().toString(16).padStart(8, "0");
  return s.slice(0, digits);
}

/** The series of the block in label order, `perGroup` series per (metric, instance). */
function* _series(perGroup: number): Generator<Label[]> {
  const rand = _random(42);
  const instances = Array.from(
    { length: INSTANCES },
    (_, i) => `10.${(i * 7) % 256}.${i % 97}.${i}:9100`,
  ).sort(compareUtf8);
  for (let m = 0; m < METRICS; m++) {
    const metric = `bench_metric_${String(m).padStart(3, "0")}_total`;
    for (let i = 0; i < INSTANCES; i++) {
      const pods = new Set<string>();
      while (pods.size < perGroup) pods.add(`pod-${_hex(rand, 12)}`);
      for (const pod of [...pods].sort(compareUtf8)) {
        yield [
          { name: "__name__", value: metric },
          { name: "cluster", value: "eu-west-1" },
          { name: "container", value: `app-${m % 7}` },
          { name: "env", value: "prod" },
          { name: "instance", value: instances[i] },
          { name: "job", value: `job-${m % 5}` },
          { name: "namespace", value: `ns-${i % 20}` },
          { name: "node", value: `node-${i}` },
          { name: "pod", value: pod },
          { name: "uid", value: _hex(rand, 16) },
        ];
      }
    }
  }
}

/** Samples the RSS every 100 ms: the peak since the last `take()`, in MiB. */
function _rssPeaks(): { take(): number; stop(): void } {
  let peak = 0;
  const sample = () => (peak = Math.max(peak, Deno.memoryUsage().rss));
  const timer = setInterval(sample, 100);
  return {
    take() {
      sample();
      const p = peak;
      peak = 0;
      return +(p / 2 ** 20).toFixed(1);
    },
    stop: () => clearInterval(timer),
  };
}

async function _write(
  dir: string,
  numSeries: number,
  t0: number,
  options: BlockWriterOptions,
): Promise<void> {
  const perGroup = Math.max(1, Math.round(numSeries / (METRICS * INSTANCES)));
  await Deno.mkdir(dir, { recursive: true });
  const chunks = Array.from({ length: 60 }, (_, k) => {
    const app = new XorAppender();
    app.appendNumber(t0 + k * 1000, 0x40590000, k);
    return { encoding: Encoding.xor, data: app.bytes(), mint: BigInt(t0 + k * 1000) };
  });
  const rss = _rssPeaks();
  const started = performance.now();
  const w = await BlockWriter.create(dir, options);
  let n = 0;
  for (const labels of _series(perGroup)) {
    const c = chunks[n % chunks.length];
    await w.addSeries(labels, [{ encoding: c.encoding, data: c.data, mint: c.mint, maxt: c.mint }]);
    n++;
  }
  const added = performance.now();
  const addRssMiB = rss.take();
  const block = await w.commit();
  const done = performance.now();
  const commitRssMiB = rss.take();
  rss.stop();
  const indexSize = (await Deno.stat(`${block.dir}/index`)).size;
  console.log(JSON.stringify({
    phase: "write",
    block: block.ulid,
    series: n,
    addSeconds: +((added - started) / 1000).toFixed(1),
    commitSeconds: +((done - added) / 1000).toFixed(1),
    totalSeconds: +((done - started) / 1000).toFixed(1),
    indexMiB: +(indexSize / 2 ** 20).toFixed(1),
    addRssMiB,
    commitRssMiB,
  }));
}

/** FNV-1a over the UTF-16 code units of `s`, continuing `h`: cheap next to reading the series. */
function _hash(s: string, h: number): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return Math.imul(h ^ 0xff, 0x01000193);
}

async function _read(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (!e.isDirectory || !/^[0-9A-Z]{26}$/.test(e.name)) continue;
    const started = performance.now();
    using block = await BlockReader.open(`${dir}/${e.name}`);
    let n = 0;
    let labels = 0x811c9dc5;
    let crc = 0;
    for await (const s of block.series()) {
      n++;
      for (const l of s.labels) labels = _hash(l.value, _hash(l.name, labels));
      for (const c of s.chunks) crc = crc32c(c.data, crc);
    }
    if (n !== block.meta.stats.numSeries) {
      throw new Error(`${e.name}: read ${n} series, meta.json says ${block.meta.stats.numSeries}`);
    }
    console.log(JSON.stringify({
      phase: "read",
      block: e.name,
      series: n,
      labelsHash: (labels >>> 0).toString(16),
      chunksCrc: crc.toString(16),
      seconds: +((performance.now() - started) / 1000).toFixed(1),
    }));
  }
}

if (import.meta.main) {
  const [phase, dir, ...rest] = Deno.args;
  if (!dir) _usage();
  const flag = (name: string): number | undefined => {
    const i = rest.indexOf(name);
    if (i < 0) return undefined;
    const v = Number(rest[i + 1]);
    if (!Number.isSafeInteger(v) || v < 0) _usage();
    return v;
  };
  if (phase === "write") {
    const numSeries = flag("--series") ?? _usage();
    const options: Record<string, number | undefined> = {
      symbolsMemoryBudget: flag("--symbols-budget"),
      postingsMemoryBudget: flag("--postings-budget"),
      mergeFanIn: flag("--fan-in"),
    };
    await _write(dir, numSeries, flag("--start") ?? T0_DEFAULT, options as BlockWriterOptions);
  } else if (phase === "read") {
    await _read(dir);
  } else {
    _usage();
  }
}
