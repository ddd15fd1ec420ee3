// Users whose gateway died are announced offline to their friends by the sweep, with last seen.
import t from 'tap';
import { MemoryChatStore } from '../storage/memory/chat-store.ts';
import { MemoryPresenceRegistry } from '../storage/memory/presence-registry.ts';
import { createChatEngine } from './chat-engine.ts';
import { RecordingDelivery } from './test/harness.ts';

class ExpiringRegistry extends MemoryPresenceRegistry {
  expired: Array<{ user: string; lastSeen: number }> = [];
  async takeExpired(): Promise<Array<{ user: string; lastSeen: number }>> {
    const out = this.expired;
    this.expired = [];
    return out;
  }
}

t.test('sweep announces expired users offline to friends and records last seen', async (t) => {
  const store = new MemoryChatStore();
  const registry = new ExpiringRegistry();
  const delivery = new RecordingDelivery();
  const engine = createChatEngine({ store, presence: registry, delivery });
  const who = (user: string) => ({ user, device: 'phone', session: `s-${user}` });
  await engine.request(who('alice'), 'contact.request', { user: 'bob' });
  await engine.request(who('bob'), 'contact.accept', { user: 'alice' });
  registry.expired = [{ user: 'bob', lastSeen: 1234 }];
  t.equal(await engine.sweep!(), 1);
  t.same(delivery.of('alice', 'presence'), [{ t: 'presence', user: 'bob', online: false, lastSeen: 1234 }]);
  t.same(await store.getLastSeen(['bob']), { bob: 1234 });
  t.equal(await engine.sweep!(), 0, 'nothing twice');
  t.equal(delivery.of('alice', 'presence').length, 1);
});

t.test('a registry without expiry (embedded) sweeps nothing', async (t) => {
  const engine = createChatEngine({ store: new MemoryChatStore(), presence: new MemoryPresenceRegistry(), delivery: new RecordingDelivery() });
  t.equal(await engine.sweep!(), 0);
});
