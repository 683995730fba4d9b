/**
 * The promcase archive: a tar stream (gzip, zstd or plain) holding `data/…` laid out as a
 * Prometheus storage dir and a `manifest.json` with every file's SHA-256, next to a `.sha256`
 * sidecar. Knows nothing of Prometheus' formats.
 *
 * @module
 */

export * from "./age.ts";
export * from "./compression.ts";
export * from "./compressor.ts";
export * from "./manifest.ts";
export * from "./parts.ts";
export * from "./reader.ts";
export * from "./restore.ts";
export * from "./tar.ts";
export * from "./writer.ts";
