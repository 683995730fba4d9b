// promcase view's written files, checked against what Grafana and Compose read: title clashes
// renamed (Grafana keeps one dashboard per title and folder), unresolved datasource references
// warned about, incident and alert annotations in every schema version 14-41, Explore for the
// anonymous Editor, no plugin preinstall, the serving Prometheus' version, files readable under
// umask 077, and a compose file valid against the Compose specification's schema whose
// grafana-host service reaches the Prometheus view runs. Dashboards are built here.
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { exportAllArgs, runCli, runCliJson } from "./_cli.ts";
import { TEST_DATADIR, withTempDir } from "./_files.ts";
import { validateJsonSchema } from "./_json_schema.ts";
import { findPrometheus } from "./_prometheus.ts";
import {
  addIncidentAnnotations,
  ALERTS_ANNOTATION,
  INCIDENT_ANNOTATION,
  resolveTitleClashes,
} from "../mod/view/grafana.ts";
import { choosePort } from "../mod/view/ports.ts";

type Json = Record<string, unknown>;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

// Field names Grafana's provisioning reads (yaml tags), from its source:
// pkg/services/provisioning/datasources/types.go (configsV1, upsertDataSourceFromConfigV1; `prune`
// came with Grafana 11) and pkg/services/provisioning/dashboards/types.go (configV1, configs).
const DATASOURCES_TOP = ["apiVersion", "datasources", "deleteDatasources", "prune"];
const DATASOURCE_FIELDS = [
  "orgId",
  "orgName",
  "version",
  "name",
  "type",
  "access",
  "url",
  "user",
  "database",
  "basicAuth",
  "basicAuthUser",
  "withCredentials",
  "isDefault",
  "correlations",
  "jsonData",
  "secureJsonData",
  "editable",
  "uid",
];
const PROVIDERS_TOP = ["apiVersion", "providers"];
const PROVIDER_FIELDS = [
  "name",
  "type",
  "orgId",
  "folder",
  "folderUid",
  "editable",
  "options",
  "disableDeletion",
  "updateIntervalSeconds",
  "allowUiUpdates",
];

function dashboard(uid: string, title: string, extra: Json = {}): Json {
  return {
    uid,
    title,
    schemaVersion: 39,
    panels: [{
      id: 1,
      type: "timeseries",
      title: "up",
      datasource: { type: "prometheus", uid: "${DS_PROMETHEUS}" },
      targets: [{ refId: "A", expr: "up" }],
    }],
    __inputs: [{ name: "DS_PROMETHEUS", type: "datasource", pluginId: "prometheus" }],
    ...extra,
  };
}

/** The Compose schema: a committed copy (tests/fixtures/compose-spec), or the one named by env. */
async function composeSchema(): Promise<Json> {
  const path = Deno.env.get("PROMCASE_COMPOSE_SPEC_SCHEMA") ??
    new URL("./fixtures/compose-spec/compose-spec.json", import.meta.url).pathname;
  return JSON.parse(await Deno.readTextFile(path));
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    out.push(path);
    if (e.isDirectory) out.push(...await walk(path));
  }
  return out;
}

