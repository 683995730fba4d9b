// A pseudonymized export of the committed data dir (real Prometheus 2.42 data) with a Grafana
// dashboard: no original value of the chosen labels is left in the decompressed archive or the
// restored dir, promtool 2.42 dumps the restored dir as the source with the values mapped, the
// dashboard's variables, queries, legends, titles and links are mapped, and reveal maps back.
// The same over remote read: `export --url` of the live server, pseudonymized, holds no original
// and dumps as its plain twin with the values mapped.
import assert from "node:assert/strict";
import { isOneLineError, runCli, runCliJson } from "./_cli.ts";
import { findPrometheus, startPrometheus, waitFor } from "./_prometheus.ts";
import { promtoolDump } from "./_promtool.ts";
import { TEST_DATADIR, withTempDir } from "./_files.ts";
import { loadPseudonymKey, pseudonymOf, splitPort } from "../mod/pseudonym.ts";
import { readMapping } from "../mod/pseudonym_table.ts";

// The test data's values of the pseudonymized labels (instance, job, room, note), and a down
// target's host that only the captured context names. "prometheus" (job) is left out of the byte
// search: metric names such as prometheus_build_info hold it.
const ORIGINALS = ["127.0.0.1", "kitchen", "café", "Zürich", "db7.kitchen.example"];

// The Prometheus whose API is captured: itself (room kitchen) and a target that is down. Its
// series carry the instance's host in seen_from too, a label not chosen: mapped all the same.
const CONFIG = `global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{{port}}"]
        labels: {room: kitchen, seen_from: "127.0.0.1"}
  - job_name: node
    static_configs:
      - targets: ["db7.kitchen.example:9100"]
`;
const LABELS = ["instance", "job", "room", "note"];

const DASHBOARD = {
  uid: "pz-test",
  title: "127.0.0.1 kitchen overview",
  templating: {
    list: [{
      name: "instance",
      type: "query",
      query: "label_values(up, instance)",
      current: { text: "127.0.0.1:37895", value: "127.0.0.1:37895" },
      options: [{ text: "127.0.0.1:37895", value: "127.0.0.1:37895", selected: true }],
    }, {
      name: "room",
      type: "custom",
      query: "kitchen,café",
      current: { text: "kitchen", value: "kitchen" },
    }],
  },
  panels: [{
    title: "Temperature in kitchen",
    targets: [{
      expr: 'promcase_temperature_celsius{room="kitchen"} or up{instance="127.0.0.1:37895"}',
      legendFormat: "{{instance}} kitchen",
    }],
    links: [{ title: "target", url: "http://127.0.0.1:37895/graph" }],
  }],
};

async function gunzip(path: string): Promise<Uint8Array> {
  const file = await Deno.open(path);
  const stream = file.readable.pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function contains(haystack: Uint8Array, needle: string): boolean {
  // latin1 keeps one char per byte, so a UTF-8 needle is searched byte for byte.
  const text = new TextDecoder("latin1").decode(haystack);
  return text.includes(new TextDecoder("latin1").decode(new TextEncoder().encode(needle)));
}

async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await allFiles(p));
    else if (e.isFile) out.push(p);
  }
  return out;
}

/**
 * A promtool dump line with the chosen labels' values mapped as promcase maps them; with
 * `originals` (the export's mapping table), also these where other labels carry them as whole
 * tokens (metric names excepted).
 */
function mapLine(line: string, key: Uint8Array, originals: string[] = []): string {
  const sorted = [...originals].sort((a, b) => b.length - a.length);
  const alternation = sorted.map((o) => o.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|");
  const known = new RegExp(`(?<![A-Za-z0-9_])(?:${alternation})(?![A-Za-z0-9_])`, "gu");
  return line.replace(/(\w+)="((?:[^"\\]|\\.)*)"/g, (all, name: string, value: string) => {
    if (!LABELS.includes(name)) {
      if (name === "__name__" || sorted.length === 0) return all;
      const mapped = JSON.parse(`"${value}"`).replace(known, (o: string) => pseudonymOf(key, o));
      return `${name}=${JSON.stringify(mapped)}`;
    }
    const { host, port } = splitPort(JSON.parse(`"${value}"`));
    return `${name}="${pseudonymOf(key, host)}${port}"`;
  });
}

