import assert from "node:assert/strict";
import { withTempDir } from "./_files.ts";
import {
  ChunkReader,
  chunkRef,
  ChunkWriter,
  SEGMENT_HEADER_SIZE,
  unpackChunkRef,
} from "../mod/tsdb/chunks.ts";
import { encodeXor, Encoding } from "../mod/tsdb/chunkenc/mod.ts";
import { FormatError } from "../mod/tsdb/encoding.ts";
import { IndexReader } from "../mod/tsdb/index.ts";

const DATA = new URL("./testdata/", import.meta.url).pathname;

async function fixtureBlocks(): Promise<string[]> {
  const out: string[] = [];
  for (const dir of [`${DATA}datadir`, ...["backfill", "native"].map((f) => `${DATA}tsdb/${f}`)]) {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory && /^[0-9A-Z]{26}$/.test(e.name)) out.push(`${dir}/${e.name}`);
    }
  }
  return out.sort();
}

/** The chunks of a block in index order: [meta ref, mint, maxt]. */
async function indexChunks(block: string): Promise<{ ref: bigint }[]> {
  const index = await IndexReader.open(`${block}/index`);
  const out: { ref: bigint }[] = [];
  try {
    for await (const s of index.series()) out.push(...s.chunks);
  } finally {
    index.close();
  }
  return out;
}

Deno.test("chunk refs pack the segment index above the offset", () => {
  assert.equal(chunkRef(0, 8), 8n);
  assert.equal(chunkRef(2, 0x1234), (2n << 32n) | 0x1234n);
  assert.deepEqual(unpackChunkRef((7n << 32n) | 0xfffffffen), [7, 0xfffffffe]);
});

Deno.test("ChunkReader reads every chunk of real blocks and writing them back gives the same file", async () => {
  let total = 0;
  for (const block of await fixtureBlocks()) {
    const metas = await indexChunks(block);
    const reader = await ChunkReader.open(`${block}/chunks`, { windowSize: 512 });
    try {
      assert.deepEqual(reader.segmentNames, ["000001"]);
      await withTempDir("promcase-tsdb-chunks-", async (tmp) => {
        const writer = await ChunkWriter.create(`${tmp}/chunks`);
        for (const m of metas) {
          const c = await reader.read(m.ref);
          assert.ok(c.encoding >= Encoding.xor && c.encoding <= Encoding.floatHistogram);
          // Same order and sizes as Prometheus: the same refs come back.
          assert.equal(await writer.write(c.encoding, c.data), m.ref);
          total++;
        }
        await writer.close();
        assert.deepEqual(
          await Deno.readFile(`${tmp}/chunks/000001`),
          await Deno.readFile(`${block}/chunks/000001`),
          `${block}: rewritten segment differs`,
        );
      });
    } finally {
      reader.close();
    }
  }
  assert.ok(total > 150);
});

Deno.test("ChunkReader detects CRC errors, bad refs and bad headers", async () => {
  const [block] = await fixtureBlocks();
  const [first] = await indexChunks(block);
  await withTempDir("promcase-tsdb-chunks-", async (tmp) => {
    await Deno.mkdir(`${tmp}/chunks`);
    const bytes = await Deno.readFile(`${block}/chunks/000001`);
    bytes[Number(first.ref) + 5] ^= 0x01; // inside the first chunk's data
    await Deno.writeFile(`${tmp}/chunks/000001`, bytes);
    using reader = await ChunkReader.open(`${tmp}/chunks`);
    await assert.rejects(() => reader.read(first.ref), /CRC32C mismatch/);
    await assert.rejects(() => reader.read(chunkRef(1, 8)), /segment index 1 out of range/);
    await assert.rejects(() => reader.read(chunkRef(0, bytes.length + 10)), FormatError);
    // Reads after a failure still work (the read queue is not poisoned).
    await assert.rejects(() => reader.read(first.ref), /CRC32C mismatch/);

    bytes[0] ^= 0xff;
    await Deno.writeFile(`${tmp}/chunks/000001`, bytes);
    await assert.rejects(() => ChunkReader.open(`${tmp}/chunks`), /bad magic/);
  });
});

Deno.test("ChunkWriter cuts segments and the reader maps refs to name-sorted files", async () => {
  await withTempDir("promcase-tsdb-chunks-", async (tmp) => {
    const chunks = Array.from({ length: 40 }, (_, i) => {
      const t = Array.from({ length: 10 + i }, (_, k) => BigInt(k * 1000 + i));
      return encodeXor(t, t.map((x) => x * 3n));
    });
    // Each segment is handed over once it is complete: what it holds then is what it ends with.
    // The writer waits for what the hook returns: never two hand-overs under way at once.
    const handed: { name: string; bytes: Uint8Array }[] = [];
    let underWay = 0;
    const writer = await ChunkWriter.create(`${tmp}/chunks`, {
      segmentSize: 1024,
      onSegment: async (name) => {
        assert.equal(underWay++, 0, `${name} handed over before the one before was taken`);
        handed.push({ name, bytes: Deno.readFileSync(`${tmp}/chunks/${name}`) });
        await new Promise((resolve) => setTimeout(resolve, 5));
        underWay--;
      },
    });
    const refs: bigint[] = [];
    for (const c of chunks) refs.push(await writer.write(Encoding.xor, c));
    // A chunk larger than a whole segment still gets written, alone in a new segment.
    const big = new Uint8Array(3000).fill(7);
    big[0] = 0;
    big[1] = 0;
    refs.push(await writer.write(Encoding.xor, big));
    await writer.close();

    const names: string[] = [];
    for await (const e of Deno.readDir(`${tmp}/chunks`)) names.push(e.name);
    names.sort();
    assert.equal(names.length, writer.segments);
    assert.ok(names.length >= 4, `${names.length} segments`);
    assert.deepEqual(names, names.map((_, i) => String(i + 1).padStart(6, "0")));
    assert.deepEqual(handed.map((h) => h.name), names);
    for (const h of handed) {
      assert.deepEqual(h.bytes, await Deno.readFile(`${tmp}/chunks/${h.name}`), h.name);
    }
    for (const [i, name] of names.entries()) {
      const size = (await Deno.stat(`${tmp}/chunks/${name}`)).size;
      if (i < names.length - 1) assert.ok(size <= 1024, `${name} is ${size} bytes`);
    }
    // Refs ascend, and each segment's first chunk sits right after the header.
    for (let i = 1; i < refs.length; i++) assert.ok(refs[i] > refs[i - 1]);
    const firstOffsets = refs.map(unpackChunkRef).filter(([, off]) => off === SEGMENT_HEADER_SIZE);
    assert.equal(firstOffsets.length, names.length);

    // Renaming the files keeps their order: segment index = position in the sorted list.
    for (const [i, name] of names.entries()) {
      await Deno.rename(
        `${tmp}/chunks/${name}`,
        `${tmp}/chunks/${String(10 + 3 * i).padStart(6, "0")}`,
      );
    }
    await Deno.writeTextFile(`${tmp}/chunks/README`, "not a segment");
    using reader = await ChunkReader.open(`${tmp}/chunks`);
    for (const [i, ref] of refs.entries()) {
      const c = await reader.read(ref);
      assert.deepEqual(c.data, i < chunks.length ? chunks[i] : big);
    }
    // Concurrent reads through one reader are serialised correctly.
    const all = await Promise.all(refs.map((r) => reader.read(r)));
    assert.deepEqual(all.map((c) => c.data.length), [...chunks.map((c) => c.length), big.length]);
  });
});
