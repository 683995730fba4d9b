import assert from "node:assert/strict";
import { BlockReader } from "../mod/tsdb/block.ts";
import {
  BitReader,
  BitWriter,
  CounterResetHint,
  decodeChunk,
  decodeFloatHistogram,
  decodeHistogram,
  decodeXor,
  encodeXor,
  Encoding,
  putVarbitInt,
  putVarbitUint,
  readVarbitInt,
  readVarbitUint,
  STALE_NAN_BITS,
  XorAppender,
} from "../mod/tsdb/chunkenc/mod.ts";
import { FormatError } from "../mod/tsdb/encoding.ts";
import { floatFromBits } from "../mod/tsdb/dump.ts";

const DATA = new URL("./testdata/", import.meta.url).pathname;

/** Block directories of the committed fixtures, by fixture name. */
async function fixtureBlocks(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const add = async (dir: string, prefix: string) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory && /^[0-9A-Z]{26}$/.test(e.name)) {
        out.set(`${prefix}${e.name}`, `${dir}/${e.name}`);
      }
    }
  };
  await add(`${DATA}datadir`, "datadir/");
  for (const f of ["backfill", "tombstoned", "native"]) await add(`${DATA}tsdb/${f}`, `${f}/`);
  return out;
}

const bitsOf = (x: number) => new BigUint64Array(new Float64Array([x]).buffer)[0];

Deno.test("XOR round-trips stale markers, NaN payloads, signed zeros and extreme floats", () => {
  const values = [
    STALE_NAN_BITS,
    0x7ff8000000000001n, // Go's math.NaN()
    0x7ff8000000000000n, // JS's NaN
    0xfff0000000000001n, // negative signalling NaN
    bitsOf(0),
    bitsOf(-0),
    bitsOf(Infinity),
    bitsOf(-Infinity),
    1n, // smallest subnormal
    bitsOf(Number.MAX_VALUE),
    STALE_NAN_BITS,
    STALE_NAN_BITS,
    bitsOf(1),
    bitsOf(1 + Number.EPSILON),
    0xffffffffffffffffn,
    0x8000000000000000n,
    0x0000000100000000n,
    0x00000000ffffffffn,
  ];
  const t = values.map((_, i) => 1_700_000_000_000n + BigInt(i) * 15_000n);
  const { t: gotT, v: gotV } = decodeXor(encodeXor(t, values));
  assert.deepEqual([...gotT], t);
  assert.deepEqual([...gotV], values);
  // The stale marker is the exact NaN payload, not a canonical NaN.
  assert.equal(gotV[0], 0x7ff0000000000002n);
});

Deno.test("XOR round-trips negative, huge and wrapping timestamps", () => {
  const cases: bigint[][] = [
    [-5n, -4n, -3n, 1n, 1000n],
    [0n, 2n ** 53n + 1n, 2n ** 53n + 2n, 2n ** 60n, 2n ** 63n - 1n],
    [-(2n ** 63n), 2n ** 63n - 1n, -(2n ** 63n), 0n], // deltas that wrap around int64
    [
      9_007_199_254_740_990n,
      9_007_199_254_740_991n,
      9_007_199_254_740_992n,
      9_007_199_254_740_993n,
    ],
    [1000n, 999n, 998n, 10n ** 18n, -(10n ** 18n)], // out of order: negative deltas
    [123n],
    [],
  ];
  for (const t of cases) {
    const v = t.map((_, i) => bitsOf(i * 1.5));
    const got = decodeXor(encodeXor(t, v));
    assert.deepEqual([...got.t], t, `timestamps ${t.join(",")}`);
    assert.deepEqual([...got.v], v);
  }
});

Deno.test("XOR delta-of-delta buckets switch exactly at Go's bitRange edges", () => {
  // Fixed part: 16 header bits, varint t0=0 (8), 64 value bits, uvarint 1000 (16), value bit (1),
  // then the dod prefix and payload and one more value bit.
  const fixed = 16 + 8 + 64 + 16 + 1 + 1;
  const cases: [bigint, number][] = [
    [0n, 1],
    [1n, 16],
    [8192n, 16],
    [-8191n, 16],
    [8193n, 20],
    [-8192n, 20],
    [65536n, 20],
    [-65535n, 20],
    [65537n, 24],
    [-65536n, 24],
    [524288n, 24],
    [-524287n, 24],
    [524289n, 68],
    [-524288n, 68],
    [2n ** 40n, 68],
  ];
  for (const [dod, bits] of cases) {
    const app = new XorAppender();
    const t = [0n, 1000n, 2000n + dod];
    for (const x of t) app.append(x, 0n);
    assert.equal(app.bitLength - fixed, bits, `dod ${dod}`);
    assert.deepEqual([...decodeXor(app.bytes()).t], t, `dod ${dod}`);
  }
});

