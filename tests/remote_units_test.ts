// Remote read without Prometheus: slicing, selectors, run files and their merge, frame decoding,
// http_config parsing, and local servers that answer like a remote-read endpoint would (whole
// untrimmed chunks, split and unsorted series), or fail in the ways a customer's server or proxy
// does (401/403/404, no answer, an error in the middle of the stream, HTML, TLS, nobody listening).
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { compress, uncompress } from "snappyjs";
import { PromcaseError } from "../mod/errors.ts";
import { exportRemote } from "../mod/export_remote.ts";
import {
  fetchJson,
  formatMatchers,
  loadHttpAuth,
  metricNamesMatcher,
  parseHttpConfig,
  readRemote,
  timeSlices,
  validateSelector,
} from "../mod/remote/mod.ts";
import { readChunkedFrames, StreamReader } from "../mod/remote/frames.ts";
import { ChunkedReadResponseSchema, ReadRequestSchema } from "../mod/remote/proto/remote_pb.ts";
import { combineChunks, mergeRuns, RunWriter } from "../mod/remote/spill.ts";
import { crc32c } from "../mod/tsdb/crc32c.ts";
import { compareLabels, type Label } from "../mod/tsdb/index.ts";
import type { SeriesChunks, TimedChunk } from "../mod/tsdb/series.ts";
import { decodeXor, encodeXor } from "../mod/tsdb/chunkenc/xor.ts";
import { withTempDir } from "./_files.ts";
import { freePort } from "./_prometheus.ts";

const H = 3_600_000n;

Deno.test("timeSlices cuts at multiples of the slice since the epoch, ends inclusive", () => {
  assert.deepEqual(timeSlices(0n, 2n * H - 1n, 2n * H), [[0n, 2n * H - 1n]]);
  assert.deepEqual(timeSlices(H, 5n * H, 2n * H), [
    [H, 2n * H - 1n],
    [2n * H, 4n * H - 1n],
    [4n * H, 5n * H],
  ]);
  assert.deepEqual(timeSlices(10n, 10n, 2n * H), [[10n, 10n]]);
  assert.deepEqual(timeSlices(-H, H, 2n * H), [[-H, -1n], [0n, H]]);
});

Deno.test("selectors: PromQL text, name batches as anchored alternations, empty matchers refused", () => {
  assert.equal(
    formatMatchers([
      { name: "__name__", type: "=", value: "up" },
      { name: "job", type: "=~", value: 'a"b\\.*' },
      { name: "k8s.pod", type: "!=", value: "é" },
    ]),
    '{__name__="up",job=~"a\\"b\\\\.*","k8s.pod"!="é"}',
  );
  assert.deepEqual(metricNamesMatcher(["up"]), { name: "__name__", type: "=", value: "up" });
  assert.deepEqual(metricNamesMatcher(["a:b", "c.d", "x(1)"]), {
    name: "__name__",
    type: "=~",
    value: "a:b|c\\.d|x\\(1\\)",
  });
  assert.match(validateSelector([{ name: "job", type: "=~", value: ".*" }]) ?? "", /empty/);
  assert.equal(validateSelector([{ name: "job", type: "=~", value: ".+" }]), undefined);
});

function chunk(t0: number, n: number, step = 1000, value = 1): TimedChunk {
  const t = Array.from({ length: n }, (_, i) => BigInt(t0 + i * step));
  const f = new Float64Array(n).map((_, i) => value + i);
  const v = [...new BigUint64Array(f.buffer)];
  return { mint: t[0], maxt: t[n - 1], encoding: 1, data: encodeXor(t, v) };
}

const L = (...pairs: string[]): Label[] => {
  const out: Label[] = [];
  for (let i = 0; i < pairs.length; i += 2) out.push({ name: pairs[i], value: pairs[i + 1] });
  return out;
};

