import assert from "node:assert/strict";
import { crc32c } from "../mod/tsdb/crc32c.ts";
import { compareUtf8, Decbuf, Encbuf } from "../mod/tsdb/encoding.ts";

Deno.test("crc32c matches the Castagnoli check value and is incremental", () => {
  const data = new TextEncoder().encode("123456789");
  assert.equal(crc32c(data), 0xe3069283);
  assert.equal(crc32c(data.subarray(4), crc32c(data.subarray(0, 4))), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  // 32 zero bytes: the iSCSI test vector of RFC 3720.
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
});

Deno.test("crc32c: every start alignment and length around the word loop's edges, bit by bit", () => {
  // The bitwise definition: the reference for the sliced tables and the 32-bit word loads.
  const bitwise = (bytes: Uint8Array, crc = 0) => {
    let c = ~crc >>> 0;
    for (const b of bytes) {
      c ^= b;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    }
    return ~c >>> 0;
  };
  const data = new Uint8Array(400).map((_, i) => (i * 2654435761) >>> 24);
  for (let start = 0; start < 8; start++) {
    for (const length of [0, 1, 7, 8, 15, 63, 64, 65, 67, 79, 80, 81, 95, 127, 128, 131, 300]) {
      const bytes = data.subarray(start, start + length);
      assert.equal(crc32c(bytes), bitwise(bytes), `${start} ${length}`);
      assert.equal(crc32c(bytes, 0x1234), bitwise(bytes, 0x1234), `${start} ${length} running`);
    }
  }
});

Deno.test("varints and big-endian values round-trip at the 64-bit edges", () => {
  const values = [
    0n,
    1n,
    -1n,
    63n,
    -64n,
    64n,
    300n,
    -300n,
    2n ** 62n,
    -(2n ** 63n),
    2n ** 63n - 1n,
  ];
  const enc = new Encbuf();
  for (const v of values) enc.varint(v).uvarint(BigInt.asUintN(64, v)).be64(v);
  enc.uvarintString("café ☕").be16(0xbeef).be32(0xdeadbeef).byte(7);
  const dec = new Decbuf(enc.get());
  for (const v of values) {
    assert.equal(dec.varint64(), v);
    assert.equal(dec.uvarint64(), BigInt.asUintN(64, v));
    assert.equal(dec.be64signed(), v);
  }
  assert.equal(dec.uvarintString(), "café ☕");
  assert.deepEqual([dec.be16(), dec.be32(), dec.byte(), dec.remaining], [0xbeef, 0xdeadbeef, 7, 0]);
  assert.throws(() => dec.byte(), /unexpected end/);
  // Go's encoding of 300 as uvarint and -3 as varint.
  assert.deepEqual([...new Encbuf().uvarint(300).get()], [0xac, 0x02]);
  assert.deepEqual([...new Encbuf().varint(-3).get()], [0x05]);
});

Deno.test("number and bigint varint paths agree around the 7-byte and 2^52/2^53 edges", () => {
  // The reference: Go's algorithm on bigints, byte by byte.
  const goUvarint = (v: bigint) => {
    const out: number[] = [];
    let x = BigInt.asUintN(64, v);
    while (x >= 0x80n) {
      out.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    return [...out, Number(x)];
  };
  const goVarint = (v: bigint) => goUvarint(BigInt.asUintN(64, (v << 1n) ^ (v >> 63n)));
  const edges = [0n, 1n, 127n, 128n, 2n ** 49n - 1n, 2n ** 49n, 2n ** 52n - 1n, 2n ** 52n];
  const values = [...edges, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n, 1_764_000_000_000n];
  for (const v of values) {
    const want = goUvarint(v);
    assert.deepEqual([...new Encbuf().uvarint(v).get()], want, `uvarint ${v}`);
    if (v <= 2n ** 53n) assert.deepEqual([...new Encbuf().uvarint(Number(v)).get()], want);
    const d = new Decbuf(new Uint8Array(want));
    assert.equal(d.uvarint64(), v);
    if (v < 2n ** 53n) assert.equal(new Decbuf(new Uint8Array(want)).uvarint(), Number(v));
  }
  for (const v of [...edges, 2n ** 62n, 2n ** 63n - 1n].flatMap((x) => [x, -x, -x - 1n])) {
    if (v < -(2n ** 63n)) continue;
    const want = goVarint(v);
    assert.deepEqual([...new Encbuf().varint(v).get()], want, `varint ${v}`);
    if (v > -(2n ** 53n) && v < 2n ** 53n) {
      assert.deepEqual([...new Encbuf().varint(Number(v)).get()], want, `varint number ${v}`);
    }
    assert.equal(new Decbuf(new Uint8Array(want)).varint64(), v);
  }
  // A 7-byte prefix that runs out of data is an error, not a small value.
  assert.throws(() => new Decbuf(new Uint8Array([0x80, 0x80])).uvarint(), /unexpected end/);
  assert.throws(() => new Decbuf(new Uint8Array([0x80, 0x80])).varint64(), /unexpected end/);
});

Deno.test("compareUtf8 sorts by UTF-8 bytes, not UTF-16 code units", () => {
  // U+FF5E (3 UTF-8 bytes EF BD 9E) sorts before U+1F600 (F0 9F 98 80) in UTF-8,
  // but after it in UTF-16 (FF5E > D83D).
  assert.ok(compareUtf8("\uff5e", "\u{1f600}") < 0);
  assert.ok(compareUtf8("a", "b") < 0);
  assert.ok(compareUtf8("ab", "a") > 0);
  assert.equal(compareUtf8("x", "x"), 0);
});
