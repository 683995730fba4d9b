// The streaming data dir comparison (tests/_highcard_compare.ts) against real promtool dumps of
// small blocks: it must name exactly the one sample, series or stale marker a copy lost or
// changed, read tricky label text in Prometheus' order, and give the same answer when its sort
// spills to run files.
import assert from "node:assert/strict";
import { BlockWriter } from "../mod/tsdb/block.ts";
import { Encoding } from "../mod/tsdb/chunkenc/mod.ts";
import { STALE_NAN_BITS, XorAppender } from "../mod/tsdb/chunkenc/xor.ts";
import { compareLabels, type Label } from "../mod/tsdb/index.ts";
import { withTempDir } from "./_files.ts";
import {
  compareDataDirs,
  type CompareOptions,
  type CompareReport,
  type DumpSeries,
  dumpSeries,
  parseLabelsKey,
  SeriesSorter,
} from "./_highcard_compare.ts";
import { backfillOpenMetrics, findPrometheus } from "./_prometheus.ts";
import { seededRandom } from "./_random.ts";

const T0 = 1_700_000_000_000;
const STEP = 15_000;
const SAMPLES = 480; // 2h: four chunks of 120
const NORMAL_NAN_BITS = 0x7ff8000000000001n;

interface FixtureSeries {
  labels: Label[];
  /** [t, float64 bits] in time order. */
  samples: [number, bigint][];
}

const _f64 = new Float64Array(1);
const _u64 = new BigUint64Array(_f64.buffer);
const bitsOf = (v: number) => (_f64[0] = v, _u64[0]);
const valueOf = (bits: bigint) => (_u64[0] = bits, _f64[0]);

function labelsOf(record: Record<string, string>): Label[] {
  return Object.entries(record).map(([name, value]) => ({ name, value }))
    .sort((a, b) => compareLabels([a], [b]));
}

/** Random walks with three decimals, special values and label text promtool must quote. */
function fixture(): FixtureSeries[] {
  const random = seededRandom(7);
  const out: FixtureSeries[] = [];
  const walk = (labels: Record<string, string>, stale: boolean) => {
    let milli = Math.floor(random() * 2e6) - 1e6;
    const samples: [number, bigint][] = [];
    for (let k = 0; k < SAMPLES; k++) {
      milli += Math.floor(random() * 19_999) - 9_999;
      samples.push([T0 + k * STEP, bitsOf(milli / 1000)]);
    }
    if (stale) samples.push([T0 + SAMPLES * STEP, STALE_NAN_BITS]);
    out.push({ labels: labelsOf(labels), samples });
  };
  for (let i = 0; i < 20; i++) walk({ __name__: "hc_gauge", id: String(i) }, i % 5 === 0);
  walk({ __name__: "hc_gauge" }, false); // a label set that is a prefix of the others
  walk({ __name__: "hc_quoted", v: 'say "hi", } {x="1"}\\ \n\t é ✓ 🙂' }, true);
  walk({ __name__: "hc_quoted", v: "nul \u0000 soh \u0001 del \u007f" }, false);
  walk({ __name__: "hc_quoted", v: "nul \u0000" }, false);
  walk({ __name__: "hc_quoted", v: "nul" }, false);
  walk({ __name__: "hc_utf8", "http.method": "GET" }, false);
  const special = [0, -0, 1e21, 1234567.891, 5e-324, -1.5e-7, Infinity, -Infinity];
  out.push({
    labels: labelsOf({ __name__: "hc_special" }),
    samples: special.map((v, k) => [T0 + k * STEP, bitsOf(v)] as [number, bigint])
      .concat([[T0 + special.length * STEP, NORMAL_NAN_BITS]]),
  });
  return out.sort((a, b) => compareLabels(a.labels, b.labels));
}

