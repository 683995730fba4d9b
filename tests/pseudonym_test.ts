// Pseudonyms (mod/pseudonym.ts) and the re-sort of relabelled series (mod/pseudonym_series.ts).
import assert from "node:assert/strict";
import {
  loadPseudonymKey,
  Pseudonymizer,
  type PseudonymizerOptions,
  pseudonymOf,
  type PseudonymSpec,
  revealPseudonyms,
  splitPort,
} from "../mod/pseudonym.ts";
import { KnownValues } from "../mod/pseudonym_known.ts";
import { mappingPath, readMapping } from "../mod/pseudonym_table.ts";
import { relabelSorted } from "../mod/pseudonym_series.ts";
import { compareLabels, type Label } from "../mod/tsdb/index.ts";
import type { SeriesChunks } from "../mod/tsdb/series.ts";
import { withTempDir } from "./_files.ts";

const KEY_A = new Uint8Array(32).fill(1);
const KEY_B = new Uint8Array(32).fill(2);

function spec(labels: string[], patterns: string[] = [], dropLabels: string[] = []) {
  return { labels, patterns, dropLabels };
}

/**
 * Runs `fn` with a pseudonymizer whose mapping table is in a temp dir, then commits the table and
 * returns its originals, sorted (what `reveal ARCHIVE` would show).
 */
async function mappedOriginals(
  pzSpec: PseudonymSpec,
  fn: (pz: Pseudonymizer) => void,
  options: PseudonymizerOptions = {},
): Promise<string[]> {
  let originals: string[] = [];
  await withTempDir("promcase-pz-", async (dir) => {
    const pz = new Pseudonymizer(KEY_A, pzSpec, { ...options, tablePath: `${dir}/key.map` });
    pz.useSpillDir(dir);
    fn(pz);
    await pz.commitTable();
    originals = [...(await readMapping(`${dir}/key.map`)).values()].sort();
  });
  return originals;
}

Deno.test("pseudonyms are stable for one key, differ with another, and keep a :port", () => {
  const a = new Pseudonymizer(KEY_A, spec(["instance"]));
  const a2 = new Pseudonymizer(KEY_A, spec(["instance"]));
  const b = new Pseudonymizer(KEY_B, spec(["instance"]));
  const p = a.mapValue("db1.example.com:9100");
  assert.match(p, /^anon-[0-9a-f]{12}:9100$/);
  assert.equal(a2.mapValue("db1.example.com:9100"), p);
  assert.equal(a.mapValue("db1.example.com:9090"), p.replace(":9100", ":9090"));
  assert.notEqual(b.mapValue("db1.example.com:9100"), p);
  assert.equal(p, pseudonymOf(KEY_A, "db1.example.com") + ":9100");
  assert.deepEqual(splitPort("[fe80::1]:9100"), { host: "[fe80::1]", port: ":9100" });
  // A bare IPv6 address has no port to keep.
  assert.deepEqual(splitPort("fe80::1"), { host: "fe80::1", port: "" });
});

Deno.test("series labels: chosen labels mapped, patterns in any label, dropped labels gone", () => {
  const pz = new Pseudonymizer(KEY_A, spec(["instance"], ["acme\\.com"], ["pod"]));
  const out = pz.mapLabels([
    { name: "__name__", value: "up" },
    { name: "instance", value: "db1.acme.com:9100" },
    { name: "pod", value: "api-7d9" },
    { name: "url", value: "https://api.acme.com/x" },
  ]);
  const host = pseudonymOf(KEY_A, "db1.acme.com");
  assert.deepEqual(out, [
    { name: "__name__", value: "up" },
    { name: "instance", value: `${host}:9100` },
    { name: "url", value: `https://api.${pseudonymOf(KEY_A, "acme.com")}/x` },
  ]);
});

