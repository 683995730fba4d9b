// Compression on every core: what the archive writer is given is copied into a few reused buffers,
// cut into frames (gzip members, zstd frames) and compressed by workers and the calling thread,
// and written back in frame order. Turned down to buffers and frames of a few bytes and the
// shallowest queues, every buffer is refilled and recycled, every lane gets frames and every
// back-pressure wait runs; every byte must come back, in order, through promcase's reader and zlib.
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { compressInto, type Compression, decompress } from "../mod/archive/compression.ts";
import {
  COMPRESSOR_DEFAULTS,
  type CompressorOptions,
  FrameCompressor,
} from "../mod/archive/compressor.ts";
import { ZlibStreamCompressor } from "../mod/archive/zlib_stream.ts";
import { ZstdFrameWalker } from "../mod/archive/zstd_frames.ts";
import { ArchiveWriter } from "../mod/archive/writer.ts";
import { checkArchive } from "../mod/archive/reader.ts";
import { readTar } from "../mod/archive/tar.ts";
import { readPieces } from "../mod/fileio.ts";
import { testManifest } from "./archive_fixtures.ts";
import { withTempDir } from "./_files.ts";
import { seededRandom } from "./_random.ts";
import { concatBytes } from "../mod/tsdb/encoding.ts";

const COMPRESSIONS = ["gzip", "zstd"] as const;

/** Bytes that compress somewhat: runs, counters and noise, as TSDB files mix them. */
function testBytes(length: number, seed: number): Uint8Array {
  const random = seededRandom(seed);
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length;) {
    const kind = random();
    const run = 1 + Math.floor(random() * 200);
    for (let j = 0; j < run && i < length; j++, i++) {
      bytes[i] = kind < 0.3 ? 7 : kind < 0.6 ? (i * 31) & 0xff : Math.floor(random() * 256);
    }
  }
  return bytes;
}

/** Incompressible bytes, the same on every run. */
function noise(length: number, seed: number): Uint8Array {
  const random = seededRandom(seed);
  return new Uint8Array(length).map(() => Math.floor(random() * 256));
}

/** The zstd frames of `compressed`, which must end with a complete one. */
function zstdFrames(compressed: Uint8Array): Uint8Array[] {
  const walker = new ZstdFrameWalker();
  const frames: Uint8Array[] = [];
  for (let at = 0; at < compressed.length;) {
    const length = walker.consume(compressed.subarray(at));
    frames.push(compressed.subarray(at, at + length));
    at += length;
  }
  assert.ok(walker.atBoundary, "the last zstd frame is cut short");
  return frames;
}

/**
 * Decompresses with promcase's reader and independently (gzip -d; zlib frame by frame, as zlib
 * stops after a first frame and accepts one cut short), and checks that both agree.
 */
async function inflate(compression: Compression, compressed: Uint8Array): Promise<Uint8Array> {
  const pieces: Uint8Array[] = [];
  for await (
    const piece of decompress((async function* () {
      yield compressed;
    })())
  ) pieces.push(piece.slice());
  const ours = concatBytes(pieces);
  let theirs: Uint8Array;
  if (compression === "gzip") {
    const gzip = new Deno.Command("gzip", { args: ["-dc"], stdin: "piped", stdout: "piped" })
      .spawn();
    const writer = gzip.stdin.getWriter();
    const [output] = await Promise.all([
      gzip.output(),
      writer.write(compressed).then(() => writer.close()),
    ]);
    assert.ok(output.success, "gzip -d failed");
    theirs = output.stdout;
  } else {
    theirs = concatBytes(
      zstdFrames(compressed).map((f) => new Uint8Array(zlib.zstdDecompressSync(f))),
    );
  }
  assert.deepEqual(ours, theirs);
  return ours;
}

/**
 * Writes `data` in random pieces (some empty) through a compressor with `options` into a sink that
 * now and then yields to the event loop, and returns what the sink received.
 */
