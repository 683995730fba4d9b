// `--raw` archives and stale-series compaction: what `rawMinPrometheusVersion` must state, from
// Prometheus' Go source:
// - A WAL tombstone over exactly [MinInt64, MaxInt64] evicts a series since 3.10; a series that
//   came back under the same labels survives it only since 3.14 (commit 2151ba1914,
//   `tsdb/head_wal.go` loadWAL :315-340 on v3.14.0). 2.42-3.9 keep it as a head tombstone
//   (v2.42.0 head_wal.go:321-333) on the series a revived ref is mapped to: the revived samples
//   are deleted.
// - `tsdb/db.go` inOrderBlocksMaxTime leaves `from-stale-series` blocks out of the head's
//   minValidTime since 3.10 (v3.10.0 db.go:2163), `from-selected-series` since 3.14 (main
//   db.go:2461); v2.42.0 (db.go:1662-1672) counts them, and its replay drops the WAL's samples
//   before such a block's end.
import assert from "node:assert/strict";
import { withTempDir } from "./_files.ts";
import { Encbuf } from "../mod/tsdb/encoding.ts";
import { RawContentScan, rawMinPrometheusVersion } from "../mod/tsdb/raw_scan.ts";
import { WalSegmentWriter } from "../mod/tsdb/wlog.ts";

const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;

function tombstones(stones: [number, bigint, bigint][]): Uint8Array {
  const e = new Encbuf().byte(3);
  for (const [ref, mint, maxt] of stones) e.be64(BigInt(ref)).varint(mint).varint(maxt);
  return e.get().slice();
}

function samples(ref: number, t: number): Uint8Array {
  return new Encbuf().byte(2).be64(BigInt(ref)).be64(BigInt(t)).varint(0n).varint(0n).be64(1n)
    .get().slice();
}

function scanFiles(files: Record<string, Uint8Array>): RawContentScan {
  const scan = new RawContentScan();
  for (const [path, bytes] of Object.entries(files)) {
    const s = scan.scanner(path);
    if (!s) continue;
    // In pieces, as the raw copy reads them.
    for (let i = 0; i < bytes.length; i += 5000) s.push(bytes.subarray(i, i + 5000));
    s.end();
  }
  return scan;
}

async function segment(dir: string, records: Uint8Array[], snappy: boolean): Promise<Uint8Array> {
  const path = `${dir}/seg-${snappy}`;
  const w = await WalSegmentWriter.create(path, { compression: snappy ? "snappy" : "none" });
  for (const r of records) await w.log(r);
  await w.close(false);
  return await Deno.readFile(path);
}

const meta = (maxTime: number, hints?: string[]) =>
  new TextEncoder().encode(JSON.stringify({
    ulid: "x",
    minTime: maxTime - 7_200_000,
    maxTime,
    version: 1,
    compaction: hints ? { level: 1, hints } : { level: 1 },
  }));

Deno.test("raw scan: a full-range WAL tombstone needs 3.14, any other one does not", async () => {
  await withTempDir("promcase-raw-stale-", async (dir) => {
    for (const snappy of [false, true]) {
      // Many stones, so that the snappy record is compressed, and one in the middle is full range.
      const stones: [number, bigint, bigint][] = Array.from(
        { length: 50 },
        (_, i) => [i + 1, 0n, 10n],
      );
      const plain = await segment(dir, [samples(1, 5), tombstones(stones)], snappy);
      const none = rawMinPrometheusVersion((await scanFiles({ "wal/00000001": plain })).contents);
      assert.equal(none.version, "2.0.0", `snappy ${snappy}`);
      assert.deepEqual(none.warnings, []);

      stones[20] = [21, MIN_INT64, MAX_INT64];
      const evicted = await segment(dir, [samples(1, 5), tombstones(stones)], snappy);
      const scan = await scanFiles({ "wal/00000001": evicted });
      assert.equal(scan.contents.fullRangeTombstones, 1);
      const got = rawMinPrometheusVersion(scan.contents);
      assert.equal(got.version, "3.14.0", `snappy ${snappy}`);
      assert.match(got.warnings.join("\n"), /full-range tombstones .* before 3\.14 also deletes/);
      // In a checkpoint as well.
      const cp = await scanFiles({ "wal/checkpoint.00000000/00000000": evicted });
      assert.equal(cp.contents.fullRangeTombstones, 1);
    }
  });
});

Deno.test("raw scan: a hinted block ending after the others needs the release that knows its hint", async () => {
  await withTempDir("promcase-raw-stale-", async (dir) => {
    const wal = await segment(dir, [samples(1, 5)], false);
    const version = async (files: Record<string, Uint8Array>) =>
      rawMinPrometheusVersion((await scanFiles(files)).contents);
    const A = 7_200_000;
    // A stale-series block past the in-order block, beside head data: 3.10.
    const stale = await version({
      "01A/meta.json": meta(A),
      "01B/meta.json": meta(2 * A, ["from-stale-series"]),
      "wal/00000001": wal,
    });
    assert.equal(stale.version, "3.10.0");
    assert.match(
      stale.warnings.join("\n"),
      /01B\/meta\.json is hinted from-stale-series .* before 3\.10/,
    );
    // A selected-series block newer still: 3.14.
    assert.equal(
      (await version({
        "01A/meta.json": meta(A),
        "01B/meta.json": meta(2 * A, ["from-stale-series"]),
        "01C/meta.json": meta(3 * A, ["from-selected-series"]),
        "wal/00000001": wal,
      })).version,
      "3.14.0",
    );
    // Not past the in-order blocks, or no head data, or out-of-order only: no bound changes.
    for (
      const files of <Record<string, Uint8Array>[]> [
        {
          "01A/meta.json": meta(3 * A),
          "01B/meta.json": meta(2 * A, ["from-stale-series"]),
          "wal/00000001": wal,
        },
        { "01A/meta.json": meta(A), "01B/meta.json": meta(2 * A, ["from-stale-series"]) },
        {
          "01A/meta.json": meta(A),
          "01B/meta.json": meta(2 * A, ["from-out-of-order"]),
          "wal/00000001": wal,
        },
      ]
    ) {
      const got = await version(files);
      assert.equal(got.version, "2.0.0", Object.keys(files).join(" "));
      assert.deepEqual(got.warnings, []);
    }
  });
});
