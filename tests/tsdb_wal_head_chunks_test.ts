// chunks_head/ of the real 2.42 data dir and of the Prometheus 3.5.3 zstd fixture, checked
// against the WAL that was written alongside, and damaged copies of them.
import assert from "node:assert/strict";
import { FormatError } from "../mod/tsdb/encoding.ts";
import {
  HEAD_CHUNKS_MAGIC,
  type HeadChunk,
  HeadChunkCorruptionError,
  headChunkRef,
  listHeadChunkFiles,
  readHeadChunks,
  unpackHeadChunkRef,
} from "../mod/tsdb/head_chunks.ts";
import { decodeRecord } from "../mod/tsdb/record.ts";
import { WalReader, walReplaySegments } from "../mod/tsdb/wlog.ts";

const DATADIR = new URL("./testdata/datadir/", import.meta.url).pathname;
const FIXTURE = new URL("./testdata/wal/zstd/", import.meta.url).pathname;

async function collect(dir: string): Promise<HeadChunk[]> {
  const out: HeadChunk[] = [];
  for await (const c of readHeadChunks(dir)) out.push(c);
  return out;
}

/** Series labels and the timestamps of every sample (float or histogram) per series ref. */
async function walSamples(walDir: string) {
  const series = new Map<bigint, string>();
  const times = new Map<bigint, bigint[]>();
  const { segments } = await walReplaySegments(walDir);
  for await (const rec of new WalReader(segments)) {
    const d = decodeRecord(rec.bytes);
    if (d.type === "series") {
      for (const s of d.series) series.set(s.ref, s.labels.map((l) => l.value).join(","));
    }
    const entries = d.type === "samples"
      ? d.samples
      : d.type === "histograms" || d.type === "floatHistograms"
      ? d.histograms
      : [];
    for (const s of entries) {
      const list = times.get(s.ref) ?? [];
      list.push(s.t);
      times.set(s.ref, list);
    }
  }
  return { series, times };
}

function checkEntries(chunks: HeadChunk[]): void {
  let prev: HeadChunk | undefined;
  for (const c of chunks) {
    assert.equal(c.ref, headChunkRef(c.file, c.offset));
    assert.deepEqual(unpackHeadChunkRef(c.ref), { file: c.file, offset: c.offset });
    assert.ok(c.encoding >= 1 && c.encoding <= 3, `encoding ${c.encoding}`);
    assert.equal(c.ooo, false);
    assert.ok(c.maxt >= c.mint);
    assert.ok(c.numSamples >= 1);
    if (prev?.file === c.file) assert.ok(c.offset > prev.offset);
    else assert.equal(c.offset, 8, "the first entry follows the 8-byte header");
    prev = c;
  }
}

Deno.test("datadir chunks_head: 50 XOR chunks of checkpoint series, CRCs checked", async () => {
  const files = await listHeadChunkFiles(`${DATADIR}chunks_head`);
  assert.deepEqual(files.map((f) => f.index), [3, 4]);
  const chunks = await collect(`${DATADIR}chunks_head`);
  checkEntries(chunks);
  assert.equal(chunks.length, 50);
  assert.ok(chunks.every((c) => c.encoding === 1));
  assert.deepEqual([...new Set(chunks.map((c) => c.file))], [3, 4]);
  const { series, times } = await walSamples(`${DATADIR}wal`);
  // README: m-mapped head chunks start at 1795612380485; the WAL ends at 1795612506693.
  assert.equal(chunks.reduce((m, c) => (c.mint < m ? c.mint : m), chunks[0].mint), 1795612380485n);
  for (const c of chunks) {
    assert.ok(series.has(c.seriesRef), `chunk of unknown series ${c.seriesRef}`);
    assert.ok(c.maxt <= 1795612506693n);
    // Each chunk holds exactly the WAL samples of its series in [mint, maxt].
    const n = (times.get(c.seriesRef) ?? []).filter((t) => t >= c.mint && t <= c.maxt).length;
    assert.equal(n, c.numSamples, `samples of series ${c.seriesRef} in ${c.mint}..${c.maxt}`);
  }
});

