import assert from "node:assert/strict";
import { withTempDir } from "./_files.ts";
import { crc32c } from "../mod/tsdb/crc32c.ts";
import { Encbuf, FormatError } from "../mod/tsdb/encoding.ts";
import {
  compareLabels,
  INDEX_TOC_LEN,
  IndexReader,
  type IndexSeries,
  IndexWriter,
  type Label,
} from "../mod/tsdb/index.ts";
import { parseBlockMeta } from "../mod/tsdb/meta.ts";

const DATA = new URL("./testdata/", import.meta.url).pathname;

async function fixtureBlocks(): Promise<string[]> {
  const out: string[] = [];
  const dirs = [
    `${DATA}datadir`,
    ...["backfill", "tombstoned", "native"].map((f) => `${DATA}tsdb/${f}`),
  ];
  for (const dir of dirs) {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory && /^[0-9A-Z]{26}$/.test(e.name)) out.push(`${dir}/${e.name}`);
    }
  }
  return out.sort();
}

async function allSeries(r: IndexReader): Promise<IndexSeries[]> {
  const out: IndexSeries[] = [];
  for await (const s of r.series()) out.push(s);
  return out;
}

/** Reader options that take every on-demand path on small indexes. */
const TINY_READER = {
  windowSize: 7,
  sampleInterval: 2,
  symbolCacheSize: 1,
  symbolTableMemoryMax: 0,
  sectionWindowSize: 16,
};

const L = (...pairs: string[]): Label[] =>
  pairs.reduce<Label[]>(
    (acc, x, i) => (i % 2 ? acc : [...acc, { name: x, value: pairs[i + 1] }]),
    [],
  );

Deno.test("IndexReader reads real indexes: series, chunk metas and postings agree with meta.json", async () => {
  for (const block of await fixtureBlocks()) {
    const meta = parseBlockMeta(await Deno.readTextFile(`${block}/meta.json`));
    using r = await IndexReader.open(`${block}/index`);
    assert.equal(r.version, 2);
    const series = await allSeries(r);
    assert.equal(series.length, meta.stats.numSeries, block);
    assert.equal(series.reduce((a, s) => a + s.chunks.length, 0), meta.stats.numChunks, block);
    for (let i = 1; i < series.length; i++) {
      assert.ok(compareLabels(series[i - 1].labels, series[i].labels) < 0, "series sorted");
    }
    for (const s of series) {
      for (const c of s.chunks) {
        assert.ok(c.mint >= meta.minTime && c.maxt < meta.maxTime, "chunk inside the block");
      }
    }
    // The all-postings list holds every series ID, in order.
    assert.deepEqual([...await r.allPostings()], series.map((s) => s.id));
    // Every label pair's postings list is exactly the series carrying it.
    const table = await Array.fromAsync(r.postingsOffsets());
    assert.deepEqual(table[0], { name: "", value: "", offset: table[0].offset });
    for (const p of table.slice(1)) {
      const want = series.filter((s) =>
        s.labels.some((l) => l.name === p.name && l.value === p.value)
      )
        .map((s) => s.id);
      assert.deepEqual([...await r.postings(p.name, p.value)], want, `${p.name}=${p.value}`);
    }
    assert.deepEqual(
      await r.labelNames(),
      [...new Set(series.flatMap((s) => s.labels.map((l) => l.name)))].sort(),
    );
    assert.equal((await r.postings("no_such", "label")).length, 0);
    // Random access by ID, and a tiny window, give the same series.
    for (const s of series) assert.deepEqual(await r.seriesById(s.id), s);
    using small = await IndexReader.open(`${block}/index`, { windowSize: 7 });
    assert.deepEqual(await allSeries(small), series);
    // Symbols read from the file through a tiny window, every other position sampled, a
    // one-entry cache: the same series, symbols and postings.
    using sparse = await IndexReader.open(`${block}/index`, TINY_READER);
    assert.deepEqual(await allSeries(sparse), series);
    for (const s of series) assert.deepEqual(await sparse.seriesById(s.id), s);
    assert.deepEqual(await Array.fromAsync(sparse.symbols()), await Array.fromAsync(r.symbols()));
    // Streamed (no lookup has loaded the sparse reader's table yet) as loaded.
    assert.deepEqual(await Array.fromAsync(sparse.postingsOffsets()), table);
    for (const p of table) {
      assert.deepEqual(await sparse.postings(p.name, p.value), await r.postings(p.name, p.value));
      assert.equal(
        await sparse.postingsLength(p.offset),
        (await r.postings(p.name, p.value)).length,
      );
      // A value between two existing ones has no postings.
      assert.equal((await sparse.postings(p.name, `${p.value}\u0000`)).length, 0);
    }
    for (const name of await r.labelNames()) {
      const values = table.filter((p) => p.name === name).map((p) => p.value);
      assert.deepEqual(await sparse.labelValues(name), values);
      assert.deepEqual(await r.labelValues(name), values);
    }
    assert.deepEqual(await sparse.labelValues("no_such"), []);
  }
});

