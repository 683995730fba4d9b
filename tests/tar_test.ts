import assert from "node:assert/strict";
import { withTempDir } from "./_files.ts";
import { readTar, type TarHeader, TarWriter } from "../mod/archive/tar.ts";
import { PromcaseError } from "../mod/errors.ts";
import { concatBytes } from "../mod/tsdb/encoding.ts";

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

interface Spec {
  path: string;
  dir?: boolean;
  data?: Uint8Array;
  mode?: number;
  mtime?: number;
  /** Sizes of the pieces the body is fed in (cycled); whole data by default. */
  pieces?: number[];
}

interface ReadEntry {
  header: TarHeader;
  data: Uint8Array;
}

const encoder = new TextEncoder();

/** Deterministic pseudo-random bytes, so that misplaced pieces show up as content differences. */
function bytes(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

async function* inPieces(data: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let pos = 0;
  for (let i = 0; pos < data.length; i++) {
    const n = sizes[i % sizes.length];
    yield data.subarray(pos, pos + n);
    pos += n;
  }
}

async function* chunked(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let pos = 0; pos < data.length; pos += size) yield data.subarray(pos, pos + size);
}

/** Writes specs with TarWriter into memory, copying each chunk as the sink contract requires. */
async function writeArchive(specs: Spec[]): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const writer = new TarWriter((chunk) => {
    parts.push(chunk.slice());
    return Promise.resolve();
  });
  for (const spec of specs) {
    const options = { mode: spec.mode, mtime: spec.mtime };
    if (spec.dir) {
      await writer.addDirectory(spec.path, options);
    } else {
      const data = spec.data ?? new Uint8Array(0);
      await writer.addFile(
        spec.path,
        data.length,
        inPieces(data, spec.pieces ?? [Math.max(data.length, 1)]),
        options,
      );
    }
  }
  await writer.finish();
  const archive = concatBytes(parts);
  assert.equal(writer.bytesWritten, archive.length);
  assert.equal(archive.length % 512, 0);
  return archive;
}

async function readAll(source: AsyncIterable<Uint8Array>): Promise<ReadEntry[]> {
  const entries: ReadEntry[] = [];
  for await (const entry of readTar(source)) {
    const parts: Uint8Array[] = [];
    for await (const piece of entry.body) parts.push(piece.slice());
    const data = concatBytes(parts);
    assert.equal(data.length, entry.header.size, `body length of ${entry.header.path}`);
    entries.push({ header: entry.header, data });
  }
  return entries;
}

async function tar(args: string[], cwd?: string): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command("tar", {
    args,
    cwd,
    env: { LC_ALL: "C.UTF-8" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(stderr);
  assert.ok(success, `tar ${args.join(" ")} failed: ${err}`);
  return new TextDecoder().decode(stdout);
}

async function rejectsWith(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof PromcaseError, `expected PromcaseError, got ${err}`);
    assert.match(err.message, pattern);
    assert.equal(err.exitCode, 1);
    assert.ok(!err.message.includes("\n"), "message is one line");
    return true;
  });
}

// A path of 150+ characters made of short components, so that GNU tar can extract it anywhere.
const LONG_PATH = "data/" + Array.from({ length: 8 }, (_, i) => `directory-level-${i}-abcdefgh`)
  .join("/") +
  "/a-file-with-a-rather-long-name.bin";
const UTF8_PATH = "data/héllo-日本語-ünïcødé.txt";
const BIG = bytes(100_000, 7);

const SPECS: Spec[] = [
  { path: "data", dir: true, mode: 0o750, mtime: 1_700_000_000 },
  { path: "data/small.txt", data: encoder.encode("hello tar\n"), mtime: 1_600_000_000 },
  { path: "data/empty", data: new Uint8Array(0) },
  { path: "data/exact512", data: bytes(512, 2), mode: 0o600 },
  { path: "data/x513", data: bytes(513, 3) },
  { path: LONG_PATH, data: bytes(3000, 4), pieces: [1, 7, 13, 511, 1000] },
  { path: UTF8_PATH, data: encoder.encode("ünïcødé\n") },
  { path: "data/big.bin", data: BIG, pieces: [1, 3, 511, 512, 513, 4097, 65537] },
  { path: "data/sub/", dir: true },
];

