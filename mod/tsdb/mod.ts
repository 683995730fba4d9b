/**
 * Prometheus' on-disk formats, named after Prometheus' `tsdb/` packages.
 *
 * @module
 */

export * from "./crc32c.ts";
export * from "./encoding.ts";
export * from "./meta.ts";
