// RedisStockGate against a real redis-server: the shared contract (each gate on its own
// connection, as on different workers), then what only Redis has: hash tags, TTLs, one round
// trip per decision, and a rebuild after Redis lost everything.
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { uid } from '../contract/fixtures.ts';
import { stockGateContract } from '../contract/stock-gate.contract.ts';
import { startRedis } from '../../test/support/infra.ts';
import { redisResilienceOptions } from './client-options.ts';
import { GATE_HOLD_AFTER_LOAD_MS } from '../memory/stock-gate.ts';
import { RedisStockGate } from './stock-gate.ts';

const redis = await startRedis();
t.teardown(() => redis.close());

function connect(t: Test): Redis {
  const client = new Redis({ host: '127.0.0.1', port: redis.port, ...redisResilienceOptions });
  t.teardown(() => { client.disconnect(); });
  return client;
}

stockGateContract(t, 'redis', async () => {
  const keyPrefix = `t${uid('p')}:`;
  const clients: Redis[] = [];
  return {
    make: () => {
      const client = new Redis({ host: '127.0.0.1', port: redis.port, ...redisResilienceOptions });
      clients.push(client);
      return new RedisStockGate(client, { keyPrefix });
    },
    cleanup: async () => { for (const c of clients) c.disconnect(); },
  };
});

const MINUTE = 60_000;
const NOTHING_HELD = { taken: 0, users: [], pending: [] };
const saleAt = (now: number, retainUntil: number) =>
  ({ id: uid('sale'), stock: 5, perUserLimit: 2, startAt: now - MINUTE, endAt: now + MINUTE, retainUntil });
const attempt = (user: string, now: number, order = uid('o')) => ({ order, user, units: 1, now, payBy: now + MINUTE });

/** Asserts every key lives in the sale's hash slot and expires at `dropAt` (give or take the test's own delay). */
async function expectRetention(t: Test, client: Redis, gate: RedisStockGate, saleId: string, dropAt: number): Promise<void> {
  for (const key of gate.keys(saleId)) {
    t.equal(key.match(/\{[^}]*\}/)?.[0], `{sale:${saleId}}`, `${key}: the first {...} is the sale's hash tag`);
    const left = dropAt - Date.now(); // read before Redis' clock, so at least pttl (+1 ms of rounding)
    const pttl = await client.pttl(key);
    t.ok(pttl > left - 2_000 && pttl <= left + 1, `${key} expires at the sale's dropAt (pttl ${pttl}, expected about ${left})`);
  }
}

t.test('redis: a sale\'s keys share its hash tag and expire at its retainUntil', async (t) => {
  const client = connect(t);
  const gate = new RedisStockGate(client, { keyPrefix: `t${uid('p')}:` });
  const now = Date.now();
  const sale = saleAt(now, now + 10 * MINUTE);
  await gate.load(sale, { taken: 1, users: [{ user: 'bob', units: 1 }], pending: [{ order: 'b1', user: 'bob', units: 1, payBy: now }] });
  t.same(await gate.decide(sale.id, attempt('alice', now)), { outcome: 'admit' });
  t.same((await client.keys(`${gate.keyPrefix}*`)).sort(), [...gate.keys(sale.id)].sort(), 'meta, users, orders and pending; nothing else');
  await expectRetention(t, client, gate, sale.id, sale.retainUntil);
});

t.test('redis: keys a decision creates, or makes again after a release emptied them, get the TTL too', async (t) => {
  const client = connect(t);
  const gate = new RedisStockGate(client, { keyPrefix: `t${uid('p')}:` });
  const now = Date.now();
  const sale = saleAt(now, now + 10 * MINUTE);
  await gate.load(sale, NOTHING_HELD);
  const [, users, orders, pending] = gate.keys(sale.id);
  t.same(await client.exists(users, orders, pending), 0, 'nothing but meta before any decision');
  await gate.decide(sale.id, attempt('alice', now - 2 * MINUTE)); // not_open writes nothing
  t.same(await client.exists(users, orders, pending), 0, 'a not_open answer wrote nothing');
  await gate.decide(sale.id, { ...attempt('alice', now), units: 3 }); // limit_reached: only the order's answer
  t.same([await client.exists(orders), await client.exists(users, pending)], [1, 0], 'a refusal writes its order only');
  t.ok(await client.pttl(orders) > 9 * MINUTE, 'the orders hash made by a refusal expires with the sale');
  const order = attempt('alice', now);
  await gate.decide(sale.id, order);
  await gate.release(sale.id, order.order);
  t.same(await client.exists(users, pending), 0, 'the release emptied (deleted) users and pending');
  await gate.decide(sale.id, attempt('bob', now));
  await expectRetention(t, client, gate, sale.id, sale.retainUntil);
});

