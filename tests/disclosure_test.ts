// The disclosure report (`export --dry-run`, `inspect --disclosure`, `disclosure.json` in the
// archive): detectors with positive and negative cases, distinct label values of the real 2.42 data
// dir under tests/testdata checked against promtool 2.42's `tsdb dump`, the archive's report equal
// to what inspect reads back from it (rewrite with --match and context, and raw), and the path
// beyond the distinct-value limit.
import assert from "node:assert/strict";
import { detect, type Detector } from "../mod/disclosure_detectors.ts";
import { discloseSource, DisclosureCollector, type DisclosureReport } from "../mod/disclosure.ts";
import { isOneLineError, runCli, runCliJson } from "./_cli.ts";
import { TEST_DATADIR, withTempDir } from "./_files.ts";
import { findPrometheus } from "./_prometheus.ts";
import { promtoolDump, run } from "./_promtool.ts";

const found = (text: string, detector: Detector) =>
  detect(text).filter((h) => h.detector === detector).map((h) => h.match);

Deno.test("detectors: each finds its kind and leaves look-alikes alone", () => {
  const cases: [Detector, string, string[]][] = [
    // [detector, text, expected matches]
    ["ipv4", "10.0.0.1:9100", ["10.0.0.1"]],
    ["ipv4", "from 192.168.1.254 and 0.0.0.0.", ["192.168.1.254", "0.0.0.0"]],
    ["ipv4", "1.2.3", []], // a version
    ["ipv4", "999.1.1.1", []], // octet out of range
    ["ipv4", "1.2.3.4.5", []], // a longer dotted number
    ["ipv4", "v2.42.0.1", []], // glued to letters
    ["ipv4", "256.1.1.1 1.1.1.256", []],
    ["ipv6", "::1", ["::1"]],
    ["ipv6", "[fe80::1]:9100", ["fe80::1"]],
    ["ipv6", "2001:db8::8a2e:370:7334", ["2001:db8::8a2e:370:7334"]],
    ["ipv6", "2001:0db8:0000:0000:0000:ff00:0042:8329", [
      "2001:0db8:0000:0000:0000:ff00:0042:8329",
    ]],
    ["ipv6", "::ffff:10.0.0.1", ["::ffff:10.0.0.1"]],
    ["ipv6", "10:30:00", []], // a time of day
    ["ipv6", "2026-11-25T10:30:00Z", []],
    ["ipv6", "std::vector", []],
    ["ipv6", "de:ad:be:ef:00:01", []], // a MAC address: six groups, no "::"
    ["ipv6", "1::2::3", []], // two "::"
    ["ipv6", "12345::1", []], // a group of five digits
    ["hostname", "db1.example.com:9100", ["db1.example.com"]],
    ["hostname", "kube-dns.kube-system.svc.cluster.local", [
      "kube-dns.kube-system.svc.cluster.local",
    ]],
    ["hostname", "ip-10-0-0-1.ec2.internal", ["ip-10-0-0-1.ec2.internal"]],
    ["hostname", "http.server.duration", []], // OpenTelemetry metric name
    ["hostname", "node_cpu_seconds_total", []],
    ["hostname", "prometheus.yml", []],
    ["hostname", "localhost:9090", []], // no dot
    ["email", "ops@example.com", ["ops@example.com"]],
    ["email", "mailto:first.last+tag@mail.corp.example.org", [
      "first.last+tag@mail.corp.example.org",
    ]],
    ["email", "user@localhost", []], // no dotted domain
    ["email", "@example.com", []],
    ["url-credentials", "https://user:pass@db.example.com/x", ["https://user:pass@db.example.com"]],
    ["url-credentials", "postgres://app:<secret>@10.0.0.5:5432/db", [
      "postgres://app:<secret>@10.0.0.5:5432", // up to the host and port
    ]],
    ["url-credentials", "https://prometheus.example.com:9090/api", []], // a port, no credentials
    ["url-credentials", "https://user@host.example.com/", []], // no password
    ["email", "https://user:pass@db.example.com/x", []], // the URL's password@host is no e-mail
    [
      "jwt",
      "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
      [
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
      ],
    ],
    ["jwt", "eyJub3RhIjoiand0In0.eyJzdWIiOiIxIn0.abcdefghijkl", []], // header without alg/typ
    ["jwt", "aaaa.bbbb.cccccccccc", []],
    ["aws-access-key", "key=AKIAIOSFODNN7EXAMPLE", ["AKIAIOSFODNN7EXAMPLE"]],
    ["aws-access-key", "ASIAY34FZKBOKMUTVV7A", ["ASIAY34FZKBOKMUTVV7A"]],
    ["aws-access-key", "AKIAIOSFODNN7EXAMPL", []], // 19 characters
    ["aws-access-key", "XAKIAIOSFODNN7EXAMPLE", []], // part of a longer word
    ["aws-access-key", "akiaiosfodnn7example", []],
    ["gcp-api-key", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", [
      "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
    ]],
    ["gcp-api-key", "AIzaSyDaGmWKa4JsXZ", []], // too short
    [
      "azure-storage-key",
      `DefaultEndpointsProtocol=https;AccountName=x;AccountKey=${"A1b2".repeat(21)}ab==`,
      [`AccountKey=${"A1b2".repeat(21)}ab==`],
    ],
    ["azure-storage-key", "AccountKey=short==", []],
    ["private-key", "-----BEGIN RSA PRIVATE KEY-----\nMIIE", ["-----BEGIN RSA PRIVATE KEY-----"]],
    ["private-key", "-----BEGIN PRIVATE KEY-----", ["-----BEGIN PRIVATE KEY-----"]],
    ["private-key", "-----BEGIN CERTIFICATE-----", []],
  ];
  for (const [detector, text, expected] of cases) {
    assert.deepEqual(found(text, detector), expected, `${detector} in ${JSON.stringify(text)}`);
  }
  // Ordinary label values: no detector at all.
  for (const text of ["/api/v1/query", "0.005", "+Inf", "go1.19.5", "café ☕ Zürich", "2.42.0"]) {
    assert.deepEqual(detect(text), [], text);
  }
});

