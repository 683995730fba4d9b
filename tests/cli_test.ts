// The CLI on the real data dir under tests/testdata (written by Prometheus 2.42), and every kind of
// bad input the issue names: each must end in a one-line error, exit code 1 or 2, and lose nothing.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ArchiveWriter } from "../mod/archive/writer.ts";
import { ARCHIVE_FORMAT_VERSION } from "../mod/archive/manifest.ts";
import { testManifest } from "./archive_fixtures.ts";
import { exportAllArgs, isOneLineError, runCli, runCliJson, UNPRIVILEGED } from "./_cli.ts";
import { copyTree, listDir, pathExists, tarListing, TEST_DATADIR, withTempDir } from "./_files.ts";

const DATADIR = TEST_DATADIR;
const withTemp = (fn: (dir: string) => Promise<void>) => withTempDir("promcase-cli-", fn);

/** path -> sha256, size and mtime of every file below `dir`. */
async function treeState(dir: string, prefix = ""): Promise<Map<string, string>> {
  const state = new Map<string, string>();
  for await (const entry of Deno.readDir(`${dir}/${prefix}`)) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    const stat = await Deno.lstat(`${dir}/${rel}`);
    if (entry.isDirectory) {
      state.set(rel + "/", `dir ${stat.mtime?.getTime()}`);
      for (const [k, v] of await treeState(dir, rel)) state.set(k, v);
    } else {
      const hash = createHash("sha256").update(await Deno.readFile(`${dir}/${rel}`)).digest("hex");
      state.set(rel, `${hash} ${stat.size} ${stat.mtime?.getTime()}`);
    }
  }
  return state;
}

/** Exports the whole test data dir into `dir`, returns the archive path. */
async function exportAll(dir: string, compression = "gzip"): Promise<string> {
  const archive = `${dir}/all.tar${
    compression === "gzip" ? ".gz" : compression === "zstd" ? ".zst" : ""
  }`;
  await runCliJson([
    ...exportAllArgs(DATADIR, archive),
    "--compression",
    compression,
  ]);
  return archive;
}

Deno.test("export reads the data dir without changing a byte, and a raw restore gives the same files", async () => {
  await withTemp(async (dir) => {
    const before = await treeState(DATADIR);
    await runCliJson(exportAllArgs(DATADIR, `${dir}/rewrite.tar.gz`));
    assert.deepEqual(await treeState(DATADIR), before, "the data dir is unchanged by a rewrite");
    for (const f of ["rewrite.tar.gz", "rewrite.tar.gz.sha256"]) await Deno.remove(`${dir}/${f}`);
    const summary = await runCliJson<
      { blocks: string[]; head: { included: boolean; files: string[] } }
    >([
      ...exportAllArgs(DATADIR, `${dir}/all.tar.gz`),
      "--raw",
    ]);
    assert.deepEqual(await treeState(DATADIR), before, "the data dir is unchanged");
    assert.ok(summary.blocks.length >= 3);
    assert.ok(summary.head.included);
    assert.ok(summary.head.files.some((f) => /^wal\/checkpoint\.\d{8}\/\d{8}$/.test(f)));
    assert.deepEqual(await listDir(dir), ["all.tar.gz", "all.tar.gz.sha256"]);

    const restored = await runCliJson<{ dataDir: string; serveCommand: string[] }>([
      "restore",
      `${dir}/all.tar.gz`,
      "--into",
      `${dir}/restored`,
    ]);
    // Beside the data: what the customer saw leave (disclosure.json), the manifest, the config.
    assert.deepEqual(await listDir(`${dir}/restored`), [
      "data",
      "disclosure.json",
      "manifest.json",
      "prometheus.yml",
    ]);
    const copy = await treeState(restored.dataDir);
    for (const [path, state] of before) {
      if (path.endsWith("/") || path === "lock") continue;
      // Everything shipped is identical in content and size (mtime is kept to the second).
      if (copy.has(path)) {
        assert.equal(
          copy.get(path)!.split(" ").slice(0, 2).join(" "),
          state.split(" ").slice(0, 2).join(" "),
          path,
        );
      }
    }
    for (const ulid of summary.blocks) assert.ok(copy.has(`${ulid}/index`), ulid);
    for (const file of summary.head.files) assert.ok(copy.has(file), file);
  });
});

