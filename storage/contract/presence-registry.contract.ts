// The PresenceRegistry conformance suite (memory now, Redis later). add/remove report the
// transitions the engine announces: first device online, last device offline, each once.
import type { Test } from 'tap';
import type { PresenceRegistry } from '../../engine/ports.ts';
import { uid } from './fixtures.ts';

export interface PresenceRegistryHarness {
  registry: PresenceRegistry;
  cleanup: () => Promise<void>;
}

export function presenceRegistryContract(t: Test, name: string, makeRegistry: () => Promise<PresenceRegistryHarness>): void {
  const withRegistry = (title: string, body: (t: Test, registry: PresenceRegistry) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const harness = await makeRegistry();
      t.teardown(() => harness.cleanup());
      await body(t, harness.registry);
    });

  withRegistry('first device in, last device out', async (t, registry) => {
    const user = uid('u'), phone = uid('s'), laptop = uid('s');
    t.equal(await registry.add(user, phone), true, 'first device');
    t.equal(await registry.add(user, laptop), false, 'second device');
    t.equal(await registry.add(user, laptop), false, 'adding a device twice is not a new first');
    t.equal(await registry.remove(user, phone), false, 'a device is left');
    t.same(await registry.online([user]), new Set([user]), 'still online');
    t.equal(await registry.remove(user, laptop), true, 'last device');
    t.same(await registry.online([user]), new Set(), 'offline');
    t.equal(await registry.remove(user, laptop), false, 'removing again does not announce offline twice');
    t.equal(await registry.remove(uid('u'), uid('s')), false, 'unknown user and session');
    t.equal(await registry.add(user, phone), true, 'back online is a first device again');
  });

  withRegistry('online returns the connected subset', async (t, registry) => {
    const [a, b, c] = [uid('u'), uid('u'), uid('u')] as [string, string, string];
    await registry.add(a, uid('s'));
    await registry.add(c, uid('s'));
    t.same(await registry.online([a, b, c]), new Set([a, c]));
    t.same(await registry.online([b]), new Set());
    t.same(await registry.online([]), new Set());
  });

  withRegistry('users are independent', async (t, registry) => {
    const a = uid('u'), b = uid('u'), shared = uid('s');
    t.equal(await registry.add(a, shared), true);
    t.equal(await registry.add(b, shared), true, 'same session id under another user is that user\'s first');
    t.equal(await registry.remove(a, shared), true);
    t.same(await registry.online([a, b]), new Set([b]));
  });

  withRegistry('refresh keeps live sessions and re-adds lost ones, naming the users it revived', async (t, registry) => {
    const live = uid('u'), lost = uid('u');
    const liveSession = uid('s'), lostSession = uid('s');
    await registry.add(live, liveSession);
    t.same(await registry.refresh([{ user: live, session: liveSession }]), [], 'nothing to revive');
    // As if the registry had lost it (a Redis restart without persistence).
    t.same(await registry.refresh([{ user: live, session: liveSession }, { user: lost, session: lostSession }]), [lost]);
    t.same(await registry.online([live, lost]), new Set([live, lost]));
    t.same(await registry.refresh([]), []);
  });
}
