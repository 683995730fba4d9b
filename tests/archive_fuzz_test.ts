// Fuzzing verify and restore with real archives (`promcase export` of the committed data dir, in
// every compression): seeded random byte flips and truncations. Whatever the damage:
// - with the sidecar beside it, verify exits 1 with one-line problems and no stack trace, and
//   restore fails without leaving its target (or anything else) behind;
// - without the sidecar, truncations are still always found, and a flip may only go unnoticed
//   where it cannot change what restore delivers: what the manifest hashes (every shipped file)
//   is always checked. A flip in tar padding, in a gzip header's mtime/OS bytes or in zstd
//   framing that still decodes to the same bytes changes no delivered byte; a flip inside
//   manifest.json's own text that leaves valid JSON (the host name, say) is only caught by the
//   sidecar, since the manifest cannot hash itself. Such cases are counted and printed.
import assert from "node:assert/strict";
import { main } from "../main.ts";
import { exportAllArgs, isOneLineError, runCli, runCliJson } from "./_cli.ts";
import { listDir, TEST_DATADIR, withTempDir } from "./_files.ts";
import { snapshot } from "./archive_fixtures.ts";
import { seededRandom } from "./_random.ts";

// FUZZ_CASES=n and FUZZ_SEED=n explore further; the defaults keep CI fast and reproducible.
const CASES_PER_COMPRESSION = Number(Deno.env.get("FUZZ_CASES") ?? 50);
const CLI_SAMPLES_PER_COMPRESSION = 4;

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in this process (the same code path as main.ts), capturing its output. */
async function runInProcess(args: string[]): Promise<Outcome> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...parts: unknown[]) => void out.push(parts.join(" "));
  console.error = (...parts: unknown[]) => void err.push(parts.join(" "));
  try {
    const code = await main(args);
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

function assertCleanFailure(what: string, command: string, result: Outcome): void {
  assert.notEqual(result.code, 0, `${what}: ${command} must fail`);
  const lines = result.stderr.trim().split("\n");
  assert.ok(lines.length >= 1 && lines[0] !== "", `${what}: ${command} says why`);
  for (const line of lines) {
    assert.ok(line.startsWith(`promcase ${command}: `), `${what}: ${command}: ${line}`);
    assert.ok(!/^\s+at /.test(line) && !/Uncaught/.test(line), `${what}: ${result.stderr}`);
  }
}

type Damage = { kind: "flip"; offsets: number[]; masks: number[] } | {
  kind: "truncate";
  length: number;
};

function damage(bytes: Uint8Array, d: Damage): Uint8Array {
  if (d.kind === "truncate") return bytes.slice(0, d.length);
  const copy = bytes.slice();
  d.offsets.forEach((offset, i) => (copy[offset] ^= d.masks[i]));
  return copy;
}

function randomDamage(random: () => number, size: number): Damage {
  if (random() < 0.35) {
    // Biased to the end, where the manifest and the end blocks are, and sometimes to nothing.
    const r = random();
    const length = r < 0.1 ? 0 : Math.floor(size * (r < 0.5 ? random() : 1 - random() * 0.05));
    return { kind: "truncate", length: Math.min(length, size - 1) };
  }
  const count = 1 + Math.floor(random() * 3);
  const offsets = Array.from({ length: count }, () => Math.floor(random() * size));
  const masks = offsets.map(() => 1 + Math.floor(random() * 255));
  return { kind: "flip", offsets, masks };
}

Deno.test("fuzzed archives: verify always fails cleanly, restore never leaves a trace", async () => {
  await withTempDir("promcase-fuzz-", async (dir) => {
    const random = seededRandom(Number(Deno.env.get("FUZZ_SEED") ?? 0x5eed));
    let undetectedWithoutSidecar = 0;
    const cliSamples: { what: string; path: string; caseDir: string }[] = [];
    for (const compression of ["gzip", "zstd", "none"] as const) {
      const original = `${dir}/orig-${compression}.tar`;
      await runCliJson([
        ...exportAllArgs(TEST_DATADIR, original),
        "--compression",
        compression,
        "--no-prometheus-api",
      ]);
      const bytes = await Deno.readFile(original);
      const sidecar = await Deno.readTextFile(`${original}.sha256`);
      const manifest = JSON.parse(
        (await runInProcess(["verify", original, "--json"])).stdout,
      ) as { ok: boolean };
      assert.ok(manifest.ok, "the pristine archive verifies");
      // What restore delivers from the pristine archive: the reference for undetected damage.
      await runInProcess(["restore", original, "--into", `${dir}/ref-${compression}`]);
      const reference = await snapshot(`${dir}/ref-${compression}/data`);

      for (let i = 0; i < CASES_PER_COMPRESSION; i++) {
        const d = randomDamage(random, bytes.length);
        const what = `${compression} case ${i} ${JSON.stringify(d)}`;
        const caseDir = `${dir}/${compression}-${i}`;
        await Deno.mkdir(caseDir);
        const path = `${caseDir}/a.tar`;
        await Deno.writeFile(path, damage(bytes, d));
        await Deno.writeTextFile(`${path}.sha256`, sidecar.replace(/\S+$/m, "a.tar"));
        const before = await snapshot(caseDir);

        // With the sidecar: every change is found.
        assertCleanFailure(what, "verify", await runInProcess(["verify", path]));
        assertCleanFailure(
          what,
          "restore",
          await runInProcess(["restore", path, "--into", `${caseDir}/target`]),
        );
        assert.deepEqual(await snapshot(caseDir), before, `${what}: restore left nothing behind`);
        if (i < CLI_SAMPLES_PER_COMPRESSION) cliSamples.push({ what, path, caseDir });

        // Without it: truncations are found; a flip that is not found changed nothing delivered.
        const copy = `${caseDir}/bare.tar`;
        await Deno.copyFile(path, copy);
        const bare = await runInProcess(["verify", copy]);
        if (bare.code !== 0) {
          assertCleanFailure(what, "verify", bare);
          const r = await runInProcess(["restore", copy, "--into", `${caseDir}/bare-target`]);
          assertCleanFailure(what, "restore", r);
          assert.deepEqual((await listDir(caseDir)).sort(), ["a.tar", "a.tar.sha256", "bare.tar"]);
        } else {
          assert.equal(d.kind, "flip", `${what}: a truncation must never verify`);
          undetectedWithoutSidecar++;
          const r = await runInProcess(["restore", copy, "--into", `${caseDir}/bare-target`]);
          assert.equal(r.code, 0, `${what}: ${r.stderr}`);
          assert.deepEqual(
            await snapshot(`${caseDir}/bare-target/data`),
            reference,
            `${what}: undetected damage changed restored data`,
          );
        }
      }
    }
    console.log(
      `fuzz: ${3 * CASES_PER_COMPRESSION} damaged archives; ${undetectedWithoutSidecar} flips ` +
        "changed no delivered byte and were only caught by the sidecar",
    );

    // A sample through the real CLI process: exit code 1, no stack trace, no uncaught error.
    const results = await Promise.all(cliSamples.map(async (s) => ({
      ...s,
      verify: await runCli(["verify", s.path]),
      restore: await runCli(["restore", s.path, "--into", `${s.caseDir}/cli-target`]),
    })));
    for (const { what, verify, restore } of results) {
      assert.equal(verify.code, 1, `${what}: ${verify.stderr}`);
      assert.ok(
        !/^\s+at |error: Uncaught/m.test(verify.stderr + restore.stderr),
        verify.stderr + restore.stderr,
      );
      assert.equal(restore.code, 1, `${what}: ${restore.stderr}`);
      assert.ok(isOneLineError(restore), `${what}: ${restore.stderr}`);
    }
    for (const { caseDir } of results) {
      assert.ok(!(await listDir(caseDir)).some((n) => n.includes("target")), caseDir);
    }
  });
});

/** In an uncompressed tar: the offset of the first padding byte after a file's content. */
function _paddingOffset(tar: Uint8Array): number {
  for (let pos = 0; pos + 512 <= tar.length;) {
    const header = tar.subarray(pos, pos + 512);
    if (header.every((b) => b === 0)) break;
    const size = parseInt(
      new TextDecoder().decode(header.subarray(124, 136)).replace(/\0.*$/s, "").trim() || "0",
      8,
    );
    if (header[156] === 0x30 && size % 512 !== 0) return pos + 512 + size;
    pos += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error("no padded file in the archive");
}

Deno.test("damage outside the hashed content is caught by the sidecar and changes nothing restored", async () => {
  await withTempDir("promcase-fuzz-", async (dir) => {
    for (const compression of ["none", "gzip"] as const) {
      const original = `${dir}/orig-${compression}`;
      await runCliJson([
        ...exportAllArgs(TEST_DATADIR, original),
        "--compression",
        compression,
        "--no-prometheus-api",
      ]);
      await runInProcess(["restore", original, "--into", `${dir}/ref-${compression}`]);
      const bytes = await Deno.readFile(original);
      // Tar padding after a file's content, or the MTIME field of the gzip header: no checksum
      // inside the archive covers either.
      const at = compression === "none" ? _paddingOffset(bytes) : 4;
      bytes[at] ^= 0x5a;
      const damaged = `${dir}/damaged-${compression}`;
      await Deno.writeFile(damaged, bytes);
      const bare = await runInProcess(["verify", damaged]);
      assert.equal(bare.code, 0, `${compression}: ${bare.stderr}`);
      await runInProcess(["restore", damaged, "--into", `${dir}/got-${compression}`]);
      assert.deepEqual(
        await snapshot(`${dir}/got-${compression}/data`),
        await snapshot(`${dir}/ref-${compression}/data`),
      );
      await Deno.copyFile(`${original}.sha256`, `${damaged}.sha256`);
      await Deno.writeTextFile(
        `${damaged}.sha256`,
        (await Deno.readTextFile(`${damaged}.sha256`)).replace(/\S+$/m, `damaged-${compression}`),
      );
      const checked = await runInProcess(["verify", damaged]);
      assert.equal(checked.code, 1);
      assert.match(checked.stderr, /does not match its checksum file/);
    }
  });
});
