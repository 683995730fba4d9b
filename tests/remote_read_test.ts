// Remote read against a real Prometheus (newest release): backfilled history in blocks plus live
// self-scraping with native histograms in the head. Whatever readRemote puts out must decode to
// exactly the raw samples the server's own query API returns for the window, over streamed chunks
// (frames cut small so series span several frames) and over sampled answers re-encoded here. Then
// the server's limits, an authenticating proxy, and the server stopping in the middle of a read.
import assert from "node:assert/strict";
import { PromcaseError } from "../mod/errors.ts";
import { loadHttpAuth, readRemote, type RemoteReadOptions } from "../mod/remote/mod.ts";
import { decodeChunk } from "../mod/tsdb/chunkenc/mod.ts";
import { STALE_NAN_BITS } from "../mod/tsdb/chunkenc/xor.ts";
import { compareLabels } from "../mod/tsdb/index.ts";
import type { SeriesChunks } from "../mod/tsdb/series.ts";
import { withTempDir } from "./_files.ts";
import {
  backfillOpenMetrics,
  findPrometheus,
  generateOpenMetrics,
  startPrometheus,
  waitForNativeHistogram,
} from "./_prometheus.ts";
import { rawSamples, type RawSeries } from "./_samples.ts";

const HOUR = 3_600_000;
const SAMPLE_LIMIT = 5000;

const _f64 = new Float64Array(1);
const _u64 = new BigUint64Array(_f64.buffer);
const float = (bits: bigint) => ((_u64[0] = bits), _f64[0]);

/** A histogram sample reduced to what the query API shows and the chunks hold alike. */
interface HistPoint {
  t: number;
  count: number;
  sum: number;
}

/** Decoded samples of a series inside `[from, to]`, stale markers left out (as the API does). */
interface Decoded {
  floats: [number, number][];
  histograms: HistPoint[];
  /** Full histogram samples (for comparing two reads of ours), counter-reset hints left out. */
  full: unknown[];
}

function decode(series: SeriesChunks, from: bigint, to: bigint): Decoded {
  const out: Decoded = { floats: [], histograms: [], full: [] };
  for (const c of series.chunks) {
    const d = decodeChunk(c.encoding, c.data);
    if (d.kind === "float") {
      for (let i = 0; i < d.samples.t.length; i++) {
        const t = d.samples.t[i];
        if (t < from || t > to || d.samples.v[i] === STALE_NAN_BITS) continue;
        out.floats.push([Number(t), float(d.samples.v[i])]);
      }
    } else {
      for (const h of d.samples) {
        if (h.t < from || h.t > to || h.sum === STALE_NAN_BITS) continue;
        const count = d.kind === "histogram" ? Number(h.count) : float(h.count);
        out.histograms.push({ t: Number(h.t), count, sum: float(h.sum) });
        const { counterResetHint: _, ...rest } = h;
        out.full.push(rest);
      }
    }
  }
  return out;
}

function keyOf(labels: { name: string; value: string }[]): string {
  return JSON.stringify(labels.map((l) => [l.name, l.value]).sort());
}

async function readAll(opts: RemoteReadOptions) {
  const source = readRemote(opts);
  const series: SeriesChunks[] = [];
  for await (const s of source) series.push(s);
  return { series, stats: source.stats() };
}

/** Asserts that `series` decode to exactly the API's raw samples of the window. */
function assertSameAsApi(
  series: SeriesChunks[],
  api: Map<string, RawSeries>,
  from: bigint,
  to: bigint,
): { floats: number; histograms: number } {
  const ours = new Map<string, Decoded>();
  for (const s of series) {
    const d = decode(s, from, to);
    if (d.floats.length > 0 || d.histograms.length > 0) ours.set(keyOf(s.labels), d);
  }
  assert.deepEqual([...ours.keys()].sort(), [...api.keys()].sort(), "the same series");
  let floats = 0;
  let histograms = 0;
  for (const [key, want] of api) {
    const got = ours.get(key)!;
    const wantFloats = (want.values ?? []).map(([t, v]) => [Math.round(t * 1000), Number(v)]);
    assert.deepEqual(got.floats, wantFloats, `floats of ${key}`);
    const wantHist = (want.histograms ?? []).map(([t, h]) => {
      const x = h as { count: string; sum: string };
      return { t: Math.round(t * 1000), count: Number(x.count), sum: Number(x.sum) };
    });
    assert.deepEqual(got.histograms, wantHist, `histograms of ${key}`);
    floats += wantFloats.length;
    histograms += wantHist.length;
  }
  return { floats, histograms };
}