/** Writes `series` as one block (XOR chunks of 120 samples) into data dir `dir`. */
async function writeBlock(dir: string, series: FixtureSeries[]): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const w = await BlockWriter.create(dir, {
    minTime: BigInt(T0),
    maxTime: BigInt(T0 + (SAMPLES + 1) * STEP),
  });
  try {
    for (const s of series) {
      const chunks = [];
      for (let i = 0; i < s.samples.length; i += 120) {
        const app = new XorAppender();
        const part = s.samples.slice(i, i + 120);
        for (const [t, bits] of part) app.append(BigInt(t), bits);
        chunks.push({
          encoding: Encoding.xor,
          data: app.bytes(),
          mint: BigInt(part[0][0]),
          maxt: BigInt(part[part.length - 1][0]),
        });
      }
      await w.addSeries(s.labels, chunks);
    }
    await w.commit();
  } catch (e) {
    await w.abort();
    throw e;
  }
}

const labelsText = (s: FixtureSeries) => JSON.stringify(s.labels);

/** A copy of the fixture with `change` applied to the series whose labels match `pick`. */
function variant(
  base: FixtureSeries[],
  pick: (s: FixtureSeries) => boolean,
  change: (s: FixtureSeries) => FixtureSeries | undefined,
): FixtureSeries[] {
  const out: FixtureSeries[] = [];
  for (const s of base) {
    const copy = {
      labels: s.labels,
      samples: s.samples.map(([t, b]) => [t, b] as [number, bigint]),
    };
    const changed = pick(s) ? change(copy) : copy;
    if (changed) out.push(changed);
  }
  return out;
}

const WINDOW = { minTime: T0, maxTime: T0 + SAMPLES * STEP };

async function compareFixtures(
  work: string,
  name: string,
  want: FixtureSeries[],
  got: FixtureSeries[],
  options: Partial<CompareOptions> = {},
): Promise<CompareReport> {
  const { promtool } = await findPrometheus("newest");
  await writeBlock(`${work}/${name}-want`, want);
  await writeBlock(`${work}/${name}-got`, got);
  return await compareDataDirs(`${work}/${name}-want`, `${work}/${name}-got`, {
    promtool,
    ...WINDOW,
    tmpDir: work,
    ...options,
  });
}

const totalSamples = (series: FixtureSeries[]) =>
  series.reduce((n, s) => n + s.samples.filter(([t]) => t <= WINDOW.maxTime).length, 0);

/** Names, sizes and modification times of every file under `dir`. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = `${d}/${e.name}`;
      const st = await Deno.lstat(p);
      out.push(`${p} ${st.isDirectory ? "dir" : st.size} ${st.mtime?.getTime()}`);
      if (e.isDirectory) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}

Deno.test("identical blocks compare equal, every sample counted, in Prometheus' label order", async () => {
  await withTempDir("promcase-highcard-", async (work) => {
    const base = fixture();
    const { promtool } = await findPrometheus("newest");
    await writeBlock(`${work}/a`, base);
    await writeBlock(`${work}/b`, base);
    const before = await snapshot(`${work}/a`);
    const r = await compareDataDirs(`${work}/a`, `${work}/b`, {
      promtool,
      ...WINDOW,
      tmpDir: work,
    });
    assert.deepEqual(await snapshot(`${work}/a`), before, "the dump wrote into the data dir");
    assert.equal(r.identical, true, JSON.stringify(r.differences));
    assert.equal(r.seriesBoth, base.length);
    assert.equal(r.samplesEqual, totalSamples(base));
    assert.equal(r.want.samples, totalSamples(base));
    // One block is printed in its index order, which BlockWriter made compareLabels order: the
    // keys (NUL, SOH, quotes, a quoted UTF-8 name, a prefix label set) must agree with it.
    assert.equal(r.want.sortedByLabels, true);
    assert.equal(r.want.spilledRuns, 0);
    // Five stale markers and one ordinary NaN, which the dump prints alike.
    assert.equal(r.want.nan, 6);
  });
});

/** A value as Go's %g prints it ("+Inf", "1e+21", "1.234567891e+06", "-0"), read back. */
function parseGoFloat(text: string): number {
  return text === "+Inf" ? Infinity : text === "-Inf" ? -Infinity : Number(text);
}