Deno.test("zstd and uncompressed archives verify and restore", async () => {
  await withTemp(async (dir) => {
    for (const compression of ["zstd", "none"]) {
      const archive = await exportAll(dir, compression);
      const head = (await Deno.readFile(archive)).subarray(0, 4);
      if (compression === "zstd") assert.deepEqual([...head], [0x28, 0xb5, 0x2f, 0xfd]);
      const verified = await runCliJson<{ ok: boolean; sidecar: string }>(["verify", archive]);
      assert.deepEqual([verified.ok, verified.sidecar], [true, "ok"]);
      await runCliJson(["restore", archive, "--into", `${dir}/r-${compression}`]);
      // GNU tar reads our archives too.
      assert.match(await tarListing(archive), /^manifest\.json$/m);
    }
  });
});

Deno.test("dry run and inspect write nothing and describe the data dir", async () => {
  await withTemp(async (dir) => {
    const plan = await runCliJson<{ dryRun: boolean; files: number }>(
      ["export", DATADIR, "--at", "now", "--before", "100000d", "--dry-run"],
      { cwd: dir },
    );
    assert.equal(plan.dryRun, true);
    assert.ok(plan.files > 5);
    assert.deepEqual(await listDir(dir), []);
    const info = await runCliJson<
      {
        blocks: { level: number; stats: { numSamples: number } }[];
        head: { checkpoint: unknown };
        problems: string[];
      }
    >(
      ["inspect", DATADIR],
    );
    assert.ok(info.blocks.length >= 3);
    assert.ok(info.blocks.some((b) => b.level >= 2));
    assert.ok(info.blocks.every((b) => b.stats.numSamples > 0));
    assert.notEqual(info.head.checkpoint, null);
    assert.deepEqual(info.problems, []);
    const text = await runCli(["inspect", DATADIR]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /checkpoint:\s+checkpoint\.\d{8}/);
  });
});

Deno.test("bad data dirs and windows: one-line errors, exit 1 or 2, no archive left", async () => {
  await withTemp(async (dir) => {
    const cases: [string[], number, RegExp][] = [
      [["export", `${dir}/missing`, "--at", "now"], 2, /cannot open data dir/],
      [["export", dir, "--at", "now"], 2, /not a Prometheus data dir/],
      [["export", DATADIR, "--at", "2001-01-01T00:00:00Z"], 1, /no data in the window/],
      [["export", DATADIR, "--at", "yesterday"], 2, /invalid time/],
      [["export", DATADIR, "--at", "now", "--before", "1day"], 2, /invalid duration/],
      [["export", DATADIR], 2, /--at/],
      [["export", DATADIR, "--at", "now", "--compression", "xz"], 2, /--compression/],
      [["export", DATADIR, "--at", "now", "--bogus"], 2, /bogus/],
      [["export", DATADIR, "--at", "now", "--replay-workers", "-1"], 2, /--replay-workers/],
      [["export", DATADIR, "--at", "now", "--replay-workers", "9"], 2, /0 to 8/],
      [["export", DATADIR, "--at", "now", "--replay-workers", "1", "--raw"], 2, /--raw/],
      [["inspect", `${dir}/missing`], 2, /cannot open data dir/],
      [["verify", `${dir}/missing.tar.gz`], 2, /cannot open archive/],
      [["restore", `${dir}/missing.tar.gz`, "--into", `${dir}/r`], 2, /cannot open archive/],
      [["restore", `${dir}/missing.tar.gz`], 2, /--into/],
      [["frobnicate"], 2, /unknown command/],
    ];
    for (const [args, code, message] of cases) {
      const result = await runCli(args, { cwd: dir });
      assert.equal(result.code, code, `${args.join(" ")}: ${result.stderr}`);
      assert.ok(
        isOneLineError(result) || args[0] === "frobnicate",
        `${args.join(" ")}: ${result.stderr}`,
      );
      assert.match(result.stderr, message);
    }
    assert.deepEqual(await listDir(dir), []);
    // An existing output is never overwritten.
    await Deno.writeTextFile(`${dir}/taken.tar.gz`, "mine");
    const taken = await runCli([
      ...exportAllArgs(DATADIR, `${dir}/taken.tar.gz`),
    ]);
    assert.equal(taken.code, 2);
    assert.equal(await Deno.readTextFile(`${dir}/taken.tar.gz`), "mine");
  });
});

