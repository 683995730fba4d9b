/**
 * Builds a synthetic Prometheus data dir for `bench/export_memory.sh`, or reuses the one already
 * there: 16 level-1 blocks of consecutive 2h ranges ending about an hour before now (each with
 * meta.json, index, empty tombstones and a 64 MiB `chunks/000001`) and 3 WAL segments (64, 64 and
 * 40 MiB), 1.29 GiB in all.
 *
 * The bytes are not real TSDB encodings but compress like them: deterministic (seeded xorshift128,
 * one seed per file path) pseudo-random runs mixed with low-entropy runs (like small XOR deltas and
 * varints) and back-references (like repeated label strings). Measured with gzip -6 / zstd -3:
 * chunks 1.23x / 1.23x, index 1.99x / 2.04x, WAL 1.59x / 1.61x, the whole tar 1.32x / 1.32x
 * (real TSDB chunks are XOR/delta encoded and compress little too; indexes compress better).
 *
 * Files are written in 1 MiB pieces; nothing holds a whole file. A marker file next to the dir
 * (`DIR.complete`, holding the layout) tells a later run that the dir is complete and reusable.
 *
 * Usage: deno run --allow-read --allow-write bench/make_datadir.ts DIR
 *
 * @module
 */

const MIB = 1024 * 1024;
const TWO_HOURS = 2 * 3600 * 1000;

/** The layout; a change here makes the next run rebuild the dir. */
const LAYOUT = {
  generator: 1,
  seed: 0x5eed_2026,
  blocks: 16,
  chunkBytes: 64 * MIB,
  indexBytes: 8 * MIB,
  walSegments: [64 * MIB, 64 * MIB, 40 * MIB],
  mix: {
    chunks: { random: 58, low: 28, repeat: 14 },
    index: { random: 20, low: 40, repeat: 40 },
    wal: { random: 35, low: 35, repeat: 30 },
  },
};

/** How a file's bytes are mixed: percentages of runs that stay random, go low-entropy, repeat. */
interface Mix {
  random: number;
  low: number;
  repeat: number;
}

/** xorshift128: fast, deterministic, good enough to look incompressible. */
class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    // splitmix32 to spread the seed over the state (which must not be all zeros).
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = next() | 1;
  }

  /** A uniform uint32. */
  next(): number {
    let t = this.#d;
    const s = this.#a;
    this.#d = this.#c;
    this.#c = this.#b;
    this.#b = s;
    t ^= t << 11;
    t ^= t >>> 8;
    this.#a = t ^ s ^ (s >>> 19);
    return this.#a >>> 0;
  }

  /** A uniform integer in [0, n). */
  below(n: number): number {
    return this.next() % n;
  }
}

