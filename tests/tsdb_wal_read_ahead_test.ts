// The WAL read on a worker (wal_read_ahead.ts, through the shared ring of _ring.ts) against
// the WalReader it runs there: the same records and streamed series in the same order, through
// rings so small that records are cut into pieces and items wrap at the ring's end; the same
// counters and torn tail; and the same failure, after the same records, for a damaged WAL and a
// missing segment.
import assert from "node:assert/strict";
import { forEachSeries } from "../mod/tsdb/record.ts";
import { WalReadAhead } from "../mod/tsdb/wal_read_ahead.ts";
import { newRing, RingReader, RingWriter } from "../mod/tsdb/_ring.ts";
import {
  CorruptionError,
  listSegments,
  type SegmentRef,
  WalReader,
  WalSegmentWriter,
} from "../mod/tsdb/wlog.ts";
import { longSeries, samplesV1Record, seriesRecord } from "./_wal_records.ts";
import { withTempDir } from "./_files.ts";
import { seededRandom } from "./_random.ts";

/** Samples records of every size: a few bytes to several pages, random values. */
function samples(n: number, seed: number): Uint8Array {
  const random = seededRandom(seed);
  return samplesV1Record(Array.from({ length: n }, (_, i) => ({
    ref: 1 + i,
    t: 1_700_000_000_000n + BigInt(i),
    v: BigInt.asUintN(64, BigInt(Math.floor(random() * 2 ** 52)) << 12n),
  })));
}

/** Two segments: series records small and streamed, samples records small and large. */
async function writeWal(dir: string, compression: "none" | "snappy"): Promise<SegmentRef[]> {
  for (let s = 0; s < 2; s++) {
    const w = await WalSegmentWriter.create(`${dir}/0000000${s}`, { compression });
    await w.log(seriesRecord(longSeries(3, 1 + s * 100_000)));
    for (let r = 0; r < 4; r++) {
      await w.log(samples([1, 30, 900, 12_000][r], 10 * s + r));
      await w.log(seriesRecord(longSeries(r === 2 ? 2000 : 5, 1000 + s * 100_000 + r * 10_000)));
    }
    await w.close(s === 1 ? false : true);
  }
  return await listSegments(dir);
}

interface Read {
  /** Records (segment, path, offset, compression, bytes) and streamed series, in order. */
  items: string[];
  reader: WalReader | WalReadAhead;
  error?: unknown;
}

async function read(segments: SegmentRef[], ringBytes?: number): Promise<Read> {
  const items: string[] = [];
  const seriesRecords = (ref: number, key: string) => items.push(`series ${ref} ${key}`);
  const reader = ringBytes === undefined
    ? new WalReader(segments, { reuseBuffer: true, seriesRecords })
    : new WalReadAhead(segments, { seriesRecords, ringBytes });
  try {
    for await (const rec of reader) {
      // Each record is used before the next is asked for, as the replay does.
      const head = `${rec.segment} ${rec.path} ${rec.offset} ${rec.compression}`;
      if (!forEachSeries(rec.bytes, seriesRecords)) items.push(`${head} ${rec.bytes.join(",")}`);
      else items.push(`${head} series record`);
    }
  } catch (error) {
    return { items, reader, error };
  }
  return { items, reader };
}

function assertSameRead(got: Read, want: Read, label: string): void {
  assert.equal(got.items.length, want.items.length, label);
  for (let i = 0; i < want.items.length; i++) {
    if (got.items[i] !== want.items[i]) {
      assert.fail(
        `${label}: item ${i} differs: ${got.items[i].slice(0, 300)} // ${
          want.items[i].slice(0, 300)
        }`,
      );
    }
  }
  assert.deepEqual(got.reader.stats, want.reader.stats, label);
  assert.deepEqual(got.reader.torn, want.reader.torn, label);
}

