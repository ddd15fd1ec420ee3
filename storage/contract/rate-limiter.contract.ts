// The RateLimiter conformance suite: memory and Redis. Rates here are low enough that a busy
// 2-core machine cannot refill a token between two calls by accident.
import type { Test } from 'tap';
import type { RateLimiter } from '../../engine/ports.ts';
import { uid } from './fixtures.ts';

export interface RateLimiterHarness {
  /** A limiter with these settings; every one made by a harness shares state with the others. */
  make(ratePerSec: number, burst: number): RateLimiter;
  cleanup(): Promise<void>;
}

export function rateLimiterContract(t: Test, name: string, makeHarness: () => Promise<RateLimiterHarness>): void {
  const withHarness = (title: string, body: (t: Test, h: RateLimiterHarness) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const h = await makeHarness();
      t.teardown(() => h.cleanup());
      await body(t, h);
    });

  withHarness('a burst is allowed, then takes wait about one interval each', async (t, h) => {
    const limiter = h.make(2, 3);
    const key = uid('k');
    t.same([await limiter.take(key), await limiter.take(key), await limiter.take(key)], [0, 0, 0], 'burst of 3');
    const wait = await limiter.take(key);
    t.ok(wait > 0 && wait <= 500, `the 4th waits at most one interval (500 ms): ${wait}`);
    t.ok(await limiter.take(key) > 0, 'a refused take takes nothing, and is refused again');
    t.equal(await limiter.take(uid('k')), 0, 'other keys have their own bucket');
  });

  withHarness('waiting the advised time is enough', async (t, h) => {
    const limiter = h.make(20, 1);
    const key = uid('k');
    t.equal(await limiter.take(key), 0);
    const wait = await limiter.take(key);
    t.ok(wait > 0 && wait <= 50, `wait ${wait}`);
    await new Promise((resolve) => setTimeout(resolve, wait + 5));
    t.equal(await limiter.take(key), 0, 'allowed after retryAfter');
  });

  withHarness('concurrent takes never exceed the burst (atomic)', async (t, h) => {
    const limiters = [h.make(1, 10), h.make(1, 10), h.make(1, 10)];
    const key = uid('k');
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => limiters[i % 3]!.take(key)));
    t.equal(results.filter((r) => r === 0).length, 10, 'exactly the burst is allowed');
  });

  withHarness('cost takes several tokens at once', async (t, h) => {
    const limiter = h.make(1, 5);
    const key = uid('k');
    t.equal(await limiter.take(key, 4), 0);
    t.ok(await limiter.take(key, 2) > 0, 'only 1 token left');
    t.equal(await limiter.take(key, 1), 0);
  });
}