Deno.test("run files: out-of-order appends refused; merge sorts, combines and drops duplicates", async () => {
  await withTempDir("promcase-remote-runs-", async (dir) => {
    const a = L("__name__", "a", "x", "1");
    const b = L("__name__", "a", "x", "2");
    const upper = L("Zone", "eu", "__name__", "z"); // sorts before every __name__-first set
    const c1 = chunk(0, 10);
    const c2 = chunk(20_000, 10);
    const w1 = await RunWriter.create(`${dir}/r1`);
    await w1.append(a, [c2]);
    await w1.append(a, [c1]); // a series continued in the next frame
    await w1.append(b, [c1]);
    assert.equal(w1.accepts(a), false);
    await assert.rejects(() => w1.append(a, [c1]), RangeError);
    await w1.close();
    const w2 = await RunWriter.create(`${dir}/r2`);
    await w2.append(upper, [c1]);
    await w2.append(a, [c1, c2]); // the same chunks again, from an overlapping request
    await w2.close();
    const stats = { duplicateChunks: 0 };
    const out: SeriesChunks[] = [];
    for await (const s of mergeRuns([`${dir}/r1`, `${dir}/r2`], stats)) out.push(s);
    assert.deepEqual(out.map((s) => s.labels), [upper, a, b]);
    assert.deepEqual(out[1].chunks.map((c) => c.mint), [0n, 20_000n]);
    assert.deepEqual(out[1].chunks[1].data, c2.data);
    assert.equal(stats.duplicateChunks, 2);
    // Different chunks over the same range are both kept (overlaps are for the block writer).
    const other = chunk(0, 10, 1000, 5);
    assert.equal(combineChunks([c1, other, c1]).length, 2);
  });
});

function frame(
  series: { labels: Label[]; chunks: TimedChunk[] }[],
  queryIndex = 0n,
): Uint8Array<ArrayBuffer> {
  const msg = create(ChunkedReadResponseSchema, {
    chunkedSeries: series.map((s) => ({
      labels: s.labels,
      chunks: s.chunks.map((c) => ({
        minTimeMs: c.mint,
        maxTimeMs: c.maxt,
        type: c.encoding,
        data: c.data,
      })),
    })),
    queryIndex,
  });
  const data = toBinary(ChunkedReadResponseSchema, msg);
  const len: number[] = [];
  for (let x = data.length;; x >>>= 7) {
    if (x < 0x80) {
      len.push(x);
      break;
    }
    len.push((x & 0x7f) | 0x80);
  }
  const out = new Uint8Array(len.length + 4 + data.length);
  out.set(len);
  new DataView(out.buffer).setUint32(len.length, crc32c(data));
  out.set(data, len.length + 4);
  return out;
}

function streamOf(...parts: Uint8Array<ArrayBuffer>[]): ReadableStream<Uint8Array> {
  // One byte at a time for the first part: frames must survive arbitrary network splits.
  const pieces = parts.length > 0 ? [...parts[0]].map((b) => new Uint8Array([b])) : [];
  pieces.push(...parts.slice(1));
  return new ReadableStream({
    pull(ctl) {
      const next = pieces.shift();
      if (next) ctl.enqueue(next);
      else ctl.close();
    },
  });
}

Deno.test("streamed frames: split anywhere, CRC checked, the server's mid-stream error read", async () => {
  const s = { labels: L("__name__", "up"), chunks: [chunk(0, 3)] };
  const ok = frame([s]);
  const got = [];
  for await (const m of readChunkedFrames(new StreamReader(streamOf(ok, frame([s]))))) got.push(m);
  assert.equal(got.length, 2);
  assert.deepEqual(got[1].chunkedSeries[0].chunks[0].data, s.chunks[0].data);

  const bad = ok.slice();
  bad[bad.length - 1] ^= 1;
  await assert.rejects(async () => {
    for await (const _ of readChunkedFrames(new StreamReader(streamOf(bad)))) { /* drain */ }
  }, /corrupt streamed response: CRC32C mismatch/);

  const text = new TextEncoder().encode("expanding series: context deadline exceeded\n");
  await assert.rejects(async () => {
    for await (const _ of readChunkedFrames(new StreamReader(streamOf(ok, text)))) { /* drain */ }
  }, /failed in the middle of the response: expanding series: context deadline exceeded$/);
});