Deno.test("IndexWriter rewrites real indexes: symbols and series bytes identical, postings equal", async () => {
  for (const block of await fixtureBlocks()) {
    using orig = await IndexReader.open(`${block}/index`);
    const series = await allSeries(orig);
    await withTempDir("promcase-tsdb-index-", async (tmp) => {
      const w = await IndexWriter.create(
        `${tmp}/index`,
        series.flatMap((s) => s.labels.flatMap((l) => [l.name, l.value])),
      );
      for (const s of series) assert.equal(await w.addSeries(s.labels, s.chunks), s.id);
      await w.close();

      const a = await Deno.readFile(`${block}/index`);
      const b = await Deno.readFile(`${tmp}/index`);
      using ours = await IndexReader.open(`${tmp}/index`);
      // Header, symbol table and series section: the same bytes (the original's label indices
      // start right after its series).
      assert.equal(ours.toc.series, orig.toc.series);
      assert.deepEqual(b.subarray(0, ours.toc.labelIndices), a.subarray(0, orig.toc.labelIndices));
      // No legacy sections: their TOC entries point at postings and the postings offset table.
      assert.equal(ours.toc.labelIndices, ours.toc.postings);
      assert.equal(ours.toc.labelIndicesTable, ours.toc.postingsTable);
      assert.deepEqual(
        await Array.fromAsync(ours.symbols()),
        await Array.fromAsync(orig.symbols()),
      );
      assert.deepEqual(await allSeries(ours), series);
      const ourTable = await Array.fromAsync(ours.postingsOffsets());
      const origTable = await Array.fromAsync(orig.postingsOffsets());
      assert.deepEqual(
        ourTable.map((p) => [p.name, p.value]),
        origTable.map((p) => [p.name, p.value]),
      );
      for (const p of origTable) {
        assert.deepEqual(
          await ours.postings(p.name, p.value),
          await orig.postings(p.name, p.value),
        );
        // Each postings list is byte-identical too (4-byte aligned, len, count, IDs, CRC).
        const q = ourTable.find((x) => x.name === p.name && x.value === p.value)!;
        assert.equal(q.offset % 4, 0);
        const len = new DataView(a.buffer, p.offset, 4).getUint32(0);
        assert.deepEqual(
          b.subarray(q.offset, q.offset + len + 8),
          a.subarray(p.offset, p.offset + len + 8),
        );
      }
    });
  }
});

