import t from 'tap';
import { chatStoreContract } from '../contract/chat-store.contract.ts';
import { presenceRegistryContract } from '../contract/presence-registry.contract.ts';
import { MemoryChatStore } from './chat-store.ts';
import { MemoryPresenceRegistry } from './presence-registry.ts';

chatStoreContract(t, 'memory', async () => {
  const store = new MemoryChatStore();
  return { store, cleanup: () => store.close() };
});

presenceRegistryContract(t, 'memory', async () => ({ registry: new MemoryPresenceRegistry(), cleanup: async () => {} }));

t.test('memory: a closed store refuses work', async (t) => {
  const store = new MemoryChatStore();
  await store.close();
  await t.rejects(store.getConversation('c'), /closed/);
});

t.test('memory: two stores have different epochs unless one is given', async (t) => {
  t.not(new MemoryChatStore().epoch, new MemoryChatStore().epoch);
  t.equal(new MemoryChatStore({ epoch: 'fixed' }).epoch, 'fixed');
});
