// RedisGrabDecider against a real redis-server: the shared contract (each decider on its own
// connection, as on different workers), then what only Redis has: hash tags, TTLs, one round
// trip per decision, and a rebuild after Redis lost everything.
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { uid } from '../contract/fixtures.ts';
import { grabDeciderContract } from '../contract/grab-decider.contract.ts';
import { startRedis } from '../../test/support/infra.ts';
import { redisResilienceOptions } from './client-options.ts';
import { RedisGrabDecider } from './grab-decider.ts';

const redis = await startRedis();
t.teardown(() => redis.close());

function connect(t: Test): Redis {
  const client = new Redis({ host: '127.0.0.1', port: redis.port, ...redisResilienceOptions });
  t.teardown(() => { client.disconnect(); });
  return client;
}

grabDeciderContract(t, 'redis', async () => {
  const keyPrefix = `t${uid('p')}:`;
  const clients: Redis[] = [];
  return {
    make: () => {
      const client = new Redis({ host: '127.0.0.1', port: redis.port, ...redisResilienceOptions });
      clients.push(client);
      return new RedisGrabDecider(client, { keyPrefix });
    },
    cleanup: async () => { for (const c of clients) c.disconnect(); },
  };
});

const MINUTE = 60_000;

t.test('redis: an envelope\'s keys share its hash tag and expire a retention after it', async (t) => {
  const client = connect(t);
  const decider = new RedisGrabDecider(client, { keyPrefix: `t${uid('p')}:`, retentionMs: MINUTE });
  const id = uid('env');
  const expiresAt = Date.now() + 10 * MINUTE;
  await decider.load({ id, count: 3, expiresAt }, []);
  await decider.decide(id, 'alice', Date.now());
  const keys = decider.keys(id);
  t.same((await client.keys(`${decider.keyPrefix}*`)).sort(), [...keys].sort(), 'meta, shares and grabbed; nothing else');
  for (const key of keys) {
    t.equal(key.match(/\{[^}]*\}/)?.[0], `{env:${id}}`, `${key}: the first {...} is the envelope's hash tag`);
    const left = expiresAt + MINUTE - Date.now(); // read before Redis' clock, so at least pttl (+1 ms of rounding)
    const pttl = await client.pttl(key);
    t.ok(pttl > left - 2_000 && pttl <= left + 1, `${key} expires at expiresAt + retention (pttl ${pttl}, expected about ${left})`);
  }
});

t.test('redis: the grabbed hash made by the first decision gets the TTL too', async (t) => {
  const client = connect(t);
  const decider = new RedisGrabDecider(client, { keyPrefix: `t${uid('p')}:` });
  const id = uid('env');
  await decider.load({ id, count: 2, expiresAt: Date.now() + MINUTE }, []);
  const grabbed = decider.keys(id)[2];
  t.equal(await client.exists(grabbed), 0, 'no hash before any decision');
  await decider.decide(id, 'alice', Date.now());
  t.ok(await client.pttl(grabbed) > 3600_000, 'expires one default retention (1 h) after the envelope');
  await decider.forget(id, 'alice');
  await decider.decide(id, 'alice', Date.now());
  t.ok(await client.pttl(grabbed) > 3600_000, 'also when forget emptied (deleted) it and a decision made it again');
});

t.test('redis: an envelope loaded after it expired lives one retention from the load', async (t) => {
  const client = connect(t);
  const decider = new RedisGrabDecider(client, { keyPrefix: `t${uid('p')}:`, retentionMs: MINUTE });
  const id = uid('env');
  await decider.load({ id, count: 2, expiresAt: Date.now() - 10 * MINUTE }, [{ user: 'alice', index: 1 }]);
  t.same(await decider.decide(id, 'alice', Date.now()), { outcome: 'share', index: 1 }, 'the expiry sweep can read her decision');
  t.same(await decider.decide(id, 'bob', Date.now()), { outcome: 'expired' });
  const pttl = await client.pttl(decider.keys(id)[0]);
  t.ok(pttl > MINUTE - 2_000 && pttl <= MINUTE, `pttl ${pttl}`);
});

