/**
 * Prometheus' on-disk formats, named after Prometheus' `tsdb/` packages.
 *
 * @module
 */

export * from "./crc32c.ts";
export * from "./encoding.ts";
export * from "./head_chunks.ts";
export * from "./meta.ts";
export * from "./record.ts";
export * from "./wlog.ts";
