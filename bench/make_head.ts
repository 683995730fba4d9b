/**
 * Writes a Prometheus data dir whose head holds N series of high-entropy values (see
 * `tests/_head_gen.ts`): the head shape of `head_scale_bench.sh`.
 *
 *   deno run -A bench/make_head.ts DIR --series 200000 [--scrapes 121] [--interval 15000]
 *     [--metrics 100] [--histogram-every 20] [--seed 1] [--start MS] [--head-chunks]
 *     [--series-per-record 10000] [--snappy]
 *
 * `--head-chunks` also writes `chunks_head/` as Prometheus' head does (every full chunk of 120
 * samples), so that the head looks like a real one; without it the WAL alone holds the head.
 * `--series-per-record N`: series records of at most N series (Prometheus logs all the series a
 * scrape creates in one record: `--series-per-record` equal to `--series` writes it so).
 * `--snappy`: snappy-compressed WAL records, as Prometheus writes them by default.
 *
 * Prints the written head as JSON (samples, stale markers, last scrape time, segments).
 *
 * @module
 */

import { writeHeadWal } from "../tests/_head_gen.ts";

function flag(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(Deno.args[i + 1]);
  if (!Number.isFinite(v)) throw new Error(`--${name} takes a number`);
  return v;
}

const dir = Deno.args[0];
if (!dir || dir.startsWith("--")) {
  console.error("usage: make_head.ts DIR --series N [--scrapes N] [--interval MS] ...");
  Deno.exit(2);
}
const result = await writeHeadWal(dir, {
  series: flag("series", 200_000),
  scrapes: flag("scrapes", 121),
  intervalMs: flag("interval", 15_000),
  metrics: flag("metrics", 100),
  histogramEvery: flag("histogram-every", 20),
  seed: flag("seed", 1),
  start: flag("start", Date.UTC(2026, 10, 20, 8, 0, 0)),
  headChunks: Deno.args.includes("--head-chunks"),
  seriesPerRecord: flag("series-per-record", 10_000),
  compression: Deno.args.includes("--snappy") ? "snappy" : undefined,
});
console.log(JSON.stringify(result));
