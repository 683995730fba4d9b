/**
 * The archive's `manifest.json`: what was exported, from where, and every file with its size and
 * SHA-256. It is the contract between the promcase that wrote an archive and every later promcase
 * that verifies or restores it, so it carries a format version, and readers accept every version up
 * to their own.
 *
 * @module
 */

import { PromcaseError } from "../errors.ts";

/** Identifies a promcase archive's manifest. */
export const ARCHIVE_FORMAT = "promcase-archive";
/**
 * The manifest format this promcase writes. Raise it when a change would make an older promcase
 * misread an archive, and keep reading every older version.
 */
export const ARCHIVE_FORMAT_VERSION = 1;
/** Where the manifest sits in the archive (the last entry, since it lists the files' hashes). */
export const MANIFEST_PATH = "manifest.json";
/**
 * Where the archive holds its disclosure report (see `../disclosure.ts`): beside the manifest,
 * written before it. Since 0.2; older archives have none.
 */
export const DISCLOSURE_PATH = "disclosure.json";
/** The prefix under which the archive holds the Prometheus storage dir. */
export const DATA_PREFIX = "data/";
/** Manifests larger than this are refused, so a hostile archive cannot exhaust memory. */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

/** One file in the archive. */
export interface ManifestFile {
  /** Path inside the archive. */
  path: string;
  /** Size in bytes. */
  size: number;
  /** Lowercase hex SHA-256 of the content. */
  sha256: string;
}

/** A block as shipped, with its meta.json as Prometheus wrote it. */
export interface ManifestBlock {
  /** The block's ULID. */
  ulid: string;
  /** First millisecond covered. */
  minTime: number;
  /** Exclusive end in milliseconds. */
  maxTime: number;
  /** Compaction level. */
  level: number;
  /** The block's meta.json. */
  meta: Record<string, unknown>;
}

/** The head parts as shipped. */
export interface ManifestHead {
  /** Whether the head (WAL and friends) is in the archive. */
  included: boolean;
  /** Why it is or is not. */
  reason: string;
  /** Checkpoint dir name, or null. */
  checkpoint: string | null;
  /** WAL segment file names shipped, in order. */
  walSegments: string[];
  /** `chunks_head/` file names shipped. */
  chunksHead: string[];
  /** `wbl/` segment file names shipped. */
  wbl: string[];
}

/** A time window in both forms: milliseconds and RFC 3339. */
export interface ManifestWindow {
  /** First millisecond. */
  fromMs: number;
  /** Last millisecond (inclusive). */
  toMs: number;
  /** `fromMs` in RFC 3339. */
  from: string;
  /** `toMs` in RFC 3339. */
  to: string;
}

/** The shipped range: a window with the lead-in that was added before the incident window. */
export interface ManifestShipped extends ManifestWindow {
  /** Milliseconds shipped before the incident window's start (`window.fromMs - fromMs`). */
  leadInMs: number;
  /** Why this lead-in (`default 15m`, raised by a range selector found in the context, …). */
  leadInReason: string;
}

/**
 * The range an archive's data covers: its `shipped` range, or for archives written before the
 * lead-in existed, the window itself.
 */
export function shippedRange(manifest: Pick<Manifest, "window" | "shipped">): ManifestWindow {
  const { shipped, window } = manifest;
  if (!shipped) return window;
  return { fromMs: shipped.fromMs, toMs: shipped.toMs, from: shipped.from, to: shipped.to };
}

