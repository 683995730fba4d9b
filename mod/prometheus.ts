/**
 * Facts about Prometheus binaries: their versions and how versions compare.
 *
 * @module
 */

import type { Manifest } from "./archive/manifest.ts";

/** Compares dotted versions numerically (`2.9.0` < `2.42.0`); pre-release tails are ignored. */
export function compareVersions(a: string, b: string): number {
  const parts = (v: string) => v.replace(/^v/, "").split(/[-+]/)[0].split(".").map(Number);
  const [pa, pb] = [parts(a), parts(b)];
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] || 0) - (pb[i] || 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/**
 * Asks a Prometheus binary for its version (`bin --version`); null when it cannot be run or does
 * not answer like Prometheus.
 */
export async function prometheusVersion(bin = "prometheus"): Promise<string | null> {
  try {
    const output = await new Deno.Command(bin, {
      args: ["--version"],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(5000),
    }).output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    return /prometheus, version (\S+)/.exec(text)?.[1] ?? null;
  } catch {
    return null;
  }
}

/**
 * A warning when the local Prometheus (`binaryVersion`, from {@link prometheusVersion}) is older
 * than the oldest release that can serve an archive's data (`manifest.minPrometheusVersion`);
 * undefined when it is recent enough, or when either version is unknown.
 */
export function checkPrometheusVersion(
  manifest: Pick<Manifest, "minPrometheusVersion">,
  binaryVersion: string | null | undefined,
): string | undefined {
  const needed = manifest.minPrometheusVersion;
  if (!needed || !binaryVersion || compareVersions(binaryVersion, needed) >= 0) return undefined;
  return `the local Prometheus ${binaryVersion} is older than ${needed}, the oldest release that ` +
    `can read this archive's data: serve it with Prometheus ${needed} or newer (--prometheus-bin)`;
}