Deno.test("the dump's text gives back every value and label exactly", async () => {
  await withTempDir("promcase-highcard-", async (work) => {
    const base = fixture();
    const { promtool } = await findPrometheus("newest");
    await writeBlock(`${work}/a`, base);
    const dumped: DumpSeries[] = await Array.fromAsync(
      dumpSeries(`${work}/a`, { promtool, minTime: 0, maxTime: T0 * 2, tmpDir: work }),
    );
    assert.equal(dumped.length, base.length);
    for (const [i, s] of base.entries()) {
      const lines = dumped[i].body.split("\n").slice(0, -1);
      assert.equal(lines.length, s.samples.length);
      assert.equal(dumped[i].samples, s.samples.length);
      for (const [k, [t, bits]] of s.samples.entries()) {
        const [text, ts] = lines[k].split(" ");
        assert.equal(Number(ts), t);
        const got = parseGoFloat(text);
        assert.ok(Object.is(got, valueOf(bits)), `${dumped[i].labels} ${lines[k]}`);
        assert.ok(text !== "NaN" || Number.isNaN(valueOf(bits)));
      }
      // The keys order as compareLabels does.
      if (i > 0) assert.ok(dumped[i - 1].key < dumped[i].key, dumped[i].labels);
    }
    assert.equal(
      dumped.find((d) => d.labels.includes("http.method"))?.labels,
      '{__name__="hc_utf8", "http.method"="GET"}',
    );
  });
});

Deno.test("one changed sample, a missing sample, series or stale marker are each named", async () => {
  await withTempDir("promcase-highcard-", async (work) => {
    const base = fixture();
    const target = base.find((s) => s.labels.some((l) => l.value === "5"))!; // stale-marked
    const isTarget = (s: FixtureSeries) => labelsText(s) === labelsText(target);
    const tMid = T0 + 200 * STEP;
    const tBoundary = T0 + 120 * STEP; // the first sample of the second chunk

    // One value, its lowest mantissa bit flipped.
    let r = await compareFixtures(
      work,
      "changed",
      base,
      variant(base, isTarget, (s) => {
        s.samples[200][1] ^= 1n;
        return s;
      }),
    );
    assert.equal(r.identical, false);
    assert.equal(r.differencesTotal, 1);
    assert.equal(r.samplesDiffer, 1);
    assert.equal(r.samplesEqual, totalSamples(base) - 1);
    assert.equal(r.seriesDiffering, 1);
    let d = r.differences[0];
    assert.equal(d.kind, "sample-differs");
    assert.ok(d.kind === "sample-differs");
    assert.equal(d.t, tMid);
    assert.equal(d.labels, '{__name__="hc_gauge", id="5"}');
    assert.equal(Number(d.want), valueOf(target.samples[200][1]));
    assert.equal(Number(d.got), valueOf(target.samples[200][1] ^ 1n));

    // A missing sample at a chunk boundary.
    r = await compareFixtures(
      work,
      "missing",
      base,
      variant(base, isTarget, (s) => {
        s.samples.splice(120, 1);
        return s;
      }),
    );
    assert.equal(r.differencesTotal, 1);
    assert.equal(r.samplesOnlyInWant, 1);
    assert.equal(r.nanOnlyInWant, 0);
    d = r.differences[0];
    assert.ok(d.kind === "sample-only-in-want");
    assert.equal(d.t, tBoundary);
    assert.equal(Number(d.value), valueOf(target.samples[120][1]));

    // A missing series.
    r = await compareFixtures(work, "series", base, variant(base, isTarget, () => undefined));
    assert.equal(r.differencesTotal, 1);
    assert.equal(r.seriesOnlyInWant, 1);
    assert.equal(r.samplesOnlyInWant, SAMPLES + 1);
    assert.equal(r.nanOnlyInWant, 1);
    d = r.differences[0];
    assert.ok(d.kind === "series-only-in-want");
    assert.equal(d.labels, '{__name__="hc_gauge", id="5"}');
    assert.deepEqual([d.samples, d.firstT, d.lastT, d.nan], [SAMPLES + 1, T0, WINDOW.maxTime, 1]);

    // A missing stale marker.
    r = await compareFixtures(
      work,
      "stale",
      base,
      variant(base, isTarget, (s) => {
        s.samples.pop();
        return s;
      }),
    );
    assert.equal(r.differencesTotal, 1);
    assert.equal(r.nanOnlyInWant, 1);
    d = r.differences[0];
    assert.ok(d.kind === "sample-only-in-want");
    assert.deepEqual([d.t, d.value], [WINDOW.maxTime, "NaN"]);

    // The corruption seen at high cardinality: the value repeated at t+1ms instead of the
    // sample and the stale marker.
    r = await compareFixtures(
      work,
      "shifted",
      base,
      variant(base, isTarget, (s) => {
        const t = s.samples[SAMPLES - 1][0];
        s.samples[SAMPLES - 1] = [t + 1, s.samples[SAMPLES - 2][1]];
        s.samples.pop();
        return s;
      }),
    );
    assert.deepEqual(
      r.differences.map((x) =>
        x.kind === "sample-only-in-want" || x.kind === "sample-only-in-got"
          ? [x.kind, x.t]
          : [x.kind]
      ),
      [
        ["sample-only-in-want", WINDOW.maxTime - STEP],
        ["sample-only-in-got", WINDOW.maxTime - STEP + 1],
        ["sample-only-in-want", WINDOW.maxTime],
      ],
    );
    assert.equal(r.nanOnlyInWant, 1);

    // A series only in got, -0 for 0, and a change in another series at once: all named.
    const extra = {
      labels: labelsOf({ __name__: "hc_extra" }),
      samples: [[T0, 1n]] as [number, bigint][],
    };
    r = await compareFixtures(
      work,
      "several",
      base,
      [
        ...variant(base, (s) => s.labels[0].value === "hc_special", (s) => {
          s.samples[0][1] = bitsOf(-0);
          return s;
        }),
        extra,
      ].sort((a, b) => compareLabels(a.labels, b.labels)),
    );
    assert.deepEqual(r.differences.map((x) => x.kind).sort(), [
      "sample-differs",
      "series-only-in-got",
    ]);
    assert.deepEqual(r.differences.find((x) => x.kind === "sample-differs"), {
      kind: "sample-differs",
      labels: '{__name__="hc_special"}',
      t: T0,
      want: "0",
      got: "-0",
    });
  });
});

