// Stale-series compaction (Prometheus 3.10+, `stale_series_compaction_threshold`): a data dir as
// Prometheus 3.14 leaves it, built with promcase's writers (no Prometheus after 3.5.3 runs here),
// exported, restored, dumped by promtool 2.42 and served by Prometheus 2.42, every sample checked
// against what Prometheus' own rules make of the dir. The rules, from Prometheus' Go source (main,
// as of v3.14.0):
//
// 1. `tsdb/db.go` open sets the head's minValidTime to `inOrderBlocksMaxTime()`: the newest maxTime
//    of the blocks WITHOUT the compaction hints `from-out-of-order`, `from-stale-series` (3.10+)
//    and `from-selected-series` (3.14); MinInt64 when there is none. The WAL replay drops in-order
//    samples before it (`tsdb/head_wal.go` loadWAL). So head samples inside a stale-series
//    block's range survive, and the head is part of any window past the in-order blocks.
// 2. A stale-series compaction writes one block per 2h range of the evicted series, level 1,
//    sources = itself, hints ["from-stale-series"], and - through `LeveledCompactor.Write` with a
//    base meta - one parent that is the zero ULID with times 0 (`tsdb/compact.go` Write). Then it
//    writes a WAL tombstone over exactly [MinInt64, MaxInt64] per evicted series
//    (`tsdb/head.go` truncateSeries).
// 3. On replay (`tsdb/head_wal.go` loadWAL), a tombstone whose one interval is exactly
//    [MinInt64, MaxInt64] deletes the series its ref maps to (through multiRef, so a duplicate
//    ref deletes the first one), with everything replayed of it so far; later samples of its refs
//    (WAL and WBL) find no series and are dropped. Since 3.14 (commit 2151ba1914, "fix series
//    loss ... full-range tombstones") the series is first unlinked from the labels index, so a
//    later series record with the same labels creates a fresh series: its samples survive, no
//    earlier tombstone of the old ref touches it, and its in-order state starts afresh. Any other
//    interval is an ordinary head tombstone of the series (later samples of it included).
//
// `../shared/reference/tsdb-format.md` does not describe the stale-series hint or full-range
// tombstones; the rules above are the code's.
import assert from "node:assert/strict";
import { runCliJson } from "./_cli.ts";
import { withTempDir } from "./_files.ts";
import { findPrometheus, startPrometheus } from "./_prometheus.ts";
import { promtoolDump } from "./_promtool.ts";
import { rawSamples } from "./_samples.ts";
import { BlockReader, BlockWriter } from "../mod/tsdb/block.ts";
import { decodeSamples, encodeSamples, type Sample } from "../mod/tsdb/compact.ts";
import { Encbuf } from "../mod/tsdb/encoding.ts";
import { float64Bits } from "../mod/tsdb/record.ts";
import { WalSegmentWriter } from "../mod/tsdb/wlog.ts";

const M = 60_000;
const H = 60 * M;
/** 2026-01-01T00:00:00Z, a 2h boundary. */
const B = 1_767_225_600_000;
/** Start of the stale-series block's range. */
const S = B + 2 * H;
const STALE = "stale" as const;
const STALE_BITS = 0x7ff0000000000002n;
const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;

type Point = [number, number | typeof STALE];

const labelsOf = (name: string) => [{ name: "__name__", value: name }, { name: "job", value: "a" }];

// --- WAL records, as Prometheus' record encoder writes them (`tsdb/record/record.go`).

function seriesRecord(series: [number, string][]): Uint8Array {
  const e = new Encbuf().byte(1);
  for (const [ref, name] of series) {
    e.be64(BigInt(ref)).uvarint(2);
    for (const l of labelsOf(name)) e.uvarintString(l.name).uvarintString(l.value);
  }
  return e.get().slice();
}

function bits(v: number | typeof STALE): bigint {
  return v === STALE ? STALE_BITS : float64Bits(v);
}

