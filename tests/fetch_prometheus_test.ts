// tools/fetch-prometheus.sh, the script that gets a fresh clone its Prometheus releases, on its
// upstream path (the one GitHub Actions and machines without Debian's apt take): release tarballs
// served from a local mirror laid out as GitHub's release downloads, holding stand-in binaries, so
// the test needs no network. The Debian path is the one every other e2e test's releases came from.
import assert from "node:assert/strict";
import { withTempDir } from "./_files.ts";

const SCRIPT = new URL("../tools/fetch-prometheus.sh", import.meta.url).pathname;
const VERSIONS = { bookworm: "2.42.0", trixie: "2.53.3", sid: "3.5.3" };

/** The `<os>-<arch>` of Prometheus' release names for this machine. */
function platform(): string {
  const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
  return `${Deno.build.os}-${arch}`;
}

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A mirror of `<base>/v<version>/{prometheus-<version>.<platform>.tar.gz,sha256sums.txt}`. */
async function makeMirror(base: string): Promise<void> {
  for (const version of Object.values(VERSIONS)) {
    const name = `prometheus-${version}.${platform()}`;
    const dir = `${base}/v${version}`;
    await Deno.mkdir(`${dir}/${name}`, { recursive: true });
    for (const bin of ["prometheus", "promtool"]) {
      await Deno.writeTextFile(
        `${dir}/${name}/${bin}`,
        `#!/bin/sh\necho "${bin}, version ${version}"\n`,
        { mode: 0o755 },
      );
    }
    await Deno.writeTextFile(`${dir}/${name}/LICENSE`, "stand-in\n");
    const tar = await new Deno.Command("tar", {
      args: ["-czf", `${name}.tar.gz`, name],
      cwd: dir,
    }).output();
    assert.ok(tar.success);
    await Deno.remove(`${dir}/${name}`, { recursive: true });
    // Other platforms' lines too, as the real file has them.
    const sum = await sha256(`${dir}/${name}.tar.gz`);
    await Deno.writeTextFile(
      `${dir}/sha256sums.txt`,
      `${"0".repeat(64)}  prometheus-${version}.windows-amd64.zip\n${sum}  ${name}.tar.gz\n`,
    );
  }
}

async function fetchInto(
  dest: string,
  mirror: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("bash", {
    args: [SCRIPT, dest],
    env: {
      PROMCASE_PROMETHEUS_SOURCE: "upstream",
      PROMCASE_PROMETHEUS_DOWNLOAD: `file://${mirror}`,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("fetch-prometheus.sh unpacks upstream tarballs in the tests' layout, once", async () => {
  await withTempDir("promcase-fetch-", async (tmp) => {
    const mirror = `${tmp}/mirror`;
    const dest = `${tmp}/releases`;
    await makeMirror(mirror);

    const first = await fetchInto(dest, mirror);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(
      first.stdout.trim().split("\n"),
      Object.values(VERSIONS).map((v) => `${v} ${dest}/${v}/usr/bin`),
    );
    for (const [suite, version] of Object.entries(VERSIONS)) {
      assert.equal(await Deno.readLink(`${dest}/${suite}`), version);
      for (const bin of ["prometheus", "promtool"]) {
        const path = `${dest}/${suite}/usr/bin/${bin}`;
        assert.ok(((await Deno.stat(path)).mode ?? 0) & 0o100, `${path} is not executable`);
        const run = await new Deno.Command(path, { stdout: "piped" }).output();
        assert.equal(new TextDecoder().decode(run.stdout), `${bin}, version ${version}\n`);
      }
    }
    // Only the two binaries are unpacked, and no temporary dir is left in DEST.
    const entries = [];
    for await (const e of Deno.readDir(`${dest}/2.42.0/usr/bin`)) entries.push(e.name);
    assert.deepEqual(entries.sort(), ["prometheus", "promtool"]);
    const top = [];
    for await (const e of Deno.readDir(dest)) top.push(e.name);
    assert.deepEqual(top.sort(), ["2.42.0", "2.53.3", "3.5.3", "bookworm", "sid", "trixie"]);

    // Idempotent: with every release present, a second run does not download (the mirror is gone).
    await Deno.remove(mirror, { recursive: true });
    const again = await fetchInto(dest, mirror);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, first.stdout);
    assert.equal(again.stderr, "");
  });
});

Deno.test("fetch-prometheus.sh refuses a tarball whose sha256 does not match", async () => {
  await withTempDir("promcase-fetch-", async (tmp) => {
    const mirror = `${tmp}/mirror`;
    const dest = `${tmp}/releases`;
    await makeMirror(mirror);
    const sums = `${mirror}/v2.53.3/sha256sums.txt`;
    const text = await Deno.readTextFile(sums);
    await Deno.writeTextFile(sums, text.replace(/\n[0-9a-f]/, "\nx"));

    const run = await fetchInto(dest, mirror);
    assert.equal(run.code, 1);
    assert.match(
      run.stderr,
      /prometheus-2\.53\.3\.\S+\.tar\.gz: sha256 [0-9a-f]{64} does not match/,
    );
    assert.match(run.stderr, /trixie: Prometheus 2\.53\.3 could not be fetched/);
    // The other releases are there; the refused one left nothing behind.
    const top = [];
    for await (const e of Deno.readDir(dest)) top.push(e.name);
    assert.deepEqual(top.sort(), ["2.42.0", "3.5.3", "bookworm", "sid"]);
  });
});
