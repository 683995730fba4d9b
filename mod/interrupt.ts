/**
 * Cleanups to run when the user interrupts promcase (SIGINT, SIGTERM): library code registers what
 * must not be left behind (a temporary archive, a half-restored dir); `main.ts` runs them and exits.
 *
 * @module
 */

const _cleanups = new Set<() => Promise<void> | void>();

/** Registers a cleanup for an interruption; call the returned function once it is not needed. */
export function onInterrupt(cleanup: () => Promise<void> | void): () => void {
  _cleanups.add(cleanup);
  return () => _cleanups.delete(cleanup);
}

/** Runs every registered cleanup (in registration order), ignoring their failures. */
export async function runInterruptCleanups(): Promise<void> {
  for (const cleanup of [..._cleanups]) {
    try {
      await cleanup();
    } catch {
      // Best effort: the process is going away.
    }
  }
  _cleanups.clear();
}
