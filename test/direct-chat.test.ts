// Two users, three devices, over real WebSockets, in each deployment mode: embedded (LMDB) and
// distributed (the devices spread over two gateways, the engine in two workers).
import t from 'tap';
import type { ServerFrame } from '../protocol/frames.ts';
import { startDeployment, testModes } from './support/deployment.ts';
import { befriend } from './support/server.ts';

const isMsg = (conv: string) => (f: ServerFrame) => f.t === 'msg' && f.m.conv === conv && f.m.kind !== 'system';

for (const mode of testModes()) {
  t.test(mode, async (t) => {
    t.test('1:1 chat: acks with seqs, every device of both users, receipts, typing, presence', async (t) => {
      const d = await startDeployment(mode);
      t.teardown(() => d.close());
      // Round-robin: alice and bob's laptop on one gateway, bob's phone on the other.
      const alice = await d.connect('alice', 'phone');
      const bobPhone = await d.connect('bob', 'phone');
      const bobLaptop = await d.connect('bob', 'laptop');
      t.equal(alice.welcome.user, 'alice');
      t.equal(alice.welcome.v, 1);

      await alice.req('contact.request', { user: 'bob', note: 'hi' });
      await bobLaptop.waitFor((f) => f.t === 'contact' && f.user === 'alice' && f.state === 'incoming');
      await bobPhone.req('contact.accept', { user: 'alice' });
      await alice.waitFor((f) => f.t === 'contact' && f.user === 'bob' && f.state === 'friend');
      const conv = await befriend(alice, 'alice', bobPhone, 'bob');

      const acks = await Promise.all(Array.from({ length: 20 }, (_, i) => alice.text(conv, `hello ${i}`, `cid-${i}`)));
      t.same(acks.map((a) => a.seq), Array.from({ length: 20 }, (_, i) => i + 1), 'acks carry seqs 1..20');
      for (const device of [bobPhone, bobLaptop, alice]) {
        const got = await device.waitForCount(isMsg(conv), 20);
        t.same(got.map((f) => f.t === 'msg' && f.m.seq), acks.map((a) => a.seq), 'every device gets every message in order');
      }
      const retry = await alice.text(conv, 'hello 0', 'cid-0');
      t.same([retry.seq, retry.dup], [1, true], 'a retried cid is not stored twice');

      await bobLaptop.req('read', { conv, seq: 20 });
      const receipt = await alice.waitFor((f) => f.t === 'receipt' && f.user === 'bob');
      t.match(receipt, { conv, seq: 20 });
      await bobPhone.waitFor((f) => f.t === 'receipt' && f.user === 'bob', 5000);

      await alice.req('typing', { conv, on: true });
      t.match(await bobPhone.waitFor((f) => f.t === 'typing'), { conv, user: 'alice', on: true });

      const p = await alice.req('presence', { users: ['bob', 'stranger'] });
      t.same(p.presence.map((x) => [x.user, x.online]), [['bob', true]], 'presence only for contacts');
      await bobLaptop.close();
      await bobPhone.close();
      const off = await alice.waitFor((f) => f.t === 'presence' && f.user === 'bob' && !f.online);
      t.ok(off.t === 'presence' && off.lastSeen > 0, 'offline with last seen');
      await alice.close();
    });
  });
}
