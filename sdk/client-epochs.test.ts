// Discontinuities: a new server epoch drops all state, a new conversation epoch drops that
// conversation, and removed conversations are reported.
import t from 'tap';
import { FakeServer } from './test/fake-server.ts';
import { makeClient, record, until } from './test/helpers.ts';
import { MemoryCursorStore } from './sync-state.ts';

t.test('a new welcome.epoch drops all cursors and reloads from empty', async (t) => {
  const server = await FakeServer.start();
  server.append('g', 'bob', 'text', { text: 'old world' });
  const client = makeClient(server);
  const rec = record(client);
  const resets: Array<string | undefined> = [];
  client.on('reset', (r) => resets.push(r.conv));
  t.teardown(async () => {
    await client.close();
    await server.stop();
  });
  await client.connect();
  await until(() => rec.synced.length === 1, 'first sync');
  t.same(rec.keys(), ['g#1']);

  // The server's storage was replaced: same conversation id, different history.
  server.epoch = 'epoch-2';
  server.logs.clear();
  server.append('g', 'bob', 'text', { text: 'new world' });
  server.closeAll(1001, 'restart');
  await until(() => rec.synced.length === 2, 'resync after the epoch change');
  t.same(resets, [undefined], 'one reset of everything');
  t.same(server.framesOfType('sync').at(-1)?.['since'], {}, 'synced from empty');
  t.same(rec.messages.map((m) => (m.body as { text: string }).text), ['old world', 'new world']);
});

t.test('a changed conversation epoch drops that conversation and reloads it from joined', async (t) => {
  const server = await FakeServer.start();
  server.append('g', 'bob', 'text', { text: 'g1' });
  server.append('h', 'bob', 'text', { text: 'h1' });
  const client = makeClient(server);
  const rec = record(client);
  const resets: Array<string | undefined> = [];
  client.on('reset', (r) => resets.push(r.conv));
  t.teardown(async () => {
    await client.close();
    await server.stop();
  });
  await client.connect();
  await until(() => rec.synced.length === 1, 'first sync');

  server.logs.set('g', []);
  server.convEpochs.set('g', 'c2');
  server.append('g', 'bob', 'text', { text: 'g1 again' });
  server.append('g', 'bob', 'text', { text: 'g2' });
  server.broadcast({ t: 'lag' });
  await until(() => rec.synced.length === 2, 'the lag sync');
  t.same(resets, ['g']);
  t.same(rec.keys(), ['g#1', 'h#1', 'g#1', 'g#2'], 'g reloaded from its start, h untouched');
  t.equal(client.cursor('h'), 1);
  t.equal(client.cursor('g'), 2);
});

t.test('conversations the user left are reported as removed', async (t) => {
  const server = await FakeServer.start();
  server.append('g', 'bob', 'text', { text: 'bye' });
  const client = makeClient(server);
  const rec = record(client);
  const removed: string[] = [];
  client.on('removed', (r) => removed.push(r.conv));
  t.teardown(async () => {
    await client.close();
    await server.stop();
  });
  await client.connect();
  await until(() => rec.synced.length === 1, 'first sync');
  server.logs.delete('g');
  client.resync();
  await until(() => rec.synced.length === 2, 'manual sync');
  t.same(removed, ['g']);
  t.equal(client.cursor('g'), undefined);
  t.equal(rec.synced[1]?.reason, 'manual');
});

t.test('cursors persist in the state store and a new client resumes from them', async (t) => {
  const server = await FakeServer.start();
  server.append('g', 'bob', 'text', { text: '1' });
  server.append('g', 'bob', 'text', { text: '2' });
  const store = new MemoryCursorStore();
  const first = makeClient(server, { state: store });
  const rec1 = record(first);
  t.teardown(() => server.stop());
  await first.connect();
  await until(() => rec1.synced.length === 1, 'first sync');
  await first.close();
  t.same(store.load(), { epoch: 'epoch-1', convs: { g: { seq: 2, epoch: 'c1' } } });

  server.append('g', 'bob', 'text', { text: '3' });
  const second = makeClient(server, { state: store });
  const rec2 = record(second);
  t.teardown(() => second.close());
  await second.connect();
  await until(() => rec2.synced.length === 1, 'second client sync');
  t.same(rec2.keys(), ['g#3'], 'only what the first client had not seen');
  t.same(server.framesOfType('sync').at(-1)?.['since'], { g: 2 });
});
