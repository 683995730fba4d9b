// Export while the data dir changes under it, as compaction and WAL truncation do on a live
// Prometheus: a block replaced by its compacted successor, or a checkpoint and WAL segment replaced
// by a newer checkpoint, before they are opened make the selection start over; files deleted after
// they were opened are still read whole.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { checkArchive } from "../mod/archive/reader.ts";
import { exportArchive, type ExportOptions } from "../mod/export.ts";
import { resolveWindow } from "../mod/window.ts";
import { copyTree, TEST_DATADIR, withTempDir } from "./_files.ts";

async function withCopy(fn: (work: string, data: string) => Promise<void>): Promise<void> {
  await withTempDir("promcase-churn-", async (work) => {
    await copyTree(TEST_DATADIR, `${work}/data`);
    await fn(work, `${work}/data`);
  });
}

const everything = resolveWindow({ from: "0", to: "now" });

/** Exports everything in `data` into an uncompressed archive at `output`. */
function exportAll(data: string, output: string, options: Partial<ExportOptions> = {}) {
  return exportArchive({
    dataDir: data,
    window: everything,
    output,
    compression: "none",
    ...options,
  });
}

for (const mode of ["raw", "rewrite"] as const) {
  Deno.test(`a block compacted away before it is opened makes the selection start over (${mode})`, async () => {
    await withCopy(async (work, data) => {
      const newUlid = "01ZZZZZZZZZZZZZZZZZZZZZZZZ";
      let compacted = "";
      const result = await exportArchive({
        dataDir: data,
        window: everything,
        output: `${work}/a.tar.gz`,
        compression: "gzip",
        mode,
        beforeOpen: async (plan) => {
          if (compacted) return;
          // What a compaction does: the merged block appears, then its parent goes away.
          compacted = plan.blocks[0].ulid;
          await copyTree(`${data}/${compacted}`, `${data}/${newUlid}`);
          const meta = JSON.parse(await Deno.readTextFile(`${data}/${newUlid}/meta.json`));
          meta.ulid = newUlid;
          meta.compaction = {
            level: meta.compaction.level + 1,
            sources: [compacted],
            parents: [{ ulid: compacted }],
          };
          await Deno.writeTextFile(`${data}/${newUlid}/meta.json`, JSON.stringify(meta));
          await Deno.remove(`${data}/${compacted}`, { recursive: true });
        },
      });
      assert.equal(result.restarts, 1);
      const shipped = result.plan.blocks.map((b) => b.ulid);
      assert.ok(shipped.includes(newUlid));
      assert.ok(!shipped.includes(compacted));
      const check = await checkArchive(`${work}/a.tar.gz`);
      assert.deepEqual(check.problems, []);
      // Raw ships the merged block; the rewrite read it (its samples are all there).
      if (mode === "raw") {
        assert.ok(check.manifest!.files.some((f) => f.path === `data/${newUlid}/index`));
      } else {
        assert.deepEqual(check.manifest!.rewrite!.sourceBlocks, shipped);
      }
    });
  });
}

Deno.test("a merged block and its parents seen together ship only the merged block", async () => {
  await withCopy(async (work, data) => {
    const blocks = (await Array.fromAsync(Deno.readDir(data)))
      .map((e) => e.name).filter((n) => /^[0-9A-Z]{26}$/.test(n)).sort();
    const child = "01ZZZZZZZZZZZZZZZZZZZZZZZY";
    // Between a compaction's rename and its deletes both generations are on disk.
    await copyTree(`${data}/${blocks[0]}`, `${data}/${child}`);
    const meta = JSON.parse(await Deno.readTextFile(`${data}/${child}/meta.json`));
    meta.ulid = child;
    meta.compaction = { level: 9, sources: [blocks[0]], parents: [{ ulid: blocks[0] }] };
    await Deno.writeTextFile(`${data}/${child}/meta.json`, JSON.stringify(meta));
    const result = await exportArchive({
      dataDir: data,
      window: everything,
      output: `${work}/a.tar.gz`,
      compression: "none",
      dryRun: true,
    });
    assert.deepEqual(result.plan.supersededBlocks.map((b) => b.ulid), [blocks[0]]);
    assert.ok(result.plan.blocks.some((b) => b.ulid === child));
  });
});

