import t from 'tap';
import type { Message } from '../protocol/frames.ts';
import { harness } from './test/harness.ts';

t.test('one paged sync loop returns everything missed across conversations, gapless, no duplicates', async (t) => {
  const h = harness();
  const d1 = await h.friends('alice', 'bob');
  const d2 = await h.friends('alice', 'carol');
  const { conv: g } = await h.as('carol').req('group.create', { title: 'g', members: ['alice', 'bob'] });
  // Alice's phone was last in sync after 3 messages of d1 and nothing else.
  for (let i = 0; i < 3; i++) await h.as('bob').text(d1, `early ${i}`);
  const since: Record<string, number> = { [d1]: 3 };
  for (let i = 0; i < 40; i++) {
    await h.as('bob').text(d1, `d1 ${i}`);
    await h.as('carol').text(d2, `d2 ${i}`);
    await h.as('bob').text(g, `g ${i}`);
  }
  const got: Message[] = [];
  let pages = 0;
  for (;;) {
    const r = await h.as('alice').req('sync', { since, limit: 25 });
    pages++;
    t.ok(r.msgs.length <= 25, 'page limit respected');
    for (const m of r.msgs) {
      t.equal(m.seq, (since[m.conv] ?? 0) + 1, `contiguous in ${m.conv}`);
      since[m.conv] = m.seq;
      got.push(m);
    }
    for (const c of r.convs) since[c.conv] ??= c.joined;
    if (!r.more) break;
  }
  t.ok(pages >= 5, 'needed several pages');
  t.equal(got.length, 40 + 40 + 41, 'd1 after cursor + all of d2 + all of g (with created notice)');
  t.equal(new Set(got.map((m) => `${m.conv}/${m.seq}`)).size, got.length, 'no duplicates');
  const final = await h.as('alice').req('sync', { since });
  t.same([final.msgs, final.convs, final.more], [[], [], false], 'nothing left');
});

t.test('sync reports conversations the user left and new empty ones', async (t) => {
  const h = harness();
  const { conv: g } = await h.as('alice').req('group.create', { title: 'g', members: ['bob'] });
  const d = await h.friends('bob', 'carol');
  await h.as('bob').req('group.leave', { conv: g });
  const r = await h.as('bob').req('sync', { since: { [g]: 1 } });
  t.same(r.removed, [g]);
  t.same(r.convs.map((c) => c.conv), [d], 'the new direct conversation is announced with no messages');
  t.equal(r.convs[0]!.epoch.length > 0, true);
});

t.test('members added later sync only from their join', async (t) => {
  const h = harness();
  const { conv } = await h.as('alice').req('group.create', { title: 'g', members: ['bob'] });
  for (let i = 0; i < 5; i++) await h.as('alice').text(conv, `secret ${i}`);
  await h.as('alice').req('group.add', { conv, users: ['dave'] });
  const r = await h.as('dave').req('sync', { since: {} });
  t.same(r.msgs.map((m) => m.body), [{ event: 'joined', by: 'alice', users: ['dave'] }]);
});
