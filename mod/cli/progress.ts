/**
 * A progress line on stderr, redrawn in place; silent when stderr is not a terminal, so that logs
 * and pipes get no control characters.
 *
 * @module
 */

import { formatBytes } from "./args.ts";

/** A progress reporter for byte counts. */
export interface Progress {
  /** Reports `done` of `total` bytes, with an optional label. */
  update(done: number, total: number, label?: string): void;
  /** Shows a free-text step (e.g. "replaying the head: 40960 records"). */
  status(text: string): void;
  /** Clears the line. */
  done(): void;
}

/** Creates a progress reporter for `what` (e.g. "export"). */
export function createProgress(what: string): Progress {
  if (!Deno.stderr.isTerminal()) return { update() {}, status() {}, done() {} };
  const encoder = new TextEncoder();
  let last = 0;
  let drawn = false;
  return {
    update(done, total, label = "") {
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const percent = total > 0 ? Math.floor((done / total) * 100) : 100;
      const width = 24;
      const filled = Math.round((percent / 100) * width);
      const bar = "#".repeat(filled) + "-".repeat(width - filled);
      const text = `${what} [${bar}] ${percent}% ${formatBytes(done)}/${
        formatBytes(total)
      } ${label}`;
      Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${text.slice(0, 120)}`));
      drawn = true;
    },
    status(text) {
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${`${what}: ${text}`.slice(0, 120)}`));
      drawn = true;
    },
    done() {
      if (drawn) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
      drawn = false;
    },
  };
}
