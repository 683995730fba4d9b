// Split archives: NAME.part001… of at most SIZE bytes beside one sidecar listing every part. They
// verify and restore from any part, concatenate into the whole archive, check with sha256sum -c,
// and every missing, short or changed part is named in one line before (or instead of) a restore.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ArchiveWriter } from "../mod/archive/writer.ts";
import { isOneLineError, runCli, runCliJson } from "./_cli.ts";
import { listDir, pathExists, tarListing, TEST_DATADIR, withTempDir } from "./_files.ts";
import { packArchive, snapshot } from "./archive_fixtures.ts";

const withTemp = (fn: (dir: string) => Promise<void>) => withTempDir("promcase-split-", fn);

/** Every file of the test data dir, split into parts of `split` bytes. */
async function splitArchive(dir: string, compression: "gzip" | "none", split: number) {
  const path = `${dir}/case.tar${compression === "gzip" ? ".gz" : ""}`;
  const written = await packArchive(TEST_DATADIR, path, compression, { split });
  return { path, written };
}

Deno.test("a split archive is whole-archive parts that verify, restore and concatenate", async () => {
  await withTemp(async (dir) => {
    for (const [compression, split] of [["none", 100_000], ["gzip", 9_000]] as const) {
      const work = `${dir}/${compression}`;
      await Deno.mkdir(work);
      const { path, written } = await splitArchive(work, compression, split);
      const names = await listDir(work);
      const parts = names.filter((n) => /\.part\d{3}$/.test(n));
      assert.ok(parts.length >= 3, `${compression}: ${names.join(" ")}`);
      // Only the parts and the sidecar: no temporary file is left.
      assert.deepEqual(names, [...parts, `${path.split("/").pop()}.sha256`]);
      assert.deepEqual(
        parts,
        parts.map((_, i) =>
          `case.tar${compression === "gzip" ? ".gz" : ""}.part${String(i + 1).padStart(3, "0")}`
        ),
      );
      const sizes = await Promise.all(
        parts.map(async (n) => (await Deno.stat(`${work}/${n}`)).size),
      );
      assert.ok(sizes.slice(0, -1).every((s) => s === split), sizes.join(" "));
      assert.ok(sizes.at(-1)! > 0 && sizes.at(-1)! <= split);
      assert.deepEqual(written.parts.map((p) => p.path), parts.map((n) => `${work}/${n}`));

      // The sidecar checks every part with plain sha256sum, and the parts make the whole archive.
      const sums = await new Deno.Command("sha256sum", {
        args: ["-c", `${path.split("/").pop()}.sha256`],
        cwd: work,
        stdout: "piped",
      }).output();
      assert.ok(sums.success, new TextDecoder().decode(sums.stdout));
      const whole = `${dir}/whole-${compression}`;
      const bytes = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
      let at = 0;
      for (const name of parts) {
        const part = await Deno.readFile(`${work}/${name}`);
        bytes.set(part, at);
        at += part.length;
      }
      await Deno.writeFile(whole, bytes);
      assert.equal(createHash("sha256").update(bytes).digest("hex"), written.sha256);
      assert.match(await tarListing(whole), /^manifest\.json$/m);

      // Any part, all parts (a shell glob), the literal glob or the name verifies the whole.
      for (
        const args of [
          [`${path}.part001`],
          [`${path}.part002`],
          [path],
          [`${path}.part*`],
          parts.map((n) => `${work}/${n}`),
        ]
      ) {
        const result = await runCliJson<
          { ok: boolean; parts: string[]; sidecar: string; sha256: string }
        >(["verify", ...args]);
        assert.deepEqual([result.ok, result.sidecar, result.parts.length], [
          true,
          "ok",
          parts.length,
        ], args.join(" "));
        assert.equal(result.sha256, written.sha256);
      }
      const text = await runCli(["verify", `${path}.part003`]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, new RegExp(`^OK ${path}: .* in ${parts.length} parts; sidecar ok`));

      await runCliJson(["restore", `${path}.part002`, "--into", `${dir}/r-${compression}`]);
      const restored = await snapshot(`${dir}/r-${compression}/data`);
      const original = await snapshot(TEST_DATADIR);
      assert.deepEqual(restored, original, "restored data is the data dir, byte for byte");
    }
  });
});

