/**
 * The disclosure report: what leaves the host, shown before it leaves (`export --dry-run`,
 * `inspect --disclosure`) and shipped with it (`disclosure.json` in the archive), so the customer's
 * security team and the support side see the same thing. It lists the metric names, the label
 * names with their number of distinct values, and the hits of the detectors
 * (`disclosure_detectors.ts`) in label values and in the captured context files.
 *
 * Memory stays bounded whatever the data size: series are read by the series counter of
 * `inspect.ts` (one block index at a time, WAL series records one at a time, archives streamed),
 * distinct values are remembered as 64-bit hashes of (label name, value) up to a limit (beyond it,
 * each value not remembered counts again: upper bounds, `exact: false`), and each detector keeps a
 * count and a few examples per label name and per context file, never the values themselves.
 *
 * @module
 */

import type { AgeKeys } from "./archive/age.ts";
import type { ContextFile } from "./context.ts";
import { detect, type Detector, DETECTORS } from "./disclosure_detectors.ts";
import type { ExportPlan } from "./export.ts";
import {
  countBlockSeries,
  countPlannedSeries,
  countSeries,
  hashLabels,
  HashSet64,
  type SeriesReport,
} from "./inspect.ts";
import { compareUtf8 } from "./tsdb/encoding.ts";
import { IndexReader, type Label } from "./tsdb/index.ts";
import type { TimeWindow } from "./window.ts";

/** Marks a disclosure report. */
export const DISCLOSURE_FORMAT = "promcase-disclosure";
/** The report format this promcase writes. */
export const DISCLOSURE_FORMAT_VERSION = 1;
/** Distinct (label name, value) pairs remembered by default (18 bytes each at most). */
export const DISTINCT_VALUES_LIMIT = 2_000_000;
/** Examples kept per detector, per label name or context file. */
export const DISCLOSURE_EXAMPLES = 3;
/** Examples longer than this are cut (with "…"). */
const _EXAMPLE_CHARS = 120;

/** What one detector found in one label's values or one context file. */
export interface DetectorFindings {
  /** The detector. */
  detector: Detector;
  /** Label values (distinct) with a hit, or distinct matches in a context file. */
  count: number;
  /** The first few matches (at most {@link DISCLOSURE_EXAMPLES}). */
  examples: string[];
}

/** One label name. */
export interface LabelDisclosure {
  /** The label name. */
  name: string;
  /** Distinct values (an upper bound unless `exact`). */
  values: number;
  /** Whether `values` (and the hit counts) are exact. */
  exact: boolean;
  /** The detectors with at least one hit, in {@link DETECTORS} order. */
  hits: DetectorFindings[];
}

/** One context file. */
export interface ContextDisclosure {
  /** Its path in the archive (`context/...`). */
  path: string;
  /** Its size in bytes (UTF-8). */
  bytes: number;
  /** The detectors with at least one hit. */
  hits: DetectorFindings[];
}

/** The report: the same whether computed before the export, stored in it, or read from it. */
export interface DisclosureReport {
  /** Always {@link DISCLOSURE_FORMAT}. */
  format: typeof DISCLOSURE_FORMAT;
  /** {@link DISCLOSURE_FORMAT_VERSION}. */
  formatVersion: number;
  /** Distinct series (an upper bound unless `seriesExact`). */
  series: number;
  /** Whether `series` is exact (see `inspect.ts`'s `SERIES_DEDUPE_LIMIT`). */
  seriesExact: boolean;
  /** Whether every distinct-value count is exact. */
  valuesExact: boolean;
  /** The limit of remembered distinct values that applied. */
  distinctValuesLimit: number;
  /** Every metric name with its series, sorted by name. */
  metrics: { name: string; series: number }[];
  /** Every label name, sorted by name. */
  labels: LabelDisclosure[];
  /** Every context file, sorted by path. */
  context: ContextDisclosure[];
  /** Per detector: hits summed over label names and context files (zeros included). */
  totals: Record<Detector, number>;
}

