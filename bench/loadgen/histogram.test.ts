import t from 'tap';
import { LatencyHistogram } from './histogram.ts';

function within(actual: number, expected: number, relative: number): boolean {
  return Math.abs(actual - expected) <= expected * relative;
}

t.test('percentiles of 1..1000 ms are within the bucket precision', async (t) => {
  const h = new LatencyHistogram();
  for (let v = 1; v <= 1000; v++) h.record(v);
  t.equal(h.count, 1000);
  t.equal(h.minMs, 1);
  t.equal(h.maxMs, 1000);
  t.ok(within(h.meanMs, 500.5, 1e-12), 'mean is exact');
  for (const [p, expected] of [[50, 500], [90, 900], [99, 990]] as const) {
    const got = h.percentile(p);
    t.ok(within(got, expected, 0.011), `p${p} = ${got} within ~1% of ${expected}`);
  }
  t.equal(h.percentile(0), 1, 'p0 is the minimum');
  t.equal(h.percentile(100), 1000, 'p100 is the maximum');
});

t.test('percentiles never decrease and stay within [min, max]', async (t) => {
  const h = new LatencyHistogram();
  let seed = 42;
  for (let i = 0; i < 5000; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    h.record(0.05 + (seed / 2 ** 31) ** 4 * 200); // skewed: most samples small, a long tail
  }
  let previous = -Infinity;
  for (let p = 0; p <= 100; p += 0.5) {
    const v = h.percentile(p);
    t.ok(v >= previous, `p${p} >= p${p - 0.5}`);
    previous = v;
  }
  t.ok(h.percentile(0) >= h.minMs && h.percentile(100) <= h.maxMs);
});

t.test('a single sample is every percentile', async (t) => {
  const h = new LatencyHistogram();
  h.record(3.7);
  for (const p of [0, 50, 99, 100]) t.equal(h.percentile(p), 3.7);
});

t.test('empty histogram reports NaN, not zeros', async (t) => {
  const h = new LatencyHistogram();
  t.equal(h.count, 0);
  t.ok(Number.isNaN(h.percentile(50)));
  t.ok(Number.isNaN(h.maxMs));
});

t.test('merging halves equals recording everything in one', async (t) => {
  const whole = new LatencyHistogram();
  const a = new LatencyHistogram();
  const b = new LatencyHistogram();
  for (let i = 1; i <= 2000; i++) {
    const v = i * 0.37;
    whole.record(v);
    (i % 2 === 0 ? a : b).record(v);
  }
  const merged = LatencyHistogram.fromJSON(JSON.parse(JSON.stringify(a.toJSON())));
  merged.merge(JSON.parse(JSON.stringify(b.toJSON())));
  merged.merge(new LatencyHistogram().toJSON()); // an idle worker changes nothing
  t.equal(merged.count, whole.count);
  t.equal(merged.minMs, whole.minMs);
  t.equal(merged.maxMs, whole.maxMs);
  for (const p of [1, 50, 90, 99, 99.9]) t.equal(merged.percentile(p), whole.percentile(p), `p${p}`);
});

t.test('extreme values are clamped into the edge buckets but min/max stay exact', async (t) => {
  const h = new LatencyHistogram({ lowestMs: 0.01, highestMs: 100 });
  h.record(-2); // cross-process clock noise
  h.record(0.0001);
  h.record(1e6);
  t.equal(h.count, 3);
  t.equal(h.minMs, 0);
  t.equal(h.maxMs, 1e6);
  t.equal(h.percentile(100), 1e6);
  t.ok(h.percentile(50) <= 0.01, 'tiny samples sit in the first bucket');
});

t.test('bad arguments are refused', async (t) => {
  t.throws(() => new LatencyHistogram({ lowestMs: 0 }), RangeError);
  t.throws(() => new LatencyHistogram({ precision: 1 }), RangeError);
  t.throws(() => new LatencyHistogram().percentile(101), RangeError);
  const other = new LatencyHistogram({ precision: 0.05 });
  t.throws(() => new LatencyHistogram().merge(other), /different bucket layouts/);
});