function samplesRecord(samples: [number, ...Point][]): Uint8Array {
  const e = new Encbuf().byte(2);
  const [ref0, t0] = samples[0];
  e.be64(BigInt(ref0)).be64(BigInt(t0));
  for (const [ref, t, v] of samples) {
    e.varint(BigInt(ref - ref0)).varint(BigInt(t - t0)).be64(bits(v));
  }
  return e.get().slice();
}

function tombstonesRecord(stones: [number, bigint, bigint][]): Uint8Array {
  const e = new Encbuf().byte(3);
  for (const [ref, mint, maxt] of stones) e.be64(BigInt(ref)).varint(mint).varint(maxt);
  return e.get().slice();
}

const evict = (...refs: number[]) =>
  tombstonesRecord(refs.map((r) => [r, MIN_INT64, MAX_INT64] as [number, bigint, bigint]));

async function writeSegment(path: string, records: Uint8Array[]): Promise<void> {
  const w = await WalSegmentWriter.create(path);
  for (const r of records) await w.log(r);
  await w.close(true);
}

// --- The data dir.

const ULID_A = "01KDX3P0000000000000000AAA";
const ULID_STALE = "01KDX3P0000000000000000BBB";
const ULID_SELECTED = "01KDX3P0000000000000000CCC";

/** Block A, an ordinary head block [B, B+2h): the only block that bounds the head. */
const BLOCK_A: Record<string, Point[]> = {
  steady: Array.from({ length: 12 }, (_, k): Point => [B + k * 10 * M, k + 1]),
};
/**
 * The stale-series block [B+2h, B+4h): three series that went stale, as the compaction cut them
 * from the head (the head tombstone over revived's 202 was applied, as compaction applies it).
 */
const BLOCK_STALE: Record<string, Point[]> = {
  dup: [[S + 5 * M, 400], [S + 15 * M, 401], [S + 25 * M, STALE]],
  gone: [[S + 5 * M, 100], [S + 15 * M, 101], [S + 25 * M, STALE]],
  revived: [[S + 10 * M, 200], [S + 20 * M, 201], [S + 55 * M, STALE]],
};
/** A selected-series block [B+4h, B+6h) (3.14 `CompactSelectedSeries`). */
const BLOCK_SELECTED: Record<string, Point[]> = {
  picked: [[B + 4 * H + 10 * M, 500], [B + 4 * H + 20 * M, 501]],
};

async function writeBlock(
  dir: string,
  ulid: string,
  minTime: number,
  series: Record<string, Point[]>,
  hint: string | null,
): Promise<void> {
  const w = await BlockWriter.create(dir, {
    ulid,
    minTime: BigInt(minTime),
    maxTime: BigInt(minTime + 2 * H),
    // As `LeveledCompactor.Write` with a base meta writes it (rule 2).
    ...(hint
      ? { parents: [{ ulid: "00000000000000000000000000", minTime: 0n, maxTime: 0n }] }
      : {}),
    hints: hint ? [hint] : [],
  });
  for (const name of Object.keys(series).sort()) {
    const samples: Sample[] = series[name].map(([t, v]) => ({
      t: BigInt(t),
      kind: "float",
      v: bits(v),
    }));
    await w.addSeries(labelsOf(name), encodeSamples(samples));
  }
  await w.commit();
}

/**
 * The data dir. With `hints` false, the two partial blocks carry no hint: they are then
 * ordinary blocks and bound the head as before.
 */
