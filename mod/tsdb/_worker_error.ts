/**
 * Errors across a worker's boundary: a worker sends the name and message of what it threw (an
 * Error does not survive a message whole), and the other side builds the error again.
 *
 * @module
 */

import { FormatError } from "./encoding.ts";

/** An error as a worker's message carries it. */
export interface WorkerError {
  /** The error's name (its class's, for the built-in and Deno's errors). */
  name: string;
  /** Its message. */
  message: string;
}

/** What a worker sends for `e`. */
export function workerError(e: unknown): WorkerError {
  const error = e instanceof Error ? e : new Error(String(e));
  return { name: error.name, message: error.message };
}

/**
 * The error a worker sent, on this side: Deno's I/O errors keep their class (a full disk, a
 * missing file are told apart by it), and so does a {@link FormatError} (damaged data); any other
 * becomes an Error with the same name and message.
 */
export function rebuildWorkerError(e: WorkerError): Error {
  if (e.name === "FormatError") return new FormatError(e.message);
  const errors = Deno.errors as unknown as Record<string, new (m: string) => Error>;
  const known = Object.hasOwn(errors, e.name) ? errors[e.name] : undefined;
  const error = known ? new known(e.message) : new Error(e.message);
  if (!known) error.name = e.name;
  return error;
}
