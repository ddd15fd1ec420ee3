import t from 'tap';
import { rateLimiterContract } from '../contract/rate-limiter.contract.ts';
import { MemoryRateLimiter } from './rate-limiter.ts';

rateLimiterContract(t, 'memory', async () => {
  // Limiters made by one harness share state, as Redis limiters share the server: one shared map.
  let shared: MemoryRateLimiter | undefined;
  return {
    make: (ratePerSec, burst) => (shared ??= new MemoryRateLimiter({ ratePerSec, burst })),
    cleanup: async () => {},
  };
});

t.test('bad options are refused with the option named', async (t) => {
  t.throws(() => new MemoryRateLimiter({ ratePerSec: 0, burst: 1 }), /ratePerSec/);
  t.throws(() => new MemoryRateLimiter({ ratePerSec: 1, burst: 0.5 }), /burst/);
});