/** Distinct values per label name, metric names and series, from `promtool tsdb dump` lines. */
function dumpStats(lines: string[]) {
  const values = new Map<string, Set<string>>();
  const series = new Set<string>();
  for (const line of lines) {
    const set = line.slice(0, line.indexOf("} ") + 1);
    series.add(set);
    for (const m of set.matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      const value = JSON.parse(`"${m[2]}"`) as string;
      if (!values.has(m[1])) values.set(m[1], new Set());
      values.get(m[1])!.add(value);
    }
  }
  return { values, series: series.size };
}

Deno.test("distinct label values and metric names of the 2.42 data dir match promtool 2.42's dump", async () => {
  const bin = await findPrometheus("oldest");
  const dump = dumpStats(await promtoolDump(bin, TEST_DATADIR));
  const report = await runCliJson<DisclosureReport>(["inspect", "--disclosure", TEST_DATADIR]);
  assert.equal(report.format, "promcase-disclosure");
  assert.ok(report.valuesExact && report.seriesExact);
  assert.equal(report.series, dump.series);
  assert.deepEqual(
    Object.fromEntries(report.labels.map((l) => [l.name, l.values])),
    Object.fromEntries([...dump.values].map(([name, set]) => [name, set.size]).sort()),
  );
  assert.deepEqual(report.metrics.map((m) => m.name), [...dump.values.get("__name__")!].sort());
  // The only detector hit: the scrape target's address in `instance`.
  const instances = [...dump.values.get("instance")!];
  const instance = report.labels.find((l) => l.name === "instance")!;
  assert.deepEqual(instance.hits, [{
    detector: "ipv4",
    count: instances.length,
    examples: instances.map((i) => i.replace(/:\d+$/, "")),
  }]);
  assert.equal(Object.values(report.totals).reduce((a, b) => a + b, 0), instances.length);
  // The text form lists the labels with their counts.
  const text = await runCli(["inspect", "--disclosure", TEST_DATADIR]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^ {2}handler +5$/m);
  assert.match(text.stdout, /instance +1 {2}ipv4 1 \(e\.g\. 127\.0\.0\.1\)/);
  // --series and --disclosure do not go together.
  const both = await runCli(["inspect", "--disclosure", "--series", TEST_DATADIR]);
  assert.equal(both.code, 2);
  assert.ok(isOneLineError(both), both.stderr);
});

/** The archive's disclosure.json, as stored. */
async function storedDisclosure(archive: string): Promise<string> {
  return await run("tar", ["-xzOf", archive, "disclosure.json"]);
}

