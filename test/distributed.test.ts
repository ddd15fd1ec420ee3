// Distributed mode specifics, on two gateway shards and two engine workers (sharing the
// conversation partitions through leases) over a real nats-server, redis-server and Cassandra.
// The behaviour suite (direct-chat, group-chat, offline-sync, ...) runs in this mode too; this file
// pins users to named gateways and covers what only distributed mode has: presence sessions in
// Redis kept alive by the gateways' refreshes.
import t from 'tap';
import type { Message, ServerFrame } from '../protocol/frames.ts';
import { startDeployment } from './support/deployment.ts';

// A short presence TTL so the test sees sessions outlive it only through the gateways' refreshes.
const d = await startDeployment('distributed', { presenceSessionTtlMs: 1200 });
t.teardown(() => d.close());

const GW_A = 0;
const GW_B = 1;
const msgsIn = (conv: string) => (f: ServerFrame) => f.t === 'msg' && f.m.conv === conv;

t.test('users on different gateways: contacts, 1:1 and a group, every device in the same gapless order', async (t) => {
  const alice = await d.connect('alice', 'phone', GW_A);
  const bobPhone = await d.connect('bob', 'phone', GW_B);
  const bobLaptop = await d.connect('bob', 'laptop', GW_A);
  const carol = await d.connect('carol', 'phone', GW_B);
  t.equal(alice.welcome.epoch, carol.welcome.epoch, 'both gateways report the same store epoch');

  await alice.req('contact.request', { user: 'bob' });
  await bobPhone.waitFor((f) => f.t === 'contact' && f.user === 'alice', 5000);
  await bobLaptop.req('contact.accept', { user: 'alice' });
  const { conv } = await bobPhone.req('conv.direct', { user: 'alice' });
  const acks = [];
  for (let i = 0; i < 10; i++) acks.push(await alice.text(conv, `hi ${i}`, `d-${i}`));
  t.same(acks.map((a) => a.seq), Array.from({ length: 10 }, (_, i) => i + 1));
  for (const dev of [bobPhone, bobLaptop]) {
    const got = await dev.waitForCount(msgsIn(conv), 10);
    t.same(got.map((f) => (f as { m: Message }).m.seq), acks.map((a) => a.seq), `bob/${dev.welcome.device} got 1..10 across gateways`);
  }

  const group = await carol.req('group.create', { title: 'across', members: ['alice', 'bob'] });
  await Promise.all([
    ...Array.from({ length: 5 }, (_, i) => alice.text(group.conv, `a${i}`, `ga-${i}`)),
    ...Array.from({ length: 5 }, (_, i) => carol.text(group.conv, `c${i}`, `gc-${i}`)),
    ...Array.from({ length: 5 }, (_, i) => bobPhone.text(group.conv, `b${i}`, `gb-${i}`)),
  ]);
  let reference: string[] | undefined;
  for (const dev of [alice, bobPhone, bobLaptop, carol]) {
    const got = (await dev.waitForCount(msgsIn(group.conv), 16)).map((f) => (f as { m: Message }).m);
    t.same(got.map((m) => m.seq), Array.from({ length: 16 }, (_, i) => i + 1), `${dev.welcome.user}/${dev.welcome.device}: gapless 1..16`);
    reference ??= got.map((m) => m.cid);
    t.same(got.map((m) => m.cid), reference, 'same order on every device');
  }
  for (const c of [alice, bobPhone, bobLaptop, carol]) await c.close();
});

t.test('presence stays online past the session TTL because gateways refresh their sessions', async (t) => {
  const frank = await d.connect('frank', 'phone', GW_A);
  const gina = await d.connect('gina', 'phone', GW_B);
  await frank.req('contact.request', { user: 'gina' });
  await gina.req('contact.accept', { user: 'frank' });
  const started = Date.now();
  // Three TTLs: without refreshes the Redis sessions would have expired twice over.
  while (Date.now() - started < 3600) await new Promise((r) => setTimeout(r, 200));
  const seen = await gina.req('presence', { users: ['frank'] });
  t.same(seen.presence.map((p) => [p.user, p.online]), [['frank', true]]);
  await frank.close();
  const off = await gina.waitFor((f) => f.t === 'presence' && f.user === 'frank' && !f.online);
  t.ok(off.t === 'presence' && off.lastSeen > 0, 'offline announced when the last device leaves');
  await gina.close();
});
