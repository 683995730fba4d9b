/**
 * Facts about Prometheus binaries: their versions and how versions compare.
 *
 * @module
 */

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
