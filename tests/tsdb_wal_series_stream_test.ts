// Series records parsed as their pages come (WalReader's `seriesRecords`), so that a scrape's
// record of a million new series is never held whole: against forEachSeries on the whole record,
// uncompressed and snappy, with damage inside such a record and a WAL torn inside one.
import assert from "node:assert/strict";
import { forEachSeries, RecordType } from "../mod/tsdb/record.ts";
import { CorruptionError, listSegments, WalReader, WalSegmentWriter } from "../mod/tsdb/wlog.ts";
import { longSeries, samplesV1Record, seriesRecord } from "./_wal_records.ts";
import { withTempDir } from "./_files.ts";

async function writeWal(dir: string, compression: "none" | "snappy"): Promise<string[]> {
  const w = await WalSegmentWriter.create(`${dir}/00000000`, { compression });
  // A small series record (one fragment: yielded as before), large ones, samples between.
  await w.log(seriesRecord(longSeries(3, 1)));
  for (let r = 0; r < 3; r++) {
    await w.log(seriesRecord(longSeries(2500, 100 + r * 10_000)));
    await w.log(samplesV1Record([{ ref: 100, t: BigInt(r), v: 0x4000000000000000n }]));
  }
  await w.close(false);
  return (await listSegments(dir)).map((s) => s.path);
}

/** Every series of the WAL in order, and the records yielded, read whole or streamed. */
async function readWal(segments: string[], stream: boolean) {
  const got: string[] = [];
  const yielded: string[] = [];
  const collect = (ref: number, key: string) => got.push(`${ref} ${key}`);
  const reader = new WalReader(segments, stream ? { seriesRecords: collect } : {});
  for await (const rec of reader) {
    if (!forEachSeries(rec.bytes, collect)) yielded.push(`${rec.offset} ${rec.bytes.join(",")}`);
  }
  return { got, yielded, reader };
}

for (const compression of ["none", "snappy"] as const) {
  Deno.test(`series records streamed as their pages come give what the whole records give (${compression})`, async () => {
    await withTempDir("promcase-series-stream-", async (dir) => {
      const segments = await writeWal(dir, compression);
      const whole = await readWal(segments, false);
      const streamed = await readWal(segments, true);
      assert.equal(whole.got.length, 3 + 3 * 2500);
      assert.deepEqual(streamed.got, whole.got);
      assert.deepEqual(streamed.yielded, whole.yielded, "the other records as they were");
      assert.equal(streamed.reader.stats.streamedRecords, 3, "the large series records streamed");
      assert.equal(streamed.reader.stats.records, whole.reader.stats.records);
      assert.equal(streamed.reader.stats.snappyRecords, whole.reader.stats.snappyRecords);
    });
  });
}

Deno.test("a malformed entry inside a streamed series record is a corruption at the record", async () => {
  await withTempDir("promcase-series-stream-", async (dir) => {
    const record = seriesRecord(longSeries(2500, 100));
    // Past the middle, a label length that runs past the record's end (the CRCs are right).
    const good = longSeries(1300, 100);
    const at = seriesRecord(good).length;
    const bad = record.slice();
    bad[at + 8] = 0x7f; // the 1301st series' label count, then lengths past the end
    bad[at + 9] = 0xff;
    bad[at + 10] = 0xff;
    bad[at + 11] = 0x7f;
    const w = await WalSegmentWriter.create(`${dir}/00000000`, { compression: "snappy" });
    await w.log(seriesRecord(longSeries(3, 1)));
    const offset = await w.log(bad);
    await w.close(false);
    const got: number[] = [];
    const reader = new WalReader([`${dir}/00000000`], { seriesRecords: (ref) => got.push(ref) });
    await assert.rejects(
      async () => {
        for await (const _ of reader) { /* the small record */ }
      },
      (e: unknown) =>
        e instanceof CorruptionError && e.offset === offset &&
        /malformed series record/.test(e.message),
    );
    // The small record was yielded, not streamed; the large one's series before the damage were
    // handed over.
    assert.deepEqual(got, longSeries(1300, 100).map((s) => s.ref));
  });
});

Deno.test("a WAL torn inside a streamed series record ends as a torn tail", async () => {
  await withTempDir("promcase-series-stream-", async (dir) => {
    const w = await WalSegmentWriter.create(`${dir}/00000000`, { compression: "none" });
    await w.log(seriesRecord(longSeries(3, 1)));
    const offset = await w.log(seriesRecord(longSeries(2500, 100)));
    await w.close(false);
    await Deno.truncate(`${dir}/00000000`, offset + 100_000);
    const got: number[] = [];
    const reader = new WalReader([`${dir}/00000000`], { seriesRecords: (ref) => got.push(ref) });
    for await (const rec of reader) assert.equal(rec.bytes[0], RecordType.Series);
    assert.deepEqual(reader.torn, { segment: 0, path: `${dir}/00000000`, offset });
    assert.ok(got.length > 0 && got.length < 2500, `${got.length} series before the tear`);
  });
});
