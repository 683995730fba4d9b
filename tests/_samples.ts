/**
 * Raw samples of a Prometheus server through its query API, for comparing an original server
 * with one serving restored data.
 *
 * @module
 */

import assert from "node:assert/strict";

/** One series of a range-selector query result. */
export interface RawSeries {
  /** Its labels. */
  metric: Record<string, string>;
  /** Float samples `[seconds, "value"]`. */
  values?: [number, string][];
  /** Native histogram samples. */
  histograms?: [number, unknown][];
}

/** Anything that answers instant queries like Prometheus' `/api/v1/query`. */
export interface Queryable {
  /** Runs an instant query and resolves to the response's `data`. */
  query(expr: string, time: string | number): Promise<unknown>;
}

/**
 * Every raw sample with `fromMs < t <= toMs` of every series, keyed by its sorted labels. The
 * left edge is left out because Prometheus 2.x selects `[from, to]` and 3.x `(from, to]`.
 */
export async function rawSamples(
  server: Queryable,
  fromMs: number,
  toMs: number,
): Promise<Map<string, RawSeries>> {
  const data = await server.query(`{__name__=~".+"}[${toMs - fromMs}ms]`, toMs / 1000) as {
    resultType: string;
    result: RawSeries[];
  };
  assert.equal(data.resultType, "matrix");
  const out = new Map<string, RawSeries>();
  const inside = <T extends [number, unknown]>(points: T[] | undefined) =>
    points?.filter(([t]) => Math.round(t * 1000) > fromMs);
  for (const series of data.result) {
    const key = JSON.stringify(Object.entries(series.metric).sort());
    const values = inside(series.values);
    const histograms = inside(series.histograms);
    if (!values?.length && !histograms?.length) continue;
    out.set(key, { metric: series.metric, values, histograms });
  }
  return out;
}

/** Counts of what {@link assertSameSamples} compared. */
export interface Compared {
  /** Series. */
  series: number;
  /** Float samples. */
  floats: number;
  /** Histogram samples. */
  histograms: number;
}

/** Asserts that both servers hold exactly the same raw samples in the window. */
export async function assertSameSamples(
  want: Queryable,
  got: Queryable,
  fromMs: number,
  toMs: number,
): Promise<Compared> {
  const expected = await rawSamples(want, fromMs, toMs);
  const actual = await rawSamples(got, fromMs, toMs);
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), "the same series");
  const compared = { series: expected.size, floats: 0, histograms: 0 };
  for (const [key, series] of expected) {
    assert.deepEqual(actual.get(key), series, `series ${key}`);
    compared.floats += series.values?.length ?? 0;
    compared.histograms += series.histograms?.length ?? 0;
  }
  return compared;
}
