/**
 * promcase as a library: scan a Prometheus data dir, export a time window of it into a checksummed
 * archive, verify and restore such archives.
 *
 * @example
 * ```ts
 * import { exportArchive, resolveWindow } from "./mod.ts";
 * const window = resolveWindow({ at: "2026-11-25T10:30:00Z", before: "24h" });
 * await exportArchive({ dataDir: "/var/lib/prometheus/metrics2", window, compression: "gzip" });
 * ```
 *
 * @module
 */

export * from "./errors.ts";
export * from "./window.ts";
export * from "./datadir.ts";
export * from "./export.ts";
export * from "./serve.ts";
export * from "./prometheus.ts";
export * from "./version.ts";
export * from "./archive/mod.ts";
export * from "./tsdb/mod.ts";
export * from "./context.ts";
export * from "./selector.ts";
export * from "./view/grafana.ts";