Deno.test("a missing, short or changed part is named in one line and nothing is restored", async () => {
  await withTemp(async (dir) => {
    const { path } = await splitArchive(dir, "gzip", 9_000);
    const parts = (await listDir(dir)).filter((n) => /\.part\d{3}$/.test(n)).map((n) =>
      `${dir}/${n}`
    );
    const last = parts.at(-1)!;
    const pristine = new Map<string, Uint8Array>();
    for (const p of [...parts, `${path}.sha256`]) pristine.set(p, await Deno.readFile(p));
    const reset = async () => {
      for (const [p, bytes] of pristine) await Deno.writeFile(p, bytes);
    };

    const cases: [string, () => Promise<void>, RegExp][] = [
      [
        "missing middle part",
        () => Deno.remove(parts[1]),
        new RegExp(`missing part ${parts[1]}: ${path}\\.sha256 lists ${parts.length} parts`),
      ],
      ["missing last part", () => Deno.remove(last), new RegExp(`missing part ${last}: `)],
      ["missing part, no sidecar", async () => {
        await Deno.remove(parts[1]);
        await Deno.remove(`${path}.sha256`);
      }, new RegExp(`missing part ${parts[1]}: the parts on disk go up to ${last}`)],
      [
        "short middle part",
        () => Deno.truncate(parts[1], 8_000),
        new RegExp(
          `part ${parts[1]} is truncated: 8000 bytes where the parts before the last have 9000`,
        ),
      ],
      [
        "short last part",
        () => Deno.truncate(last, 10),
        new RegExp(`part ${last} does not match its checksum in ${path}\\.sha256|truncated`),
      ],
      ["changed part", async () => {
        const bytes = await Deno.readFile(parts[1]);
        bytes[4000] ^= 0x10;
        await Deno.writeFile(parts[1], bytes);
      }, new RegExp(`part ${parts[1]} does not match its checksum in ${path}\\.sha256`)],
    ];
    for (const [what, damage, message] of cases) {
      await damage();
      const before = await listDir(dir);
      const v = await runCli(["verify", parts[0]]);
      assert.equal(v.code, 1, `${what}: ${v.stderr}`);
      assert.match(v.stderr, message, what);
      assert.ok(
        v.stderr.trim().split("\n").every((l) => l.startsWith("promcase verify: ")),
        v.stderr,
      );
      assert.ok(!/\bat .*:\d+:\d+/.test(v.stderr), v.stderr);
      const r = await runCli(["restore", parts[0], "--into", `${dir}/r`]);
      assert.equal(r.code, 1, `${what}: ${r.stderr}`);
      assert.ok(isOneLineError(r), `${what}: ${r.stderr}`);
      assert.match(r.stderr, message, what);
      assert.deepEqual(await listDir(dir), before, `${what}: restore left nothing behind`);
      await reset();
    }
    // Without a sidecar a lost last part is still found: the stream ends early.
    await Deno.remove(`${path}.sha256`);
    await Deno.remove(last);
    const t = await runCli(["verify", path]);
    assert.equal(t.code, 1);
    assert.match(t.stderr, /archive is truncated/);
  });
});

Deno.test("split writes never overwrite, and an abandoned split write leaves nothing", async () => {
  await withTemp(async (dir) => {
    await Deno.writeTextFile(`${dir}/taken.tar.gz.part002`, "mine");
    await assert.rejects(
      ArchiveWriter.create(`${dir}/taken.tar.gz`, "gzip", { split: 4096 }),
      /taken\.tar\.gz\.part002 already exists/,
    );
    // An unsplit archive of that name would shadow the parts too.
    await assert.rejects(ArchiveWriter.create(`${dir}/taken.tar.gz`, "gzip"), /already exists/);
    assert.equal(await Deno.readTextFile(`${dir}/taken.tar.gz.part002`), "mine");
    await Deno.remove(`${dir}/taken.tar.gz.part002`);

    await assert.rejects(
      ArchiveWriter.create(`${dir}/a.tar`, "none", { split: 100 }),
      /at least 1024 bytes/,
    );
    const writer = await ArchiveWriter.create(`${dir}/a.tar`, "none", { split: 4096 });
    await writer.addBytes("data/x", new Uint8Array(20_000).fill(7));
    assert.ok((await listDir(dir)).length >= 4, "several temporary parts exist meanwhile");
    assert.ok((await listDir(dir)).every((n) => n.startsWith(".a.tar.part")));
    await writer.abort();
    assert.deepEqual(await listDir(dir), []);
    assert.equal(await pathExists(`${dir}/a.tar.part001`), false);
  });
});
