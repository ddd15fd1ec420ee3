// History, read cursors, contacts and seqs survive stopping and starting every process: the
// embedded server (LMDB), or both gateways and both workers (Cassandra keeps the data).
import t from 'tap';
import { startDeployment, testModes } from './support/deployment.ts';
import { befriend } from './support/server.ts';

for (const mode of testModes()) {
  t.test(mode, async (t) => {
    t.test('stop and start the server: history, read cursors and seqs survive', async (t) => {
      const d = await startDeployment(mode);
      t.teardown(() => d.close());
      let alice = await d.connect('alice');
      let bob = await d.connect('bob');
      const conv = await befriend(alice, 'alice', bob, 'bob');
      for (let i = 1; i <= 10; i++) await alice.text(conv, `before restart ${i}`);
      await bob.req('read', { conv, seq: 7 });
      const epoch = alice.welcome.epoch;
      await alice.close();
      await bob.close();

      await d.restart();
      // After the restart each user lands on the gateway the other one used before.
      bob = await d.connect('bob');
      alice = await d.connect('alice');
      t.equal(alice.welcome.epoch, epoch, 'epoch unchanged: clients keep their state');
      const { msgs } = await bob.req('history', { conv, limit: 50 });
      t.same(msgs.map((m) => (m.body as { text: string }).text), Array.from({ length: 10 }, (_, i) => `before restart ${i + 1}`));
      t.same((await alice.req('receipts', { conv })).reads, { bob: 7 });
      t.equal((await alice.text(conv, 'after restart')).seq, 11, 'seqs continue without a gap');
      t.equal((await bob.req('conv.direct', { user: 'alice' })).conv, conv, 'contacts survived');
      await alice.close();
      await bob.close();
    });
  });
}
