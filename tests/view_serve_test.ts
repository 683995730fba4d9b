// promcase view with real processes: a real Prometheus on data holding the customer's ALERTS, whose
// provisioned annotations (incident time, firing alerts) are queried as Grafana would query them,
// and whose flags prove it is ours. Grafana cannot be installed on our machines: a FAKE `grafana`
// executable (a script serving /api/health, refusing to start without conf/defaults.ini under
// --homepath, as Grafana does) tests ONLY the process handling: home detection from the binary's
// real path, /usr/sbin lookup, the wait for /api/health and a one-line error when it exits.
import assert from "node:assert/strict";
import { withTempDir } from "./_files.ts";
import { backfillOpenMetrics, findPrometheus, freePort, startPrometheus } from "./_prometheus.ts";
import { runCliJson } from "./_cli.ts";
import { findGrafanaBinary, findGrafanaHome, startGrafana } from "../mod/view/grafana_server.ts";
import { checkServesDir } from "../mod/view/prometheus.ts";
import { ALERTS_ANNOTATION, INCIDENT_ANNOTATION } from "../mod/view/grafana.ts";

type Json = Record<string, unknown>;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

const FAKE_GRAFANA = `
const args = Deno.args;
const home = args[args.indexOf("--homepath") + 1];
const config = args[args.indexOf("--config") + 1];
if (args[0] !== "server" || !home || !config) { console.error("bad args " + args.join(" ")); Deno.exit(2); }
try { Deno.statSync(home + "/conf/defaults.ini"); } catch {
  console.error("Grafana-server Init Failed: Could not find config defaults, make sure homepath command line parameter is set or working directory is homepath");
  Deno.exit(1);
}
const port = Number(/^http_port = (\\d+)$/m.exec(Deno.readTextFileSync(config))[1]);
const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, (req) =>
  new URL(req.url).pathname === "/api/health" ? Response.json({ database: "ok" }) : new Response("", { status: 404 }));
Deno.addSignalListener("SIGTERM", () => server.shutdown().then(() => Deno.exit(0)));
`;

/** A fake Grafana install at `root` (`bin/grafana`, and `conf/defaults.ini` unless `broken`). */
async function fakeInstall(root: string, fakeScript: string, broken = false): Promise<string> {
  await Deno.mkdir(`${root}/bin`, { recursive: true });
  if (!broken) {
    await Deno.mkdir(`${root}/conf`, { recursive: true });
    await Deno.writeTextFile(`${root}/conf/defaults.ini`, "[paths]\n");
  }
  const bin = `${root}/bin/grafana`;
  await Deno.writeTextFile(
    bin,
    `#!/bin/sh\nexec '${Deno.execPath()}' run --allow-all '${fakeScript}' "$@"\n`,
  );
  await Deno.chmod(bin, 0o755);
  return bin;
}

Deno.test("grafana: home from the binary's real path, /usr/sbin-style lookup, health wait, exit in one line", async () => {
  await withTempDir("promcase-fake-grafana-", async (work) => {
    const script = `${work}/fake-grafana.ts`;
    await Deno.writeTextFile(script, FAKE_GRAFANA);
    // Release tarball: grafana-v12.2.1/bin/grafana, reached through a symlink on PATH.
    const tarball = await fakeInstall(`${work}/grafana-v12.2.1`, script);
    await Deno.mkdir(`${work}/sbin`);
    await Deno.symlink(tarball, `${work}/sbin/grafana`);
    assert.equal(await findGrafanaHome(`${work}/sbin/grafana`, []), `${work}/grafana-v12.2.1`);
    // Homebrew: <prefix>/Cellar/grafana/12.2.1/bin/grafana with share/grafana/conf/defaults.ini.
    const cellar = `${work}/brew/Cellar/grafana/12.2.1`;
    await fakeInstall(cellar, script, true);
    await Deno.mkdir(`${cellar}/share/grafana/conf`, { recursive: true });
    await Deno.writeTextFile(`${cellar}/share/grafana/conf/defaults.ini`, "");
    assert.equal(await findGrafanaHome(`${cellar}/bin/grafana`, []), `${cellar}/share/grafana`);
    // Not on PATH, but in a Debian-style sbin dir.
    assert.equal(await findGrafanaBinary("/nonexistent", [`${work}/sbin`]), `${work}/sbin/grafana`);
    assert.equal(await findGrafanaBinary("/nonexistent", []), null);

    const port = freePort();
    const config = `${work}/grafana.ini`;
    await Deno.writeTextFile(config, `[server]\nhttp_port = ${port}\n`);
    const grafana = await startGrafana({
      bin: `${work}/sbin/grafana`,
      config,
      port,
      logFile: `${work}/grafana.log`,
      homeFallbacks: [],
    });
    try {
      assert.equal(grafana.home, `${work}/grafana-v12.2.1`);
      const health = await fetch(`${grafana.url}/api/health`);
      assert.deepEqual(await health.json(), { database: "ok" });
    } finally {
      await grafana.stop();
    }

    // A Grafana that exits during start-up (here: one that finds no defaults, as a real one does
    // with a wrong --homepath): not counted as started; the error is one line quoting its log.
    const exiting = `${work}/exit-grafana.ts`;
    await Deno.writeTextFile(
      exiting,
      'console.error("Grafana-server Init Failed: Could not find config defaults"); Deno.exit(1);',
    );
    const broken = await fakeInstall(`${work}/broken`, exiting);
    const err = await startGrafana({
      bin: broken,
      config,
      port,
      logFile: `${work}/broken.log`,
      homeFallbacks: [],
    }).then(() => null, (e) => e as Error);
    assert.ok(err, "a Grafana that exits must not count as started");
    assert.match(
      err.message,
      /^Grafana exited during start-up \(code 1\): .*Could not find config defaults/,
    );
    assert.equal(err.message.split("\n").length, 1);
    await Deno.remove(`${work}/broken/conf`, { recursive: true });
    // No home at all: refused before starting anything.
    await assert.rejects(
      startGrafana({ bin: broken, config, port, logFile: `${work}/x.log`, homeFallbacks: [] }),
      /cannot find Grafana's home/,
    );
  });
});

