/**
 * `promtool tsdb` as the reference reader of blocks and data dirs: dump and analyze, always on a
 * copy so test data is never touched.
 *
 * @module
 */

import type { PrometheusBinaries } from "./_prometheus.ts";
import { copyTree } from "./_files.ts";

/** Runs a command; resolves to its stdout, rejects with its stderr when it fails. */
export async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return text;
}

/**
 * `promtool tsdb dump` of a data dir (blocks and head) or of one block dir (`block: true`),
 * run on a fresh copy: promtool opens a read-only DB there and needs a wal/ dir.
 */
export async function promtoolDump(
  bin: PrometheusBinaries,
  dir: string,
  extra: string[] = [],
  options: { block?: boolean } = {},
): Promise<string[]> {
  const tmp = await Deno.makeTempDir({ prefix: "promcase-tsdb-dump-" });
  try {
    const db = `${tmp}/db`;
    if (options.block) {
      await Deno.mkdir(db);
      await copyTree(dir, `${db}/${dir.split("/").pop()}`);
    } else {
      await copyTree(dir, db);
    }
    await Deno.mkdir(`${db}/wal`, { recursive: true });
    // 2.42 has no sandbox flag; 2.53 defaults it to "data/" relative to the working directory.
    const sandbox = bin.version.startsWith("2.42") ? [] : [`--sandbox-dir-root=${tmp}`];
    const text = await run(bin.promtool, ["tsdb", "dump", ...sandbox, ...extra, db]);
    return text.split("\n").filter((l) => l !== "");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/** `promtool tsdb analyze --extended PARENT ULID`: fails when promtool cannot read the block. */
export async function promtoolAnalyze(
  bin: PrometheusBinaries,
  parent: string,
  ulid: string,
): Promise<string> {
  return await run(bin.promtool, ["tsdb", "analyze", "--extended", parent, ulid]);
}
