import t from 'tap';
import { harness } from './test/harness.ts';

const code = (error: string) => ({ name: 'LanternError', error });

t.test('request, accept, list, and both sides are told', async (t) => {
  const h = harness();
  t.equal((await h.as('alice').req('contact.request', { user: 'bob', note: 'hi, Alice here' })).state, 'requested');
  t.same(h.delivery.of('bob', 'contact'), [{ t: 'contact', user: 'alice', state: 'incoming', note: 'hi, Alice here' }]);
  t.same((await h.as('bob').req('contact.list', {})).contacts.map((c) => [c.user, c.state]), [['alice', 'incoming']]);
  t.equal((await h.as('bob').req('contact.accept', { user: 'alice' })).state, 'friend');
  t.same((await h.as('alice').req('contact.list', {})).contacts.map((c) => [c.user, c.state]), [['bob', 'friend']]);
  t.equal(h.delivery.of('alice', 'contact').at(-1)?.state, 'friend');
});

t.test('crossed requests become a friendship; accept without a request is a conflict', async (t) => {
  const h = harness();
  await h.as('alice').req('contact.request', { user: 'bob' });
  t.equal((await h.as('bob').req('contact.request', { user: 'alice' })).state, 'friend');
  await t.rejects(h.as('carol').req('contact.accept', { user: 'alice' }), code('conflict'));
  await t.rejects(h.as('carol').req('contact.request', { user: 'carol' }), code('invalid_field'));
});

t.test('direct conversations need friendship; blocking stops requests and sends', async (t) => {
  const h = harness();
  await t.rejects(h.as('alice').req('conv.direct', { user: 'bob' }), code('not_contact'));
  const conv = await h.friends('alice', 'bob');
  t.equal((await h.as('bob').req('conv.direct', { user: 'alice' })).conv, conv, 'same conversation from both sides');
  await h.as('bob').req('contact.block', { user: 'alice' });
  await t.rejects(h.as('alice').text(conv, 'hello?'), code('blocked'));
  await t.rejects(h.as('alice').req('contact.request', { user: 'bob' }), code('blocked'));
  t.same((await h.as('alice').req('contact.list', {})).contacts, [], 'the blocked side just loses the contact');
  await h.as('bob').req('contact.unblock', { user: 'alice' });
  await h.as('alice').req('contact.request', { user: 'bob' });
  await h.as('bob').req('contact.accept', { user: 'alice' });
  t.equal((await h.as('alice').text(conv, 'back')).seq, 1);
});

t.test('direct conversation ids are unambiguous for ids containing separators', async (t) => {
  const h = harness();
  const c1 = await h.friends('a:b', 'c');
  const c2 = await h.friends('a', 'b:c');
  t.not(c1, c2);
  const { convs } = await h.as('a').req('conv.list', {});
  t.same(convs.map((c) => [c.conv, c.peer]).sort(), [[c2, 'b:c']], "a's list names the right peer");
  const listed = (await h.as('a:b').req('conv.list', {})).convs;
  t.same(listed.map((c) => c.peer), ['c']);
  t.equal((await h.as('c').req('sync', { since: {} })).convs[0]!.peer, 'a:b', 'sync names the peer too');
});

t.test('presence: friends see online/offline with last seen; strangers see nothing', async (t) => {
  const h = harness();
  await h.friends('alice', 'bob');
  const phone = h.as('alice', 'phone');
  const laptop = h.as('alice', 'laptop');
  await h.engine.connected(phone.who);
  await h.engine.connected(laptop.who);
  t.same(h.delivery.of('bob', 'presence').map((e) => e.online), [true], 'one online event for two devices');
  t.same((await h.as('bob').req('presence', { users: ['alice', 'stranger'] })).presence.map((p) => [p.user, p.online]), [['alice', true]]);
  t.same((await h.as('stranger').req('presence', { users: ['alice'] })).presence, [], 'not visible to non-contacts');
  await h.engine.disconnected(phone.who);
  t.equal(h.delivery.of('bob', 'presence').length, 1, 'still online on the laptop');
  h.clock.ms += 5000;
  await h.engine.disconnected(laptop.who);
  const off = h.delivery.of('bob', 'presence').at(-1)!;
  t.same([off.online, off.lastSeen], [false, h.clock.ms]);
});

t.test('requests crossing at the same moment still make a friendship (no lost update)', async (t) => {
  const h = harness();
  const pairs = [['ann', 'ben'], ['cat', 'dan'], ['eve', 'fay']] as const;
  const answers = await Promise.all(pairs.flatMap(([a, b]) => [
    h.as(a).req('contact.request', { user: b }), h.as(b).req('contact.request', { user: a }),
  ]));
  t.same(answers.map((r) => r.state).sort(), ['friend', 'friend', 'friend', 'requested', 'requested', 'requested'], 'one side of each pair asks second');
  for (const [a, b] of pairs) {
    t.same((await h.as(a).req('contact.list', {})).contacts.map((c) => [c.user, c.state]), [[b, 'friend']], `${a} sees ${b} as a friend`);
    t.same((await h.as(b).req('contact.list', {})).contacts.map((c) => [c.user, c.state]), [[a, 'friend']], `${b} sees ${a} as a friend`);
    t.equal(h.delivery.of(a, 'contact').at(-1)?.state, 'friend', `${a} is told`);
  }
});
