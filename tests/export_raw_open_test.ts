// The raw copy holds only a few block files open ahead of itself (`openFiles`), so thousands of
// blocks need neither thousands of descriptors nor their memory. Turned down to one file ahead:
// every file still ships byte for byte as selected, the head's files are held from the start (a
// WAL truncation mid-copy takes nothing away), and a block compacted away before its files were
// opened makes the export start over, leaving nothing of the first attempt behind.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { checkArchive } from "../mod/archive/reader.ts";
import { exportArchive, type ExportOptions, type ExportResult } from "../mod/export.ts";
import { resolveWindow } from "../mod/window.ts";
import { copyTree, listDir, TEST_DATADIR, withTempDir } from "./_files.ts";

const everything = resolveWindow({ from: "0", to: "now" });

async function withCopy(fn: (work: string, data: string) => Promise<void>): Promise<void> {
  await withTempDir("promcase-raw-open-", async (work) => {
    await copyTree(TEST_DATADIR, `${work}/data`);
    await fn(work, `${work}/data`);
  });
}

/** SHA-256 of every file the plan selects, read when the plan is made. */
function recordSelection(data: string, into: Map<string, string>): ExportOptions["beforeOpen"] {
  return async (plan) => {
    into.clear();
    for (const file of plan.files) {
      const bytes = await Deno.readFile(`${data}/${file.path}`);
      into.set(file.path, createHash("sha256").update(bytes).digest("hex"));
    }
  };
}

/** Checks the archive and that it holds exactly the selected files, in plan order, as selected. */
async function assertShipped(
  archive: string,
  result: ExportResult,
  selected: Map<string, string>,
): Promise<void> {
  const check = await checkArchive(archive);
  assert.deepEqual(check.problems, []);
  const shipped = check.manifest!.files.filter((f) => f.path.startsWith("data/"));
  assert.deepEqual(shipped.map((f) => f.path), result.plan.files.map((f) => `data/${f.path}`));
  for (const file of shipped) {
    assert.equal(file.sha256, selected.get(file.path.slice("data/".length)), file.path);
  }
}

Deno.test("raw export with one block file open ahead ships every file as selected", async () => {
  await withCopy(async (work, data) => {
    const selected = new Map<string, string>();
    const result = await exportArchive({
      dataDir: data,
      window: everything,
      output: `${work}/a.tar.zst`,
      compression: "zstd",
      mode: "raw",
      openFiles: 1,
      beforeOpen: recordSelection(data, selected),
    });
    assert.equal(result.restarts, 0);
    assert.ok(result.plan.blocks.length >= 3);
    await assertShipped(`${work}/a.tar.zst`, result, selected);
  });
});

Deno.test("raw export holds the head's files from the start: a WAL truncation mid-copy takes nothing", async () => {
  await withCopy(async (work, data) => {
    const selected = new Map<string, string>();
    let truncated = false;
    const result = await exportArchive({
      dataDir: data,
      window: everything,
      output: `${work}/a.tar.gz`,
      compression: "gzip",
      mode: "raw",
      openFiles: 1,
      beforeOpen: recordSelection(data, selected),
      onProgress: () => {
        if (truncated) return;
        truncated = true;
        // While the first block is copied, a truncation deletes every WAL segment and checkpoint.
        Deno.removeSync(`${data}/wal`, { recursive: true });
        Deno.mkdirSync(`${data}/wal`);
      },
    });
    assert.ok(truncated);
    assert.equal(result.restarts, 0);
    assert.ok(result.plan.head.files.some((f) => f.path.startsWith("wal/")));
    await assertShipped(`${work}/a.tar.gz`, result, selected);
  });
});

Deno.test("raw export starts over when a block is compacted away before its files were opened", async () => {
  await withCopy(async (work, data) => {
    const selected = new Map<string, string>();
    const merged = "01ZZZZZZZZZZZZZZZZZZZZZZZZ";
    let compacted = "";
    await Deno.mkdir(`${work}/out`);
    const result = await exportArchive({
      dataDir: data,
      window: everything,
      output: `${work}/out/a.tar.gz`,
      compression: "gzip",
      mode: "raw",
      openFiles: 1,
      beforeOpen: recordSelection(data, selected),
      onProgress: (_done, _total, file) => {
        if (compacted) return;
        // While the first block is copied, the last one is merged into a new block (which appears
        // first) and deleted, before the copy opened its files.
        compacted = [...Deno.readDirSync(data)].map((e) => e.name)
          .filter((n) => /^[0-9A-Z]{26}$/.test(n)).sort().at(-1)!;
        assert.ok(!file.startsWith(compacted));
        Deno.mkdirSync(`${data}/${merged}.tmp-for-compaction`);
        for (const name of ["index", "meta.json", "tombstones"]) {
          Deno.copyFileSync(
            `${data}/${compacted}/${name}`,
            `${data}/${merged}.tmp-for-compaction/${name}`,
          );
        }
        Deno.mkdirSync(`${data}/${merged}.tmp-for-compaction/chunks`);
        for (const entry of Deno.readDirSync(`${data}/${compacted}/chunks`)) {
          Deno.copyFileSync(
            `${data}/${compacted}/chunks/${entry.name}`,
            `${data}/${merged}.tmp-for-compaction/chunks/${entry.name}`,
          );
        }
        const meta = JSON.parse(Deno.readTextFileSync(`${data}/${compacted}/meta.json`));
        meta.ulid = merged;
        meta.compaction = {
          level: meta.compaction.level + 1,
          sources: [compacted],
          parents: [{ ulid: compacted }],
        };
        Deno.writeTextFileSync(
          `${data}/${merged}.tmp-for-compaction/meta.json`,
          JSON.stringify(meta),
        );
        Deno.renameSync(`${data}/${merged}.tmp-for-compaction`, `${data}/${merged}`);
        Deno.removeSync(`${data}/${compacted}`, { recursive: true });
      },
    });
    assert.ok(compacted);
    assert.equal(result.restarts, 1);
    const ulids = result.plan.blocks.map((b) => b.ulid);
    assert.ok(ulids.includes(merged) && !ulids.includes(compacted), ulids.join(" "));
    await assertShipped(`${work}/out/a.tar.gz`, result, selected);
    // Nothing of the abandoned attempt is left beside the archive.
    assert.deepEqual(await listDir(`${work}/out`), ["a.tar.gz", "a.tar.gz.sha256"]);
  });
});
