// `restore --add ARCHIVE DATA_DIR`: an archive's blocks join a data dir that already holds data,
// and a real Prometheus then serves both; anything that is not a block-only (rewrite) archive, a
// block that is already there, or a bad archive is refused without changing a byte of DATA_DIR.
// Also the check of the local Prometheus against the archive's minPrometheusVersion.
import assert from "node:assert/strict";
import { checkPrometheusVersion } from "../mod/prometheus.ts";
import { isOneLineError, runCli, runCliJson } from "./_cli.ts";
import { copyTree, listDir, TEST_DATADIR, withTempDir } from "./_files.ts";
import { findPrometheus, startPrometheus } from "./_prometheus.ts";
import { assertSameSamples } from "./_samples.ts";
import { blockDirs, packArchive, snapshot } from "./archive_fixtures.ts";

const withTemp = (fn: (dir: string) => Promise<void>) => withTempDir("promcase-add-", fn);

interface Inspect {
  blocks: { ulid: string; minTimeMs: number; maxTimeMs: number; level: number }[];
}

Deno.test("checkPrometheusVersion warns only when the local Prometheus is known to be too old", () => {
  const manifest = { minPrometheusVersion: "2.53.0" };
  assert.match(
    checkPrometheusVersion(manifest, "2.42.0")!,
    /local Prometheus 2\.42\.0 is older than 2\.53\.0/,
  );
  assert.equal(checkPrometheusVersion(manifest, "2.53.0"), undefined);
  assert.equal(checkPrometheusVersion(manifest, "3.5.3"), undefined);
  assert.equal(checkPrometheusVersion(manifest, null), undefined);
  assert.equal(checkPrometheusVersion({}, "2.0.0"), undefined);
});

Deno.test("restore --add: a rewrite export's block joins older data and Prometheus serves it all", async () => {
  const { prometheus } = await findPrometheus("newest");
  await withTemp(async (work) => {
    const info = await runCliJson<Inspect>(["inspect", TEST_DATADIR]);
    const blocks = info.blocks.toSorted((a, b) => a.minTimeMs - b.minTimeMs);
    const moved = blocks.slice(-3);
    const from = moved[0].minTimeMs;
    const to = moved[2].maxTimeMs - 1;
    // The support engineer's own data dir: the customer's dir without its three newest blocks.
    const local = `${work}/local`;
    await copyTree(TEST_DATADIR, local);
    for (const block of moved) await Deno.remove(`${local}/${block.ulid}`, { recursive: true });
    const before = await blockDirs(local);
    await runCliJson([
      "export",
      TEST_DATADIR,
      "--from",
      String(from),
      "--to",
      String(to),
      "-o",
      `${work}/case.tar.gz`,
      "--no-prometheus-api",
    ]);
    const added = await runCliJson<{ blocks: string[]; warnings: string[] }>([
      "restore",
      "--add",
      `${work}/case.tar.gz`,
      local,
      "--prometheus-bin",
      prometheus,
    ]);
    assert.equal(added.blocks.length, 1);
    assert.deepEqual(await blockDirs(local), [...before, ...added.blocks].sort());
    assert.ok(!(await listDir(local)).some((n) => n.includes(".tmp")), "no staging left");
    assert.ok(added.warnings.some((w) => /retention\.time=\d+d/.test(w)), added.warnings.join());

    await copyTree(TEST_DATADIR, `${work}/original`);
    const args = ["--storage.tsdb.retention.time=3650d"];
    await using original = await startPrometheus({
      bin: prometheus,
      dataDir: `${work}/original`,
      args,
    });
    await using merged = await startPrometheus({ bin: prometheus, dataDir: local, args });
    const compared = await assertSameSamples(original, merged, from - 1, to);
    assert.ok(compared.floats > 1000, `samples compared: ${JSON.stringify(compared)}`);
    // The data that was there before is still served as it was.
    await assertSameSamples(original, merged, blocks[0].minTimeMs - 1, blocks[1].maxTimeMs - 1);
  });
});