function checkAgainstSpecs(entries: ReadEntry[], specs: Spec[]): void {
  assert.deepEqual(
    entries.map((e) => e.header.path),
    specs.map((s) => s.path.replace(/\/+$/, "")),
  );
  for (const [i, spec] of specs.entries()) {
    const { header, data } = entries[i];
    const expected = spec.data ?? new Uint8Array(0);
    assert.deepEqual(header, {
      path: spec.path.replace(/\/+$/, ""),
      type: spec.dir ? "directory" : "file",
      typeflag: spec.dir ? "5" : "0",
      size: spec.dir ? 0 : expected.length,
      mode: spec.mode ?? (spec.dir ? 0o755 : 0o644),
      mtime: spec.mtime ?? 0,
      linkName: "",
    });
    assert.deepEqual(data, spec.dir ? new Uint8Array(0) : expected, `data of ${spec.path}`);
  }
}

// ------------------------------------------------------------------------------------------------
// Round trips
// ------------------------------------------------------------------------------------------------

Deno.test("tar: round trip with input chunks of 1, 7, 512, 100000 bytes and whole", async () => {
  const archive = await writeArchive(SPECS);
  for (const size of [1, 7, 512, 100_000, archive.length]) {
    checkAgainstSpecs(await readAll(chunked(archive, size)), SPECS);
  }
});

Deno.test("tar: body pieces are subarrays of the input chunks", async () => {
  const archive = await writeArchive([{ path: "f", data: bytes(5000) }]);
  for await (const entry of readTar(chunked(archive, 4096))) {
    for await (const piece of entry.body) assert.equal(piece.buffer, archive.buffer);
  }
});

Deno.test("tar: pax record lengths across digit boundaries", async () => {
  // " path=" + "\n" is 7 bytes: values of 90..92 bytes give records of 99..101 bytes (2 -> 3
  // digits), values of 990..996 bytes give 999..1004 (3 -> 4 digits). Non-ASCII forces pax for
  // the short ones.
  const specs: Spec[] = [];
  for (let n = 86; n <= 94; n++) specs.push({ path: "é" + "a".repeat(n - 2), data: bytes(n) });
  for (let n = 986; n <= 998; n++) {
    const segments = Array.from({ length: Math.ceil(n / 100) }, () => "b".repeat(99));
    specs.push({ path: segments.join("/").slice(0, n - 1) + "c", data: bytes(3) });
  }
  const archive = await writeArchive(specs);
  const entries = await readAll(chunked(archive, 13));
  assert.deepEqual(entries.map((e) => e.header.path), specs.map((s) => s.path));
  // GNU tar checks every record length against the data and rejects the archive otherwise.
  await withTempDir("promcase_tar_test_", async (dir) => {
    await Deno.writeFile(`${dir}/a.tar`, archive);
    const listed = (await tar(["-tf", `${dir}/a.tar`])).split("\n").filter((l) => l !== "");
    assert.deepEqual(listed, specs.map((s) => s.path));
  });
});

Deno.test("tar: sizes over 8 GiB - 1 and out-of-range mtimes go to pax", async () => {
  const size = 9 * 1024 ** 3;
  const parts: Uint8Array[] = [];
  const writer = new TarWriter((chunk) => {
    parts.push(chunk.slice());
    return Promise.resolve();
  });
  // Only the header matters here: a one-byte body makes addFile fail after writing it.
  await rejectsWith(
    writer.addFile("huge.bin", size, inPieces(new Uint8Array(1), [1]), { mtime: -86400 }),
    /huge\.bin/,
  );
  const stream = concatBytes(parts);
  const reader = readTar(chunked(stream, 100));
  const first = await reader.next();
  assert.ok(!first.done);
  assert.equal(first.value.header.size, size);
  assert.equal(first.value.header.mtime, -86400);
  await rejectsWith(readAll(first.value.body as AsyncGenerator<Uint8Array>), /truncated/);
  await reader.return(undefined);

  const far = await writeArchive([{ path: "far", data: bytes(1), mtime: 2 ** 40 }]);
  assert.equal((await readAll(chunked(far, 512)))[0].header.mtime, 2 ** 40);
});

