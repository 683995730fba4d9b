// Context capture: the Prometheus API of a real server, Grafana's API from a local server that
// answers with the documented shapes (Grafana itself cannot be installed here), secret masking,
// and that no token or password reaches the archive or the output.
import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import { maskSecrets, maskSecretsInText } from "../mod/context.ts";
import { exportAllArgs, runCli } from "./_cli.ts";
import { findPrometheus, startPrometheus } from "./_prometheus.ts";
import { TEST_DATADIR } from "./_files.ts";

const DATADIR = TEST_DATADIR;
const TOKEN = "glsa_S3cr3tT0kenValue_0123456789abcdef";
const SECRETS = ["hunter2-basic-pass", "bearer-S3cret-9876", "urlpass-4242", "ak-77889900aabb"];

Deno.test("maskSecrets masks passwords, tokens, keys and URL credentials, nothing else", () => {
  const masked = maskSecrets({
    password: "p1",
    basicAuthPassword: "p2",
    secureJsonData: { apiKey: "k1", httpHeaderValue1: "Bearer abcdefgh12345" },
    bearer_token: "<secret>",
    password_file: "/etc/prom/pass",
    url: "https://alice:pw123@example.org/x",
    name: "password-reset-service",
    yaml:
      "basic_auth:\n  username: bob\n  password: hunter2\nauthorization:\n  credentials: xyz\n" +
      "labels:\n  token: t0k3n\n",
  }) as Record<string, unknown>;
  const text = JSON.stringify(masked);
  for (const secret of ["p1", "p2", "k1", "abcdefgh12345", "pw123", "hunter2", "xyz", "t0k3n"]) {
    assert.ok(!text.includes(`"${secret}"`) && !text.includes(`: ${secret}`), secret);
  }
  assert.equal(masked.bearer_token, "<secret>", "Prometheus' own mask stays");
  assert.equal(masked.password_file, "/etc/prom/pass", "file paths are not secrets");
  assert.equal(masked.name, "password-reset-service", "only keys decide, not values");
  assert.match(masked.yaml as string, /username: bob/);
  assert.equal(
    maskSecretsInText("url: http://u:p4ss@h:9090/"),
    "url: http://u:<masked by promcase>@h:9090/",
  );
});

function grafanaServer(seenAuth: string[]) {
  const dashboards: Record<string, { title: string; folder: string }> = {
    "node-full": { title: "Node Exporter Full", folder: "Linux" },
    "bind9": { title: "Bind9", folder: "DNS" },
    "home": { title: "Home", folder: "General" },
  };
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    seenAuth.push(req.headers.get("authorization") ?? "");
    if (req.headers.get("authorization") !== `Bearer ${TOKEN}`) {
      return Response.json({ message: "invalid API key" }, { status: 401 });
    }
    const url = new URL(req.url);
    if (url.pathname === "/api/search") {
      return Response.json(
        Object.entries(dashboards).map(([uid, d]) => ({
          uid,
          title: d.title,
          type: "dash-db",
          ...(d.folder === "General"
            ? {}
            : { folderTitle: d.folder, folderUid: d.folder.toLowerCase() }),
        })),
      );
    }
    const match = /^\/api\/dashboards\/uid\/(.+)$/.exec(url.pathname);
    if (match && dashboards[match[1]]) {
      const d = dashboards[match[1]];
      return Response.json({
        dashboard: {
          uid: match[1],
          title: d.title,
          panels: [{ id: 1, targets: [{ expr: "up" }] }],
        },
        meta: { folderTitle: d.folder, url: `/d/${match[1]}` },
      });
    }
    if (url.pathname === "/api/datasources") {
      return Response.json([{
        uid: "prom-main",
        name: "Prometheus",
        type: "prometheus",
        url: `http://scraper:${SECRETS[2]}@prom:9090`,
        basicAuthPassword: SECRETS[0],
        secureJsonFields: { basicAuthPassword: true },
      }]);
    }
    return new Response("not found", { status: 404 });
  });
}

