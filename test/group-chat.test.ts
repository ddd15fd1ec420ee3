// Many users on several devices in one group, in each deployment mode: every device sees the same
// gapless sequence (in distributed mode each user's phone and laptop sit on different gateways).
import t from 'tap';
import type { Message, ServerFrame } from '../protocol/frames.ts';
import { startDeployment, testModes } from './support/deployment.ts';
import type { WireClient } from './support/wire-client.ts';

for (const mode of testModes()) {
  t.test(mode, async (t) => {
    t.test('12 users x 2 devices, concurrent senders: identical gapless order on every device', async (t) => {
      const d = await startDeployment(mode, { ratePerSec: 1000, rateBurst: 1000 });
      t.teardown(() => d.close());
      const users = Array.from({ length: 12 }, (_, i) => `u${i}`);
      const devices = new Map<string, WireClient[]>();
      for (const u of users) devices.set(u, [await d.connect(u, 'phone'), await d.connect(u, 'laptop')]);
      const owner = devices.get('u0')![0]!;
      const info = await owner.req('group.create', { title: 'New Year', members: users.slice(1) });
      t.equal(info.members, 12);

      const perUser = 5;
      await Promise.all(users.map((u, i) => Promise.all(
        Array.from({ length: perUser }, (_, k) => devices.get(u)![k % 2]!.text(info.conv, `${u}:${k}`, `${u}-${k}`)),
      ).then(() => i)));
      const total = 1 + users.length * perUser;
      const isGroupMsg = (f: ServerFrame) => f.t === 'msg' && f.m.conv === info.conv;
      let reference: string[] | undefined;
      for (const [u, list] of devices) {
        for (const dev of list) {
          const got = (await dev.waitForCount(isGroupMsg, total)).map((f) => (f as { m: Message }).m);
          t.same(got.map((m) => m.seq), Array.from({ length: total }, (_, i) => i + 1), `${u}/${dev.welcome.device}: seqs 1..${total}`);
          const order = got.map((m) => m.cid);
          reference ??= order;
          t.same(order, reference, 'same order everywhere');
        }
      }
      const { conv, members } = await devices.get('u7')![0]!.req('conv.info', { conv: info.conv });
      t.equal(conv.head, total);
      t.equal(members.length, 12);
      for (const list of devices.values()) for (const dev of list) await dev.close();
    });
  });
}
