/**
 * Head replay rules (`mod/tsdb/head.ts`), on WALs written record by record: duplicate series refs,
 * samples before the newest block's end, out-of-order and duplicate samples, out-of-order samples
 * from the WBL, WAL tombstones, unknown record types and a torn last record. Real Prometheus WALs
 * are covered by tests/tsdb_compact_test.ts (promtool dump as the reference).
 */
import assert from "node:assert/strict";
import { withTempDir } from "./_files.ts";
import { decodeXor } from "../mod/tsdb/chunkenc/mod.ts";
import { Encbuf } from "../mod/tsdb/encoding.ts";
import { HeadReplay, type HeadReplayLimits } from "../mod/tsdb/head.ts";
import { writeHeadWal } from "./_head_gen.ts";
import { WalSegmentWriter } from "../mod/tsdb/wlog.ts";

function seriesRecord(series: [number, Record<string, string>][]): Uint8Array {
  const e = new Encbuf().byte(1);
  for (const [ref, labels] of series) {
    e.be64(BigInt(ref)).uvarint(Object.keys(labels).length);
    for (const [k, v] of Object.entries(labels).sort()) e.uvarintString(k).uvarintString(v);
  }
  return e.get().slice();
}

function samplesRecord(samples: [number, number, number][]): Uint8Array {
  const e = new Encbuf().byte(2);
  const [ref0, t0] = samples[0];
  e.be64(BigInt(ref0)).be64(BigInt(t0));
  for (const [ref, t, v] of samples) {
    e.varint(BigInt(ref - ref0)).varint(BigInt(t - t0)).be64(BigInt(v));
  }
  return e.get().slice();
}

function tombstoneRecord(ref: number, mint: number, maxt: number): Uint8Array {
  return new Encbuf().byte(3).be64(BigInt(ref)).varint(BigInt(mint)).varint(BigInt(maxt)).get()
    .slice();
}

async function writeSegment(path: string, records: Uint8Array[], torn = false): Promise<void> {
  const w = await WalSegmentWriter.create(path);
  for (const r of records) await w.log(r);
  await w.close(!torn);
  if (torn) {
    // A record whose first fragment made it to disk but not the rest: cut the file inside it.
    const big = new Uint8Array(40_000).fill(9);
    big[0] = 2;
    const w2 = await WalSegmentWriter.create(`${path}.tmp`);
    await w2.log(big);
    await w2.close(false);
    const tail = (await Deno.readFile(`${path}.tmp`)).subarray(0, 20_000);
    const head = await Deno.readFile(path);
    const joined = new Uint8Array(32 * 1024 + tail.length);
    joined.set(head.subarray(0, Math.min(head.length, 32 * 1024)));
    joined.set(tail, 32 * 1024);
    await Deno.writeFile(path, joined);
    await Deno.remove(`${path}.tmp`);
  }
}

async function replayed(head: HeadReplay): Promise<Map<string, [bigint, bigint][]>> {
  const out = new Map<string, [bigint, bigint][]>();
  for await (const s of head.series()) {
    const name = s.labels.map((l) => `${l.name}=${l.value}`).join(",");
    const points: [bigint, bigint][] = [];
    for (const c of s.chunks) {
      const { t, v } = decodeXor(c.data);
      for (let i = 0; i < t.length; i++) points.push([t[i], v[i]]);
    }
    out.set(name, points);
  }
  return out;
}

