// Distributed mode end to end: two gateway shards and two engine workers (sharing the conversation
// partitions through leases) over a real nats-server,
// redis-server and Cassandra. Users on different gateways talk as if on one.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import type { Message, ServerFrame } from '../protocol/frames.ts';
import { startLantern, type RunningLantern } from '../gateway/main.ts';
import { startWorker } from '../gateway/worker.ts';
import { createCqlClient } from '../storage/cql/client.ts';
import { migrate } from '../storage/cql/schema.ts';
import { sharedCassandra, startNats, startRedis } from './support/infra.ts';
import { mintToken, WireClient } from './support/wire-client.ts';

const nats = await startNats();
const redis = await startRedis();
const cassandra = await sharedCassandra();
const keyspace = `lantern_e2e_${randomBytes(4).toString('hex')}`;
const admin = createCqlClient({ contactPoints: cassandra.contactPoints, localDataCenter: cassandra.localDataCenter });
await migrate(admin, keyspace, { replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}" });
const secret = randomBytes(24).toString('base64url');
// A short presence TTL so the test sees sessions outlive it only through the gateways' refreshes.
const common = { natsUrl: nats.url, logLevel: 'warn' as const, presenceSessionTtlMs: 1200 };
const workerSettings = {
  ...common, redisUrl: redis.url, cqlContactPoints: cassandra.contactPoints.join(','), cqlLocalDc: cassandra.localDataCenter, cqlKeyspace: keyspace,
  partitions: 8, partitionLeaseMs: 1500,
};
const workers = [await startWorker(workerSettings), await startWorker(workerSettings)];
// Wait until the two workers share the partitions (the first claims all, then hands back its extras).
for (const deadline = Date.now() + 20_000; ;) {
  const owned = workers.map((w) => w.owned().length);
  if (owned.every((n) => n > 0) && owned[0]! + owned[1]! === 8) break;
  if (Date.now() > deadline) throw new Error(`workers did not share the partitions: ${owned.join('/')}`);
  await new Promise((r) => setTimeout(r, 50));
}
const gateways: RunningLantern[] = [];
for (let i = 0; i < 2; i++) gateways.push(await startLantern({ ...common, mode: 'gateway', port: 0, jwtSecret: secret, partitions: 8 }));
t.teardown(async () => {
  for (const g of gateways) await g.close();
  for (const w of workers) await w.close();
  await admin.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  await admin.shutdown();
  await nats.close();
  await redis.close();
});

const [gwA, gwB] = gateways as [RunningLantern, RunningLantern];
const connect = async (gw: RunningLantern, user: string, device = 'phone') => WireClient.connect(gw.url, await mintToken(secret, user), device);
const msgsIn = (conv: string) => (f: ServerFrame) => f.t === 'msg' && f.m.conv === conv;

t.test('users on different gateways: contacts, 1:1 and a group, every device in the same gapless order', async (t) => {
  const alice = await connect(gwA, 'alice');
  const bobPhone = await connect(gwB, 'bob', 'phone');
  const bobLaptop = await connect(gwA, 'bob', 'laptop');
  const carol = await connect(gwB, 'carol');
  t.equal(alice.welcome.epoch, carol.welcome.epoch, 'both gateways report the same store epoch');

  await alice.req('contact.request', { user: 'bob' });
  await bobPhone.waitFor((f) => f.t === 'contact' && f.user === 'alice', 5000);
  await bobLaptop.req('contact.accept', { user: 'alice' });
  const { conv } = await bobPhone.req('conv.direct', { user: 'alice' });
  const acks = [];
  for (let i = 0; i < 10; i++) acks.push(await alice.text(conv, `hi ${i}`, `d-${i}`));
  t.same(acks.map((a) => a.seq), Array.from({ length: 10 }, (_, i) => i + 1));
  for (const d of [bobPhone, bobLaptop]) {
    const got = await d.waitForCount(msgsIn(conv), 10);
    t.same(got.map((f) => (f as { m: Message }).m.seq), acks.map((a) => a.seq), `bob/${d.welcome.device} got 1..10 across gateways`);
  }

  const group = await carol.req('group.create', { title: 'across', members: ['alice', 'bob'] });
  await Promise.all([
    ...Array.from({ length: 5 }, (_, i) => alice.text(group.conv, `a${i}`, `ga-${i}`)),
    ...Array.from({ length: 5 }, (_, i) => carol.text(group.conv, `c${i}`, `gc-${i}`)),
    ...Array.from({ length: 5 }, (_, i) => bobPhone.text(group.conv, `b${i}`, `gb-${i}`)),
  ]);
  let reference: string[] | undefined;
  for (const d of [alice, bobPhone, bobLaptop, carol]) {
    const got = (await d.waitForCount(msgsIn(group.conv), 16)).map((f) => (f as { m: Message }).m);
    t.same(got.map((m) => m.seq), Array.from({ length: 16 }, (_, i) => i + 1), `${d.welcome.user}/${d.welcome.device}: gapless 1..16`);
    reference ??= got.map((m) => m.cid);
    t.same(got.map((m) => m.cid), reference, 'same order on every device');
  }
  for (const c of [alice, bobPhone, bobLaptop, carol]) await c.close();
});

t.test('a device that was offline syncs what it missed through the other gateway', async (t) => {
  const dave = await connect(gwA, 'dave');
  const erin = await connect(gwB, 'erin');
  await dave.req('contact.request', { user: 'erin' });
  await erin.req('contact.accept', { user: 'dave' });
  const { conv } = await dave.req('conv.direct', { user: 'erin' });
  await dave.text(conv, 'before');
  await erin.waitForCount(msgsIn(conv), 1);
  await erin.close();
  const sent = [];
  for (let i = 0; i < 7; i++) sent.push((await dave.text(conv, `missed ${i}`)).seq);
  const back = await connect(gwA, 'erin');
  const r = await back.req('sync', { since: { [conv]: 1 } });
  t.same(r.msgs.map((m) => m.seq), sent, 'gapless, in order');
  t.equal(r.more, false);
  await dave.close();
  await back.close();
});

t.test('presence stays online past the session TTL because gateways refresh their sessions', async (t) => {
  const frank = await connect(gwA, 'frank');
  const gina = await connect(gwB, 'gina');
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
