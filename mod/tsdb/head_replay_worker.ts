/**
 * The head replay worker (a Web Worker started by `head_replay_pool.ts`): replays the shard
 * files it is sent into sorted runs, one at a time, with one set of open chunks kept across
 * jobs (as the main thread keeps its own).
 *
 * @module
 */

/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />

import { XorAppenderSet } from "./chunkenc/xor_set.ts";
import { replayShardJob, type ShardReplayJob } from "./head.ts";
import type { FromReplayWorker } from "./head_replay_pool.ts";
import { workerError } from "./_worker_error.ts";

let openChunks: XorAppenderSet | null = null;

self.onmessage = async (event: MessageEvent<ShardReplayJob>) => {
  const job = event.data;
  let reply: FromReplayWorker;
  try {
    openChunks ??= new XorAppenderSet(job.limits.openChunks);
    reply = { kind: "done", result: await replayShardJob(job, openChunks) };
  } catch (e) {
    reply = { kind: "failed", ...workerError(e) };
  }
  self.postMessage(reply);
};