Deno.test("pseudonymized export: no original left, series and dashboards mapped, reveal maps back", async () => {
  const bin = await findPrometheus("oldest");
  await withTempDir("promcase-pz-e2e-", async (work) => {
    await using api = await startPrometheus({
      bin: bin.prometheus,
      dataDir: `${work}/api-data`,
      config: CONFIG,
    });
    await waitFor(
      async () => {
        const t = await api.api("/api/v1/targets") as { activeTargets: unknown[] };
        return t.activeTargets.length === 2;
      },
      30_000,
      "both targets",
    );
    const keyPath = `${work}/pseudonym.key`;
    await Deno.writeTextFile(`${work}/dash.json`, JSON.stringify({ dashboard: DASHBOARD }));
    const archive = `${work}/a.tar.gz`;
    const exported = await runCli([
      "export",
      TEST_DATADIR,
      "--from",
      "0",
      "--to",
      "now",
      "-o",
      archive,
      "--prometheus-url",
      api.url,
      "--dashboard-file",
      `${work}/dash.json`,
      "--pseudonymize",
      LABELS.join(","),
      "--pseudonym-key",
      keyPath,
    ]);
    assert.equal(exported.code, 0, exported.stderr);
    assert.equal((await Deno.stat(keyPath)).mode! & 0o777, 0o600);
    const { key } = await loadPseudonymKey(keyPath);

    // Byte search: the decompressed archive and every restored file.
    const tar = await gunzip(archive);
    for (const o of ORIGINALS) assert.ok(!contains(tar, o), `${o} in the archive`);
    assert.ok(contains(tar, pseudonymOf(key, "127.0.0.1") + ":37895"));
    const restored = await runCliJson<{ dataDir: string; dir: string }>([
      "restore",
      archive,
      "--into",
      `${work}/restored`,
    ]);
    for (const path of await allFiles(restored.dir)) {
      const bytes = await Deno.readFile(path);
      for (const o of ORIGINALS) assert.ok(!contains(bytes, o), `${o} in ${path}`);
    }

    // Every series: the restored dir dumps as the source with the values mapped.
    const source = (await promtoolDump(bin, TEST_DATADIR)).map((l) => mapLine(l, key)).sort();
    const copy = (await promtoolDump(bin, restored.dataDir)).sort();
    assert.equal(copy.length, 13428);
    assert.deepEqual(copy, source);

    // The dashboard: variable values, queries, legend, titles and links mapped.
    const text = new TextDecoder().decode(tar);
    const host = pseudonymOf(key, "127.0.0.1");
    const kitchen = pseudonymOf(key, "kitchen");
    for (
      const expected of [
        `"value": "${host}:37895"`,
        `"title": "${host} ${kitchen} overview"`,
        `"query": "${kitchen},${pseudonymOf(key, "café")}"`,
        `"expr": "promcase_temperature_celsius{room=\\"${kitchen}\\"} or up{instance=\\"${host}:37895\\"}"`,
        `"legendFormat": "{{instance}} ${kitchen}"`,
        `"url": "http://${host}:37895/graph"`,
        `"query": "label_values(up, instance)"`,
      ]
    ) assert.ok(text.includes(expected), expected);
    const manifest = JSON.parse(await Deno.readTextFile(`${restored.dir}/manifest.json`));
    assert.deepEqual(manifest.pseudonymized.labels, LABELS);

    // reveal: one pseudonym with its port, the whole archive, and --json.
    const one = await runCli(["reveal", "--pseudonym-key", keyPath, `${host}:37895`]);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.stdout, `${host}:37895\t127.0.0.1:37895\n`);
    const table = await runCliJson<Record<string, string>>([
      "reveal",
      "--pseudonym-key",
      keyPath,
      archive,
    ]);
    assert.equal(table[kitchen], "kitchen");
    assert.equal(table[pseudonymOf(key, "café ☕ Zürich")], "café ☕ Zürich");
    assert.equal(table[pseudonymOf(key, "prometheus")], "prometheus");
    assert.equal(table[pseudonymOf(key, "db7.kitchen.example")], "db7.kitchen.example");
    // The captured targets, config and flags are there, mapped.
    assert.ok(text.includes(`${pseudonymOf(key, "db7.kitchen.example")}:9100`));
    assert.ok(text.includes('"activeTargets"'));
    // A key without a mapping table reveals nothing: one line.
    const other = await runCli(["reveal", "--pseudonym-key", `${work}/none.key`, host]);
    assert.ok(isOneLineError(other), other.stderr);

    // export --url of the live server, pseudonymized, and plain: the same samples, mapped.
    await waitFor(
      async () => {
        const q = await api.query("count_over_time(up[1m])", Date.now() / 1000) as {
          result: { value: [number, string] }[];
        };
        return q.result.length > 0 && Number(q.result[0].value[1]) >= 3;
      },
      30_000,
      "three scrapes of the live server",
    );
    const to = String(Date.now() - 1000);
    const remote = (name: string, extra: string[]) =>
      runCliJson<{ archive: string }>([
        "export",
        "--url",
        api.url,
        "--from",
        "0",
        "--to",
        to,
        "-o",
        `${work}/${name}.tar.gz`,
        "--dashboard-file",
        `${work}/dash.json`,
        ...extra,
      ]);
    await remote("url-plain", []);
    // A key of its own: its table holds exactly what this export mapped.
    const urlKeyPath = `${work}/url.key`;
    await remote("url-pz", ["--pseudonymize", LABELS.join(","), "--pseudonym-key", urlKeyPath]);
    const urlKey = (await loadPseudonymKey(urlKeyPath)).key;
    const urlOriginals = [...(await readMapping(`${urlKeyPath}.map`)).values()];
    const urlTar = await gunzip(`${work}/url-pz.tar.gz`);
    for (const o of ORIGINALS) assert.ok(!contains(urlTar, o), `${o} in the --url archive`);
    const port = new URL(api.url).port;
    assert.ok(contains(urlTar, `${pseudonymOf(urlKey, "127.0.0.1")}:${port}`));

    const dumps = [];
    for (const name of ["url-plain", "url-pz"]) {
      const r = await runCliJson<{ dataDir: string }>([
        "restore",
        `${work}/${name}.tar.gz`,
        "--into",
        `${work}/${name}`,
      ]);
      dumps.push((await promtoolDump(bin, r.dataDir)).sort());
    }
    for (const path of await allFiles(`${work}/url-pz`)) {
      const bytes = await Deno.readFile(path);
      for (const o of ORIGINALS) assert.ok(!contains(bytes, o), `${o} in ${path}`);
    }
    assert.ok(dumps[0].length > 100, String(dumps[0].length));
    const mappedPlain = dumps[0].map((l) => mapLine(l, urlKey, urlOriginals)).sort();
    assert.deepEqual(dumps[1], mappedPlain);
    // Values of chosen labels in labels not chosen: seen_from (the instance's host), dialer_name
    // (a job's name).
    assert.ok(dumps[1].some((l) => l.includes(`seen_from="${pseudonymOf(urlKey, "127.0.0.1")}"`)));
    assert.ok(dumps[1].some((l) => l.includes(`dialer_name="${pseudonymOf(urlKey, "node")}"`)));
  });
});

Deno.test("pseudonymize: refused with --raw, --drop-label collisions refused in one line", async () => {
  await withTempDir("promcase-pz-e2e-", async (work) => {
    const raw = await runCli([
      "export",
      TEST_DATADIR,
      "--at",
      "now",
      "--raw",
      "--pseudonymize",
      "instance",
      "--pseudonym-key",
      `${work}/k`,
    ]);
    assert.equal(raw.code, 2);
    assert.ok(isOneLineError(raw), raw.stderr);
    assert.match(raw.stderr, /not with --raw/);
    const drop = await runCli([
      "export",
      TEST_DATADIR,
      "--from",
      "0",
      "--to",
      "now",
      "-o",
      `${work}/b.tar.gz`,
      "--no-prometheus-api",
      "--drop-label",
      "handler",
    ]);
    assert.equal(drop.code, 1);
    assert.ok(isOneLineError(drop), drop.stderr);
    assert.match(drop.stderr, /--drop-label handler: .*promcase_requests_total/);
    await assert.rejects(Deno.stat(`${work}/b.tar.gz`));
  });
});