Deno.test("http_config: authorization, basic auth, headers, TLS files relative to the file", async () => {
  await withTempDir("promcase-remote-cfg-", async (dir) => {
    await Deno.writeTextFile(`${dir}/token`, "tok-S3cret-123\n");
    await Deno.writeTextFile(`${dir}/pass`, "pw-S3cret-456\n");
    await Deno.writeTextFile(`${dir}/key`, "hdr-S3cret-789");
    await Deno.writeTextFile(`${dir}/ca.pem`, "-----BEGIN CERTIFICATE-----\nx\n");
    const a = await parseHttpConfig(
      [
        "authorization:",
        "  type: Bearer",
        "  credentials_file: token",
        "tls_config:",
        "  ca_file: ca.pem",
        "  insecure_skip_verify: false",
        "http_headers:",
        "  X-Scope-OrgID:",
        "    values: [tenant-1]",
        "  X-Api-Key:",
        "    files: [key]",
        "follow_redirects: true",
      ].join("\n"),
      dir,
    );
    assert.equal(a.headers["Authorization"], "Bearer tok-S3cret-123");
    assert.equal(a.headers["X-Scope-OrgID"], "tenant-1");
    assert.equal(a.headers["X-Api-Key"], "hdr-S3cret-789");
    assert.equal(a.caCerts.length, 1);
    assert.deepEqual(a.secrets.sort(), ["hdr-S3cret-789", "tok-S3cret-123"]);
    assert.ok(!/S3cret/.test(a.description), a.description);

    const b = await loadHttpAuth({ basicAuthUser: "alice", basicAuthPasswordFile: `${dir}/pass` });
    assert.equal(b.headers["Authorization"], `Basic ${btoa("alice:pw-S3cret-456")}`);
    assert.equal(b.description, "basic auth as alice");

    await Deno.writeTextFile(`${dir}/cfg.yml`, "bearer_token_file: token\n");
    const c = await loadHttpAuth({ httpConfigFile: `${dir}/cfg.yml`, headers: ["X-A: 1"] });
    assert.equal(c.headers["Authorization"], "Bearer tok-S3cret-123");

    const refused: [string, RegExp][] = [
      ["oauth2:\n  client_id: x\n", /oauth2 is not supported/],
      ["tls_config:\n  server_name: x\n", /server_name is not supported/],
      ["bearer_tokn: x\n", /unknown key "bearer_tokn"/],
      ["bearer_token: a\nbasic_auth:\n  username: u\n", /one way to authenticate/],
      ["authorization: [\n", /not valid YAML/],
    ];
    for (const [yaml, want] of refused) {
      await Deno.writeTextFile(`${dir}/bad.yml`, yaml);
      await assert.rejects(() => loadHttpAuth({ httpConfigFile: `${dir}/bad.yml` }), (e) => {
        assert.ok(e instanceof PromcaseError && e.exitCode === 2, String(e));
        assert.match(e.message, want);
        assert.match(e.message, /^--http-config-file /);
        return true;
      });
    }
    await assert.rejects(
      () => loadHttpAuth({ httpConfigFile: `${dir}/cfg.yml`, bearerTokenFile: `${dir}/token` }),
      /one way to authenticate/,
    );
    await assert.rejects(() => loadHttpAuth({ headers: ["Content-Type: x"] }), /set by promcase/);
  });
});

/** A series as the fake server keeps it. */
interface FakeSeries {
  labels: Label[];
  chunks: TimedChunk[];
}