/** The manifest. Fields may be added in later versions; readers ignore what they do not know. */
export interface Manifest {
  /** Always {@link ARCHIVE_FORMAT}. */
  format: typeof ARCHIVE_FORMAT;
  /** The manifest format version. */
  formatVersion: number;
  /** The promcase that wrote the archive. */
  tool: { name: string; version: string };
  /** When the archive was written (RFC 3339). */
  createdAt: string;
  /** Host name of the machine that exported. */
  host: string;
  /** Where the data came from: a data dir on the host, or a Prometheus server over the network. */
  source: { kind: "datadir"; dataDir: string } | { kind: "remote"; url: string };
  /**
   * How the data was packed: "rewrite" (since 0.2) holds only new blocks cut to the window, with
   * the head turned into block data; "raw" holds whole blocks and the head files as found. Absent
   * means "raw" (archives of 0.1).
   */
  mode?: "rewrite" | "raw";
  /**
   * The oldest Prometheus release that can serve the shipped data, derived from the chunk
   * encodings it holds (e.g. "2.0.0" for plain XOR floats, "3.11.0" with XOR2 chunks) and, for
   * raw archives, the WAL record types (older releases skip types they do not know). Since 0.2;
   * absent in raw archives of promcase 0.2.0 and older.
   */
  minPrometheusVersion?: string;
  /**
   * What a rewrite read and wrote: source blocks, head replay counters (records skipped by type,
   * samples dropped by Prometheus' replay rules), chunks copied and re-encoded. Since 0.2.
   */
  rewrite?: Record<string, unknown>;
  /** Series selectors that limited the export (`--match`, `--exclude`). Since 0.2. */
  selection?: { match: string[]; exclude: string[] };
  /** The Prometheus that wrote the data, as far as it could be told. */
  prometheus: { version: string | null; running: boolean };
  /** The incident window asked for: what `view` opens dashboards on. */
  window: ManifestWindow;
  /**
   * The range of the shipped data: the window with a lead-in before it (`export --lead-in`), so
   * that range queries at the window's first minutes see what they look back on. Absent in
   * archives written before the lead-in: their shipped range is the window (see
   * {@link shippedRange}).
   */
  shipped?: ManifestShipped;
  /** The incident time (RFC 3339 and ms). */
  incident: { at: string; atMs: number };
  /** How the tar stream is compressed. */
  compression: string;
  /** Blocks shipped. */
  blocks: ManifestBlock[];
  /** Head parts shipped. */
  head: ManifestHead;
  /** What context was captured with the data (Prometheus API, Grafana), by source. Since 0.2. */
  context?: Record<string, unknown>;
  /** Pseudonymized labels and patterns, dropped labels (never the key or an original). */
  pseudonymized?: Record<string, unknown>;
  /**
   * The disclosure report shipped in the archive ({@link DISCLOSURE_PATH}) and its detector hits
   * in total, by detector. Absent in archives written before it existed.
   */
  disclosure?: { path: string; series: number; totals: Record<string, number> };
  /** Every file in the archive except the manifest itself. */
  files: ManifestFile[];
  /** Things the support engineer should know. */
  warnings: string[];
}

/**
 * Parses and checks a manifest. Refuses other formats and versions newer than this promcase
 * knows; accepts every older version.
 */
export function parseManifest(text: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new PromcaseError("archive is corrupt: manifest.json is not valid JSON");
  }
  const manifest = value as Partial<Manifest>;
  if (typeof value !== "object" || value === null || manifest.format !== ARCHIVE_FORMAT) {
    throw new PromcaseError("not a promcase archive: manifest.json has no promcase format marker");
  }
  const version = manifest.formatVersion;
  if (typeof version !== "number" || !Number.isInteger(version) || version < 1) {
    throw new PromcaseError("archive is corrupt: manifest.json has no valid formatVersion");
  }
  if (version > ARCHIVE_FORMAT_VERSION) {
    throw new PromcaseError(
      `archive format version ${version} is newer than this promcase reads ` +
        `(up to ${ARCHIVE_FORMAT_VERSION}): upgrade promcase`,
    );
  }
  if (!Array.isArray(manifest.files)) {
    throw new PromcaseError("archive is corrupt: manifest.json lists no files");
  }
  for (const file of manifest.files) {
    if (
      typeof file?.path !== "string" || typeof file.size !== "number" ||
      typeof file.sha256 !== "string"
    ) {
      throw new PromcaseError("archive is corrupt: manifest.json has a malformed file entry");
    }
  }
  return manifest as Manifest;
}

/** Serializes a manifest the way promcase writes it (two-space indent, trailing newline). */
export function formatManifest(manifest: Manifest): string {
  return [...formatManifestPieces(manifest)].join("");
}

/**
 * {@link formatManifest}'s text in pieces, one per array element at most, so that a manifest
 * listing thousands of files and blocks is written without ever being one string.
 */
export function* formatManifestPieces(manifest: Manifest): Generator<string> {
  const entries = Object.entries(manifest).filter(([, value]) => value !== undefined);
  yield "{";
  for (const [i, [key, value]] of entries.entries()) {
    yield `${i === 0 ? "" : ","}\n  ${JSON.stringify(key)}: `;
    if (Array.isArray(value) && value.length > 0) {
      yield "[";
      for (const [j, element] of value.entries()) {
        yield `${j === 0 ? "" : ","}\n    ${_indented(element, "    ")}`;
      }
      yield "\n  ]";
    } else {
      yield _indented(value, "  ");
    }
  }
  yield entries.length === 0 ? "}\n" : "\n}\n";
}

/** `JSON.stringify(value, null, 2)` as it reads nested at `indent`. */
function _indented(value: unknown, indent: string): string {
  return (JSON.stringify(value, null, 2) ?? "null").replaceAll("\n", `\n${indent}`);
}
