/**
 * The merge of the head replay's sorted runs on a worker (`run_merge_ahead.ts`) gives exactly what
 * the merge on the calling thread gives: every series in label order, every chunk's bytes, the
 * head chunk references replaced by their stored bytes; through rings small enough that series
 * come in pieces, and with a ring of 0 on this thread. Failures keep their class across the
 * worker, and a merge given up half-way ends its worker.
 */
import assert from "node:assert/strict";
import { withTempDir } from "./_files.ts";
import { seededRandom } from "./_random.ts";
import { PreparedReadAheadWorker } from "../mod/tsdb/_read_ahead.ts";
import { compareUtf8, FormatError } from "../mod/tsdb/encoding.ts";
import { HEAD_CHUNK_REF, HeadChunkStore } from "../mod/tsdb/head_chunk_store.ts";
import { mergeResolvedRuns, type ResolvedRunsOptions } from "../mod/tsdb/run_merge_ahead.ts";
import type { TimedChunk } from "../mod/tsdb/series.ts";
import { labelsKey, needsUtf8Order, SeriesRunWriter } from "../mod/tsdb/series_runs.ts";

interface Fixture {
  runs: string[];
  store: string;
  /** Each key's chunks as the merge must give them (references resolved). */
  want: Map<string, TimedChunk[]>;
}

/** Five runs of random series; a third of their chunks are references into a store. */
async function writeRuns(dir: string): Promise<Fixture> {
  const rnd = seededRandom(21);
  const bytes = (n: number) => {
    const data = new Uint8Array(n);
    for (let b = 0; b < n; b++) data[b] = Math.floor(rnd() * 256);
    return data;
  };
  const store = await HeadChunkStore.create(`${dir}/store`, 64);
  const want = new Map<string, TimedChunk[]>();
  const runs: string[] = [];
  let utf8 = false;
  for (let r = 0; r < 5; r++) {
    const series: [string, TimedChunk[]][] = [];
    for (let i = 0; i < 200; i++) {
      // Keys outside the BMP sort differently by UTF-16 units and by UTF-8 bytes.
      const value = rnd() < 0.1 ? `😀${i}` : `v${r}-${i}`;
      const key = labelsKey([{ name: "a", value }, { name: "z", value: String(r) }]);
      utf8 ||= needsUtf8Order(key);
      const inRun: TimedChunk[] = [];
      const resolved: TimedChunk[] = [];
      // Now and then a series larger than the smallest ring.
      const n = rnd() < 0.05 ? 30 : Math.floor(rnd() * 4);
      for (let c = 0; c < n; c++) {
        const data = bytes(Math.floor(rnd() * 300));
        const mint = BigInt(Math.floor((rnd() - 0.5) * 2 ** 53));
        const chunk = { encoding: 1 + (c % 3), data, mint, maxt: mint + BigInt(c) };
        resolved.push(chunk);
        // (A reference without bytes is a chunk outside the window, which never reaches a run.)
        if (data.length > 0 && rnd() < 0.33) {
          const ref = (await store.add(data, c)).slice();
          inRun.push({ ...chunk, encoding: chunk.encoding | HEAD_CHUNK_REF, data: ref });
        } else inRun.push(chunk);
      }
      series.push([key, inRun]);
      want.set(key, resolved);
    }
    series.sort((a, b) => compareUtf8(a[0], b[0]));
    const w = await SeriesRunWriter.create(`${dir}/run-${r}`, 128);
    for (const [key, chunks] of series) await w.add(key, chunks);
    await w.finish();
    runs.push(w.path);
  }
  await store.close();
  assert.ok(utf8, "some keys need UTF-8 order");
  return { runs, store: `${dir}/store`, want };
}

const plain = (chunks: readonly TimedChunk[]) => chunks.map((c) => ({ ...c, data: [...c.data] }));

async function merged(
  runs: string[],
  options: ResolvedRunsOptions,
): Promise<[string, ReturnType<typeof plain>][]> {
  const out: [string, ReturnType<typeof plain>][] = [];
  // Copied as they come: a series' data is valid only until the next is asked for.
  for await (const s of mergeResolvedRuns(runs, { utf8Order: true, bufferSize: 16, ...options })) {
    out.push([labelsKey(s.labels), plain(s.chunks)]);
  }
  return out;
}

// Series by series: a diff of the whole list takes minutes to print.
function _sameSeries(
  got: [string, ReturnType<typeof plain>][],
  want: [string, ReturnType<typeof plain>][],
  what: string,
): void {
  assert.deepEqual(got.map((s) => s[0]), want.map((s) => s[0]), `${what}: the keys`);
  for (const [i, [key, chunks]] of got.entries()) {
    assert.deepEqual(chunks, want[i][1], `${what}: ${key}`);
  }
}

Deno.test("runs merged on a worker: every series and chunk byte, references resolved, any ring", async () => {
  await withTempDir("promcase-merge-ahead-", async (dir) => {
    const { runs, store, want } = await writeRuns(dir);
    const expected = [...want.keys()].sort(compareUtf8)
      .map((k): [string, ReturnType<typeof plain>] => [k, plain(want.get(k)!)]);
    // 1 KiB: the 30-chunk series come in pieces; 0: on this thread.
    for (const ringBytes of [0, 1024, 1536, 64 * 1024, undefined]) {
      const got = await merged(runs, { headChunkData: store, ringBytes });
      _sameSeries(got, expected, `ring ${ringBytes}`);
    }
    // A worker started ahead is taken over (and closed when the merge runs here).
    for (const ringBytes of [0, 1024]) {
      const worker = new PreparedReadAheadWorker();
      const got = await merged(runs, { headChunkData: store, ringBytes, worker });
      _sameSeries(got, expected, `prepared worker, ring ${ringBytes}`);
    }
  });
});

Deno.test("runs merged on a worker: failures keep their class; a merge given up ends", async () => {
  await withTempDir("promcase-merge-ahead-", async (dir) => {
    const { runs, store } = await writeRuns(dir);
    const twice = await SeriesRunWriter.create(`${dir}/twice`);
    const first = (await merged(runs.slice(0, 1), { headChunkData: store }))[0][0];
    await twice.add(first, []);
    await twice.finish();
    for (const ringBytes of [0, 1024]) {
      // The same key in two runs.
      await assert.rejects(
        merged([runs[0], twice.path], { headChunkData: store, ringBytes }),
        (e) => e instanceof FormatError && /out of order or in two runs/.test(e.message),
      );
      // A store that is gone.
      await assert.rejects(
        merged(runs, { headChunkData: `${dir}/no-store`, ringBytes }),
        Deno.errors.NotFound,
      );
      // Given up after three series, with the worker blocked on a full ring.
      let n = 0;
      for await (const _ of mergeResolvedRuns(runs, { headChunkData: store, ringBytes })) {
        if (++n === 3) break;
      }
      assert.equal(n, 3);
    }
  });
});