Deno.test("3.5.3 chunks_head: XOR, histogram and float histogram chunks match the WAL", async () => {
  const manifest = JSON.parse(await Deno.readTextFile(`${FIXTURE}manifest.json`));
  const chunks = await collect(`${FIXTURE}chunks_head`);
  checkEntries(chunks);
  assert.ok(chunks.length > 100);
  assert.deepEqual([...new Set(chunks.map((c) => c.encoding))].sort(), [1, 2, 3]);
  const { series, times } = await walSamples(`${FIXTURE}wal`);
  // With a 1-minute chunk range every series' chunk was cut at the first full minute of the run.
  const boundary = BigInt((Math.floor(manifest.startMs / 60_000) + 1) * 60_000);
  for (const c of chunks) {
    assert.ok(series.has(c.seriesRef), `chunk of unknown series ${c.seriesRef}`);
    assert.ok(c.mint >= BigInt(manifest.startMs) && c.maxt < boundary);
    const n = (times.get(c.seriesRef) ?? []).filter((t) => t >= c.mint && t <= c.maxt).length;
    assert.equal(n, c.numSamples, `samples of ${series.get(c.seriesRef)} in ${c.mint}..${c.maxt}`);
  }
});

Deno.test("chunks_head: damage is reported with file and entry offset", async () => {
  const dir = await Deno.makeTempDir({ prefix: "promcase-head-chunks-test-" });
  try {
    const src = `${DATADIR}chunks_head/000003`;
    const chunks = (await collect(`${DATADIR}chunks_head`)).filter((c) => c.file === 3);
    const victim = chunks[4];
    const original = await Deno.readFile(src);
    const expectError = async (bytes: Uint8Array, message: RegExp, offset: number) => {
      await Deno.writeFile(`${dir}/000003`, bytes);
      await assert.rejects(
        () => collect(dir),
        (e: unknown) => {
          assert.ok(e instanceof HeadChunkCorruptionError, String(e));
          assert.match(e.message, message);
          assert.equal(e.file, 3);
          assert.equal(e.offset, offset);
          return true;
        },
      );
    };
    // A flipped data byte, a flipped maxt byte.
    let b = original.slice();
    b[victim.offset + 8 + 8 + 8 + 1 + 1 + 3] ^= 0x10;
    await expectError(b, /checksum mismatch/, victim.offset);
    b = original.slice();
    b[victim.offset + 20] ^= 1;
    await expectError(b, /checksum mismatch/, victim.offset);
    // Bad magic, bad version.
    b = original.slice();
    new DataView(b.buffer).setUint32(0, HEAD_CHUNKS_MAGIC ^ 1);
    await Deno.writeFile(`${dir}/000004`, original); // not the last file: magic is checked
    await expectError(b, /invalid magic/, 0);
    b = original.slice();
    b[4] = 2;
    await expectError(b, /version 2/, 4);
    await Deno.remove(`${dir}/000004`);
    // Cut inside the last entry: not enough bytes for its data.
    const last = chunks.at(-1)!;
    const lenBytes = last.data.length < 128 ? 1 : last.data.length < 16384 ? 2 : 3;
    const end = last.offset + 25 + lenBytes + last.data.length + 4;
    await expectError(original.slice(0, end - 3), /runs past the end/, last.offset);
    // Garbage in a tail too short for an entry.
    b = original.slice(0, end + 20);
    b[end + 19] = 1;
    await expectError(b, /too few for an entry but not zero/, end);
    // Ending right after an entry, or with a short zero tail, is fine.
    for (const size of [end, end + 20]) {
      await Deno.writeFile(`${dir}/000003`, original.slice(0, size));
      assert.equal((await collect(dir)).length, chunks.length);
    }
    // An empty last file, as a crash right after cutting it leaves, reads as empty.
    await Deno.writeFile(`${dir}/000004`, new Uint8Array(0));
    assert.equal((await collect(dir)).length, chunks.length);
    // Gaps in the file numbers.
    await Deno.rename(`${dir}/000004`, `${dir}/000006`);
    await assert.rejects(() => listHeadChunkFiles(dir), FormatError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
