/**
 * A deterministic set of series for the index writer's tests (`tsdb_index_bounded_test.ts`):
 * hundreds of series in label order with the strings that trip up an index writer: values whose
 * UTF-16 order differs from their UTF-8 byte order (U+FF5E against U+1F600), empty values, a
 * UTF-8 label name, long values, label sets that are prefixes of others, a unique value per series,
 * and 1 to 3 chunks of 1 to 4 float samples each.
 *
 * `tests/testdata/index-golden/index.gz` is the index the in-memory writer of promcase 0.2.0
 * (commit b95f146) wrote for these series through `BlockWriter`; change the generator and that
 * file is stale.
 *
 * @module
 */

import { Encoding, XorAppender } from "../mod/tsdb/chunkenc/mod.ts";
import { compareLabels, type Label } from "../mod/tsdb/index.ts";
import { seededRandom } from "./_random.ts";

/** One fixture series: labels sorted by name, chunks with their samples. */
export interface FixtureSeries {
  labels: Label[];
  chunks: {
    encoding: number;
    data: Uint8Array;
    mint: bigint;
    maxt: bigint;
    samples: { t: bigint; v: bigint }[];
  }[];
}

const T0 = 1_767_225_600_000;

/** The fixture series, sorted by {@link compareLabels}, without duplicates. */
export function indexFixture(): FixtureSeries[] {
  const rand = seededRandom(20260301);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const hex = () => Math.floor(rand() * 2 ** 32).toString(16).padStart(8, "0");
  const metrics = ["up", "http_requests_total", "node_cpu_seconds_total", "temperature_celsius"];
  const paths = ["/", "/api", "caf\u00e9", "\uff5e", "\u{1f600}", "\u{1f600}x", "", "z"];
  const sets = new Map<string, Label[]>();
  for (let i = 0; i < 700; i++) {
    const labels: Label[] = [{ name: "__name__", value: pick(metrics) }];
    if (rand() < 0.9) labels.push({ name: "instance", value: `host-${Math.floor(rand() * 12)}` });
    if (rand() < 0.7) labels.push({ name: "path", value: pick(paths) });
    if (rand() < 0.8) labels.push({ name: "pod", value: `pod-${hex()}` });
    if (rand() < 0.02) labels.push({ name: "query", value: `${"q".repeat(3000)}${i}` });
    if (rand() < 0.3) {
      labels.push({ name: "\u00fcnit", value: pick(["s", "\u00b5s", "\u{1f552}"]) });
    }
    sets.set(JSON.stringify(labels), labels);
  }
  const sorted = [...sets.values()].sort(compareLabels);
  return sorted.map((labels) => {
    const chunks: FixtureSeries["chunks"] = [];
    let t = T0 + Math.floor(rand() * 60_000);
    const nChunks = 1 + Math.floor(rand() * 3);
    for (let c = 0; c < nChunks; c++) {
      const app = new XorAppender();
      const samples: { t: bigint; v: bigint }[] = [];
      const nSamples = 1 + Math.floor(rand() * 4);
      for (let k = 0; k < nSamples; k++) {
        t += 1 + Math.floor(rand() * 30_000);
        const v = BigInt(Math.floor(rand() * 2 ** 20)) << 32n | 0x4059n;
        app.append(BigInt(t), v);
        samples.push({ t: BigInt(t), v });
      }
      chunks.push({
        encoding: Encoding.xor,
        data: app.bytes(),
        mint: samples[0].t,
        maxt: samples[samples.length - 1].t,
        samples,
      });
    }
    return { labels, chunks };
  });
}