Deno.test("restore --add refuses head data, raw archives, blocks already there and bad archives, changing nothing", async () => {
  const { prometheus: oldest } = await findPrometheus("oldest");
  const { prometheus: newest } = await findPrometheus("newest");
  await withTemp(async (work) => {
    const ulids = await blockDirs(TEST_DATADIR);
    const [kept, moved1, moved2] = [ulids[0], ulids[1], ulids[2]];
    const local = `${work}/local`;
    await copyTree(TEST_DATADIR, local);
    for (const ulid of [moved1, moved2]) await Deno.remove(`${local}/${ulid}`, { recursive: true });
    const pristine = await snapshot(local);
    const inBlock = (ulid: string) => (path: string) => path.startsWith(`${ulid}/`);

    const archives = `${work}/archives`;
    await Deno.mkdir(archives);
    const make = async (name: string, only: (p: string) => boolean, mode?: "rewrite" | "raw") => {
      const path = `${archives}/${name}.tar`;
      await packArchive(TEST_DATADIR, path, "none", {
        only,
        manifest: { ...(mode ? { mode } : {}), minPrometheusVersion: "2.53.0" },
      });
      return path;
    };
    const withHead = await make(
      "head",
      (p) => inBlock(moved1)(p) || p.startsWith("wal/"),
      "rewrite",
    );
    const rawBlocks = await make("raw", inBlock(moved1), "raw");
    const unmarked = await make("unmarked", inBlock(moved1));
    const existing = await make(
      "existing",
      (p) => inBlock(kept)(p) || inBlock(moved1)(p),
      "rewrite",
    );
    const good = await make("good", (p) => inBlock(moved1)(p) || inBlock(moved2)(p), "rewrite");
    const corrupt = `${archives}/corrupt.tar`;
    const bytes = await Deno.readFile(good);
    bytes[Math.floor(bytes.length / 3)] ^= 0x01;
    await Deno.writeFile(corrupt, bytes);

    const cases: [string[], number, RegExp][] = [
      [
        [withHead, local],
        2,
        /holds data\/wal, which is not part of a block: --add only adds blocks/,
      ],
      [
        [rawBlocks, local],
        2,
        /exported as raw data .*--add only adds the blocks of a block-rewrite archive/,
      ],
      [[unmarked, local], 2, /exported as raw data/],
      [[existing, local], 2, new RegExp(`block ${kept} is already in ${local}`)],
      [[corrupt, local], 1, /SHA-256 does not match the manifest|corrupt/],
      [[good, `${work}/missing`], 2, /cannot use data dir/],
      [[good], 2, /name the archive and the data dir/],
    ];
    for (const [args, code, message] of cases) {
      const result = await runCli(["restore", "--add", ...args]);
      assert.equal(result.code, code, `${args.join(" ")}: ${result.stderr}`);
      assert.ok(isOneLineError(result), result.stderr);
      assert.match(result.stderr, message);
      assert.deepEqual(await snapshot(local), pristine, `${args[0]}: DATA_DIR is unchanged`);
    }
    const both = await runCli(["restore", "--add", good, local, "--into", `${work}/x`]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /either --into DIR or --add/);

    // A half-built block of an earlier run is not overwritten either.
    await Deno.mkdir(`${local}/${moved2}.tmp-for-creation`);
    const unfinished = await runCli(["restore", "--add", good, local]);
    assert.equal(unfinished.code, 2, unfinished.stderr);
    assert.match(unfinished.stderr, /tmp-for-creation exists \(an unfinished block\)/);
    await Deno.remove(`${local}/${moved2}.tmp-for-creation`);
    assert.deepEqual(await snapshot(local), pristine);

    // The good one: both blocks arrive byte for byte; too old a Prometheus is warned about.
    const old = await runCli(["restore", "--add", good, local, "--prometheus-bin", oldest]);
    assert.equal(old.code, 0, old.stderr);
    assert.match(old.stdout, new RegExp(`Added 2 blocks .*\\n  ${moved1}\\n  ${moved2}`));
    assert.match(old.stderr, /warning: the local Prometheus 2\.42\.0\S* is older than 2\.53\.0/);
    const after = await snapshot(local);
    const original = await snapshot(TEST_DATADIR);
    for (const [path, state] of original) {
      if (path.startsWith(`${moved1}/`) || path.startsWith(`${moved2}/`)) {
        assert.equal(after.get(path), state, path);
      }
    }
    for (const [path, state] of pristine) assert.equal(after.get(path), state, path);
    assert.ok(![...after.keys()].some((p) => p.includes(".tmp")));
    // Added twice: refused at the first block, before anything is written.
    const again = await runCli(["restore", "--add", good, local]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, new RegExp(`block ${moved1} is already in`));
    assert.deepEqual(await snapshot(local), after);

    // restore --into gives the same warning; a new enough Prometheus gets none.
    const into = await runCli([
      "restore",
      good,
      "--into",
      `${work}/r1`,
      "--prometheus-bin",
      oldest,
    ]);
    assert.equal(into.code, 0, into.stderr);
    assert.match(into.stderr, /warning: the local Prometheus .* is older than 2\.53\.0/);
    const fine = await runCliJson<{ warnings: string[] }>([
      "restore",
      good,
      "--into",
      `${work}/r2`,
      "--prometheus-bin",
      newest,
    ]);
    assert.deepEqual(fine.warnings, []);
  });
});

Deno.test("restore --add warns when the added blocks overlap blocks already there", async () => {
  await withTemp(async (work) => {
    const [ulid] = await blockDirs(TEST_DATADIR);
    // The same block under another ULID: as if the same data had been exported twice.
    const twin = "01ZZZZZZZZZZZZZZZZZZZZZZZZ";
    const source = `${work}/source`;
    await Deno.mkdir(source);
    await copyTree(`${TEST_DATADIR}/${ulid}`, `${source}/${twin}`);
    const meta = JSON.parse(await Deno.readTextFile(`${source}/${twin}/meta.json`));
    await Deno.writeTextFile(
      `${source}/${twin}/meta.json`,
      JSON.stringify({ ...meta, ulid: twin }),
    );
    await packArchive(source, `${work}/twin.tar.gz`, "gzip", { manifest: { mode: "rewrite" } });
    const local = `${work}/local`;
    await copyTree(TEST_DATADIR, local);
    const result = await runCliJson<{ blocks: string[]; warnings: string[] }>([
      "restore",
      "--add",
      `${work}/twin.tar.gz`,
      local,
    ]);
    assert.deepEqual(result.blocks, [twin]);
    assert.ok(
      result.warnings.some((w) => /overlap 1 block\(s\) already there/.test(w)),
      result.warnings.join("\n"),
    );
  });
});
