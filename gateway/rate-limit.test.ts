import t from 'tap';
import { TokenBucket } from './rate-limit.ts';

t.test('burst, then refill at ratePerSec, never above burst', async (t) => {
  const b = new TokenBucket(10, 3, 1000);
  t.same([b.take(1000), b.take(1000), b.take(1000)], [0, 0, 0], 'burst of 3');
  t.equal(b.take(1000), 100, 'next token in 100 ms at 10/s');
  t.equal(b.take(1050), 50);
  t.equal(b.take(1100), 0, 'refilled one');
  t.equal(b.take(1100), 100);
  // A long idle period refills only up to the burst.
  t.same([b.take(60_000), b.take(60_000), b.take(60_000)], [0, 0, 0]);
  t.ok(b.take(60_000) > 0);
  t.equal(b.take(59_000) > 0, true, 'time going backwards grants nothing');
});

t.test('sustained rate is ratePerSec', async (t) => {
  const b = new TokenBucket(50, 100, 0);
  let allowed = 0;
  for (let ms = 0; ms < 10_000; ms += 5) if (b.take(ms) === 0) allowed++;
  t.ok(allowed >= 100 + 50 * 10 - 2 && allowed <= 100 + 50 * 10, `burst + 10 s × 50/s (${allowed})`);
});
