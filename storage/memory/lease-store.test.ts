// The LeaseStore contract for the in-process store, plus exact expiry timing with a hand-moved clock.
import t from 'tap';
import { leaseStoreContract } from '../contract/lease-store.contract.ts';
import { MemoryLeaseStore } from './lease-store.ts';

leaseStoreContract(t, 'memory lease store', async (ttlMs) => ({ store: new MemoryLeaseStore({ ttlMs }), cleanup: async () => {} }));

t.test('memory lease store: an entry lives exactly ttl after its last write (manual clock)', async (t) => {
  let now = 1_000;
  const store = new MemoryLeaseStore({ ttlMs: 100, clock: { now: () => now } });
  const first = (await store.claim('p.1', 'alice'))!;
  now += 99;
  t.equal(await store.claim('p.1', 'bob'), undefined, 'held 1 ms before the ttl');
  const second = (await store.renew('p.1', 'alice', first))!;
  t.type(second, 'number', 'renewed just in time');
  now += 99;
  t.same(await store.holders('p.'), new Map([['p.1', 'alice']]), 'the renew restarted its life');
  now += 1;
  t.same(await store.holders('p.'), new Map(), 'gone exactly ttl after the renew');
  t.equal(await store.renew('p.1', 'alice', second), undefined, 'too late to renew');
  t.type(await store.claim('p.1', 'bob'), 'number', 'claimable by another');
});

t.test('memory lease store: ttl is validated', async (t) => {
  t.throws(() => new MemoryLeaseStore({ ttlMs: 0 }), /ttlMs/);
  t.throws(() => new MemoryLeaseStore({ ttlMs: Number.NaN }), /ttlMs/);
});
