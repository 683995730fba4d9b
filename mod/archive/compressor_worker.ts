/**
 * The compression worker (a Web Worker started by `compressor.ts`): one {@link FramePump} lane on
 * its own thread. The first message configures it; every buffer travels by transfer, never by
 * copy, and comes back for reuse.
 *
 * @module
 */

/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />

import { FramePump, type FramePumpOptions, type FromLane, type ToLane } from "./frame_pump.ts";

/** The first message a worker takes: how to compress. */
export interface StartWorker {
  kind: "start";
  options: FramePumpOptions;
}

let pump: FramePump | null = null;

self.onmessage = (event: MessageEvent<StartWorker | ToLane>) => {
  const message = event.data;
  if (message.kind === "start") {
    pump = new FramePump(message.options, (reply, transfer) => self.postMessage(reply, transfer));
    self.postMessage({ kind: "ready" } satisfies FromLane);
  } else if (pump !== null) {
    pump.receive(message);
    pump.run();
  }
};
