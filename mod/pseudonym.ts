/**
 * Pseudonymized exports: the values of chosen labels (and whatever matches `--pseudonymize-values`
 * patterns) become stable pseudonyms, keyed HMAC-SHA-256 of the value, e.g. `anon-3f2a9c1b04d2`.
 *
 * - A pseudonym depends on the value only (not on the label it came from), so a host named in
 *   `instance` and in `node` maps to the same pseudonym, and the same mapping serves context text,
 *   where the label is unknown. A `:port` suffix is kept (`db1:9100` becomes `anon-…:9100`), so
 *   `by (instance)` and joins keep working.
 * - 12 hex digits (48 bits): a collision needs about 16 million distinct values to become likely;
 *   one is refused anyway (two originals never share a pseudonym silently), when the export's
 *   values are merged into the mapping table.
 * - Context text (Prometheus API JSON, Grafana dashboards) is mapped JSON-aware: values under a
 *   chosen label name are registered, then every string has each known original replaced wherever
 *   it stands as a whole token (not inside a longer identifier such as a metric name), longest
 *   first, then the patterns' matches. Labels not chosen get the same once every series was read
 *   ({@link Pseudonymizer.mapOtherLabels}, a second pass in `pseudonym_series.ts`).
 * - The key stays with the customer ({@link loadPseudonymKey}). So does the mapping table: the
 *   export merges its `PSEUDONYM<TAB>"ORIGINAL"` lines into `KEY.map` beside the key file (mode
 *   0600; `pseudonym_table.ts`), never into the archive. `promcase reveal` reads that table and
 *   checks each entry against the key (an entry the key does not produce is refused), so a
 *   pseudonym is revealed only where it was made.
 *
 * Memory does not grow with the number of values beyond 16 bytes a value: see {@link Pseudonymizer}.
 *
 * @module
 */

import { createHmac, randomBytes } from "node:crypto";
import { PromcaseError, usageError } from "./errors.ts";
import { type AgeKeys, decryptIfEncrypted } from "./archive/age.ts";
import { decompress } from "./archive/compression.ts";
import { locateArchive, PartReader } from "./archive/parts.ts";
import type { Label } from "./tsdb/index.ts";
import { KnownValues, type KnownValuesOptions } from "./pseudonym_known.ts";
import {
  type CommittedTable,
  PseudonymJournal,
  type PseudonymJournalOptions,
} from "./pseudonym_table.ts";

/** What every pseudonym starts with. */
export const PSEUDONYM_PREFIX = "anon-";
const _HEX_DIGITS = 12;
// One pattern for every place pseudonyms are looked for.
const _PATTERN = `${PSEUDONYM_PREFIX}[0-9a-f]{${_HEX_DIGITS}}`;
/** A pseudonym, as found in text (global: use with matchAll/replace). */
export const PSEUDONYM_RE = new RegExp(_PATTERN, "g");
const _WHOLE_RE = new RegExp(`^${_PATTERN}$`);
const _WITH_PORT_RE = new RegExp(`^${_PATTERN}(:\\d{1,5})?$`);
// A pseudonym in text, with the :port written after it when there is one.
const _IN_TEXT_RE = new RegExp(`${_PATTERN}(?::\\d{1,5}(?!\\d))?`, "g");

/** What to pseudonymize. */
export interface PseudonymSpec {
  /** Labels whose every value is mapped. */
  labels: string[];
  /** Regular expressions (JavaScript syntax) whose matches are mapped in any label and in text. */
  patterns: string[];
  /** Labels removed from every series. */
  dropLabels: string[];
}

/** Reads the key file, or creates it (32 random bytes as hex, mode 0600) when missing. */
export async function loadPseudonymKey(
  path: string,
): Promise<{ key: Uint8Array; created: boolean }> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new PromcaseError(`cannot read the pseudonym key ${path}: ${(err as Error).message}`);
    }
    const hex = randomBytes(32).toString("hex");
    try {
      await Deno.writeTextFile(path, `${hex}\n`, { createNew: true, mode: 0o600 });
    } catch (e) {
      throw new PromcaseError(`cannot create the pseudonym key ${path}: ${(e as Error).message}`);
    }
    return { key: _fromHex(hex), created: true };
  }
  const hex = text.trim();
  if (!/^[0-9a-f]{32,}$/i.test(hex) || hex.length % 2 !== 0) {
    throw new PromcaseError(
      `${path} is not a pseudonym key (expected 64 hex digits, as promcase export writes)`,
    );
  }
  return { key: _fromHex(hex), created: false };
}

