/**
 * The index in bounded memory: `BlockWriter` and `IndexWriter` with every budget turned down
 * (symbol runs of a few strings, postings runs of a few tuples, merges two runs at a time through
 * 16-byte buffers, postings offset table strings looked up a handful at a time) write the very
 * bytes the in-memory writer wrote (`tests/testdata/index-golden/index.gz`, see
 * `_index_fixture.ts`), and `IndexReader` reading symbols from the file through a tiny window
 * gives back every series, symbol and postings list. promtool reads such a block.
 */
import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import { withTempDir } from "./_files.ts";
import { type FixtureSeries, indexFixture } from "./_index_fixture.ts";
import { findPrometheus } from "./_prometheus.ts";
import { promtoolAnalyze, promtoolDump } from "./_promtool.ts";
import { BlockWriter, type BlockWriterOptions } from "../mod/tsdb/block.ts";
import { crc32c } from "../mod/tsdb/crc32c.ts";
import { formatFloatLine } from "../mod/tsdb/dump.ts";
import { compareUtf8, FormatError } from "../mod/tsdb/encoding.ts";
import { IndexReader, type IndexReaderOptions, IndexWriter } from "../mod/tsdb/index.ts";

const GOLDEN = new URL("./testdata/index-golden/index.gz", import.meta.url).pathname;
const ULID = "01KJ0000000000000000000000";

/** Every limit of the writer turned down so that every spill, merge and batch path runs. */
const TINY: BlockWriterOptions = {
  symbolsMemoryBudget: 2000,
  postingsMemoryBudget: 24 * 40,
  mergeFanIn: 2,
  spillBufferSize: 16,
  index: {
    sampleInterval: 3,
    symbolCacheSize: 2,
    symbolTableMemoryMax: 0,
    sectionWindowSize: 32,
    postingsTableBatch: 7,
  },
};

/** Every on-demand path of the reader on a small index. */
const TINY_READER: IndexReaderOptions = {
  windowSize: 64,
  sampleInterval: 3,
  symbolCacheSize: 2,
  symbolTableMemoryMax: 0,
  sectionWindowSize: 32,
};

async function writeBlock(
  parent: string,
  series: FixtureSeries[],
  options: BlockWriterOptions,
): Promise<string> {
  const w = await BlockWriter.create(parent, { ulid: ULID, ...options });
  for (const s of series) await w.addSeries(s.labels, s.chunks);
  return (await w.commit()).dir;
}

Deno.test("BlockWriter with every budget turned down writes the in-memory writer's index", async () => {
  const series = indexFixture();
  const golden = new Uint8Array(gunzipSync(await Deno.readFile(GOLDEN)));
  const variants: [string, BlockWriterOptions][] = [
    ["defaults", {}],
    ["tiny", TINY],
    ["fan-in 3, bigger runs", {
      ...TINY,
      symbolsMemoryBudget: 20_000,
      postingsMemoryBudget: 24 * 500,
      mergeFanIn: 3,
      spillBufferSize: 100,
    }],
  ];
  for (const [what, options] of variants) {
    await withTempDir("promcase-index-bounded-", async (tmp) => {
      const dir = await writeBlock(tmp, series, options);
      assert.deepEqual(await Deno.readFile(`${dir}/index`), golden, what);
      // No temporary file is left behind.
      assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name), [ULID]);
      assert.deepEqual(
        [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
        ["chunks", "index", "meta.json", "tombstones"],
      );
    });
  }
});