for (const compression of ["none", "snappy"] as const) {
  Deno.test(`WAL read ahead: the reader's records and streamed series, through rings of any size (${compression})`, async () => {
    await withTempDir("promcase-wal-ahead-", async (dir) => {
      const segments = await writeWal(dir, compression);
      const want = await read(segments);
      assert.ok(want.reader.stats.streamedRecords >= 2, JSON.stringify(want.reader.stats));
      assert.ok(want.items.length > 4000);
      // 1 KiB: every large record in pieces, items wrapping all the time; the default ring.
      for (const ringBytes of [1024, 1500, 64 * 1024, undefined as unknown as number]) {
        assertSameRead(await read(segments, ringBytes ?? 4 * 1024 * 1024), want, `${ringBytes}`);
      }
    });
  });
}

Deno.test("WAL read ahead: a damaged WAL fails with the reader's error, after the same records", async () => {
  await withTempDir("promcase-wal-ahead-", async (dir) => {
    const segments = await writeWal(dir, "snappy");
    // A byte in the second segment's middle: records before it come, then the corruption.
    const file = await Deno.open(segments[1].path, { read: true, write: true });
    const size = (await file.stat()).size;
    await file.seek(Math.floor(size / 2), Deno.SeekMode.Start);
    await file.write(new Uint8Array([0x5a]));
    file.close();
    const want = await read(segments);
    assert.ok(want.error instanceof CorruptionError, String(want.error));
    for (const ringBytes of [1024, 64 * 1024]) {
      const got = await read(segments, ringBytes);
      assert.deepEqual(got.items, want.items);
      assert.ok(got.error instanceof CorruptionError, String(got.error));
      const g: CorruptionError = got.error as CorruptionError;
      const e: CorruptionError = want.error as CorruptionError;
      assert.deepEqual([g.segment, g.path, g.offset, g.message], [
        e.segment,
        e.path,
        e.offset,
        e.message,
      ]);
    }
  });
});

Deno.test("WAL read ahead: a torn tail ends the reading as the reader ends it", async () => {
  await withTempDir("promcase-wal-ahead-", async (dir) => {
    const segments = await writeWal(dir, "none");
    const { size } = await Deno.stat(segments[1].path);
    await Deno.truncate(segments[1].path, size - 5000);
    const want = await read(segments);
    assert.ok(want.reader.torn && !want.error);
    assertSameRead(await read(segments, 1024), want, "torn");
  });
});

Deno.test("WAL read ahead: a missing segment fails with the I/O error's class", async () => {
  await withTempDir("promcase-wal-ahead-", async (dir) => {
    const segments = await writeWal(dir, "none");
    await Deno.remove(segments[1].path);
    const want = await read(segments);
    const got = await read(segments, 1024);
    assert.ok(want.error instanceof Deno.errors.NotFound);
    assert.ok(got.error instanceof Deno.errors.NotFound, String(got.error));
    assert.deepEqual(got.items, want.items);
  });
});

Deno.test("WAL read ahead: a label set of 100 KB in a streamed series record", async () => {
  await withTempDir("promcase-wal-ahead-", async (dir) => {
    const w = await WalSegmentWriter.create(`${dir}/00000000`);
    const long = longSeries(500, 1);
    long[250].labels[2][1] = "y".repeat(100_000);
    await w.log(seriesRecord(long));
    await w.close(false);
    const segments = await listSegments(dir);
    const want = await read(segments);
    assert.equal(want.reader.stats.streamedRecords, 1);
    assertSameRead(await read(segments, 256 * 1024), want, "long");
  });
});

Deno.test("WAL ring: stopped from the reading end (its writer gone), it gives what was written", async () => {
  const ring = newRing(1024);
  const writer = new RingWriter(ring);
  const reader = new RingReader(ring);
  writer.series(7, "a\u0000b\u0000");
  assert.equal((await reader.next())?.ref, 7);
  // Waiting for an item no writer will write; nothing else keeps the event loop alive.
  const waiting = reader.next();
  setTimeout(() => reader.stop(), 20);
  assert.equal(await waiting, null);
});
