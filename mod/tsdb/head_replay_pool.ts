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
import { rebuildWorkerError, type WorkerError } from "./_worker_error.ts";

/** A message from the worker: a job's result or its failure. */
export type FromReplayWorker =
  | { kind: "done"; result: ShardReplayResult }
  | ({ kind: "failed" } & WorkerError);

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
      else waiting?.reject(rebuildWorkerError(message));
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
