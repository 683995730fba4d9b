/**
 * Keeps V8's hidden classes of short-lived objects alive for the life of the process.
 *
 * promcase runs V8 with `--optimize-for-size` (see `deno.json`) to bound its memory. Every major
 * GC then also reduces memory, and such a GC drops the hidden class of any object type of which no
 * instance is alive at that moment, with all code compiled against it. Objects that live for one
 * record, chunk or shard (decoders, chunk appenders, sample batches) are all gone between two
 * shards of the head replay, so its hottest functions were deoptimized after about every major GC
 * (some 870 of them in a 200k-series export) and ran unoptimized again, boxing each double they
 * computed. One instance of each such class, kept here, keeps its hidden class and the code.
 *
 * Memory: one small instance per class that registers.
 *
 * @module
 */

const _kept: object[] = [];

/**
 * Keeps `instance` alive, and with it the hidden class of objects built the same way. Give it an
 * instance built by the constructor the hot objects are built by.
 */
export function keepHiddenClass(instance: object): void {
  _kept.push(instance);
}
