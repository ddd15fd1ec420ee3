// Partition ownership: workers share the conversation partitions through leases, each partition
// served by at most one worker at any moment, load spread evenly, and partitions of a stopped,
// dead or cut-off worker taken over by the others. Memory lease store and in-process bus with
// short real ttls, plus two workers on a real nats-server.
import t from 'tap';
import { connect } from '@nats-io/transport-node';
import { startNats } from '../test/support/infra.ts';
import { MemoryLeaseStore } from '../storage/memory/lease-store.ts';
import { InProcessBus } from '../storage/memory/bus.ts';
import { NatsKvLeaseStore } from '../storage/nats/lease-store.ts';
import { NatsBus } from '../storage/nats/bus.ts';
import { uid } from '../storage/contract/fixtures.ts';
import { conversationSubject, WORKER_QUEUE } from './bus-engine.ts';
import { PartitionOwnership, partitionLeaseKey, PARTITION_LEASE_PREFIX, type PartitionOwnershipOptions } from './partition-leases.ts';
import type { Bus, LeaseStore } from './ports.ts';

const TTL_MS = 300;
const PARTITIONS = 8;
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const all = Array.from({ length: PARTITIONS }, (_, p) => p);

/** Resolve once `check` holds, polling; fail after `ms`. */
async function until(check: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A lease store that can be cut off: calls made while cut hang until heal(), then fail, like requests to an unreachable server. */
class CuttableLeaseStore implements LeaseStore {
  private cutOff = false;
  private readonly hanging: Array<(err: Error) => void> = [];
  constructor(private readonly inner: LeaseStore) {}
  get ttlMs(): number { return this.inner.ttlMs; }
  cut(): void { this.cutOff = true; }
  heal(): void {
    this.cutOff = false;
    for (const fail of this.hanging.splice(0)) fail(new Error('lease store unreachable'));
  }
  claim(key: string, owner: string) { return this.call(() => this.inner.claim(key, owner)); }
  renew(key: string, owner: string, revision: number) { return this.call(() => this.inner.renew(key, owner, revision)); }
  release(key: string, owner: string, revision: number) { return this.call(() => this.inner.release(key, owner, revision)); }
  holders(prefix: string) { return this.call(() => this.inner.holders(prefix)); }
  private call<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.cutOff) return fn();
    return new Promise<T>((_, reject) => this.hanging.push(reject));
  }
}

/**
 * Workers over one store and bus, each answering its partitions' subjects with its id, and an
 * observer that records every moment two workers served the same partition.
 */
function cluster(t: Tap, leases: LeaseStore, bus: Bus = new InProcessBus()) {
  const workers = new Map<string, PartitionOwnership>();
  const overlaps: string[] = [];
  const checkDisjoint = (when: string): void => {
    const seen = new Map<number, string>();
    for (const [id, w] of workers) {
      for (const p of w.owned()) {
        const other = seen.get(p);
        if (other !== undefined) overlaps.push(`${when}: partition ${p} served by ${other} and ${id}`);
        seen.set(p, id);
      }
    }
  };
  const add = (id: string, extra: Partial<PartitionOwnershipOptions> = {}, store: LeaseStore = leases, workerBus: Bus = bus): PartitionOwnership => {
    const w = new PartitionOwnership({
      leases: store, bus: workerBus, workerId: id, partitions: PARTITIONS,
      serve: (subject) => workerBus.serve(subject, async () => new TextEncoder().encode(id), { queue: WORKER_QUEUE }),
      onAcquire: (p) => {
        for (const [other, ow] of workers) if (other !== id && ow.owned().includes(p)) overlaps.push(`${id} acquired ${p} while ${other} served it`);
      },
      onRound: () => checkDisjoint(`after a round of ${id}`),
      ...extra,
    });
    workers.set(id, w);
    t.teardown(() => w.stop());
    return w;
  };
  /** Who answers each partition's subject right now (undefined: nobody). */
  const answers = async (): Promise<Array<string | undefined>> => Promise.all(all.map((p) =>
    bus.request(conversationSubject(p), new Uint8Array(), { timeoutMs: 2000 }).then(text, () => undefined)));
  return { add, overlaps, answers, bus };
}
type Tap = import('tap').Test;

t.test('a single worker owns and serves every partition', async (t) => {
  const c = cluster(t, new MemoryLeaseStore({ ttlMs: TTL_MS }));
  const a = c.add('a');
  await a.start();
  t.same(a.owned(), all, 'all partitions after the first round');
  t.same(await c.answers(), all.map(() => 'a'), 'each partition subject is answered by the worker');
});

