/**
 * Errors that come back from a worker as a name and a message, rebuilt on the calling thread.
 *
 * @module
 */

/**
 * An error as a worker threw it: Deno's I/O errors keep their class (a full disk or a file gone
 * is told apart by it), any other becomes an Error with the same name and message.
 */
export function rebuildWorkerError(name: string, message: string): Error {
  const errors = Deno.errors as unknown as Record<string, new (m: string) => Error>;
  const known = Object.hasOwn(errors, name) ? errors[name] : undefined;
  const e = known ? new known(message) : new Error(message);
  if (!known) e.name = name;
  return e;
}