Deno.test("remote read of a live Prometheus equals its own raw samples", async (t) => {
  const bins = await findPrometheus("newest");
  await withTempDir("promcase-remote-read-", async (work) => {
    const now = Date.now();
    // 7 series every 15 s for 5 hours, ending before the head's range.
    await backfillOpenMetrics(
      bins.promtool,
      generateOpenMetrics({
        start: now - 8 * HOUR,
        end: now - 3 * HOUR,
        stepMs: 15_000,
        series: 4,
      }),
      `${work}/data`,
    );
    await using server = await startPrometheus({
      bin: bins.prometheus,
      dataDir: `${work}/data`,
      selfScrapeInterval: "1s",
      args: [
        "--enable-feature=native-histograms",
        `--storage.remote.read-sample-limit=${SAMPLE_LIMIT}`,
        // Tiny frames: every series with more than a few chunks spans several frames.
        "--storage.remote.read-max-bytes-in-frame=1024",
        // One query at a time on the server: our concurrent requests wait, none fails.
        "--storage.remote.read-concurrent-limit=1",
      ],
    });
    await waitForNativeHistogram(server);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    // Everything up to `to` has been scraped and appended by now.
    const to = BigInt(Date.now() - 2000);
    const from = to - 7n * BigInt(HOUR);
    const base = { url: server.url, from, to };

    let streamed: SeriesChunks[] = [];
    await t.step("streamed chunks, sliced and batched", async () => {
      const progress: { slicesDone: number; requestsDone: number }[] = [];
      const { series, stats } = await readAll({
        ...base,
        batchSize: 40,
        concurrency: 3,
        onProgress: (p) => progress.push(p),
      });
      const api = await rawSamples(server, Number(from) - 1, Number(to));
      const compared = assertSameAsApi(series, api, from, to);
      for (let i = 1; i < series.length; i++) {
        assert.ok(compareLabels(series[i - 1].labels, series[i].labels) < 0, "sorted, each once");
      }
      for (const s of series) {
        for (let i = 1; i < s.chunks.length; i++) {
          assert.ok(s.chunks[i - 1].mint <= s.chunks[i].mint, "chunks in time order");
        }
        // Prometheus re-encodes chunks that cross a query's edges (observed, 3.5.3).
        for (const c of s.chunks) {
          assert.ok(c.mint >= from && c.maxt <= to, "trimmed by the server");
        }
      }
      assert.ok(compared.floats > 7 * 900, `float samples: ${compared.floats}`);
      assert.ok(compared.histograms > 10, `histogram samples: ${compared.histograms}`);
      assert.ok((stats.chunkEncodings["histogram"] ?? 0) > 0, "native histogram chunks");
      // 2h slices aligned to the epoch, like blocks: every range the window touches.
      const range = 2n * BigInt(HOUR);
      assert.equal(stats.slices, Number(to / range - from / range) + 1);
      assert.ok(stats.batches >= 5, `batches: ${stats.batches}`);
      assert.equal(stats.streamedResponses, stats.slices * stats.batches);
      assert.ok(stats.frames > stats.seriesReceived, "series split over several frames");
      assert.equal(stats.sampledResponses, 0);
      const last = progress[progress.length - 1];
      assert.equal(last.slicesDone, stats.slices);
      assert.equal(last.requestsDone, stats.slices * stats.batches);
      streamed = series;
    });

    await t.step("sampled answers re-encoded here decode to the same samples", async () => {
      const { series, stats } = await readAll({ ...base, batchSize: 40, responseType: "samples" });
      assert.equal(stats.streamedResponses, 0);
      assert.ok(stats.sampledResponses > 0);
      const want = new Map(streamed.map((s) => [keyOf(s.labels), decode(s, from, to)]));
      const got = new Map(series.map((s) => [keyOf(s.labels), decode(s, from, to)]));
      assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
      let histograms = 0;
      for (const [key, d] of want) {
        assert.deepEqual(got.get(key), d, key);
        histograms += d.full.length;
      }
      assert.ok(histograms > 10, "native histograms went through the sampled path");
    });

    const backfilled = [[{ name: "__name__", type: "=~" as const, value: "promcase_.+" }]];
    // One slice for the whole window: slices are aligned to multiples of their length since the
    // epoch, so 8h slices split the window at 00:00, 08:00 and 16:00 UTC, and at some hours of the
    // day each part stayed under the limit.
    const oneSlice = 1n << 40n;
    await t.step(
      "the sample limit refuses big sampled reads, streamed reads are not limited",
      async () => {
        await assert.rejects(
          () =>
            readAll({
              ...base,
              matchers: backfilled,
              sliceMs: oneSlice,
              responseType: "samples",
            }),
          (e) => {
            assert.ok(e instanceof PromcaseError, String(e));
            assert.match(
              e.message,
              new RegExp(
                `^remote read http://127\\.0\\.0\\.1:\\d+/api/v1/read for \\S+ to \\S+: ` +
                  `HTTP 400 Bad Request: exceeded sample limit \\(${SAMPLE_LIMIT}\\); ` +
                  `the server's --storage.remote.read-sample-limit is too low for this request$`,
              ),
            );
            return true;
          },
        );
        const { series } = await readAll({
          ...base,
          matchers: backfilled,
          sliceMs: oneSlice,
        });
        assert.equal(series.length, 7);
      },
    );

    await t.step("through a proxy that wants a bearer token", async () => {
      const token = "proxy-T0ken-0042";
      let forwarded = 0;
      const proxy = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
        if (req.headers.get("authorization") !== `Bearer ${token}`) {
          return new Response(`denied for ${req.headers.get("authorization")}`, { status: 401 });
        }
        forwarded++;
        const url = new URL(req.url);
        const res = await fetch(`${server.url}${url.pathname}${url.search}`, {
          method: req.method,
          headers: req.headers,
          body: req.body,
        });
        // fetch has already undone any gzip: pass the body on without that header.
        const headers = new Headers(res.headers);
        headers.delete("content-encoding");
        headers.delete("content-length");
        return new Response(res.body, { status: res.status, headers });
      });
      try {
        const url = `http://127.0.0.1:${(proxy.addr as Deno.NetAddr).port}`;
        await Deno.writeTextFile(`${work}/token`, `${token}\n`);
        const auth = await loadHttpAuth({ bearerTokenFile: `${work}/token` });
        const { series } = await readAll({ ...base, url, auth, matchers: backfilled });
        assert.equal(series.length, 7);
        assert.ok(forwarded > 1);
        await Deno.writeTextFile(`${work}/token`, "wrong-T0ken-0043\n");
        const wrong = await loadHttpAuth({ bearerTokenFile: `${work}/token` });
        await assert.rejects(
          () => readAll({ ...base, url, auth: wrong, matchers: backfilled }),
          (e) => {
            assert.ok(e instanceof PromcaseError);
            assert.match(
              e.message,
              /HTTP 401 Unauthorized: denied for Bearer <secret>; the server wants credentials/,
            );
            assert.ok(!e.message.includes("wrong-T0ken"), e.message);
            return true;
          },
        );
      } finally {
        await proxy.shutdown();
      }
    });

    await t.step("the server stopping mid-read: retried, then connection refused", async () => {
      let stopping: Promise<void> | undefined;
      await assert.rejects(
        () =>
          readAll({
            ...base,
            matchers: backfilled,
            sliceMs: 600_000n, // 43 requests, one at a time
            concurrency: 1,
            retries: 3,
            retryDelayMs: 300,
            onProgress: (p) => {
              if (p.requestsDone === 2) stopping ??= server.stop();
            },
          }),
        (e) => {
          assert.ok(e instanceof PromcaseError, String(e));
          assert.match(
            e.message,
            /^remote read http:\/\/127\.0\.0\.1:\d+\/api\/v1\/read for \S+ to \S+: connection refused \(4 attempts\)$/,
          );
          return true;
        },
      );
      await stopping;
    });
  });
});
