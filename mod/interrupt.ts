/**
 * Cleanups to run when the user interrupts promcase (SIGINT, SIGTERM): library code registers what
 * must not be left behind (a temporary archive, a half-restored dir); `main.ts` runs them and exits.
 *
 * @module
 */

const _cleanups = new Set<() => Promise<void> | void>();
let _interrupted = false;

/**
 * Whether an interruption is being handled: from then on the command's own outcome (an error from
 * the work being torn down, or even success) is not reported; the signal handler exits.
 */
export function isInterrupted(): boolean {
  return _interrupted;
}

/** Registers a cleanup for an interruption; call the returned function once it is not needed. */
export function onInterrupt(cleanup: () => Promise<void> | void): () => void {
  _cleanups.add(cleanup);
  return () => _cleanups.delete(cleanup);
}

/**
 * Runs every registered cleanup (in registration order), ignoring their failures, and then those
 * registered meanwhile: work that had just created something (a staging dir, a temporary archive)
 * registers its cleanup when its pending step completes, which may be after the signal's handler
 * started. A turn of the event loop after each round lets such steps complete.
 */
export async function runInterruptCleanups(): Promise<void> {
  _interrupted = true;
  do {
    for (const cleanup of [..._cleanups]) {
      _cleanups.delete(cleanup);
      try {
        await cleanup();
      } catch {
        // Best effort: the process is going away.
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
  } while (_cleanups.size > 0);
}

/**
 * Runs `work` with a fresh temporary dir in `parent` (named `prefix…`), removed afterwards however
 * `work` ends. On an interruption `work` is aborted through its signal and awaited (at most 10 s)
 * before the dir is removed, so that nothing is written into it after it is gone.
 */
export async function withTempDirUntilDone<T>(
  parent: string,
  prefix: string,
  work: (dir: string, signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ dir: parent, prefix });
  const ctl = new AbortController();
  let settle = () => {};
  const settled = new Promise<void>((resolve) => settle = resolve);
  const release = onInterrupt(async () => {
    ctl.abort(new Error("interrupted"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([settled, new Promise((r) => timer = setTimeout(r, 10_000))]);
    clearTimeout(timer);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  });
  try {
    return await work(dir, ctl.signal);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    settle();
    release();
  }
}