async function compress(
  compression: Compression,
  data: Uint8Array,
  options: CompressorOptions,
  seed: number,
): Promise<Uint8Array> {
  const random = seededRandom(seed);
  const received: Uint8Array[] = [];
  const sink = compressInto(
    async (chunk) => {
      if (random() < 0.05) await new Promise((resolve) => setTimeout(resolve, 0));
      received.push(chunk.slice());
    },
    compression,
    options,
  );
  for (let at = 0; at < data.length;) {
    const n = Math.floor(random() * 300);
    // The compressor may keep nothing of the chunk after the write: overwrite it at once.
    const chunk = data.slice(at, at + n);
    await sink.write(chunk);
    chunk.fill(0xee);
    at += n;
  }
  await sink.end();
  return concatBytes(received);
}

Deno.test("compressor: every byte comes back in frame order through the smallest buffers and queues", async () => {
  const configs: (CompressorOptions & { length: number })[] = [
    { bufferBytes: 1, queueDepth: 2, frameBytes: 5, workers: 1, workerBacklog: 1, length: 3000 },
    {
      bufferBytes: 7,
      queueDepth: 2,
      frameBytes: 100,
      workers: 2,
      workerBacklog: 1,
      length: 40_000,
    },
    { bufferBytes: 100, queueDepth: 3, frameBytes: 1000, workers: 0, length: 100_000 },
    { bufferBytes: 4096, queueDepth: 2, frameBytes: 10_000, workers: 1, length: 300_000 },
    { bufferBytes: 4096, queueDepth: 2, length: 300_000 },
  ];
  for (const compression of COMPRESSIONS) {
    for (const { length, ...options } of configs) {
      const data = testBytes(length, options.bufferBytes!);
      const compressed = await compress(compression, data, options, length);
      const label = `${compression} ${JSON.stringify(options)}`;
      assert.deepEqual(await inflate(compression, compressed), data, label);
      if (compression === "zstd") {
        const frames = Math.ceil(length / (options.frameBytes ?? COMPRESSOR_DEFAULTS.frameBytes));
        assert.equal(zstdFrames(compressed).length, frames, label);
      }
    }
  }
});

Deno.test("compressor: the level is applied, and an empty stream is a valid empty one", async () => {
  const data = testBytes(200_000, 1);
  for (const compression of COMPRESSIONS) {
    const fast = await compress(compression, data, { level: 1 }, 2);
    const best = await compress(compression, data, { level: 9 }, 2);
    assert.ok(best.length < fast.length, `${compression}: ${best.length} < ${fast.length}`);
    assert.deepEqual(await inflate(compression, best), data);
    const empty = await compress(compression, new Uint8Array(0), {}, 3);
    assert.ok(empty.length > 0);
    assert.deepEqual(await inflate(compression, empty), new Uint8Array(0));
  }
});

