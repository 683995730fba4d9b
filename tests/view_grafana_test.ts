import assert from "node:assert/strict";
import { PromcaseError } from "../mod/errors.ts";
import {
  COMPOSE_PROMETHEUS_URL,
  COMPOSE_PROVISIONING_DASHBOARDS_FILE,
  COMPOSE_PROVISIONING_DATASOURCES_FILE,
  composeFile,
  containerPrometheusArgs,
  dashboardFilePath,
  dashboardLink,
  DASHBOARDS_DIR,
  DEFAULT_GRAFANA_IMAGE,
  DEFAULT_PROMETHEUS_IMAGE,
  GRAFANA_CONTAINER_DASHBOARDS_DIR,
  GRAFANA_CONTAINER_PROVISIONING_DIR,
  grafanaIni,
  PROMETHEUS_CONTAINER_CONFIG_FILE,
  PROMETHEUS_CONTAINER_DATA_DIR,
  PROVISIONING_DASHBOARDS_FILE,
  PROVISIONING_DATASOURCES_FILE,
  provisioningFiles,
  rewriteDashboard,
  type RewriteOptions,
} from "../mod/view/grafana.ts";

const UID = "promcase-local";
const NAME = "promcase (restored)";
const FROM = "2026-11-25T08:00:00Z";
const TO = "2026-11-25T11:30:00Z";
const FROM_MS = Date.parse(FROM);
const TO_MS = Date.parse(TO);
const OPTS: RewriteOptions = { datasourceUid: UID, datasourceName: NAME, from: FROM, to: TO };

// The project's own dashboards (tests/fixtures/dashboards/generate.ts), one per datasource style.
const FIXTURES: Record<string, { seen: string[]; uid: string }> = {
  "datasource-variable.json": { seen: ["${ds_prometheus}"], uid: "fx-dsvar" },
  "inputs-prometheus.json": { seen: ["${DS_PROMETHEUS}", "000000001"], uid: "fx-inputs" },
  "legacy-names.json": { seen: ["Prometheus"], uid: "fx-legacy-names" },
  // Exported without a uid: one is derived from the title.
  "legacy-rows-strings.json": { seen: ["${DS_LOCALHOST}"], uid: "fixture-legacy-rows" },
};
const FIXTURES_DIR = new URL("./fixtures/dashboards/", import.meta.url);

// Real dashboards as people share them (rfmoz/grafana-dashboards), kept outside the repository on
// our own machines only: their tests say they are skipped elsewhere.
const SHARED_FIXTURES: Record<string, { seen: string[]; uid: string }> = {
  "node-exporter-full.json": { seen: ["${ds_prometheus}"], uid: "rYdddlPWk" },
  "bind9-full.json": { seen: ["${DS_PROMETHEUS}", "000000001"], uid: "Ug7DI83Wz" },
  "unbound-full.json": { seen: ["${DS_PROMETHEUS}", "000000001"], uid: "9FQf4fEWz" },
  "node-exporter-full-old.json": { seen: ["${DS_LOCALHOST}"], uid: "node-exporter-full-old" },
};
const SHARED_DIR = new URL("../../shared/fixtures/dashboards/", import.meta.url);
const HAVE_SHARED = (() => {
  try {
    return Deno.statSync(SHARED_DIR).isDirectory;
  } catch {
    return false;
  }
})();

type Json = Record<string, unknown>;

function fixture(name: string): Json {
  const dir = name in SHARED_FIXTURES ? SHARED_DIR : FIXTURES_DIR;
  return JSON.parse(Deno.readTextFileSync(new URL(name, dir)));
}

/** Every [path, value] below `node` whose key is `key`, in document order. */
function valuesOf(node: unknown, key: string, path = "$", out: [string, unknown][] = []) {
  if (Array.isArray(node)) node.forEach((v, i) => valuesOf(v, key, `${path}[${i}]`, out));
  else if (node !== null && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (k === key) out.push([`${path}.${k}`, v]);
      valuesOf(v, key, `${path}.${k}`, out);
    }
  }
  return out;
}

/** Every string anywhere below `node`, with its path. */
function strings(node: unknown, path = "$", out: [string, string][] = []) {
  if (typeof node === "string") out.push([path, node]);
  else if (Array.isArray(node)) node.forEach((v, i) => strings(v, `${path}[${i}]`, out));
  else if (node !== null && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) strings(v, `${path}.${k}`, out);
  }
  return out;
}

/** Panels at every depth: top level, inside collapsed rows, inside old-style `rows`. */
function panels(dash: Json): Json[] {
  const out: Json[] = [];
  const visit = (list: unknown) => {
    for (const p of Array.isArray(list) ? list : []) {
      out.push(p);
      visit(p.panels);
    }
  };
  visit(dash.panels);
  for (const row of (dash.rows as Json[] | undefined) ?? []) visit(row.panels);
  return out;
}

