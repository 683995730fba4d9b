import assert from "node:assert/strict";
import { ChunkSpill } from "../mod/tsdb/chunk_spill.ts";
import { listDir, withTempDir } from "./_files.ts";
import { seededRandom } from "./_random.ts";

interface _Added {
  encoding: number;
  data: Uint8Array;
  mint: bigint;
  maxt: bigint;
}

Deno.test("ChunkSpill gives back every list's chunks across slabs, buffer and overflow", async () => {
  await withTempDir("promcase-spill-", async (dir) => {
    const random = seededRandom(7);
    // 3 MiB in memory (three slabs), the rest (about 9 MiB) through the file writer's 1 MiB
    // buffer and the overflow that waits for a flush.
    const spill = await ChunkSpill.create(`${dir}/spill`, { memoryBudget: 3 << 20 });
    const want = new Map<number, _Added[]>();
    let t = 1_700_000_000_000;
    for (let i = 0; i < 6000; i++) {
      const list = Math.floor(random() * 500);
      // Mostly chunk-sized, now and then one larger than a slab (it must go to the file).
      const size = i % 1500 === 1499 ? (1 << 20) + 17 : 1 + Math.floor(random() * 3000);
      const data = new Uint8Array(size).map(() => Math.floor(random() * 256));
      const span = Math.floor(random() * 7_200_000);
      spill.add(list, 1 + (i % 3), data, t, t + span);
      // The spill copies: changing the caller's buffer afterwards changes nothing.
      const kept = data.slice();
      data.fill(0);
      const added = { encoding: 1 + (i % 3), data: kept, mint: BigInt(t), maxt: BigInt(t + span) };
      want.set(list, [...want.get(list) ?? [], added]);
      t += 1000;
      // Flush only every 50 adds, so that several chunks wait in the overflow at times.
      if (i % 50 === 49 && spill.needsFlush) await spill.flush();
    }
    assert.ok(spill.memoryBytes <= 3 << 20 && spill.memoryBytes > (3 << 20) - 3000);
    await spill.finish();
    assert.throws(() => spill.add(0, 1, new Uint8Array(1), 0, 0), /after finish/);
    try {
      for (let list = 0; list < 502; list++) {
        const got = spill.read(list);
        assert.equal(spill.has(list), want.has(list));
        assert.deepEqual(got, want.get(list) ?? [], `list ${list}`);
      }
      const spilled = (await Deno.stat(`${dir}/spill`)).size;
      assert.ok(spilled > 8 << 20, `file holds the chunks beyond the budget (${spilled} bytes)`);
    } finally {
      await spill.close();
    }
    assert.deepEqual(await listDir(dir), [], "close removes the file");
  });
});
