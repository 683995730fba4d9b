/**
 * Times, durations and time windows as the CLI takes them. Everything is in milliseconds since the
 * Unix epoch, carried as `bigint` like Prometheus' int64 timestamps.
 *
 * @module
 */

import { usageError } from "./errors.ts";

/** A closed time window `[from, to]` in milliseconds, as a range query over it would see it. */
export interface TimeWindow {
  /** First millisecond of the window. */
  from: bigint;
  /** Last millisecond of the window (inclusive). */
  to: bigint;
}

const _UNIT_MS: Record<string, bigint> = {
  ms: 1n,
  s: 1000n,
  m: 60_000n,
  h: 3_600_000n,
  d: 86_400_000n,
  w: 604_800_000n,
  y: 31_536_000_000n,
};

// Prometheus' model.ParseDuration: units in descending order, each at most once.
const _DURATION_RE =
  /^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/;
const _DURATION_UNITS = ["y", "w", "d", "h", "m", "s", "ms"];

/**
 * Parses a duration in Prometheus' syntax (`24h`, `1d12h`, `90m`, `1h30m`, `500ms`) into
 * milliseconds. A plain `0` is accepted too.
 *
 * @example
 * ```ts
 * parseDuration("1d12h"); // 129600000n
 * ```
 */
export function parseDuration(text: string): bigint {
  const trimmed = text.trim();
  if (trimmed === "0") return 0n;
  const match = _DURATION_RE.exec(trimmed);
  if (!trimmed || !match) {
    throw usageError(
      `invalid duration "${text}": use Prometheus' syntax, e.g. 24h, 1d12h, 90m`,
    );
  }
  let total = 0n;
  _DURATION_UNITS.forEach((unit, i) => {
    const value = match[i + 1];
    if (value !== undefined) total += BigInt(value) * _UNIT_MS[unit];
  });
  return total;
}

/**
 * Formats milliseconds as a short duration in hours, minutes, seconds and milliseconds
 * (`24h`, `1h30m`, `36h`): hours are what people name incident windows in.
 */
export function formatDuration(ms: bigint): string {
  if (ms === 0n) return "0s";
  const negative = ms < 0n;
  let rest = negative ? -ms : ms;
  let out = "";
  for (const unit of ["h", "m", "s", "ms"]) {
    const size = _UNIT_MS[unit];
    const n = rest / size;
    if (n > 0n) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return (negative ? "-" : "") + out;
}

/**
 * Parses a point in time: RFC 3339 (`2026-11-25T10:30:00Z`, with an offset or fractional seconds),
 * Unix seconds (`1764066600`, fractions allowed) or milliseconds (13 digits or more), `now`, and
 * `now-2h` / `now+30m` relative to `now`.
 */
export function parseTime(text: string, now: bigint = BigInt(Date.now())): bigint {
  const trimmed = text.trim();
  const relative = /^now(?:\s*([+-])\s*(.+))?$/.exec(trimmed);
  if (relative) {
    if (!relative[1]) return now;
    const offset = parseDuration(relative[2]);
    return relative[1] === "+" ? now + offset : now - offset;
  }
  if (/^-?\d+(\.\d+)?$/.test(trimmed)) {
    const [whole, fraction = ""] = trimmed.split(".");
    // 13 digits are milliseconds from 2001 on; seconds reach 13 digits only after year 33658.
    if (whole.replace("-", "").length >= 13) {
      if (fraction) throw usageError(`invalid time "${text}": milliseconds cannot have a fraction`);
      return BigInt(whole);
    }
    const ms = BigInt(whole) * 1000n;
    const fractionMs = BigInt((fraction + "000").slice(0, 3));
    return whole.startsWith("-") ? ms - fractionMs : ms + fractionMs;
  }
  if (/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i.test(trimmed)) {
    const ms = Date.parse(trimmed.replace(" ", "T"));
    if (!Number.isNaN(ms)) return BigInt(ms);
  }
  throw usageError(
    `invalid time "${text}": use RFC 3339 (2026-11-25T10:30:00Z), Unix seconds or milliseconds, now or now-2h`,
  );
}

/** Formats milliseconds as RFC 3339 in UTC, without milliseconds when they are zero. */
export function formatTime(ms: bigint): string {
  const iso = new Date(Number(ms)).toISOString();
  return iso.endsWith(".000Z") ? iso.slice(0, -5) + "Z" : iso;
}

/** Formats milliseconds compactly for file names: `20261125T1030Z`. */
export function formatCompactTime(ms: bigint): string {
  const iso = new Date(Number(ms)).toISOString();
  const compact = iso.slice(0, 16).replaceAll("-", "").replace(":", "");
  const seconds = iso.slice(17, 19);
  return compact + (seconds === "00" ? "" : seconds) + "Z";
}

/** What the user asked for on the command line, before it becomes a window. */
export interface WindowSpec {
  /** `--at`: the incident time. */
  at?: string;
  /** `--before`: how much before `--at` (default 24h). */
  before?: string;
  /** `--after`: how much after `--at` (default 0). */
  after?: string;
  /** `--from`, used with `--to` instead of `--at`. */
  from?: string;
  /** `--to`, used with `--from` instead of `--at`. */
  to?: string;
}

/** A window together with the incident time it was built around. */
export interface IncidentWindow extends TimeWindow {
  /** The incident time: `--at`, or the end of `--from/--to`. */
  at: bigint;
}

/**
 * Builds the export window from `--at/--before/--after` or `--from/--to`, rejecting mixtures,
 * empty windows and missing times with a usage error.
 */
export function resolveWindow(spec: WindowSpec, now: bigint = BigInt(Date.now())): IncidentWindow {
  const hasRange = spec.from !== undefined || spec.to !== undefined;
  if (spec.at !== undefined && hasRange) {
    throw usageError("use either --at (with --before/--after) or --from and --to, not both");
  }
  if (hasRange) {
    if (spec.before !== undefined || spec.after !== undefined) {
      throw usageError("--before and --after go with --at, not with --from/--to");
    }
    if (spec.from === undefined || spec.to === undefined) {
      throw usageError("--from and --to must be given together");
    }
    const from = parseTime(spec.from, now);
    const to = parseTime(spec.to, now);
    if (to < from) throw usageError("--to is before --from");
    return { from, to, at: to };
  }
  if (spec.at === undefined) {
    throw usageError("give the incident time with --at TIME (or a window with --from and --to)");
  }
  const at = parseTime(spec.at, now);
  const before = parseDuration(spec.before ?? "24h");
  const after = parseDuration(spec.after ?? "0");
  return { from: at - before, to: at + after, at };
}

/**
 * Whether a block covering the half-open `[minTime, maxTime)` (Prometheus block semantics) holds
 * any millisecond of the closed window.
 */
export function overlapsWindow(minTime: bigint, maxTime: bigint, window: TimeWindow): boolean {
  return minTime <= window.to && window.from < maxTime;
}