Deno.test("an unreadable file in the data dir fails the export and leaves no archive", async () => {
  await withTemp(async (dir) => {
    const data = `${dir}/data`;
    await copyTree(DATADIR, data);
    const block = (await listDir(data)).find((n) => /^[0-9A-Z]{26}$/.test(n))!;
    await Deno.chmod(`${data}/${block}/index`, 0o000);
    const out = `${dir}/out`;
    await Deno.mkdir(out);
    const args = ["export", data, "--from", "0", "--to", "now", "-o", `${out}/x.tar.gz`];
    const result = await runCli(args, { wrapper: UNPRIVILEGED });
    assert.equal(result.code, 1, result.stderr);
    assert.ok(isOneLineError(result), result.stderr);
    assert.match(result.stderr, new RegExp(`cannot read ${block}/index: permission denied`));
    assert.deepEqual(await listDir(out), []);
  });
});

Deno.test("truncated and corrupted archives are detected and never restored", async () => {
  await withTemp(async (dir) => {
    for (const compression of ["gzip", "none"]) {
      const archive = await exportAll(dir, compression);
      const bytes = await Deno.readFile(archive);

      const truncated = `${dir}/truncated-${compression}`;
      await Deno.writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
      const t = await runCli(["verify", truncated]);
      assert.equal(t.code, 1, t.stderr);
      assert.match(t.stderr, /truncated/);
      assert.ok(!/\bat .*:\d+:\d+/.test(t.stderr));
      const tr = await runCli(["restore", truncated, "--into", `${dir}/r-truncated`]);
      assert.equal(tr.code, 1);
      assert.ok(isOneLineError(tr), tr.stderr);
      assert.equal(await pathExists(`${dir}/r-truncated`), false);

      // Flip one byte in the middle of the largest file's content.
      const flipped = `${dir}/flipped-${compression}`;
      const copy = bytes.slice();
      const at = compression === "none"
        ? _offsetInsideLargestFile(copy)
        : Math.floor(copy.length / 2);
      copy[typeof at === "number" ? at : at.offset] ^= 0x40;
      await Deno.writeFile(flipped, copy);
      await Deno.copyFile(`${archive}.sha256`, `${flipped}.sha256`);
      const f = await runCli(["verify", flipped]);
      assert.equal(f.code, 1, f.stderr);
      assert.ok(!/\bat .*:\d+:\d+/.test(f.stderr), f.stderr);
      assert.match(f.stderr, /does not match its checksum file/);
      if (typeof at === "object") {
        assert.match(f.stderr, new RegExp(`${at.path}: SHA-256 does not match the manifest`));
      } else {
        assert.match(
          f.stderr,
          /data\/|disclosure\.json|manifest\.json/,
          "names the entry where the stream broke",
        );
      }
      const fr = await runCli(["restore", flipped, "--into", `${dir}/r-flipped`]);
      assert.equal(fr.code, 1);
      assert.ok(isOneLineError(fr), fr.stderr);
      assert.equal(await pathExists(`${dir}/r-flipped`), false);
      await Deno.remove(archive);
      await Deno.remove(`${archive}.sha256`);
    }
    assert.deepEqual(
      (await listDir(dir)).filter((n) => n.startsWith(".")),
      [],
      "no staging dirs left",
    );
  });
});