function _fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The pseudonym of a value (without port handling): `anon-` and 12 hex digits of its HMAC. */
export function pseudonymOf(key: Uint8Array, original: string): string {
  const mac = createHmac("sha256", key).update(original, "utf8").digest("hex");
  return PSEUDONYM_PREFIX + mac.slice(0, _HEX_DIGITS);
}

/** Splits `host:port` (a bracketed IPv6 host too); no port when there is none or it is ambiguous. */
export function splitPort(value: string): { host: string; port: string } {
  const m = /^(.+):(\d{1,5})$/.exec(value);
  if (!m) return { host: value, port: "" };
  const host = m[1];
  // A bare IPv6 address ("::1", "fe80::1") has colons of its own: no port to split off.
  if (host.includes(":") && !(host.startsWith("[") && host.endsWith("]"))) {
    return { host: value, port: "" };
  }
  return { host, port: `:${m[2]}` };
}

/** Options of {@link Pseudonymizer}. */
export interface PseudonymizerOptions {
  /** The mapping table to merge the export's values into ({@link Pseudonymizer.commitTable}). */
  tablePath?: string | null;
  /** Values whose pseudonyms are cached (default 16,384; the cache is emptied when full). */
  cacheEntries?: number;
  /** Options of the journal of mapped values. */
  journal?: PseudonymJournalOptions;
  /** Options of the set of mapped values. */
  known?: KnownValuesOptions;
}

/**
 * Maps label values and text to pseudonyms. Memory: a bounded cache of pseudonyms, the set of
 * values mapped as 64-bit hashes (`pseudonym_known.ts`, 16 bytes a value at most) and the journal
 * of values for the mapping table, spilled in sorted runs (`pseudonym_table.ts`).
 */
export class Pseudonymizer {
  /** What is pseudonymized. */
  readonly spec: PseudonymSpec;
  #key: Uint8Array;
  #labels: Set<string>;
  #drop: Set<string>;
  #patterns: RegExp[];
  #cache = new Map<string, string>();
  #cacheEntries: number;
  #known: KnownValues;
  #journal: PseudonymJournal | null;
  #tablePath: string | null;
  #committed: CommittedTable | null = null;

