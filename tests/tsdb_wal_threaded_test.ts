// ThreadedWalReader against WalReader: the same records (bytes, segment, path, offset,
// compression), torn tail, counters and errors, on Prometheus 3.5.3's WALs (zstd, snappy, none)
// and damaged copies, with batches turned down so that every record crosses a batch boundary and
// the larger records get a batch of their own.
import assert from "node:assert/strict";
import {
  CorruptionError,
  listSegments,
  type SegmentRef,
  WalReader,
  type WalReaderOptions,
  type WalReaderStats,
  type WalRecord,
} from "../mod/tsdb/wlog.ts";
import { ThreadedWalReader, type ThreadedWalReaderOptions } from "../mod/tsdb/wlog_threaded.ts";

const FIXTURES = new URL("./testdata/wal/", import.meta.url).pathname;

interface Read {
  records: {
    segment: number;
    path: string;
    offset: number;
    compression: string;
    bytes: number[];
  }[];
  torn: unknown;
  stats: WalReaderStats | undefined;
  error?: unknown;
}

async function read(
  reader: AsyncIterable<WalRecord> & { torn: unknown; stats?: WalReaderStats },
): Promise<Read> {
  const records: Read["records"] = [];
  try {
    for await (const r of reader) {
      records.push({ ...r, bytes: [...r.bytes] });
    }
  } catch (error) {
    return { records, torn: reader.torn, stats: reader.stats, error };
  }
  return { records, torn: reader.torn, stats: reader.stats };
}

async function both(
  segments: SegmentRef[],
  options: WalReaderOptions = {},
  threaded: ThreadedWalReaderOptions = {},
): Promise<[Read, Read]> {
  const direct = await read(new WalReader(segments, options));
  const other = await read(new ThreadedWalReader(segments, { ...options, ...threaded }));
  return [direct, other];
}

async function copyWal(name: string): Promise<{ dir: string; segments: SegmentRef[] }> {
  const dir = await Deno.makeTempDir({ prefix: "promcase-wal-threaded-" });
  for (const s of await listSegments(`${FIXTURES}${name}/wal`)) {
    await Deno.copyFile(s.path, `${dir}/${s.path.split("/").pop()}`);
  }
  return { dir, segments: await listSegments(dir) };
}

for (const name of ["zstd", "snappy", "none"] as const) {
  Deno.test(`threaded: the ${name} WAL reads the same, in batches of any size`, async () => {
    const segments = await listSegments(`${FIXTURES}${name}/wal`);
    for (
      const threaded of [{}, { batchBytes: 64, batches: 1 }, { batchBytes: 5000, batches: 3 }]
    ) {
      for (const reuseBuffer of [false, true]) {
        const [direct, other] = await both(segments, { reuseBuffer }, threaded);
        assert.equal(direct.error, undefined);
        assert.ok(direct.records.length > 10);
        assert.deepEqual(other, direct, JSON.stringify(threaded));
      }
    }
    // Only some record types, as the disclosure pass reads them.
    const [direct, other] = await both(segments, { recordTypes: new Set([1]) }, {
      batchBytes: 100,
    });
    assert.ok(direct.records.length > 0 && direct.stats!.skippedRecords > 0);
    assert.deepEqual(other, direct);
  });
}

Deno.test("threaded: a damaged record ends the records with the same corruption", async () => {
  const { dir, segments } = await copyWal("snappy");
  try {
    const clean = await read(new WalReader(segments));
    const victim = clean.records[Math.floor(clean.records.length / 2)];
    const bytes = await Deno.readFile(victim.path);
    bytes[victim.offset + 7 + 3] ^= 0x40;
    await Deno.writeFile(victim.path, bytes);
    const [direct, other] = await both(segments, {}, { batchBytes: 64, batches: 1 });
    assert.ok(direct.error instanceof CorruptionError);
    assert.ok(other.error instanceof CorruptionError);
    for (const key of ["segment", "path", "offset", "reason", "message"] as const) {
      assert.equal(other.error[key], direct.error[key]);
    }
    assert.deepEqual(other.records, direct.records);
    assert.ok(other.records.length > 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("threaded: a torn tail, a missing segment and an early stop", async () => {
  const { dir, segments } = await copyWal("none");
  try {
    // A segment gone: the same error class (the export plans again on NotFound).
    const last = segments.at(-1)!;
    const gone = [...segments, { index: last.index + 1, path: `${dir}/99999999` }];
    const missing = await both(gone);
    assert.ok(missing[0].error instanceof Deno.errors.NotFound);
    assert.ok(missing[1].error instanceof Deno.errors.NotFound);
    assert.deepEqual(missing[1].records, missing[0].records);

    const records = (await read(new WalReader([last]))).records;
    await Deno.truncate(last.path, records.at(-1)!.offset + 20);
    const [direct, other] = await both(segments, {}, { batchBytes: 64 });
    assert.ok(direct.torn);
    assert.deepEqual(other, direct);

    // Stopping early ends the worker (the test's sanitizers would see it left running).
    let n = 0;
    for await (const _ of new ThreadedWalReader(segments, { batchBytes: 64 })) {
      if (++n === 3) break;
    }
    assert.equal(n, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
