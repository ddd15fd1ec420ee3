// Fault 2 (issue 3): kill -9 the worker that owns the conversation's partition while messages
// flow. Its partition leases expire (partitionLeaseMs 1500), the surviving worker claims them and
// serves the conversation; sends that were in flight are retried by the SDK outbox with the same
// cid, so nothing acked is lost and nothing is stored twice.
import t from 'tap';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { partitionOf } from '../../engine/bus-engine.ts';
import { DEFAULT_LEASE_BUCKET } from '../../storage/nats/lease-store.ts';
import { until, type LanternProcess } from '../support/processes.ts';
import { checkExactlyOnce, connectAll, retrying, startFaultStage, TestDevice, Traffic } from './traffic.ts';

const PARTITIONS = 8;

t.test('kill -9 the worker serving a conversation mid-traffic: the other worker takes over, nothing acked is lost or doubled', async (t) => {
  const { nats, cluster, secret, devices } = await startFaultStage(t, { partitions: PARTITIONS, partitionLeaseMs: 1500 });
  const nc = await connect({ servers: nats.url, name: 'fault-test' });
  t.teardown(() => nc.close());

  const workers = [cluster.worker('worker-0'), cluster.worker('worker-1')];
  await Promise.all(workers.map((w) => w.start()));
  const kv = await new Kvm(nc).open(DEFAULT_LEASE_BUCKET);
  /** Lease holder (worker id) of each partition, as the workers wrote it into NATS KV. */
  const holders = async (): Promise<Array<string | undefined>> => Promise.all(Array.from({ length: PARTITIONS }, async (_, p) => {
    const e = await kv.get(`p.${p}`);
    return e && e.operation === 'PUT' ? e.string().split('#')[0] : undefined;
  }));
  const idOf = (w: LanternProcess): string | undefined => /"worker":"([^"]+)"/.exec(w.output)?.[1];
  await until(async () => {
    const h = await holders();
    return h.every((x) => x !== undefined) && new Set(h).size === 2;
  }, 'the two workers to share all partitions');

  const gateways = [cluster.gateway('gateway-A'), cluster.gateway('gateway-B')];
  await Promise.all(gateways.map((g) => g.start()));
  const [a, b] = gateways.map((g) => g.url) as [string, string];
  const [alicePhone, aliceLaptop, bob, carol] = [
    new TestDevice({ user: 'alice', device: 'phone', urls: [a, b] }, secret),
    new TestDevice({ user: 'alice', device: 'laptop', urls: [b, a] }, secret),
    new TestDevice({ user: 'bob', device: 'phone', urls: [b, a] }, secret),
    new TestDevice({ user: 'carol', device: 'phone', urls: [a, b] }, secret),
  ] as const;
  devices.push(alicePhone, aliceLaptop, bob, carol);
  await connectAll(devices);
  const group = await retrying(() => alicePhone.client.createGroup('worker-kill', ['bob', 'carol']));
  await until(() => devices.every((d) => (d.client.cursor(group.conv) ?? 0) >= group.head), 'every device to see the new group');

  const partition = partitionOf(group.conv, PARTITIONS);
  const ownerId = (await holders())[partition];
  const owner = workers.find((w) => idOf(w) === ownerId);
  const survivor = workers.find((w) => w !== owner)!;
  t.ok(owner, `found the worker serving partition ${partition} (${ownerId})`);

  const traffic = new Traffic(group.conv, [alicePhone, bob, carol], { count: 80, intervalMs: 40, tag: 'wk' });
  await until(() => traffic.acked >= 45, 'traffic to be under way');
  t.equal(await owner!.kill('SIGKILL'), null, 'the owning worker killed with SIGKILL');
  const killedAt = Date.now();

  await until(async () => (await holders())[partition] === idOf(survivor), `the surviving worker to claim partition ${partition}`, 10_000);
  t.comment(`partition ${partition} moved to the survivor ${Date.now() - killedAt} ms after the kill`);
  await until(async () => (await holders()).every((h) => h === idOf(survivor)), 'the survivor to hold every partition', 10_000);
  t.pass('the survivor holds every partition once the dead worker\'s leases expired');

  await checkExactlyOnce(t, traffic, devices);
  const retried = devices.flatMap((d) => d.errors).filter((e) => e.context.startsWith('outbox:'));
  t.comment(`${retried.length} send retries reported by the outboxes during the handover (${[...new Set(retried.map((e) => (e.error as { error?: string }).error))].join(', ')})`);
});
