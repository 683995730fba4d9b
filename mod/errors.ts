/**
 * The one error type promcase shows to its user. `main.ts` prints `message` as a single line and
 * exits with `exitCode`; library code only throws it.
 *
 * Exit codes: 1 for a failure of the work itself (bad data, mismatch, I/O), 2 for a usage error
 * (flags, arguments, paths given by the user that cannot be used).
 *
 * @module
 */

/** Exit code for failures of the work itself. */
export const EXIT_FAILURE = 1;
/** Exit code for usage errors. */
export const EXIT_USAGE = 2;

/** An error whose message is meant for the user, with the exit code to leave with. */
export class PromcaseError extends Error {
  /** The process exit code that goes with this error. */
  readonly exitCode: number;

  /** Creates an error with a one-line user-facing message. */
  constructor(message: string, exitCode: number = EXIT_FAILURE, options?: ErrorOptions) {
    super(message, options);
    this.name = "PromcaseError";
    this.exitCode = exitCode;
  }
}

/** Shorthand for a usage error (exit code 2). */
export function usageError(message: string): PromcaseError {
  return new PromcaseError(message, EXIT_USAGE);
}

/**
 * Turns an error from the runtime (file system, zlib, JSON) into a one-line message, prefixed with
 * what was being done, so that no stack trace reaches the user.
 */
export function describeError(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "no such file or directory";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.AlreadyExists) return "already exists";
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    const text = err.message.split("\n")[0];
    if (code === "ENOSPC" || /No space left/i.test(text)) return "no space left on device";
    return text;
  }
  return String(err);
}