Deno.test("view: annotations at --at and from the customer's ALERTS answer on the real Prometheus; its flags name our data", async () => {
  const { prometheus, promtool } = await findPrometheus("oldest");
  await withTempDir("promcase-view-alerts-", async (work) => {
    // The customer's data: an alert firing for 10 minutes before the incident.
    const at = Date.parse("2026-11-25T10:30:00Z");
    const lines = ["# TYPE ALERTS gauge"];
    for (let t = at - 3_600_000; t <= at + 600_000; t += 60_000) {
      if (t >= at - 600_000) {
        lines.push(
          `ALERTS{alertname="DiskFull",alertstate="firing",severity="critical"} 1 ${t / 1000}`,
        );
      }
      lines.push(`ALERTS{alertname="Slow",alertstate="pending",severity="warning"} 1 ${t / 1000}`);
    }
    lines.push("# EOF", "");
    await Deno.mkdir(`${work}/source`);
    await backfillOpenMetrics(promtool, lines.join("\n"), `${work}/source`);
    const archive = `${work}/case.tar.gz`;
    await runCliJson([
      "export",
      `${work}/source`,
      "--at",
      new Date(at).toISOString(),
      "--before",
      "2h",
      "--after",
      "15m",
      "-o",
      archive,
      "--no-prometheus-api",
    ]);
    await Deno.mkdir(`${work}/extra`);
    await Deno.writeTextFile(
      `${work}/extra/d.json`,
      JSON.stringify({ uid: "d", title: "D", schemaVersion: 39, panels: [] }),
    );

    // A Prometheus of the engineer's own, on other data: not ours.
    await using other = await startPrometheus({ bin: prometheus, dataDir: `${work}/other` });
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
        "--dashboards",
        `${work}/extra`,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", PATH: "/usr/bin:/bin" },
    }).spawn();
    const reader = child.stdout.getReader();
    let stdout = "";
    const deadline = Date.now() + 60_000;
    while (!stdout.includes("Press Ctrl-C") && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      stdout += new TextDecoder().decode(value);
    }
    try {
      // 1. The hint works as printed: grafana-host, not the compose grafana that starts a second
      // Prometheus on the same data.
      assert.match(stdout, /docker compose up grafana-host/, stdout);
      const url = `http://127.0.0.1:${port}`;
      await checkServesDir(url, `${work}/case/data`);
      await assert.rejects(
        checkServesDir(other.url, `${work}/case/data`),
        /another Prometheus answers/,
      );
      // 8. The datasource names the serving Prometheus' version.
      const version = (await (await fetch(`${url}/api/v1/status/buildinfo`)).json()).data.version;
      const ds = await Deno.readTextFile(
        `${work}/case/grafana/provisioning/datasources/promcase.yaml`,
      );
      assert.match(
        ds,
        new RegExp(`prometheusVersion: "${version.split("+")[0].replaceAll(".", "\\.")}"`),
      );

      const dash = JSON.parse(await Deno.readTextFile(`${work}/case/grafana/dashboards/d.json`));
      const byName = new Map<string, Json>(dash.annotations.list.map((a: Json) => [a.name, a]));
      const range = async (expr: string) => {
        const params = new URLSearchParams({
          query: expr,
          start: String((at - 3_600_000) / 1000),
          end: String((at + 600_000) / 1000),
          step: "60",
        });
        const body = await (await fetch(`${url}/api/v1/query_range?${params}`)).json();
        assert.equal(body.status, "success", JSON.stringify(body));
        return body.data.result as { metric: Json; values: [number, string][] }[];
      };
      // Incident: every sample's value is --at (Grafana takes it as the time: one event).
      const incident = await range(String(byName.get(INCIDENT_ANNOTATION)!.expr));
      assert.equal(incident.length, 1);
      assert.ok(incident[0].values.length > 10);
      assert.deepEqual(new Set(incident[0].values.map((v) => Number(v[1]))), new Set([at]));
      // Alerts: only the firing one, from 10 minutes before --at.
      const alerts = await range(String(byName.get(ALERTS_ANNOTATION)!.expr));
      assert.deepEqual(alerts.map((s) => s.metric.alertname), ["DiskFull"]);
      assert.equal(alerts[0].values[0][0] * 1000, at - 600_000);
    } finally {
      child.kill("SIGINT");
      reader.releaseLock();
      await child.stdout.cancel();
      const status = await child.status;
      const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
      assert.equal(status.code, 130, stderr);
    }
  });
});
