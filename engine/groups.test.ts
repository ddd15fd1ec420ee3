import t from 'tap';
import { harness } from './test/harness.ts';

const code = (error: string) => ({ name: 'LanternError', error });

t.test('group create: owner, members, a created notice at seq 1 delivered to everyone', async (t) => {
  const h = harness();
  const info = await h.as('alice').req('group.create', { title: 'trip', members: ['bob', 'carol', 'bob'] });
  t.equal(info.type, 'group');
  t.equal(info.role, 'owner');
  t.equal(info.members, 3);
  t.equal(info.head, 1);
  for (const u of ['alice', 'bob', 'carol']) {
    t.same(h.delivery.of(u, 'msg').map((e) => e.m.body), [{ event: 'created', by: 'alice', users: ['bob', 'carol'], title: 'trip' }]);
  }
  const { members } = await h.as('bob').req('conv.info', { conv: info.conv });
  t.same(members.map((m) => [m.user, m.role]), [['alice', 'owner'], ['bob', 'member'], ['carol', 'member']]);
});

t.test('a message reaches every device of every member', async (t) => {
  const h = harness();
  const { conv } = await h.as('alice').req('group.create', { title: 'g', members: ['bob', 'carol'] });
  await h.as('bob', 'laptop').text(conv, 'hi all');
  for (const u of ['alice', 'bob', 'carol']) t.equal(h.delivery.of(u, 'msg').at(-1)?.m.body && (h.delivery.of(u, 'msg').at(-1)!.m.body as { text: string }).text, 'hi all');
  t.equal(h.delivery.of('bob', 'msg').at(-1)!.m.dev, 'laptop', 'the sending device is named');
});

t.test('roles: admins add and remove members, only the owner promotes or removes admins', async (t) => {
  const h = harness();
  const { conv } = await h.as('alice').req('group.create', { title: 'g', members: ['bob', 'carol'] });
  await t.rejects(h.as('bob').req('group.add', { conv, users: ['dave'] }), code('forbidden'));
  await h.as('alice').req('group.role', { conv, user: 'bob', role: 'admin' });
  await h.as('bob').req('group.add', { conv, users: ['dave'] });
  await t.rejects(h.as('bob').req('group.add', { conv, users: ['dave'] }), code('conflict'), 'already a member');
  await h.as('alice').req('group.role', { conv, user: 'carol', role: 'admin' });
  await t.rejects(h.as('bob').req('group.remove', { conv, users: ['carol'] }), code('forbidden'), 'admin cannot remove admin');
  await t.rejects(h.as('bob').req('group.remove', { conv, users: ['alice'] }), code('forbidden'), 'nobody removes the owner');
  await t.rejects(h.as('bob').req('group.role', { conv, user: 'dave', role: 'admin' }), code('forbidden'));
  await h.as('bob').req('group.remove', { conv, users: ['dave'] });
  await t.rejects(h.as('dave').text(conv, 'still here?'), code('not_member'));
  const removal = h.delivery.of('dave', 'msg').at(-1)!.m;
  t.same(removal.body, { event: 'removed', by: 'bob', users: ['dave'] }, 'the removed member sees the removal');
});

t.test('new members see history only from the notice that added them', async (t) => {
  const h = harness();
  const { conv } = await h.as('alice').req('group.create', { title: 'g', members: ['bob'] });
  await h.as('alice').text(conv, 'before dave');
  const added = await h.as('alice').req('group.add', { conv, users: ['dave'] });
  await h.as('bob').text(conv, 'after dave');
  const { msgs, more } = await h.as('dave').req('history', { conv });
  t.same(msgs.map((m) => m.seq), [added.seq, added.seq + 1]);
  t.equal(more, false);
  const info = await h.as('dave').req('conv.info', { conv });
  t.equal(info.conv.joined, added.seq - 1);
});

t.test('maxGroupMembers is enforced on create and add, even for concurrent adds', async (t) => {
  const h = harness({ maxGroupMembers: 5 });
  await t.rejects(h.as('alice').req('group.create', { title: 'g', members: ['b', 'c', 'd', 'e', 'f'] }), code('group_full'));
  const { conv } = await h.as('alice').req('group.create', { title: 'g', members: ['b', 'c'] });
  const results = await Promise.allSettled([
    h.as('alice').req('group.add', { conv, users: ['d', 'e'] }),
    h.as('alice').req('group.add', { conv, users: ['f', 'g'] }),
  ]);
  t.same(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  t.equal((await h.as('alice').req('conv.info', { conv })).members.length, 5);
});

t.test('the owner leaving hands ownership to an admin first', async (t) => {
  const h = harness();
  const { conv } = await h.as('alice').req('group.create', { title: 'g', members: ['bob', 'carol'] });
  await h.as('alice').req('group.role', { conv, user: 'carol', role: 'admin' });
  await h.as('alice').req('group.leave', { conv });
  const { members } = await h.as('bob').req('conv.info', { conv });
  t.same(members.map((m) => [m.user, m.role]), [['bob', 'member'], ['carol', 'owner']]);
  const last = h.delivery.of('bob', 'msg').slice(-2).map((e) => e.m.body);
  t.same(last, [{ event: 'left', by: 'alice' }, { event: 'role', by: 'alice', users: ['carol'], role: 'owner' }]);
});
