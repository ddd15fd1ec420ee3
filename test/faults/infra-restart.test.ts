// Fault 3 (issue 3): restart nats-server, then redis-server, while messages flow through a
// cluster of gateway and worker processes. Nobody touches the processes: NATS and Redis clients
// reconnect by themselves, workers re-take their partition leases, SDK outboxes re-send what was
// not acked. Acked messages are never lost or doubled, and presence is rebuilt by the gateways'
// refreshes even when Redis comes back empty.
import t from 'tap';
import { Redis } from 'ioredis';
import { until } from '../support/processes.ts';
import { checkExactlyOnce, connectAll, retrying, startFaultStage, TestDevice, Traffic } from './traffic.ts';

// Gateways refresh their sessions every ttl/3 = 1 s; a lost Redis is repopulated within that.
const PRESENCE_TTL_MS = 3000;

const { nats, redis, cluster, secret, devices } = await startFaultStage(t, { partitions: 8, partitionLeaseMs: 1500, presenceSessionTtlMs: PRESENCE_TTL_MS });

await Promise.all([cluster.worker().start(), cluster.worker().start()]);
const [gwA, gwB] = [cluster.gateway('gateway-A'), cluster.gateway('gateway-B')];
await Promise.all([gwA.start(), gwB.start()]);
const [alice, bob, bobLaptop, carol] = [
  new TestDevice({ user: 'alice', device: 'phone', urls: [gwA.url, gwB.url] }, secret),
  new TestDevice({ user: 'bob', device: 'phone', urls: [gwB.url, gwA.url] }, secret),
  new TestDevice({ user: 'bob', device: 'laptop', urls: [gwA.url, gwB.url] }, secret),
  new TestDevice({ user: 'carol', device: 'phone', urls: [gwB.url, gwA.url] }, secret),
] as const;
devices.push(alice, bob, bobLaptop, carol);
await connectAll(devices);
await retrying(() => alice.client.requestContact('bob'));
await retrying(() => bob.client.acceptContact('alice'));

async function newGroup(title: string): Promise<string> {
  const group = await retrying(() => alice.client.createGroup(title, ['bob', 'carol']));
  await until(() => devices.every((d) => (d.client.cursor(group.conv) ?? 0) >= group.head), `every device to see ${title}`);
  return group.conv;
}

const outboxRetries = (): number => devices.reduce((n, d) => n + d.errors.filter((e) => e.context.startsWith('outbox:')).length, 0);
const aliceSeenOnlineByBob = async (): Promise<boolean> => (await bob.client.presence(['alice']))[0]?.online === true;

t.test('nats-server restarts under traffic: the cluster recovers by itself and every acked message arrives exactly once', async (t) => {
  const conv = await newGroup('nats-restart');
  const traffic = new Traffic(conv, [alice, bob, carol], { count: 70, intervalMs: 40, tag: 'nats' });
  await until(() => traffic.acked >= 40, 'traffic to be under way');
  const retriesBefore = outboxRetries();
  const stoppedAt = Date.now();
  await nats.stop();
  // Stay down until users feel it (a send times out and the outbox retries it): longer than the
  // workers' lease deadline, so they stop serving and must claim their partitions again.
  await until(() => outboxRetries() > retriesBefore, 'a send to fail while nats-server is down', 10_000);
  t.comment(`nats-server down for ${Date.now() - stoppedAt} ms; starting it again`);
  await nats.start();
  const restartedAt = Date.now();

  await checkExactlyOnce(t, traffic, devices);
  t.comment(`verified ${traffic.total} sends, ${Date.now() - restartedAt} ms after nats-server was back`);
  t.same(cluster.processes.filter((p) => !p.alive).map((p) => p.name), [], 'no gateway or worker died or needed a restart');
  t.same(devices.filter((d) => d.welcomes !== 1).map((d) => d.name), [], 'client connections to the gateways stayed up');
});

t.test('redis-server restarts (and comes back empty) under traffic: sends unaffected, presence rebuilt by gateway refreshes', async (t) => {
  t.ok(await until(aliceSeenOnlineByBob, 'bob to see alice online before the restart'), 'bob sees alice online');
  const conv = await newGroup('redis-restart');
  const traffic = new Traffic(conv, [alice, bob, carol], { count: 50, intervalMs: 40, tag: 'redis' });
  await until(() => traffic.acked >= 30, 'traffic to be under way');
  await redis.stop();
  await redis.start();
  // The worst case of a restart: the data did not survive (no AOF, or a replica that lagged).
  const admin = new Redis(redis.url);
  t.teardown(() => admin.disconnect());
  // In one transaction: the gateways keep writing (refreshes, rate limits) the moment it returns.
  const replies = (await admin.multi().flushall().dbsize().exec()) ?? [];
  t.same(replies.map(([, result]) => result), ['OK', 0], 'redis is empty after the restart');
  const flushedAt = Date.now();

  await until(aliceSeenOnlineByBob, 'bob to see alice online again after redis lost its data', 4 * PRESENCE_TTL_MS, 100);
  t.pass(`bob sees alice online again ${Date.now() - flushedAt} ms after redis came back empty`);
  t.ok(await admin.dbsize() > 0, 'the gateways re-registered their sessions in redis');
  await checkExactlyOnce(t, traffic, devices);
  t.same(cluster.processes.filter((p) => !p.alive).map((p) => p.name), [], 'no gateway or worker died or needed a restart');
});
