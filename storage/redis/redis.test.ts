// RedisPresenceRegistry against a real redis-server: the shared presence contract, then what
// only a shared, expiring, restartable registry has (dead gateways, refresh, Redis restarts).
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { uid } from '../contract/fixtures.ts';
import { presenceRegistryContract } from '../contract/presence-registry.contract.ts';
import { startRedis, type TestService } from '../../test/support/infra.ts';
import { redisResilienceOptions } from './client-options.ts';
import { RedisPresenceRegistry } from './presence-registry.ts';

/** Short TTL for expiry tests: long enough for a few round trips on a busy 2-core machine. */
const SHORT_TTL_MS = 300;

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A client with the recommended options; connection errors (expected in restart tests) are kept for asserting. */
function connect(t: Test, service: TestService): Redis & { errors: Error[] } {
  const client = Object.assign(new Redis({ host: '127.0.0.1', port: service.port, ...redisResilienceOptions }), { errors: [] as Error[] });
  client.on('error', (err: Error) => { client.errors.push(err); });
  t.teardown(() => { client.disconnect(); });
  return client;
}

async function redisNow(client: Redis): Promise<number> {
  const [seconds, micros] = await client.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

async function privateRedis(t: Test): Promise<TestService> {
  const service = await startRedis();
  t.teardown(() => service.close());
  return service;
}

// One server for the contract and the behaviour tests below; every registry gets its own prefix.
let shared: TestService;
t.before(async () => { shared = await startRedis(); });
t.teardown(() => shared.close());

const registryOn = (client: Redis, sessionTtlMs?: number) =>
  new RedisPresenceRegistry(client, { keyPrefix: `${uid('test')}:`, ...(sessionTtlMs ? { sessionTtlMs } : {}) });

presenceRegistryContract(t, 'redis', async () => {
  const client = new Redis({ host: '127.0.0.1', port: shared.port, ...redisResilienceOptions });
  client.on('error', (err: Error) => { throw err; });
  return {
    registry: new RedisPresenceRegistry(client, { keyPrefix: `${uid('contract')}:` }),
    cleanup: async () => { client.disconnect(); },
  };
});

t.test('redis: keys carry the user hash tag and a TTL at the latest session expiry', async (t) => {
  const client = connect(t, shared);
  const registry = registryOn(client, 10_000);
  const prefix = registry.options.keyPrefix;
  const user = uid('u');
  await registry.add(user, 'phone');
  await registry.add(user, 'laptop');
  const key = `${prefix}{u:${user}}:sessions`;
  t.same(await client.keys(`${prefix}{u:*`), [key], 'one sessions key per user, with the user in a hash tag');
  t.same((await client.keys(`${prefix}*`)).sort(), [key, registry.dueKey(user)].sort(), 'plus the user\'s entry in one shard of the due index (presence-sweep.test.ts)');
  t.equal(await client.type(key), 'zset');
  const pttl = await client.pttl(key);
  t.ok(pttl > 9_000 && pttl <= 10_000, `key expires with its sessions (pttl ${pttl})`);
  const scores = await Promise.all(['phone', 'laptop'].map(async (session) => Number(await client.zscore(key, session))));
  const serverNow = await redisNow(client);
  for (const score of scores) t.ok(score > serverNow && score <= serverNow + 10_000, 'score is an expiry in Redis time');

  await registry.remove(user, 'phone');
  t.ok(await client.pttl(key) > 0, 'a user with a device left keeps a TTL');
  await registry.remove(user, 'laptop');
  t.equal(await client.exists(key), 0, 'the last device out deletes the key');
});

t.test('redis: online() and refresh() answer many users in one pipelined round trip', async (t) => {
  const client = connect(t, shared);
  const registry = registryOn(client);
  const users = Array.from({ length: 200 }, () => uid('u'));
  await Promise.all(users.filter((_, i) => i % 2 === 0).map((user) => registry.add(user, 's')));
  let pipelines = 0;
  const pipeline = client.pipeline.bind(client);
  client.pipeline = ((...args: Parameters<typeof pipeline>) => { pipelines++; return pipeline(...args); }) as typeof client.pipeline;
  const online = await registry.online([...users, ...users]);
  t.same(online, new Set(users.filter((_, i) => i % 2 === 0)), 'the even users, duplicates ignored');
  t.same(await registry.refresh(users.map((user) => ({ user, session: 's' }))), users.filter((_, i) => i % 2 === 1),
    'refresh names the users that had no live session');
  t.equal(pipelines, 2, 'one pipeline per call');
});

t.test('redis: a dead gateway\'s sessions expire after sessionTtlMs; the last device out is observed lazily', async (t) => {
  const client = connect(t, shared);
  const keyPrefix = `${uid('gw')}:`;
  // Two gateways share the registry; gateway A is killed (never removes, never refreshes).
  const gatewayA = new RedisPresenceRegistry(client, { keyPrefix, sessionTtlMs: SHORT_TTL_MS });
  const gatewayB = new RedisPresenceRegistry(client, { keyPrefix, sessionTtlMs: SHORT_TTL_MS });
  const alone = uid('u'), both = uid('u');

  const started = Date.now();
  t.equal(await gatewayA.add(alone, 'a-phone'), true);
  t.equal(await gatewayA.add(both, 'a-phone'), true);
  t.equal(await gatewayB.add(both, 'b-laptop'), false, 'second device, on another gateway');
  const keepB = setInterval(() => { void gatewayB.refresh([{ user: both, session: 'b-laptop' }]).catch(t.threw); }, SHORT_TTL_MS / 3);
  t.teardown(() => clearInterval(keepB));
  t.same(await gatewayB.online([alone, both]), new Set([alone, both]), 'both online right after connecting');

  await until(`${alone} offline`, async () => (await gatewayB.online([alone])).size === 0);
  t.ok(Date.now() - started >= SHORT_TTL_MS - 20, 'not before the TTL');
  t.equal(await client.exists(gatewayA.sessionsKey(alone)), 0, 'the abandoned user key is gone from Redis');
  t.same(await gatewayB.online([both]), new Set([both]), 'a user with a live device elsewhere stays online');
  // both's a-phone was added a moment after alone's, so it may expire a few ms later.
  await until(`${both}'s dead session purged by a read`, async () => {
    t.same(await gatewayB.online([both]), new Set([both]));
    return (await client.zscore(gatewayB.sessionsKey(both), 'a-phone')) === null;
  });
  t.pass('the dead session was purged while the live one kept the user online');

  clearInterval(keepB);
  t.equal(await gatewayB.remove(both, 'b-laptop'), true, 'removing the only live device is the last device out');
  t.equal(await gatewayA.add(alone, 'a-phone-again'), true, 'reconnecting after expiry is a first device');
});

t.test('redis: removing the last live device reports offline while a dead session is still listed', async (t) => {
  const client = connect(t, shared);
  const keyPrefix = `${uid('gw')}:`;
  const dying = new RedisPresenceRegistry(client, { keyPrefix, sessionTtlMs: SHORT_TTL_MS });
  const alive = new RedisPresenceRegistry(client, { keyPrefix, sessionTtlMs: 60_000 });
  const user = uid('u');
  await dying.add(user, 'dead');
  await alive.add(user, 'live');
  const key = alive.sessionsKey(user);
  await until('the dead session expires', async () => Number(await client.zscore(key, 'dead')) <= await redisNow(client));
  t.same(await alive.online([user]), new Set([user]), 'online thanks to the live device');
  t.not(await client.zscore(key, 'dead'), null, 'online() is read-only: the dead session is still listed');
  t.equal(await alive.remove(user, 'live'), true, 'the last live device out announces offline');
  t.equal(await client.exists(key), 0);
  t.equal(await dying.remove(user, 'dead'), false, 'the dead session cannot announce offline twice');
});

t.test('redis: refresh keeps sessions alive past the TTL; an unrefreshed one expires meanwhile', async (t) => {
  const client = connect(t, shared);
  const registry = registryOn(client, SHORT_TTL_MS);
  const kept = uid('u'), dropped = uid('u'), second = uid('u');
  await registry.add(kept, 's1');
  await registry.add(kept, 's2');
  await registry.add(second, 's3');
  await registry.add(dropped, 's4');
  const sessions = [{ user: kept, session: 's1' }, { user: kept, session: 's2' }, { user: second, session: 's3' }];
  const refreshes: Promise<string[]>[] = [];
  const timer = setInterval(() => { refreshes.push(registry.refresh(sessions)); }, SHORT_TTL_MS / 3);
  t.teardown(() => clearInterval(timer));

  // `dropped` was added with the others: once it has expired, a full TTL has passed for them too.
  await until(`${dropped} expires`, async () => (await registry.online([dropped])).size === 0);
  await until('another full TTL', async () => (await client.exists(registry.sessionsKey(dropped))) === 0 && refreshes.length >= 6);
  clearInterval(timer);
  t.same(await registry.online([kept, second, dropped]), new Set([kept, second]), 'refreshed users stay online');
  t.same(await Promise.all(refreshes), refreshes.map(() => []), 'no refresh had to restore a user');
  t.same((await client.zrange(registry.sessionsKey(kept), 0, '-1')).sort(), ['s1', 's2'], 'both devices kept');
  t.same(await registry.refresh([]), [], 'an empty refresh is a no-op');
});

t.test('redis: Redis restart — AOF keeps sessions; data loss reads offline until refresh re-adds them', async (t) => {
  const service = await privateRedis(t);
  const client = connect(t, service);
  const registry = registryOn(client, 60_000);
  const user = uid('u'), other = uid('u');
  await registry.add(user, 'phone');
  await registry.add(other, 'tablet');

  await service.stop();
  // While Redis is down, calls fail (after the bounded retry) instead of guessing.
  await t.rejects(registry.online([user]), 'online() rejects while Redis is down');
  await t.rejects(registry.add(user, 'laptop'), 'add() rejects while Redis is down');
  await service.start();
  // ioredis reconnects on its own (retryStrategy); nobody calls connect().
  await until('client ready again', async () => client.status === 'ready', 10_000);
  t.ok(client.errors.some((e) => /ECONNREFUSED/.test(e.message)), 'the client reported the outage as error events');
  t.same(await registry.online([user, other]), new Set([user, other]),
    'ops/infra.sh runs Redis with AOF: a clean restart keeps the sessions');
  t.equal(await registry.add(user, 'laptop'), false, 'scripts run again after the restart (script cache was empty)');

  // Lose the data the way a restart without persistence (or a lost disk) does: delete the AOF.
  const [, dir] = await client.config('GET', 'dir') as [string, string];
  await service.stop();
  await rm(join(dir, 'appendonlydir'), { recursive: true });
  await service.start();
  await until('client ready again', async () => client.status === 'ready', 10_000);
  t.equal(await client.dbsize(), 0, 'without persistence the restarted Redis is empty');
  t.same(await registry.online([user, other]), new Set(), 'degraded: connected users read offline');
  t.same(await registry.refresh([
    { user, session: 'phone' }, { user, session: 'laptop' }, { user: other, session: 'tablet' },
  ]), [user, other], 'refresh re-adds the sessions and names the users it restored');
  t.same(await registry.online([user, other]), new Set([user, other]), 'online again after one refresh');
  t.equal(await registry.remove(user, 'phone'), false);
  t.equal(await registry.remove(user, 'laptop'), true, 'restored sessions take part in last-device-out');
});

t.test('redis: options are validated and name the option', async (t) => {
  const client = connect(t, shared);
  t.throws(() => new RedisPresenceRegistry(client, { keyPrefix: '' }), /keyPrefix/);
  t.throws(() => new RedisPresenceRegistry(client, { keyPrefix: 'a{b}:' }), /keyPrefix/);
  t.throws(() => new RedisPresenceRegistry(client, { keyPrefix: 'p:', sessionTtlMs: 5 }), /sessionTtlMs/);
  t.throws(() => new RedisPresenceRegistry(client, { keyPrefix: 'p:', sessionTtlMs: 1.5e3 + 0.5 }), /sessionTtlMs/);
  const registry = new RedisPresenceRegistry(client, { keyPrefix: 'p:' });
  t.equal(registry.options.sessionTtlMs, 60_000, 'default TTL');
  t.ok(Object.isFrozen(registry.options));
});

t.test('redis: Redis errors surface as rejections', async (t) => {
  const client = connect(t, shared);
  const registry = registryOn(client);
  const user = uid('u');
  // Another type under the user's key: every script call must fail loudly, not answer "offline".
  await client.set(registry.sessionsKey(user), 'not a zset');
  await t.rejects(registry.add(user, 's'), /WRONGTYPE/);
  await t.rejects(registry.remove(user, 's'), /WRONGTYPE/);
  await t.rejects(registry.online([uid('u'), user]), /WRONGTYPE/, 'one bad key fails the whole batch');
  await t.rejects(registry.refresh([{ user, session: 's' }]), /WRONGTYPE/);
});
