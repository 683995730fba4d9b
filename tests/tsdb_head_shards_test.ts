/**
 * The head replay's spill formats on their own: shard files (`head_shards.ts`) give back every
 * entry bit for bit, in order, whatever the buffer sizes; sorted runs (`series_runs.ts`) merge in
 * label order with every chunk byte. Buffers are turned down so that every swap, grow, shrink and
 * refill path runs.
 */
import assert from "node:assert/strict";
import { withTempDir } from "./_files.ts";
import { seededRandom } from "./_random.ts";
import {
  type HeadEntrySink,
  HeadPartitioner,
  readShardFile,
  RefShards,
  SampleEntry,
  shardOf,
} from "../mod/tsdb/head_shards.ts";
import {
  labelsKey,
  mergeSeriesRuns,
  needsUtf8Order,
  parseLabelsKey,
  SeriesRunWriter,
} from "../mod/tsdb/series_runs.ts";
import type { FloatHistogram, Histogram } from "../mod/tsdb/record.ts";
import { compareUtf8, FormatError } from "../mod/tsdb/encoding.ts";
import type { TimedChunk } from "../mod/tsdb/series.ts";
import { SampleBatch } from "../mod/tsdb/sample_batch.ts";

/** Records entries as text, bigints and bits included. */
class Recorder implements HeadEntrySink {
  entries: string[] = [];
  series(ref: number, key: string): void {
    this.entries.push(`series ${ref} ${JSON.stringify(key)}`);
  }
  samples(batch: SampleBatch): void {
    for (let i = 0; i < batch.length; i++) {
      const kind = batch.kind[i];
      // An advance entry carries no value; the value bits as unsigned halves.
      const v = kind === SampleEntry.advance
        ? ""
        : ` ${(batch.vh[i] >>> 0).toString(16)}:${(batch.vl[i] >>> 0).toString(16)}`;
      this.entries.push(`sample ${kind} ${batch.ref[i]} ${batch.t[i]}${v}`);
    }
  }
  histogram(
    ref: number,
    t: number,
    h: Histogram | FloatHistogram,
    float: boolean,
    outOfOrder: boolean,
  ): void {
    const text = JSON.stringify(h, (_k, v) => (typeof v === "bigint" ? `${v}n` : v));
    this.entries.push(`histogram ${ref} ${t} ${float} ${outOfOrder} ${text}`);
  }
  tombstone(ref: number, mint: bigint, maxt: bigint): void {
    this.entries.push(`tombstone ${ref} ${mint} ${maxt}`);
  }
  headChunk(ref: number, mint: number, maxt: number, encoding: number, data: Uint8Array): void {
    this.entries.push(`headChunk ${ref} ${mint} ${maxt} ${encoding} ${data.join(",")}`);
  }
}

function randomHistogram(rnd: () => number, float: boolean): Histogram | FloatHistogram {
  const big = () =>
    BigInt(Math.floor(rnd() * 2 ** 32)) << 32n | BigInt(Math.floor(rnd() * 2 ** 32));
  const count = () => float ? big() : BigInt(Math.floor(rnd() * 1e6));
  const bucket = () => float ? big() : BigInt(Math.floor(rnd() * 2e6) - 1e6);
  const custom = rnd() < 0.3;
  return {
    counterResetHint: Math.floor(rnd() * 4),
    schema: custom ? -53 : Math.floor(rnd() * 13) - 4,
    zeroThreshold: big(),
    zeroCount: count(),
    count: count(),
    sum: big(),
    positiveSpans: [{ offset: -3, length: 2 }, { offset: 5, length: 1 }],
    negativeSpans: rnd() < 0.5 ? [] : [{ offset: 2, length: 1 }],
    positiveBuckets: [bucket(), bucket(), bucket()],
    negativeBuckets: rnd() < 0.5 ? [] : [bucket()],
    customValues: custom ? [big(), big()] : [],
  };
}