Deno.test("context text: whole tokens, longest first, JSON strings only, registered from labels", async () => {
  const originals = await mappedOriginals(spec(["instance", "job"]), (pz) => {
    // The targets API names an instance no series carried: registering finds it.
    const targets = {
      data: { activeTargets: [{ labels: { instance: "db2:9100", job: "node" }, health: "down" }] },
    };
    pz.registerJson(targets);
    pz.mapValue("db2.example.com:9100");
    // Regular-expression syntax in a value is matched literally.
    assert.equal(pz.mapText("a db-1 (x|y)+ b"), "a db-1 (x|y)+ b");
    pz.mapValue("db-1");
    pz.mapValue("(x|y)+");
    assert.equal(
      pz.mapText("a db-1 (x|y)+ b"),
      `a ${pseudonymOf(KEY_A, "db-1")} ${pseudonymOf(KEY_A, "(x|y)+")} b`,
    );
    const db2 = pseudonymOf(KEY_A, "db2");
    const long = pseudonymOf(KEY_A, "db2.example.com");
    const node = pseudonymOf(KEY_A, "node");
    assert.equal(
      pz.mapText('up{instance="db2.example.com:9100"} db2:9100 node_load1 node'),
      `up{instance="${long}:9100"} ${db2}:9100 node_load1 ${node}`,
    );
    const doc = JSON.parse(pz.mapContextText(JSON.stringify({ node: { expr: "node", n: 1 } })));
    // Keys stay (they are label or field names), strings are mapped.
    assert.deepEqual(doc, { node: { expr: node, n: 1 } });
    assert.ok(!JSON.stringify(pz.manifestInfo()).includes("db2"));
    assert.equal(pz.values, 5);
  });
  assert.deepEqual(originals, ["(x|y)+", "db-1", "db2", "db2.example.com", "node"]);
});

Deno.test("dashboard variables named after a chosen label register their values", async () => {
  const originals = await mappedOriginals(spec(["room", "instance"]), (pz) => {
    pz.registerJson({
      templating: {
        list: [
          { name: "room", type: "custom", query: "hall,Big kitchen : kitchen", current: {} },
          {
            name: "instance",
            type: "query",
            current: { text: ["All"], value: ["$__all"] },
            options: [{ text: "db9:9100", value: "db9:9100" }],
          },
          // Not a chosen label, or no variable: nothing registered.
          { name: "env", type: "custom", query: "prod,staging" },
          { name: "room", query: "attic" },
        ],
      },
    });
    assert.equal(pz.mapText("hall prod"), `${pseudonymOf(KEY_A, "hall")} prod`);
  });
  assert.deepEqual(originals, ["Big kitchen", "db9", "hall", "kitchen"]);
});

