/**
 * Helpers for the archive, restore and fault tests: archives packed straight from a data dir with
 * {@link ArchiveWriter} (any compression, split, mode), tree snapshots to prove nothing changed, a
 * seeded PRNG, and a small tmpfs to fill up.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { ARCHIVE_FORMAT, ARCHIVE_FORMAT_VERSION, type Manifest } from "../mod/archive/manifest.ts";
import type { Compression } from "../mod/archive/compression.ts";
import {
  ArchiveWriter,
  type ArchiveWriterOptions,
  type WrittenArchive,
} from "../mod/archive/writer.ts";
import { readPieces } from "../mod/fileio.ts";

/** Block dir names in a data dir, sorted. */
export async function blockDirs(dataDir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dataDir)) {
    if (entry.isDirectory && /^[0-9A-Z]{26}$/.test(entry.name)) names.push(entry.name);
  }
  return names.sort();
}

/** Every regular file below `dir`, as sorted relative paths. */
export async function filesBelow(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(prefix ? `${dir}/${prefix}` : dir)) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory) out.push(...await filesBelow(dir, rel));
    else if (entry.isFile) out.push(rel);
  }
  return out.sort();
}

/** What to pack with {@link packArchive}. */
export interface PackOptions extends ArchiveWriterOptions {
  /** Only these paths relative to the data dir (default: every file). */
  only?: (path: string) => boolean;
  /** Manifest fields to set (e.g. `mode`, `minPrometheusVersion`). */
  manifest?: Partial<Manifest>;
}

/**
 * Packs files of `dataDir` under `data/` into a new archive at `path`, with a manifest whose
 * `blocks` lists the block dirs packed (with their meta.json).
 */
export async function packArchive(
  dataDir: string,
  path: string,
  compression: Compression,
  options: PackOptions = {},
): Promise<WrittenArchive> {
  const files = (await filesBelow(dataDir)).filter((f) => options.only?.(f) ?? true);
  const writer = await ArchiveWriter.create(path, compression, options);
  const dirs = new Set<string>();
  for (const file of files) {
    const parts = `data/${file}`.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      if (!dirs.has(dir)) {
        dirs.add(dir);
        await writer.addDirectory(dir);
      }
    }
    const { size } = await Deno.stat(`${dataDir}/${file}`);
    await writer.addFile(`data/${file}`, size, readPieces(`${dataDir}/${file}`));
  }
  const blocks = [];
  for (const ulid of new Set(files.map((f) => f.split("/")[0]))) {
    if (!/^[0-9A-Z]{26}$/.test(ulid)) continue;
    const meta = JSON.parse(await Deno.readTextFile(`${dataDir}/${ulid}/meta.json`));
    blocks.push({ ulid, minTime: meta.minTime, maxTime: meta.maxTime, level: 1, meta });
  }
  return await writer.finish({ ...testManifest(compression), blocks, ...options.manifest });
}

/** A plausible manifest (everything but `files`) for archives made by tests. */
export function testManifest(compression = "gzip"): Omit<Manifest, "files"> {
  return {
    format: ARCHIVE_FORMAT,
    formatVersion: ARCHIVE_FORMAT_VERSION,
    tool: { name: "promcase", version: "test" },
    createdAt: new Date().toISOString(),
    host: "test",
    source: { kind: "datadir", dataDir: "/nowhere" },
    prometheus: { version: null, running: false },
    window: { fromMs: 0, toMs: 1, from: "1970-01-01T00:00:00Z", to: "1970-01-01T00:00:00.001Z" },
    incident: { at: "1970-01-01T00:00:00.001Z", atMs: 1 },
    compression,
    blocks: [],
    head: {
      included: false,
      reason: "",
      checkpoint: null,
      walSegments: [],
      chunksHead: [],
      wbl: [],
    },
    warnings: [],
  };
}

/** path -> "size sha256" of every file below `dir`, and "dir" for directories. */
export async function snapshot(dir: string): Promise<Map<string, string>> {
  const state = new Map<string, string>();
  const walk = async (rel: string) => {
    for await (const entry of Deno.readDir(rel ? `${dir}/${rel}` : dir)) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory) {
        state.set(path + "/", "dir");
        await walk(path);
      } else {
        const bytes = await Deno.readFile(`${dir}/${path}`);
        state.set(path, `${bytes.length} ${createHash("sha256").update(bytes).digest("hex")}`);
      }
    }
  };
  await walk("");
  return state;
}

/**
 * Runs `fn` with a fresh tmpfs of `bytes` mounted at a temporary dir, or returns the reason why no
 * such file system could be mounted (not root, no CAP_SYS_ADMIN in a container, not Linux).
 */
export async function withSmallFs(
  bytes: number,
  fn: (dir: string) => Promise<void>,
): Promise<string | null> {
  if (Deno.build.os !== "linux") return "tmpfs needs Linux";
  const dir = await Deno.makeTempDir({ prefix: "promcase-smallfs-" });
  try {
    const mount = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", dir],
      stdout: "null",
      stderr: "piped",
    }).output().catch((err) => ({ success: false, stderr: new TextEncoder().encode(`${err}`) }));
    if (!mount.success) {
      return `cannot mount a tmpfs: ${new TextDecoder().decode(mount.stderr).trim()}`;
    }
    try {
      await fn(dir);
    } finally {
      await new Deno.Command("umount", { args: [dir], stdout: "null", stderr: "null" }).output();
    }
    return null;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