Deno.test("view --no-start under umask 077: files Grafana and Compose read, as they read them", async () => {
  const { prometheus, version } = await findPrometheus("oldest");
  await withTempDir("promcase-view-files-", async (work) => {
    const archive = `${work}/case.tar.gz`;
    await runCliJson([...exportAllArgs(TEST_DATADIR, archive), "--no-prometheus-api"]);
    const extra = `${work}/extra`;
    await Deno.mkdir(`${extra}/DNS`, { recursive: true });
    const write = (path: string, value: Json) =>
      Deno.writeTextFile(`${extra}/${path}`, JSON.stringify(value));
    await write("a.json", dashboard("node-a", "Node"));
    await write("b.json", dashboard("node-b", "node ")); // same title to Grafana's MySQL
    await write("dns-root.json", dashboard("dns-root", "DNS")); // titled like the folder
    await write("DNS/unbound.json", dashboard("unbound", "Node")); // other folder: no clash
    await write("logs.json", {
      ...dashboard("logs", "Logs"),
      panels: [{ id: 1, title: "l", datasource: { type: "loki", uid: "loki-1" } }],
    });

    // umask 077, as on hardened laptops; the Prometheus binary is real (its --version is read).
    const script = 'umask 077; exec "$@"';
    const args = [
      "view",
      archive,
      "--no-start",
      "--dashboards",
      extra,
      "--prometheus-bin",
      prometheus,
      "--port-prometheus",
      "19091",
      "--port-grafana",
      "13001",
      "--json",
    ];
    const out = await new Deno.Command("sh", {
      args: ["-c", script, "sh", Deno.execPath(), "run", "--allow-all", MAIN, ...args],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const summary = JSON.parse(new TextDecoder().decode(out.stdout));
    const dir = summary.workdir as string;

    // 3. Titles: unique per folder, case-insensitively; a root dashboard is not a folder's title.
    const titles = new Map<string, string>(
      summary.dashboards.map((d: Json) => [`${d.folder}/${d.title}`, d.url]),
    );
    assert.deepEqual(
      [...titles.keys()].sort(),
      [
        "/DNS (dashboard)",
        "/Logs",
        "/Node",
        "/node  (2)".replace("  ", " "),
        "DNS/Node",
      ].sort(),
    );
    assert.match(
      stderr,
      /dashboard dns-root titled "DNS" is also a folder's title: shown as "DNS \(dashboard\)"/,
    );
    assert.match(stderr, /dashboard node-b titled "node" is taken in the General folder/);
    // 5. Unresolved datasource references are named with their dashboard.
    assert.match(
      stderr,
      /warning: dashboard logs \("Logs"\): datasource "loki-1" is not a Prometheus one/,
    );

    // 9. World-readable provisioning and dashboards, a data dir any container user can write.
    for (const path of [`${dir}/grafana`, ...await walk(`${dir}/grafana`)]) {
      if (path.startsWith(`${dir}/grafana/data`)) continue;
      const { mode, isDirectory } = await Deno.stat(path);
      const want = isDirectory ? 0o005 : 0o004;
      assert.equal(mode! & want, want, `${path} mode ${mode!.toString(8)}`);
    }
    for (const path of [`${dir}/docker-compose.yml`, `${dir}/prometheus.yml`]) {
      assert.equal((await Deno.stat(path)).mode! & 0o004, 0o004, path);
    }
    assert.equal((await Deno.stat(dir)).mode! & 0o005, 0o005);
    for (const path of [`${dir}/data`, ...await walk(`${dir}/data`)]) {
      const { mode, isDirectory } = await Deno.stat(path);
      const want = isDirectory ? 0o007 : 0o006;
      assert.equal(mode! & want, want, `${path} mode ${mode!.toString(8)}`);
    }

    // Provisioning YAML: only fields Grafana reads; 8. the version of each serving Prometheus.
    const yamlOf = async (rel: string) =>
      parseYaml(await Deno.readTextFile(`${dir}/grafana/${rel}`));
    for (
      const [set, url, servedBy] of [
        ["provisioning", "http://127.0.0.1:19091", version],
        ["compose-provisioning", "http://prometheus:9090", "3.5.0"],
      ]
    ) {
      const ds = await yamlOf(`${set}/datasources/promcase.yaml`);
      for (const key of Object.keys(ds)) assert.ok(DATASOURCES_TOP.includes(key), key);
      assert.equal(ds.apiVersion, 1);
      for (const d of ds.datasources) {
        for (const key of Object.keys(d)) assert.ok(DATASOURCE_FIELDS.includes(key), key);
        assert.equal(d.url, url);
        assert.equal(d.editable, false); // 6. read-only for the anonymous Editor
        assert.equal(d.jsonData.prometheusVersion, servedBy);
      }
      const dash = await yamlOf(`${set}/dashboards/promcase.yaml`);
      for (const key of Object.keys(dash)) assert.ok(PROVIDERS_TOP.includes(key), key);
      for (const p of dash.providers) {
        for (const key of Object.keys(p)) assert.ok(PROVIDER_FIELDS.includes(key), key);
        assert.equal(p.allowUiUpdates, false); // 6. provisioned dashboards stay read-only
        assert.deepEqual(Object.keys(p.options).sort(), ["foldersFromFilesStructure", "path"]);
      }
    }

    // 6 and 7: the Editor role for Explore, no viewers_can_edit, no plugin preinstall.
    const ini = await Deno.readTextFile(`${dir}/grafana/grafana.ini`);
    assert.match(ini, /^\[auth\.anonymous\]\nenabled = true\norg_role = Editor$/m);
    assert.doesNotMatch(ini, /viewers_can_edit/);
    assert.match(ini, /^\[plugins\]\npreinstall_disabled = true$/m);

    // The compose file against the Compose specification's schema.
    const composeText = await Deno.readTextFile(`${dir}/docker-compose.yml`);
    const compose = parseYaml(composeText);
    assert.deepEqual(validateJsonSchema(compose, await composeSchema()), []);
    for (const name of ["grafana", "grafana-host"]) {
      const env = compose.services[name].environment;
      assert.equal(env.GF_AUTH_ANONYMOUS_ORG_ROLE, "Editor");
      assert.equal(env.GF_PLUGINS_PREINSTALL_DISABLED, "true");
      assert.equal(env.GF_USERS_VIEWERS_CAN_EDIT, undefined);
    }
    // 1. grafana-host: alone (no depends_on, so no second Prometheus on data/), on the host
    // network, reading the local provisioning set (datasource = the Prometheus view runs) and
    // the dashboards at the path that set's provider names.
    const host = compose.services["grafana-host"];
    assert.equal(host.depends_on, undefined);
    assert.equal(host.network_mode, "host");
    assert.deepEqual(host.profiles, ["host"]);
    assert.equal(host.environment.GF_SERVER_HTTP_PORT, "13001");
    const mounts = new Map(host.volumes.map((v: Json) => [v.target, v.source]));
    assert.equal(
      mounts.get("/etc/grafana/provisioning/datasources"),
      `${dir}/grafana/provisioning/datasources`,
    );
    const provider = await yamlOf("provisioning/dashboards/promcase.yaml");
    assert.equal(
      mounts.get(provider.providers[0].options.path),
      provider.providers[0].options.path,
    );
    const ds = await yamlOf("provisioning/datasources/promcase.yaml");
    assert.equal(ds.datasources[0].url, "http://127.0.0.1:19091");
    assert.ok(compose.services.grafana.depends_on.includes("prometheus")); // the all-in-one set

    // Every dashboard carries both annotations on the provisioned datasource.
    for (
      const path of (await walk(`${dir}/grafana/dashboards`)).filter((p) => p.endsWith(".json"))
    ) {
      const d = JSON.parse(await Deno.readTextFile(path));
      const names = d.annotations.list.map((a: Json) => a.name);
      assert.ok(names.includes(INCIDENT_ANNOTATION) && names.includes(ALERTS_ANNOTATION), path);
    }
  });
});

Deno.test("addIncidentAnnotations: Grafana's annotation shape in schema versions 14 to 41", () => {
  const at = Date.parse("2026-11-25T10:30:00Z");
  const opts = { datasourceUid: "promcase", datasourceName: "Prometheus", atMs: at };
  for (let schemaVersion = 14; schemaVersion <= 41; schemaVersion++) {
    const builtIn = {
      builtIn: 1,
      datasource: schemaVersion < 33 ? "-- Grafana --" : { type: "grafana", uid: "-- Grafana --" },
      enable: true,
      hide: true,
      iconColor: "rgba(0, 211, 255, 1)",
      name: "Annotations & Alerts",
      type: "dashboard",
    };
    const dash: Json = {
      uid: "d",
      title: "t",
      schemaVersion,
      panels: [],
      annotations: { list: [builtIn] },
    };
    addIncidentAnnotations(dash, opts);
    addIncidentAnnotations(dash, opts); // a second run replaces, not doubles
    const list = (dash.annotations as { list: Json[] }).list;
    assert.equal(list.length, 3);
    assert.deepEqual(list[0], builtIn);
    for (const a of list.slice(1)) {
      // AnnotationQuery (kinds/dashboard): name, datasource, enable, iconColor required; before
      // schema 33 (Grafana 8.3) datasources are named by string, from 33 by {type, uid}.
      assert.equal(typeof a.name, "string");
      assert.equal(a.enable, true);
      assert.equal(typeof a.iconColor, "string");
      assert.deepEqual(
        a.datasource,
        schemaVersion < 33 ? "Prometheus" : { type: "prometheus", uid: "promcase" },
      );
      // Prometheus annotation fields, as Grafana's Prometheus annotation support reads them.
      assert.equal(typeof a.expr, "string");
      assert.match(String(a.step), /^\d+s$/);
      assert.equal(typeof a.useValueForTime, "boolean");
      assert.equal(typeof a.titleFormat, "string");
      assert.equal(typeof a.tagKeys, "string");
    }
    assert.deepEqual(list.slice(1).map((a) => [a.expr, a.useValueForTime]), [
      [`vector(${at})`, true],
      ['ALERTS{alertstate="firing"}', false],
    ]);
  }
});

Deno.test("resolveTitleClashes renames later clashes only", () => {
  const d = (folder: string, uid: string, title: string) => ({ folder, dashboard: { uid, title } });
  const list = [
    d("", "a", "CPU"),
    d("General", "b", "cpu"),
    d("Infra", "c", "CPU"),
    d("", "e", "infra"),
  ];
  const renames = resolveTitleClashes(list);
  assert.deepEqual(list.map((x) => x.dashboard.title), [
    "CPU",
    "cpu (2)",
    "CPU",
    "infra (dashboard)",
  ]);
  assert.equal(renames.length, 2);
  assert.deepEqual(resolveTitleClashes([d("", "x", "X"), d("F", "y", "X")]), []);
});

Deno.test("choosePort: a taken default port gives another, a taken explicit port is an error", () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (busy.addr as Deno.NetAddr).port;
    const chosen = choosePort(port, false, "Prometheus", "--port-prometheus");
    assert.equal(chosen.taken, port);
    assert.notEqual(chosen.port, port);
    assert.throws(
      () => choosePort(port, true, "Prometheus", "--port-prometheus"),
      /--port-prometheus \d+: the port is taken/,
    );
  } finally {
    busy.close();
  }
});

Deno.test("view with an explicit port that another server holds is a one-line error", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (busy.addr as Deno.NetAddr).port;
    await withTempDir("promcase-view-port-", async (work) => {
      const archive = `${work}/case.tar.gz`;
      await runCliJson([...exportAllArgs(TEST_DATADIR, archive), "--no-prometheus-api"]);
      const { prometheus } = await findPrometheus("oldest");
      const result = await runCli([
        "view",
        archive,
        "--prometheus-bin",
        prometheus,
        "--port-prometheus",
        String(port),
      ]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /^promcase view: --port-prometheus \d+: the port is taken/);
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    });
  } finally {
    busy.close();
  }
});
