import t from 'tap';
import { walletStoreContract } from '../contract/wallet-store.contract.ts';
import { walletScene } from '../contract/wallet-fixtures.ts';
import { uid } from '../contract/fixtures.ts';
import { MemoryWalletStore } from './wallet-store.ts';

walletStoreContract(t, 'memory', async () => {
  const store = new MemoryWalletStore();
  return { store, cleanup: () => store.close() };
});

t.test('memory: returned values are copies of the stored state', async (t) => {
  const store = new MemoryWalletStore();
  const s = walletScene(), amy = uid('u');
  await store.post(s.topup(amy, 100));
  const { envelope, txn } = s.envelope(amy, [60, 40]);
  const opened = await store.openEnvelope(envelope, txn);
  opened.value.shares[0] = 1;
  envelope.shares[1] = 1;
  (await store.getEnvelope(envelope.id))!.claims.push({ user: 'x', index: 0, amount: 60, ts: 0 });
  t.same(await store.getEnvelope(envelope.id), { envelope: { ...envelope, shares: [60, 40] }, claims: [] }, 'neither argument nor result aliases the store');
});

t.test('memory: a closed store refuses work', async (t) => {
  const store = new MemoryWalletStore();
  await store.close();
  await t.rejects(store.balance('u:a:CNY'), /closed/);
});
