/**
 * A head replay worker, seen from the main thread: a Web Worker (`head_replay_worker.ts`) that
 * replays shard files into sorted runs (`head.ts`, step 2) while the main thread replays others,
 * so a rewrite uses the second core. Jobs and results are plain data (paths, limits, counters);
 * the chunks go through the files, never through messages.
 *
 * Memory: the worker's own runtime (about 10-20 MiB) and what one shard's replay holds there.
 *
 * @module
 */

import type { ShardReplayJob, ShardReplayResult } from "./head.ts";

/** A message from the worker: a job's result or its failure. */
export type FromReplayWorker =
  | { kind: "done"; result: ShardReplayResult }
  | { kind: "failed"; name: string; message: string };

/** Replays shards in a worker, one job at a time. */
export class HeadReplayWorker {
  #worker: Worker;
  #waiting: { resolve: (r: ShardReplayResult) => void; reject: (e: unknown) => void } | null = null;
  #failure: Error | null = null;
  #signal: AbortSignal;

  /** Starts the worker; `signal` stops it (a job in flight then fails with the signal's reason). */
  constructor(signal: AbortSignal) {
    this.#signal = signal;
    this.#worker = new Worker(new URL("./head_replay_worker.ts", import.meta.url).href, {
      type: "module",
    });
    this.#worker.onmessage = (event: MessageEvent<FromReplayWorker>) => {
      const waiting = this.#waiting;
      this.#waiting = null;
      const message = event.data;
      if (message.kind === "done") waiting?.resolve(message.result);
      else waiting?.reject(_rebuildError(message.name, message.message));
    };
    this.#worker.onerror = (event) => {
      // Handled here: unhandled, a worker's error would end the whole process.
      event.preventDefault();
      this.#fail(new Error(`the head replay worker failed: ${event.message}`));
    };
    this.#worker.onmessageerror = () =>
      this.#fail(new Error("the head replay worker sent garbage"));
    signal.addEventListener("abort", this.#onAbort);
  }

  /** Replays one shard (one job at a time). */
  replay(job: ShardReplayJob): Promise<ShardReplayResult> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#signal.aborted) return Promise.reject(this.#signal.reason);
    if (this.#waiting) return Promise.reject(new Error("the head replay worker is busy"));
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
      this.#worker.postMessage(job);
    });
  }

  /** Stops the worker. */
  close(): void {
    this.#signal.removeEventListener("abort", this.#onAbort);
    this.#worker.terminate();
  }

  #onAbort = () => this.#fail(this.#signal.reason);

  #fail(e: unknown): void {
    this.#failure ??= e instanceof Error ? e : new Error(String(e));
    this.#worker.terminate();
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.reject(e);
  }
}

// An error as the worker threw it: Deno's I/O errors keep their class (a full disk is told
// apart by it), any other becomes an Error with the same name and message.
function _rebuildError(name: string, message: string): Error {
  const errors = Deno.errors as unknown as Record<string, new (m: string) => Error>;
  const known = Object.hasOwn(errors, name) ? errors[name] : undefined;
  const e = known ? new known(message) : new Error(message);
  if (!known) e.name = name;
  return e;
}
