// A full disk: too little free space for the caller's estimate is refused before a byte is
// written (one line, both numbers), and a write that fails mid-way (ENOSPC on a real, small tmpfs;
// EFBIG under `ulimit -f` with SIGXFSZ ignored) removes every partial file and says so in one line.
import assert from "node:assert/strict";
import { ArchiveWriter } from "../mod/archive/writer.ts";
import { freeBytes } from "../mod/diskspace.ts";
import { exportAllArgs, isOneLineError, runCli } from "./_cli.ts";
import { listDir, TEST_DATADIR, withTempDir } from "./_files.ts";
import { packArchive, withSmallFs } from "./archive_fixtures.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** The export modes: the default, and --raw when the CLI has it. */
async function exportModes(): Promise<string[][]> {
  const help = await runCli(["export", "--help"]);
  return /--raw\b/.test(help.stdout) ? [[], ["--raw"]] : [[]];
}

Deno.test("an estimate larger than the free space is refused before anything is written", async () => {
  await withTempDir("promcase-space-", async (dir) => {
    const free = await freeBytes(dir);
    assert.ok(free !== null && free > 0, "df tells the free space here");
    const needed = 2 ** 52;
    await assert.rejects(
      ArchiveWriter.create(`${dir}/x.tar.gz`, "gzip", { estimatedBytes: needed }),
      new RegExp(
        `^PromcaseError: not enough free space for ${dir}/x\\.tar\\.gz: it needs up to .* ` +
          `\\(${needed} bytes\\) but ${dir} has .* \\(\\d+ bytes\\) free$`,
      ),
    );
    assert.deepEqual(await listDir(dir), []);
    // The check can be switched off, and a small enough estimate passes.
    for (
      const options of [{ estimatedBytes: needed, freeSpaceCheck: false }, { estimatedBytes: 1 }]
    ) {
      const writer = await ArchiveWriter.create(`${dir}/x.tar.gz`, "gzip", options);
      await writer.abort();
    }
    assert.deepEqual(await listDir(dir), []);
  });
});

Deno.test("a full disk mid-write removes the partial archive, split or not", async () => {
  const size = 64 * 1024;
  const skipped = await withSmallFs(size, async (dir) => {
    const free = await freeBytes(dir);
    assert.ok(free !== null && free <= size && free > size - 16 * 1024, `tmpfs free: ${free}`);
    // The whole test data dir, uncompressed, is several times larger than the file system.
    await assert.rejects(
      packArchive(TEST_DATADIR, `${dir}/x.tar`, "none"),
      new RegExp(
        `disk full while writing ${dir}/x\\.tar: partial archive removed \\(no space left on device\\)`,
      ),
    );
    assert.deepEqual(await listDir(dir), []);
    await assert.rejects(
      packArchive(TEST_DATADIR, `${dir}/y.tar`, "none", { split: 16 * 1024 }),
      new RegExp(`disk full while writing ${dir}/y\\.tar\\.part00\\d: partial archive removed`),
    );
    assert.deepEqual(await listDir(dir), [], "every part is removed");

    // Through the CLI, in every export mode: refused up front or stopped mid-way, never a trace.
    for (const mode of await exportModes()) {
      const result = await runCli([
        ...exportAllArgs(TEST_DATADIR, `${dir}/z.tar`),
        ...mode,
        "--compression",
        "none",
        "--no-prometheus-api",
      ]);
      const what = mode.join(" ") || "(default mode)";
      assert.equal(result.code, 1, `${what}: ${result.stderr}`);
      assert.ok(isOneLineError(result), `${what}: ${result.stderr}`);
      assert.match(
        result.stderr,
        /disk full while writing \S+: partial archive removed|not enough free space/,
        what,
      );
      assert.deepEqual(await listDir(dir), [], what);
    }
  });
  if (skipped) console.log(`tmpfs part skipped: ${skipped}`);
});

Deno.test("a file size limit (EFBIG) mid-write removes the partial archive", async () => {
  if (Deno.build.os === "windows") {
    console.log("skipped: ulimit -f needs a POSIX shell");
    return;
  }
  await withTempDir("promcase-efbig-", async (dir) => {
    for (const mode of await exportModes()) {
      const what = mode.join(" ") || "(default mode)";
      // 16 KiB per file: bash counts -f in KiB. SIGXFSZ ignored turns the limit into EFBIG.
      const script = 'ulimit -f 16 && trap "" XFSZ && exec "$@"';
      const output = await new Deno.Command("bash", {
        args: [
          "-c",
          script,
          "bash",
          Deno.execPath(),
          "run",
          "--allow-all",
          MAIN,
          ...exportAllArgs(TEST_DATADIR, `${dir}/x.tar`),
          ...mode,
          "--compression",
          "none",
          "--no-prometheus-api",
        ],
        stdout: "null",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 1, `${what}: ${stderr}`);
      assert.ok(isOneLineError({ code: output.code, stdout: "", stderr }), `${what}: ${stderr}`);
      assert.match(
        stderr,
        /disk full while writing \S+: partial archive removed \(file too large\)/,
        what,
      );
      assert.deepEqual(await listDir(dir), [], what);
    }
  });
});