/** In an uncompressed tar: the content offset and path of the largest file. */
function _offsetInsideLargestFile(tar: Uint8Array): { offset: number; path: string } {
  let best = { offset: 0, path: "", size: -1 };
  for (let pos = 0; pos + 512 <= tar.length;) {
    const header = tar.subarray(pos, pos + 512);
    if (header.every((b) => b === 0)) break;
    const name = new TextDecoder().decode(header.subarray(0, 100)).replace(/\0.*$/s, "");
    const size = parseInt(
      new TextDecoder().decode(header.subarray(124, 136)).replace(/\0.*$/s, "").trim() || "0",
      8,
    );
    if (header[156] === 0x30 && size > best.size) {
      best = { offset: pos + 512 + Math.floor(size / 2), path: name, size };
    }
    pos += 512 + Math.ceil(size / 512) * 512;
  }
  return { offset: best.offset, path: best.path };
}

Deno.test("restore refuses a non-empty target and archives with unsafe entries or newer formats", async () => {
  await withTemp(async (dir) => {
    const archive = await exportAll(dir);
    await Deno.mkdir(`${dir}/busy`);
    await Deno.writeTextFile(`${dir}/busy/keep`, "mine");
    const busy = await runCli(["restore", archive, "--into", `${dir}/busy`]);
    assert.equal(busy.code, 2);
    assert.ok(isOneLineError(busy), busy.stderr);
    assert.match(busy.stderr, /not empty/);
    assert.deepEqual(await listDir(`${dir}/busy`), ["keep"]);

    // An archive whose entry climbs out with ../, with a manifest that lists it as if all were well.
    await Deno.mkdir(`${dir}/nest`);
    const evil = `${dir}/nest/evil.tar.gz`;
    const content = new TextEncoder().encode("owned\n");
    const writer = await ArchiveWriter.create(evil, "gzip");
    await writer.addBytes("data/../../escaped", content);
    await writer.finish(testManifest());
    const e = await runCli(["restore", evil, "--into", `${dir}/nest/r`]);
    assert.equal(e.code, 1, e.stderr);
    assert.ok(isOneLineError(e), e.stderr);
    assert.match(e.stderr, /unsafe entry "data\/\.\.\/\.\.\/escaped"/);
    assert.equal(await pathExists(`${dir}/escaped`), false);
    assert.equal(await pathExists(`${dir}/nest/r`), false);
    const ev = await runCli(["verify", evil]);
    assert.equal(ev.code, 1);
    assert.match(ev.stderr, /unsafe entry/);

    // An archive from a future promcase is refused with advice, not misread.
    const future = `${dir}/future.tar.gz`;
    const w2 = await ArchiveWriter.create(future, "gzip");
    await w2.finish({ ...testManifest(), formatVersion: ARCHIVE_FORMAT_VERSION + 1 });
    const fu = await runCli(["verify", future]);
    assert.equal(fu.code, 1);
    assert.match(fu.stderr, /newer than this promcase reads.*upgrade promcase/);

    // A symlink entry made by GNU tar is refused.
    await Deno.mkdir(`${dir}/linksrc`);
    await Deno.symlink("/etc/passwd", `${dir}/linksrc/link`);
    await new Deno.Command("tar", {
      args: ["-czf", `${dir}/link.tar.gz`, "-C", `${dir}/linksrc`, "link"],
    }).output();
    const l = await runCli(["restore", `${dir}/link.tar.gz`, "--into", `${dir}/r-link`]);
    assert.equal(l.code, 1);
    assert.match(l.stderr, /symlink entries are not allowed/);
    assert.equal(await pathExists(`${dir}/r-link`), false);
  });
});

