import { Redis } from 'ioredis';
import t from 'tap';
import { uid } from '../contract/fixtures.ts';
import { rateLimiterContract } from '../contract/rate-limiter.contract.ts';
import { startRedis } from '../../test/support/infra.ts';
import { redisResilienceOptions } from './client-options.ts';
import { RedisRateLimiter } from './rate-limiter.ts';

const redis = await startRedis();
t.teardown(() => redis.close());

rateLimiterContract(t, 'redis', async () => {
  const prefix = `t${uid('p')}:`;
  const clients: Redis[] = [];
  return {
    // Each limiter on its own connection, as on different gateways.
    make: (ratePerSec, burst) => {
      const client = new Redis({ host: '127.0.0.1', port: redis.port, ...redisResilienceOptions });
      clients.push(client);
      return new RedisRateLimiter(client, { keyPrefix: prefix, name: 'send', ratePerSec, burst });
    },
    cleanup: async () => { for (const c of clients) c.disconnect(); },
  };
});

t.test('redis: the bucket key sits in the user\'s slot and expires once full again', async (t) => {
  const client = new Redis({ host: '127.0.0.1', port: redis.port, ...redisResilienceOptions });
  t.teardown(() => client.disconnect());
  const limiter = new RedisRateLimiter(client, { keyPrefix: `t${uid('p')}:`, name: 'send', ratePerSec: 10, burst: 5 });
  await limiter.take('alice', 3);
  t.match(limiter.key('alice'), /\{u:alice\}:rl:send$/);
  const pttl = await client.pttl(limiter.key('alice'));
  t.ok(pttl > 0 && pttl <= 300, `expires when refilled (${pttl} ms)`);
});