t.test('a second worker joins: they converge to an even split, never serving a partition twice', async (t) => {
  const c = cluster(t, new MemoryLeaseStore({ ttlMs: TTL_MS }));
  const a = c.add('a');
  await a.start();
  const b = c.add('b');
  await b.start();
  await until(() => a.owned().length === PARTITIONS / 2 && b.owned().length === PARTITIONS / 2, 'an even split');
  t.same([...a.owned(), ...b.owned()].sort((x, y) => x - y), all, 'every partition has an owner');
  const answers = await c.answers();
  t.same(all.map((p) => answers[p]), all.map((p) => (a.owned().includes(p) ? 'a' : 'b')), 'requests reach the owner');
  // A few more rounds: the split is stable.
  const settled = [a.owned(), b.owned()];
  await new Promise((r) => setTimeout(r, TTL_MS));
  t.same([a.owned(), b.owned()], settled, 'no churn once balanced');
  t.same(c.overlaps, [], 'no partition was served by two workers at any observed moment');
});

t.test('three workers share eight partitions by ceil(8 / 3)', async (t) => {
  const c = cluster(t, new MemoryLeaseStore({ ttlMs: TTL_MS }));
  const ws = ['a', 'b', 'c'].map((id) => c.add(id));
  await Promise.all(ws.map((w) => w.start()));
  await until(() => ws.reduce((n, w) => n + w.owned().length, 0) === PARTITIONS && ws.every((w) => w.owned().length <= 3), 'a fair split');
  t.same(ws.map((w) => w.owned().length).sort(), [2, 3, 3]);
  t.same(c.overlaps, []);
});

t.test('a worker that stops hands its partitions over at once', async (t) => {
  const c = cluster(t, new MemoryLeaseStore({ ttlMs: 60_000 }));
  const fast = { renewEveryMs: 50 };
  const a = c.add('a', fast);
  const b = c.add('b', fast);
  await a.start();
  await b.start();
  await until(() => a.owned().length === 4 && b.owned().length === 4, 'an even split');
  const stopped = performance.now();
  await a.stop();
  t.same(a.owned(), [], 'the stopped worker serves nothing');
  // With a 60 s ttl, only released (not expired) leases can be taken over this fast.
  await until(() => b.owned().length === PARTITIONS, 'b to take everything', 2000);
  t.ok(performance.now() - stopped < 2000, 'taken over well before the ttl');
  t.same(await c.answers(), all.map(() => 'b'));
  t.same(c.overlaps, []);
});

t.test('a worker cut off from the store stops serving before its leases expire; another takes over after the ttl', async (t) => {
  const store = new MemoryLeaseStore({ ttlMs: TTL_MS });
  const cuttable = new CuttableLeaseStore(store);
  const c = cluster(t, store);
  const droppedWhileStillLeased: boolean[] = [];
  let isCut = false;
  const a = c.add('a', {
    onRelease: (p) => {
      if (!isCut) return; // hand-backs while balancing are not what this test watches
      // The memory store computes holders() synchronously: this is the store's view at the moment a stopped serving p.
      void store.holders(PARTITION_LEASE_PREFIX).then((h) => droppedWhileStillLeased.push(h.get(partitionLeaseKey(p))?.startsWith('a#') ?? false));
    },
  }, cuttable);
  const b = c.add('b');
  await a.start();
  await b.start();
  await until(() => a.owned().length === 4 && b.owned().length === 4, 'an even split');
  const aHad = a.owned();

  isCut = true;
  cuttable.cut(); // 'a' can no longer renew: as good as dead to the others
  try {
    await until(() => a.owned().length === 0, 'a to stop serving', TTL_MS * 3);
    t.same(droppedWhileStillLeased, aHad.map(() => true), 'a stopped serving each partition while its lease was still live at the store');
    await until(() => b.owned().length === PARTITIONS, 'b to take over a\'s partitions after they expire', TTL_MS * 10);
    t.same(await c.answers(), all.map(() => 'b'), 'b answers every partition');
    t.same(c.overlaps, [], 'never two servers for a partition');
  } finally {
    cuttable.heal(); // lets a's hung round fail, so its stop() can finish
  }
});