/** Paths of leaves that differ between two JSON values (keys present on one side only, too). */
function diffPaths(a: unknown, b: unknown, path = "$", out: string[] = []): string[] {
  const isObj = (v: unknown) => v !== null && typeof v === "object";
  if (isObj(a) && isObj(b) && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a as Json), ...Object.keys(b as Json)]);
    for (const k of keys) {
      const sub = Array.isArray(a) ? `${path}[${k}]` : `${path}.${k}`;
      diffPaths((a as Json)[k], (b as Json)[k], sub, out);
    }
  } else if (JSON.stringify(a) !== JSON.stringify(b)) {
    out.push(path);
  }
  return out;
}

const BUILTIN = new Set(["grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --"]);

/** Asserts that a datasource reference is the provisioned one, the default, or a built-in. */
function assertLocalOrBuiltin(path: string, ref: unknown) {
  if (ref === null || ref === undefined) return; // the default datasource: the provisioned one
  if (typeof ref === "string") {
    assert.ok(ref === NAME || BUILTIN.has(ref), `${path} = ${ref}`);
    return;
  }
  const { type, uid } = ref as { type?: string; uid?: string };
  if (type === "datasource" || BUILTIN.has(uid ?? "")) return;
  assert.deepEqual({ type, uid }, { type: "prometheus", uid: UID }, path);
}

