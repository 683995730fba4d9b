/**
 * Loopback ports for the servers `promcase view` starts. A support laptop often runs its own
 * Prometheus on 9090 and Grafana on 3000: a default port that is taken is swapped for a free one
 * (and the caller says so), a port the engineer asked for that is taken is a one-line error.
 *
 * @module
 */

import { usageError } from "../errors.ts";

/** A port chosen by {@linkcode choosePort}. */
export interface ChosenPort {
  /** The port to listen on. */
  port: number;
  /** The port asked for, when it was taken and another one was picked. */
  taken?: number;
}

/** Whether nothing listens on `127.0.0.1:port` (nor on all interfaces) right now. */
export function portFree(port: number, hostname = "127.0.0.1"): boolean {
  try {
    Deno.listen({ hostname, port }).close();
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse || err instanceof Deno.errors.PermissionDenied) {
      return false;
    }
    throw err;
  }
}

/**
 * The port to listen on for `what` (named by `flag` in errors): `port` when it is free; when it
 * is taken, another free port if `port` was only the default, else a usage error.
 */
export function choosePort(
  port: number,
  explicit: boolean,
  what: string,
  flag: string,
): ChosenPort {
  if (portFree(port)) return { port };
  if (explicit) {
    throw usageError(`${flag} ${port}: the port is taken on 127.0.0.1 (${what}): pick another`);
  }
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const free = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return { port: free, taken: port };
}
