// XOR2 (encoding 4, Prometheus 3.11+). No 3.11+ binary is available here, so the decoder is checked
// against chunks built bit by bit from the format description (tsdb-format.md 2.2, xor2.go) and
// against Xor2Appender, which follows Prometheus' appender.
import { seededRandom } from "./_random.ts";
import assert from "node:assert/strict";
import {
  BitWriter,
  decodeChunk,
  decodeXor2,
  Encoding,
  putVarbitInt,
  STALE_NAN_BITS,
  Xor2Appender,
} from "../mod/tsdb/chunkenc/mod.ts";
import { FormatError } from "../mod/tsdb/encoding.ts";

const bitsOf = (x: number) => new BigUint64Array(new Float64Array([x]).buffer)[0];

interface Sample {
  st: bigint;
  t: bigint;
  v: bigint;
}

function encode(samples: Sample[]): Uint8Array {
  const app = new Xor2Appender();
  for (const s of samples) app.append(s.st, s.t, s.v);
  assert.equal(app.numSamples, samples.length);
  return app.bytes();
}

function assertDecodes(data: Uint8Array, samples: Sample[]) {
  const d = decodeXor2(data);
  assert.deepEqual([...d.t], samples.map((s) => s.t));
  assert.deepEqual([...d.v], samples.map((s) => s.v));
  assert.deepEqual([...d.st], samples.map((s) => s.st));
}

/** A new-window value: 5 bits leading zeros (at most 31), 6 bits significant, the bits. */
function newWindow(w: BitWriter, xor: bigint): [number, number] {
  let lead = 0;
  while (lead < 64 && ((xor >> BigInt(63 - lead)) & 1n) === 0n) lead++;
  let trail = 0;
  while (trail < 64 && ((xor >> BigInt(trail)) & 1n) === 0n) trail++;
  lead = Math.min(lead, 31);
  const sig = 64 - lead - trail;
  w.writeBits(lead, 5);
  w.writeBits(sig & 63, 6);
  w.writeBigBits(xor >> BigInt(trail), sig);
  return [lead, trail];
}

Deno.test("XOR2 chunks built bit by bit from the format description decode", () => {
  const one = bitsOf(1);
  const two = bitsOf(2);
  const eight = bitsOf(8);
  const samples: Sample[] = [
    { st: 0n, t: 1000n, v: one },
    { st: 0n, t: 2000n, v: one }, // Δt 1000, value unchanged
    { st: 0n, t: 3000n, v: one }, // dod 0, unchanged
    { st: 0n, t: 4010n, v: two }, // dod 10 (13 bits), new window
    { st: 0n, t: 5020n, v: STALE_NAN_BITS }, // dod 0, stale
    { st: 0n, t: 6030n, v: two }, // dod 0, unchanged: the stale NaN is not the baseline
    { st: 0n, t: 2040n, v: eight }, // dod -5000 (20 bits), reuse window
    { st: 0n, t: -2000n - 2n ** 40n, v: eight }, // 64-bit dod escape, unchanged
    { st: 0n, t: -6040n - 2n ** 41n, v: two }, // dod 0, changed (dod-0 form), reuse window
  ];
  const w = new BitWriter(3);
  w.writeVarint(1000n);
  w.writeBigBits(one, 64);
  w.writeUvarint(1000n);
  w.writeBit(0);
  w.writeBit(0); // '0'
  w.writeBits(0b110, 3);
  w.writeBigBits(10n, 13);
  w.writeBits(0b110, 3);
  const [lead, trail] = newWindow(w, one ^ two);
  w.writeBits(0b11111, 5);
  w.writeBit(0);
  w.writeBits(0b1110, 4);
  w.writeBigBits(-5000n, 20);
  // 2 ^ 8 fits the window of 1 ^ 2: '10' and the window's bits.
  assert.ok(((two ^ eight) >> BigInt(trail)) << BigInt(trail) === (two ^ eight));
  w.writeBits(0b10, 2);
  w.writeBigBits((two ^ eight) >> BigInt(trail), 64 - lead - trail);
  w.writeBits(0b11110, 5);
  const dod7 = (-2000n - 2n ** 40n - 2040n) - (2040n - 6030n);
  w.writeBigBits(dod7, 64);
  w.writeBit(0);
  w.writeBits(0b10, 2); // dod 0, value changed
  w.writeBit(0); // reuse window
  w.writeBigBits((eight ^ two) >> BigInt(trail), 64 - lead - trail);
  w.setByte(1, samples.length);
  const data = w.bytes().slice();
  assertDecodes(data, samples);
  assert.deepEqual(encode(samples), data);
  const generic = decodeChunk(Encoding.xor2, data);
  assert.equal(generic.kind, "float");
});

