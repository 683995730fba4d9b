/**
 * Prometheus' on-disk formats, named after Prometheus' `tsdb/` packages.
 *
 * @module
 */

export * from "./meta.ts";
