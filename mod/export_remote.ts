/**
 * Export over the network: when nobody can reach the Prometheus host's data dir, read the window
 * through Prometheus' remote-read API and write the same kind of archive a data-dir export writes
 * (one block holding exactly the window), with the manifest saying where it came from.
 *
 * @module
 */

import type { Manifest } from "./archive/manifest.ts";
import type { Compression } from "./archive/compression.ts";
import type { WrittenArchive } from "./archive/writer.ts";
import type { ContextCapture } from "./context.ts";
import type { LeadIn } from "./leadin.ts";
import { PromcaseError } from "./errors.ts";
import {
  BlockArchive,
  defaultArchiveName,
  type ExportOptions,
  manifestHeader,
  preparePseudonyms,
} from "./export.ts";
import { splitPath } from "./fileio.ts";
import { withTempDirUntilDone } from "./interrupt.ts";
import type { Pseudonymizer } from "./pseudonym.ts";
import { pseudonymizeSeries } from "./pseudonym_series.ts";
import {
  type HttpAuth,
  readRemote,
  type RemoteProgress,
  type RemoteReadStats,
  safeUrl,
} from "./remote/mod.ts";
import type { LabelMatcher } from "./selector.ts";
import { UnknownChunkEncodingError, writeWindowBlock } from "./tsdb/compact.ts";
import { formatDuration, formatTime, type IncidentWindow } from "./window.ts";

/** Options of {@link exportRemote}. */
export interface RemoteExportOptions {
  /** Base URL of the Prometheus server (`http://host:9090`). */
  url: string;
  /** The window to export. */
  window: IncidentWindow;
  /** Data read and shipped before the window, with why (see `leadin.ts`); default none. */
  leadIn?: LeadIn;
  /** Archive path; default {@link defaultArchiveName} in the current directory. */
  output?: string;
  /** Compression of the archive. */
  compression: Compression;
  /** Host name for the manifest and the default name (default: the URL's host). */
  host?: string;
  /** Series to ship; `matchers` (the `--match` selectors) are sent to the server. */
  selection?: ExportOptions["selection"] & { matchers: (readonly LabelMatcher[])[] };
  /** Credentials and TLS settings. */
  auth?: HttpAuth;
  /** Requests in flight at once (default 2). */
  concurrency?: number;
  /** Where the block and the read spill are built (default: the output's directory). */
  tmpDir?: string;
  /** Context documents to store beside the data, keyed by source. */
  context?: Record<string, ContextCapture>;
  /** Progress: what is being done. */
  onStatus?: (text: string) => void;
  /** Write the archive as numbered parts of at most this many bytes. */
  split?: number;
  /** Encrypt the archive with age; the default name then ends in `.age`. */
  encrypt?: ExportOptions["encrypt"];
  /** Pseudonymize label values, drop labels: series, context and manifest, as the rewrite does. */
  pseudonymizer?: Pseudonymizer;
}

/** What {@link exportRemote} did. */
export interface RemoteExportResult {
  /** The archive. */
  archive: WrittenArchive;
  /** Its manifest. */
  manifest: Manifest;
  /** Counters of the remote read. */
  read: RemoteReadStats;
  /** Series and samples written, chunks copied and re-encoded. */
  block: { series: number; samples: number; chunks: { copied: number; recoded: number } };
}

