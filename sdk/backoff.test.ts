import t from 'tap';
import { Backoff, backoffCeiling, DEFAULT_BACKOFF, jitteredDelay, resolveBackoffOptions } from './backoff.ts';

t.test('defaults are 250 ms initial, 30 s max, factor 2', async (t) => {
  t.same({ ...DEFAULT_BACKOFF }, { initialMs: 250, maxMs: 30_000, factor: 2 });
  t.same({ ...resolveBackoffOptions() }, { initialMs: 250, maxMs: 30_000, factor: 2 });
});

t.test('the ceiling grows by factor per attempt and stops at maxMs', async (t) => {
  const ceilings = Array.from({ length: 10 }, (_, i) => backoffCeiling(i, DEFAULT_BACKOFF));
  t.same(ceilings, [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  t.equal(backoffCeiling(5000, DEFAULT_BACKOFF), 30_000, 'no overflow to Infinity or NaN for huge attempts');
});

t.test('full jitter: every delay lies in [0, ceiling]', async (t) => {
  t.equal(jitteredDelay(3, DEFAULT_BACKOFF, () => 0), 0);
  t.equal(jitteredDelay(3, DEFAULT_BACKOFF, () => 0.5), 1000);
  t.equal(jitteredDelay(3, DEFAULT_BACKOFF, () => 0.999999), 1999);
  const b = new Backoff(DEFAULT_BACKOFF);
  for (let attempt = 0; attempt < 40; attempt++) {
    const d = b.next();
    const ceiling = backoffCeiling(attempt, DEFAULT_BACKOFF);
    if (!(d >= 0 && d <= ceiling && Number.isInteger(d))) t.fail(`attempt ${attempt}: delay ${d} outside [0, ${ceiling}]`);
  }
  t.equal(b.attempts, 40);
});

t.test('reset starts over from the initial ceiling', async (t) => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, factor: 3 }, () => 0.999);
  t.same([b.next(), b.next(), b.next(), b.next()], [99, 299, 899, 999]);
  b.reset();
  t.equal(b.attempts, 0);
  t.equal(b.next(), 99);
});

t.test('invalid options are rejected with the option named', async (t) => {
  t.throws(() => resolveBackoffOptions({ initialMs: 0 }), /backoff\.initialMs/);
  t.throws(() => resolveBackoffOptions({ initialMs: 500, maxMs: 100 }), /backoff\.maxMs/);
  t.throws(() => resolveBackoffOptions({ factor: 0.5 }), /backoff\.factor/);
  t.throws(() => resolveBackoffOptions({ maxMs: Number.NaN }), /backoff\.maxMs/);
});