for (const [name, expected] of Object.entries({ ...FIXTURES, ...SHARED_FIXTURES })) {
  const shared = name in SHARED_FIXTURES;
  const what = shared ? `the real ${name} of ../shared/fixtures/dashboards` : name;
  const skipped = shared && !HAVE_SHARED ? " (SKIPPED: no ../shared/fixtures on this machine)" : "";
  Deno.test({
    name: `rewriteDashboard points ${what} at the local Prometheus and the incident${skipped}`,
    ignore: skipped !== "",
  }, () => {
    const input = fixture(name);
    const before = JSON.stringify(input);
    const { dashboard, changes, datasourcesSeen, unmapped, warnings } = rewriteDashboard(
      input,
      OPTS,
    );

    assert.equal(JSON.stringify(input), before, "the input was mutated");
    assert.notEqual(dashboard, input);
    assert.deepEqual(datasourcesSeen, expected.seen);
    assert.deepEqual(unmapped, []);
    assert.deepEqual(warnings, []);
    assert.ok(changes > 0);

    // No import placeholder is left anywhere, and no datasource field is a variable any more.
    for (const [path, text] of strings(dashboard)) {
      assert.ok(!text.includes("${DS_"), `${path} still holds ${text}`);
    }
    const refs = valuesOf(dashboard, "datasource");
    assert.ok(refs.length > 10);
    for (const [path, ref] of refs) {
      assert.ok(!JSON.stringify(ref ?? null).includes("$"), `${path} = ${JSON.stringify(ref)}`);
      assertLocalOrBuiltin(path, ref);
    }
    // The built-in annotation stays as Grafana ships it.
    const annotations = ((dashboard.annotations as Json | undefined)?.list ?? []) as Json[];
    const inputAnnotations = ((input.annotations as Json | undefined)?.list ?? []) as Json[];
    assert.deepEqual(annotations, inputAnnotations);

    // Datasource template variables keep working and select the local datasource.
    const variables = (dashboard.templating as { list: Json[] }).list;
    const inputVariables = (input.templating as { list: Json[] }).list;
    assert.equal(variables.length, inputVariables.length);
    for (const variable of variables.filter((v) => v.type === "datasource")) {
      assert.equal(variable.query, "prometheus");
      assert.equal((variable.current as Json).value, UID);
      assert.equal((variable.current as Json).text, NAME);
      assert.deepEqual(variable.options, [{ selected: true, text: NAME, value: UID }]);
    }
    // Query variables: same queries, now on the local datasource (checked above).
    assert.deepEqual(
      variables.filter((v) => v.type !== "datasource").map((v) => [v.name, v.query, v.regex]),
      inputVariables.filter((v) => v.type !== "datasource").map((v) => [v.name, v.query, v.regex]),
    );

    assert.equal(dashboard.__inputs, undefined);
    assert.equal(dashboard.__elements, undefined);
    assert.deepEqual(dashboard.__requires, input.__requires);
    assert.deepEqual(dashboard.time, {
      from: "2026-11-25T08:00:00.000Z",
      to: "2026-11-25T11:30:00.000Z",
    });
    assert.equal(dashboard.refresh, "");
    assert.equal(dashboard.id, null);
    assert.equal(dashboard.uid, expected.uid);
    assert.equal(dashboard.title, input.title);

    // Panels and queries are untouched.
    assert.equal(panels(dashboard).length, panels(input).length);
    assert.ok(panels(input).length > 10);
    assert.deepEqual(panels(dashboard).map((p) => p.title), panels(input).map((p) => p.title));
    assert.deepEqual(valuesOf(dashboard, "expr"), valuesOf(input, "expr"));
    assert.ok(valuesOf(input, "expr").length > 10);

    // Nothing else changed: only datasource fields, datasource variables and the top-level
    // fields named above differ from the input.
    const datasourceVariables = new Set(
      inputVariables.flatMap((v, i) => v.type === "datasource" ? [i] : []),
    );
    for (const path of diffPaths(input, dashboard)) {
      const allowed = /\.datasource(\.|$)/.test(path) ||
        /^\$\.(__inputs|__elements|time|refresh|id|uid)(\.|\[|$)/.test(path) ||
        [...datasourceVariables].some((i) => path.startsWith(`$.templating.list[${i}]`));
      assert.ok(allowed, `unexpected change at ${path}`);
    }
  });
}

Deno.test("rewriteDashboard output survives provisioning: files parse back to the same dashboards", async () => {
  const dashboards = Object.keys(FIXTURES).map((name, i) => ({
    folder: ["", "Infrastructure", "DNS", "General"][i],
    fileName: name,
    dashboard: rewriteDashboard(fixture(name), OPTS).dashboard,
  }));
  const root = await Deno.makeTempDir({ prefix: "promcase-grafana-test-" });
  try {
    const files = provisioningFiles({
      datasourceName: NAME,
      datasourceUid: UID,
      prometheusUrl: "http://127.0.0.1:19090",
      dashboardsPath: `${root}/${DASHBOARDS_DIR}`,
      dashboards,
    });
    for (const [rel, text] of Object.entries(files)) {
      const path = `${root}/${rel}`;
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      await Deno.writeTextFile(path, text);
    }

    // The local provider reads exactly the directory the dashboards were written to.
    const provider = files[PROVISIONING_DASHBOARDS_FILE];
    const providerPath = JSON.parse(/^ {6}path: (".*")$/m.exec(provider)![1]);
    assert.equal(providerPath, `${root}/${DASHBOARDS_DIR}`);
    const found: string[] = [];
    const walk = async (dir: string, rel: string) => {
      for await (const entry of Deno.readDir(dir)) {
        if (entry.isDirectory) await walk(`${dir}/${entry.name}`, `${rel}${entry.name}/`);
        else found.push(`${rel}${entry.name}`);
      }
    };
    await walk(providerPath, "");
    assert.deepEqual(found.sort(), [
      "DNS/legacy-names.json",
      "Infrastructure/inputs-prometheus.json",
      "datasource-variable.json",
      "legacy-rows-strings.json", // "General" is the root folder
    ]);
    for (const { folder, fileName, dashboard } of dashboards) {
      const text = await Deno.readTextFile(`${root}/${dashboardFilePath(folder, fileName)}`);
      assert.deepEqual(JSON.parse(text), dashboard);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("rewriteDashboard maps every Prometheus kind of reference and leaves others alone", () => {
  const input = {
    uid: "mixed",
    title: "Mixed",
    annotations: {
      list: [
        { builtIn: 1, datasource: { type: "grafana", uid: "-- Grafana --" }, name: "A" },
        { datasource: "-- Grafana --", name: "old built-in" },
        { datasource: { type: "prometheus", uid: "prom-eu" }, expr: "ALERTS", name: "alerts" },
      ],
    },
    panels: [
      {
        id: 1,
        title: "mixed",
        datasource: { type: "datasource", uid: "-- Mixed --" },
        targets: [
          { refId: "A", datasource: { type: "prometheus", uid: "prom-eu" }, expr: "up" },
          { refId: "B", datasource: { type: "loki", uid: "loki-1" }, expr: '{job="x"}' },
          { refId: "C", datasource: { type: "__expr__", uid: "__expr__" }, expression: "$A" },
        ],
      },
      { id: 2, title: "us", datasource: { type: "prometheus", uid: "prom-us" }, targets: [] },
      { id: 3, title: "dash", datasource: { type: "datasource", uid: "-- Dashboard --" } },
      { id: 4, title: "by name", datasource: "Thanos", targets: [{ expr: "up" }] },
      { id: 5, title: "logs by name", datasource: "Loki Logs" },
      { id: 6, title: "bare uid", datasource: { uid: "abc123" } },
      {
        id: 7,
        title: "amp",
        datasource: { type: "grafana-amazonprometheus-datasource", uid: "amp" },
      },
      { id: 8, title: "default", datasource: null },
      { id: 9, title: "typed default", datasource: { type: "prometheus" } },
      {
        id: 10,
        type: "row",
        title: "collapsed",
        panels: [{ id: 11, title: "in row", datasource: { type: "prometheus", uid: "prom-eu" } }],
      },
    ],
    templating: {
      list: [
        { name: "logs", type: "datasource", query: "loki", current: { text: "L", value: "l" } },
        { name: "job", type: "query", datasource: "Thanos", query: "label_values(job)" },
        { name: "f", type: "adhoc", datasource: { type: "prometheus", uid: "prom-us" } },
      ],
    },
  };
  const { dashboard, datasourcesSeen, unmapped, changes } = rewriteDashboard(input, {
    ...OPTS,
    customerDatasources: [
      { uid: "thanos", name: "Thanos", type: "prometheus" },
      { uid: "loki-1", name: "Loki Logs", type: "loki" },
      { uid: "abc123", name: "Mimir", type: "prometheus" },
    ],
  });
  const local = { type: "prometheus", uid: UID };
  const p = dashboard.panels as Json[];
  const targets = p[0].targets as Json[];
  assert.deepEqual(p[0].datasource, { type: "datasource", uid: "-- Mixed --" });
  assert.deepEqual(targets.map((t) => t.datasource), [
    local,
    { type: "loki", uid: "loki-1" },
    { type: "__expr__", uid: "__expr__" },
  ]);
  assert.deepEqual(p[1].datasource, local);
  assert.deepEqual(p[2].datasource, { type: "datasource", uid: "-- Dashboard --" });
  assert.equal(p[3].datasource, NAME);
  assert.equal(p[4].datasource, "Loki Logs");
  assert.deepEqual(p[5].datasource, local);
  assert.deepEqual(p[6].datasource, local);
  assert.equal(p[7].datasource, null);
  assert.deepEqual(p[8].datasource, local);
  assert.deepEqual((p[9].panels as Json[])[0].datasource, local);
  const annotations = (dashboard.annotations as { list: Json[] }).list;
  assert.deepEqual(annotations[0], input.annotations.list[0]);
  assert.deepEqual(annotations[1], input.annotations.list[1]);
  assert.deepEqual(annotations[2].datasource, local);
  const variables = (dashboard.templating as { list: Json[] }).list;
  assert.deepEqual(variables[0], input.templating.list[0]); // a Loki datasource variable
  assert.equal(variables[1].datasource, NAME);
  assert.deepEqual(variables[2].datasource, local);

  assert.deepEqual(datasourcesSeen, [
    "Thanos",
    "abc123",
    "amp",
    "prom-eu",
    "prom-us",
    "prometheus",
  ]);
  assert.deepEqual(unmapped, ["Loki Logs", "loki-1"]);
  assert.equal(changes, 10);
});

Deno.test("rewriteDashboard maps references of unknown kind only in Prometheus-only dashboards", () => {
  const only = { title: "t", panels: [{ id: 1, datasource: "Prometheus" }] };
  const r1 = rewriteDashboard(only, OPTS);
  assert.equal((r1.dashboard.panels as Json[])[0].datasource, NAME);
  assert.deepEqual(r1.datasourcesSeen, ["Prometheus"]);

  const mixed = {
    title: "t",
    panels: [{ id: 1, datasource: "Prometheus" }, {
      id: 2,
      datasource: { type: "elasticsearch", uid: "es" },
    }],
  };
  const r2 = rewriteDashboard(mixed, OPTS);
  assert.equal((r2.dashboard.panels as Json[])[0].datasource, "Prometheus");
  assert.deepEqual(r2.unmapped, ["Prometheus", "es"]);
  assert.deepEqual(r2.datasourcesSeen, []);
  assert.equal(r2.changes, 0);
});

Deno.test("rewriteDashboard resolves every syntax of a datasource variable and fixes the variable", () => {
  const input = {
    title: "vars",
    panels: [
      { id: 1, datasource: "$ds" },
      { id: 2, datasource: "${ds}" },
      { id: 3, datasource: "[[ds]]" },
      { id: 4, datasource: { uid: "${ds:text}" } },
      { id: 5, datasource: { type: "prometheus", uid: "$other" } },
    ],
    templating: {
      list: [
        {
          name: "ds",
          type: "datasource",
          query: "prometheus",
          regex: "/prod-.*/", // would hide the local datasource
          current: { text: "prod-eu", value: "P1809F7CD0C75ACF3" },
          options: [],
        },
        {
          name: "other",
          type: "datasource",
          query: "prometheus",
          regex: "promcase.*",
          multi: true,
          current: { text: ["a", "b"], value: ["a", "b"] },
        },
      ],
    },
  };
  const { dashboard, changes } = rewriteDashboard(input, OPTS);
  const p = dashboard.panels as Json[];
  assert.deepEqual(p.map((x) => x.datasource), [
    NAME,
    NAME,
    NAME,
    { uid: UID, type: "prometheus" },
    { type: "prometheus", uid: UID },
  ]);
  const [ds, other] = (dashboard.templating as { list: Json[] }).list;
  assert.equal(ds.regex, "");
  assert.deepEqual(ds.current, { selected: true, text: NAME, value: UID });
  assert.equal(other.regex, "promcase.*"); // it accepts the local datasource: kept
  assert.deepEqual(other.current, { selected: true, text: [NAME], value: [UID] });
  assert.equal(changes, 7);
});

Deno.test("rewriteDashboard substitutes import constants and inlines library panels", () => {
  const input = {
    __inputs: [
      { name: "DS_PROM", type: "datasource", pluginId: "prometheus", label: "Prometheus" },
      { name: "VAR_JOB", type: "constant", value: "node", label: "job" },
      { name: "VAR_NONE", type: "constant", label: "no default" },
    ],
    __elements: {
      "lib-1": {
        name: "CPU",
        uid: "lib-1",
        kind: 1,
        model: {
          type: "timeseries",
          title: "CPU",
          gridPos: { h: 1, w: 1, x: 0, y: 0 },
          datasource: { type: "prometheus", uid: "${DS_PROM}" },
          targets: [{ expr: "rate(cpu[5m])", datasource: { uid: "${DS_PROM}" } }],
        },
      },
    },
    title: "Imports ${VAR_JOB}",
    uid: "imports",
    panels: [
      { id: 7, gridPos: { h: 8, w: 12, x: 0, y: 0 }, libraryPanel: { uid: "lib-1", name: "CPU" } },
      { id: 8, title: "gone", libraryPanel: { uid: "lib-missing", name: "Gone" } },
      {
        id: 9,
        title: "Job ${VAR_JOB} ${VAR_NONE}",
        datasource: { type: "prometheus", uid: "${DS_PROM}" },
        links: [{ url: "/explore?ds=${DS_PROM}" }],
        targets: [{ expr: 'up{job="${VAR_JOB}"}' }],
      },
    ],
    templating: { list: [{ name: "VAR_JOB", type: "constant", query: "${VAR_JOB}" }] },
  };
  const { dashboard, warnings } = rewriteDashboard(input, OPTS);
  const [lib, gone, job] = dashboard.panels as Json[];
  assert.deepEqual(lib, {
    type: "timeseries",
    title: "CPU",
    gridPos: { h: 8, w: 12, x: 0, y: 0 },
    datasource: { type: "prometheus", uid: UID },
    targets: [{ expr: "rate(cpu[5m])", datasource: { uid: UID, type: "prometheus" } }],
    id: 7,
  });
  assert.deepEqual(gone, input.panels[1]);
  assert.equal(job.title, "Job node ${VAR_NONE}");
  assert.deepEqual(job.links, [{ url: `/explore?ds=${UID}` }]);
  assert.deepEqual(job.targets, [{ expr: 'up{job="node"}' }]);
  assert.equal(dashboard.title, "Imports node");
  assert.equal((dashboard.templating as { list: Json[] }).list[0].query, "node");
  assert.equal(dashboard.__elements, undefined);
  assert.equal(dashboard.__inputs, undefined);
  assert.equal(warnings.length, 2);
  assert.match(warnings.join("\n"), /lib-missing/);
  assert.match(warnings.join("\n"), /VAR_NONE/);
});

Deno.test("rewriteDashboard keeps valid uids and derives valid, stable ones otherwise", () => {
  const uidOf = (dash: Json) => String(rewriteDashboard(dash, OPTS).dashboard.uid);
  assert.equal(uidOf({ uid: "Ab_c-1", title: "x", panels: [] }), "Ab_c-1");
  assert.equal(uidOf({ title: "Übersicht — Knoten (prod)", panels: [] }), "ubersicht-knoten-prod");
  assert.equal(uidOf({ uid: "", title: "CPU", panels: [] }), "cpu");
  assert.equal(uidOf({ uid: null, title: "!!!", panels: [] }), uidOf({ title: "!!!", panels: [] }));

  const long = "A very long dashboard title that goes on and on, past forty characters";
  const derived = [
    uidOf({ title: long, panels: [] }),
    uidOf({ title: `${long}!`, panels: [] }),
    uidOf({ title: "!!!", panels: [] }),
    uidOf({ uid: "x".repeat(41), title: "t", panels: [] }),
    uidOf({ uid: "has spaces/and:colons", title: "t", panels: [] }),
  ];
  for (const uid of derived) assert.match(uid, /^[A-Za-z0-9_-]{1,40}$/);
  assert.notEqual(derived[0], derived[1]); // same 31-character prefix, different titles
  assert.equal(derived[0], uidOf({ title: long, panels: [] }));
  assert.equal(derived[4], "has-spaces-and-colons");
  const { warnings } = rewriteDashboard({ uid: "x".repeat(41), panels: [] }, OPTS);
  assert.match(warnings[0], /not valid/);
});

Deno.test("rewriteDashboard takes times as RFC 3339, epoch ms text, numbers and bigints", () => {
  const dash = { title: "t", panels: [] };
  const want = { from: "2026-11-25T08:00:00.000Z", to: "2026-11-25T11:30:00.000Z" };
  for (
    const [from, to] of [
      [FROM, TO],
      [String(FROM_MS), String(TO_MS)],
      [FROM_MS, TO_MS],
      [BigInt(FROM_MS), BigInt(TO_MS)],
      ["2026-11-25T09:00:00+01:00", "2026-11-25T11:30:00.000Z"],
    ] as const
  ) {
    assert.deepEqual(rewriteDashboard(dash, { ...OPTS, from, to }).dashboard.time, want);
  }
  const usage = (e: unknown) => e instanceof PromcaseError && e.exitCode === 2;
  assert.throws(() => rewriteDashboard(dash, { ...OPTS, from: TO, to: FROM }), usage);
  assert.throws(() => rewriteDashboard(dash, { ...OPTS, from: FROM, to: FROM }), usage);
  assert.throws(() => rewriteDashboard(dash, { ...OPTS, from: "yesterday" }), usage);
  assert.throws(() => rewriteDashboard(dash, { ...OPTS, from: 1.5 }), usage);
});

Deno.test("rewriteDashboard takes the API's {dashboard, meta} shape and refuses non-dashboards", () => {
  const inner = { uid: "u", title: "t", panels: [{ id: 1, datasource: "$x" }] };
  const { dashboard } = rewriteDashboard({ dashboard: inner, meta: { folderTitle: "F" } }, OPTS);
  assert.equal(dashboard.uid, "u");
  assert.equal(dashboard.meta, undefined);
  for (const bad of [null, 1, "x", [], {}, { title: "no panels" }]) {
    assert.throws(() => rewriteDashboard(bad, OPTS), PromcaseError);
  }
  assert.throws(() => rewriteDashboard(inner, { ...OPTS, datasourceUid: "bad uid" }), TypeError);
  assert.throws(
    () => rewriteDashboard(inner, { ...OPTS, datasourceUid: "x".repeat(41) }),
    TypeError,
  );
  assert.throws(() => rewriteDashboard(inner, { ...OPTS, datasourceName: " " }), TypeError);
});

function yamlValue(text: string, key: string): string {
  const match = new RegExp(`^\\s*-?\\s*${key}: (.*)$`, "m").exec(text);
  assert.ok(match, `no ${key} in\n${text}`);
  return match[1];
}

Deno.test("provisioningFiles writes the datasource, the providers and the dashboards", () => {
  const dashboard = { uid: "d1", title: "One", panels: [] };
  const files = provisioningFiles({
    datasourceName: NAME,
    datasourceUid: UID,
    prometheusUrl: "http://127.0.0.1:19090",
    dashboardsPath: "/work/case $1/dashboards",
    scrapeInterval: "30s",
    prometheusVersion: "v2.53.3",
    dashboards: [
      { folder: "", fileName: "one", dashboard },
      { folder: "Team A / Infra", fileName: "two.json", dashboard: { ...dashboard, uid: "d2" } },
      { folder: "..", fileName: "../three.JSON", dashboard: { ...dashboard, uid: "d3" } },
      { folder: " General ", fileName: "four.json", dashboard: { ...dashboard, uid: "d4" } },
    ],
  });
  assert.deepEqual(
    Object.keys(files).sort(),
    [
      COMPOSE_PROVISIONING_DASHBOARDS_FILE,
      COMPOSE_PROVISIONING_DATASOURCES_FILE,
      `${DASHBOARDS_DIR}/Team A _ Infra/two.json`,
      `${DASHBOARDS_DIR}/_/.._three.json`,
      `${DASHBOARDS_DIR}/four.json`,
      `${DASHBOARDS_DIR}/one.json`,
      PROVISIONING_DASHBOARDS_FILE,
      PROVISIONING_DATASOURCES_FILE,
    ].sort(),
  );
  assert.deepEqual(JSON.parse(files[`${DASHBOARDS_DIR}/one.json`]), dashboard);

  for (
    const [file, url, version] of [
      // The version of the Prometheus each Grafana talks to: the local binary's, the image's.
      [PROVISIONING_DATASOURCES_FILE, "http://127.0.0.1:19090", "2.53.3"],
      [COMPOSE_PROVISIONING_DATASOURCES_FILE, COMPOSE_PROMETHEUS_URL, "3.5.0"],
    ]
  ) {
    const ds = files[file];
    assert.match(ds, /^apiVersion: 1$/m);
    assert.match(ds, /^datasources:\n {2}- name: /m);
    assert.equal(yamlValue(ds, "name"), JSON.stringify(NAME));
    assert.equal(yamlValue(ds, "uid"), JSON.stringify(UID));
    assert.equal(yamlValue(ds, "type"), '"prometheus"');
    assert.equal(yamlValue(ds, "access"), '"proxy"');
    assert.equal(yamlValue(ds, "url"), JSON.stringify(url));
    assert.equal(yamlValue(ds, "isDefault"), "true");
    assert.equal(yamlValue(ds, "editable"), "false");
    assert.equal(yamlValue(ds, "timeInterval"), '"30s"');
    assert.equal(yamlValue(ds, "prometheusVersion"), JSON.stringify(version));
    assert.doesNotMatch(ds, /\t/);
  }
  for (
    const [file, path] of [
      [PROVISIONING_DASHBOARDS_FILE, '"/work/case $$1/dashboards"'], // $$: no env expansion
      [COMPOSE_PROVISIONING_DASHBOARDS_FILE, JSON.stringify(GRAFANA_CONTAINER_DASHBOARDS_DIR)],
    ]
  ) {
    const provider = files[file];
    assert.match(provider, /^apiVersion: 1$/m);
    assert.match(provider, /^providers:\n {2}- name: "promcase"$/m);
    assert.equal(yamlValue(provider, "type"), '"file"');
    assert.match(provider, /^ {4}options:\n {6}path: .*\n {6}foldersFromFilesStructure: true$/m);
    assert.equal(yamlValue(provider, "path"), path);
    assert.doesNotMatch(provider, /^\s*folder(Uid)?:/m); // would disable foldersFromFilesStructure
  }
});

Deno.test("provisioningFiles refuses collisions and bad settings", () => {
  const base = {
    datasourceName: NAME,
    datasourceUid: UID,
    prometheusUrl: "http://127.0.0.1:9090",
  };
  const dash = (uid: string) => ({ uid, title: uid, panels: [] });
  // The same file on a case-insensitive file system.
  assert.throws(
    () =>
      provisioningFiles({
        ...base,
        dashboards: [
          { folder: "Infra", fileName: "a.json", dashboard: dash("a") },
          { folder: "infra", fileName: "A.json", dashboard: dash("b") },
        ],
      }),
    /two dashboards would be written/,
  );
  assert.throws(
    () =>
      provisioningFiles({
        ...base,
        dashboards: [
          { folder: "x", fileName: "a.json", dashboard: dash("same") },
          { folder: "y", fileName: "a.json", dashboard: dash("same") },
        ],
      }),
    /same uid same/,
  );
  assert.throws(() => provisioningFiles({ ...base, dashboards: [], scrapeInterval: "30" }));
  assert.throws(() => provisioningFiles({ ...base, dashboards: [], prometheusUrl: "prom:9090" }));
  assert.throws(() => provisioningFiles({ ...base, dashboards: [], datasourceUid: "a/b" }));
});

Deno.test("dashboardFilePath keeps every dashboard inside its folder under dashboards/", () => {
  assert.equal(dashboardFilePath("", "x"), "dashboards/x.json");
  assert.equal(dashboardFilePath("general", "x.json"), "dashboards/x.json");
  assert.equal(dashboardFilePath("..", "x.json"), "dashboards/_/x.json");
  assert.equal(dashboardFilePath("a/../..", "..\\y.json"), "dashboards/a_.._/.._y.json");
  assert.equal(dashboardFilePath("C:\\tmp", "a\u0000b?.json"), "dashboards/C__tmp/a_b_.json");
  assert.equal(dashboardFilePath("trailing. ", ".json"), "dashboards/trailing/_.json");
});

function composeFor(extra: Record<string, unknown> = {}) {
  return composeFile({
    dataDir: "/cases/c1/data",
    configFile: "/cases/c1/prometheus.yml",
    provisioningDir: "/cases/c1/grafana/compose-provisioning",
    dashboardsDir: "/cases/c1/grafana/dashboards",
    prometheusArgs: containerPrometheusArgs([
      "prometheus",
      "--config.file=/cases/c1/prometheus.yml",
      "--storage.tsdb.path=/cases/c1/data",
      "--storage.tsdb.retention.time=3660d",
      "--web.listen-address=127.0.0.1:9090",
      "--enable-feature=native-histograms",
    ]),
    ...extra,
  });
}

/** The bind mounts of a compose text, as source -> [target, read-only]. */
function mounts(compose: string): Map<string, [string, boolean]> {
  const out = new Map<string, [string, boolean]>();
  const re = /- type: "bind"\n\s+source: (".*")\n\s+target: (".*")(\n\s+read_only: true)?/g;
  for (const m of compose.matchAll(re)) {
    out.set(JSON.parse(m[1]), [JSON.parse(m[2]), m[3] !== undefined]);
  }
  return out;
}

Deno.test("composeFile pins images, mounts data and provisioning, and stays on loopback", () => {
  const compose = composeFor({ prometheusUser: "1000:1000", projectName: "Case 1234" });
  const images = [...compose.matchAll(/^\s+image: "(.*)"$/gm)].map((m) => m[1]);
  assert.deepEqual(images, [DEFAULT_PROMETHEUS_IMAGE, DEFAULT_GRAFANA_IMAGE]);
  for (const image of images) assert.match(image, /:v?\d+\.\d+\.\d+$/);
  assert.doesNotMatch(compose, /latest/);
  assert.match(compose, /^name: "case-1234"$/m);
  assert.match(compose, /^services:\n {2}prometheus:\n/m);
  assert.match(compose, /^ {2}grafana:\n/m);
  assert.match(compose, /^ {4}user: "1000:1000"$/m);

  assert.deepEqual(
    mounts(compose),
    new Map([
      ["/cases/c1/data", [PROMETHEUS_CONTAINER_DATA_DIR, false]],
      ["/cases/c1/prometheus.yml", [PROMETHEUS_CONTAINER_CONFIG_FILE, true]],
      [
        "/cases/c1/grafana/compose-provisioning/datasources",
        [`${GRAFANA_CONTAINER_PROVISIONING_DIR}/datasources`, true],
      ],
      [
        "/cases/c1/grafana/compose-provisioning/dashboards",
        [`${GRAFANA_CONTAINER_PROVISIONING_DIR}/dashboards`, true],
      ],
      // Where the compose provider points.
      ["/cases/c1/grafana/dashboards", [GRAFANA_CONTAINER_DASHBOARDS_DIR, true]],
    ]),
  );
  const command = /^ {4}command:\n((?: {6}- .*\n)+)/m.exec(compose)![1];
  assert.deepEqual(command.trim().split("\n").map((l) => JSON.parse(l.trim().slice(2))), [
    `--config.file=${PROMETHEUS_CONTAINER_CONFIG_FILE}`,
    `--storage.tsdb.path=${PROMETHEUS_CONTAINER_DATA_DIR}`,
    "--web.listen-address=0.0.0.0:9090",
    "--storage.tsdb.retention.time=3660d",
    "--enable-feature=native-histograms",
  ]);
  assert.deepEqual(
    [...compose.matchAll(/^ {6}- "(.*:\d+:\d+)"$/gm)].map((m) => m[1]),
    ["127.0.0.1:9090:9090", "127.0.0.1:3000:3000"],
  );
  assert.match(compose, /^ {6}GF_AUTH_ANONYMOUS_ENABLED: "true"$/m);
  assert.match(compose, /^ {6}GF_AUTH_ANONYMOUS_ORG_ROLE: "Editor"$/m);
  assert.match(compose, /^ {6}GF_AUTH_DISABLE_LOGIN_FORM: "true"$/m);
  assert.match(compose, /^ {6}GF_ANALYTICS_REPORTING_ENABLED: "false"$/m);
  assert.match(compose, /^ {4}depends_on:\n {6}- "prometheus"$/m);
});

Deno.test("composeFile options: ports, roles, dollar signs; refuses unpinned images", () => {
  const compose = composeFor({
    ports: { grafana: 13000, prometheus: null, address: "::1" },
    anonymousRole: "Viewer",
    dataDir: "/cases/$HOME/data",
    grafanaImage: "registry.local:5000/grafana/grafana@sha256:" + "a".repeat(64),
  });
  assert.deepEqual([...compose.matchAll(/^ {6}- "(.*:\d+:\d+)"$/gm)].map((m) => m[1]), [
    "[::1]:13000:3000",
  ]);
  assert.match(compose, /GF_AUTH_ANONYMOUS_ORG_ROLE: "Viewer"/);
  assert.ok(mounts(compose).has("/cases/$$HOME/data")); // compose would expand a single $
  for (const image of ["prom/prometheus", "prom/prometheus:latest", "registry.local:5000/prom"]) {
    assert.throws(() => composeFor({ prometheusImage: image }), /not pinned/);
  }
  assert.throws(
    () => composeFor({ prometheusArgs: ["--web.listen-address=127.0.0.1:9090"] }),
    /unreachable/,
  );
  assert.throws(() => composeFor({ ports: { grafana: 70000 } }), /port/);
  assert.throws(() => composeFor({ anonymousRole: "Root" }), /role/);
});

Deno.test("containerPrometheusArgs swaps host paths for the image's and keeps other flags", () => {
  assert.deepEqual(containerPrometheusArgs(["--storage.tsdb.retention.time=10d"]), [
    `--config.file=${PROMETHEUS_CONTAINER_CONFIG_FILE}`,
    `--storage.tsdb.path=${PROMETHEUS_CONTAINER_DATA_DIR}`,
    "--web.listen-address=0.0.0.0:9090",
    "--storage.tsdb.retention.time=10d",
  ]);
});

Deno.test("grafanaIni sets paths, a loopback listener and anonymous access", () => {
  const ini = grafanaIni({
    dataDir: "/cases/c1/grafana/data",
    provisioningDir: "/cases/c1;x/grafana/provisioning",
    httpPort: 13000,
  });
  const section = (name: string) => {
    const m = new RegExp(`^\\[${name.replace(".", "\\.")}\\]\\n((?:\\w+ = .*\\n)+)`, "m").exec(ini);
    assert.ok(m, `no [${name}] in\n${ini}`);
    return Object.fromEntries(m[1].trim().split("\n").map((l) => l.split(" = ")));
  };
  assert.deepEqual(section("paths"), {
    data: "/cases/c1/grafana/data",
    logs: "/cases/c1/grafana/data/log",
    plugins: "/cases/c1/grafana/data/plugins",
    provisioning: "`/cases/c1;x/grafana/provisioning`", // `;` would start a comment
  });
  assert.deepEqual(section("server"), { http_addr: "127.0.0.1", http_port: "13000" });
  assert.deepEqual(section("auth.anonymous"), { enabled: "true", org_role: "Editor" });
  assert.equal(section("auth").disable_login_form, "true");
  assert.equal(section("analytics").reporting_enabled, "false");
  assert.throws(() => grafanaIni({ dataDir: "/x/${HOME}", provisioningDir: "/p" }), /expanded/);
  assert.throws(() => grafanaIni({ dataDir: "/x\n[auth]", provisioningDir: "/p" }), TypeError);
  const windows = grafanaIni({ dataDir: "C:\\cases\\data", provisioningDir: "C:\\p" });
  assert.match(windows, /^logs = C:\\cases\\data\\log$/m);
});

Deno.test("dashboardLink opens the dashboard at the incident window", () => {
  assert.equal(
    dashboardLink("http://127.0.0.1:3000/", "rYdddlPWk", FROM, TO),
    `http://127.0.0.1:3000/d/rYdddlPWk?from=${FROM_MS}&to=${TO_MS}`,
  );
  assert.equal(
    dashboardLink("http://h/grafana", "a b", BigInt(FROM_MS), TO_MS, { node: ["a:1", "b"] }),
    `http://h/grafana/d/a%20b?from=${FROM_MS}&to=${TO_MS}&var-node=a%3A1&var-node=b`,
  );
});
