// Pseudonyms (mod/pseudonym.ts) and the re-sort of relabelled series (mod/pseudonym_series.ts).
import assert from "node:assert/strict";
import {
  loadPseudonymKey,
  mappingPath,
  Pseudonymizer,
  pseudonymOf,
  readMapping,
  revealPseudonyms,
  saveMapping,
  splitPort,
} from "../mod/pseudonym.ts";
import { relabelSorted } from "../mod/pseudonym_series.ts";
import { compareLabels, type Label } from "../mod/tsdb/index.ts";
import type { SeriesChunks } from "../mod/tsdb/series.ts";
import { withTempDir } from "./_files.ts";

const KEY_A = new Uint8Array(32).fill(1);
const KEY_B = new Uint8Array(32).fill(2);

function spec(labels: string[], patterns: string[] = [], dropLabels: string[] = []) {
  return { labels, patterns, dropLabels };
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

Deno.test("context text: whole tokens, longest first, JSON strings only, registered from labels", () => {
  const pz = new Pseudonymizer(KEY_A, spec(["instance", "job"]));
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
  assert.deepEqual([...pz.entries().values()].sort(), [
    "(x|y)+",
    "db-1",
    "db2",
    "db2.example.com",
    "node",
  ]);
  assert.ok(!JSON.stringify(pz.manifestInfo()).includes("db2"));
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
    const pz = new Pseudonymizer(first.key, spec(["instance"]));
    const p = pz.mapValue("db1:9100");
    assert.equal(await saveMapping(mappingPath(path), pz.entries()), 1);
    assert.equal(await saveMapping(mappingPath(path), pz.entries()), 0);
    assert.equal((await Deno.stat(mappingPath(path))).mode! & 0o777, 0o600);
    const table = await readMapping(mappingPath(path));
    assert.deepEqual(
      revealPseudonyms(first.key, table, [p, "anon-000000000000"]),
      new Map([[p, "db1:9100"], ["anon-000000000000", null]]),
    );
    assert.throws(() => revealPseudonyms(KEY_B, table, [p]), /does not match the key/);
  });
});
