import assert from "node:assert/strict";
import {
  computeLeadIn,
  DEFAULT_LEAD_IN_MS,
  exprLookback,
  MAX_LEAD_IN_MS,
  scanRangeSelectors,
} from "../mod/leadin.ts";
import { parseManifest, shippedRange } from "../mod/archive/manifest.ts";
import type { ContextFile } from "../mod/context.ts";
import { isOneLineError, runCli } from "./_cli.ts";
import { TEST_DATADIR } from "./_files.ts";

const M = 60_000n;
const H = 60n * M;

const ms = (expr: string, vars?: Map<string, bigint>) => exprLookback(expr, vars).ms;

Deno.test("exprLookback reads range selectors, subqueries, offsets and Go duration units", () => {
  assert.equal(ms("up"), null);
  assert.equal(ms("rate(http_requests_total[5m])"), 5n * M);
  assert.equal(ms("increase(x[1h])"), H);
  assert.equal(ms("rate(x[1h30m])"), 90n * M);
  assert.equal(ms("rate(x[ 90s ])"), 90_000n);
  assert.equal(ms("rate(x[1500ms])"), 1500n);
  assert.equal(ms("rate(x[1d])"), 24n * H);
  assert.equal(ms("rate(x[2w])"), 14n * 24n * H);
  assert.equal(ms("rate(x[1y])"), 365n * 24n * H);
  assert.equal(ms("rate(x[300])"), 300_000n, "a number is seconds");
  // The longest of several ranges, not their sum.
  assert.equal(ms("rate(a[5m]) / rate(b[30m])"), 30n * M);
  // A subquery looks back its range, and its inner range before that.
  assert.equal(ms("max_over_time(rate(x[5m])[1h:1m])"), 65n * M);
  assert.equal(ms("max_over_time(x[30m:])"), 30n * M);
  assert.equal(ms("max_over_time(max_over_time(rate(x[5m])[10m:1m])[20m:1m])"), 35n * M);
  // An offset moves the lookback back; negative offsets look forward.
  assert.equal(ms("rate(x[5m] offset 1h)"), 65n * M);
  assert.equal(ms("rate(x[5m] offset -1h)"), 5n * M);
  assert.equal(ms("x offset 10m"), null, "an offset alone is within the lookback delta");
  // Brackets in strings and comments are not ranges.
  assert.equal(ms(`rate(x{path=~"/a[12h]"}[5m])`), 5n * M);
  assert.equal(ms("rate(x{path='[12h]'}[5m]) # was [2h]\n + y"), 5n * M);
  assert.equal(ms("rate(x{path=`[12h]`}[5m])"), 5n * M);
  assert.equal(ms(`rate(x{a="q\\"[12h]"}[5m])`), 5n * M, "escaped quotes");
});

Deno.test("exprLookback counts Grafana's interval variables at 4 x 15s and resolves the dashboard's own", () => {
  assert.equal(ms("rate(x[$__rate_interval])"), M);
  assert.equal(ms("rate(x[${__rate_interval}])"), M);
  assert.equal(ms("rate(x[$__interval])"), M);
  assert.equal(ms("rate(x[${__interval_ms}ms])"), M);
  assert.equal(ms("rate(x[[[__rate_interval]]])"), M);
  const vars = new Map([["window", 45n * M]]);
  assert.equal(ms("rate(x[$window])", vars), 45n * M);
  assert.equal(ms("rate(x[${window}])", vars), 45n * M);
  assert.equal(ms("rate(x[[[window]]])", vars), 45n * M);
  // Not counted, with why.
  const range = exprLookback("increase(x[$__range])");
  assert.equal(range.ms, null);
  assert.match(range.ignored[0], /whole dashboard range/);
  assert.match(exprLookback("rate(x[$nope])").ignored[0], /variable the dashboard does not define/);
  assert.match(exprLookback("rate(x[5m*2])").ignored[0], /not a duration/);
  // What can be read still counts beside what cannot.
  assert.equal(ms("rate(x[$nope]) + rate(y[20m])"), 20n * M);
});

function rules(...queries: string[]): ContextFile {
  return {
    path: "context/prometheus/rules.json",
    text: JSON.stringify({
      status: "success",
      data: {
        groups: [{ name: "g", rules: queries.map((query, i) => ({ name: `r${i}`, query })) }],
      },
    }),
  };
}