Deno.test("tar: unconsumed and partly consumed bodies are skipped", async () => {
  const archive = await writeArchive(SPECS);
  const seen: string[] = [];
  let late: AsyncIterable<Uint8Array> | undefined;
  for await (const entry of readTar(chunked(archive, 7))) {
    seen.push(entry.header.path);
    if (entry.header.path === "data/big.bin") {
      for await (const _piece of entry.body) break; // read one piece only
    } else if (entry.header.path === UTF8_PATH) {
      const data = concatBytes(await Array.fromAsync(entry.body));
      assert.equal(new TextDecoder().decode(data), "ünïcødé\n");
    } else if (entry.header.path === "data/x513") {
      late = entry.body;
    }
  }
  assert.deepEqual(seen, SPECS.map((s) => s.path.replace(/\/+$/, "")));
  // Reading a body after moving on is a programming error, not silent empty data.
  await assert.rejects(Array.fromAsync(late!), /after moving to the next entry/);
});

Deno.test("tar: the source is closed when reading ends early or at the end blocks", async () => {
  const archive = await writeArchive(SPECS);
  let closed = 0;
  async function* source(): AsyncGenerator<Uint8Array> {
    try {
      yield* chunked(concatBytes([archive, new Uint8Array(10240)]), 1000);
    } finally {
      closed++;
    }
  }
  for await (const _entry of readTar(source())) break;
  assert.equal(closed, 1);
  await readAll(source());
  assert.equal(closed, 2);
});

// ------------------------------------------------------------------------------------------------
// GNU tar as the oracle
// ------------------------------------------------------------------------------------------------