Deno.test("XOR2 start timestamps: sample 0, a first change and the deltas after it", () => {
  const v = bitsOf(42);
  const samples: Sample[] = [
    { st: 500n, t: 1000n, v },
    { st: 500n, t: 2000n, v },
    { st: 1500n, t: 3000n, v }, // first change at index 2: prevT - st = 500
    { st: 1500n, t: 4000n, v }, // prevT - st = 1500: delta 1000
    { st: 3999n, t: 5000n, v }, // prevT - st = 1: delta -1499
  ];
  const w = new BitWriter(3);
  w.setByte(2, 0x80 | 2);
  w.writeVarint(1000n);
  w.writeBigBits(v, 64);
  w.writeVarint(500n); // t0 - st0
  w.writeUvarint(1000n);
  w.writeBit(0);
  w.writeBit(0);
  putVarbitInt(w, 500n);
  w.writeBit(0);
  putVarbitInt(w, 1000n);
  w.writeBit(0);
  putVarbitInt(w, -1499n);
  w.setByte(1, samples.length);
  const data = w.bytes().slice();
  assertDecodes(data, samples);
  assert.deepEqual(encode(samples), data);

  // A change at sample 1 sets firstSTChangeOn to 1; no ST at sample 0 leaves bit 7 clear.
  const early: Sample[] = [
    { st: 0n, t: 10n, v },
    { st: 7n, t: 20n, v },
    { st: 7n, t: 30n, v },
  ];
  const e = encode(early);
  assert.equal(e[2], 1);
  assertDecodes(e, early);
});

const DODS = [0n, 1n, -1n, 4095n, -4096n, 4096n, -4097n, 524287n, -524288n, 524288n, -524289n];
const VALUES = [
  bitsOf(0),
  bitsOf(-0),
  bitsOf(1.5),
  bitsOf(Number.MAX_VALUE),
  1n,
  0x7ff8000000000001n,
  bitsOf(Infinity),
  STALE_NAN_BITS,
  0xffffffffffffffffn,
];

Deno.test("XOR2 round-trips generated samples through Prometheus' appender logic", () => {
  let withST = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const rnd = seededRandom(seed);
    const n = seed % 5 === 0 ? 300 : 1 + Math.floor(rnd() * 150);
    const stMode = seed % 4; // 0 none, 1 constant, 2 changing, 3 only after 127
    let t = BigInt(Math.floor(rnd() * 1e6)) - 500_000n;
    let dt = 15_000n;
    let v = VALUES[seed % VALUES.length];
    let st = stMode === 1 || stMode === 2 ? t - 100n : 0n;
    const samples: Sample[] = [];
    for (let i = 0; i < n; i++) {
      const r = rnd();
      if (i >= 2 && r < 0.3) dt += DODS[Math.floor(rnd() * DODS.length)];
      else if (r < 0.35) dt += BigInt(Math.floor(rnd() * 2 ** 30)) * 1000n;
      if (dt <= 0n) dt = 1n;
      t += dt;
      const q = rnd();
      if (q < 0.2) v = VALUES[Math.floor(rnd() * VALUES.length)];
      else if (q < 0.5) v = bitsOf(Math.round(rnd() * 1000) / 8);
      if (stMode === 2 && rnd() < 0.1) st = t - BigInt(Math.floor(rnd() * 1e7));
      if (stMode === 3 && i === 130) st = t - 5n;
      samples.push({ st, t, v });
    }
    const data = encode(samples);
    assertDecodes(data, samples);
    if (data[2] !== 0) withST++;
    if (n > 127) assert.ok((data[2] & 0x7f) > 0, "per-sample STs by index 127");
    const d = decodeChunk(Encoding.xor2, data);
    assert.deepEqual(d.kind === "float" && [...d.samples.v], samples.map((s) => s.v));
  }
  assert.ok(withST >= 20);
});

Deno.test("XOR2 decoding rejects truncated chunks", () => {
  const data = encode([
    { st: 0n, t: 1n, v: bitsOf(1) },
    { st: 0n, t: 2n, v: bitsOf(2) },
    { st: 0n, t: 5n, v: bitsOf(3) },
  ]);
  assert.throws(() => decodeXor2(data.subarray(0, 2)), FormatError);
  assert.throws(() => decodeXor2(data.subarray(0, data.length - 2)), FormatError);
  assert.deepEqual([...decodeXor2(new Uint8Array(3)).t], []);
});
