import assert from "node:assert/strict";
import { XorAppender } from "../mod/tsdb/chunkenc/xor.ts";
import { XorAppenderSet } from "../mod/tsdb/chunkenc/xor_set.ts";
import { seededRandom } from "./_random.ts";

for (const options of [{}, { initialBytes: 64, firstRegion: 16 }]) {
  const where = "initialBytes" in options ? "a small buffer that grows" : "default sizes";
  Deno.test(`XorAppenderSet writes the bytes of one XorAppender per slot, interleaved (${where})`, () => {
    const random = seededRandom(11);
    const slots = 300;
    const set = new XorAppenderSet(options);
    const single = Array.from({ length: slots }, () => new XorAppender());
    const t = Array.from({ length: slots }, (_, i) => -5_000_000 + i * 7);
    const v = Array.from({ length: slots }, () => [0, 0]);
    const limit = Array.from({ length: slots }, (_, i) => (i % 10 === 0 ? 2000 : 120));
    let chunks = 0;
    for (let step = 0; step < 200_000; step++) {
      if (step === 100_000) {
        // Cleared half way (as between a head replay's shards): every slot starts afresh.
        set.clear();
        for (let i = 0; i < slots; i++) single[i] = new XorAppender();
      }
      const slot = Math.floor(random() * slots);
      // Steps between timestamps: regular, jittered, and now and then far (each dod range).
      const r = random();
      const step_ = r < 0.6
        ? 15_000
        : r < 0.8
        ? 15_000 + Math.floor(random() * 200) - 100
        : r < 0.9
        ? Math.floor(random() * 100_000) + 1
        : r < 0.98
        ? Math.floor(random() * 1_000_000) + 1
        : Math.floor(random() * 2 ** 40) + 1;
      t[slot] += step_;
      // Values: repeated, a counter, random bits, a stale marker (a NaN payload).
      const k = random();
      if (k < 0.3) { /* the same value */ }
      else if (k < 0.6) v[slot][1] = (v[slot][1] + 1) >>> 0;
      else if (k < 0.95) v[slot] = [Math.floor(random() * 2 ** 32), Math.floor(random() * 2 ** 32)];
      else v[slot] = [0x7ff00000, 0x00000002];
      set.append(slot, t[slot], v[slot][0], v[slot][1]);
      single[slot].appendNumber(t[slot], v[slot][0], v[slot][1]);
      assert.equal(set.numSamples(slot), single[slot].numSamples);
      if (single[slot].numSamples >= limit[slot]) {
        assert.deepEqual(set.view(slot), single[slot].view(), `slot ${slot} at step ${step}`);
        set.reset(slot);
        single[slot] = new XorAppender();
        chunks++;
      }
    }
    for (let slot = 0; slot < slots; slot++) {
      assert.deepEqual(set.view(slot), single[slot].view(), `slot ${slot} at the end`);
    }
    assert.ok(chunks > 1000, `${chunks} chunks compared`);
    assert.equal(set.numSamples(10_000), 0, "a slot never used is empty");
  });
}

Deno.test("XorAppenderSet refuses to grow past its limit instead of wrapping bit positions", () => {
  const set = new XorAppenderSet({ initialBytes: 64, firstRegion: 32, maxBytes: 1024 });
  let slot = 0;
  assert.throws(() => {
    for (; slot < 1000; slot++) set.append(slot, 1000, 0x40091eb8, 0x51eb851f);
  }, /open XOR chunks exceed 1024 bytes/);
  assert.equal(slot, 1024 / 32, "every region up to the limit was handed out");
});
