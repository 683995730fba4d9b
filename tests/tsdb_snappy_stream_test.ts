// The snappy block decoded as its bytes arrive (snappy_stream.ts) against snappyjs decoding it
// whole: blocks of every size, pushed in pieces cut anywhere (inside an element's header, a
// literal, the length header), runs that copy over themselves, and damaged blocks.
import assert from "node:assert/strict";
import { compress, uncompress } from "snappyjs";
import { SnappyDecompressor } from "snappyjs/snappy_decompressor.js";
import { SnappyStreamDecoder, SnappyStreamError } from "../mod/tsdb/snappy_stream.ts";
import { concatBytes } from "../mod/tsdb/encoding.ts";
import { seededRandom } from "./_random.ts";

/** Compressible bytes: label-like text, runs, noise. */
function sample(length: number, seed: number): Uint8Array {
  const random = seededRandom(seed);
  const words = ["__name__", "node_cpu_seconds_total", "instance", "10.0.0.", "job", "mode"];
  const out = new Uint8Array(length);
  for (let i = 0; i < length;) {
    const r = random();
    const word = new TextEncoder().encode(words[Math.floor(random() * words.length)]);
    const n = r < 0.5 ? word.length : r < 0.7 ? 1 + Math.floor(random() * 300) : 1;
    for (let j = 0; j < n && i < length; j++, i++) {
      out[i] = r < 0.5 ? word[j] : r < 0.7 ? 7 : Math.floor(random() * 256);
    }
  }
  return out;
}

/** Equal bytes, or the first difference (a diff of large arrays takes minutes). */
function assertSameBytes(got: Uint8Array, want: Uint8Array, label = ""): void {
  const n = Math.min(got.length, want.length);
  let i = 0;
  while (i < n && got[i] === want[i]) i++;
  if (i < n || got.length !== want.length) {
    assert.fail(`${label}: ${got.length} bytes against ${want.length}, first difference at ${i}`);
  }
}

function decodeInPieces(block: Uint8Array, seed: number, window?: number): Uint8Array {
  const random = seededRandom(seed);
  const out: Uint8Array[] = [];
  const d = new SnappyStreamDecoder((bytes) => out.push(bytes.slice()), window);
  for (let at = 0; at < block.length;) {
    const n = random() < 0.3 ? 1 + Math.floor(random() * 6) : Math.floor(random() * 70_000);
    d.push(block.subarray(at, at + n));
    at += n;
  }
  d.end();
  return concatBytes(out);
}

Deno.test("snappy stream: blocks of every size, cut anywhere, decode as snappyjs decodes them whole", () => {
  for (const [length, seed] of [[0, 1], [1, 2], [59, 3], [61, 4], [70_000, 5], [1_500_000, 6]]) {
    const data = sample(length, seed);
    const block = compress(data);
    for (let s = 0; s < 4; s++) {
      assertSameBytes(decodeInPieces(block, 10 * seed + s), uncompress(block), `${length} ${s}`);
    }
    assertSameBytes(decodeInPieces(block, seed), data);
  }
  // Copies from 50 KiB back: a window of less than that would lose them.
  const random = seededRandom(7);
  const chunk = new Uint8Array(50_000).map(() => Math.floor(random() * 256));
  const repeated = concatBytes([chunk, chunk, chunk, chunk]);
  assertSameBytes(decodeInPieces(compress(repeated), 8), repeated);
  // A window just larger than those copies: each slide of the output must keep all of it.
  for (let s = 0; s < 5; s++) {
    assertSameBytes(decodeInPieces(compress(repeated), s, 51_000), repeated);
  }
});

Deno.test("snappy stream: long literals, overlapping runs, short and long claims as snappyjs", () => {
  // Hand-made: a literal of 300 bytes (2-byte length), a run copying over itself (offset 1), a
  // copy with a 4-byte offset, then a claim longer than the data (zeros follow, as snappyjs
  // leaves them) or shorter (the rest is dropped).
  const literal = new Uint8Array(300).map((_, i) => i & 0xff);
  const elements = [
    0xf4,
    43,
    1,
    ...literal, // literal, 1 + 2 length bytes: 299 + 1
    (63 << 2) | 2,
    1,
    0, // copy of 64 bytes, offset 1
    (9 << 2) | 3,
    200,
    0,
    0,
    0, // copy of 10 bytes, offset 200 in 4 bytes
  ];
  for (const claimed of [374, 400, 350]) {
    const header = claimed < 128 ? [claimed] : [(claimed & 0x7f) | 0x80, claimed >> 7];
    const block = new Uint8Array([...header, ...elements]);
    // What wlog.ts decodes whole: snappyjs into a zeroed buffer of the claimed length.
    const want = new Uint8Array(claimed);
    const whole = new SnappyDecompressor(block);
    whole.readUncompressedLength();
    assert.ok(whole.uncompressToBuffer(want));
    for (let s = 0; s < 20; s++) {
      assertSameBytes(decodeInPieces(block, s), want, `${claimed} ${s}`);
    }
  }
});

Deno.test("snappy stream: damage and copies beyond the window fail", () => {
  const cases: [string, number[], RegExp, number?][] = [
    ["offset before the start", [10, 0x01 | (1 << 2), 5], /before the start/],
    ["offset zero", [10, 0, 65, 0x01, 0], /before the start/],
    ["cut inside an element", [10, 0x02, 1], /inside an element/],
    ["cut inside the length", [0x80], /length header/],
    ["length of six bytes", [0x80, 0x80, 0x80, 0x80, 0x80, 0x01], /invalid length header/],
    [
      "beyond the window",
      [20, 0x0c, 1, 2, 3, 4, 0x01 | (0 << 2), 4],
      /beyond the 2-byte window/,
      2,
    ],
  ];
  for (const [what, bytes, message, window] of cases) {
    assert.throws(
      () => decodeInPieces(new Uint8Array(bytes), 1, window),
      (e: unknown) => e instanceof SnappyStreamError && message.test(e.message),
      what,
    );
  }
});
