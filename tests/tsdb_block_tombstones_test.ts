import assert from "node:assert/strict";
import { withTempDir } from "./_files.ts";
import { IndexReader } from "../mod/tsdb/index.ts";
import { parseBlockMeta } from "../mod/tsdb/meta.ts";
import {
  addInterval,
  countTombstones,
  encodeTombstones,
  isDeleted,
  parseTombstones,
  readTombstones,
  type Tombstones,
  writeTombstones,
} from "../mod/tsdb/tombstones.ts";

const DATA = new URL("./testdata/", import.meta.url).pathname;

async function blockIn(fixture: string): Promise<string> {
  for await (const e of Deno.readDir(`${DATA}tsdb/${fixture}`)) {
    if (e.isDirectory) return `${DATA}tsdb/${fixture}/${e.name}`;
  }
  throw new Error(`no block in ${fixture}`);
}

Deno.test("an empty tombstones file is exactly the 9 bytes Prometheus writes", async () => {
  const empty = [0x01, 0x30, 0xba, 0x30, 0x01, 0x00, 0x00, 0x00, 0x00];
  assert.deepEqual([...encodeTombstones()], empty);
  assert.deepEqual([...await Deno.readFile(`${await blockIn("native")}/tombstones`)], empty);
  assert.equal(parseTombstones(new Uint8Array(empty)).size, 0);
  await withTempDir("promcase-tsdb-tombstones-", async (dir) => {
    assert.equal((await readTombstones(dir)).size, 0); // a missing file: no tombstones
    await writeTombstones(dir);
    assert.deepEqual([...await Deno.readFile(`${dir}/tombstones`)], empty);
  });
});

Deno.test("tombstones written by Prometheus' delete API are read back as requested", async () => {
  const dir = await blockIn("tombstoned");
  const stones = await readTombstones(dir);
  const meta = parseBlockMeta(await Deno.readTextFile(`${dir}/meta.json`));
  assert.equal(countTombstones(stones), meta.stats.numTombstones);
  assert.equal(meta.stats.numTombstones, 4);

  // Map series IDs to metric names to check which intervals belong where.
  using index = await IndexReader.open(`${dir}/index`);
  const byName = new Map<string, { mint: bigint; maxt: bigint }[]>();
  const range = new Map<string, [bigint, bigint]>();
  for await (const s of index.series()) {
    const list = stones.get(s.id);
    if (!list) continue;
    const key = s.labels.map((l) => `${l.name}=${l.value}`).join(",");
    byName.set(key, list);
    range.set(key, [s.chunks[0].mint, s.chunks[s.chunks.length - 1].maxt]);
  }
  assert.deepEqual(byName.get("__name__=promcase_requests_total,code=500,handler=/api/v1"), [
    { mint: 1767227100000n, maxt: 1767228900500n },
  ]);
  assert.deepEqual(byName.get("__name__=promcase_temperature_celsius,room=café ☕"), [
    { mint: 1767226500000n, maxt: 1767226800000n },
    { mint: 1767230000250n, maxt: 1767230100000n },
  ]);
  // Deleting all of a series: Prometheus clamps the interval to the series' samples.
  const [first, last] = range.get("__name__=promcase_edge,kind=values")!;
  assert.deepEqual(byName.get("__name__=promcase_edge,kind=values"), [{ mint: first, maxt: last }]);
  assert.equal(byName.size, 3);

  // Re-encoding gives a file that parses to the same tombstones (Go writes them in map order).
  const again = parseTombstones(encodeTombstones(stones));
  assert.deepEqual(again, stones);
  assert.equal(encodeTombstones(stones).length, (await Deno.readFile(`${dir}/tombstones`)).length);
});

Deno.test("tombstone intervals merge like Prometheus' Intervals.Add", () => {
  let list = addInterval([], { mint: 10n, maxt: 20n });
  list = addInterval(list, { mint: 30n, maxt: 40n });
  assert.equal(list.length, 2);
  list = addInterval(list, { mint: 21n, maxt: 29n }); // adjacent on both sides: one interval
  assert.deepEqual(list, [{ mint: 10n, maxt: 40n }]);
  list = addInterval(list, { mint: -100n, maxt: -50n });
  assert.deepEqual(list, [{ mint: -100n, maxt: -50n }, { mint: 10n, maxt: 40n }]);
  assert.ok(isDeleted(list, 10n) && isDeleted(list, 40n) && isDeleted(list, -75n));
  assert.ok(!isDeleted(list, 41n) && !isDeleted(list, 0n));

  const stones: Tombstones = new Map([
    [7, [{ mint: -(2n ** 63n), maxt: 2n ** 63n - 1n }]],
    [2, [{ mint: 1n, maxt: 2n }, { mint: 5n, maxt: 9n }]],
  ]);
  const bytes = encodeTombstones(stones);
  assert.deepEqual(parseTombstones(bytes), new Map([...stones].sort(([a], [b]) => a - b)));
});

Deno.test("damaged tombstones files are rejected", () => {
  const bytes = encodeTombstones(new Map([[3, [{ mint: 1n, maxt: 2n }]]]));
  const flip = (i: number) => {
    const b = bytes.slice();
    b[i] ^= 1;
    return b;
  };
  assert.throws(() => parseTombstones(flip(0)), /bad magic/);
  assert.throws(() => parseTombstones(flip(4)), /unsupported version/);
  assert.throws(() => parseTombstones(flip(6)), /CRC32C mismatch/);
  assert.throws(() => parseTombstones(bytes.subarray(0, 8)), /too short/);
  // The version byte is outside the CRC: only the entries are covered.
  assert.doesNotThrow(() => parseTombstones(bytes));
});
