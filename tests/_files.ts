/**
 * File-system helpers shared by the tests: temporary dirs that are always removed, copies of the
 * committed test data, listings, and GNU tar as an independent reader of archives.
 *
 * @module
 */

import assert from "node:assert/strict";

/** The real Prometheus 2.42 data dir committed under tests/testdata (never write into it). */
export const TEST_DATADIR = new URL("./testdata/datadir", import.meta.url).pathname;

/** Runs `fn` with a fresh temporary dir, removed afterwards whatever happens. */
export async function withTempDir(
  prefix: string,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The names in a dir, sorted. */
export async function listDir(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

/** Whether anything exists at `path` (a final symlink is not followed). */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Copies a tree with `cp -a` (modes and times kept), failing the test when cp fails. */
export async function copyTree(from: string, to: string): Promise<void> {
  const result = await new Deno.Command("cp", { args: ["-a", from, to], stderr: "piped" }).output();
  assert.ok(result.success, `cp -a ${from} ${to}: ${new TextDecoder().decode(result.stderr)}`);
}

/** The entry names of an archive as GNU tar lists them (it detects the compression itself). */
export async function tarListing(archive: string): Promise<string> {
  const result = await new Deno.Command("tar", {
    args: ["-tf", archive],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(result.success, `tar -tf ${archive}: ${new TextDecoder().decode(result.stderr)}`);
  return new TextDecoder().decode(result.stdout);
}