Deno.test("inspect reports broken blocks and WAL gaps, and export leaves such blocks out", async () => {
  await withTemp(async (dir) => {
    const data = `${dir}/data`;
    await copyTree(DATADIR, data);
    const blocks = (await listDir(data)).filter((n) => /^[0-9A-Z]{26}$/.test(n));
    await Deno.writeTextFile(`${data}/${blocks[0]}/meta.json`, "{not json");
    await Deno.remove(`${data}/${blocks[1]}/index`);
    await Deno.mkdir(`${data}/${blocks[2]}.tmp-for-deletion`);
    const segments = (await listDir(`${data}/wal`)).filter((n) => /^\d{8}$/.test(n));
    await Deno.remove(`${data}/wal/${segments[1]}`);
    const info = await runCliJson<{ blocks: unknown[]; problems: string[]; tmpDirs: string[] }>(
      ["inspect", data],
    );
    assert.equal(info.blocks.length, blocks.length - 2);
    assert.deepEqual(info.tmpDirs, [`${blocks[2]}.tmp-for-deletion`]);
    assert.equal(info.problems.length, 3, info.problems.join("\n"));
    assert.match(info.problems.join("\n"), new RegExp(`block ${blocks[0]}: cannot use meta.json`));
    assert.match(info.problems.join("\n"), new RegExp(`block ${blocks[1]}: .*block skipped`));
    assert.match(info.problems.join("\n"), /wal\/: segments \d+ to \d+ are missing/);
    const result = await runCli([
      ...exportAllArgs(data, `${dir}/a.tar.gz`),
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /warning: .*cannot use meta\.json/);
    assert.match(result.stderr, /warning: skipped unfinished dirs/);
    const listing = await tarListing(`${dir}/a.tar.gz`);
    assert.ok(!listing.includes(blocks[0]) && !listing.includes(blocks[1]));
    assert.ok(!listing.includes(".tmp"));
  });
});

Deno.test("--max-size refuses before writing, --dry-run estimates, --split parts restore", async () => {
  await withTemp(async (dir) => {
    const plan = await runCliJson<{ estimate: { archiveBytes: number }; dryRun: boolean }>([
      ...exportAllArgs(DATADIR, `${dir}/a.tar.gz`),
      "--dry-run",
    ]);
    assert.ok(plan.dryRun && plan.estimate.archiveBytes > 0);
    const refused = await runCli([
      ...exportAllArgs(DATADIR, `${dir}/a.tar.gz`),
      "--max-size",
      String(Math.floor(plan.estimate.archiveBytes / 2)),
    ]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.ok(isOneLineError(refused), refused.stderr);
    assert.match(refused.stderr, /would be about .* more than --max-size/);
    assert.deepEqual(await listDir(dir), []);

    const written = await runCliJson<{ size: number }>([
      ...exportAllArgs(DATADIR, `${dir}/a.tar.gz`),
      "--split",
      "20KiB",
      "--rate-limit",
      "100MB/s",
      "--no-nice",
    ]);
    // The estimate errs high (this small, regular test data compresses far better than most).
    assert.ok(written.size <= plan.estimate.archiveBytes, `${written.size} bytes`);
    const parts = (await listDir(dir)).filter((n) => /\.part\d{3}$/.test(n));
    assert.ok(parts.length >= 2, parts.join(" "));
    const verified = await runCliJson<{ ok: boolean }>(["verify", `${dir}/${parts[0]}`]);
    assert.equal(verified.ok, true);
    await runCliJson(["restore", `${dir}/${parts.at(-1)}`, "--into", `${dir}/restored`]);
    assert.ok((await listDir(`${dir}/restored/data`)).some((n) => /^[0-9A-Z]{26}$/.test(n)));
  });
});

Deno.test("a damaged WAL segment: the rewrite keeps what precedes it and warns", async () => {
  await withTemp(async (dir) => {
    const data = `${dir}/data`;
    await copyTree(DATADIR, data);
    const segments = (await listDir(`${data}/wal`)).filter((n) => /^\d{8}$/.test(n));
    const last = `${data}/wal/${segments.at(-1)}`;
    const bytes = await Deno.readFile(last);
    bytes[100] ^= 0xff; // inside the first record's payload
    await Deno.writeFile(last, bytes);
    const result = await runCli([...exportAllArgs(data, `${dir}/a.tar.gz`), "--json"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `warning: corruption in WAL segment \\S*${segments.at(-1)} at offset \\d+: .*dropped`,
      ),
    );
    const summary = JSON.parse(result.stdout);
    assert.ok(summary.rewrite.head.corruption);
    assert.ok(summary.rewrite.samples > 1000);
  });
});
