/**
 * Lowers promcase's own CPU and I/O priority, so that an export on a busy production host yields
 * to Prometheus. Best effort: where the OS or permissions do not allow it, nothing changes.
 *
 * @module
 */

import os from "node:os";

/** Sets the lowest CPU priority (nice 19) and, on Linux, the idle I/O class through `ionice`. */
export async function lowerPriority(): Promise<void> {
  try {
    os.setPriority(19);
  } catch {
    // Not permitted here: run at normal priority.
  }
  if (Deno.build.os !== "linux") return;
  try {
    await new Deno.Command("ionice", {
      args: ["-c", "3", "-p", String(Deno.pid)],
      stdout: "null",
      stderr: "null",
    }).output();
  } catch {
    // No ionice on this host.
  }
}
