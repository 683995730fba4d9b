/**
 * The WAL worker (a Web Worker started by `wlog_threaded.ts`): runs a {@link WalReader} over the
 * segments it is sent and posts the records in batches, waiting for a credit when `batches` of
 * them are on their way. A batch's buffer comes back with its credit and is reused.
 *
 * @module
 */

/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />

import { CorruptionError, WalReader } from "./wlog.ts";
import {
  type FromWalWorker,
  type ToWalWorker,
  WAL_BATCH_COMPRESSIONS,
  WAL_BATCH_HEAD,
} from "./wlog_threaded.ts";

let credits = 0;
const spare: ArrayBuffer[] = [];
let wake: (() => void) | null = null;

self.onmessage = (event: MessageEvent<ToWalWorker>) => {
  const message = event.data;
  if (message.kind === "credit") {
    credits++;
    if (message.buffer) spare.push(message.buffer);
    wake?.();
    wake = null;
  } else {
    credits = message.batches;
    void _run(message).then((reply) => self.postMessage(reply));
  }
};

async function _run(start: Extract<ToWalWorker, { kind: "start" }>): Promise<FromWalWorker> {
  const index = new Map(start.segments.map((s, i) => [s.path, i]));
  const reader = new WalReader(start.segments, {
    ...start.options,
    recordTypes: start.options.recordTypes ? new Set(start.options.recordTypes) : undefined,
    reuseBuffer: true,
  });
  let buffer: Uint8Array | null = null;
  let view: DataView | null = null;
  let at = 0;
  const send = async () => {
    while (credits === 0) await new Promise<void>((resolve) => wake = resolve);
    credits--;
    const sent = buffer!.buffer as ArrayBuffer;
    self.postMessage({ kind: "batch", buffer: sent, length: at } satisfies FromWalWorker, [sent]);
    buffer = view = null;
    at = 0;
  };
  try {
    for await (const record of reader) {
      const need = WAL_BATCH_HEAD + record.bytes.length;
      if (buffer && at + need > buffer.length) await send();
      if (!buffer) {
        const size = Math.max(start.batchBytes, need);
        const reused = spare.length > 0 && spare[spare.length - 1].byteLength >= size
          ? spare.pop()!
          : undefined;
        buffer = new Uint8Array(reused ?? new ArrayBuffer(size));
        view = new DataView(buffer.buffer);
      }
      view!.setUint32(at, record.bytes.length);
      view!.setUint32(at + 4, index.get(record.path)!);
      view!.setFloat64(at + 8, record.offset);
      buffer[at + 16] = WAL_BATCH_COMPRESSIONS.indexOf(record.compression);
      buffer.set(record.bytes, at + WAL_BATCH_HEAD);
      at += need;
    }
    if (buffer && at > 0) await send();
    return { kind: "end", torn: reader.torn, stats: reader.stats };
  } catch (e) {
    if (buffer && at > 0) await send();
    const error = e instanceof Error ? e : new Error(String(e));
    return {
      kind: "failed",
      name: error.name,
      message: error.message,
      corruption: error instanceof CorruptionError
        ? { segment: error.segment, path: error.path, offset: error.offset, reason: error.reason }
        : undefined,
    };
  }
}
