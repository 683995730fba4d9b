// The project's own dashboard fixtures (tests/fixtures/dashboards/): the committed files are what
// generate.ts builds, together they hold every shape the rewriter handles, and the two shapes whose
// rewrite changes more than datasource fields (mixed datasources, library panels) come out as
// Grafana must see them. tests/view_grafana_test.ts runs the other four through the checks that
// nothing but datasource fields changes.
import assert from "node:assert/strict";
import { rewriteDashboard, type RewriteOptions } from "../mod/view/grafana.ts";
import {
  DASHBOARD_FIXTURES_DIR,
  dashboardFixtures,
  fixtureText,
} from "./fixtures/dashboards/generate.ts";

type Json = Record<string, unknown>;

const UID = "promcase-local";
const NAME = "promcase (restored)";
const LOCAL = { type: "prometheus", uid: UID };
const OPTS: RewriteOptions = {
  datasourceUid: UID,
  datasourceName: NAME,
  from: "2026-11-25T08:00:00Z",
  to: "2026-11-25T11:30:00Z",
};

function load(name: string): Json {
  return JSON.parse(Deno.readTextFileSync(`${DASHBOARD_FIXTURES_DIR}/${name}`));
}

/** Every value of a `datasource` key below `node`. */
function datasourceRefs(node: unknown, out: unknown[] = []): unknown[] {
  if (Array.isArray(node)) node.forEach((v) => datasourceRefs(v, out));
  else if (node !== null && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (k === "datasource") out.push(v);
      else datasourceRefs(v, out);
    }
  }
  return out;
}

/** Panels at every depth: top level, inside collapsed rows, inside old-style `rows`. */
function allPanels(dash: Json): Json[] {
  const out: Json[] = [];
  const visit = (list: unknown) => {
    for (const p of Array.isArray(list) ? list as Json[] : []) {
      out.push(p);
      visit(p.panels);
    }
  };
  visit(dash.panels);
  for (const row of (dash.rows as Json[] | undefined) ?? []) visit(row.panels);
  return out;
}

Deno.test("dashboard fixtures: the committed files are what generate.ts writes", async () => {
  const built = dashboardFixtures();
  const files: string[] = [];
  for await (const e of Deno.readDir(DASHBOARD_FIXTURES_DIR)) {
    if (e.name.endsWith(".json")) files.push(e.name);
  }
  assert.deepEqual(files.sort(), Object.keys(built).sort());
  for (const [name, dashboard] of Object.entries(built)) {
    const text = await Deno.readTextFile(`${DASHBOARD_FIXTURES_DIR}/${name}`);
    assert.equal(
      text,
      fixtureText(dashboard),
      `${name} differs: deno run --allow-write tests/fixtures/dashboards/generate.ts`,
    );
  }
});

Deno.test("dashboard fixtures hold every shape the rewriter handles, schema 14 to 41", () => {
  const all = dashboardFixtures();
  const versions = Object.values(all).map((d) => d.schemaVersion as number).sort((a, b) => a - b);
  assert.equal(versions[0], 14);
  assert.equal(versions.at(-1), 41);
  assert.ok(new Set(versions).size >= 5, `schema versions ${versions}`);

  const has = (what: string, test: (d: Json) => boolean) =>
    assert.ok(Object.values(all).some(test), `no fixture has ${what}`);
  const refs = (d: Json) => datasourceRefs(d);
  const isObj = (v: unknown): v is Json => v !== null && typeof v === "object";
  has(
    "__inputs with a DS_ datasource placeholder",
    (d) =>
      (d.__inputs as Json[] | undefined)?.some((i) =>
        i.type === "datasource" && String(i.name).startsWith("DS_")
      ) === true,
  );
  has(
    "a constant __inputs entry",
    (d) => (d.__inputs as Json[] | undefined)?.some((i) => i.type === "constant") === true,
  );
  has(
    "a datasource template variable",
    (d) => ((d.templating as Json).list as Json[]).some((v) => v.type === "datasource"),
  );
  has(
    "legacy string references by placeholder",
    (d) => refs(d).some((r) => typeof r === "string" && r.startsWith("${DS_")),
  );
  has("legacy string references by name", (d) => refs(d).includes("Prometheus"));
  has("the default datasource as null", (d) => refs(d).includes(null));
  has("-- Mixed -- panels", (d) => refs(d).some((r) => isObj(r) && r.uid === "-- Mixed --"));
  has("Loki references", (d) => refs(d).some((r) => isObj(r) && r.type === "loki"));
  has("expression targets", (d) => refs(d).some((r) => isObj(r) && r.type === "__expr__"));
  has(
    "library panels in __elements",
    (d) => allPanels(d).some((p) => isObj(p.libraryPanel)) && isObj(d.__elements),
  );
  has("old-style rows", (d) => Array.isArray(d.rows) && d.rows.length > 0);
  has(
    "collapsed rows with nested panels",
    (d) =>
      allPanels(d).some((p) =>
        p.type === "row" && p.collapsed === true && (p.panels as Json[]).length > 0
      ),
  );
  has("no uid", (d) => d.uid === undefined);
});