Deno.test("shard files give back every entry in order, whatever the buffer sizes", async () => {
  await withTempDir("promcase-shards-", async (dir) => {
    const rnd = seededRandom(5);
    const shards = 7;
    const part = await HeadPartitioner.create(`${dir}/p`, 0, { shards, bufferSize: 48 });
    const want: Recorder[] = Array.from({ length: shards }, () => new Recorder());
    const refs: number[] = [];
    const keys = new Map<number, string>();
    const one = new SampleBatch(1);
    // Every kind of entry, with deltas small and beyond 2^30 (base entries), negative times,
    // every value bit pattern, keys longer than the buffers and outside the BMP.
    for (let i = 0; i < 20_000; i++) {
      const r = rnd();
      if (refs.length === 0 || r < 0.05) {
        const ref = rnd() < 0.1 ? Math.floor(rnd() * 2 ** 52) : refs.length * 3 + 1;
        const key = labelsKey([
          { name: "__name__", value: `m${i % 13}` },
          { name: "long", value: "ä😀x".repeat(Math.floor(rnd() * 40)) },
          { name: "n", value: String(i) },
        ]);
        refs.push(ref);
        keys.set(ref, key);
        part.series(ref, key);
        want[shardOf(key, 0, shards)].series(ref, key);
        continue;
      }
      const ref = refs[Math.floor(rnd() * refs.length)];
      const rec = want[shardOf(keys.get(ref)!, 0, shards)];
      const t = rnd() < 0.05 ? Math.floor((rnd() - 0.5) * 2 ** 53) : 1.7e12 + i * 15;
      if (r < 0.85) {
        const kind = [SampleEntry.float, SampleEntry.advance, SampleEntry.outOfOrder][i % 3];
        const vh = Math.floor(rnd() * 2 ** 32);
        const vl = Math.floor(rnd() * 2 ** 32);
        one.length = 0;
        one.push(kind, ref, t, vh, vl);
        part.samples(one);
        rec.samples(one);
      } else if (r < 0.95) {
        const float = rnd() < 0.5;
        const h = randomHistogram(rnd, float);
        const ooo = rnd() < 0.2;
        part.histogram(ref, t, h, float, ooo);
        rec.histogram(ref, t, h, float, ooo);
      } else {
        const [mint, maxt] = rnd() < 0.3 ? [-(2n ** 63n), 2n ** 63n - 1n] : [BigInt(t), BigInt(t)];
        part.tombstone(ref, mint, maxt);
        rec.tombstone(ref, mint, maxt);
      }
      if (i % 100 === 0) part.flush();
    }
    const files = await part.finish();
    assert.equal(files.length, shards);
    for (const f of files) {
      const shard = Number(f.path.split("-").at(-1));
      for (const readSize of [64, 1000, 1 << 20]) {
        const got = new Recorder();
        // Batches of 1 and 7 entries hand full batches on mid-buffer.
        await readShardFile(f.path, got, { bufferSize: readSize, batchSize: 1 + readSize % 7 });
        assert.equal(got.entries.length, want[shard].entries.length, `${f.path} at ${readSize}`);
        assert.deepEqual(got.entries, want[shard].entries, `${f.path} read ${readSize} at a time`);
      }
      assert.equal(f.series, want[shard].entries.filter((e) => e.startsWith("series")).length);
    }
  });
});

Deno.test("a shard file cut anywhere gives back a prefix of its entries or says where it is cut", async () => {
  await withTempDir("promcase-shards-cut-", async (dir) => {
    const part = await HeadPartitioner.create(`${dir}/p`, 0, { shards: 1 });
    const want = new Recorder();
    const key = labelsKey([{ name: "__name__", value: "m" }]);
    part.series(7, key);
    want.series(7, key);
    const one = new SampleBatch(1);
    // Varints of one to five bytes (deltas up to 2^30; a larger one goes through a base entry),
    // every sample kind, a histogram and a tombstone between them.
    const times = [0, 1, 200, 70_000, 2 ** 29, -(2 ** 29), 2 ** 31, 2 ** 31 + 1];
    for (const [i, t] of times.entries()) {
      one.length = 0;
      one.push(
        [SampleEntry.float, SampleEntry.advance, SampleEntry.outOfOrder][i % 3],
        7,
        t,
        i,
        -i,
      );
      part.samples(one);
      want.samples(one);
      if (i === 3) {
        const h = randomHistogram(seededRandom(1), false);
        part.histogram(7, t, h, false, false);
        want.histogram(7, t, h, false, false);
      }
      if (i === 5) {
        part.tombstone(7, 1n, 2n);
        want.tombstone(7, 1n, 2n);
      }
    }
    const [file] = await part.finish();
    const bytes = await Deno.readFile(file.path);
    let whole = 0;
    for (let cut = 0; cut <= bytes.length; cut++) {
      const path = `${dir}/cut`;
      await Deno.writeFile(path, bytes.subarray(0, cut));
      // Every alignment of the cut to the reads, so that entries are cut at the buffer's end too.
      for (let bufferSize = 64; bufferSize <= 128; bufferSize++) {
        const got = new Recorder();
        try {
          await readShardFile(path, got, { bufferSize });
        } catch (e) {
          assert.ok(e instanceof FormatError && /truncated/.test(e.message), String(e));
          continue;
        }
        // Only a cut between two entries reads without error, and gives those before it.
        assert.deepEqual(got.entries, want.entries.slice(0, got.entries.length), `cut at ${cut}`);
        if (cut === bytes.length) assert.equal(got.entries.length, want.entries.length);
        whole++;
      }
    }
    // Entries (a base entry is not reported) plus the empty file, at each buffer size.
    assert.ok(whole <= 65 * (want.entries.length + 3), `${whole} cuts read whole`);
  });
});