async function buildDataDir(dir: string, hints: boolean): Promise<void> {
  await Deno.mkdir(`${dir}/wal`, { recursive: true });
  await Deno.mkdir(`${dir}/wbl`);
  await writeBlock(dir, ULID_A, B, BLOCK_A, null);
  await writeBlock(dir, ULID_STALE, S, BLOCK_STALE, hints ? "from-stale-series" : null);
  await writeBlock(
    dir,
    ULID_SELECTED,
    B + 4 * H,
    BLOCK_SELECTED,
    hints ? "from-selected-series" : null,
  );
  // Refs: 1 steady, 2 gone, 3 revived, 4 and 5 dup (5 declared again, as after series GC),
  // 6 and 9 nearly, 7 picked, 8 revived once more after its eviction.
  await writeSegment(`${dir}/wal/00000000`, [
    seriesRecord([[1, "steady"], [2, "gone"], [3, "revived"], [4, "dup"]]),
    // Before minValidTime B+2h: dropped (99 is in no block: it shows that the bound is B+2h).
    samplesRecord([[1, B + 110 * M, 12], [1, B + 115 * M, 99]]),
    samplesRecord([
      [2, S + 5 * M, 100],
      [2, S + 15 * M, 101],
      [3, S + 10 * M, 200],
      [3, S + 20 * M, 201],
      [4, S + 5 * M, 400],
    ]),
    seriesRecord([[5, "dup"]]),
    // gone's 777 is in the head only: its eviction must drop the head's copy of gone.
    samplesRecord([[5, S + 15 * M, 401], [2, S + 16 * M, 777], [3, S + 45 * M, 202]]),
    // An ordinary head tombstone (an admin delete) of revived's old ref.
    tombstonesRecord([[3, BigInt(S + 40 * M), BigInt(S + 50 * M)]]),
    samplesRecord([
      [2, S + 25 * M, STALE],
      [5, S + 25 * M, STALE],
      [3, S + 55 * M, STALE],
      [1, S, 13],
      [1, S + 30 * M, 14],
    ]),
    // The stale-series compaction evicts gone, revived and dup; dup through its second ref,
    // which replay maps onto ref 4 (TestHead_WALReplay_FullRangeTombstoneDeletesDuplicateRef).
    evict(2, 3, 5),
    // Samples of evicted refs: their series is gone, so they are dropped as unknown refs.
    samplesRecord([[2, S + 35 * M, 778], [4, S + 35 * M, 779]]),
    seriesRecord([[6, "nearly"]]),
    samplesRecord([[6, S + 10 * M, 600]]),
    // One millisecond short of the full range: an ordinary tombstone, no eviction. It hides
    // every sample of nearly, including those of the later duplicate ref 9.
    tombstonesRecord([[6, MIN_INT64, MAX_INT64 - 1n]]),
    samplesRecord([[6, S + 20 * M, 601]]),
    seriesRecord([[7, "picked"]]),
    samplesRecord([[7, B + 4 * H + 10 * M, 500], [7, B + 4 * H + 20 * M, 501], [1, B + 4 * H, 15]]),
    // revived comes back under a new ref. 300 is before the old series' last sample (+55m) and
    // inside its old tombstone [+40m, +50m]: the fresh series keeps it (3.14).
    seriesRecord([[8, "revived"]]),
    samplesRecord([[8, S + 42 * M, 300], [8, S + 70 * M, 301]]),
    // The selected-series compaction evicts picked.
    evict(7),
    seriesRecord([[9, "nearly"]]),
    samplesRecord([[9, B + 5 * H, 602]]),
  ]);
  await writeSegment(`${dir}/wal/00000001`, [
    samplesRecord([
      [1, B + 5 * H, 16],
      [8, B + 5 * H, 302],
      [1, B + 6 * H + 30 * M, 17],
      [8, B + 6 * H + 30 * M, 303],
      [1, B + 7 * H, 18],
      [8, B + 7 * H, 304],
    ]),
  ]);
  // The WBL (out-of-order samples, replayed after the WAL): 310 belongs to the revived series,
  // 311 to the evicted ref 3 (dropped).
  await writeSegment(`${dir}/wbl/00000000`, [
    samplesRecord([[8, B + 6 * H, 310], [3, S + 50 * M, 311]]),
  ]);
}

// --- Expectations, derived by hand from the rules.