for (const memoryBudget of [undefined, 0]) {
  const where = memoryBudget === 0 ? "chunks in a temporary file" : "chunks in memory";
  Deno.test(`head replay follows Prometheus' rules (${where})`, async () => {
    await withTempDir("promcase-head-", async (dir) => {
      await Deno.mkdir(`${dir}/wal`);
      await Deno.mkdir(`${dir}/wbl`);
      const a = { __name__: "a" };
      const b = { __name__: "b" };
      await writeSegment(`${dir}/wal/00000000`, [
        seriesRecord([[1, a], [2, b]]),
        // 50 is before minValidTime (100); 200 twice (duplicate) and 150 after 300 (out of order).
        samplesRecord([[1, 50, 1], [1, 200, 2], [1, 200, 3], [1, 300, 4], [1, 150, 5]]),
        // A second ref for a's labels (as after series GC): its samples join series a.
        seriesRecord([[7, a]]),
        samplesRecord([[7, 260, 12], [7, 400, 6], [2, 400, 7], [2, 500, 8], [9, 500, 9]]),
        new Uint8Array([200, 1, 2, 3]), // a record type from the future
        tombstoneRecord(2, 450, 600),
      ]);
      await writeSegment(`${dir}/wal/00000001`, [samplesRecord([[1, 600, 10]])], true);
      // The WBL holds the out-of-order sample 250 of a.
      await writeSegment(`${dir}/wbl/00000000`, [samplesRecord([[1, 250, 11]])]);
      const head = await HeadReplay.replay({
        wal: [0, 1].map((i) => ({ index: i, path: `${dir}/wal/0000000${i}` })),
        wbl: [{ index: 0, path: `${dir}/wbl/00000000` }],
        minValidTime: 100n,
        from: 0n,
        to: 550n,
        tmpDir: dir,
        memoryBudget,
      });
      try {
        const got = await replayed(head);
        assert.deepEqual([...got.keys()], ["__name__=a", "__name__=b"]);
        // The second series record of a drops its samples so far (200, 300) and forgets its last
        // timestamp, as Prometheus' replay does: 260 and 400 come after it, 250 from the WBL.
        assert.deepEqual(got.get("__name__=a"), [[250n, 11n], [260n, 12n], [400n, 6n]]);
        // b's 500 is deleted by the tombstone; 600 of a lies outside the window.
        assert.deepEqual(got.get("__name__=b"), [[400n, 7n]]);
        assert.equal(head.stats.duplicateSeriesRefs, 1);
        assert.equal(head.stats.droppedBeforeMinValid, 1);
        assert.equal(head.stats.droppedOutOfOrder, 2);
        assert.equal(head.stats.droppedUnknownSeries, 1);
        assert.equal(head.stats.outOfOrderSamples, 1);
        assert.deepEqual(head.stats.skippedRecords, { "unknown type 200": 1 });
        assert.ok(head.stats.torn, "the torn last record ends the WAL normally");
      } finally {
        await head.close();
      }
      assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort(), [
        "wal",
        "wbl",
      ], "the spill file is removed");
    });
  });
}

Deno.test("a damaged WAL segment ends the replay there, as Prometheus' repair does", async () => {
  await withTempDir("promcase-head-damage-", async (dir) => {
    await Deno.mkdir(`${dir}/wal`);
    await writeSegment(`${dir}/wal/00000000`, [
      seriesRecord([[1, { __name__: "a" }]]),
      samplesRecord([[1, 10, 1], [1, 20, 2]]),
      samplesRecord([[1, 30, 3]]),
    ]);
    await writeSegment(`${dir}/wal/00000001`, [samplesRecord([[1, 40, 4]])]);
    // Flip a payload byte of the third record: its CRC no longer matches.
    const bytes = await Deno.readFile(`${dir}/wal/00000000`);
    let end = bytes.length;
    while (bytes[end - 1] === 0) end--;
    bytes[end - 2] ^= 0xff;
    await Deno.writeFile(`${dir}/wal/00000000`, bytes);
    const head = await HeadReplay.replay({
      wal: [0, 1].map((i) => ({ index: i, path: `${dir}/wal/0000000${i}` })),
      minValidTime: null,
      from: 0n,
      to: 100n,
      tmpDir: dir,
    });
    try {
      assert.deepEqual((await replayed(head)).get("__name__=a"), [[10n, 1n], [20n, 2n]]);
      assert.match(
        head.stats.corruption!.message,
        /corruption in WAL segment .*00000000 at offset/,
      );
    } finally {
      await head.close();
    }
  });
});

Deno.test("shards split to the last level and at most 255 parts replay the same series", async () => {
  await withTempDir("promcase-head-levels-", async (dir) => {
    await writeHeadWal(`${dir}/data`, { series: 600, scrapes: 5, start: 1_700_000_000_000 });
    const wal = [...Deno.readDirSync(`${dir}/data/wal`)].map((e) => e.name).sort()
      .map((name, index) => ({ index, path: `${dir}/data/wal/${name}` }));
    const replay = async (limits: HeadReplayLimits) => {
      const head = await HeadReplay.replay({
        wal,
        minValidTime: null,
        from: 0n,
        to: 2n ** 62n,
        tmpDir: dir,
        ...limits,
      });
      const out: string[] = [];
      for await (const s of head.series()) {
        out.push(JSON.stringify(s.labels));
        for (const c of s.chunks) out.push(`${c.encoding} ${c.mint} ${c.maxt} ${c.data.join(",")}`);
      }
      return { out, shards: head.stats.shards };
    };
    const plain = await replay({});
    assert.equal(plain.shards, 1);
    // 255 shards at first (one WAL byte each, at most 255), then a shard of more than one series
    // is split again until the last level, where it is replayed as it is.
    const split = await replay({ shardWalBytes: 1, shardSeries: 1 });
    assert.ok(split.shards > 255, `${split.shards} shards`);
    assert.deepEqual(split.out, plain.out);
  });
});
