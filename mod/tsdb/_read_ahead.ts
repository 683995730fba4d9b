/**
 * A worker that reads ahead (`read_ahead_worker.ts`), seen from the thread that uses what it
 * reads: started early ({@link PreparedReadAheadWorker}: its runtime and modules take about half
 * a second to load, which then overlaps other work), sent one job, its items taken from a ring of
 * shared memory (`_ring.ts`) as they come; after the ring's last item it sends its end, or its
 * failure, by message. Used for the WAL's records (`wal_read_ahead.ts`) and for the merge of the
 * head replay's sorted runs (`run_merge_ahead.ts`).
 *
 * Memory: the ring and the worker (its runtime, 10-20 MiB, and what its job holds).
 *
 * @module
 */

import { type RingBuffers, type RingEntry, RingReader } from "./_ring.ts";
import type { WorkerError } from "./_worker_error.ts";

/** A job of a read-ahead worker: what it reads, and the ring its items go to. */
export interface ReadAheadJob {
  kind: string;
  ring: RingBuffers;
}

/** A worker's failure, as it sends it. */
export type ReadAheadFailure = { kind: "failed" } & WorkerError;

/**
 * A read-ahead worker started before its job is known. {@link PreparedReadAheadWorker.close} ends
 * it if no reader took it over.
 */
export class PreparedReadAheadWorker {
  #worker: Worker | null = new Worker(new URL("./read_ahead_worker.ts", import.meta.url).href, {
    type: "module",
  });

  /** The worker, for one job; null once taken. */
  take(): Worker | null {
    const w = this.#worker;
    this.#worker = null;
    return w;
  }

  /** Ends the worker unless a reader took it over (which ends it itself). */
  close(): void {
    this.take()?.terminate();
  }
}

/**
 * Runs `job` on `prepared` (or a new worker) and yields the items of its ring, each valid until
 * the next is asked for; then hands the worker's last message (its end or its failure) to `end`,
 * which may throw. The worker is ended when the iteration ends, however it ends. `what` names the
 * worker in the error of one that dies.
 */
export async function* readAhead<End extends { kind: string }>(
  job: ReadAheadJob,
  prepared: PreparedReadAheadWorker | undefined,
  what: string,
  end: (message: End) => void,
): AsyncGenerator<RingEntry> {
  const messages: End[] = [];
  let arrived: (() => void) | null = null;
  let broken: Error | null = null;
  const worker = prepared?.take() ?? new PreparedReadAheadWorker().take()!;
  worker.onmessage = (event: MessageEvent<End>) => {
    messages.push(event.data);
    arrived?.();
  };
  const reader = new RingReader(job.ring);
  worker.onerror = (event) => {
    // Handled here: unhandled, a worker's error would end the whole process. The ring is ended
    // from here, or the reading would wait for the worker forever.
    event.preventDefault();
    broken = new Error(`the ${what} worker failed: ${event.message}`);
    reader.stop();
    arrived?.();
  };
  try {
    worker.postMessage(job);
    for (let e = await reader.next(); e; e = await reader.next()) yield e;
    // After the ring's last item (a record it cuts is dropped): the end, or the failure.
    while (messages.length === 0) {
      if (broken) throw broken;
      await new Promise<void>((resolve) => arrived = resolve);
      arrived = null;
    }
    end(messages.shift()!);
  } finally {
    worker.terminate();
  }
}
