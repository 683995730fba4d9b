/**
 * A byte-rate limiter (token bucket) for reads that must not starve the customer's Prometheus of
 * disk bandwidth: the export passes each piece it reads through {@link Throttle.take}.
 *
 * @example
 * ```ts
 * import { parseRate, Throttle, throttled } from "./throttle.ts";
 *
 * const limit = new Throttle(parseRate("50MB/s"));
 * async function* pieces() {
 *   yield new Uint8Array(1024);
 * }
 * for await (const piece of throttled(pieces(), limit)) console.log(piece.length);
 * ```
 *
 * @module
 */

import { parseByteSize } from "./bytesize.ts";
import { usageError } from "./errors.ts";

/**
 * Parses a rate such as `50MB/s`, `10MiB/s` or `800K` (the `/s` is optional) into bytes per
 * second; units as in {@link parseByteSize}. Throws a usage error naming `what`.
 */
export function parseRate(text: string, what = "rate"): number {
  const match = /^(.*?)\s*(?:\/\s*s(?:ec(?:ond)?)?)?\s*$/i.exec(text);
  try {
    return parseByteSize(match?.[1] ?? text, what);
  } catch {
    throw usageError(
      `invalid ${what} ${JSON.stringify(text)}: give a rate such as 50MB/s or 10MiB/s`,
    );
  }
}

/** Options of {@link Throttle}. */
export interface ThrottleOptions {
  /**
   * How many bytes may pass at once after an idle spell (the bucket's size). Default: a tenth of a
   * second's worth, at least 64 KiB, so that short pauses do not turn into long bursts.
   */
  burstBytes?: number;
}

/**
 * A token bucket of `bytesPerSecond`. {@link Throttle.take} waits until the bytes may pass; a
 * request larger than the bucket is allowed and paid for by waiting afterwards (the bucket goes
 * into debt), so the average rate holds whatever the piece size. Concurrent callers are served in
 * the order they called.
 */
export class Throttle {
  /** The limit, in bytes per second. */
  readonly bytesPerSecond: number;
  #burst: number;
  #tokens: number;
  #last = performance.now();
  #queue: Promise<void> = Promise.resolve();

  /** Creates a limiter of `bytesPerSecond` (a positive number). */
  constructor(bytesPerSecond: number, options: ThrottleOptions = {}) {
    if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) {
      throw new RangeError(`Throttle: invalid rate ${bytesPerSecond}`);
    }
    this.bytesPerSecond = bytesPerSecond;
    this.#burst = options.burstBytes ?? Math.max(64 * 1024, bytesPerSecond / 10);
    this.#tokens = this.#burst;
  }

  /** Resolves once `bytes` more bytes may pass. */
  take(bytes: number): Promise<void> {
    const turn = this.#queue.then(() => this.#take(bytes));
    this.#queue = turn.catch(() => {});
    return turn;
  }

  async #take(bytes: number): Promise<void> {
    this.#refill();
    this.#tokens -= bytes;
    if (this.#tokens < 0) {
      await new Promise((resolve) =>
        setTimeout(resolve, (-this.#tokens / this.bytesPerSecond) * 1000)
      );
      this.#refill();
    }
  }

  #refill(): void {
    const now = performance.now();
    this.#tokens = Math.min(
      this.#burst,
      this.#tokens + ((now - this.#last) / 1000) * this.bytesPerSecond,
    );
    this.#last = now;
  }
}

/** Passes `source` through unchanged, at no more than `throttle`'s rate. */
export async function* throttled(
  source: AsyncIterable<Uint8Array>,
  throttle: Throttle,
): AsyncGenerator<Uint8Array> {
  for await (const piece of source) {
    await throttle.take(piece.length);
    yield piece;
  }
}
