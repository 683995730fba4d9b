// Faults during export, in the default mode and with --raw (when this promcase has it): SIGINT or
// SIGTERM in the middle of writing leaves no partial archive, exits 130/143 with one line, and a
// re-run succeeds; an unreadable file fails the export in one line and leaves nothing.
//
// The interrupt must land while the export is writing, whatever the speed of the machine: the test
// runs the export in slices (SIGSTOP/SIGCONT), looks at the output dir while it is stopped, and
// sends the signal as soon as anything of the archive (a temporary file or staging dir) is there.
import assert from "node:assert/strict";
import { exportAllArgs, isOneLineError, runCli, runCliJson, UNPRIVILEGED } from "./_cli.ts";
import { copyTree, listDir, TEST_DATADIR, withTempDir } from "./_files.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The export modes to test: the default, and --raw when the CLI has it. */
async function exportModes(): Promise<string[][]> {
  const help = await runCli(["export", "--help"]);
  return /--raw\b/.test(help.stdout) ? [[], ["--raw"]] : [[]];
}

/** Starts an export and interrupts it with `signal` once its output has begun to appear. */
async function interruptExport(
  args: string[],
  out: string,
  signal: "SIGINT" | "SIGTERM",
): Promise<{ code: number; stderr: string; caught: boolean }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, ...args],
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let caught = false;
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const deadline = Date.now() + 30_000;
  while (!exited && Date.now() < deadline) {
    try {
      child.kill("SIGSTOP");
    } catch {
      break; // already gone
    }
    const names = await listDir(out);
    // Something of the archive is there (temporary file, staging dir) but not the finished one.
    const started = names.length > 0 && !names.some((n) => /^case\.tar\.gz(\.sha256)?$/.test(n));
    if (started) {
      child.kill(signal);
      caught = true;
    }
    child.kill("SIGCONT");
    if (caught) break;
    await sleep(1);
  }
  if (!caught && !exited) child.kill("SIGKILL");
  const { code } = await status;
  return { code, stderr: await stderr, caught };
}

Deno.test("SIGINT and SIGTERM mid-export leave nothing, exit 130/143 in one line, and a re-run works", async () => {
  await withTempDir("promcase-faults-", async (dir) => {
    for (const mode of await exportModes()) {
      for (const [signal, expected] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
        const what = `${signal} ${mode.join(" ") || "(default mode)"}`;
        const out = `${dir}/out-${signal}${mode.join("")}`;
        await Deno.mkdir(out);
        const args = [
          ...exportAllArgs(TEST_DATADIR, `${out}/case.tar.gz`),
          ...mode,
          "--no-prometheus-api",
        ];
        // A signal that lands in the last instant may lose to the finished export (exit 0 and a
        // complete archive); anything else than these two outcomes fails, and the first must
        // happen at least once.
        let interrupted = 0;
        for (let attempt = 0; attempt < 5 && interrupted === 0; attempt++) {
          const result = await interruptExport(args, out, signal);
          const left = await listDir(out);
          if (result.code === 0) {
            assert.deepEqual(left, ["case.tar.gz", "case.tar.gz.sha256"], `${what}: finished`);
            const verified = await runCliJson<{ ok: boolean }>(["verify", `${out}/case.tar.gz`]);
            assert.equal(verified.ok, true, what);
            for (const name of left) await Deno.remove(`${out}/${name}`);
            continue;
          }
          assert.ok(result.caught, `${what}: exit ${result.code}: ${result.stderr}`);
          assert.equal(result.code, expected, `${what}: exit ${result.code}: ${result.stderr}`);
          const lines = result.stderr.trim().split("\n");
          assert.equal(lines.length, 1, `${what}: ${result.stderr}`);
          assert.match(
            lines[0],
            new RegExp(`^promcase: interrupted by ${signal}; removing partial output$`),
          );
          assert.deepEqual(left, [], `${what}: nothing is left behind: ${result.stderr}`);
          interrupted++;
        }
        assert.equal(interrupted, 1, `${what}: the export was never interrupted mid-write`);

        await runCliJson(args);
        assert.deepEqual(await listDir(out), ["case.tar.gz", "case.tar.gz.sha256"]);
        const verified = await runCliJson<{ ok: boolean }>(["verify", `${out}/case.tar.gz`]);
        assert.equal(verified.ok, true, what);
      }
    }
  });
});

Deno.test("an unreadable WAL segment or chunk file fails the export in one line and leaves nothing", async () => {
  await withTempDir("promcase-faults-", async (dir) => {
    const data = `${dir}/data`;
    await copyTree(TEST_DATADIR, data);
    const block = (await listDir(data)).find((n) => /^[0-9A-Z]{26}$/.test(n))!;
    const segment = (await listDir(`${data}/wal`)).filter((n) => /^\d{8}$/.test(n)).at(-1)!;
    const wrapper = UNPRIVILEGED;
    for (const mode of await exportModes()) {
      for (const file of [`wal/${segment}`, `${block}/chunks/000001`]) {
        const what = `${file} ${mode.join(" ") || "(default mode)"}`;
        await Deno.chmod(`${data}/${file}`, 0o000);
        const out = `${dir}/out`;
        await Deno.mkdir(out);
        const result = await runCli(
          [
            ...exportAllArgs(data, `${out}/x.tar.gz`),
            ...mode,
            "--no-prometheus-api",
          ],
          { wrapper },
        );
        assert.equal(result.code, 1, `${what}: ${result.stderr}`);
        assert.ok(isOneLineError(result), `${what}: ${result.stderr}`);
        assert.match(result.stderr, /permission denied/, what);
        if (mode.includes("--raw")) {
          assert.ok(result.stderr.includes(file), `${what}: ${result.stderr}`);
        }
        assert.deepEqual(await listDir(out), [], `${what}: nothing is left behind`);
        await Deno.remove(out);
        await Deno.chmod(`${data}/${file}`, 0o644);
      }
    }
  });
});