/** With the hints: minValidTime is block A's end, B+2h (rule 1). */
const HINTED: Record<string, Point[]> = {
  // Block A, then the head from B+2h on; 12 and 99 (before B+2h) are dropped.
  steady: [
    ...BLOCK_A.steady,
    [S, 13],
    [S + 30 * M, 14],
    [B + 4 * H, 15],
    [B + 5 * H, 16],
    [B + 6 * H + 30 * M, 17],
    [B + 7 * H, 18],
  ],
  // Evicted: only the block's samples; the head's (777) and the later ones (778, 779) are gone.
  gone: BLOCK_STALE.gone,
  dup: BLOCK_STALE.dup,
  // The block's old series merged with the fresh head series (and its WBL sample 310); 202 and
  // the old ref's WBL sample 311 are not there.
  revived: [
    [S + 10 * M, 200],
    [S + 20 * M, 201],
    [S + 42 * M, 300],
    [S + 55 * M, STALE],
    [S + 70 * M, 301],
    [B + 5 * H, 302],
    [B + 6 * H, 310],
    [B + 6 * H + 30 * M, 303],
    [B + 7 * H, 304],
  ],
  picked: BLOCK_SELECTED.picked,
  // nearly: wholly hidden by its ordinary tombstone.
};

/** Without the hints every block bounds the head: minValidTime is B+6h (as before). */
const UNHINTED: Record<string, Point[]> = {
  ...HINTED,
  steady: [...BLOCK_A.steady, [B + 6 * H + 30 * M, 17], [B + 7 * H, 18]],
  revived: [
    ...BLOCK_STALE.revived,
    [B + 6 * H, 310],
    [B + 6 * H + 30 * M, 303],
    [B + 7 * H, 304],
  ],
};

/** `expected` within `[from, to]`. */
function within(expected: Record<string, Point[]>, from: number, to: number) {
  const out: Record<string, Point[]> = {};
  for (const [name, points] of Object.entries(expected)) {
    const kept = points.filter(([t]) => t >= from && t <= to);
    if (kept.length > 0) out[name] = kept;
  }
  return out;
}

/** promtool's dump lines (`LABELS VALUE TIMESTAMP`) of `expected`, sorted. */
function dumpLines(expected: Record<string, Point[]>): string[] {
  return Object.entries(expected).flatMap(([name, points]) =>
    points.map(([t, v]) => `{__name__="${name}", job="a"} ${v === STALE ? "NaN" : v} ${t}`)
  ).sort();
}

// --- Export, restore, read back.

interface Summary {
  blocks: string[];
  head: { included: boolean; reason: string };
}

async function exportRestore(
  dataDir: string,
  from: number,
  to: number,
  out: string,
  prometheus: string,
): Promise<{ summary: Summary; dataDir: string; flags: string[] }> {
  const summary = await runCliJson<Summary>([
    "export",
    dataDir,
    "--from",
    String(from),
    "--to",
    String(to),
    "-o",
    `${out}.tar.gz`,
    "--no-prometheus-api",
    // Exactly the window: the expectations are derived for it.
    "--lead-in",
    "0",
  ]);
  const restored = await runCliJson<{ dataDir: string; serveCommand: string[] }>([
    "restore",
    `${out}.tar.gz`,
    "--into",
    out,
    "--prometheus-bin",
    prometheus,
  ]);
  const flags = restored.serveCommand.filter((a) =>
    a.startsWith("--storage.tsdb.retention.time=") || a.startsWith("--enable-feature=")
  );
  return { summary, dataDir: restored.dataDir, flags };
}