Deno.test("rewriteDashboard on mixed-datasources.json: only Prometheus references move", () => {
  const input = load("mixed-datasources.json");
  const { dashboard, unmapped, datasourcesSeen } = rewriteDashboard(input, OPTS);
  assert.deepEqual(datasourcesSeen, ["${prom}", "prom-eu"]);
  assert.deepEqual(unmapped, ["${logs}", "es-1", "loki-logs"]);

  const panels = dashboard.panels as Json[];
  assert.deepEqual(panels[0].datasource, { type: "datasource", uid: "-- Mixed --" });
  assert.deepEqual((panels[0].targets as Json[]).map((t) => t.datasource), [
    LOCAL,
    LOCAL,
    { type: "loki", uid: "${logs}" },
    { type: "__expr__", uid: "__expr__" },
  ]);
  assert.deepEqual(panels[1].datasource, LOCAL);
  assert.deepEqual(panels[2], (input.panels as Json[])[2]); // Loki logs
  assert.deepEqual(panels[3], (input.panels as Json[])[3]); // -- Dashboard --
  assert.deepEqual(panels[4], (input.panels as Json[])[4]); // Elasticsearch

  const annotations = (dashboard.annotations as { list: Json[] }).list;
  const inputAnnotations = (input.annotations as { list: Json[] }).list;
  assert.deepEqual(annotations[0], inputAnnotations[0]);
  assert.deepEqual(annotations[1], { ...inputAnnotations[1], datasource: LOCAL });
  assert.deepEqual(annotations[2], inputAnnotations[2]);

  const [prom, logs, instance, filters] = (dashboard.templating as { list: Json[] }).list;
  const inputVariables = (input.templating as { list: Json[] }).list;
  assert.deepEqual(prom.current, { selected: true, text: NAME, value: UID });
  assert.equal(prom.regex, ""); // "/prod-.*/" would hide the local datasource
  assert.deepEqual(logs, inputVariables[1]);
  assert.deepEqual(instance.datasource, LOCAL);
  assert.deepEqual(filters.datasource, LOCAL);
});

Deno.test("rewriteDashboard on library-panels.json: carried panels inlined, constants filled in", () => {
  const input = load("library-panels.json");
  const { dashboard, datasourcesSeen, warnings } = rewriteDashboard(input, OPTS);
  assert.deepEqual(datasourcesSeen, ["${DS_PROM}"]);
  assert.equal(dashboard.__elements, undefined);
  assert.equal(dashboard.__inputs, undefined);

  const panels = allPanels(dashboard);
  const byId = new Map(panels.map((p) => [p.id, p]));
  const cpu = byId.get(1)!;
  const memory = byId.get(4)!; // inside the collapsed row
  for (const [panel, model] of [[cpu, "lib-cpu"], [memory, "lib-mem"]] as const) {
    const element = ((input.__elements as Json)[model] as Json).model as Json;
    assert.equal(panel.libraryPanel, undefined, `${model} still a library reference`);
    assert.equal(panel.type, element.type);
    assert.deepEqual(panel.datasource, LOCAL);
    assert.deepEqual((panel.targets as Json[])[0].datasource, LOCAL);
    assert.equal((panel.targets as Json[])[0].expr, (element.targets as Json[])[0].expr);
    // Where the dashboard puts the panel wins over where the library model was drawn.
    const placed = allPanels(input).find((p) => p.id === panel.id)!;
    assert.deepEqual(panel.gridPos, placed.gridPos);
  }
  assert.equal(cpu.title, "CPU busy (production)");
  assert.equal(memory.description, "Library panel of the production team");

  // A library panel the export does not carry stays, and is reported.
  assert.deepEqual(byId.get(5)!.libraryPanel, { name: "Disks", uid: "lib-disks" });
  assert.ok(warnings.some((w) => /lib-disks/.test(w)), warnings.join("\n"));

  // The constant input is filled in everywhere Grafana's importer would have.
  assert.deepEqual(dashboard.links, [
    { title: "Runbook", type: "link", url: "https://runbooks.example/production/nodes" },
  ]);
  assert.equal((dashboard.templating as { list: Json[] }).list[0].query, "production");
  assert.ok(!JSON.stringify(dashboard).includes("${"), "a ${...} placeholder is left");
  assert.deepEqual(byId.get(2)!.datasource, LOCAL);
});
