// Users whose gateway died: their sessions expire unrefreshed and the due index hands each of
// them to exactly one sweeper, to be announced offline; nobody else is reported.
import { Redis } from 'ioredis';
import t from 'tap';
import { uid } from '../contract/fixtures.ts';
import { startRedis } from '../../test/support/infra.ts';
import { redisResilienceOptions } from './client-options.ts';
import { DUE_SHARDS, RedisPresenceRegistry } from './presence-registry.ts';

const TTL_MS = 300;
const redis = await startRedis();
t.teardown(() => redis.close());
const clients: Redis[] = [];
const client = (): Redis => {
  const c = new Redis({ host: '127.0.0.1', port: redis.port, ...redisResilienceOptions });
  clients.push(c);
  return c;
};
t.teardown(() => { for (const c of clients) c.disconnect(); });

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

t.test('each user whose sessions expired is reported once across competing sweepers; clean disconnects never', async (t) => {
  const prefix = `t${uid('p')}:`;
  const sweepers = [0, 1, 2].map(() => new RedisPresenceRegistry(client(), { keyPrefix: prefix, sessionTtlMs: TTL_MS }));
  const gateway = sweepers[0]!;
  const dead = Array.from({ length: 40 }, (_, i) => `dead-${i}`);
  const before = Date.now();
  for (const user of dead) await gateway.add(user, `s-${user}`);
  await gateway.add('leaver', 's-leaver');
  t.equal(await gateway.remove('leaver', 's-leaver'), true, 'a clean disconnect is the last device');
  await gateway.add('alive', 's-alive');

  const reported = new Map<string, number>();
  let lastSeen: number | undefined;
  await until('all dead users reported', async () => {
    await gateway.refresh([{ user: 'alive', session: 's-alive' }]);
    const rounds = await Promise.all(sweepers.map((s) => s.takeExpired(7)));
    for (const round of rounds) for (const e of round) {
      reported.set(e.user, (reported.get(e.user) ?? 0) + 1);
      lastSeen = e.lastSeen;
    }
    return reported.size >= dead.length ? true : undefined;
  });
  t.same([...reported.keys()].sort(), [...dead].sort(), 'exactly the users whose gateway died');
  t.ok([...reported.values()].every((n) => n === 1), 'each reported once');
  t.ok(lastSeen! >= before - 50 && lastSeen! <= Date.now(), 'last seen is when their sessions were last refreshed');
  t.same(await sweepers[1]!.takeExpired(), [], 'nothing left to report');
  t.same([...await gateway.online(['alive', 'leaver', 'dead-0'])], ['alive']);
});

t.test('a user refreshed just as a sweeper claims them stays watched, and is reported when they do die', async (t) => {
  const prefix = `t${uid('p')}:`;
  const c = client();
  const registry = new RedisPresenceRegistry(c, { keyPrefix: prefix, sessionTtlMs: TTL_MS });
  await registry.add('racer', 's1');
  // The due entry says expired but the session is live: a refresh landed after the index read.
  await c.zadd(registry.dueKey('racer'), 0, 'racer');
  t.same(await registry.takeExpired(), [], 'live sessions are not reported');
  t.ok(Number(await c.zscore(registry.dueKey('racer'), 'racer')) > Date.now(), 'the entry is back, due in the future');
  const got = await until('racer reported after the session expires', async () => {
    const r = await registry.takeExpired();
    return r.length ? r : undefined;
  });
  t.same(got.map((e) => e.user), ['racer']);
});

t.test('the index is sharded over hash-tagged keys that expire', async (t) => {
  const prefix = `t${uid('p')}:`;
  const c = client();
  const registry = new RedisPresenceRegistry(c, { keyPrefix: prefix, sessionTtlMs: TTL_MS });
  for (let i = 0; i < 64; i++) await registry.add(`u${i}`, 's');
  const keys = await c.keys(`${prefix}{due:*`);
  t.ok(keys.length > 1 && keys.length <= DUE_SHARDS, `spread over ${keys.length} shards`);
  for (const key of keys) t.ok(await c.pttl(key) > 0, `${key} has a TTL`);
});
