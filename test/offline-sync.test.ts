// A device that was offline gets everything it missed, across conversations, in one paged sync
// loop, in each deployment mode (in distributed mode it comes back through the other gateway).
import t from 'tap';
import type { Message } from '../protocol/frames.ts';
import { startDeployment, testModes } from './support/deployment.ts';
import { befriend } from './support/server.ts';

for (const mode of testModes()) {
  t.test(mode, async (t) => {
    t.test('reconnect + paged sync: gapless, ordered, no duplicates, across all conversations', async (t) => {
      const d = await startDeployment(mode, { ratePerSec: 1000, rateBurst: 1000 });
      t.teardown(() => d.close());
      // Round-robin: alice and bob on one gateway, carol on the other; bob comes back on carol's.
      const alice = await d.connect('alice');
      const carol = await d.connect('carol');
      let bob = await d.connect('bob');
      const direct = await befriend(alice, 'alice', bob, 'bob');
      const group = (await carol.req('group.create', { title: 'g', members: ['alice', 'bob'] })).conv;
      for (let i = 0; i < 5; i++) await alice.text(direct, `seen ${i}`);
      await bob.waitForCount((f) => f.t === 'msg' && f.m.conv === direct, 5);
      // Bob's cursor: what he holds contiguously.
      const cursor: Record<string, number> = { [direct]: 5, [group]: 1 };
      await bob.close();

      const sent: Record<string, number[]> = { [direct]: [], [group]: [] };
      for (let i = 0; i < 30; i++) {
        sent[direct]!.push((await alice.text(direct, `missed d ${i}`)).seq);
        sent[group]!.push((await carol.text(group, `missed g ${i}`)).seq);
      }
      const later = await befriend(carol, 'carol', alice, 'alice');
      await alice.text(later, 'not for bob');

      bob = await d.connect('bob', 'phone');
      t.equal(bob.welcome.epoch, alice.welcome.epoch, 'same data set');
      const received: Message[] = [];
      let rounds = 0;
      for (;;) {
        const r = await bob.req('sync', { since: cursor, limit: 16 });
        rounds++;
        for (const m of r.msgs) {
          t.equal(m.seq, cursor[m.conv]! + 1, 'contiguous');
          cursor[m.conv] = m.seq;
          received.push(m);
        }
        if (!r.more) break;
      }
      t.ok(rounds >= 4, `paged over ${rounds} rounds`);
      t.same(received.filter((m) => m.conv === direct).map((m) => m.seq), sent[direct]);
      t.same(received.filter((m) => m.conv === group).map((m) => m.seq), sent[group]);
      t.notOk(received.some((m) => m.conv === later), 'only conversations bob belongs to');
      for (const c of [alice, bob, carol]) await c.close();
    });
  });
}
