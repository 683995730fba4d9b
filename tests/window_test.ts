import assert from "node:assert/strict";
import { PromcaseError } from "../mod/errors.ts";
import {
  formatCompactTime,
  formatDuration,
  formatTime,
  overlapsWindow,
  parseDuration,
  parseTime,
  resolveWindow,
} from "../mod/window.ts";

const NOW = 1_764_066_600_000n; // 2025-11-25T10:30:00Z

Deno.test("parseDuration takes Prometheus' syntax", () => {
  assert.equal(parseDuration("24h"), 86_400_000n);
  assert.equal(parseDuration("1d12h"), 129_600_000n);
  assert.equal(parseDuration("90m"), 5_400_000n);
  assert.equal(parseDuration("1h30m15s500ms"), 5_415_500n);
  assert.equal(parseDuration("2w"), 1_209_600_000n);
  assert.equal(parseDuration("1y"), 31_536_000_000n);
  assert.equal(parseDuration("0"), 0n);
  for (const bad of ["", "h", "12", "1.5h", "30m1h", "-1h", "1 h", "1x"]) {
    assert.throws(
      () => parseDuration(bad),
      (e) => e instanceof PromcaseError && e.exitCode === 2,
      bad,
    );
  }
});

Deno.test("parseTime takes RFC 3339, Unix seconds and milliseconds, now and now-DUR", () => {
  assert.equal(parseTime("2025-11-25T10:30:00Z"), NOW);
  assert.equal(parseTime("2025-11-25T11:30:00+01:00"), NOW);
  assert.equal(parseTime("2025-11-25T10:30:00.250Z"), NOW + 250n);
  assert.equal(parseTime("1764066600"), NOW);
  assert.equal(parseTime("1764066600.5"), NOW + 500n);
  assert.equal(parseTime("1764066600000"), NOW);
  assert.equal(parseTime("now", NOW), NOW);
  assert.equal(parseTime("now-2h", NOW), NOW - 7_200_000n);
  assert.equal(parseTime("now+30m", NOW), NOW + 1_800_000n);
  for (const bad of ["yesterday", "2025-11-25", "2025-13-45T10:00:00Z", "now-2x", "17e9", ""]) {
    assert.throws(
      () => parseTime(bad, NOW),
      (e) => e instanceof PromcaseError && e.exitCode === 2,
      bad,
    );
  }
});

Deno.test("formatting times and durations", () => {
  assert.equal(formatTime(NOW), "2025-11-25T10:30:00Z");
  assert.equal(formatTime(NOW + 1n), "2025-11-25T10:30:00.001Z");
  assert.equal(formatCompactTime(NOW), "20251125T1030Z");
  assert.equal(formatCompactTime(NOW + 5000n), "20251125T103005Z");
  assert.equal(formatDuration(86_400_000n), "24h");
  assert.equal(formatDuration(5_400_000n), "1h30m");
  assert.equal(formatDuration(1n), "1ms");
});

Deno.test("resolveWindow builds windows and rejects mixtures", () => {
  assert.deepEqual(resolveWindow({ at: "now" }, NOW), {
    from: NOW - 86_400_000n,
    to: NOW,
    at: NOW,
  });
  assert.deepEqual(resolveWindow({ at: "now", before: "1h", after: "30m" }, NOW), {
    from: NOW - 3_600_000n,
    to: NOW + 1_800_000n,
    at: NOW,
  });
  assert.deepEqual(resolveWindow({ from: "now-2h", to: "now" }, NOW), {
    from: NOW - 7_200_000n,
    to: NOW,
    at: NOW,
  });
  const usage = (e: unknown) => e instanceof PromcaseError && e.exitCode === 2;
  assert.throws(() => resolveWindow({}, NOW), usage);
  assert.throws(() => resolveWindow({ at: "now", from: "now-1h", to: "now" }, NOW), usage);
  assert.throws(() => resolveWindow({ from: "now-1h" }, NOW), usage);
  assert.throws(() => resolveWindow({ from: "now", to: "now-1h" }, NOW), usage);
  assert.throws(() => resolveWindow({ from: "now-1h", to: "now", before: "1h" }, NOW), usage);
});

Deno.test("overlapsWindow uses Prometheus' half-open block ranges", () => {
  const window = { from: 100n, to: 200n };
  assert.equal(overlapsWindow(0n, 100n, window), false); // ends just before the window
  assert.equal(overlapsWindow(0n, 101n, window), true);
  assert.equal(overlapsWindow(200n, 300n, window), true); // starts at the window's last ms
  assert.equal(overlapsWindow(201n, 300n, window), false);
  assert.equal(overlapsWindow(120n, 130n, window), true);
});