function series(labels: Record<string, string>, t: number): SeriesChunks {
  const l: Label[] = Object.entries(labels).map(([name, value]) => ({ name, value }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  return {
    labels: l,
    chunks: [{
      encoding: 1,
      data: new Uint8Array([t & 255, 1, 2]),
      mint: BigInt(t),
      maxt: BigInt(t),
    }],
  };
}

async function* gen(items: SeriesChunks[]): AsyncGenerator<SeriesChunks> {
  for (const s of items) yield s;
}

Deno.test("relabelled series come back in label order through spilled runs", async () => {
  await withTempDir("promcase-pz-", async (dir) => {
    const pz = new Pseudonymizer(KEY_A, spec(["instance"]));
    const input = Array.from(
      { length: 200 },
      (_, i) => series({ __name__: "up", instance: `h${i}:80` }, i),
    );
    // A tiny budget: one run per few series, merged by the heap.
    const r = await relabelSorted(gen(input), dir, {
      relabel: (l) => pz.mapLabels(l),
      dropLabels: [],
      budget: 500,
      keep: (l) => l[1].value !== "h7:80",
    });
    assert.ok(r.runs > 10);
    assert.equal(r.excluded, 1);
    const out: SeriesChunks[] = [];
    for await (const s of r.source) {
      out.push({ labels: s.labels, chunks: s.chunks.map((c) => ({ ...c, data: c.data.slice() })) });
    }
    assert.equal(out.length, 199);
    for (let i = 1; i < out.length; i++) {
      assert.ok(compareLabels(out[i - 1].labels, out[i].labels) < 0);
    }
    const byValue = new Map(out.map((s) => [s.labels[1].value, s.chunks[0].mint]));
    assert.equal(byValue.get(pz.mapValue("h42:80")), 42n);
    // Each series keeps its own chunk bytes (copied out of the source's reused memory).
    for (const s of out) assert.equal(s.chunks[0].data[0], Number(s.chunks[0].mint) & 255);
  });
});

Deno.test("runs spill when the arena of encoded series fills, every chunk byte intact", async () => {
  await withTempDir("promcase-pz-", async (dir) => {
    const pz = new Pseudonymizer(KEY_A, spec(["instance"]));
    // 150 bytes of chunk data a series: five fill the 1000-byte arena long before their keys do.
    const input = Array.from({ length: 50 }, (_, i) => {
      const s = series({ __name__: "up", instance: `h${i}:80` }, i);
      s.chunks[0].data = new Uint8Array(150).map((_, k) => (i * 7 + k) % 256);
      return s;
    });
    const r = await relabelSorted(gen(input), dir, {
      relabel: (l) => pz.mapLabels(l),
      dropLabels: [],
      budget: 1000,
    });
    assert.ok(r.runs >= 8, String(r.runs));
    const seen = new Map<string, Uint8Array>();
    for await (const s of r.source) seen.set(s.labels[1].value, s.chunks[0].data.slice());
    assert.equal(seen.size, 50);
    for (const [i, s] of input.entries()) {
      assert.deepEqual(seen.get(pz.mapValue(`h${i}:80`)), s.chunks[0].data, `series ${i}`);
    }
  });
});

Deno.test("values of chosen labels in other labels are mapped once every series is read", async () => {
  await withTempDir("promcase-pz-", async (dir) => {
    const pz = new Pseudonymizer(KEY_A, spec(["instance"]));
    // The first series names h2 in nodename before any series carries instance h2; the last two
    // differ only in nodename, which maps both to the same labels.
    const input = [
      series({ __name__: "h2", instance: "h1:80", nodename: "h2", url: "http://h2:80/x" }, 1),
      ...Array.from({ length: 30 }, (_, i) => series({ __name__: "up", instance: `h${i}:80` }, i)),
    ];
    const r = await relabelSorted(gen(input), dir, {
      relabel: (l) => pz.mapLabels(l),
      relabelAfter: (l) => pz.mapOtherLabels(l),
      dropLabels: [],
      budget: 300,
    });
    assert.ok(r.runs > 3);
    assert.equal(r.changedAfter, 1);
    const out: Label[][] = [];
    for await (const s of r.source) out.push(s.labels);
    assert.equal(out.length, 31);
    for (let i = 1; i < out.length; i++) assert.ok(compareLabels(out[i - 1], out[i]) < 0);
    const h2 = pseudonymOf(KEY_A, "h2");
    assert.deepEqual(out.find((l) => l[0].value === "h2"), [
      { name: "__name__", value: "h2" },
      { name: "instance", value: `${pseudonymOf(KEY_A, "h1")}:80` },
      { name: "nodename", value: h2 },
      { name: "url", value: `http://${h2}:80/x` },
    ]);

    const twins = [
      series({ __name__: "up", instance: "h1:80", nodename: "h2" }, 1),
      series({ __name__: "up", instance: "h1:80", nodename: h2 }, 2),
      series({ __name__: "up", instance: "h2:80" }, 3),
    ];
    const collided = await relabelSorted(gen(twins), dir, {
      relabel: (l) => pz.mapLabels(l),
      relabelAfter: (l) => pz.mapOtherLabels(l),
      dropLabels: [],
    });
    await assert.rejects(Array.fromAsync(collided.source), /two series map to the same labels/);

    // Twins the first pass made (a value that is its pseudonym already) pass the late pass
    // unchanged, after 35 other series: still refused as twins, not as runs out of order.
    const late = await relabelSorted(
      gen([
        ...Array.from({ length: 35 }, (_, i) => series({ __name__: `a${i}` }, i)),
        series({ __name__: "up", instance: "h1:80" }, 1),
        series({ __name__: "up", instance: `${pseudonymOf(KEY_A, "h1")}:80` }, 2),
      ]),
      dir,
      {
        relabel: (l) => pz.mapLabels(l),
        relabelAfter: (l) => pz.mapOtherLabels(l),
        dropLabels: [],
      },
    );
    await assert.rejects(Array.fromAsync(late.source), /two series map to the same labels/);
  });
});

Deno.test("a series larger than the spill budget gets a run of its own, its data intact", async () => {
  await withTempDir("promcase-pz-", async (dir) => {
    const pz = new Pseudonymizer(KEY_A, spec(["instance"]));
    const big = series({ __name__: "up", instance: "big:80" }, 5);
    big.chunks[0].data = new Uint8Array(2000).map((_, i) => i % 251);
    const input = [
      series({ __name__: "up", instance: "a:80" }, 1),
      big,
      series({ __name__: "up", instance: "b:80" }, 2),
    ];
    const r = await relabelSorted(gen(input), dir, {
      relabel: (l) => pz.mapLabels(l),
      dropLabels: [],
      budget: 1000,
    });
    const seen = new Map<string, Uint8Array>();
    for await (const s of r.source) seen.set(s.labels[1].value, s.chunks[0].data.slice());
    assert.deepEqual(seen.get(pz.mapValue("big:80")), big.chunks[0].data);
    assert.deepEqual(seen.get(pz.mapValue("a:80")), new Uint8Array([1, 1, 2]));
    assert.equal(seen.size, 3);
  });
});

Deno.test("series that collide after --drop-label are refused in one line naming the label", async () => {
  await withTempDir("promcase-pz-", async (dir) => {
    const pz = new Pseudonymizer(KEY_A, spec([], [], ["pod"]));
    const input = [
      series({ __name__: "up", pod: "a", job: "x" }, 1),
      series({ __name__: "up", job: "y" }, 2),
      series({ __name__: "up", pod: "b", job: "x" }, 3),
    ];
    const r = await relabelSorted(gen(input), dir, {
      relabel: (l) => pz.mapLabels(l),
      dropLabels: ["pod"],
      budget: 1,
    });
    await assert.rejects(
      async () => {
        for await (const _ of r.source) { /* drain */ }
      },
      (err: Error) => {
        assert.match(err.message, /^--drop-label pod: .*\{__name__="up", job="x"\}/);
        assert.ok(!err.message.includes("\n"));
        return true;
      },
    );
  });
});

Deno.test("the key file is created 0600 and reused; reveal checks the table against the key", async () => {
  await withTempDir("promcase-pz-", async (dir) => {
    const path = `${dir}/key`;
    const first = await loadPseudonymKey(path);
    assert.ok(first.created);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const again = await loadPseudonymKey(path);
    assert.ok(!again.created);
    assert.deepEqual(again.key, first.key);
    const exportOnce = async (values: string[]) => {
      const pz = new Pseudonymizer(first.key, spec(["instance"]), {
        tablePath: mappingPath(path),
      });
      pz.useSpillDir(dir);
      const mapped = values.map((v) => pz.mapValue(v));
      return { mapped, table: await pz.commitTable() };
    };
    const one = await exportOnce(["db1:9100"]);
    const p = one.mapped[0];
    assert.deepEqual([one.table?.values, one.table?.added, one.table?.lines], [1, 1, 1]);
    const two = await exportOnce(["db1:9090", "db2:9100"]);
    assert.deepEqual([two.table?.values, two.table?.added, two.table?.lines], [2, 1, 2]);
    assert.equal((await Deno.stat(mappingPath(path))).mode! & 0o777, 0o600);
    const table = await readMapping(mappingPath(path));
    assert.deepEqual(
      revealPseudonyms(first.key, table, [p, "anon-000000000000"]),
      new Map([[p, "db1:9100"], ["anon-000000000000", null]]),
    );
    assert.equal(
      await Deno.readTextFile(mappingPath(path)),
      [`${pseudonymOf(first.key, "db1")}\t"db1"`, `${pseudonymOf(first.key, "db2")}\t"db2"`]
        .sort().join("\n") + "\n",
    );
    assert.throws(() => revealPseudonyms(KEY_B, table, [p]), /does not match the key/);
  });
});

Deno.test("a cache of 2 pseudonyms and a journal spilling every line keep every value once", async () => {
  const values = Array.from({ length: 40 }, (_, i) => i % 3 === 0 ? `café ☕ ${i}` : `db${i}`);
  await withTempDir("promcase-pz-", async (dir) => {
    const tablePath = `${dir}/key.map`;
    // A table from an earlier export: unsorted, one value again, a blank line.
    const earlier = [`db5`, `zeta`, `db1`].map((v) =>
      `${pseudonymOf(KEY_A, v)}\t${JSON.stringify(v)}`
    );
    await Deno.writeTextFile(tablePath, `${earlier.join("\n")}\n\n`);
    const pz = new Pseudonymizer(KEY_A, spec(["instance"]), {
      tablePath,
      cacheEntries: 2,
      // Every line its own run; reads of 7 bytes cut lines and UTF-8 characters.
      journal: { budgetBytes: 1, readBytes: 7 },
      known: { initialSlots: 2 },
    });
    pz.useSpillDir(`${dir}`);
    for (let round = 0; round < 3; round++) {
      for (const v of values) {
        assert.equal(pz.mapValue(`${v}:9100`), `${pseudonymOf(KEY_A, v)}:9100`);
      }
    }
    assert.equal(pz.values, 40);
    const table = await pz.commitTable();
    assert.deepEqual([table?.values, table?.added, table?.lines], [40, 38, 41]);
    const text = await Deno.readTextFile(tablePath);
    const want = [...values, "zeta"].map((v) => `${pseudonymOf(KEY_A, v)}\t${JSON.stringify(v)}`);
    assert.equal(text, want.sort().join("\n") + "\n");
    // The runs are gone; only the table is left.
    assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["key.map"]);
  });
});

Deno.test("a table holding another original for a pseudonym, or a bad line, is refused unchanged", async () => {
  await withTempDir("promcase-pz-", async (dir) => {
    const tablePath = `${dir}/key.map`;
    for (
      const [table, re] of [
        [
          `${pseudonymOf(KEY_A, "db1")}\t"db-other"\n`,
          /same pseudonym anon-[0-9a-f]{12} \(in this/,
        ],
        [`${pseudonymOf(KEY_A, "db2")}\t"db2"\nnot a line\n`, /key\.map:2: not a PSEUDONYM<TAB>/],
      ]
    ) {
      await Deno.writeTextFile(tablePath, table as string);
      const pz = new Pseudonymizer(KEY_A, spec(["instance"]), { tablePath });
      pz.useSpillDir(dir);
      pz.mapValue("db1:9100");
      await assert.rejects(pz.commitTable(), re as RegExp);
      assert.equal(await Deno.readTextFile(tablePath), table);
      assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["key.map"]);
    }
  });
});

Deno.test("known values: found in text as the alternation of them, longest first, would find them", () => {
  // Random values and text over a small alphabet with word and non-word characters, so that
  // values overlap, nest and touch token boundaries; the table starts at 2 slots and grows.
  let seed = 7;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const alphabet = "ab_1.: -é☕";
  const word = (n: number) =>
    Array.from({ length: n }, () => alphabet[rnd(alphabet.length)]).join("");
  for (let round = 0; round < 20; round++) {
    const known = new KnownValues({ initialSlots: 2 });
    const values = new Set<string>();
    for (let i = 0; i < 1 + rnd(60); i++) values.add(word(1 + rnd(6)));
    for (const v of values) assert.ok(known.add(v));
    for (const v of values) assert.ok(!known.add(v));
    assert.equal(known.size, values.size);
    assert.ok(known.slots >= 2 * values.size);
    const text = word(2000);
    const sorted = [...values].sort((a, b) => b.length - a.length);
    const escaped = sorted.map((o) => o.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|");
    const re = new RegExp(`(?<![A-Za-z0-9_])(?:${escaped})(?![A-Za-z0-9_])`, "gu");
    const want = [...text.matchAll(re)].map((m) => [m.index!, m.index! + m[0].length]);
    const got: number[][] = [];
    known.findTokens(text, (start, end) => got.push([start, end]));
    assert.deepEqual(got, want, `round ${round}`);
    assert.ok(want.length > 0 || values.size < 5, `round ${round} found nothing`);
  }
});
