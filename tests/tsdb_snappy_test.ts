// The whole-block snappy decoder (snappy.ts) against snappyjs: high-entropy and compressible
// blocks (long literals and long copies take the bulk path, runs that copy over themselves the
// byte path), output buffers shorter and longer than the block claims, and damaged blocks.
import assert from "node:assert/strict";
import { compress } from "snappyjs";
import { SnappyDecompressor } from "snappyjs/snappy_decompressor.js";
import { snappyDecodeInto } from "../mod/tsdb/snappy.ts";
import { snappyLength } from "../mod/tsdb/wlog.ts";
import { concatBytes } from "../mod/tsdb/encoding.ts";
import { seededRandom } from "./_random.ts";

/** snappyjs' decoding of `block` into a zeroed buffer of `length`. */
function reference(block: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const d = new SnappyDecompressor(block);
  d.readUncompressedLength();
  assert.ok(d.uncompressToBuffer(out));
  return out;
}

function decoded(block: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  assert.ok(snappyDecodeInto(block, out));
  return out;
}

/** Equal bytes, or the first difference (a diff of large arrays takes minutes). */
function assertSameBytes(got: Uint8Array, want: Uint8Array, label: string): void {
  let i = 0;
  while (i < want.length && got[i] === want[i]) i++;
  if (i < want.length || got.length !== want.length) {
    assert.fail(`${label}: ${got.length} bytes against ${want.length}, first difference at ${i}`);
  }
}

/** WAL-like bytes: runs of random bytes (sample values), repeats from near and far, zero runs. */
function walLike(length: number, seed: number): Uint8Array {
  const random = seededRandom(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length;) {
    const r = random();
    const n = Math.min(length - i, 1 + Math.floor(random() * (r < 0.3 ? 8 : 200)));
    if (r < 0.4 || i < 1000) {
      for (let j = 0; j < n; j++) out[i + j] = Math.floor(random() * 256);
    } else if (r < 0.8) {
      const from = i - 1 - Math.floor(random() * Math.min(i, 60_000));
      for (let j = 0; j < n; j++) out[i + j] = out[from + j];
    } else out.fill(r < 0.9 ? 0 : 0x7f, i, i + n);
    i += n;
  }
  return out;
}

Deno.test("snappy: blocks decode as snappyjs decodes them, into buffers of any length", () => {
  for (const [length, seed] of [[0, 1], [1, 2], [15, 3], [16, 4], [70_000, 5], [600_000, 6]]) {
    const data = walLike(length, seed);
    const block = compress(data);
    assert.equal(snappyLength(block), length);
    assertSameBytes(decoded(block, length), data, `${length}`);
    // A buffer shorter than the claim keeps its start; a longer one leaves the rest zero.
    for (const cut of [length - 1, length - 17, Math.floor(length / 3), length + 40]) {
      if (cut < 0) continue;
      assertSameBytes(decoded(block, cut), reference(block, cut), `${length} into ${cut}`);
    }
  }
  // Long copies from far back (the bulk path) and runs over themselves (the byte path).
  const random = seededRandom(7);
  const chunk = new Uint8Array(50_000).map(() => Math.floor(random() * 256));
  const data = concatBytes([chunk, new Uint8Array(5000).fill(9), chunk, chunk]);
  assertSameBytes(decoded(compress(data), data.length), data, "repeats");
});

Deno.test("snappy: long literals and overlapping runs, cut by the buffer's end", () => {
  const literal = new Uint8Array(300).map((_, i) => (i * 7) & 0xff);
  const elements = [
    0xf4, // a literal of 300 bytes, its length in 2 bytes: 299
    43,
    1,
    ...literal,
    (63 << 2) | 2, // a copy of 64 bytes at offset 1: a run over itself
    1,
    0,
    (39 << 2) | 3, // a copy of 40 bytes at offset 200 in 4 bytes: no overlap, the bulk path
    200,
    0,
    0,
    0,
    (19 << 2) | 2, // a copy of 20 bytes at offset 10: overlapping, longer than the bulk size
    10,
    0,
  ];
  const length = 300 + 64 + 40 + 20;
  const block = new Uint8Array([(length & 0x7f) | 0x80, length >> 7, ...elements]);
  for (const size of [length, length + 10, 410, 390, 330, 310, 299, 20, 0]) {
    assertSameBytes(decoded(block, size), reference(block, size), `into ${size}`);
  }
});

Deno.test("snappy: damaged blocks fail", () => {
  const cases: [string, number[]][] = [
    ["offset before the start", [10, 0x01 | (1 << 2), 5]],
    ["offset zero", [10, 0, 65, 0x01, 0]],
    ["copy cut by the end", [10, 0, 65, 0x02, 1]],
    ["literal longer than the block", [10, 0x0c, 1, 2]],
    ["literal length cut by the end", [10, 61 << 2, 1]],
    ["4-byte offset of 2^31", [10, 0, 65, 0x03, 0, 0, 0, 0x80]],
    ["no length", []],
    ["length of six bytes", [0x80, 0x80, 0x80, 0x80, 0x80, 0x01]],
  ];
  for (const [what, bytes] of cases) {
    assert.equal(snappyDecodeInto(new Uint8Array(bytes), new Uint8Array(10)), false, what);
  }
});
