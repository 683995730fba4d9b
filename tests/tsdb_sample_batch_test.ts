import assert from "node:assert/strict";
import { decodeRecord } from "../mod/tsdb/record.ts";
import { readSamplesV1, SampleBatch, samplesV1Count } from "../mod/tsdb/sample_batch.ts";
import { listSegments, WalReader } from "../mod/tsdb/wlog.ts";

const WAL_FIXTURES = new URL("./testdata/wal/", import.meta.url).pathname;

// Every sample of a record read through batches of `capacity`, resumed where each stopped.
function readAll(bytes: Uint8Array, capacity: number): [bigint, bigint, bigint][] {
  const batch = new SampleBatch(capacity);
  const out: [bigint, bigint, bigint][] = [];
  for (let at = 0; at < bytes.length;) {
    const next = readSamplesV1(bytes, at, batch, 7);
    assert.ok(next > at || batch.length === 0, "no progress");
    assert.ok(batch.length <= capacity);
    for (let i = 0; i < batch.length; i++) {
      assert.equal(batch.kind[i], 7);
      const v = (BigInt(batch.vh[i] >>> 0) << 32n) | BigInt(batch.vl[i] >>> 0);
      out.push([BigInt(batch.ref[i]), BigInt(batch.t[i]), v]);
    }
    batch.length = 0;
    at = next;
  }
  return out;
}

Deno.test("samples records read through batches of any size give exactly what decodeRecord gives", async () => {
  const dirs = [
    ...["zstd", "snappy", "none"].map((n) => `${WAL_FIXTURES}${n}/wal`),
    new URL("./testdata/datadir/wal", import.meta.url).pathname,
  ];
  let records = 0;
  let resumed = 0;
  for (const dir of dirs) {
    for await (const rec of new WalReader(await listSegments(dir))) {
      const d = decodeRecord(rec.bytes);
      const count = samplesV1Count(rec.bytes);
      if (d.type !== "samples" || d.code !== 2) {
        assert.equal(count, -1);
        continue;
      }
      const want = d.samples.map((s) => [s.ref, s.t, BigInt.asUintN(64, s.v)]);
      assert.equal(count, want.length);
      // 1 and 3 stop mid-record (every resume path), 4096 takes a record whole.
      for (const capacity of [1, 3, 4096]) {
        assert.deepEqual(readAll(rec.bytes, capacity), want, `capacity ${capacity}`);
      }
      if (want.length > 3) resumed++;
      records++;
    }
  }
  assert.ok(records > 10 && resumed > 10, `${records} samples records, ${resumed} resumed`);
});

Deno.test("a samples record that does not decode whole, or needs bigints, is refused", () => {
  const header = (refHi: number, tHi: number) => {
    const b = new Uint8Array(17);
    const v = new DataView(b.buffer);
    b[0] = 2;
    v.setUint32(1, refHi);
    v.setUint32(5, 1);
    v.setInt32(9, tHi);
    v.setUint32(13, 0);
    return b;
  };
  const entry = [2, 4, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]; // dref 1, dt 2, value 1.0
  const join = (a: Uint8Array, rest: number[]) => new Uint8Array([...a, ...rest]);
  assert.equal(samplesV1Count(join(header(0, 0), entry)), 1);
  assert.equal(samplesV1Count(join(header(0, 0), [...entry, ...entry])), 2);
  assert.equal(samplesV1Count(new Uint8Array([2])), 0);
  // Truncated value, unterminated varint, a varint of 8 bytes, bigint-sized base ref and time.
  assert.equal(samplesV1Count(join(header(0, 0), entry.slice(0, 9))), -1);
  assert.equal(samplesV1Count(join(header(0, 0), [0x80, 0x80])), -1);
  assert.equal(
    samplesV1Count(join(header(0, 0), [...Array(7).fill(0x80), 1, 0, ...entry.slice(2)])),
    -1,
  );
  assert.equal(samplesV1Count(join(header(0x200000, 0), entry)), -1);
  assert.equal(samplesV1Count(join(header(0, -0x200001), entry)), -1);
  assert.equal(samplesV1Count(new Uint8Array([1, 0])), -1);
  // What a refused record's base would be read as: an exact value, not a rounded one.
  const batch = new SampleBatch(4);
  readSamplesV1(join(header(0x1fffff, 0x1fffff), entry), 0, batch, 1);
  assert.equal(BigInt(batch.ref[0]), (0x1fffffn << 32n) + 2n);
  assert.equal(BigInt(batch.t[0]), (0x1fffffn << 32n) + 2n);
  assert.equal(batch.vh[0], 0x3ff00000);
});
