// LMDB keeps history, cursors, contacts and seqs across a server restart.
import t from 'tap';
import { befriend, startTestServer } from './support/server.ts';

t.test('stop and start the server: history, read cursors and seqs survive', async (t) => {
  const server = await startTestServer();
  t.teardown(() => server.close());
  let alice = await server.connect('alice');
  let bob = await server.connect('bob');
  const conv = await befriend(alice, 'alice', bob, 'bob');
  for (let i = 1; i <= 10; i++) await alice.text(conv, `before restart ${i}`);
  await bob.req('read', { conv, seq: 7 });
  const epoch = alice.welcome.epoch;
  await alice.close();
  await bob.close();

  await server.restart();
  alice = await server.connect('alice');
  bob = await server.connect('bob');
  t.equal(alice.welcome.epoch, epoch, 'epoch unchanged: clients keep their state');
  const { msgs } = await bob.req('history', { conv, limit: 50 });
  t.same(msgs.map((m) => (m.body as { text: string }).text), Array.from({ length: 10 }, (_, i) => `before restart ${i + 1}`));
  t.same((await alice.req('receipts', { conv })).reads, { bob: 7 });
  t.equal((await alice.text(conv, 'after restart')).seq, 11, 'seqs continue without a gap');
  t.equal((await bob.req('conv.direct', { user: 'alice' })).conv, conv, 'contacts survived');
  await alice.close();
  await bob.close();
});