  /** `key`: the customer's key; `spec`: what to map (patterns are checked here). */
  constructor(key: Uint8Array, spec: PseudonymSpec, options: PseudonymizerOptions = {}) {
    this.spec = spec;
    this.#key = key;
    this.#cacheEntries = options.cacheEntries ?? 16_384;
    this.#known = new KnownValues(options.known);
    this.#tablePath = options.tablePath ?? null;
    this.#journal = this.#tablePath === null ? null : new PseudonymJournal(options.journal);
    for (const name of [...spec.labels, ...spec.dropLabels]) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        throw usageError(`not a label name: ${JSON.stringify(name)}`);
      }
      if (name === "__name__") {
        throw usageError("metric names (__name__) cannot be pseudonymized or dropped");
      }
    }
    this.#labels = new Set(spec.labels);
    this.#drop = new Set(spec.dropLabels);
    for (const name of this.#drop) {
      if (this.#labels.has(name)) {
        throw usageError(`label ${name} is both pseudonymized and dropped`);
      }
    }
    this.#patterns = spec.patterns.map((p) => {
      try {
        return new RegExp(p, "gu");
      } catch (err) {
        throw usageError(`--pseudonymize-values ${JSON.stringify(p)}: ${(err as Error).message}`);
      }
    });
  }

  /**
   * The pseudonym of a value without port handling. A value seen for the first time is journaled
   * for the mapping table, and found in context text from then on.
   */
  pseudonym(original: string): string {
    const cached = this.#cache.get(original);
    if (cached !== undefined) return cached;
    const p = pseudonymOf(this.#key, original);
    if (this.#known.add(original)) this.#journal?.add(p, original);
    if (this.#cache.size >= this.#cacheEntries) this.#cache.clear();
    this.#cache.set(original, p);
    return p;
  }

  /** Where the journal spills: a dir the export removes when it ends (its staging dir). */
  useSpillDir(dir: string): void {
    this.#journal?.useDir(dir);
  }

  /**
   * Merges the values mapped into the mapping table (see `pseudonym_table.ts`); refuses two values
   * with one pseudonym. Null without a table (`--drop-label` alone).
   */
  async commitTable(): Promise<CommittedTable | null> {
    if (this.#journal === null || this.#tablePath === null) return null;
    this.#committed = await this.#journal.commit(this.#tablePath);
    return this.#committed;
  }

  /** What {@link commitTable} wrote, once it ran. */
  get committedTable(): CommittedTable | null {
    return this.#committed;
  }

  /** Distinct values mapped so far. */
  get values(): number {
    return this.#known.size;
  }

  /** A whole value of a chosen label: its host part's pseudonym, the `:port` kept. */
  mapValue(value: string): string {
    if (value.startsWith(PSEUDONYM_PREFIX) && _isPseudonym(splitPort(value).host)) return value;
    const { host, port } = splitPort(value);
    return this.pseudonym(host) + port;
  }

  /** A value of any other label: the patterns' matches mapped. */
  mapPatterns(value: string): string {
    let out = value;
    for (const re of this.#patterns) {
      const taken = [...out.matchAll(PSEUDONYM_RE)].map((m) => [m.index!, m.index! + m[0].length]);
      out = out.replace(re, (match: string, ...rest: unknown[]) => {
        const at = rest.find((r) => typeof r === "number") as number;
        if (match === "" || taken.some(([a, b]) => at < b && at + match.length > a)) return match;
        return this.pseudonym(match);
      });
    }
    return out;
  }

  /** Whether series labels change at all. */
  get changesSeries(): boolean {
    return this.#labels.size > 0 || this.#drop.size > 0 || this.#patterns.length > 0;
  }

  /** A series' labels mapped: dropped labels removed, values mapped (names, so order, kept). */
  mapLabels(labels: readonly Label[]): Label[] {
    const out: Label[] = [];
    for (const l of labels) {
      if (this.#drop.has(l.name)) continue;
      if (this.#labels.has(l.name)) out.push({ name: l.name, value: this.mapValue(l.value) });
      else if (this.#patterns.length > 0) {
        out.push({ name: l.name, value: this.mapPatterns(l.value) });
      } else out.push(l);
    }
    return out;
  }

  /**
   * A series' labels once every series was mapped: known values of chosen labels (and their host
   * parts) that other labels carry, as whole tokens (`nodename="db1"`, `url="http://db1:9100/"`),
   * mapped as in text. Null when nothing changes. Metric names are left alone.
   */
  mapOtherLabels(labels: readonly Label[]): Label[] | null {
    if (this.#known.size === 0) return null;
    let out: Label[] | null = null;
    for (const [i, l] of labels.entries()) {
      if (l.name === "__name__" || this.#labels.has(l.name)) continue;
      const value = this.#mapKnown(l.value);
      if (value === l.value) continue;
      out ??= labels.slice();
      out[i] = { name: l.name, value };
    }
    return out;
  }

  /**
   * Registers the values of chosen labels in a JSON document (objects keyed by label name, as the
   * Prometheus API and dashboards hold them), so that text mapping knows them even when no series
   * in the window carried them (a target that was down, a series left out by --match).
   */
  registerJson(value: unknown): void {
    if (Array.isArray(value)) {
      for (const v of value) this.registerJson(v);
    } else if (value !== null && typeof value === "object") {
      this.#registerDashboardVariable(value as Record<string, unknown>);
      for (const [k, v] of Object.entries(value)) {
        if (typeof v === "string" && this.#labels.has(k) && v !== "") this.mapValue(v);
        else this.registerJson(v);
      }
    }
  }

  /**
   * A Grafana template variable named after a chosen label (`templating.list[]`): its current and
   * listed values, and a custom variable's comma-separated values, are that label's values even
   * when no series in the window carries them.
   */
  #registerDashboardVariable(v: Record<string, unknown>): void {
    if (typeof v.name !== "string" || !this.#labels.has(v.name) || typeof v.type !== "string") {
      return;
    }
    const values: unknown[] = [];
    for (const option of [v.current, ...(Array.isArray(v.options) ? v.options : [])]) {
      if (option !== null && typeof option === "object") {
        const { text, value } = option as Record<string, unknown>;
        values.push(...[text, value].flat());
      }
    }
    if (v.type === "custom" && typeof v.query === "string") {
      // Grafana's custom syntax: comma-separated values, each `value` or `text : value`.
      values.push(...v.query.split(/(?<!\\),/).flatMap((item) => item.split(" : ")));
    }
    for (const value of values) {
      const text = typeof value === "string" ? value.trim() : "";
      // Grafana's own entries for "All" are no label values.
      if (text !== "" && text !== "$__all" && text !== "All") this.mapValue(text);
    }
  }

  /** Text with every known original (as a whole token) and every pattern match replaced. */
  mapText(text: string): string {
    const out = this.#mapKnown(text);
    return this.#patterns.length > 0 ? this.mapPatterns(out) : out;
  }

  /** Text with every known original replaced where it stands as a whole token. */
  #mapKnown(text: string): string {
    const parts: string[] = [];
    let last = 0;
    this.#known.findTokens(text, (start, end) => {
      parts.push(text.slice(last, start), this.pseudonym(text.slice(start, end)));
      last = end;
    });
    return parts.length === 0 ? text : parts.join("") + text.slice(last);
  }

  /** A JSON value with {@link mapText} applied to every string (object keys are kept). */
  mapJson(value: unknown): unknown {
    if (typeof value === "string") return this.mapText(value);
    if (Array.isArray(value)) return value.map((v) => this.mapJson(v));
    if (value !== null && typeof value === "object") {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.mapJson(v)]));
    }
    return value;
  }

  /**
   * A context file's text mapped: JSON-aware (strings only, keys kept, formatting as
   * `JSON.stringify(_, null, 2)`), plain text when it is not JSON.
   */
  mapContextText(text: string): string {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      return this.mapText(text);
    }
    return JSON.stringify(this.mapJson(doc), null, 2) + (text.endsWith("\n") ? "\n" : "");
  }

  /** The manifest's account: labels, patterns, dropped labels, never the key or an original. */
  manifestInfo(): Record<string, unknown> {
    return {
      labels: this.spec.labels,
      patterns: this.spec.patterns,
      droppedLabels: this.spec.dropLabels,
      pseudonym: `${PSEUDONYM_PREFIX} + 12 hex digits of HMAC-SHA-256 with the customer's key; ` +
        `a :port suffix kept`,
      values: this.#known.size,
    };
  }
}