t.test('a lease listing that hangs does not stop the renewals: the worker keeps its partitions', async (t) => {
  // A longer ttl than the other tests: this one watches for several ttls that nothing is dropped,
  // and a loaded machine's event-loop stalls must not count as lost renewals.
  const ttlMs = 1000;
  const store = new MemoryLeaseStore({ ttlMs });
  let hang = false;
  const stuckListing: LeaseStore = {
    ttlMs: store.ttlMs,
    claim: (k, o) => store.claim(k, o),
    renew: (k, o, r) => store.renew(k, o, r),
    release: (k, o, r) => store.release(k, o, r),
    holders: (p) => (hang ? new Promise<Map<string, string>>(() => {}) : store.holders(p)),
  };
  const c = cluster(t, store);
  const a = c.add('a', {}, stuckListing);
  await a.start();
  t.equal(a.owned().length, PARTITIONS);
  hang = true;
  const started = performance.now();
  // Several lease ttls with every listing hanging: renewals must go on regardless.
  const samples: number[] = [];
  while (performance.now() - started < ttlMs * 3) {
    samples.push(a.owned().length);
    await new Promise((r) => setTimeout(r, ttlMs / 4));
  }
  t.same(samples, samples.map(() => PARTITIONS), 'every partition served throughout');
});

t.test('a lease reported lost is dropped at once', async (t) => {
  const store = new MemoryLeaseStore({ ttlMs: 60_000 });
  let lose = false;
  const losing: LeaseStore = {
    ttlMs: store.ttlMs,
    claim: (k, o) => store.claim(k, o),
    renew: (k, o, r) => (lose && k === partitionLeaseKey(3) ? Promise.resolve(undefined) : store.renew(k, o, r)),
    release: (k, o, r) => store.release(k, o, r),
    holders: (p) => store.holders(p),
  };
  const c = cluster(t, store);
  const a = c.add('a', { renewEveryMs: 20 }, losing);
  await a.start();
  t.ok(a.owned().includes(3));
  lose = true;
  await until(() => !a.owned().includes(3), 'partition 3 to be dropped', 1000);
  t.equal(a.owned().length, PARTITIONS - 1, 'the others are kept');
});

t.test('options are checked', async (t) => {
  const leases = new MemoryLeaseStore({ ttlMs: 300 });
  const base = { leases, bus: new InProcessBus(), workerId: 'w', partitions: 4, serve: () => ({ unsubscribe() {} }) };
  t.throws(() => new PartitionOwnership({ ...base, renewEveryMs: 300 }), /renewEveryMs/);
  t.throws(() => new PartitionOwnership({ ...base, renewEveryMs: 250, safetyMarginMs: 60 }), /safetyMarginMs/);
  t.throws(() => new PartitionOwnership({ ...base, workerId: 'a.b' }), /workerId/);
  t.throws(() => new PartitionOwnership({ ...base, partitions: 0 }), /partitions/);
  const w = new PartitionOwnership(base);
  await w.start();
  await t.rejects(w.start(), /already started/);
  await w.stop();
});

t.test('two workers on a real nats-server (JetStream KV leases, NATS bus) converge', async (t) => {
  const nats = await startNats();
  t.teardown(() => nats.close());
  const bucket = uid('leases');
  const open = async () => {
    const nc = await connect({ servers: nats.url });
    t.teardown(() => nc.close());
    return { bus: new NatsBus(nc), leases: await NatsKvLeaseStore.open(nc, { ttlMs: 1000, bucket }) };
  };
  const [x, y, client] = await Promise.all([open(), open(), open()]);
  const c = cluster(t, x.leases, client.bus);
  const a = c.add('a', {}, x.leases, x.bus);
  await a.start();
  t.same(a.owned(), all, 'the first worker takes everything');
  const b = c.add('b', {}, y.leases, y.bus);
  await b.start();
  await until(() => a.owned().length === 4 && b.owned().length === 4, 'an even split', 5000);
  const answers = await c.answers();
  t.same(all.map((p) => answers[p]), all.map((p) => (a.owned().includes(p) ? 'a' : 'b')), 'requests over NATS reach the owner');
  t.same(c.overlaps, []);
  const heartbeats = await x.leases.holders('w.');
  t.same([...heartbeats.keys()], ['w.a', 'w.b'], 'both workers keep a heartbeat');
  t.ok(heartbeats.get('w.a')?.startsWith('a#') && heartbeats.get('w.b')?.startsWith('b#'), 'each under its own id');
});