Deno.test("XOR value windows: leading zeros clamp at 31 and 64 significant bits are written as 0", () => {
  // XOR with 40 leading zeros: stored as 31 (5 bits), so 33 significant bits follow.
  const a = new XorAppender();
  a.append(0n, 0n);
  a.append(1n, 0xffffffn); // x = 0xffffff: 40 leading, 0 trailing
  // 16 + 8 + 64 + 8 (uvarint 1) + '1' '1' + 5 + 6 + sigbits(64-31-0 = 33)
  assert.equal(a.bitLength, 16 + 8 + 64 + 8 + 2 + 5 + 6 + 33);
  const b = new XorAppender();
  b.append(0n, 0n);
  b.append(1n, 0x8000000000000001n); // 64 significant bits
  const bytes = b.bytes();
  const r = new BitReader(bytes, 16 + 8 + 64 + 8 + 2);
  assert.equal(r.readBits(5), 0); // leading
  assert.equal(r.readBits(6), 0); // 64 written as 0
  assert.deepEqual([...decodeXor(bytes).v], [0n, 0x8000000000000001n]);
});

Deno.test("XOR decodes by sample count: trailing bytes are ignored, truncation is an error", () => {
  const t = [1n, 2n, 4n, 8n, 16n];
  const v = t.map((x) => bitsOf(Number(x) / 3));
  const data = encodeXor(t, v);
  const padded = new Uint8Array(data.length + 1); // old Prometheus left a trailing zero byte
  padded.set(data);
  assert.deepEqual([...decodeXor(padded).t], t);
  assert.throws(() => decodeXor(data.subarray(0, data.length - 2)), FormatError);
  assert.throws(() => decodeXor(new Uint8Array(1)), FormatError);
  assert.deepEqual(decodeXor(new Uint8Array(2)).t.length, 0);
});

Deno.test("varbit integers round-trip at every bucket edge, each in its narrowest bucket", () => {
  const ints: bigint[] = [0n, -(2n ** 63n), 2n ** 63n - 1n];
  for (const n of [3, 6, 9, 12, 18, 25, 56]) {
    const half = 1n << BigInt(n - 1);
    ints.push(half, half + 1n, -(half - 1n), -half);
  }
  const uints: bigint[] = [0n, 2n ** 64n - 1n];
  for (const n of [3, 6, 9, 12, 18, 25, 56]) uints.push((1n << BigInt(n)) - 1n, 1n << BigInt(n));
  const w = new BitWriter();
  for (const x of ints) putVarbitInt(w, x);
  for (const x of uints) putVarbitUint(w, x);
  const r = new BitReader(w.bytes());
  for (const x of ints) assert.equal(readVarbitInt(r), x);
  for (const x of uints) assert.equal(readVarbitUint(r), x);
  assert.ok(r.bitsLeft < 8);
  // Each in Go's narrowest bucket: i one bits, a zero and the payload (0xff and 64 bits beyond).
  const sizes = [0, 3, 6, 9, 12, 18, 25, 56];
  const goBits = (fits: (n: number) => boolean) => {
    const i = sizes.findIndex((n, j) => j > 0 && fits(n));
    return i < 0 ? 8 + 64 : i + 1 + sizes[i];
  };
  for (const x of ints) {
    const one = new BitWriter();
    putVarbitInt(one, x);
    const fits = (n: number) => -((1n << BigInt(n - 1)) - 1n) <= x && x <= 1n << BigInt(n - 1);
    assert.equal(one.bitLength, x === 0n ? 1 : goBits(fits), `bits of ${x}`);
  }
  for (const x of uints) {
    const one = new BitWriter();
    putVarbitUint(one, x);
    assert.equal(one.bitLength, x === 0n ? 1 : goBits((n) => x < 1n << BigInt(n)), `bits of ${x}`);
  }
});

