// Smoke test of the grab ceiling at a tiny scale on a private redis-server: the figures exist and
// every envelope was handed out exactly, never how fast it was.
import t from 'tap';
import { startRedis } from '../test/support/infra.ts';
import { measureGrabCeiling } from './grab-ceiling.ts';

t.test('the grab ceiling measures contended decisions, each envelope handed out exactly', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.close());
  const settings = { envelopes: 20, sharesPerEnvelope: 10, grabbersPerEnvelope: 30, concurrency: 64 };
  const figures = await measureGrabCeiling({ redisUrl: redis.url, ...settings, durationMs: 1_000 });
  t.ok(figures.rounds >= 1, `${figures.rounds} rounds`);
  t.equal(figures.ops, figures.rounds * 20 * 30, 'every grabber of every envelope asked once per round');
  t.equal(figures.envelopes, (figures.rounds + 1) * 20, 'every envelope was checked, the warm-up round\'s too');
  t.equal(figures.misallocated, 0, 'each envelope handed out its 10 shares, each index once');
  t.equal(figures.unexpected, 0, 'no unknown or expired answers');
  t.ok(figures.decisionsPerSec > 0 && Number.isFinite(figures.decisionsPerSec), `${figures.decisionsPerSec} decisions/s`);
  t.ok(figures.p50Ms > 0 && figures.p50Ms <= figures.p99Ms, `p50 ${figures.p50Ms} ms <= p99 ${figures.p99Ms} ms`);
});