Deno.test("export captures the Prometheus API and Grafana dashboards, with no secret in the archive", async () => {
  const { prometheus } = await findPrometheus("newest");
  const work = await Deno.makeTempDir({ prefix: "promcase-context-" });
  const seenAuth: string[] = [];
  const grafana = grafanaServer(seenAuth);
  try {
    await Deno.writeTextFile(`${work}/token`, `${TOKEN}\n`);
    const config = `global:
  scrape_interval: 1m
  external_labels:
    cluster: prod-eu
    api_key: ${SECRETS[3]}
scrape_configs:
  - job_name: secured
    basic_auth: { username: scraper, password: ${SECRETS[0]} }
    static_configs: [{ targets: ["127.0.0.1:1"] }]
  - job_name: tokened
    authorization: { credentials: ${SECRETS[1]} }
    static_configs: [{ targets: ["127.0.0.1:2"] }]
`;
    await using server = await startPrometheus({
      bin: prometheus,
      dataDir: `${work}/prom`,
      config,
    });
    const archive = `${work}/ctx.tar.gz`;
    const result = await runCli([
      ...exportAllArgs(DATADIR, archive),
      "--json",
      "--prometheus-url",
      server.url,
      "--grafana-url",
      `http://127.0.0.1:${grafana.addr.port}`,
      "--grafana-token-file",
      `${work}/token`,
      "--folder",
      "Linux",
      "--folder",
      "General",
    ]);
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout);
    assert.deepEqual(summary.context.prometheus.captured, [
      "buildinfo",
      "runtimeinfo",
      "flags",
      "config",
      "rules",
      "alerts",
      "targets",
      "tsdb",
      "metadata",
    ]);
    assert.equal(summary.context.prometheus.version.split("+")[0], server.version);
    assert.deepEqual(
      summary.context.grafana.dashboards.map((d: { uid: string; folder: string }) =>
        `${d.folder}/${d.uid}`
      ),
      ["Linux/node-full", "General/home"],
    );
    assert.ok(seenAuth.every((a) => a === `Bearer ${TOKEN}`), "the token was sent to Grafana");

    const tar = new TextDecoder().decode(gunzipSync(await Deno.readFile(archive)));
    assert.match(tar, /context\/prometheus\/config\.json/);
    assert.match(tar, /context\/grafana\/dashboards\/Linux\/node-full\.json/);
    assert.match(tar, /context\/grafana\/dashboards\/General\/home\.json/);
    assert.ok(!tar.includes("bind9.json"), "folder filter applied");
    assert.match(tar, /prod-eu/, "the config itself is there");
    for (const secret of [TOKEN, ...SECRETS]) {
      assert.ok(!tar.includes(secret), `${secret} leaked into the archive`);
      assert.ok(
        !result.stdout.includes(secret) && !result.stderr.includes(secret),
        `${secret} printed`,
      );
    }
    const verify = await runCli(["verify", archive]);
    assert.equal(verify.code, 0, verify.stderr);
  } finally {
    await grafana.shutdown();
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("an unreachable Prometheus API is a warning; a refused Grafana token an error", async () => {
  const work = await Deno.makeTempDir({ prefix: "promcase-context-" });
  const grafana = grafanaServer([]);
  try {
    const ok = await runCli([
      ...exportAllArgs(DATADIR, `${work}/a.tar.gz`),
      "--prometheus-url",
      "http://127.0.0.1:1",
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /warning: Prometheus API at http:\/\/127\.0\.0\.1:1 not reachable/);
    const bad = await runCli([
      ...exportAllArgs(DATADIR, `${work}/b.tar.gz`),
      "--no-prometheus-api",
      "--grafana-url",
      `http://127.0.0.1:${grafana.addr.port}`,
      "--grafana-token",
      "wrong-token-123456",
    ]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /cannot list dashboards .*HTTP 401/);
    assert.ok(!bad.stderr.includes("wrong-token-123456"));
    assert.equal(bad.stderr.trim().split("\n").length, 1);
    const orphan = await runCli(["export", DATADIR, "--at", "now", "--dashboard", "x"]);
    assert.equal(orphan.code, 2);
    assert.deepEqual((await Array.fromAsync(Deno.readDir(work))).map((e) => e.name).sort(), [
      "a.tar.gz",
      "a.tar.gz.sha256",
    ]);
  } finally {
    await grafana.shutdown();
    await Deno.remove(work, { recursive: true });
  }
});