/** A report and what its counting could not account for (not part of the report). */
export interface DisclosureResult {
  /** The report. */
  report: DisclosureReport;
  /** Warnings of the series counting (damaged WAL, archive problems). */
  warnings: string[];
}

/** Options shared by the disclose functions. */
export interface DisclosureOptions {
  /** Distinct (label name, value) pairs remembered; tests turn it down. */
  distinctValuesLimit?: number;
}

/**
 * The report of a data dir (all its blocks and head) or of a promcase archive (its blocks, WAL
 * and context files, streamed and checked on the way).
 */
export async function discloseSource(
  path: string,
  options: DisclosureOptions & {
    decrypt?: AgeKeys;
    onProgress?: (done: number, total: number) => void;
  } = {},
): Promise<DisclosureResult> {
  const collector = new DisclosureCollector(options.distinctValuesLimit);
  const counted = await countSeries(path, {
    decrypt: options.decrypt,
    onProgress: options.onProgress,
    onSeries: (labels) => collector.addSeries(labels),
    onContextFile: (file, text) => collector.addContext(file, text),
  });
  return { report: collector.report(counted), warnings: counted.warnings };
}

/**
 * The report of what an export plan ships: its blocks (only series with a chunk in `chunkWindow`
 * and kept by `keep`, for the rewrite; whole blocks for raw) and its head, and the context. For a
 * rewrite, every head series is counted, also those without samples in the window: the report
 * errs on the side of showing more.
 */
export async function disclosePlan(
  plan: ExportPlan,
  options: DisclosureOptions & {
    keep?: (labels: readonly Label[]) => boolean;
    chunkWindow?: TimeWindow;
    context?: readonly ContextFile[];
  } = {},
): Promise<DisclosureResult> {
  const collector = new DisclosureCollector(options.distinctValuesLimit);
  const counted = await countPlannedSeries(plan, {
    keep: options.keep,
    chunkWindow: options.chunkWindow,
    onSeries: (labels) => collector.addSeries(labels),
  });
  for (const file of options.context ?? []) collector.addContext(file.path, file.text);
  return { report: collector.report(counted), warnings: counted.warnings };
}

/** A report whose series are counted, its context files to come (as they are archived). */
export interface PendingDisclosure {
  /** Adds a context file as the archive stores it. */
  addContext(path: string, text: string): void;
  /** The report. */
  finish(): DisclosureResult;
}

/**
 * Starts the report of an archive from the blocks it ships (their index files: for a rewrite the
 * block just written, which holds exactly the shipped series), or from an export plan's blocks
 * and head as they are (raw); the context files are added as they are written.
 */
export async function discloseShipped(
  shipped: { blocks: { ulid: string; file: string }[] } | { plan: ExportPlan },
  options: DisclosureOptions = {},
): Promise<PendingDisclosure> {
  const collector = new DisclosureCollector(options.distinctValuesLimit);
  const onSeries = (labels: readonly Label[]) => collector.addSeries(labels);
  const counted = "plan" in shipped
    ? await countPlannedSeries(shipped.plan, { onSeries })
    : shipped.blocks.length === 1
    ? await _discloseIndex(shipped.blocks[0].file, collector)
    : await countBlockSeries(shipped.blocks, { onSeries });
  // The archive is written next, with the compressor's memory: the values' hashes go first.
  collector.endSeries();
  return {
    addContext: (path, text) => collector.addContext(path, text),
    finish: () => ({ report: collector.report(counted), warnings: counted.warnings }),
  };
}

/**
 * Counts one block's values from its postings offset table, where each (label name, value)
 * appears once, and its metrics' series from their postings lists' lengths: exact, with no hashes
 * held (a rewrite's block of a million series would otherwise need tens of MiB of them), the table
 * streamed once.
 */