/** Reads the window from a Prometheus server by remote read and archives it as one block. */
export async function exportRemote(options: RemoteExportOptions): Promise<RemoteExportResult> {
  const { window } = options;
  const leadInMs = options.leadIn?.ms ?? 0n;
  if (leadInMs < 0n) throw new RangeError(`the lead-in cannot be negative (${leadInMs} ms)`);
  // What is read and written: the window with its lead-in.
  const from = window.from - leadInMs;
  const pz = options.pseudonymizer;
  // The host name is pseudonymized too: it names the archive and stands in the manifest.
  const urlHost = options.host ?? new URL(options.url).host;
  const host = pz ? pz.mapValue(urlHost) : urlHost;
  const output = options.output ??
    defaultArchiveName(host, window, options.compression, options.encrypt !== undefined);
  return await withTempDirUntilDone(
    options.tmpDir ?? splitPath(output).dir,
    ".promcase-export-",
    async (staging, signal) => {
      if (pz) preparePseudonyms(pz, staging, options.context);
      const source = readRemote({
        url: options.url,
        from,
        to: window.to,
        matchers: options.selection?.matchers,
        concurrency: options.concurrency,
        sliceMs: remoteSliceMs(from, window.to),
        tmpDir: staging,
        auth: options.auth,
        signal,
        onProgress: (p) => options.onStatus?.(_progressText(p)),
      });
      let archive: BlockArchive | null = await BlockArchive.create(output, options);
      try {
        let written;
        try {
          const pseudonymized = await pseudonymizeSeries(pz, [source], staging, {
            keep: options.selection?.keep,
            signal,
            onStatus: options.onStatus,
          });
          written = await writeWindowBlock(staging, pseudonymized.sources, {
            from,
            to: window.to,
            keep: pseudonymized.keep,
            block: archive.blockOptions(),
            signal,
          });
        } catch (err) {
          // A newer Prometheus' encoding: refused as the rewrite refuses it (the staging dir,
          // with the block begun in it, is removed: nothing is written).
          if (err instanceof UnknownChunkEncodingError) {
            throw new PromcaseError(`cannot export: ${err.message}; nothing was written`);
          }
          throw err;
        }
        const block = written.block;
        if (!block) {
          throw new PromcaseError(
            `no samples in the window ${formatTime(window.from)} to ${formatTime(window.to)} ` +
              (leadInMs > 0n ? `(nor in its lead-in of ${formatDuration(leadInMs)}) ` : "") +
              `at ${safeUrl(options.url)}` + (options.selection ? " for the selected series" : ""),
          );
        }
        const read = source.stats();
        options.onStatus?.("writing the archive");
        const summary = {
          series: block.stats.numSeries,
          samples: block.stats.numSamples,
          chunks: { copied: written.chunks.copied, recoded: written.chunks.recoded },
        };
        const manifest = _manifest(options, host, read, summary);
        const done = await archive.finish({ ...written, block }, manifest, options);
        archive = null;
        return { ...done, read, block: summary };
      } finally {
        // The partial archive, unless it was finished.
        await archive?.abort();
      }
    },
  );
}

function _manifest(
  options: RemoteExportOptions,
  host: string,
  read: RemoteReadStats,
  summary: RemoteExportResult["block"],
): Omit<Manifest, "files"> {
  const { window } = options;
  return {
    ...manifestHeader(
      host,
      { kind: "remote", url: safeUrl(options.url) },
      { version: null, running: true },
      window,
      options.compression,
      options.leadIn,
    ),
    blocks: [],
    head: {
      included: false,
      reason: "read over the network by remote read: the server's head is in the block",
      checkpoint: null,
      walSegments: [],
      chunksHead: [],
      wbl: [],
    },
    rewrite: { remoteRead: { ...read }, ...summary },
    warnings: [...read.warnings],
  };
}

/**
 * The time slice of the remote reads: Prometheus' 2h block range, widened for very long windows
 * (`--from 0`) so that they take at most about 500 requests per series batch.
 */
export function remoteSliceMs(from: bigint, to: bigint): bigint {
  const twoHours = 7_200_000n;
  const per = (to - from) / 500n;
  return per <= twoHours ? twoHours : ((per + twoHours - 1n) / twoHours) * twoHours;
}

function _progressText(p: RemoteProgress): string {
  if (p.phase === "discover") return "listing metric names";
  if (p.phase === "read") {
    return `read ${p.requestsDone}/${p.requests} requests (${p.slicesDone}/${p.slices} slices), ` +
      `${p.seriesReceived} series parts`;
  }
  return `writing the block: ${p.seriesDone} series`;
}
