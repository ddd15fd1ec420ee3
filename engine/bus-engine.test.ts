// The engine called across the Bus behaves like the engine called in process: results, errors
// (name, field), epoch; conversation requests are routed to their partition subject.
import t, { type Test } from 'tap';
import { connect } from '@nats-io/transport-node';
import { InProcessBus } from '../storage/memory/bus.ts';
import { NatsBus } from '../storage/nats/bus.ts';
import { startNats } from '../test/support/infra.ts';
import { BusEngine, conversationSubject, partitionOf, serveEngine, subjectFor, USER_SUBJECT } from './bus-engine.ts';
import { directConversationId } from './conversations.ts';
import type { Engine } from './api.ts';
import { StoreUnavailableError, type Bus } from './ports.ts';
import { harness } from './test/harness.ts';

const PARTITIONS = 16;
const WORKER_SUBJECTS = [USER_SUBJECT, 'lantern.conv.*'];

async function chatOver(t: Test, gatewayBus: Bus, workerBus: Bus): Promise<void> {
  const h = harness();
  const served = serveEngine(workerBus, h.engine, WORKER_SUBJECTS);
  t.teardown(() => served.unsubscribe());
  await workerBus.flush();
  const remote = await BusEngine.connect(gatewayBus, { partitions: PARTITIONS, requestTimeoutMs: 2000 });
  t.equal(remote.epoch, h.engine.epoch, 'welcome carries the store epoch');
  const alice = { user: 'alice', device: 'phone', session: 's1' };
  const bob = { user: 'bob', device: 'phone', session: 's2' };
  await remote.request(alice, 'contact.request', { user: 'bob' });
  await remote.request(bob, 'contact.accept', { user: 'alice' });
  const { conv } = await remote.request(alice, 'conv.direct', { user: 'bob' });
  const acks = [];
  for (let i = 0; i < 5; i++) acks.push(await remote.request(alice, 'send', { conv, cid: `c${i}`, kind: 'text', body: { text: `hi ${i}` } }));
  t.same(acks.map((a) => a.seq), [1, 2, 3, 4, 5]);
  t.equal((await remote.request(alice, 'send', { conv, cid: 'c0', kind: 'text', body: { text: 'hi 0' } })).dup, true, 'idempotent across the bus');
  const { msgs } = await remote.request(bob, 'history', { conv });
  t.same(msgs.map((m) => m.seq), [1, 2, 3, 4, 5]);
  t.same(h.delivery.of('bob', 'msg').length, 5, 'the worker delivered');
  await t.rejects(remote.request({ user: 'mallory', device: 'x', session: 's3' }, 'send', { conv, cid: 'm', kind: 'text', body: { text: 'x' } }),
    { name: 'LanternError', error: 'not_member', field: 'conv' }, 'errors keep their name and field');
  await t.rejects(remote.request(alice, 'send', { conv, cid: 'big', kind: 'text', body: { text: 'x'.repeat(5000) } }),
    { name: 'LanternError', error: 'too_large', field: 'body.text' });
  await remote.connected(alice);
  t.same((await remote.request(bob, 'presence', { users: ['alice'] })).presence.map((p) => p.online), [true], 'connected() crossed the bus');
}

t.test('routing: conversation requests go to their partition, the rest to the shared subject', async (t) => {
  const who = { user: 'alice', device: 'p', session: 's' };
  t.equal(subjectFor('send', { conv: 'g:1' }, who, PARTITIONS), conversationSubject(partitionOf('g:1', PARTITIONS)));
  t.equal(subjectFor('conv.direct', { user: 'bob' }, who, PARTITIONS), conversationSubject(partitionOf(directConversationId('alice', 'bob'), PARTITIONS)),
    'conv.direct goes where its conversation will live');
  t.equal(subjectFor('sync', { since: {} }, who, PARTITIONS), USER_SUBJECT);
  t.equal(subjectFor('group.create', { title: 'x', members: [] }, who, PARTITIONS), USER_SUBJECT);
  const spread = new Set(Array.from({ length: 200 }, (_, i) => partitionOf(`g:${i}`, PARTITIONS)));
  t.equal(spread.size, PARTITIONS, 'conversations spread over every partition');
});

t.test('over the in-process bus', async (t) => {
  const bus = new InProcessBus();
  t.teardown(() => bus.close());
  await chatOver(t, bus, bus);
});

t.test('over NATS, gateway and worker on separate connections', async (t) => {
  const nats = await startNats();
  t.teardown(() => nats.close());
  const gatewayBus = new NatsBus(await connect({ servers: nats.url }));
  const workerBus = new NatsBus(await connect({ servers: nats.url }));
  t.teardown(async () => { await gatewayBus.close(); await workerBus.close(); });
  await chatOver(t, gatewayBus, workerBus);
});

t.test('no worker: unavailable (retryable); a stuck worker: timeout (retryable)', async (t) => {
  const bus = new InProcessBus();
  t.teardown(() => bus.close());
  const epochOnly = bus.serve(USER_SUBJECT, async () => new Uint8Array([0x81, 0xa2, 0x6f, 0x6b, 0xa1, 0x65])); // {ok: 'e'}
  const remote = await BusEngine.connect(bus, { partitions: PARTITIONS, requestTimeoutMs: 100 });
  epochOnly.unsubscribe();
  const who = { user: 'a', device: 'd', session: 's' };
  await t.rejects(remote.request(who, 'send', { conv: 'g:1', cid: 'c', kind: 'text', body: { text: 'x' } }), { name: 'LanternError', error: 'unavailable', retry: true });
  bus.serve('lantern.conv.*', () => new Promise<Uint8Array>(() => {}));
  await t.rejects(remote.request(who, 'send', { conv: 'g:1', cid: 'c', kind: 'text', body: { text: 'x' } }), { name: 'LanternError', error: 'timeout', retry: true });
});

t.test('storage down: the worker answers `unavailable` (retryable), never `internal`', async (t) => {
  const bus = new InProcessBus();
  t.teardown(() => bus.close());
  const storeDown: Engine = {
    epoch: 'e',
    request: async () => { throw new StoreUnavailableError('cql: getConversation failed: All host(s) tried for query failed'); },
    connected: async () => {}, disconnected: async () => {}, close: async () => {},
  };
  const served = serveEngine(bus, storeDown, WORKER_SUBJECTS);
  t.teardown(() => served.unsubscribe());
  const remote = await BusEngine.connect(bus, { partitions: PARTITIONS, requestTimeoutMs: 1000 });
  const who = { user: 'a', device: 'd', session: 's' };
  await t.rejects(remote.request(who, 'send', { conv: 'g:1', cid: 'c', kind: 'text', body: { text: 'x' } }),
    { name: 'LanternError', error: 'unavailable', retry: true, message: /storage unavailable/ });
});
