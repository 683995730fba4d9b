/**
 * The head replay's shards replayed on two threads (`replayWorkers`, `head_replay_pool.ts`): the
 * same series and chunks, byte for byte, and the same counters as on the main thread alone; a
 * worker's failure ends the replay with its error (class kept) and leaves no temporary files.
 */
import assert from "node:assert/strict";
import { withTempDir } from "./_files.ts";
import { HeadReplay, type HeadReplayLimits, type HeadReplayStats } from "../mod/tsdb/head.ts";
import { HeadReplayWorker } from "../mod/tsdb/head_replay_pool.ts";
import { writeHeadWal } from "./_head_gen.ts";
import { listSegments } from "../mod/tsdb/wlog.ts";

const START = Date.UTC(2026, 10, 20, 9, 0, 0);

async function replayAll(
  wal: string,
  tmpDir: string,
  limits: HeadReplayLimits,
): Promise<{ out: string[]; stats: HeadReplayStats }> {
  const head = await HeadReplay.replay({
    wal: await listSegments(wal),
    minValidTime: null,
    from: BigInt(START),
    to: BigInt(START + 3_600_000),
    tmpDir,
    ...limits,
  });
  const out: string[] = [];
  for await (const s of head.series()) {
    out.push(JSON.stringify(s.labels));
    for (const c of s.chunks) out.push(`${c.encoding} ${c.mint} ${c.maxt} ${c.data.join(",")}`);
  }
  return { out, stats: head.stats };
}

Deno.test("shards replayed by a worker beside the main thread give the same series, chunks and counters", async () => {
  await withTempDir("promcase-pool-", async (dir) => {
    await writeHeadWal(`${dir}/data`, { series: 600, scrapes: 40, start: START, seed: 3 });
    // Many small shards (split again), so that both threads take several.
    const small: HeadReplayLimits = { shardWalBytes: 16 * 1024, shardSeries: 30 };
    const alone = await replayAll(`${dir}/data/wal`, dir, { ...small, replayWorkers: 0 });
    const two = await replayAll(`${dir}/data/wal`, dir, { ...small, replayWorkers: 1 });
    const three = await replayAll(`${dir}/data/wal`, dir, { ...small, replayWorkers: 2 });
    assert.ok(alone.stats.shards > 8, `${alone.stats.shards} shards`);
    assert.ok(alone.stats.floatSamples > 10_000 && alone.stats.histogramSamples > 0);
    for (const other of [two, three]) {
      assert.equal(other.out.length, alone.out.length);
      assert.deepEqual(other.out, alone.out);
      assert.deepEqual(other.stats, alone.stats);
    }
    // Nothing left behind in the temporary dir but the generated data.
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["data"]);
  });
});

Deno.test("a worker's failure ends the replay with its error, and an abort stops it", async () => {
  await withTempDir("promcase-pool-", async (dir) => {
    const stop = new AbortController();
    const worker = new HeadReplayWorker(stop.signal);
    try {
      const job = {
        shard: { path: `${dir}/missing`, series: 1, level: 1 },
        path: `${dir}/run`,
        limits: {},
      };
      // The I/O error keeps its class: a full disk must still be told apart by it.
      await assert.rejects(worker.replay(job), Deno.errors.NotFound);
      await Deno.writeFile(`${dir}/garbage`, new Uint8Array([99, 1, 2, 3]));
      await assert.rejects(
        worker.replay({ ...job, shard: { ...job.shard, path: `${dir}/garbage` } }),
        /unknown entry 99/,
      );
      const pending = worker.replay({ ...job, shard: { ...job.shard, path: `${dir}/garbage` } });
      stop.abort(new Error("stopped by the test"));
      await assert.rejects(pending, /stopped by the test/);
      await assert.rejects(worker.replay(job), /stopped by the test/);
    } finally {
      worker.close();
    }
  });
});