t.test('redis: a sale loaded after its retainUntil lives a while from the load', async (t) => {
  const client = connect(t);
  const gate = new RedisStockGate(client, { keyPrefix: `t${uid('p')}:` });
  const now = Date.now();
  const sale = saleAt(now, now - 10 * MINUTE);
  await gate.load(sale, { taken: 1, users: [{ user: 'alice', units: 1 }], pending: [{ order: 'a1', user: 'alice', units: 1, payBy: now }] });
  t.same(await gate.decide(sale.id, attempt('alice', now, 'a1')), { outcome: 'duplicate', earlier: 'admit' }, 'installed, not undone at once');
  for (const key of gate.keys(sale.id)) {
    const pttl = await client.pttl(key);
    t.ok(pttl > GATE_HOLD_AFTER_LOAD_MS - 2_000 && pttl <= GATE_HOLD_AFTER_LOAD_MS, `${key} expires one hold after the load (pttl ${pttl})`);
  }
});

t.test('redis: drop deletes every key of the sale', async (t) => {
  const client = connect(t);
  const gate = new RedisStockGate(client, { keyPrefix: `t${uid('p')}:` });
  const now = Date.now();
  const sale = saleAt(now, now + MINUTE);
  await gate.load(sale, { taken: 1, users: [{ user: 'alice', units: 1 }], pending: [{ order: 'a1', user: 'alice', units: 1, payBy: now }] });
  await gate.decide(sale.id, attempt('bob', now));
  await gate.drop(sale.id);
  t.same(await client.keys(`${gate.keyPrefix}*`), []);
});

t.test('redis: a decision is one round trip', async (t) => {
  const client = connect(t);
  const gate = new RedisStockGate(client, { keyPrefix: `t${uid('p')}:` });
  const now = Date.now();
  const sale = saleAt(now, now + MINUTE);
  await gate.load(sale, NOTHING_HELD);
  await gate.decide(sale.id, attempt('warm-up', now)); // loads the script if the server lacked it
  // MONITOR shows every command the server runs, with its source: a client address, or 'lua'.
  const monitor = await connect(t).monitor();
  t.teardown(() => { monitor.disconnect(); });
  const sent: string[] = [];
  monitor.on('monitor', (_time: string, args: string[], source: string) => { if (source !== 'lua') sent.push(args[0]!.toLowerCase()); });
  for (let i = 0; i < 10; i++) await gate.decide(sale.id, attempt(`u${i}`, now));
  await client.echo('done');
  const deadline = Date.now() + 5_000;
  while (sent.at(-1) !== 'echo' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  t.same(sent, [...Array(10).fill('evalsha'), 'echo'], 'ten decisions, ten EVALSHA, nothing else');
});

t.test('redis: after Redis lost everything, decide is unknown and a load from the holdings restores the rest', async (t) => {
  const client = connect(t);
  const admin = connect(t);
  const gate = new RedisStockGate(client, { keyPrefix: `t${uid('p')}:` });
  const now = Date.now();
  const sale = { ...saleAt(now, now + MINUTE), stock: 4 };
  await gate.load(sale, NOTHING_HELD);
  for (const user of ['alice', 'bob', 'carol']) await gate.decide(sale.id, attempt(user, now, `o-${user}`));
  // alice and bob reserved in the store; carol's worker crashed before her reservation.
  await admin.flushall();
  await admin.script('FLUSH'); // a restarted server has no scripts either
  t.same(await gate.decide(sale.id, attempt('alice', now, 'o-alice')), { outcome: 'unknown' }, 'her admission is gone: rebuild');
  t.same(await gate.decide(sale.id, attempt('dave', now)), { outcome: 'unknown' }, 'nor is anyone admitted');

  const pending = ['alice', 'bob'].map((user) => ({ order: `o-${user}`, user, units: 1, payBy: now + MINUTE }));
  await gate.load(sale, { taken: 2, users: [{ user: 'alice', units: 1 }, { user: 'bob', units: 1 }], pending });
  const answers = [];
  for (const user of ['alice', 'bob', 'carol', 'dave', 'erin']) answers.push(await gate.decide(sale.id, attempt(user, now, `o-${user}`)));
  t.same(answers, [
    { outcome: 'duplicate', earlier: 'admit' },
    { outcome: 'duplicate', earlier: 'admit' },
    { outcome: 'admit' },
    { outcome: 'admit' },
    { outcome: 'sold_out' },
  ], 'the reserved keep theirs; carol\'s retry and one more buyer get the 2 units left');
});

t.test('redis: bad options are refused with the option named', async (t) => {
  const client = connect(t);
  t.throws(() => new RedisStockGate(client, { keyPrefix: '' }), /keyPrefix/);
  t.throws(() => new RedisStockGate(client, { keyPrefix: 'a{b}:' }), /keyPrefix/);
});