/** A local remote-read endpoint answering like a server that does not trim chunks. */
interface FakeServer extends AsyncDisposable {
  url: string;
  requests: { start: bigint; end: bigint; matchers: string[] }[];
}

function fakeRemoteRead(
  series: FakeSeries[],
  options: {
    handler?: (req: Request) => Response | undefined | Promise<Response | undefined>;
    tls?: { cert: string; key: string };
    splitFrames?: boolean;
    unsorted?: boolean;
  } = {},
): FakeServer {
  const requests: FakeServer["requests"] = [];
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    ...(options.tls ?? {}),
  }, async (req) => {
    const custom = await options.handler?.(req);
    if (custom) return custom;
    const url = new URL(req.url);
    if (url.pathname === "/api/v1/label/__name__/values") {
      const names = [
        ...new Set(series.map((s) => s.labels.find((l) => l.name === "__name__")!.value)),
      ];
      return Response.json({ status: "success", data: names });
    }
    const body = new Uint8Array(await req.arrayBuffer());
    const rr = fromBinary(ReadRequestSchema, uncompress(body));
    const q = rr.queries[0];
    requests.push({
      start: q.startTimestampMs,
      end: q.endTimestampMs,
      matchers: q.matchers.map((m) => `${m.name}:${m.type}:${m.value}`),
    });
    const names = q.matchers.filter((m) => m.name === "__name__");
    const pick = series.filter((s) =>
      names.every((m) => {
        const v = s.labels.find((l) => l.name === "__name__")!.value;
        return m.type === 0 ? v === m.value : new RegExp(`^(?:${m.value})$`).test(v);
      })
    );
    const ordered = [...pick].sort((a, b) => compareLabels(a.labels, b.labels));
    if (options.unsorted) ordered.reverse();
    const parts: Uint8Array[] = [];
    for (const s of ordered) {
      const chunks = s.chunks.filter((c) =>
        c.maxt >= q.startTimestampMs && c.mint <= q.endTimestampMs
      );
      if (chunks.length === 0) continue;
      if (options.splitFrames) {
        for (const c of chunks) parts.push(frame([{ labels: s.labels, chunks: [c] }]));
      } else {
        parts.push(frame([{ labels: s.labels, chunks }]));
      }
    }
    return new Response(new Blob(parts as BlobPart[]).stream(), {
      headers: {
        "Content-Type": "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse",
      },
    });
  });
  const port = (server.addr as Deno.NetAddr).port;
  return {
    url: `${options.tls ? "https" : "http"}://${options.tls ? "localhost" : "127.0.0.1"}:${port}`,
    requests,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

async function collect(source: AsyncIterable<SeriesChunks>): Promise<SeriesChunks[]> {
  const out: SeriesChunks[] = [];
  for await (const s of source) out.push(s);
  return out;
}

function fixture(): FakeSeries[] {
  // Chunks of 120 samples at 1 minute: each spans two hours and crosses slice boundaries.
  const series: FakeSeries[] = [];
  for (const name of ["b_metric", "a_metric", "c:metric"]) {
    for (let i = 0; i < 3; i++) {
      const chunks = [0, 1, 2, 3].map((k) => chunk(k * 7_200_000 + 1_800_000, 120, 60_000, k));
      series.push({ labels: L("__name__", name, "i", String(i)), chunks });
    }
  }
  series.push({ labels: L("Upper", "x", "__name__", "c:metric"), chunks: [chunk(0, 5)] });
  return series;
}

Deno.test("readRemote merges untrimmed chunks of every slice and batch into sorted series", async () => {
  for (const mode of [{}, { splitFrames: true }, { unsorted: true }]) {
    const series = fixture();
    await using fake = fakeRemoteRead(series, mode);
    const progress: number[] = [];
    const source = readRemote({
      url: fake.url,
      from: 0n,
      to: 8n * H - 1n,
      sliceMs: 2n * H,
      batchSize: 2,
      concurrency: 3,
      onProgress: (p) => progress.push(p.requestsDone),
    });
    const got = await collect(source);
    const want = [...series].sort((a, b) => compareLabels(a.labels, b.labels));
    assert.deepEqual(got.map((s) => s.labels), want.map((s) => s.labels), JSON.stringify(mode));
    for (const [i, s] of got.entries()) {
      assert.deepEqual(s.chunks, want[i].chunks, `chunks of ${JSON.stringify(s.labels)}`);
    }
    const stats = source.stats();
    assert.equal(stats.slices, 4);
    assert.equal(stats.batches, 2); // 3 names in batches of 2
    assert.equal(fake.requests.length, 8);
    assert.ok(stats.duplicateChunks > 0, "a chunk crossing a slice boundary came twice");
    assert.equal(stats.series, 10);
    assert.equal(Math.max(...progress), 8);
    assert.ok(
      fake.requests.every((r) => r.matchers.some((m) => m.startsWith("__name__:"))),
      "every request selects a batch of names",
    );
  }
});

Deno.test("readRemote: a window without data is a one-line error, unless allowed", async () => {
  await using fake = fakeRemoteRead([], {
    handler: (req) =>
      new URL(req.url).pathname.endsWith("/values")
        ? Response.json({ status: "success", data: [] })
        : undefined,
  });
  await assert.rejects(
    () => collect(readRemote({ url: fake.url, from: 0n, to: H })),
    /^PromcaseError: no series with data from 1970-01-01T00:00:00Z to 1970-01-01T01:00:00Z at http:\/\/127\.0\.0\.1:\d+$/,
  );
  assert.deepEqual(
    await collect(readRemote({ url: fake.url, from: 0n, to: H, allowEmpty: true })),
    [],
  );
});

Deno.test("readRemote explains 401, 403, 404, HTML, a silent server and nobody listening", async () => {
  const token = "tok-N3verShown-42";
  await withTempDir("promcase-remote-auth-", async (dir) => {
    await Deno.writeTextFile(`${dir}/token`, token);
    const auth = await loadHttpAuth({ bearerTokenFile: `${dir}/token` });
    const cases: [number | "html" | "hang", RegExp][] = [
      [401, /HTTP 401 Unauthorized: bad token Bearer <secret>; the server wants credentials/],
      [403, /HTTP 403 Forbidden: bad token Bearer <secret>; the credentials are not allowed/],
      [404, /HTTP 404 Not Found: bad token Bearer <secret>; the endpoint is not served here/],
      [
        "html",
        /the answer is not remote-read data \(Content-Type "text\/html.*is this a Prometheus\?/,
      ],
      ["hang", /the server sent nothing for 0\.2 s \(2 attempts\)$/],
    ];
    for (const [kind, want] of cases) {
      let release = () => {};
      const released = new Promise<void>((resolve) => (release = resolve));
      await using fake = fakeRemoteRead([], {
        handler: async (req) => {
          if (kind === "hang") {
            await released; // answers only once the client has given up
            return new Response("late");
          }
          if (kind === "html") {
            return new Response("<html>login</html>", { headers: { "Content-Type": "text/html" } });
          }
          // A proxy that echoes the credentials: they must not reach the message.
          return new Response(`bad token ${req.headers.get("authorization")}`, { status: kind });
        },
      });
      await assert.rejects(
        () =>
          collect(readRemote({
            url: fake.url,
            from: 0n,
            to: H,
            auth,
            timeoutMs: 200,
            retries: 1,
            retryDelayMs: 10,
            noDiscovery: true,
          })),
        (e) => {
          assert.ok(e instanceof PromcaseError, String(e));
          assert.ok(!e.message.includes(token), e.message);
          assert.ok(!e.message.includes("\n"), e.message);
          assert.match(e.message, /^remote read http:\/\/127\.0\.0\.1:\d+\/api\/v1\/read for /);
          assert.match(e.message, want);
          return true;
        },
        String(kind),
      );
      release();
    }
  });
  const port = freePort();
  await assert.rejects(
    () =>
      collect(readRemote({
        url: `http://127.0.0.1:${port}`,
        from: 0n,
        to: H,
        retries: 2,
        retryDelayMs: 10,
      })),
    /^PromcaseError: listing metric names at http:\/\/127\.0\.0\.1:\d+\/api\/v1\/label\/__name__\/values: connection refused \(3 attempts\)$/,
  );
  await assert.rejects(
    () => fetchJson(`http://127.0.0.1:${port}`, "/api/v1/status/buildinfo"),
    /^PromcaseError: GET http:\/\/127\.0\.0\.1:\d+\/api\/v1\/status\/buildinfo: connection refused$/,
  );
});

Deno.test("readRemote falls back to plain selectors when the name listing is blocked", async () => {
  const series = fixture();
  await using fake = fakeRemoteRead(series, {
    handler: (req) =>
      new URL(req.url).pathname.endsWith("/values")
        ? new Response("forbidden by proxy", { status: 403 })
        : undefined,
  });
  const source = readRemote({
    url: fake.url,
    from: 0n,
    to: 2n * H - 1n,
    matchers: [[{ name: "__name__", type: "=", value: "a_metric" }]],
  });
  const got = await collect(source);
  assert.equal(got.length, 3);
  assert.match(source.stats().warnings[0], /could not list metric names \(HTTP 403 Forbidden/);
  assert.deepEqual(fake.requests[0].matchers, ["__name__:0:a_metric"]);
});

Deno.test("TLS: untrusted certificate explained; CA file and skipping verification work", async () => {
  await withTempDir("promcase-remote-tls-", async (dir) => {
    const run = async (args: string[]) => {
      const out = await new Deno.Command("openssl", { args, cwd: dir, stderr: "piped" }).output();
      if (!out.success) {
        throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
      }
    };
    await run([
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      "/CN=promcase test CA",
    ]);
    await run([
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "key.pem",
      "-out",
      "leaf.csr",
      "-subj",
      "/CN=localhost",
    ]);
    await Deno.writeTextFile(
      `${dir}/ext.cnf`,
      "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    );
    await run([
      "x509",
      "-req",
      "-in",
      "leaf.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "cert.pem",
      "-days",
      "2",
      "-extfile",
      "ext.cnf",
    ]);
    const tls = {
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
    const series = fixture();
    await using fake = fakeRemoteRead(series, { tls });
    const read = (auth?: Awaited<ReturnType<typeof loadHttpAuth>>) =>
      collect(readRemote({ url: fake.url, from: 0n, to: 2n * H - 1n, auth, retries: 0 }));
    await assert.rejects(() => read(), /TLS certificate not accepted .*tls_config\.ca_file/);
    assert.equal((await read(await loadHttpAuth({ caFile: `${dir}/ca.pem` }))).length, 10);
    assert.equal((await read(await loadHttpAuth({ insecureSkipVerify: true }))).length, 10);
    const body = await fetchJson(
      fake.url,
      "/api/v1/label/__name__/values",
      await loadHttpAuth({ insecureSkipVerify: true }),
    ) as { data: string[] };
    assert.deepEqual(body.data.sort(), ["a_metric", "b_metric", "c:metric"]);
  });
});

Deno.test("decoded fixture chunks are what the fake server was given", () => {
  // Guards the fixture itself: the XOR encoder round-trips the samples used above.
  const c = chunk(5, 3, 10, 2);
  assert.deepEqual([...decodeXor(c.data).t], [5n, 15n, 25n]);
});

Deno.test("ReadRequest on the wire: snappy block, both response types, hints with the range", async () => {
  let seen: Uint8Array | undefined;
  await using fake = fakeRemoteRead([], {
    handler: async (req) => {
      if (new URL(req.url).pathname !== "/api/v1/read") return undefined;
      assert.equal(req.headers.get("content-encoding"), "snappy");
      assert.equal(req.headers.get("x-prometheus-remote-read-version"), "0.1.0");
      seen = new Uint8Array(await req.arrayBuffer());
      return new Response(compress(new Uint8Array(0)), {
        headers: { "Content-Type": "application/x-protobuf" },
      });
    },
  });
  await collect(
    readRemote({ url: fake.url, from: 5n, to: 9n, noDiscovery: true, allowEmpty: true }),
  );
  const rr = fromBinary(ReadRequestSchema, uncompress(seen!));
  assert.deepEqual(rr.acceptedResponseTypes, [1, 0]);
  assert.equal(rr.queries[0].startTimestampMs, 5n);
  assert.equal(rr.queries[0].endTimestampMs, 9n);
  assert.equal(rr.queries[0].hints?.startMs, 5n);
  assert.equal(rr.queries[0].hints?.endMs, 9n);
  assert.deepEqual(rr.queries[0].matchers.map((m) => [m.name, m.type, m.value]), [[
    "__name__",
    2,
    ".+",
  ]]);
});

Deno.test("readRemote: many runs merge in several passes; temp files go however it ends", async () => {
  await withTempDir("promcase-remote-tmp-", async (tmp) => {
    const series = fixture();
    await using fake = fakeRemoteRead(series);
    const opts = { url: fake.url, from: 0n, to: 8n * H - 1n, tmpDir: tmp, batchSize: 2 };
    // 5-minute slices: 96 slices × 2 batches, more runs than one merge opens at once.
    const many = readRemote({ ...opts, sliceMs: 300_000n, concurrency: 4 });
    const got = await collect(many);
    const want = [...series].sort((a, b) => compareLabels(a.labels, b.labels));
    assert.deepEqual(got, want);
    assert.ok(many.stats().runs > 64, `runs: ${many.stats().runs}`);
    assert.equal(many.stats().mergePasses, 2);
    assert.deepEqual([...Deno.readDirSync(tmp)], [], "nothing left after a full read");

    for await (const _ of readRemote(opts)) break;
    assert.deepEqual([...Deno.readDirSync(tmp)], [], "nothing left after an early break");

    const ctl = new AbortController();
    const aborted = readRemote({
      ...opts,
      sliceMs: 300_000n,
      signal: ctl.signal,
      onProgress: (p) => p.requestsDone === 3 && ctl.abort(new Error("user pressed Ctrl-C")),
    });
    await assert.rejects(() => collect(aborted), /user pressed Ctrl-C/);
    assert.deepEqual([...Deno.readDirSync(tmp)], [], "nothing left after an abort");
  });
});

Deno.test("export --url refuses a chunk encoding it does not know in one line, writing nothing", async () => {
  // No Prometheus release sends an unknown encoding: a newer one might, so this server does.
  const odd: TimedChunk = { ...chunk(1_800_000, 10, 60_000), encoding: 9 };
  await using fake = fakeRemoteRead([
    { labels: L("__name__", "a_metric"), chunks: [chunk(1_800_000, 10, 60_000)] },
    { labels: L("__name__", "b_metric", "i", "1"), chunks: [odd] },
  ]);
  await withTempDir("promcase-remote-odd-", async (dir) => {
    const output = `${dir}/out/a.tar.gz`;
    await Deno.mkdir(`${dir}/out`);
    const error = await exportRemote({
      url: fake.url,
      window: { from: 0n, to: 7_200_000n, at: 7_200_000n },
      compression: "gzip",
      output,
    }).then(() => null, (e) => e);
    assert.ok(error instanceof PromcaseError, String(error));
    assert.match(error.message, /encoding 9/);
    assert.match(error.message, /b_metric/);
    assert.match(error.message, /nothing was written/);
    assert.ok(!error.message.includes("\n"), error.message);
    assert.deepEqual([...Deno.readDirSync(`${dir}/out`)], []);
  });
});
