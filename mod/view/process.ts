/**
 * A server process that `promcase view` runs: its output goes to a log file (the terminal stays
 * for promcase's own lines), and it stops with SIGTERM, then SIGKILL if it lingers.
 *
 * @module
 */

import { describeError, EXIT_FAILURE, PromcaseError } from "../errors.ts";

/** A started process. */
export interface LoggedProcess {
  /** The command line it was started with. */
  command: string[];
  /** Stops it (SIGTERM, then SIGKILL after 20 s). Safe to call more than once. */
  stop(): Promise<void>;
  /** Resolves when the process has ended and its output is in the log. */
  exited: Promise<Deno.CommandStatus>;
}

/**
 * Starts `bin args` with stdout and stderr appended to `logFile`. A binary that cannot be started
 * is a PromcaseError naming `what`, with `exitCode`.
 */
export async function spawnLogged(
  what: string,
  bin: string,
  args: string[],
  logFile: string,
  exitCode: number = EXIT_FAILURE,
): Promise<LoggedProcess> {
  const log = await Deno.open(logFile, { write: true, create: true, append: true });
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(bin, { args, stdin: "null", stdout: "piped", stderr: "piped" })
      .spawn();
  } catch (err) {
    log.close();
    throw new PromcaseError(`cannot start ${what} as "${bin}": ${describeError(err)}`, exitCode);
  }
  const copied = Promise.all([child.stdout, child.stderr].map(async (stream) => {
    for await (const chunk of stream) await log.write(chunk);
  })).finally(() => log.close());
  const exited = child.status.then(async (status) => {
    await copied;
    return status;
  });
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      _kill(child, "SIGTERM");
      const timer = setTimeout(() => _kill(child, "SIGKILL"), 20_000);
      await exited;
      clearTimeout(timer);
    })();
  return { command: [bin, ...args], stop, exited };
}

function _kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch {
    // Already gone.
  }
}