/** FNV-1a of a string, to derive one seed per file. */
function hashString(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Fills `words` with runs of random, low-entropy and repeated 32-bit words. */
function fillMixed(words: Uint32Array, rng: Rng, mix: Mix): void {
  for (let i = 0; i < words.length; i++) words[i] = rng.next();
  let pos = 0;
  while (pos < words.length) {
    const len = Math.min(4 + rng.below(124), words.length - pos); // 16..508 bytes
    const kind = rng.below(100);
    if (kind >= mix.random + mix.low) {
      // A back-reference within gzip's 32 KiB window, like a label string seen before.
      const distance = 8 + rng.below(2000);
      if (pos >= distance) words.copyWithin(pos, pos - distance, pos - distance + len);
    } else if (kind >= mix.random) {
      // Few significant bits per byte, like small deltas and varints.
      const mask = rng.below(2) === 0 ? 0x0f0f0f0f : 0x03070f1f;
      for (let i = pos; i < pos + len; i++) words[i] &= mask;
    }
    pos += len;
  }
}

/** Writes `size` bytes of `mix` to `path`, after an optional fixed header. */
async function writeMixed(
  root: string,
  rel: string,
  size: number,
  mix: Mix,
  header: Uint8Array = new Uint8Array(0),
): Promise<void> {
  const rng = new Rng(hashString(rel, LAYOUT.seed));
  const buffer = new Uint8Array(MIB);
  const words = new Uint32Array(buffer.buffer);
  using file = await Deno.open(`${root}/${rel}`, { write: true, create: true, truncate: true });
  let left = size;
  let first = true;
  while (left > 0) {
    fillMixed(words, rng, mix);
    if (first) buffer.set(header);
    first = false;
    const piece = buffer.subarray(0, Math.min(buffer.length, left));
    let done = 0;
    while (done < piece.length) done += await file.write(piece.subarray(done));
    left -= piece.length;
  }
}

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** A ULID: 48-bit millisecond time, then 80 random bits, as 26 Crockford base32 characters. */
function ulid(timeMs: number, rng: Rng): string {
  let out = "";
  let t = timeMs;
  for (let i = 0; i < 10; i++) {
    out = CROCKFORD[t % 32] + out;
    t = Math.floor(t / 32);
  }
  for (let i = 0; i < 16; i++) out += CROCKFORD[rng.below(32)];
  return out;
}

function bytes(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

async function build(dir: string): Promise<number> {
  await Deno.mkdir(`${dir}/wal`, { recursive: true });
  const rng = new Rng(LAYOUT.seed);
  // Prometheus cuts a 2h block once the head spans 3h, so the newest block ends >= 1h ago.
  const now = Date.now();
  const end = Math.floor((now - 3600_000 - 1000) / TWO_HOURS) * TWO_HOURS;
  let total = 0;
  for (let i = 0; i < LAYOUT.blocks; i++) {
    const minTime = end - (LAYOUT.blocks - i) * TWO_HOURS;
    const maxTime = minTime + TWO_HOURS;
    const id = ulid(maxTime + 3600_000 + rng.below(1000), rng);
    await Deno.mkdir(`${dir}/${id}/chunks`, { recursive: true });
    const numSeries = 40_000 + rng.below(2000);
    const numChunks = numSeries * 2;
    const meta = {
      ulid: id,
      minTime,
      maxTime,
      stats: { numSamples: numChunks * 120, numSeries, numChunks },
      compaction: { level: 1, sources: [id] },
      version: 1,
    };
    await Deno.writeTextFile(`${dir}/${id}/meta.json`, JSON.stringify(meta, null, "\t"));
    // Index magic 0xBAAAD700, format 2; chunks magic 0x85BD40DD, format 1, 3 bytes padding.
    await writeMixed(
      dir,
      `${id}/index`,
      LAYOUT.indexBytes,
      LAYOUT.mix.index,
      bytes(0xba, 0xaa, 0xd7, 0, 2),
    );
    await Deno.writeFile(`${dir}/${id}/tombstones`, bytes(1, 0x30, 0xba, 0x30, 1, 0, 0, 0, 0));
    await writeMixed(
      dir,
      `${id}/chunks/000001`,
      LAYOUT.chunkBytes,
      LAYOUT.mix.chunks,
      bytes(0x85, 0xbd, 0x40, 0xdd, 1, 0, 0, 0),
    );
    total += LAYOUT.indexBytes + LAYOUT.chunkBytes;
    console.error(`make_datadir: block ${i + 1}/${LAYOUT.blocks} ${id}`);
  }
  for (const [i, size] of LAYOUT.walSegments.entries()) {
    await writeMixed(dir, `wal/${String(i).padStart(8, "0")}`, size, LAYOUT.mix.wal);
    total += size;
  }
  return total;
}

async function main(args: string[]): Promise<number> {
  if (args.length !== 1 || args[0].startsWith("-")) {
    console.error("usage: make_datadir.ts DIR");
    return 2;
  }
  const dir = args[0].replace(/\/+$/, "");
  const marker = `${dir}.complete`;
  const layout = JSON.stringify(LAYOUT);
  const existing = await Deno.readTextFile(marker).catch(() => null);
  if (existing?.trim() === layout) {
    console.error(`make_datadir: reusing ${dir}`);
    return 0;
  }
  await Deno.remove(marker).catch(() => {});
  await Deno.remove(dir, { recursive: true }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
  const started = performance.now();
  const total = await build(dir);
  await Deno.writeTextFile(marker, `${layout}\n`);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.error(`make_datadir: wrote ${(total / MIB).toFixed(0)} MiB to ${dir} in ${seconds}s`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
