/**
 * Regenerates `datadir/` here: a head (checkpoint and one WAL segment) with the WAL records of
 * Prometheus releases after 3.5 and of unreleased branches. See README.md here and
 * `tests/_wal_newer_fixture.ts`, which describes and writes it.
 *
 *   usage: deno run -A tests/testdata/wal_newer/generate.ts   (from the project dir; instant)
 *
 * @module
 */

import { writeWalNewer } from "../../_wal_newer_fixture.ts";

const dir = new URL("./datadir", import.meta.url).pathname;
await Deno.remove(dir, { recursive: true }).catch(() => {});
await writeWalNewer(dir);
console.log(`wrote ${dir}`);