Deno.test("what the dump cannot show: a stale marker replaced by another NaN", async () => {
  await withTempDir("promcase-highcard-", async (work) => {
    const base = fixture();
    const r = await compareFixtures(
      work,
      "nan",
      base,
      variant(base, (s) => s.samples.at(-1)![1] === STALE_NAN_BITS, (s) => {
        s.samples[s.samples.length - 1][1] = NORMAL_NAN_BITS;
        return s;
      }),
    );
    // Documented in _highcard_compare.ts: promtool prints every NaN as "NaN".
    assert.equal(r.identical, true);
  });
});

Deno.test("only the window is compared, its edges included", async () => {
  await withTempDir("promcase-highcard-", async (work) => {
    const base = fixture();
    const first = base[0];
    const changed = variant(base, (s) => s === first, (s) => {
      s.samples[0][1] ^= 1n; // at T0
      s.samples[SAMPLES - 1][1] ^= 1n; // at the window's last ms
      return s;
    });
    let r = await compareFixtures(work, "edges", base, changed);
    assert.deepEqual(r.differences.map((d) => d.kind === "sample-differs" ? d.t : -1), [
      T0,
      T0 + (SAMPLES - 1) * STEP,
    ]);
    r = await compareFixtures(work, "inside", base, changed, {
      minTime: T0 + 1,
      maxTime: T0 + (SAMPLES - 1) * STEP - 1,
    });
    assert.equal(r.identical, true);
    const inside = base.flatMap((x) => x.samples)
      .filter(([t]) => t >= T0 + 1 && t <= T0 + (SAMPLES - 1) * STEP - 1).length;
    assert.equal(r.want.samples, inside);
  });
});