Deno.test("the archive's disclosure.json is what inspect --disclosure reads from it (rewrite, --match, context; raw)", async () => {
  await withTempDir("promcase-disclosure-", async (dir) => {
    const dashboard = `${dir}/ops.json`;
    await Deno.writeTextFile(
      dashboard,
      JSON.stringify({
        title: "Ops",
        panels: [{
          title: "db1.example.com via 10.1.2.3",
          description: "call ops@example.com; also https://svc:hunter2@grafana.example.com/",
          targets: [{ expr: 'up{instance="[2001:db8::7]:9100"}' }],
        }],
      }),
    );
    const archive = `${dir}/rewrite.tar.gz`;
    const dry = await runCliJson<{ disclosure: DisclosureReport }>([
      "export",
      TEST_DATADIR,
      "--from",
      "0",
      "--to",
      "now",
      "--match",
      "promcase_requests_total",
      "--no-prometheus-api",
      "--dashboard-file",
      dashboard,
      "--dry-run",
    ], { cwd: dir });
    const exported = await runCli([
      "export",
      TEST_DATADIR,
      "--from",
      "0",
      "--to",
      "now",
      "--match",
      "promcase_requests_total",
      "--no-prometheus-api",
      "--dashboard-file",
      dashboard,
      "-o",
      archive,
    ]);
    assert.equal(exported.code, 0, exported.stderr);
    const stored = await storedDisclosure(archive);
    const read = await runCli(["inspect", "--disclosure", archive, "--json"]);
    assert.equal(read.code, 0, read.stderr);
    assert.equal(read.stdout, stored);
    const report = JSON.parse(stored) as DisclosureReport;
    // Only the selected series, as promtool 2.42 dumps them (2.42's dump has no --match).
    assert.deepEqual(report.metrics.map((m) => m.name), ["promcase_requests_total"]);
    const bin = await findPrometheus("oldest");
    const dump = dumpStats(
      (await promtoolDump(bin, TEST_DATADIR)).filter((l) =>
        l.includes('__name__="promcase_requests_total"')
      ),
    );
    assert.equal(report.series, dump.series);
    assert.deepEqual(
      report.labels.map((l) => [l.name, l.values]),
      [...dump.values].map(([name, set]) => [name, set.size]).sort(),
    );
    // The dry run showed the same (the backfilled series are all in blocks: no head to over-count).
    assert.deepEqual(dry.disclosure, report);
    // The context, per file.
    assert.equal(report.context.length, 1);
    const hits = Object.fromEntries(report.context[0].hits.map((h) => [h.detector, h.examples]));
    assert.deepEqual(hits, {
      ipv4: ["10.1.2.3"],
      ipv6: ["2001:db8::7"],
      hostname: ["db1.example.com"],
      email: ["ops@example.com"],
      // The context capture masked the password; user and host still leave.
      "url-credentials": ["https://svc:<masked by promcase>@grafana.example.com"],
    });
    // The manifest lists it and sums it.
    const manifest = JSON.parse(await run("tar", ["-xzOf", archive, "manifest.json"]));
    assert.ok(manifest.files.some((f: { path: string }) => f.path === "disclosure.json"));
    assert.deepEqual(manifest.disclosure.totals, report.totals);
    // verify accepts the archive with it.
    const verify = await runCli(["verify", archive]);
    assert.equal(verify.code, 0, verify.stderr);

    // Raw: the shipped blocks and head.
    const raw = `${dir}/raw.tar.gz`;
    const rawExport = await runCli([
      "export",
      TEST_DATADIR,
      "--from",
      "0",
      "--to",
      "now",
      "--raw",
      "--no-prometheus-api",
      "-o",
      raw,
    ]);
    assert.equal(rawExport.code, 0, rawExport.stderr);
    const rawStored = await storedDisclosure(raw);
    const rawRead = await runCli(["inspect", "--disclosure", raw, "--json"]);
    assert.equal(rawRead.stdout, rawStored);
    const whole = await runCliJson<DisclosureReport>(["inspect", "--disclosure", TEST_DATADIR]);
    assert.deepEqual(JSON.parse(rawStored), whole);
  });
});

Deno.test("beyond the distinct-value limit the counts are upper bounds (exact: false)", async () => {
  const exact = (await discloseSource(TEST_DATADIR)).report;
  const capped = (await discloseSource(TEST_DATADIR, { distinctValuesLimit: 8 })).report;
  assert.equal(capped.distinctValuesLimit, 8);
  assert.equal(capped.valuesExact, false);
  assert.ok(exact.valuesExact);
  const byName = new Map(exact.labels.map((l) => [l.name, l]));
  let over = 0;
  for (const label of capped.labels) {
    const truth = byName.get(label.name)!;
    assert.ok(label.values >= truth.values, `${label.name}: ${label.values} < ${truth.values}`);
    if (!label.exact) over += label.values - truth.values;
    else assert.equal(label.values, truth.values, label.name);
  }
  assert.ok(over > 0);
  // The collector itself: a value seen again is not counted again below the limit, is above it.
  const collector = new DisclosureCollector(2);
  for (let i = 0; i < 3; i++) collector.addSeries([{ name: "a", value: "x" }]);
  collector.addSeries([{ name: "a", value: "y" }]);
  for (let i = 0; i < 3; i++) collector.addSeries([{ name: "a", value: "z" }]);
  const labels = collector.report({ metrics: [], exact: true }).labels;
  assert.deepEqual(labels, [{ name: "a", values: 5, exact: false, hits: [] }]);
});
