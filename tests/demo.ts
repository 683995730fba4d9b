/**
 * `deno task demo`: the main job end to end on the real Prometheus data dir committed under
 * tests/testdata/datadir: export everything in it, verify the archive, restore it, and print the
 * command that would serve it. Works on a fresh clone; needs no Prometheus.
 *
 * @module
 */

import { main } from "../main.ts";
import { scanDataDir } from "../mod/datadir.ts";
import { formatTime } from "../mod/window.ts";

const datadir = new URL("./testdata/datadir", import.meta.url).pathname;
const work = await Deno.makeTempDir({ prefix: "promcase-demo-" });
const archive = `${work}/demo.tar.gz`;
// The incident: ten minutes after the newest block of the test data (its head ends in between).
const info = await scanDataDir(datadir);
const at = formatTime(info.blocks[info.blocks.length - 1].meta.maxTime + 600_000n);

const steps: [string, string[]][] = [
  ["inspect the data dir", ["inspect", datadir]],
  ["export the 24h before it", ["export", datadir, "--at", at, "--before", "24h", "-o", archive]],
  ["verify the archive", ["verify", archive]],
  ["restore it", ["restore", archive, "--into", `${work}/restored`]],
];
for (const [title, args] of steps) {
  console.log(`\n$ promcase ${args.join(" ")}    # ${title}`);
  const code = await main(args);
  if (code !== 0) {
    console.error(`demo: step "${title}" failed with exit code ${code}`);
    Deno.exit(code);
  }
}
console.log(`\nDemo output kept in ${work}`);