Deno.test("a shard split again spreads its series over the parts; refs map to one byte", () => {
  const keys = Array.from(
    { length: 20_000 },
    (_, i) => labelsKey([{ name: "pod", value: `p${i}` }]),
  );
  const inShard0 = keys.filter((k) => shardOf(k, 0, 8) === 0);
  const parts = new Array(16).fill(0);
  for (const k of inShard0) parts[shardOf(k, 1, 16)]++;
  const expected = inShard0.length / 16;
  for (const n of parts) assert.ok(Math.abs(n - expected) < expected / 2, `parts ${parts}`);

  const map = new RefShards();
  assert.equal(map.get(5), -1);
  map.set(5, 0);
  map.set(4096 * 3 + 1, 254);
  map.set(2 ** 52, 7);
  assert.deepEqual([map.get(5), map.get(6), map.get(4096 * 3 + 1), map.get(2 ** 52)], [
    0,
    -1,
    254,
    7,
  ]);
});

Deno.test("sorted runs merge in label order with every chunk byte, buffers grown and shrunk", async () => {
  await withTempDir("promcase-runs-", async (dir) => {
    const rnd = seededRandom(9);
    const all = new Map<string, TimedChunk[]>();
    const runs: string[] = [];
    let utf8 = false;
    for (let r = 0; r < 5; r++) {
      const series: [string, TimedChunk[]][] = [];
      for (let i = 0; i < 300; i++) {
        // Keys outside the BMP sort differently by UTF-16 units and by UTF-8 bytes.
        const value = rnd() < 0.1 ? `\uffff${i}` : rnd() < 0.1 ? `😀${i}` : `v${r}-${i}`;
        const key = labelsKey([{ name: "a", value }, { name: "z", value: String(r) }]);
        utf8 ||= needsUtf8Order(key);
        const chunks: TimedChunk[] = [];
        // Now and then a series far larger than the read buffer.
        const n = rnd() < 0.05 ? 40 : Math.floor(rnd() * 3);
        for (let c = 0; c < n; c++) {
          const data = new Uint8Array(Math.floor(rnd() * 300));
          for (let b = 0; b < data.length; b++) data[b] = Math.floor(rnd() * 256);
          const mint = BigInt(Math.floor((rnd() - 0.5) * 2 ** 53));
          chunks.push({ encoding: 1 + (c % 3), data, mint, maxt: mint + BigInt(c) });
        }
        series.push([key, chunks]);
        all.set(key, chunks);
      }
      series.sort((a, b) => compareUtf8(a[0], b[0]));
      const w = await SeriesRunWriter.create(`${dir}/run-${r}`, 128);
      for (const [key, chunks] of series) await w.add(key, chunks);
      await w.finish();
      runs.push(w.path);
    }
    assert.ok(utf8, "some keys need UTF-8 order");
    const want = [...all.keys()].sort(compareUtf8);
    const got: string[] = [];
    for await (const s of mergeSeriesRuns(runs, { utf8Order: true, bufferSize: 16 })) {
      const key = labelsKey(s.labels);
      assert.deepEqual(parseLabelsKey(key), s.labels);
      got.push(key);
      assert.deepEqual(
        s.chunks.map((c) => ({ ...c, data: [...c.data] })),
        all.get(key)!.map((c) => ({ ...c, data: [...c.data] })),
        key,
      );
    }
    assert.deepEqual(got, want);

    // The same key in two runs is a bug upstream, never a silent merge.
    const twice = await SeriesRunWriter.create(`${dir}/twice`);
    await twice.add(want[0], []);
    await twice.finish();
    await assert.rejects(async () => {
      for await (const _ of mergeSeriesRuns([runs[0], runs[1], twice.path], { utf8Order: true })) {
        // drain
      }
    }, /out of order or in two runs/);
  });
});