Deno.test("the XOR encoder reproduces every chunk Prometheus wrote, byte for byte", async () => {
  let chunks = 0;
  let samples = 0;
  let padded = 0;
  for (const [name, dir] of await fixtureBlocks()) {
    const block = await BlockReader.open(dir);
    try {
      for await (const s of block.series()) {
        for (const c of s.chunks) {
          if (c.encoding !== Encoding.xor) continue;
          const { t, v } = decodeXor(c.data);
          assert.equal(t[0], c.mint, `${name}: first sample is the chunk's mint`);
          assert.equal(t[t.length - 1], c.maxt, `${name}: last sample is the chunk's maxt`);
          const ours = encodeXor(t, v);
          if (name.startsWith("datadir/") && c.data.length === ours.length + 1) {
            // Before 3.0 Go's writeByte left an extra zero byte after a byte-aligned final write.
            assert.equal(c.data[ours.length], 0);
            assert.deepEqual(ours, c.data.subarray(0, ours.length), `${name}: chunk ${c.ref}`);
            padded++;
          } else {
            assert.deepEqual(ours, c.data, `${name}: chunk ${c.ref} re-encoded`);
          }
          chunks++;
          samples += t.length;
        }
      }
    } finally {
      block.close();
    }
  }
  assert.ok(chunks > 150, `only ${chunks} chunks`);
  assert.ok(padded < chunks / 4, `${padded} padded chunks`);
  assert.ok(samples > 14000, `only ${samples} samples`);
});

Deno.test("the backfilled delta-of-delta walks decode to the generated timestamps", async () => {
  const [dir] = [...(await fixtureBlocks()).entries()].filter(([n]) => n.startsWith("backfill/"))
    .map(([, d]) => d);
  const block = await BlockReader.open(dir);
  const walks = new Map<string, bigint[]>();
  const edges = new Map<number, bigint>();
  try {
    for await (const s of block.series()) {
      const name = s.labels.find((l) => l.name === "__name__")!.value;
      const d = decodeXor(s.chunks[0].data);
      if (name === "promcase_dod") walks.set(s.labels[1].value, [...d.t]);
      if (name === "promcase_edge") d.v.forEach((v, i) => edges.set(i, v));
    }
  } finally {
    block.close();
  }
  const base = BigInt(Date.UTC(2026, 0, 1, 0, 10)) + 7n;
  const expect = (delta0: number, dods: number[]) => {
    const t = [base, base + BigInt(delta0)];
    let delta = BigInt(delta0);
    for (const dod of dods) {
      delta += BigInt(dod);
      t.push(t[t.length - 1] + delta);
    }
    return t;
  };
  assert.deepEqual(
    walks.get("large"),
    expect(530000, [524288, -524288, 524289, -524289, -524287, 524287]),
  );
  assert.deepEqual(
    walks.get("small"),
    expect(70000, [
      65536,
      -65536,
      65537,
      -65537,
      -65535,
      65535,
      8192,
      -8192,
      8193,
      -8193,
      -8191,
      8191,
      1,
      -1,
      0,
      0,
    ]),
  );
  // Edge values as promtool parsed them (its NaN is Go's math.NaN(), 0x7FF8000000000001).
  assert.equal(edges.get(0), 0x7ff8000000000001n);
  assert.equal(floatFromBits(edges.get(1)!), Infinity);
  assert.equal(floatFromBits(edges.get(2)!), -Infinity);
  assert.equal(edges.get(3), 0x8000000000000000n); // -0
  assert.equal(edges.get(5), 1n); // 5e-324
  assert.equal(floatFromBits(edges.get(7)!), Number.MAX_VALUE);
});

