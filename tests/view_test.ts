// promcase view end to end: an archive with dashboards captured as files, restored into a work
// dir with Grafana provisioning and a compose file that reference existing files, and a real
// Prometheus started on the data that answers queries over the window until Ctrl-C.
import assert from "node:assert/strict";
import { exportAllArgs, runCliJson } from "./_cli.ts";
import { findPrometheus, freePort } from "./_prometheus.ts";
import { TEST_DATADIR, withTempDir } from "./_files.ts";

const DATADIR = TEST_DATADIR;
const FIXTURES = new URL("./fixtures/dashboards", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function makeArchive(work: string): Promise<string> {
  const archive = `${work}/case.tar.gz`;
  await runCliJson([
    ...exportAllArgs(DATADIR, archive),
    "--no-prometheus-api",
    "--dashboard-file",
    `${FIXTURES}/datasource-variable.json`,
    "--dashboard-file",
    `${FIXTURES}/inputs-prometheus.json`,
  ]);
  return archive;
}

async function walkFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...await walkFiles(path));
    else out.push(path);
  }
  return out.sort();
}

Deno.test("view --no-start writes provisioning that points every dashboard at the restored data", async () => {
  await withTempDir("promcase-view-", async (work) => {
    const archive = await makeArchive(work);
    await Deno.mkdir(`${work}/extra/DNS`, { recursive: true });
    await Deno.copyFile(`${FIXTURES}/legacy-rows-strings.json`, `${work}/extra/DNS/legacy.json`);
    const summary = await runCliJson<{
      workdir: string;
      reused: boolean;
      window: { fromMs: number; toMs: number };
      dashboards: { title: string; folder: string; url: string }[];
    }>(["view", archive, "--no-start", "--dashboards", `${work}/extra`]);
    assert.equal(summary.workdir, `${work}/case`);
    assert.equal(summary.reused, false);
    assert.equal(summary.dashboards.length, 3);
    assert.deepEqual(summary.dashboards.map((d) => d.folder).sort(), ["", "", "DNS"]);
    for (const d of summary.dashboards) {
      assert.match(d.url, new RegExp(`from=${summary.window.fromMs}&to=${summary.window.toMs}`));
    }
    const files = await walkFiles(`${work}/case/grafana`);
    const dashboards = files.filter((f) => f.endsWith(".json"));
    assert.equal(dashboards.length, 3);
    for (const file of dashboards) {
      const text = await Deno.readTextFile(file);
      assert.ok(!text.includes("${DS_"), `${file} still has a \${DS_ input`);
      const dashboard = JSON.parse(text);
      assert.deepEqual(
        [String(dashboard.time.from), String(dashboard.time.to)].map((t) =>
          new Date(isNaN(+t) ? t : +t).getTime()
        ),
        [summary.window.fromMs, summary.window.toMs],
      );
    }
    const yamls = files.filter((f) => f.endsWith(".yaml") || f.endsWith(".yml"));
    const provisioning = (await Promise.all(yamls.map((f) => Deno.readTextFile(f)))).join("\n");
    assert.match(provisioning, /uid: "?promcase"?/);
    // The local provider points at the written dashboards; the compose one at the mount target.
    const local = await Deno.readTextFile(
      `${work}/case/grafana/provisioning/dashboards/promcase.yaml`,
    );
    assert.match(local, new RegExp(`path: "${work}/case/grafana/dashboards"`));
    assert.match(local, /foldersFromFilesStructure: true/);
    const compose = await Deno.readTextFile(`${work}/case/docker-compose.yml`);
    assert.ok(!/:latest\b/.test(compose));
    assert.match(compose, /prom\/prometheus:v\d/);
    assert.match(compose, /grafana\/grafana:\d/);
    const sources = [...compose.matchAll(/source: "([^"]+)"/g)].map((m) => m[1]);
    assert.equal(sources.length, 8); // prometheus 2, grafana 3, grafana-host 3
    for (const source of sources) assert.ok(await Deno.stat(source), `compose mounts ${source}`);
    // A second view of the same archive reuses the restore.
    const again = await runCliJson<{ reused: boolean }>(["view", archive, "--no-start"]);
    assert.equal(again.reused, true);
  });
});

Deno.test("view serves the data with a real Prometheus and stops cleanly on Ctrl-C", async () => {
  const { prometheus } = await findPrometheus("newest");
  await withTempDir("promcase-view-", async (work) => {
    const archive = await makeArchive(work);
    const port = freePort();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        MAIN,
        "view",
        archive,
        "--prometheus-bin",
        prometheus,
        "--port-prometheus",
        String(port),
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", PATH: "/usr/bin:/bin" },
    }).spawn();
    const decoder = new TextDecoder();
    let stdout = "";
    const reader = child.stdout.getReader();
    const deadline = Date.now() + 90_000;
    while (!stdout.includes("Press Ctrl-C") && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      stdout += decoder.decode(value);
    }
    try {
      assert.match(stdout, new RegExp(`Prometheus \\S+: http://127.0.0.1:${port}`), stdout);
      const manifest = JSON.parse(await Deno.readTextFile(`${work}/case/manifest.json`));
      const query = encodeURIComponent("count(count_over_time(up[3650d]))");
      const response = await fetch(
        `http://127.0.0.1:${port}/api/v1/query?query=${query}&time=${manifest.window.toMs / 1000}`,
      );
      const body = await response.json();
      assert.equal(body.status, "success");
      assert.equal(body.data.result.length, 1, JSON.stringify(body));
    } finally {
      child.kill("SIGINT");
      reader.releaseLock();
      await child.stdout.cancel();
      const status = await child.status;
      const stderr = decoder.decode(await new Response(child.stderr).arrayBuffer());
      assert.equal(status.code, 130, stderr);
    }
    // Prometheus is gone with it.
    await assert.rejects(fetch(`http://127.0.0.1:${port}/-/ready`).then((r) => r.body?.cancel()));
  });
});

Deno.test("view of a split archive restores once, whichever part is named", async () => {
  await withTempDir("promcase-view-split-", async (work) => {
    const archive = `${work}/case.tar.gz`;
    await runCliJson([
      ...exportAllArgs(DATADIR, archive),
      "--no-prometheus-api",
      "--split",
      "16KiB",
    ]);
    const view = (part: string) =>
      runCliJson<{ reused: boolean }>([
        "view",
        `${archive}.${part}`,
        "--workdir",
        `${work}/case`,
        "--no-start",
      ]);
    assert.equal((await view("part001")).reused, false);
    assert.equal((await view("part002")).reused, true);
  });
});
