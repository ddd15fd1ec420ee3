// The LeaseStore contract against a real nats-server (private, free port, JetStream KV), plus
// what only the KV adapter has: bucket creation and refusing a bucket with another ttl.
import t from 'tap';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { startNats } from '../../test/support/infra.ts';
import { leaseStoreContract } from '../contract/lease-store.contract.ts';
import { uid } from '../contract/fixtures.ts';
import { NatsKvLeaseStore } from './lease-store.ts';

const nats = await startNats();
const nc = await connect({ servers: nats.url });
t.teardown(async () => { await nc.close(); await nats.close(); });
const kvm = new Kvm(nc);
const bucketName = (): string => uid('leases').replace(/[^-\w]/g, '_');

leaseStoreContract(t, 'nats kv lease store', async (ttlMs) => {
  const bucket = bucketName();
  const store = await NatsKvLeaseStore.open(nc, { ttlMs, bucket });
  return { store, cleanup: async () => { await (await kvm.open(bucket)).destroy(); } };
});

t.test('nats kv lease store: creates its bucket with history 1 and the ttl as max age', async (t) => {
  const bucket = bucketName();
  await NatsKvLeaseStore.open(kvm, { ttlMs: 1234, bucket });
  t.teardown(async () => { await (await kvm.open(bucket)).destroy(); });
  const status = await (await kvm.open(bucket)).status();
  t.equal(status.ttl, 1234);
  t.equal(status.history, 1);
  const again = await NatsKvLeaseStore.open(nc, { ttlMs: 1234, bucket });
  t.equal(again.ttlMs, 1234, 'reopening with the same ttl works');
});

t.test('nats kv lease store: refuses an existing bucket with another ttl', async (t) => {
  const bucket = bucketName();
  await NatsKvLeaseStore.open(nc, { ttlMs: 1000, bucket });
  t.teardown(async () => { await (await kvm.open(bucket)).destroy(); });
  await t.rejects(NatsKvLeaseStore.open(nc, { ttlMs: 2000, bucket }), /ttl 1000 ms.*ttlMs 2000/);
  await t.rejects(NatsKvLeaseStore.open(nc, { ttlMs: 0, bucket }), /ttlMs/);
});

t.test('nats kv lease store: holders() answers promptly while the entries it lists expire', async (t) => {
  // Regression: listing with kv.keys() hung for 30 s when entries expired between the consumer's
  // start and their delivery, which stalled a worker's renewals past all its lease deadlines.
  const bucket = bucketName();
  const store = await NatsKvLeaseStore.open(nc, { ttlMs: 200, bucket });
  t.teardown(async () => { await (await kvm.open(bucket)).destroy(); });
  const started = Date.now();
  let calls = 0;
  const slow: number[] = [];
  while (Date.now() - started < 3000 && slow.length === 0) {
    await Promise.all(Array.from({ length: 10 }, (_, i) => store.claim(`w.${i}`, 'owner')));
    const runs: Array<Promise<void>> = [];
    // Ask again and again across the moment the entries expire (200 ms after they were written).
    for (const end = Date.now() + 400; Date.now() < end;) {
      runs.push((async () => {
        const t0 = Date.now();
        const answered = await Promise.race([store.holders('w.').then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 1500).unref())]);
        calls++;
        if (!answered) slow.push(Date.now() - t0);
      })());
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(runs);
  }
  t.same(slow, [], `every one of ${calls} listings answered within 1.5 s`);
});
