/**
 * Pseudonymized exports: the values of chosen labels (and whatever matches `--pseudonymize-values`
 * patterns) become stable pseudonyms, keyed HMAC-SHA-256 of the value, e.g. `anon-3f2a9c1b04d2`.
 *
 * - A pseudonym depends on the value only (not on the label it came from), so a host named in
 *   `instance` and in `node` maps to the same pseudonym, and the same mapping serves context text,
 *   where the label is unknown. A `:port` suffix is kept (`db1:9100` becomes `anon-…:9100`), so
 *   `by (instance)` and joins keep working.
 * - 12 hex digits (48 bits): a collision needs about 16 million distinct values to become likely;
 *   one is refused anyway (two originals never share a pseudonym silently).
 * - Context text (Prometheus API JSON, Grafana dashboards) is mapped JSON-aware: values under a
 *   chosen label name are registered, then every string has each known original replaced wherever
 *   it stands as a whole token (not inside a longer identifier such as a metric name), longest
 *   first, then the patterns' matches.
 * - The key stays with the customer ({@link loadPseudonymKey}). So does the mapping table: the
 *   export appends `PSEUDONYM<TAB>"ORIGINAL"` lines to `KEY.map` beside the key file (mode 0600),
 *   never to the archive. `promcase reveal` reads that table and checks each entry against the key
 *   (an entry the key does not produce is refused), so a pseudonym is revealed only where it was
 *   made.
 *
 * @module
 */

import { createHmac, randomBytes } from "node:crypto";
import { PromcaseError, usageError } from "./errors.ts";
import { type AgeKeys, decryptIfEncrypted } from "./archive/age.ts";
import { decompress } from "./archive/compression.ts";
import { locateArchive, PartReader } from "./archive/parts.ts";
import type { Label } from "./tsdb/index.ts";

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

/** The mapping table kept beside a key file. */
export function mappingPath(keyPath: string): string {
  return `${keyPath}.map`;
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

const _WORD = "A-Za-z0-9_";

/** Maps label values and text to pseudonyms, remembering what it mapped. */
export class Pseudonymizer {
  /** What is pseudonymized. */
  readonly spec: PseudonymSpec;
  #key: Uint8Array;
  #labels: Set<string>;
  #drop: Set<string>;
  #patterns: RegExp[];
  // original -> pseudonym, and back (to refuse collisions).
  #forward = new Map<string, string>();
  #back = new Map<string, string>();
  #textRe: RegExp | null = null;
  #textReSize = -1;

  /** `key`: the customer's key; `spec`: what to map (patterns are checked here). */
  constructor(key: Uint8Array, spec: PseudonymSpec) {
    this.spec = spec;
    this.#key = key;
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

  /** The pseudonym of a value without port handling, remembered for the mapping table. */
  pseudonym(original: string): string {
    const known = this.#forward.get(original);
    if (known !== undefined) return known;
    const p = pseudonymOf(this.#key, original);
    const other = this.#back.get(p);
    if (other !== undefined && other !== original) {
      throw new PromcaseError(
        `two values map to the same pseudonym ${p}: use another --pseudonym-key`,
      );
    }
    this.#forward.set(original, p);
    this.#back.set(p, original);
    return p;
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
   * Registers the values of chosen labels in a JSON document (objects keyed by label name, as the
   * Prometheus API and dashboards hold them), so that text mapping knows them even when no series
   * in the window carried them (a target that was down, a series left out by --match).
   */
  registerJson(value: unknown): void {
    if (Array.isArray(value)) {
      for (const v of value) this.registerJson(v);
    } else if (value !== null && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) {
        if (typeof v === "string" && this.#labels.has(k) && v !== "") this.mapValue(v);
        else this.registerJson(v);
      }
    }
  }

  /** Text with every known original (as a whole token) and every pattern match replaced. */
  mapText(text: string): string {
    const re = this.#originalsRe();
    let out = re ? text.replace(re, (m) => this.#forward.get(m) ?? m) : text;
    if (this.#patterns.length > 0) out = this.mapPatterns(out);
    return out;
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

  /** The mapping table so far: pseudonym -> original. */
  entries(): Map<string, string> {
    return new Map(this.#back);
  }

  /** The manifest's account: labels, patterns, dropped labels, never the key or an original. */
  manifestInfo(): Record<string, unknown> {
    return {
      labels: this.spec.labels,
      patterns: this.spec.patterns,
      droppedLabels: this.spec.dropLabels,
      pseudonym: `${PSEUDONYM_PREFIX} + 12 hex digits of HMAC-SHA-256 with the customer's key; ` +
        `a :port suffix kept`,
      values: this.#back.size,
    };
  }

  #originalsRe(): RegExp | null {
    if (this.#forward.size === 0) return null;
    if (this.#textRe && this.#textReSize === this.#forward.size) return this.#textRe;
    const originals = [...this.#forward.keys()].sort((a, b) => b.length - a.length);
    // Only the syntax characters: the u flag refuses needless escapes such as \-.
    const alternation = originals.map((o) => o.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|");
    this.#textRe = new RegExp(`(?<![${_WORD}])(?:${alternation})(?![${_WORD}])`, "gu");
    this.#textReSize = this.#forward.size;
    return this.#textRe;
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

/** Reads a mapping table (pseudonym -> original); empty when the file does not exist. */
export async function readMapping(path: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return out;
    throw new PromcaseError(`cannot read the mapping table ${path}: ${(err as Error).message}`);
  }
  for (const [i, line] of text.split("\n").entries()) {
    if (line === "") continue;
    const tab = line.indexOf("\t");
    let original: unknown;
    try {
      original = tab > 0 ? JSON.parse(line.slice(tab + 1)) : undefined;
    } catch { /* reported below */ }
    if (typeof original !== "string") {
      throw new PromcaseError(`${path}:${i + 1}: not a PSEUDONYM<TAB>"ORIGINAL" line`);
    }
    out.set(line.slice(0, tab), original);
  }
  return out;
}

/** Appends the entries not yet in the table at `path` (created with mode 0600). */
export async function saveMapping(path: string, entries: Map<string, string>): Promise<number> {
  const known = await readMapping(path);
  const lines: string[] = [];
  for (const [p, o] of entries) {
    if (known.get(p) === o) continue;
    lines.push(`${p}\t${JSON.stringify(o)}\n`);
  }
  if (lines.length > 0) {
    await Deno.writeTextFile(path, lines.join(""), { append: true, create: true, mode: 0o600 });
  }
  return lines.length;
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