function dashboard(path: string, exprs: string[], templating: unknown[] = []): ContextFile {
  return {
    path,
    text: JSON.stringify({
      title: "d",
      templating: { list: templating },
      panels: [{
        type: "row",
        panels: exprs.map((expr) => ({ targets: [{ expr, refId: "A" }] })),
      }],
    }),
  };
}

Deno.test("scanRangeSelectors finds the longest range in rules and dashboards, with where", () => {
  const scan = scanRangeSelectors([
    rules("sum(rate(a[5m]))", "up == 0"),
    dashboard("context/grafana/dashboards/General/x.json", [
      "rate(b[$__rate_interval])",
      "increase(c[$span])",
      "increase(d[$__range])",
    ], [{ name: "span", type: "interval", query: "1m,10m,40m", current: { value: "1m" } }]),
    // Not scanned: other context, and files that are not JSON.
    { path: "context/prometheus/config.json", text: JSON.stringify({ expr: "rate(z[6h])" }) },
    { path: "context/grafana/dashboards/files/broken.json", text: "{" },
  ]);
  assert.deepEqual(scan.longest, {
    lookbackMs: 40n * M,
    expr: "increase(c[$span])",
    where: "context/grafana/dashboards/General/x.json",
  });
  assert.equal(scan.expressions, 3);
  assert.equal(scan.ignored.length, 1);
  assert.match(scan.ignored[0], /^\[\$__range\]/);
  assert.deepEqual(scanRangeSelectors([]), { longest: null, expressions: 0, ignored: [] });
});

Deno.test("computeLeadIn: default 15m, raised by a rule with [30m], capped at 1h, 0 = none", () => {
  assert.equal(DEFAULT_LEAD_IN_MS, 15n * M);
  assert.equal(MAX_LEAD_IN_MS, H);
  const none = computeLeadIn(undefined);
  assert.equal(none.ms, 15n * M);
  assert.match(none.reason, /^default 15m$/);
  // A shorter range leaves the default.
  const short = computeLeadIn(undefined, scanRangeSelectors([rules("rate(a[5m])")]));
  assert.equal(short.ms, 15n * M);
  assert.match(short.reason, /default 15m; the longest range found is 5m/);
  // A rule with [30m] raises it.
  const raised = computeLeadIn(undefined, scanRangeSelectors([rules("increase(a[30m])")]));
  assert.equal(raised.ms, 30n * M);
  assert.match(raised.reason, /raised .* 30m: increase\(a\[30m\]\) in context\/prometheus\/rules/);
  // Longer ranges are capped at 1h, and the reason names the flag that would ship them all.
  const capped = computeLeadIn(
    undefined,
    scanRangeSelectors([rules("increase(a[1d])", "rate(b[2h])")]),
  );
  assert.equal(capped.ms, H);
  assert.match(capped.reason, /1h cap; the longest range found is 24h.*--lead-in 24h/);
  // An explicit --lead-in is taken as it is: 0 for none, more than the cap when asked for.
  assert.deepEqual(computeLeadIn(0n, scanRangeSelectors([rules("rate(a[30m])")])), {
    ms: 0n,
    reason: "--lead-in 0: none",
  });
  assert.deepEqual(computeLeadIn(6n * H), { ms: 6n * H, reason: "--lead-in 6h" });
});

Deno.test("shippedRange: a manifest without the shipped range ships exactly its window", () => {
  const window = { fromMs: 1000, toMs: 2000, from: "a", to: "b" };
  const base = {
    format: "promcase-archive",
    formatVersion: 1,
    files: [],
    window,
  };
  // An archive of an earlier promcase: no `shipped`.
  assert.deepEqual(shippedRange(parseManifest(JSON.stringify(base))), window);
  const shipped = { fromMs: 500, toMs: 2000, from: "c", to: "b", leadInMs: 500, leadInReason: "x" };
  assert.deepEqual(
    shippedRange(parseManifest(JSON.stringify({ ...base, shipped }))),
    { fromMs: 500, toMs: 2000, from: "c", to: "b" },
  );
});

Deno.test("export --lead-in: invalid durations are a one-line usage error", async () => {
  for (const bad of ["15", "-5m", "1.5h", "soon"]) {
    const r = await runCli([
      "export",
      TEST_DATADIR,
      "--at",
      "now",
      `--lead-in=${bad}`,
      "--dry-run",
    ]);
    assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
    assert.ok(isOneLineError(r), r.stderr);
    assert.match(r.stderr, /--lead-in: invalid duration/);
  }
});