Deno.test("a sort that spills to run files reports exactly what the in-memory one does", async () => {
  await withTempDir("promcase-highcard-", async (work) => {
    const base = fixture();
    const got = variant(
      base,
      (s) => s.labels.some((l) => l.value === "7" || l.value === "hc_utf8"),
      (s) => {
        s.samples[3][1] ^= 1n;
        s.samples.splice(50, 1);
        return s;
      },
    ).filter((s) => !s.labels.some((l) => l.value === "12"));
    const inMemory = await compareFixtures(work, "mem", base, got);
    const spilled = await compareFixtures(work, "spill", base, got, { sortBudgetBytes: 20_000 });
    assert.equal(inMemory.want.spilledRuns, 0);
    assert.ok(spilled.want.spilledRuns > 3, `runs: ${spilled.want.spilledRuns}`);
    const strip = (r: CompareReport) => ({
      ...r,
      want: { ...r.want, dir: "", spilledRuns: 0, dumpSeconds: 0 },
      got: { ...r.got, dir: "", spilledRuns: 0, dumpSeconds: 0 },
    });
    assert.deepEqual(strip(spilled), strip(inMemory));
    assert.equal(inMemory.differencesTotal, 5);
  });
});

Deno.test("SeriesSorter: shuffled entries come out in key order, each byte kept, with spills", async () => {
  await withTempDir("promcase-highcard-", async (work) => {
    const random = seededRandom(11);
    const entries: DumpSeries[] = [];
    for (let i = 0; i < 500; i++) {
      const labels = `{__name__="m${i % 7}", id="${i}", v="${i % 3 ? "x" : 'q\\"\\n'}"}`;
      let body = "";
      const n = 1 + Math.floor(random() * 30);
      for (let k = 0; k < n; k++) body += `${(random() * 1e6).toFixed(3)} ${1_000 + k}\n`;
      if (i % 50 === 0) body += `{count:3, sum:1.5, [-1,0):2} ${2_000}\n`;
      entries.push({
        labels,
        key: parseLabelsKey(labels).key,
        body,
        samples: n + (i % 50 ? 0 : 1),
      });
    }
    const shuffled = [...entries].sort(() => random() - 0.5);
    const expected = [...entries].sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
    for (const [budget, writeBufferBytes] of [[1 << 30, 1], [4_000, 1], [4_000, 700], [1, 1]]) {
      const sorter = new SeriesSorter({ budgetBytes: budget, tmpDir: work, writeBufferBytes });
      for (const e of shuffled) await sorter.add(e);
      assert.equal(sorter.inOrder, false);
      const out = await Array.fromAsync(sorter.sorted());
      assert.deepEqual(out, expected, `budget ${budget}`);
      if (budget === 1) assert.equal(sorter.spilledRuns, entries.length);
    }
    // Sorted input is recognised.
    const sorter = new SeriesSorter({ budgetBytes: 4_000, tmpDir: work });
    for (const e of expected) await sorter.add(e);
    assert.equal(sorter.inOrder, true);
    assert.deepEqual(await Array.fromAsync(sorter.sorted()), expected);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(work)), [], "run files left behind");
  });
});

Deno.test("blocks promtool backfilled from OpenMetrics compare equal to themselves, not to others", async () => {
  await withTempDir("promcase-highcard-", async (work) => {
    const { promtool } = await findPrometheus("newest");
    const text = (last: string) =>
      [
        "# TYPE hc_om gauge",
        `hc_om{a="1"} 1.5 ${T0 / 1000}`,
        `hc_om{a="1"} 2.25 ${T0 / 1000 + 15}`,
        `hc_om{a="2"} 3 ${T0 / 1000}`,
        `hc_om{a="2"} ${last} ${T0 / 1000 + 15}`,
        "# EOF",
        "",
      ].join("\n");
    await backfillOpenMetrics(promtool, text("4.125"), `${work}/a`);
    await backfillOpenMetrics(promtool, text("4.125000000000001"), `${work}/b`);
    const options = { promtool, minTime: T0, maxTime: T0 + 15_000, tmpDir: work };
    assert.equal((await compareDataDirs(`${work}/a`, `${work}/a`, options)).identical, true);
    const r = await compareDataDirs(`${work}/a`, `${work}/b`, options);
    assert.deepEqual(r.differences, [{
      kind: "sample-differs",
      labels: '{__name__="hc_om", a="2"}',
      t: T0 + 15_000,
      want: "4.125",
      got: "4.125000000000001",
    }]);
  });
});