Deno.test("IndexWriter sorts symbols and checks series order by UTF-8 bytes", async () => {
  await withTempDir("promcase-tsdb-index-", async (tmp) => {
    // U+FF5E sorts before U+1F600 by UTF-8 bytes, after it by UTF-16 code units.
    const series = [
      L("__name__", "m", "x", "\uff5e"),
      L("__name__", "m", "x", "\u{1f600}"),
      L("__name__", "m", "x", "\u{1f600}", "y", "1"),
      L("__name__", "n"),
    ];
    const w = await IndexWriter.create(
      `${tmp}/index`,
      series.flat().flatMap((l) => [l.name, l.value]),
    );
    let ref = 8n;
    for (const s of series) {
      await w.addSeries(s, [{ mint: -5n, maxt: 10n, ref }, {
        mint: 11n,
        maxt: 2n ** 62n,
        ref: ref + 100n,
      }]);
      ref += 200n;
    }
    // A prefix of the first series sorts before it.
    await assert.rejects(() => w.addSeries(L("__name__", "m"), []), /out-of-order series/);
    await w.close();
    using r = await IndexReader.open(`${tmp}/index`);
    assert.deepEqual(await Array.fromAsync(r.symbols()), [
      "",
      "1",
      "__name__",
      "m",
      "n",
      "x",
      "y",
      "\uff5e",
      "\u{1f600}",
    ]);
    const got = await allSeries(r);
    assert.deepEqual(got.map((s) => s.labels), series);
    assert.deepEqual(got[3].chunks, [
      { mint: -5n, maxt: 10n, ref: 608n },
      { mint: 11n, maxt: 2n ** 62n, ref: 708n },
    ]);
    assert.deepEqual(await r.labelValues("x"), ["\uff5e", "\u{1f600}"]);
    assert.deepEqual([...await r.postings("x", "\u{1f600}")], [got[1].id, got[2].id]);
  });
  await withTempDir("promcase-tsdb-index-", async (tmp) => {
    const w = await IndexWriter.create(`${tmp}/index`, ["a", "b", "__name__"]);
    await assert.rejects(() => w.addSeries(L("b", "a", "a", "b"), []), /not sorted/);
    await assert.rejects(() => w.addSeries(L("a", "zzz"), []), /symbol "zzz" missing/);
    await assert.rejects(
      () => w.addSeries(L("a", "b"), [{ mint: 5n, maxt: 4n, ref: 8n }]),
      /maxt 4 below mint 5/,
    );
    await assert.rejects(
      () =>
        w.addSeries(L("a", "b"), [{ mint: 1n, maxt: 4n, ref: 8n }, {
          mint: 4n,
          maxt: 6n,
          ref: 9n,
        }]),
      /not above previous chunk maxt/,
    );
    await w.addSeries(L("a", "b"), [{ mint: 1n, maxt: 4n, ref: 80n }]);
    await assert.rejects(
      () => w.addSeries(L("b", "a"), [{ mint: 1n, maxt: 4n, ref: 8n }]),
      /unsorted chunk reference/,
    );
    await w.close();
  });
});

Deno.test("IndexReader accepts the v3 header byte and rejects damage", async () => {
  const [block] = await fixtureBlocks();
  const bytes = await Deno.readFile(`${block}/index`);
  await withTempDir("promcase-tsdb-index-", async (tmp) => {
    const path = `${tmp}/index`;
    const v3 = bytes.slice();
    v3[4] = 3;
    await Deno.writeFile(path, v3);
    {
      using r = await IndexReader.open(path);
      assert.equal(r.version, 3);
      assert.ok((await allSeries(r)).length > 0);
    }
    const bad = bytes.slice();
    bad[4] = 4;
    await Deno.writeFile(path, bad);
    await assert.rejects(() => IndexReader.open(path), /unknown format version 4/);

    const badToc = bytes.slice();
    badToc[badToc.length - INDEX_TOC_LEN + 7] ^= 1;
    await Deno.writeFile(path, badToc);
    await assert.rejects(() => IndexReader.open(path), /TOC CRC32C mismatch/);

    // Damage inside a series entry: found while iterating.
    using good = await IndexReader.open(`${block}/index`);
    const badSeries = bytes.slice();
    badSeries[good.toc.series + 20] ^= 0x40;
    await Deno.writeFile(path, badSeries);
    using r = await IndexReader.open(path);
    await assert.rejects(() => allSeries(r), FormatError);

    // The TOC CRC covers the 6 offsets.
    const toc = bytes.subarray(bytes.length - INDEX_TOC_LEN);
    assert.equal(
      crc32c(toc.subarray(0, 48)),
      new DataView(toc.buffer, toc.byteOffset + 48).getUint32(0),
    );
  });
});