async function _discloseIndex(
  file: string,
  collector: DisclosureCollector,
): Promise<Pick<SeriesReport, "metrics" | "exact" | "warnings">> {
  const reader = await IndexReader.open(file, { windowSize: 256 * 1024 });
  try {
    const metrics: SeriesReport["metrics"] = [];
    for await (const { name, value, offset } of reader.postingsOffsets()) {
      if (name === "") continue; // the all-postings list
      collector.addValue(name, value);
      if (name !== "__name__") continue;
      const series = await reader.postingsLength(offset);
      metrics.push({ metric: value, series, blockSeries: series, headSeries: 0, chunks: 0 });
    }
    return { metrics, exact: true, warnings: [] };
  } finally {
    reader.close();
  }
}

/** The report as stored in the archive: two-space indented JSON with a trailing newline. */
export function formatDisclosure(report: DisclosureReport): string {
  return JSON.stringify(report, null, 2) + "\n";
}

interface _Findings {
  count: number;
  examples: string[];
}

interface _Label {
  values: number;
  exact: boolean;
  hits: Map<Detector, _Findings>;
}

/** Collects labels and context texts into a {@link DisclosureReport}. */
export class DisclosureCollector {
  #seen: HashSet64 | null;
  #limit: number;
  #labels = new Map<string, _Label>();
  #context: ContextDisclosure[] = [];

  /** `limit`: distinct (label name, value) pairs remembered. */
  constructor(limit: number = DISTINCT_VALUES_LIMIT) {
    this.#limit = limit;
    this.#seen = new HashSet64(limit);
  }

  /**
   * Counts a series' label values (each distinct value once per label name while the set has
   * room) and runs the detectors on each value counted.
   */
  addSeries(labels: readonly Label[]): void {
    if (!this.#seen) throw new Error("series added after endSeries");
    for (const label of labels) {
      const seen = this.#seen.mark(hashLabels([label]), 1);
      if (seen === "seen" || seen === "newFlag") continue;
      this.#addValue(label.name, label.value, seen !== "full");
    }
  }

  /** Counts a value known to be distinct for its label name (e.g. from an index's table). */
  addValue(name: string, value: string): void {
    this.#addValue(name, value, true);
  }

  #addValue(name: string, value: string, exact: boolean): void {
    let entry = this.#labels.get(name);
    if (!entry) {
      entry = { values: 0, exact: true, hits: new Map() };
      this.#labels.set(name, entry);
    }
    if (!exact) entry.exact = false;
    entry.values++;
    const found = new Set<Detector>();
    for (const hit of detect(value)) {
      // One value counts once per detector, with its first match as the example.
      if (found.has(hit.detector)) continue;
      found.add(hit.detector);
      _addFinding(entry.hits, hit.detector, hit.match);
    }
  }

  /** Frees what counting the series took (up to 18 bytes a distinct value); no series after. */
  endSeries(): void {
    this.#seen = null;
  }

