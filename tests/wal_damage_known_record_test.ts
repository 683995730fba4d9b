// A WAL record of a type Prometheus knows whose body does not decode (its CRC is fine: the writer
// wrote it so, or a bug did). Prometheus' rules, from its Go source (main, 3.14-ish; the same in
// v2.42.0 head_wal.go:169-252):
//
// - `tsdb/head_wal.go` loadWAL (:161-249) decodes series, samples (V1 and V2), tombstones,
//   exemplars, all six histogram types and metadata; a decode error of any of them becomes a
//   `wlog.CorruptionErr` at the record (:167, :179, ...), returned at :482. Any other type (mmap
//   markers included) is ignored unread (:247 "Noop").
// - loadWBL (:918-975) decodes only samples, mmap markers and histograms; the same error there.
// - `tsdb/db.go` open (:1202-1217) repairs a WAL (or WBL) that failed to load: `wlog.Repair`
//   (`tsdb/wlog/wlog.go`:400-470) deletes every later segment and rewrites the damaged one with
//   the records before the damage. So the data before it is kept, the record and all after lost.
// - The checkpoint is replayed by the same loadWAL, but `tsdb/head.go`:890-894 returns its error
//   as "backfill checkpoint: ..." ("A corrupted checkpoint is a hard error"). The repair that
//   db.go then attempts takes the checkpoint's segment number for a WAL segment's: it deletes
//   the WAL segments above it and fails to rewrite one that is not there, so Prometheus does not
//   start. promcase refuses such a head.
//
// The first test checks this against a real Prometheus 2.42 serving the damaged dir itself.
import assert from "node:assert/strict";
import { runCli, runCliJson } from "./_cli.ts";
import { copyTree, withTempDir } from "./_files.ts";
import { findPrometheus, startPrometheus } from "./_prometheus.ts";
import { rawSamples } from "./_samples.ts";
import { decodeSamples } from "../mod/tsdb/compact.ts";
import { Encbuf } from "../mod/tsdb/encoding.ts";
import { HeadReplay } from "../mod/tsdb/head.ts";
import { float64Bits, float64FromBits } from "../mod/tsdb/record.ts";
import { CorruptionError, WalSegmentWriter } from "../mod/tsdb/wlog.ts";

/** 2026-01-01T00:00:00Z. */
const B = 1_767_225_600_000;
const S = 1000;

function seriesRecord(series: [number, string][]): Uint8Array {
  const e = new Encbuf().byte(1);
  for (const [ref, name] of series) {
    e.be64(BigInt(ref)).uvarint(1).uvarintString("__name__").uvarintString(name);
  }
  return e.get().slice();
}

/** A samples record (type 2, record.go samplesV1); `junk` trailing bytes make it malformed. */
function samplesRecord(samples: [number, number, number][], junk = 0): Uint8Array {
  const e = new Encbuf().byte(2);
  const [ref0, t0] = samples[0];
  e.be64(BigInt(ref0)).be64(BigInt(t0));
  for (const [ref, t, v] of samples) {
    e.varint(BigInt(ref - ref0)).varint(BigInt(t - t0)).be64(float64Bits(v));
  }
  for (let i = 0; i < junk; i++) e.byte(1);
  return e.get().slice();
}

/** An mmap-markers record (type 5) cut short: 3 bytes where a ref should be. */
const BAD_MMAP_MARKERS = new Uint8Array([5, 0, 0, 1]);

async function writeSegment(path: string, records: Uint8Array[]): Promise<void> {
  const w = await WalSegmentWriter.create(path);
  for (const r of records) await w.log(r);
  await w.close(true);
}

/** Segment 0: a, b, then a malformed samples record, then more; segment 1: more still. */
async function writeDamagedWal(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await writeSegment(`${dir}/00000000`, [
    seriesRecord([[1, "a"], [2, "b"]]),
    samplesRecord([[1, B + S, 1], [2, B + S, 10], [1, B + 2 * S, 2]]),
    samplesRecord([[1, B + 3 * S, 3], [2, B + 3 * S, 11]], 3),
    samplesRecord([[1, B + 4 * S, 4]]),
  ]);
  await writeSegment(`${dir}/00000001`, [
    seriesRecord([[3, "c"]]),
    samplesRecord([[1, B + 5 * S, 5], [3, B + 5 * S, 20]]),
  ]);
}

/** What survives: everything before the malformed record. */
const KEPT = { a: [[B + S, 1], [B + 2 * S, 2]], b: [[B + S, 10]] };

async function replayedValues(head: HeadReplay): Promise<Record<string, number[][]>> {
  const out: Record<string, number[][]> = {};
  for await (const s of head.series()) {
    const name = s.labels.find((l) => l.name === "__name__")!.value;
    out[name] = s.chunks.flatMap((c) =>
      decodeSamples(c).map((x) => {
        assert.equal(x.kind, "float");
        return [Number(x.t), float64FromBits((x as { v: bigint }).v)];
      })
    );
  }
  return out;
}