/** The bit patterns of every NaN in the restored blocks, as promcase reads them. */
async function staleMarkerBits(dataDir: string): Promise<Set<bigint>> {
  const out = new Set<bigint>();
  for await (const e of Deno.readDir(dataDir)) {
    if (!/^[0-9A-Z]{26}$/.test(e.name)) continue;
    using block = await BlockReader.open(`${dataDir}/${e.name}`);
    for await (const s of block.series()) {
      for (const c of s.chunks) {
        for (const x of decodeSamples(c)) {
          if (x.kind !== "float") continue;
          if (((x.v >> 52n) & 0x7ffn) === 0x7ffn && (x.v & ((1n << 52n) - 1n)) !== 0n) out.add(x.v);
        }
      }
    }
  }
  return out;
}

Deno.test("stale-series blocks and full-range WAL tombstones export as Prometheus 3.14 replays them", async () => {
  const bin = await findPrometheus("oldest");
  assert.match(bin.version, /^2\.42\./);
  await withTempDir("promcase-stale-series-", async (work) => {
    const data = `${work}/data`;
    await buildDataDir(data, true);
    const meta = JSON.parse(await Deno.readTextFile(`${data}/${ULID_STALE}/meta.json`));
    assert.deepEqual(meta.compaction, {
      level: 1,
      sources: [ULID_STALE],
      parents: [{ ulid: "00000000000000000000000000", minTime: 0, maxTime: 0 }],
      hints: ["from-stale-series"],
    });

    // Everything.
    const all = await exportRestore(data, B, B + 8 * H, `${work}/all`, bin.prometheus);
    assert.equal(all.summary.head.included, true, all.summary.head.reason);
    assert.deepEqual(
      (await promtoolDump(bin, all.dataDir)).sort(),
      dumpLines(HINTED),
      "promtool 2.42: the restored export",
    );
    assert.deepEqual([...await staleMarkerBits(all.dataDir)], [STALE_BITS]);

    // 2.42 serves the same (range selectors leave stale markers out).
    {
      await using server = await startPrometheus({
        bin: bin.prometheus,
        dataDir: all.dataDir,
        args: all.flags,
      });
      const served = await rawSamples(server, B - 1, B + 8 * H);
      const want = Object.entries(HINTED).map(([name, points]) => [
        JSON.stringify(Object.entries({ __name__: name, job: "a" }).sort()),
        points.filter(([, v]) => v !== STALE).map(([t, v]) => [t / 1000, String(v)]),
      ]).sort();
      const got = [...served].map(([key, s]) => [key, s.values]).sort();
      assert.deepEqual(got, want, "Prometheus 2.42 serving the restored export");
    }

    // A window inside the stale-series block's range, past block A: the head goes along.
    const from = S;
    const to = B + 3 * H;
    const part = await exportRestore(data, from, to, `${work}/part`, bin.prometheus);
    assert.equal(part.summary.head.included, true, part.summary.head.reason);
    assert.deepEqual(part.summary.blocks, [ULID_STALE]);
    assert.deepEqual(
      (await promtoolDump(bin, part.dataDir)).sort(),
      dumpLines(within(HINTED, from, to)),
      "promtool 2.42: the restored window",
    );
  });
});

Deno.test("blocks without the stale-series hint still bound the head", async () => {
  const bin = await findPrometheus("oldest");
  await withTempDir("promcase-stale-series-", async (work) => {
    const data = `${work}/data`;
    await buildDataDir(data, false);
    const all = await exportRestore(data, B, B + 8 * H, `${work}/all`, bin.prometheus);
    assert.equal(all.summary.head.included, true, all.summary.head.reason);
    assert.deepEqual((await promtoolDump(bin, all.dataDir)).sort(), dumpLines(UNHINTED));

    // The window ends before the newest block's end (B+6h): no head sample can be in it.
    const part = await exportRestore(data, S, B + 3 * H, `${work}/part`, bin.prometheus);
    assert.equal(part.summary.head.included, false, part.summary.head.reason);
    assert.deepEqual(
      (await promtoolDump(bin, part.dataDir)).sort(),
      dumpLines(within(UNHINTED, S, B + 3 * H)),
    );
  });
});
