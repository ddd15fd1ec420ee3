// Fault 1 (issue 3): kill -9 one gateway process under traffic. Its clients (the real SDK, given
// both gateway URLs) reconnect to the other gateway, resync, re-send their unacked sends with the
// same cid, and every device ends with every acked message exactly once, in order.
import t from 'tap';
import { until } from '../support/processes.ts';
import { checkExactlyOnce, connectAll, retrying, startFaultStage, TestDevice, Traffic } from './traffic.ts';

t.test('kill -9 a gateway under traffic: its clients fail over, resync, and every acked message arrives exactly once, in order', async (t) => {
  const { cluster, secret, devices } = await startFaultStage(t);

  await Promise.all([cluster.worker().start(), cluster.worker().start()]);
  const [gwA, gwB] = [cluster.gateway('gateway-A'), cluster.gateway('gateway-B')];
  await Promise.all([gwA.start(), gwB.start()]);

  const onA = [gwA.url, gwB.url], onB = [gwB.url, gwA.url];
  const [alicePhone, aliceLaptop, bobPhone, bobTablet, carolPhone] = [
    new TestDevice({ user: 'alice', device: 'phone', urls: onA }, secret),
    new TestDevice({ user: 'alice', device: 'laptop', urls: onB }, secret),
    new TestDevice({ user: 'bob', device: 'phone', urls: onA }, secret),
    new TestDevice({ user: 'bob', device: 'tablet', urls: onB }, secret),
    new TestDevice({ user: 'carol', device: 'phone', urls: onA }, secret),
  ] as const;
  devices.push(alicePhone, aliceLaptop, bobPhone, bobTablet, carolPhone);
  await connectAll(devices);
  const group = await retrying(() => alicePhone.client.createGroup('failover', ['bob', 'carol']));
  await until(() => devices.every((d) => (d.client.cursor(group.conv) ?? 0) >= group.head), 'every device to see the new group');

  // Three senders on gateway A (the one that dies) and one on B.
  const traffic = new Traffic(group.conv, [alicePhone, bobPhone, carolPhone, bobTablet], { count: 80, intervalMs: 40, tag: 'gk' });
  await until(() => traffic.acked >= 60, 'traffic to be under way');
  // Kill while a send is on the wire to A, so the failover has an unacked send to re-send.
  const onGatewayA = [alicePhone, bobPhone, carolPhone];
  await until(() => onGatewayA.some((d) => d.client.pendingSends().some((p) => p.attempts > 0)), 'a send in flight through gateway A', 5000, 1);
  t.equal(await gwA.kill('SIGKILL'), null, 'gateway A killed with SIGKILL');
  const killedAt = Date.now();
  const stranded = onGatewayA.flatMap((d) => d.client.pendingSends().filter((p) => p.attempts > 0));
  t.comment(`${stranded.length} sends were on the wire to gateway A when it died`);

  await checkExactlyOnce(t, traffic, devices);
  for (const d of onGatewayA) {
    t.equal(d.client.url, gwB.url, `${d.name} moved to gateway B`);
    t.ok(d.welcomes >= 2, `${d.name} reconnected (${d.welcomes} welcomes)`);
  }
  for (const d of [aliceLaptop, bobTablet]) t.equal(d.welcomes, 1, `${d.name} on gateway B kept its connection`);
  t.comment(`recovered and verified ${traffic.records.length} sends, ${Date.now() - killedAt} ms after the kill`);
});