Deno.test("a malformed samples record in the WAL: the export keeps what precedes it, as Prometheus 2.42 does", async () => {
  const bin = await findPrometheus("oldest");
  await withTempDir("promcase-wal-known-damage-", async (work) => {
    const data = `${work}/data`;
    await writeDamagedWal(`${data}/wal`);
    await copyTree(data, `${work}/served`);

    // promcase: exit 0, the samples before the record, a warning naming the record.
    const result = await runCli([
      "export",
      data,
      "--from",
      String(B),
      "--to",
      String(B + 10 * S),
      "-o",
      `${work}/a.tar.gz`,
      "--no-prometheus-api",
      "--json",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /warning: corruption in WAL segment \S*00000000 at offset \d+: malformed samples record: .*dropped/,
    );
    const restored = await runCliJson<{ dataDir: string; serveCommand: string[] }>([
      "restore",
      `${work}/a.tar.gz`,
      "--into",
      `${work}/restored`,
      "--prometheus-bin",
      bin.prometheus,
    ]);
    const flags = restored.serveCommand.filter((a) =>
      a.startsWith("--storage.tsdb.retention.time=")
    );

    const want = new Map(
      Object.entries(KEPT).map(([name, points]) => [
        JSON.stringify([["__name__", name]]),
        points.map(([t, v]) => [t / 1000, String(v)]),
      ]),
    );
    for (
      const [what, dir] of [["the damaged dir itself", `${work}/served`], [
        "the export",
        restored.dataDir,
      ]]
    ) {
      await using server = await startPrometheus({
        bin: bin.prometheus,
        dataDir: dir,
        args: flags,
      });
      const served = await rawSamples(server, B, B + 10 * S);
      const got = new Map([...served].map(([key, s]) => [key, s.values]));
      assert.deepEqual(got, want, `Prometheus 2.42 serving ${what}`);
    }
  });
});

Deno.test("malformed records: corruption where Prometheus decodes the type, skipped where it does not", async () => {
  await withTempDir("promcase-wal-known-damage-", async (dir) => {
    await writeDamagedWal(`${dir}/wal`);
    // An mmap-markers record Prometheus' WAL replay never decodes, before the damage: skipped.
    await writeSegment(`${dir}/wal/00000000`, [
      seriesRecord([[1, "a"], [2, "b"]]),
      BAD_MMAP_MARKERS,
      samplesRecord([[1, B + S, 1], [2, B + S, 10], [1, B + 2 * S, 2]]),
      samplesRecord([[1, B + 3 * S, 3], [2, B + 3 * S, 11]], 3),
      samplesRecord([[1, B + 4 * S, 4]]),
    ]);
    // The WBL: a malformed series record (not decoded there), an out-of-order sample of a, then
    // a malformed samples record, then another sample: the WBL is damaged from there on.
    await Deno.mkdir(`${dir}/wbl`);
    await writeSegment(`${dir}/wbl/00000000`, [
      new Uint8Array([1, 0, 0]),
      samplesRecord([[1, B + S + 500, 7]]),
      samplesRecord([[2, B + S + 500, 17]], 2),
      samplesRecord([[1, B + S + 600, 8]]),
    ]);
    const head = await HeadReplay.replay({
      wal: [0, 1].map((i) => ({ index: i, path: `${dir}/wal/0000000${i}` })),
      wbl: [{ index: 0, path: `${dir}/wbl/00000000` }],
      minValidTime: null,
      from: BigInt(B),
      to: BigInt(B + 10 * S),
      tmpDir: dir,
    });
    try {
      const corruption = head.stats.corruption;
      assert.ok(corruption);
      assert.match(corruption.path, /\/wal\/00000000$/);
      assert.match(corruption.message, /malformed samples record: record type 2/);
      assert.deepEqual(head.stats.skippedRecords, { mmapmarkers: 1, series: 1 });
      assert.deepEqual(await replayedValues(head), {
        a: [KEPT.a[0], [B + S + 500, 7], KEPT.a[1]],
        b: KEPT.b,
      });
    } finally {
      await head.close();
    }
  });
});

Deno.test("a malformed record in the checkpoint is fatal, as to Prometheus", async () => {
  await withTempDir("promcase-wal-known-damage-", async (dir) => {
    await Deno.mkdir(`${dir}/wal/checkpoint.00000000`, { recursive: true });
    await writeSegment(`${dir}/wal/checkpoint.00000000/00000000`, [
      seriesRecord([[1, "a"]]),
      samplesRecord([[1, B + S, 1]], 3),
    ]);
    await writeSegment(`${dir}/wal/00000001`, [samplesRecord([[1, B + 2 * S, 2]])]);
    await assert.rejects(
      HeadReplay.replay({
        wal: [
          { index: 0, path: `${dir}/wal/checkpoint.00000000/00000000` },
          { index: 1, path: `${dir}/wal/00000001` },
        ],
        minValidTime: null,
        from: BigInt(B),
        to: BigInt(B + 10 * S),
        tmpDir: dir,
      }),
      (e: unknown) => {
        assert.ok(e instanceof CorruptionError);
        assert.match(e.message, /checkpoint\.00000000\/00000000 at offset \d+: malformed samples/);
        return true;
      },
    );
  });
});