function _isPseudonym(s: string): boolean {
  return _WHOLE_RE.test(s);
}

/** Whether `text` is one pseudonym, with or without a `:port` (as `reveal` takes them). */
export function isPseudonymArg(text: string): boolean {
  return _WITH_PORT_RE.test(text);
}

/** The pseudonyms in `text`, each with the `:port` written after it, once each, sorted. */
export function findPseudonyms(text: string): string[] {
  return [...new Set([...text.matchAll(_IN_TEXT_RE)].map((m) => m[0]))].sort();
}

/**
 * Every pseudonym in an archive's decompressed (and decrypted) bytes: index symbols, context,
 * manifest. Streamed: memory is one piece and the pseudonyms found.
 */
export async function archivePseudonyms(path: string, keys?: AgeKeys): Promise<string[]> {
  const location = await locateArchive(path);
  const reader = new PartReader(location, () => {});
  const found = new Set<string>();
  const decoder = new TextDecoder("latin1");
  // A pseudonym cut between two pieces is found in the kept tail.
  let tail = "";
  for await (const piece of decompress(decryptIfEncrypted(reader.pieces(), keys))) {
    const text = tail + decoder.decode(piece);
    for (const m of text.matchAll(PSEUDONYM_RE)) found.add(m[0]);
    tail = text.slice(-20);
  }
  return [...found].sort();
}

/**
 * The originals of pseudonyms (each with its `:port` kept), from the mapping table, every entry
 * checked against the key. Unknown pseudonyms come back as null.
 */
export function revealPseudonyms(
  key: Uint8Array,
  table: Map<string, string>,
  pseudonyms: Iterable<string>,
): Map<string, string | null> {
  const out = new Map<string, string | null>();
  for (const given of pseudonyms) {
    const { host, port } = splitPort(given);
    const original = table.get(host);
    if (original === undefined) {
      out.set(given, null);
      continue;
    }
    if (pseudonymOf(key, original) !== host) {
      throw new PromcaseError(
        `the mapping table's entry for ${host} does not match the key: wrong --pseudonym-key?`,
      );
    }
    out.set(given, original + port);
  }
  return out;
}