  /** Runs the detectors on a context file: distinct matches per detector. */
  addContext(path: string, text: string): void {
    const hits = new Map<Detector, _Findings>();
    // The matches of one file: bounded by the text, which is in memory already.
    const distinct = new Set<string>();
    for (const hit of detect(text)) {
      const key = `${hit.detector}\0${hit.match}`;
      if (distinct.has(key)) continue;
      distinct.add(key);
      _addFinding(hits, hit.detector, hit.match);
    }
    this.#context.push({
      path,
      bytes: new TextEncoder().encode(text).length,
      hits: _findings(hits),
    });
  }

  /** The report, with the metric names and series counts of the series counting. */
  report(counted: Pick<SeriesReport, "metrics" | "exact">): DisclosureReport {
    const labels = [...this.#labels.entries()]
      .sort(([a], [b]) => compareUtf8(a, b))
      .map(([name, l]) => ({ name, values: l.values, exact: l.exact, hits: _findings(l.hits) }));
    const context = [...this.#context].sort((a, b) => compareUtf8(a.path, b.path));
    const totals = Object.fromEntries(DETECTORS.map((d) => [d, 0])) as Record<Detector, number>;
    for (const item of [...labels, ...context]) {
      for (const hit of item.hits) totals[hit.detector] += hit.count;
    }
    return {
      format: DISCLOSURE_FORMAT,
      formatVersion: DISCLOSURE_FORMAT_VERSION,
      series: counted.metrics.reduce((sum, m) => sum + m.series, 0),
      seriesExact: counted.exact,
      valuesExact: labels.every((l) => l.exact),
      distinctValuesLimit: this.#limit,
      metrics: counted.metrics
        .map((m) => ({ name: m.metric, series: m.series }))
        .sort((a, b) => compareUtf8(a.name, b.name)),
      labels,
      context,
      totals,
    };
  }
}

function _addFinding(hits: Map<Detector, _Findings>, detector: Detector, match: string): void {
  let findings = hits.get(detector);
  if (!findings) {
    findings = { count: 0, examples: [] };
    hits.set(detector, findings);
  }
  findings.count++;
  if (findings.examples.length < DISCLOSURE_EXAMPLES) {
    const example = match.length > _EXAMPLE_CHARS ? `${match.slice(0, _EXAMPLE_CHARS)}…` : match;
    if (!findings.examples.includes(example)) findings.examples.push(example);
  }
}

function _findings(hits: Map<Detector, _Findings>): DetectorFindings[] {
  return DETECTORS.filter((d) => hits.has(d)).map((d) => ({ detector: d, ...hits.get(d)! }));
}

/** The report as text, for people: what leaves, and what the detectors found in it. */
export function formatDisclosureText(report: DisclosureReport, options: { top?: number } = {}) {
  const top = options.top ?? 20;
  const approx = (exact: boolean) => (exact ? "" : " (upper bound)");
  const lines = [
    `Disclosure: ${report.metrics.length} metric names, ${report.series} series` +
    approx(report.seriesExact) + `, ${report.labels.length} label names, ` +
    `${report.context.length} context files`,
  ];
  const hitText = (hits: DetectorFindings[]) =>
    hits.map((h) => `${h.detector} ${h.count} (e.g. ${h.examples.join(", ")})`).join("; ");
  lines.push("", "Label names (distinct values; detector hits):");
  const width = Math.max(0, ...report.labels.map((l) => l.name.length));
  for (const label of report.labels) {
    const count = `${label.values}${label.exact ? "" : "+"}`;
    lines.push(
      `  ${label.name.padEnd(width)}  ${count.padStart(8)}` +
        (label.hits.length > 0 ? `  ${hitText(label.hits)}` : ""),
    );
  }
  if (!report.valuesExact) {
    lines.push(
      `  (+: more than ${report.distinctValuesLimit} distinct values in all; counts are upper ` +
        "bounds)",
    );
  }
  lines.push("", "Context files:");
  if (report.context.length === 0) lines.push("  none");
  for (const file of report.context) {
    lines.push(
      `  ${file.path} (${file.bytes} bytes)` +
        (file.hits.length > 0 ? `: ${hitText(file.hits)}` : ": no hits"),
    );
  }
  const totals = DETECTORS.filter((d) => report.totals[d] > 0)
    .map((d) => `${d} ${report.totals[d]}`);
  lines.push("", `Detector hits: ${totals.length > 0 ? totals.join(", ") : "none"}`);
  const shown = top === 0 ? report.metrics : report.metrics.slice(0, top);
  lines.push(
    "",
    `Metric names${shown.length < report.metrics.length ? ` (first ${shown.length})` : ""}: ` +
      (shown.map((m) => m.name || "(no metric name)").join(", ") || "none"),
  );
  if (shown.length < report.metrics.length) {
    lines.push(`  … and ${report.metrics.length - shown.length} more (--json lists all)`);
  }
  return lines.join("\n");
}
