// Live message delivery: dedupe by (conv, seq), seq order per conversation, gap -> sync, lag -> sync.
import t, { type Test } from 'tap';
import { FakeServer } from './test/fake-server.ts';
import { makeClient, record, until } from './test/helpers.ts';

async function setup(t: Test) {
  const server = await FakeServer.start();
  const client = makeClient(server);
  const rec = record(client);
  t.teardown(async () => {
    await client.close();
    await server.stop();
  });
  const welcome = await client.connect();
  await until(() => rec.synced.length === 1, 'the sync after welcome');
  return { server, client, rec, welcome };
}

t.test('connect resolves with the welcome and emits connected', async (t) => {
  const { client, rec, welcome, server } = await setup(t);
  t.equal(welcome.user, 'alice');
  t.equal(welcome.epoch, 'epoch-1');
  t.same(rec.connected, [welcome]);
  t.equal(client.connected, true);
  t.equal(server.hellos[0]?.device, 'dev');
  t.same(server.framesOfType('sync')[0]?.['since'], {}, 'a fresh client syncs from nothing');
  t.same(rec.errors, []);
});

t.test('out-of-order and repeated pushes are delivered once, in seq order', async (t) => {
  const { server, rec } = await setup(t);
  const a1 = server.append('a', 'bob', 'text', { text: '1' });
  const a2 = server.append('a', 'bob', 'text', { text: '2' });
  const a3 = server.append('a', 'bob', 'text', { text: '3' });
  const b1 = server.append('b', 'bob', 'text', { text: 'b1' });
  for (const m of [a1, a3, b1, a1, a2, a3, b1, a2]) server.pushMsg(m);
  await until(() => rec.messages.length >= 4, 'four messages');
  // Let any duplicate that could still be emitted arrive: a round trip orders after the pushes.
  await until(() => rec.synced.length >= 2, 'the gap sync');
  const perConv = (conv: string) => rec.messages.filter((m) => m.conv === conv).map((m) => m.seq);
  t.same(perConv('a'), [1, 2, 3]);
  t.same(perConv('b'), [1]);
  t.equal(rec.messages.length, 4, 'no duplicates');
  t.same(rec.messages.filter((m) => m.conv === 'a').map((m) => m.body), [{ text: '1' }, { text: '2' }, { text: '3' }]);
});

t.test('a seq gap triggers sync and the missing messages are emitted in order', async (t) => {
  const { server, client, rec } = await setup(t);
  server.publish('g', 'bob', 'one');
  await until(() => rec.messages.length === 1, 'the first message');
  server.append('g', 'bob', 'text', { text: 'two (dropped)' });
  server.append('g', 'bob', 'text', { text: 'three (dropped)' });
  server.publish('g', 'bob', 'four');
  await until(() => rec.messages.length === 4, 'the missed messages');
  t.same(rec.keys(), ['g#1', 'g#2', 'g#3', 'g#4']);
  const syncs = server.framesOfType('sync');
  t.same(syncs.at(-1)?.['since'], { g: 1 }, 'sync asked from the contiguous cursor');
  t.equal(client.cursor('g'), 4);
  await until(() => rec.synced.some((s) => s.reason === 'gap'), 'synced after the gap');
  t.same(rec.errors, []);
});

t.test('a lag event triggers sync', async (t) => {
  const { server, rec } = await setup(t);
  server.append('c', 'bob', 'text', { text: 'missed 1' });
  server.append('c', 'bob', 'text', { text: 'missed 2' });
  server.broadcast({ t: 'lag' });
  await until(() => rec.messages.length === 2, 'messages fetched by the lag sync');
  t.same(rec.keys(), ['c#1', 'c#2']);
  await until(() => rec.synced.some((s) => s.reason === 'lag'), 'synced(lag)');
});

t.test('sync pages through more:true with the advanced cursor', async (t) => {
  const server = await FakeServer.start();
  for (let i = 1; i <= 7; i++) server.append('p', 'bob', 'text', { text: String(i) });
  const client = makeClient(server, { syncLimit: 3 });
  const rec = record(client);
  t.teardown(async () => {
    await client.close();
    await server.stop();
  });
  await client.connect();
  await until(() => rec.synced.length === 1, 'the first sync');
  t.same(rec.messages.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7]);
  t.same(server.framesOfType('sync').map((f) => f['since']), [{}, { p: 3 }, { p: 6 }]);
  t.same(server.framesOfType('sync').map((f) => f['limit']), [3, 3, 3]);
  t.same(rec.synced[0], { reason: 'welcome', messages: 7, conversations: 1 });
});

t.test('receipt, typing, presence and contact events reach their handlers', async (t) => {
  const { server, client } = await setup(t);
  const seen: string[] = [];
  client.on('receipt', (r) => seen.push(`receipt ${r.conv} ${r.user} ${r.seq}`));
  client.on('typing', (e) => seen.push(`typing ${e.conv} ${e.user} ${e.on}`));
  client.on('presence', (p) => seen.push(`presence ${p.user} ${p.online} ${p.lastSeen}`));
  client.on('contact', (c) => seen.push(`contact ${c.user} ${c.state} ${c.note ?? ''}`));
  server.broadcast({ t: 'receipt', conv: 'a', user: 'bob', seq: 3 });
  server.broadcast({ t: 'typing', conv: 'a', user: 'bob', on: true });
  server.broadcast({ t: 'presence', user: 'bob', online: false, lastSeen: 42 });
  server.broadcast({ t: 'contact', user: 'carol', state: 'incoming', note: 'hi' });
  await until(() => seen.length === 4, 'four events');
  t.same(seen, ['receipt a bob 3', 'typing a bob true', 'presence bob false 42', 'contact carol incoming hi']);
});

t.test('a throwing handler is reported as an error and does not stop delivery', async (t) => {
  const { server, client, rec } = await setup(t);
  client.on('message', () => {
    throw new Error('app bug');
  });
  server.publish('h', 'bob', 'x');
  server.publish('h', 'bob', 'y');
  await until(() => rec.messages.length === 2, 'both messages despite the throwing handler');
  t.equal(rec.errors.length, 2);
  t.equal(rec.errors[0]?.context, 'handler:message');
  t.match(rec.errors[0]?.error.message, /app bug/);
});

t.test('requests are typed and replies matched by id', async (t) => {
  const { client } = await setup(t);
  const [ts, read] = await Promise.all([client.ping(), client.read('a', 5)]);
  t.type(ts, 'number');
  t.same(read, { conv: 'a', read: 5 });
  await t.rejects(client.request('conv.list', {}), { name: 'LanternClientError', code: 1001, error: 'unknown_type', retry: false, request: 'conv.list' });
});