Deno.test("histogram and float histogram chunks of a real Prometheus 3.5 block decode", async () => {
  const [dir] = [...(await fixtureBlocks()).entries()].filter(([n]) => n.startsWith("native/"))
    .map(([, d]) => d);
  const block = await BlockReader.open(dir);
  const seen = { exponential: 0, custom: 0, float: 0, staleInt: 0, staleFloat: 0, staleXor: 0 };
  try {
    for await (const s of block.series()) {
      const name = s.labels.find((l) => l.name === "__name__")!.value;
      let prevT: bigint | undefined;
      for (const c of s.chunks) {
        const d = decodeChunk(c.encoding, c.data);
        const ts = d.kind === "float" ? [...d.samples.t] : d.samples.map((h) => h.t);
        assert.equal(ts.length, (c.data[0] << 8) | c.data[1], `${name}: header count`);
        assert.equal(ts[0], c.mint);
        assert.equal(ts[ts.length - 1], c.maxt);
        for (const t of ts) {
          assert.ok(prevT === undefined || t > prevT, `${name}: timestamps ascend`);
          prevT = t;
        }
        if (d.kind === "float") {
          seen.staleXor += [...d.samples.v].filter((v) => v === STALE_NAN_BITS).length;
          continue;
        }
        if (d.kind === "histogram") {
          for (const [i, h] of d.samples.entries()) {
            if (h.sum === STALE_NAN_BITS) {
              seen.staleInt++;
              assert.equal(h.count, 0n);
              continue;
            }
            // Buckets are deltas; their running sums are the absolute counts.
            let total = h.zeroCount;
            for (const bs of [h.positiveBuckets, h.negativeBuckets]) {
              let abs = 0n;
              for (const b of bs) {
                abs += b;
                assert.ok(abs >= 0n, `${name}: bucket count >= 0`);
                total += abs;
              }
            }
            assert.equal(total, h.count, `${name}: count is the sum of the buckets`);
            assert.equal(
              h.counterResetHint,
              i === 0 ? CounterResetHint.unknown : CounterResetHint.notReset,
            );
            if (h.schema === -53) {
              seen.custom++;
              const bounds = h.customValues.map(floatFromBits);
              assert.ok(bounds.length > 0 && bounds.every((b, j) => j === 0 || b > bounds[j - 1]));
            } else {
              seen.exponential++;
              assert.ok(h.schema >= -4 && h.schema <= 8);
            }
          }
        } else {
          for (const h of d.samples) {
            if (h.sum === STALE_NAN_BITS) {
              seen.staleFloat++;
              continue;
            }
            seen.float++;
            // A rate() result is a gauge histogram: the chunk header says so.
            assert.equal(h.counterResetHint, CounterResetHint.gauge);
            const total = [...h.positiveBuckets, ...h.negativeBuckets, h.zeroCount]
              .map(floatFromBits).reduce((a, b) => a + b, 0);
            assert.ok(Math.abs(total - floatFromBits(h.count)) <= 1e-9 * total + 1e-12);
          }
        }
      }
    }
  } finally {
    block.close();
  }
  assert.ok(seen.exponential >= 40, `exponential ${seen.exponential}`);
  assert.ok(seen.custom >= 40, `custom ${seen.custom}`);
  assert.ok(seen.float >= 10, `float histograms ${seen.float}`);
  assert.deepEqual([seen.staleInt, seen.staleFloat, seen.staleXor], [1, 1, 1]);
});

Deno.test("histogram decoders reject truncated data and unknown schemas", () => {
  assert.throws(() => decodeHistogram(new Uint8Array(2)), FormatError);
  assert.throws(() => decodeFloatHistogram(new Uint8Array([0, 1, 0])), FormatError);
  const w = new BitWriter(3);
  w.writeByte(0); // zero threshold 0
  putVarbitInt(w, 60n); // schema 60: unknown
  putVarbitUint(w, 0n);
  putVarbitUint(w, 0n);
  const bytes = w.bytes();
  bytes[1] = 1;
  assert.throws(() => decodeHistogram(bytes), /unknown histogram schema 60/);
});

Deno.test("XOR appender: the number fast path and the bigint path agree at their edges", () => {
  const cases: bigint[][] = [
    // Deltas of delta at every bucket edge, then beyond 20 bits.
    [0n, 1000n, 2000n, 10192n, 10193n + 8192n, 100_000n, 100_001n + 524_288n, 9_999_999_999n],
    // Timestamps beyond 2^53, negative, and a decreasing one (Go's uint64 delta wraps).
    [-(2n ** 62n), 0n, 2n ** 62n, 5n, 2n ** 63n - 1n],
    [9_007_199_254_740_990n, 9_007_199_254_740_991n, 9_007_199_254_740_995n],
  ];
  for (const t of cases) {
    const v = t.map((_, i) => BigInt(i) * 0x0101010101n);
    const data = encodeXor(t, v);
    const back = decodeXor(data);
    assert.deepEqual([...back.t], t);
    assert.deepEqual([...back.v], v);
    // appendNumber gives the same bytes wherever the timestamps are exact as doubles.
    if (t.every((x) => Number.isSafeInteger(Number(x)) && BigInt(Number(x)) === x)) {
      const app = new XorAppender();
      t.forEach((x, i) =>
        app.appendNumber(Number(x), Number(v[i] >> 32n), Number(v[i] & 0xffffffffn))
      );
      assert.deepEqual(app.bytes(), data);
    }
  }
});