t.test('redis: drop deletes every key of the envelope', async (t) => {
  const client = connect(t);
  const decider = new RedisGrabDecider(client, { keyPrefix: `t${uid('p')}:` });
  const id = uid('env');
  await decider.load({ id, count: 2, expiresAt: Date.now() + MINUTE }, [{ user: 'alice', index: 0 }]);
  await decider.drop(id);
  t.same(await client.keys(`${decider.keyPrefix}*`), []);
});

t.test('redis: a decision is one round trip', async (t) => {
  const client = connect(t);
  const decider = new RedisGrabDecider(client, { keyPrefix: `t${uid('p')}:` });
  const id = uid('env');
  await decider.load({ id, count: 5, expiresAt: Date.now() + MINUTE }, []);
  await decider.decide(id, 'warm-up', Date.now()); // loads the script if the server lacked it
  // MONITOR shows every command the server runs, with its source: a client address, or 'lua'.
  const monitor = await connect(t).monitor();
  t.teardown(() => { monitor.disconnect(); });
  const sent: string[] = [];
  monitor.on('monitor', (_time: string, args: string[], source: string) => { if (source !== 'lua') sent.push(args[0]!.toLowerCase()); });
  for (let i = 0; i < 10; i++) await decider.decide(id, `u${i}`, Date.now());
  await client.echo('done');
  const deadline = Date.now() + 5_000;
  while (sent.at(-1) !== 'echo' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  t.same(sent, [...Array(10).fill('evalsha'), 'echo'], 'ten decisions, ten EVALSHA, nothing else');
});

t.test('redis: after Redis lost everything, decide is unknown and a load from the claims restores the rest', async (t) => {
  const client = connect(t);
  const admin = connect(t);
  const decider = new RedisGrabDecider(client, { keyPrefix: `t${uid('p')}:` });
  const id = uid('env');
  const now = Date.now();
  await decider.load({ id, count: 5, expiresAt: now + MINUTE }, []);
  for (const user of ['alice', 'bob', 'carol']) await decider.decide(id, user, now);
  // alice and bob claimed in the store; carol's worker crashed before her claim.
  await admin.flushall();
  await admin.script('FLUSH'); // a restarted server has no scripts either
  t.same(await decider.decide(id, 'alice', now), { outcome: 'unknown' }, 'her decision is gone: rebuild');
  t.same(await decider.decide(id, 'dave', now), { outcome: 'unknown' }, 'nor does anyone get a share');

  await decider.load({ id, count: 5, expiresAt: now + MINUTE }, [{ user: 'alice', index: 0 }, { user: 'bob', index: 1 }]);
  const answers = [];
  for (const user of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']) answers.push(await decider.decide(id, user, now));
  t.same(answers, [
    { outcome: 'share', index: 0 },
    { outcome: 'share', index: 1 },
    { outcome: 'share', index: 2 },
    { outcome: 'share', index: 3 },
    { outcome: 'share', index: 4 },
    { outcome: 'empty' },
  ], 'the claimed keep theirs; exactly shares 2, 3, 4 are left for everyone else');
});

t.test('redis: bad options are refused with the option named', async (t) => {
  const client = connect(t);
  t.throws(() => new RedisGrabDecider(client, { keyPrefix: '' }), /keyPrefix/);
  t.throws(() => new RedisGrabDecider(client, { keyPrefix: 'a{b}:' }), /keyPrefix/);
  t.throws(() => new RedisGrabDecider(client, { keyPrefix: 'a:', retentionMs: 0 }), /retentionMs/);
  t.throws(() => new RedisGrabDecider(client, { keyPrefix: 'a:', retentionMs: 1.5 }), /retentionMs/);
});
