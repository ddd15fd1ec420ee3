// The LeaseStore conformance suite (memory, NATS KV). What partition ownership relies on: one
// holder per key, compare-and-set on revisions, and expiry no earlier than ttl after the last write.
import type { Test } from 'tap';
import type { LeaseStore } from '../../engine/ports.ts';
import { uid } from './fixtures.ts';

export interface LeaseStoreHarness {
  store: LeaseStore;
  cleanup: () => Promise<void>;
}

/** Long enough that nothing expires during a test that does not wait for it. */
const LONG_TTL_MS = 60_000;
/** Short enough to wait for, long enough to tell "expired too early" from scheduling noise. */
const SHORT_TTL_MS = 400;

/** Resolve once `check` resolves true, polling; fail after `ms`. */
async function until(check: () => Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function leaseStoreContract(t: Test, name: string, make: (ttlMs: number) => Promise<LeaseStoreHarness>): void {
  const withStore = (title: string, ttlMs: number, body: (t: Test, store: LeaseStore) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const harness = await make(ttlMs);
      t.teardown(() => harness.cleanup());
      await body(t, harness.store);
    });

  withStore('reports its ttl', LONG_TTL_MS, async (t, store) => {
    t.equal(store.ttlMs, LONG_TTL_MS);
  });

  withStore('a key is claimed once; a second claim by anyone fails while it is held', LONG_TTL_MS, async (t, store) => {
    const key = `p.${uid('k')}`;
    const revision = await store.claim(key, 'alice');
    t.type(revision, 'number', 'first claim resolves a revision');
    t.equal(await store.claim(key, 'bob'), undefined, 'another owner cannot claim it');
    t.equal(await store.claim(key, 'alice'), undefined, 'nor can the holder claim it again');
    t.same(await store.holders('p.').then((h) => h.get(key)), 'alice');
  });

  withStore('renew is compare-and-set on the revision', LONG_TTL_MS, async (t, store) => {
    const key = `p.${uid('k')}`;
    const first = (await store.claim(key, 'alice'))!;
    const second = await store.renew(key, 'alice', first);
    t.type(second, 'number', 'renew with the current revision succeeds');
    t.ok(second! > first, 'and gives a newer revision');
    t.equal(await store.renew(key, 'alice', first), undefined, 'the superseded revision no longer renews');
    t.equal(await store.renew(key, 'alice', second! + 1000), undefined, 'nor does a made-up one');
    const third = await store.renew(key, 'alice', second!);
    t.ok(third !== undefined && third > second!, 'the current one still does');
    t.equal(await store.renew(`p.${uid('absent')}`, 'alice', 1), undefined, 'an absent key cannot be renewed');
  });

  withStore('release needs the current revision; then another owner can claim', LONG_TTL_MS, async (t, store) => {
    const key = `p.${uid('k')}`;
    const first = (await store.claim(key, 'alice'))!;
    const current = (await store.renew(key, 'alice', first))!;
    t.equal(await store.release(key, 'alice', first), false, 'a stale revision releases nothing');
    t.equal(await store.claim(key, 'bob'), undefined, 'so the lease is still held');
    t.equal(await store.release(key, 'alice', current), true, 'the current revision releases');
    t.equal(await store.release(key, 'alice', current), false, 'releasing twice does nothing');
    t.equal(await store.renew(key, 'alice', current), undefined, 'a released lease cannot be renewed');
    const bobs = await store.claim(key, 'bob');
    t.type(bobs, 'number', 'another owner claims it');
    t.ok(bobs! > current, 'with a revision newer than any before');
    t.same(await store.holders('p.').then((h) => h.get(key)), 'bob');
    t.equal(await store.release(key, 'alice', current), false, 'the old holder cannot release the new lease');
  });

  withStore('revisions never repeat across keys', LONG_TTL_MS, async (t, store) => {
    const seen = new Set<number>();
    for (let i = 0; i < 5; i++) {
      const key = `p.${uid('k')}`;
      const claimed = (await store.claim(key, 'alice'))!;
      const renewed = (await store.renew(key, 'alice', claimed))!;
      seen.add(claimed).add(renewed);
    }
    t.equal(seen.size, 10);
  });

  withStore('an entry expires ttl after its last write, not before', SHORT_TTL_MS, async (t, store) => {
    const key = `p.${uid('k')}`;
    const sent = performance.now();
    const revision = (await store.claim(key, 'alice'))!;
    let takenAt = 0;
    await until(async () => {
      const bobs = await store.claim(key, 'bob');
      takenAt = performance.now();
      return bobs !== undefined;
    }, 'the lease to expire');
    // The store wrote after we sent, so expiry comes at least ttl after sending (minus timer rounding).
    t.ok(takenAt - sent >= SHORT_TTL_MS - 5, `held for ${Math.round(takenAt - sent)} ms, ttl ${SHORT_TTL_MS} ms`);
    t.ok(takenAt - sent < SHORT_TTL_MS + 3000, 'and expired within a few seconds of the ttl');
    t.equal(await store.renew(key, 'alice', revision), undefined, 'the expired holder cannot renew');
    t.equal(await store.release(key, 'alice', revision), false, 'nor release');
    t.same(await store.holders('p.').then((h) => h.get(key)), 'bob');
  });

  withStore('holders lists live entries under a prefix', LONG_TTL_MS, async (t, store) => {
    const group = uid('g');
    t.same(await store.holders(`${group}.`), new Map(), 'nothing yet');
    const p1 = `${group}.p.1`, p2 = `${group}.p.2`, w = `${group}.w.worker-1`;
    await store.claim(p1, 'alice');
    const r2 = (await store.claim(p2, 'bob'))!;
    await store.claim(w, 'alice');
    t.same(await store.holders(`${group}.p.`), new Map([[p1, 'alice'], [p2, 'bob']]));
    t.same(await store.holders(`${group}.w.`), new Map([[w, 'alice']]));
    t.same(await store.holders(`${group}.`), new Map([[p1, 'alice'], [p2, 'bob'], [w, 'alice']]));
    await store.release(p2, 'bob', r2);
    t.same(await store.holders(`${group}.p.`), new Map([[p1, 'alice']]), 'released entries are gone');
    t.same(await store.holders(`${uid('other')}.`), new Map(), 'other prefixes see nothing');
  });

  withStore('an expired entry is not listed', SHORT_TTL_MS, async (t, store) => {
    const group = uid('g');
    await store.claim(`${group}.p.1`, 'alice');
    t.equal((await store.holders(`${group}.`)).size, 1);
    await until(async () => (await store.holders(`${group}.`)).size === 0, 'the entry to expire');
    t.pass('gone after the ttl');
  });

  withStore('keys and prefixes are checked', LONG_TTL_MS, async (t, store) => {
    await t.rejects(store.claim('has space', 'alice'), 'a key with a space');
    await t.rejects(store.claim('p..1', 'alice'), 'an empty token');
    await t.rejects(store.claim('p.1', ''), 'an empty owner');
    await t.rejects(store.holders('p'), 'a prefix without its dot');
  });
}