Deno.test("IndexReader reads the v1 layout: offsets as symbol refs and series IDs, unsorted table", async () => {
  // A hand-made v1 index (Prometheus 2.0/2.1): two series, no alignment.
  const e = new Encbuf();
  e.be32(0xbaaad700).byte(1);
  const symbolsAt = e.length;
  const syms = ["__name__", "a", "b", "up"];
  const body = new Encbuf().be32(syms.length);
  const symRef = new Map<string, number>();
  for (const s of syms) {
    symRef.set(s, symbolsAt + 4 + body.length);
    body.uvarintString(s);
  }
  e.be32(body.length).bytes(body.get()).be32(crc32c(body.get()));
  const seriesAt = e.length;
  const ids: number[] = [];
  for (const [v, ref] of [["a", 8n], ["b", 300n]] as const) {
    const s = new Encbuf().uvarint(1).uvarint(symRef.get("__name__")!).uvarint(symRef.get(v)!);
    s.uvarint(1).varint(1000n).uvarint(500n).uvarint(ref);
    ids.push(e.length);
    e.uvarint(s.length).bytes(s.get()).be32(crc32c(s.get()));
  }
  const postingsAt = e.length;
  const lists: [string, string, number[]][] = [["", "", ids], ["__name__", "b", [ids[1]]], [
    "__name__",
    "a",
    [ids[0]],
  ]];
  const offsets: number[] = [];
  for (const [, , list] of lists) {
    offsets.push(e.length);
    const p = new Encbuf().be32(list.length);
    for (const id of list) p.be32(id);
    e.be32(p.length).bytes(p.get()).be32(crc32c(p.get()));
  }
  const tableAt = e.length;
  const t = new Encbuf().be32(lists.length);
  lists.forEach(([n, v], i) => t.uvarint(2).uvarintString(n).uvarintString(v).uvarint(offsets[i]));
  e.be32(t.length).bytes(t.get()).be32(crc32c(t.get()));
  const toc = new Encbuf();
  for (const v of [symbolsAt, seriesAt, 0, 0, postingsAt, tableAt]) toc.be64(BigInt(v));
  e.bytes(toc.get()).be32(crc32c(toc.get()));

  await withTempDir("promcase-tsdb-index-", async (tmp) => {
    await Deno.writeFile(`${tmp}/index`, e.get());
    using r = await IndexReader.open(`${tmp}/index`);
    assert.equal(r.version, 1);
    const series = await allSeries(r);
    assert.deepEqual(series.map((s) => s.id), ids);
    assert.deepEqual(series.map((s) => s.labels), [L("__name__", "a"), L("__name__", "b")]);
    assert.deepEqual(series[1].chunks, [{ mint: 1000n, maxt: 1500n, ref: 300n }]);
    assert.deepEqual((await Array.fromAsync(r.postingsOffsets())).map((p) => p.value), [
      "",
      "a",
      "b",
    ]);
    assert.deepEqual([...await r.postings("__name__", "b")], [ids[1]]);
    assert.deepEqual(await r.seriesById(ids[1]), series[1]);
    assert.equal(await r.symbol(symRef.get("up")!), "up");
    // Symbols by offset, walked from a sample: a reference between two symbols is refused.
    using sparse = await IndexReader.open(`${tmp}/index`, TINY_READER);
    assert.deepEqual(await allSeries(sparse), series);
    for (const [s, ref] of symRef) assert.equal(await sparse.symbol(ref), s);
    await assert.rejects(() => sparse.symbol(symRef.get("up")! + 1), /unknown symbol reference/);
    await assert.rejects(() => r.symbol(symRef.get("a")! + 1), /unknown symbol reference/);
    assert.deepEqual(await sparse.labelValues("__name__"), ["a", "b"]);
  });
});
