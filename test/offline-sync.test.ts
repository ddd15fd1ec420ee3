// A device that was offline gets everything it missed, across conversations, in one paged sync loop.
import t from 'tap';
import type { Message } from '../protocol/frames.ts';
import { befriend, startTestServer } from './support/server.ts';

t.test('reconnect + paged sync: gapless, ordered, no duplicates, across all conversations', async (t) => {
  const server = await startTestServer({ ratePerSec: 1000, rateBurst: 1000 });
  t.teardown(() => server.close());
  const alice = await server.connect('alice');
  const carol = await server.connect('carol');
  let bob = await server.connect('bob');
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

  bob = await server.connect('bob', 'phone');
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