Deno.test("compressor: the calling thread takes the frames while the worker starts, the worker then", async () => {
  const received: Uint8Array[] = [];
  const options = { bufferBytes: 4096, frameBytes: 64 * 1024, workers: 1 };
  const c = new FrameCompressor(
    (chunk) => {
      received.push(chunk.slice());
      return Promise.resolve();
    },
    "zstd",
    options,
  );
  const data = noise(40 * 64 * 1024, 3);
  // Three frames at once: the worker (started by the second) cannot have loaded its modules.
  await c.write(data.subarray(0, 3 * 64 * 1024));
  assert.deepEqual(c.frames, { workers: 0, inline: 3 });
  for (let waited = 0; c.readyWorkers === 0; waited += 10) {
    assert.ok(waited < 20_000, "the worker never started");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await c.write(data.subarray(3 * 64 * 1024));
  await c.end();
  assert.ok(c.frames.workers > 0, JSON.stringify(c.frames));
  assert.equal(c.frames.workers + c.frames.inline, 40);
  assert.deepEqual(await inflate("zstd", concatBytes(received)), data);
});

Deno.test("compressor: in the background only the worker takes frames, then the calling thread helps", async () => {
  for (const compression of COMPRESSIONS) {
    const received: Uint8Array[] = [];
    const c = new FrameCompressor(
      (chunk) => {
        received.push(chunk.slice());
        return Promise.resolve();
      },
      compression,
      { bufferBytes: 1024, queueDepth: 2, frameBytes: 8 * 1024, workers: 1, workerBacklog: 1 },
    );
    const data = noise(60 * 8 * 1024, 5);
    const half = 30 * 8 * 1024;
    c.background = true;
    // Written at once: the worker has a frame of backlog and loads its modules meanwhile, so
    // every frame but the worker's waits.
    await c.write(data.subarray(0, half));
    assert.deepEqual(c.frames, { workers: 30, inline: 0 }, compression);
    c.background = false;
    await c.write(data.subarray(half));
    await c.end();
    assert.ok(c.frames.inline > 0, `${compression}: ${JSON.stringify(c.frames)}`);
    assert.equal(c.frames.workers + c.frames.inline, 60);
    assert.deepEqual(await inflate(compression, concatBytes(received)), data, compression);
  }
  // Without a worker the calling thread compresses all the same.
  const data = testBytes(50_000, 6);
  const received: Uint8Array[] = [];
  const c = new FrameCompressor(
    (chunk) => {
      received.push(chunk.slice());
      return Promise.resolve();
    },
    "zstd",
    { frameBytes: 4096, workers: 0 },
  );
  c.background = true;
  await c.write(data);
  await c.end();
  assert.deepEqual(c.frames, { workers: 0, inline: 13 });
  assert.deepEqual(await inflate("zstd", concatBytes(received)), data);
});

Deno.test("compressor: a sink that does not finish stops the writes after a bounded amount", async () => {
  for (const compression of COMPRESSIONS) {
    const options = {
      bufferBytes: 4096,
      queueDepth: 2,
      frameBytes: 64 * 1024,
      workers: 1,
      workerBacklog: 2,
    };
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const received: Uint8Array[] = [];
    const sink = compressInto(
      async (chunk) => {
        await released;
        received.push(chunk.slice());
      },
      compression,
      options,
    );
    // Incompressible bytes, so that output flows at once and the output buffers run out.
    const data = noise(4 << 20, 1);
    let accepted = 0;
    let stalled = false;
    while (accepted < data.length) {
      const write = sink.write(data.subarray(accepted, accepted + 1024));
      const timeout = new Promise<"stalled">((resolve) => setTimeout(resolve, 300, "stalled"));
      const result = await Promise.race([write.then(() => "written" as const), timeout]);
      if (result === "stalled") {
        stalled = true;
        release();
        await write;
      }
      accepted += 1024;
      if (stalled) break;
    }
    assert.ok(stalled, `${compression}: the writes never waited`);
    // The input buffers (two frames for the worker, two more), each lane's output buffers (two and
    // a frame's worth), what each compressor holds of its frame: far below the 4 MiB on offer.
    const frame = options.frameBytes / options.bufferBytes;
    const bound = options.bufferBytes * ((2 + 2 * frame) + 2 * (2 + frame)) +
      2 * options.frameBytes;
    assert.ok(accepted <= bound, `${compression}: ${accepted} bytes accepted, at most ${bound}`);
    for (; accepted < data.length; accepted += 1024) {
      await sink.write(data.subarray(accepted, accepted + 1024));
    }
    await sink.end();
    assert.deepEqual(await inflate(compression, concatBytes(received)), data);
  }
});

Deno.test("compressor: a failing sink fails the writer with its error, and destroy stops it", async () => {
  for (const compression of COMPRESSIONS) {
    const failure = new Error("disk full (test)");
    const sink = compressInto(() => Promise.reject(failure), compression, {
      bufferBytes: 64,
      queueDepth: 2,
    });
    const data = noise(64 * 1024, 2);
    await assert.rejects(
      (async () => {
        for (let at = 0; at < data.length; at += 100) await sink.write(data.subarray(at, at + 100));
        await sink.end();
      })(),
      (error) => error === failure,
    );

    const stopped = compressInto(() => Promise.resolve(), compression, { bufferBytes: 64 });
    await stopped.write(data.subarray(0, 1000));
    stopped.destroy();
    await assert.rejects(stopped.write(data.subarray(0, 10)), /compression stopped/);
    await assert.rejects(stopped.end(), /compression stopped/);
  }
});

Deno.test("compressor: rejects queues and buffers too small to work", () => {
  const sink = () => Promise.resolve();
  assert.throws(() => compressInto(sink, "gzip", { queueDepth: 1 }), /queueDepth/);
  assert.throws(() => compressInto(sink, "zstd", { bufferBytes: 0 }), /bufferBytes/);
  assert.throws(() => compressInto(sink, "zstd", { workers: -1 }), /workers/);
  assert.throws(() => compressInto(sink, "zstd", { frameBytes: 0.5 }), /frameBytes/);
});

Deno.test("zlib stream: one-byte inputs into one-byte outputs give the whole stream", async () => {
  const data = testBytes(20_000, 9);
  for (const compression of COMPRESSIONS) {
    const compressor = new ZlibStreamCompressor(compression);
    const output = new Uint8Array(1);
    const pieces: Uint8Array[] = [];
    let at = 0;
    while (!compressor.finished) {
      if (compressor.needsInput) {
        compressor.push(data.subarray(at, at + 1), at + 1 >= data.length);
        at++;
      }
      if (compressor.compressInto(output, 0) === 1) pieces.push(output.slice());
    }
    compressor.close();
    assert.deepEqual(await inflate(compression, concatBytes(pieces)), data, compression);
  }
});

Deno.test("archive writer: files read through a tiny reused buffer and tiny compressor buffers", async () => {
  await withTempDir("promcase-compressor-", async (dir) => {
    const files = [0, 1, 511, 512, 513, 70_000].map((size, i) => ({
      path: `data/f${i}`,
      bytes: testBytes(size, 100 + i),
    }));
    for (const compression of [...COMPRESSIONS, "none"] as const) {
      for (const file of files) await Deno.writeFile(`${dir}/${file.path.slice(5)}`, file.bytes);
      const path = `${dir}/a-${compression}.tar`;
      const writer = await ArchiveWriter.create(path, compression, {
        readBytes: 3,
        compressor: { bufferBytes: 50, queueDepth: 2, frameBytes: 1000, workerBacklog: 1 },
      });
      await writer.addDirectory("data");
      let read = 0;
      for (const file of files) {
        using handle = await Deno.open(`${dir}/${file.path.slice(5)}`);
        await writer.addFileFrom(file.path, handle, file.bytes.length, {
          onRead: (bytes) => void (read += bytes),
        });
      }
      await writer.finish(testManifest(compression));
      assert.equal(read, files.reduce((sum, f) => sum + f.bytes.length, 0));
      assert.deepEqual((await checkArchive(path)).problems, [], compression);
      const entries = new Map<string, Uint8Array>();
      for await (const entry of readTar(decompress(readPieces(path)))) {
        const pieces: Uint8Array[] = [];
        for await (const piece of entry.body) pieces.push(piece.slice());
        entries.set(entry.header.path, concatBytes(pieces));
      }
      for (const file of files) assert.deepEqual(entries.get(file.path), file.bytes, file.path);
    }
  });
});

Deno.test("archive writer: a file shorter than announced fails addFileFrom in one line", async () => {
  await withTempDir("promcase-compressor-", async (dir) => {
    await Deno.writeFile(`${dir}/short`, new Uint8Array(10));
    const writer = await ArchiveWriter.create(`${dir}/a.tar.zst`, "zstd");
    using handle = await Deno.open(`${dir}/short`);
    await assert.rejects(
      writer.addFileFrom("data/short", handle, 11),
      /data\/short shrank while it was read \(10 of 11 bytes\)/,
    );
    await writer.abort();
  });
});