Deno.test("tar: GNU tar extracts our archive to identical files", async () => {
  const archive = await writeArchive(SPECS);
  await withTempDir("promcase_tar_test_", async (dir) => {
    await Deno.writeFile(`${dir}/ours.tar`, archive);
    await Deno.mkdir(`${dir}/out`);
    await tar(["-xf", `${dir}/ours.tar`, "-C", `${dir}/out`]);
    for (const spec of SPECS) {
      const path = `${dir}/out/${spec.path}`;
      const info = await Deno.lstat(path);
      if (spec.dir) {
        assert.ok(info.isDirectory, `${spec.path} is a directory`);
      } else {
        assert.ok(info.isFile, `${spec.path} is a file`);
        assert.deepEqual(await Deno.readFile(path), spec.data, `content of ${spec.path}`);
        assert.equal(info.mtime!.getTime() / 1000, spec.mtime ?? 0);
      }
    }
    assert.equal((await Deno.stat(`${dir}/out/data/exact512`)).mode! & 0o777, 0o600);
    // `tar -t` shows the names as stored, including the directory slash.
    const listed = (await tar(["-tf", `${dir}/ours.tar`])).split("\n").filter((l) => l !== "");
    assert.deepEqual(listed, SPECS.map((s) => s.dir ? s.path.replace(/\/*$/, "/") : s.path));
  });
});

const LONG_LINK_TARGET = "target-" + "t".repeat(120);

/** Builds a tree under `dir/top` with every kind of entry our reader must recognise. */
async function makeTree(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>([
    ["top/small.txt", encoder.encode("small\n")],
    ["top/empty", new Uint8Array(0)],
    ["top/exact512", bytes(512, 11)],
    ["top/x513", bytes(513, 12)],
    ["top/big.bin", bytes(200_000, 13)],
    ["top/héllo-日本語.txt", encoder.encode("utf-8\n")],
    // One name over 100 bytes on its own (pax 'path' / GNU 'L'), one long path of short parts.
    ["top/" + "n".repeat(130) + ".txt", bytes(700, 14)],
    [LONG_PATH.replace(/^data\//, "top/"), bytes(1500, 15)],
  ]);
  for (const [path, data] of files) {
    await Deno.mkdir(`${dir}/${path.slice(0, path.lastIndexOf("/"))}`, { recursive: true });
    await Deno.writeFile(`${dir}/${path}`, data);
  }
  await Deno.mkdir(`${dir}/top/emptydir`);
  await Deno.symlink("small.txt", `${dir}/top/link`);
  await Deno.symlink(LONG_LINK_TARGET, `${dir}/top/longlink`);
  await Deno.link(`${dir}/top/x513`, `${dir}/top/hard`);
  return files;
}

async function checkGnuArchive(dir: string, archivePath: string, files: Map<string, Uint8Array>) {
  const whole = await Deno.readFile(archivePath);
  const smallInfo = await Deno.stat(`${dir}/top/small.txt`);
  for (const source of [(await Deno.open(archivePath)).readable, chunked(whole, 7)]) {
    const entries = await readAll(source);
    const byPath = new Map(entries.map((e) => [e.header.path, e]));
    for (const [path, data] of files) {
      const entry = byPath.get(path);
      if (path === "top/x513" && entry?.header.type === "hardlink") continue; // see below
      assert.ok(entry, `entry ${path} read; have ${[...byPath.keys()].join(", ")}`);
      assert.equal(entry.header.type, "file");
      assert.deepEqual(entry.data, data, `content of ${path}`);
    }
    // GNU pax headers carry fractional mtimes; both formats must give the whole seconds.
    const small = byPath.get("top/small.txt")!.header;
    assert.equal(small.mtime, Math.floor(smallInfo.mtime!.getTime() / 1000));
    assert.equal(small.mode, smallInfo.mode! & 0o7777);
    assert.equal(byPath.get("top")?.header.type, "directory");
    assert.equal(byPath.get("top/emptydir")?.header.type, "directory");
    assert.deepEqual(
      [byPath.get("top/link")?.header.type, byPath.get("top/link")?.header.linkName],
      ["symlink", "small.txt"],
    );
    assert.deepEqual(
      [byPath.get("top/longlink")?.header.type, byPath.get("top/longlink")?.header.linkName],
      ["symlink", LONG_LINK_TARGET],
    );
    // Whichever of the two names GNU tar met first holds the data; the other links to it.
    const pair = ["top/x513", "top/hard"].map((p) => byPath.get(p)!.header);
    const link = pair.find((h) => h.type === "hardlink")!;
    const file = pair.find((h) => h.type === "file")!;
    assert.equal(link.linkName, file.path);
    assert.equal(link.typeflag, "1");
    assert.equal(link.size, 0);
    assert.deepEqual(byPath.get(file.path)!.data, files.get("top/x513"));
    // Files, "top", "top/emptydir", two symlinks, the hardlink and LONG_PATH's eight parents.
    assert.equal(entries.length, files.size + 5 + 8);
  }
}

for (const format of ["pax", "gnu"]) {
  Deno.test(`tar: reads an archive made by GNU tar --format=${format}`, async () => {
    await withTempDir("promcase_tar_test_", async (dir) => {
      const files = await makeTree(dir);
      await tar([`--format=${format}`, "-cf", `${dir}/gnu.tar`, "-C", dir, "top"]);
      await checkGnuArchive(dir, `${dir}/gnu.tar`, files);
    });
  });
}

Deno.test("tar: reads the ustar prefix field (GNU tar --format=ustar)", async () => {
  await withTempDir("promcase_tar_test_", async (dir) => {
    // 150+ bytes, but splittable into a prefix of <= 155 and a name of <= 100 bytes.
    const path = LONG_PATH.replace(/^data\//, "top/").replace(
      /directory-level-[567]-abcdefgh\//g,
      "",
    );
    assert.ok(path.length > 150 && path.length < 255);
    await Deno.mkdir(`${dir}/${path.slice(0, path.lastIndexOf("/"))}`, { recursive: true });
    await Deno.writeFile(`${dir}/${path}`, bytes(999, 21));
    await tar(["--format=ustar", "-cf", `${dir}/u.tar`, "-C", dir, path]);
    const entries = await readAll((await Deno.open(`${dir}/u.tar`)).readable);
    assert.deepEqual(entries.map((e) => e.header.path), [path]);
    assert.deepEqual(entries[0].data, bytes(999, 21));
  });
});

Deno.test("tar: reads base-256 sizes (GNU tar agrees)", async () => {
  const archive = await writeArchive([{ path: "b256", data: encoder.encode("12345") }]);
  const header = archive.subarray(0, 512);
  header.fill(0, 124, 136);
  header[124] = 0x80;
  header[135] = 5;
  header.fill(0x20, 148, 156);
  const sum = header.reduce((a, b) => a + b, 0);
  header.set(encoder.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  const entries = await readAll(chunked(archive, 3));
  assert.equal(entries[0].header.size, 5);
  assert.equal(new TextDecoder().decode(entries[0].data), "12345");
  await withTempDir("promcase_tar_test_", async (dir) => {
    await Deno.writeFile(`${dir}/b.tar`, archive);
    assert.equal(await tar(["-xOf", `${dir}/b.tar`]), "12345");
  });
});

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

Deno.test("tar: truncated streams", async () => {
  const archive = await writeArchive(SPECS);
  const end = archive.length;
  // Offsets: "data/" header 0, "data/small.txt" header 512, its body 1024..1033.
  const cases: [number, RegExp][] = [
    [0, /^archive is truncated$/],
    [100, /^archive is truncated$/],
    [512 + 300, /^archive is truncated$/],
    [1024 + 5, /^archive is truncated \(in data\/small\.txt\)$/],
    [1024 + 100, /^archive is truncated \(in data\/small\.txt\)$/], // cut in the padding
    [end - 1024, /^archive is truncated$/], // no end blocks
    [end - 512, /^archive is truncated$/], // only one end block
    [end - 700, /^archive is truncated$/], // inside an end block
  ];
  // Cut inside the big body as well.
  const bigOffset = findHeader(archive, "data/big.bin");
  cases.push([bigOffset + 512 + 70_000, /^archive is truncated \(in data\/big\.bin\)$/]);
  for (const [cut, pattern] of cases) {
    for (const size of [1, 7, 65536]) {
      await rejectsWith(readAll(chunked(archive.subarray(0, cut), size)), pattern);
      // The same when the body is skipped instead of read.
      await rejectsWith(
        (async () => {
          for await (const _entry of readTar(chunked(archive.subarray(0, cut), size))) {
            // bodies left unread
          }
        })(),
        pattern,
      );
    }
  }
});

function findHeader(archive: Uint8Array, name: string): number {
  const wanted = encoder.encode(name + "\0");
  for (let offset = 0; offset < archive.length; offset += 512) {
    if (wanted.every((b, i) => archive[offset + i] === b)) return offset;
  }
  throw new Error(`no header for ${name}`);
}

Deno.test("tar: a flipped byte in a header fails the checksum", async () => {
  const archive = await writeArchive(SPECS);
  const offset = findHeader(archive, "data/x513");
  for (const at of [0, 10, 100, 157, 300, 511]) {
    const damaged = archive.slice();
    damaged[offset + at] ^= 0x04;
    await rejectsWith(
      readAll(chunked(damaged, 512)),
      new RegExp(`^archive is corrupt: bad tar header checksum at offset ${offset}$`),
    );
  }
  await rejectsWith(
    readAll(chunked(encoder.encode("definitely not a tar file".repeat(100)), 64)),
    /checksum at offset 0/,
  );
});

Deno.test("tar: a lone zero block is corrupt", async () => {
  const archive = await writeArchive([{ path: "a", data: bytes(3) }, {
    path: "b",
    data: bytes(3),
  }]);
  const damaged = concatBytes([
    archive.subarray(0, 1024),
    new Uint8Array(512),
    archive.subarray(1024),
  ]);
  await rejectsWith(readAll(chunked(damaged, 512)), /lone zero block at offset 1024/);
});

Deno.test("tar: addFile with a body shorter or longer than size", async () => {
  for (const [size, actual, pattern] of [[10, 9, /expected 10 bytes, got 9/], [10, 11, /more/]]) {
    const writer = new TarWriter(() => Promise.resolve());
    await rejectsWith(
      writer.addFile("dir/the-file.txt", size as number, inPieces(bytes(actual as number), [4])),
      new RegExp(`dir/the-file\\.txt.*${(pattern as RegExp).source}`),
    );
    // The stream is now unusable; say so rather than produce a corrupt archive.
    await assert.rejects(writer.finish(), /unusable/);
  }
  const writer = new TarWriter(() => Promise.resolve());
  await rejectsWith(writer.addFile("x", -1, inPieces(bytes(0), [1])), /invalid size/);
  await rejectsWith(writer.addFile("a\0b", 0, inPieces(bytes(0), [1])), /NUL/);
  await rejectsWith(writer.addDirectory(""), /empty path/);
  await writer.finish(); // bad arguments do not poison the writer
  assert.equal(writer.bytesWritten, 1024);
});