Deno.test("IndexReader reading symbols on demand gives back every series, symbol and postings list", async () => {
  const series = indexFixture();
  await withTempDir("promcase-index-bounded-", async (tmp) => {
    const dir = await writeBlock(tmp, series, TINY);
    using whole = await IndexReader.open(`${dir}/index`);
    for (const options of [{}, TINY_READER, { ...TINY_READER, windowSize: 1 << 20 }]) {
      using r = await IndexReader.open(`${dir}/index`, options);
      const got = await Array.fromAsync(r.series());
      assert.deepEqual(got.map((s) => s.labels), series.map((s) => s.labels));
      assert.deepEqual(
        got.map((s) => s.chunks.map((c) => [c.mint, c.maxt])),
        series.map((s) => s.chunks.map((c) => [c.mint, c.maxt])),
      );
      for (const s of got) assert.deepEqual(await r.seriesById(s.id), s);

      const strings = new Set([""]);
      for (const s of series) for (const l of s.labels) strings.add(l.name).add(l.value);
      assert.deepEqual(await Array.fromAsync(r.symbols()), [...strings].sort(compareUtf8));
      for (let i = 0; i < r.numSymbols; i += 7) {
        assert.equal(await r.symbol(i), await whole.symbol(i));
      }
      await assert.rejects(() => r.symbol(r.numSymbols), /unknown symbol reference/);

      // Every label pair's postings are exactly the series carrying it, in ID order.
      const want = new Map<string, number[]>();
      for (const s of got) {
        for (const l of s.labels) {
          const key = JSON.stringify([l.name, l.value]);
          want.set(key, [...want.get(key) ?? [], s.id]);
        }
      }
      const pairs = [...want.keys()].map((k) => JSON.parse(k) as [string, string]).sort((a, b) =>
        compareUtf8(a[0], b[0]) || compareUtf8(a[1], b[1])
      );
      const table = await Array.fromAsync(r.postingsOffsets());
      assert.deepEqual(table.map((p) => [p.name, p.value]), [["", ""], ...pairs]);
      assert.deepEqual([...await r.allPostings()], got.map((s) => s.id));
      for (const [name, value] of pairs) {
        assert.deepEqual(
          [...await r.postings(name, value)],
          want.get(JSON.stringify([name, value])),
          `${name}=${value}`,
        );
      }
      const names = [...new Set(pairs.map((p) => p[0]))];
      assert.deepEqual(await r.labelNames(), names);
      for (const name of names) {
        assert.deepEqual(
          await r.labelValues(name),
          pairs.filter((p) => p[0] === name).map((p) => p[1]),
        );
      }
    }
  });
});

Deno.test("promtool reads a block written with every budget turned down", async () => {
  const series = indexFixture();
  const bin = await findPrometheus("newest");
  await withTempDir("promcase-index-bounded-", async (tmp) => {
    const dir = await writeBlock(tmp, series, TINY);
    const report = await promtoolAnalyze(bin, tmp, ULID);
    assert.match(report, new RegExp(`Series: ${series.length}\\b`));
    const want = series.flatMap((s) =>
      s.chunks.flatMap((c) => c.samples.map((x) => formatFloatLine(s.labels, x.t, x.v)))
    );
    assert.deepEqual(await promtoolDump(bin, dir, [], { block: true }), want);
  });
});

Deno.test("BlockWriter.abort after spilled runs leaves nothing behind", async () => {
  const series = indexFixture();
  await withTempDir("promcase-index-bounded-", async (tmp) => {
    const w = await BlockWriter.create(tmp, { ulid: ULID, ...TINY });
    for (const s of series) await w.addSeries(s.labels, s.chunks);
    assert.ok([...Deno.readDirSync(`${w.tmpDir}/spill`)].length > 2, "runs were spilled");
    await w.abort();
    assert.deepEqual([...Deno.readDirSync(tmp)], []);
  });
});

