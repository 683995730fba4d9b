// The rewrite's archive takes the block's chunk segments while the block is written: at most
// SEGMENTS_QUEUED complete segments (each an open file) wait for their turn, then the block writer
// waits. Segments handed over faster than they are compressed must not pile up as open files.
import assert from "node:assert/strict";
import { BlockArchive, SEGMENTS_QUEUED } from "../mod/export.ts";
import { withTempDir } from "./_files.ts";
import { seededRandom } from "./_random.ts";

/** Files under `dir` this process holds open. */
function openFilesIn(dir: string): number {
  let n = 0;
  for (const fd of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${fd.name}`).startsWith(`${dir}/0`)) n++;
    } catch { /* closed meanwhile */ }
  }
  return n;
}

Deno.test({
  name: "block archive: segments handed over faster than compressed wait as a few open files",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await withTempDir("promcase-block-archive-", async (dir) => {
      const random = seededRandom(11);
      const segments = 24;
      // Incompressible: each takes the worker a while.
      const bytes = new Uint8Array(2 * 1024 * 1024).map(() => Math.floor(random() * 256));
      for (let i = 1; i <= segments; i++) {
        await Deno.writeFile(`${dir}/${String(i).padStart(6, "0")}`, bytes);
      }
      const archive = await BlockArchive.create(`${dir}/out.tar.zst`, { compression: "zstd" });
      let most = 0;
      try {
        for (let i = 1; i <= segments; i++) {
          const name = String(i).padStart(6, "0");
          await archive.onChunkSegment({
            ulid: "01M9997C79A3H2C8BGZ6AG387R",
            name: `chunks/${name}`,
            path: `${dir}/${name}`,
          });
          most = Math.max(most, openFilesIn(dir));
        }
      } finally {
        await archive.abort();
      }
      // The queued segments, the one being read among them.
      assert.ok(most <= SEGMENTS_QUEUED, `${most} segments open at once`);
      assert.ok(most >= SEGMENTS_QUEUED, `${most}: the segments did queue`);
    });
  },
});
