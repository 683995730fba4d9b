/**
 * Prometheus' on-disk formats, named after Prometheus' `tsdb/` packages.
 *
 * @module
 */

export * from "./block.ts";
export * from "./chunkenc/mod.ts";
export * from "./chunks.ts";
export * from "./crc32c.ts";
export * from "./dump.ts";
export * from "./encoding.ts";
export * from "./head_chunks.ts";
export * from "./index.ts";
export * from "./meta.ts";
export * from "./record.ts";
export * from "./series.ts";
export * from "./tombstones.ts";
export * from "./ulid.ts";
export * from "./wlog.ts";
