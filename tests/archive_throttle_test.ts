// The export's read limiter: rates and sizes as people write them, and a token bucket whose
// measured throughput stays near its limit whatever the piece size.
import assert from "node:assert/strict";
import { parseByteSize } from "../mod/bytesize.ts";
import { PromcaseError } from "../mod/errors.ts";
import { parseRate, Throttle, throttled } from "../mod/throttle.ts";

Deno.test("sizes and rates parse with decimal and binary units, and nonsense is a usage error", () => {
  const sizes: [string, number][] = [
    ["4096", 4096],
    ["100MB", 100_000_000],
    ["100mb", 100_000_000],
    ["2GiB", 2 * 1024 ** 3],
    ["500M", 500 * 1024 ** 2],
    ["1.5 KB", 1500],
    ["1TB", 1e12],
  ];
  for (const [text, bytes] of sizes) assert.equal(parseByteSize(text), bytes, text);
  const rates: [string, number][] = [
    ["50MB/s", 50_000_000],
    ["10MiB/s", 10 * 1024 ** 2],
    ["800K", 800 * 1024],
    ["1 GB / s", 1e9],
    ["64KiB/sec", 65536],
  ];
  for (const [text, bytes] of rates) assert.equal(parseRate(text), bytes, text);
  for (const bad of ["", "fast", "0MB/s", "-1MB/s", "10 parsecs", "1e3", "5XB"]) {
    assert.throws(() => parseRate(bad, "--rate-limit"), (err) => {
      assert.ok(err instanceof PromcaseError && err.exitCode === 2, bad);
      assert.match(err.message, /^invalid --rate-limit .*: give a rate such as 50MB\/s/);
      return true;
    });
  }
  assert.throws(() => parseByteSize("0", "--split"), /invalid --split "0"/);
});

async function measure(throttle: Throttle, total: number, piece: number): Promise<number> {
  const start = performance.now();
  for (let done = 0; done < total; done += piece) await throttle.take(piece);
  return performance.now() - start;
}

Deno.test("the token bucket holds the rate for small and large pieces", async () => {
  const rate = 4 * 1024 * 1024;
  const burst = 64 * 1024;
  // Small pieces: after the first burst, one piece per sixteenth of a second on average.
  const small = await measure(
    new Throttle(rate, { burstBytes: burst }),
    2 * 1024 * 1024,
    16 * 1024,
  );
  const expected = ((2 * 1024 * 1024 - burst) / rate) * 1000;
  assert.ok(
    small > expected * 0.9 && small < expected * 1.25,
    `small pieces: ${small} ms, ~${expected}`,
  );
  // Pieces larger than the bucket: paid for by waiting afterwards, so the average still holds.
  const large = await measure(
    new Throttle(rate, { burstBytes: burst }),
    2 * 1024 * 1024,
    512 * 1024,
  );
  const expectedLarge = ((2 * 1024 * 1024 - burst) / rate) * 1000;
  assert.ok(
    large > expectedLarge * 0.9 && large < expectedLarge * 1.3,
    `large pieces: ${large} ms, ~${expectedLarge}`,
  );
});

Deno.test("concurrent takers share the rate, and throttled() passes bytes through unchanged", async () => {
  const rate = 2 * 1024 * 1024;
  const throttle = new Throttle(rate, { burstBytes: 32 * 1024 });
  const start = performance.now();
  const order: number[] = [];
  await Promise.all([0, 1, 2, 3].map(async (i) => {
    for (let k = 0; k < 4; k++) {
      await throttle.take(32 * 1024);
      order.push(i);
    }
  }));
  const elapsed = performance.now() - start;
  const expected = ((16 * 32 * 1024 - 32 * 1024) / rate) * 1000;
  assert.ok(elapsed > expected * 0.9 && elapsed < expected * 1.3, `${elapsed} ms, ~${expected}`);
  assert.deepEqual(order.slice(0, 4), [0, 1, 2, 3], "served in the order they asked");

  const pieces = [new Uint8Array([1, 2, 3]), new Uint8Array(70_000).fill(9)];
  const out: Uint8Array[] = [];
  for await (
    const piece of throttled(
      (async function* () {
        yield* pieces;
      })(),
      new Throttle(10 * 1024 * 1024),
    )
  ) out.push(piece);
  assert.deepEqual(out, pieces);
  assert.throws(() => new Throttle(0), RangeError);
});