Deno.test("IndexWriter keeps its temporary files beside the index and removes them", async () => {
  const series = indexFixture();
  await withTempDir("promcase-index-bounded-", async (tmp) => {
    const strings = series.flatMap((s) => s.labels.flatMap((l) => [l.name, l.value]));
    const w = await IndexWriter.create(`${tmp}/index`, strings, TINY.index);
    let ref = 0n;
    for (const s of series) {
      await w.addSeries(
        s.labels,
        s.chunks.map((c) => ({ mint: c.mint, maxt: c.maxt, ref: ref++ })),
      );
    }
    await assert.rejects(
      () => w.addSeriesRefs([0, 1], []),
      /empty label name/,
    );
    await w.close();
    assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name), ["index"]);
    using r = await IndexReader.open(`${tmp}/index`, TINY_READER);
    assert.deepEqual(
      (await Array.fromAsync(r.series())).map((s) => s.labels),
      series.map((s) => s.labels),
    );

    // Symbols given sorted and streamed: out of order is refused, "" is put first.
    const sorted = await IndexWriter.createFromSortedSymbols(
      `${tmp}/sorted`,
      ["a", "b"].map((s) => new TextEncoder().encode(s)),
    );
    await assert.rejects(() => sorted.addSeries([{ name: "a", value: "b" }], []), /addSeriesRefs/);
    await sorted.addSeriesRefs([1, 2], [{ mint: 0n, maxt: 1n, ref: 8n }]);
    // Chunk metas that do not follow each other, within a series or from the one before.
    for (
      const [chunks, message] of [
        [[{ mint: 0n, maxt: 1n, ref: 7n }], /unsorted chunk reference 7 after 8/],
        [[{ mint: 0n, maxt: 1n, ref: 9n }, { mint: 2n, maxt: 3n, ref: 8n }], /unsorted chunk/],
        [[{ mint: 0n, maxt: 5n, ref: 9n }, { mint: 5n, maxt: 6n, ref: 10n }], /not above/],
        [[{ mint: 4n, maxt: 3n, ref: 9n }], /below mint/],
      ] as const
    ) {
      await assert.rejects(() => sorted.addSeriesRefs([1, 2], chunks), message);
    }
    await sorted.close();
    using s = await IndexReader.open(`${tmp}/sorted`);
    assert.deepEqual(await Array.fromAsync(s.symbols()), ["", "a", "b"]);
    assert.deepEqual((await Array.fromAsync(s.series())).map((x) => x.labels), [
      [{ name: "a", value: "b" }],
    ]);
    await assert.rejects(
      () =>
        IndexWriter.createFromSortedSymbols(
          `${tmp}/unsorted`,
          ["b", "a"].map((x) => new TextEncoder().encode(x)),
        ),
      /out of order/,
    );
    assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name).sort(), [
      "index",
      "sorted",
      "unsorted",
    ]);
  });
});

Deno.test("IndexReader finds damage in the symbol table and in the postings offset table", async () => {
  const series = indexFixture();
  await withTempDir("promcase-index-bounded-", async (tmp) => {
    const dir = await writeBlock(tmp, series, {});
    const bytes = await Deno.readFile(`${dir}/index`);
    using r = await IndexReader.open(`${dir}/index`);
    const path = `${tmp}/damaged`;

    const symbols = bytes.slice();
    symbols[r.toc.symbols + 100] ^= 0x01;
    await Deno.writeFile(path, symbols);
    for (const options of [{}, TINY_READER]) {
      await assert.rejects(() => IndexReader.open(path, options), /symbol table.*CRC32C mismatch/);
    }

    // The postings offset table is read on first use.
    const table = bytes.slice();
    table[r.toc.postingsTable + 100] ^= 0x01;
    await Deno.writeFile(path, table);
    using damaged = await IndexReader.open(path, TINY_READER);
    assert.equal((await Array.fromAsync(damaged.series())).length, series.length);
    await assert.rejects(() => damaged.postings("__name__", "up"), FormatError);
    // Streamed once, without the table's samples: the damage is found at its end.
    using streamed = await IndexReader.open(path, TINY_READER);
    await assert.rejects(() => Array.fromAsync(streamed.postingsOffsets()), /CRC32C mismatch/);

    // A CRC32C over the table is what the writer wrote.
    const len = new DataView(bytes.buffer).getUint32(r.toc.postingsTable);
    const body = bytes.subarray(r.toc.postingsTable + 4, r.toc.postingsTable + 4 + len);
    assert.equal(
      crc32c(body),
      new DataView(bytes.buffer).getUint32(r.toc.postingsTable + 4 + len),
    );
  });
});