Deno.test("files deleted or grown after they were opened are copied as selected", async () => {
  await withCopy(async (work, data) => {
    const before = new Map<string, Uint8Array>();
    let deleted = false;
    const result = await exportAll(data, `${work}/a.tar`, {
      mode: "raw",
      onProgress: () => {
        if (deleted) return;
        deleted = true;
        // Compaction deletes every block and truncation the checkpoint, right after the copy began.
        // And Prometheus keeps appending to the head's files: only the length at selection counts.
        for (const entry of Deno.readDirSync(`${data}/chunks_head`)) {
          Deno.writeFileSync(`${data}/chunks_head/${entry.name}`, new Uint8Array(4096).fill(7), {
            append: true,
          });
        }
        for (const entry of Deno.readDirSync(data)) {
          if (entry.name !== "chunks_head") {
            Deno.removeSync(`${data}/${entry.name}`, { recursive: true });
          }
        }
      },
      beforeOpen: async (plan) => {
        for (const file of plan.files) {
          before.set(file.path, await Deno.readFile(`${data}/${file.path}`));
        }
      },
    });
    assert.ok(deleted);
    assert.equal(result.restarts, 0);
    const check = await checkArchive(`${work}/a.tar`);
    assert.deepEqual(check.problems, []);
    // The data files (beside them: disclosure.json, what the customer saw leave).
    const shipped = check.manifest!.files.filter((f) => f.path.startsWith("data/"));
    assert.equal(shipped.length, before.size);
    // Every shipped file is byte for byte what was on disk when the export selected it.
    for (const file of shipped) {
      const original = before.get(file.path.slice("data/".length))!;
      assert.equal(file.sha256, createHash("sha256").update(original).digest("hex"), file.path);
    }
  });
});

Deno.test("blocks deleted after the rewrite opened them are still read whole", async () => {
  await withCopy(async (work, data) => {
    const undisturbed = await exportAll(data, `${work}/a.tar`);
    let deleted = false;
    const result = await exportAll(data, `${work}/b.tar`, {
      onStatus: () => {
        if (deleted) return;
        deleted = true;
        // A compaction deletes every block while the head is being replayed.
        for (const entry of Deno.readDirSync(data)) {
          if (/^[0-9A-Z]{26}$/.test(entry.name)) {
            Deno.removeSync(`${data}/${entry.name}`, { recursive: true });
          }
        }
      },
    });
    assert.ok(deleted);
    assert.equal(result.restarts, 0);
    assert.ok(result.rewrite!.samples > 1000);
    assert.deepEqual(
      { ...result.rewrite, head: null },
      { ...undisturbed.rewrite, head: null },
    );
    assert.deepEqual((await checkArchive(`${work}/b.tar`)).problems, []);
  });
});

Deno.test("a WAL truncation between selection and replay makes the rewrite start over", async () => {
  await withCopy(async (work, data) => {
    const undisturbed = await exportAll(data, `${work}/a.tar`);
    let truncated = false;
    const result = await exportAll(data, `${work}/b.tar`, {
      beforeOpen: async () => {
        if (truncated) return;
        truncated = true;
        // What Prometheus' truncation does: a new checkpoint holding the old one and the next
        // segment appears, then the old checkpoint and that segment are deleted.
        const wal = `${data}/wal`;
        const old = (await Array.fromAsync(Deno.readDir(wal)))
          .map((e) => e.name).find((n) => n.startsWith("checkpoint."))!;
        const covered = Number(old.slice("checkpoint.".length)) + 1;
        const next = `checkpoint.${String(covered).padStart(8, "0")}`;
        const segment = String(covered).padStart(8, "0");
        await Deno.mkdir(`${wal}/${next}.tmp`);
        await Deno.copyFile(`${wal}/${old}/00000000`, `${wal}/${next}.tmp/00000000`);
        await Deno.copyFile(`${wal}/${segment}`, `${wal}/${next}.tmp/00000001`);
        await Deno.rename(`${wal}/${next}.tmp`, `${wal}/${next}`);
        await Deno.remove(`${wal}/${old}`, { recursive: true });
        await Deno.remove(`${wal}/${segment}`);
      },
    });
    assert.ok(truncated);
    assert.equal(result.restarts, 1);
    assert.equal(result.rewrite!.samples, undisturbed.rewrite!.samples);
    assert.equal(result.rewrite!.series, undisturbed.rewrite!.series);
  });
});
