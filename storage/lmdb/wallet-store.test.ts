import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoreUnavailableError } from '../../engine/ports.ts';
import { envelopeAccount } from '../../engine/wallet/ports.ts';
import { walletStoreContract } from '../contract/wallet-store.contract.ts';
import { createCommit, failure, uid } from '../contract/fixtures.ts';
import { T0, auditScene, walletScene } from '../contract/wallet-fixtures.ts';
import { LmdbChatStore } from './chat-store.ts';
import { LmdbWalletStore } from './wallet-store.ts';

const root = await mkdtemp(join(tmpdir(), 'lantern-lmdb-wallet-test-'));
t.teardown(() => rm(root, { recursive: true, force: true }));

walletStoreContract(t, 'lmdb', async () => {
  const path = join(root, uid('db'));
  const store = await LmdbWalletStore.open({ path });
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(path, { recursive: true, force: true });
    },
  };
});

t.test('lmdb: the ledger, envelopes, transfers and due lists survive close and reopen', async (t) => {
  const path = join(root, uid('db'));
  t.teardown(() => rm(path, { recursive: true, force: true }));
  const s = walletScene(), amy = uid('u'), ben = uid('u'), cat = uid('u');
  let store = await LmdbWalletStore.open({ path });
  const topup = s.topup(amy, 100);
  await store.post(topup);
  const { envelope, txn } = s.envelope(amy, [30, 20], { expiresAt: T0 });
  await store.openEnvelope(envelope, txn);
  const claim = (await store.claimShare(envelope.id, ben, 0, T0))!.value;
  const { transfer, txn: xferTxn } = s.transfer(amy, ben, 10, { expiresAt: T0 + 1 });
  await store.openTransfer(transfer, xferTxn);
  const statement = await store.statement(s.wallet(amy), { limit: 10 });
  await store.close();

  store = await LmdbWalletStore.open({ path });
  t.teardown(() => store.close());
  t.equal(await store.balance(s.wallet(amy)), 40);
  t.same(await store.statement(s.wallet(amy), { limit: 10 }), statement, 'statement as before');
  t.same(await store.getEnvelope(envelope.id), { envelope, claims: [claim] });
  t.same(await store.getTransfer(transfer.id), transfer);
  t.same(await store.getTxn(txn.id), txn);
  t.same(await store.dueEnvelopes(T0, 10), [envelope.id]);
  t.same(await store.dueTransfers(T0 + 1, 10), [transfer.id]);
  t.same(await store.post({ ...topup, ts: T0 + 1 }), { value: topup, applied: false }, 'transaction ids are remembered');
  t.same((await store.claimShare(envelope.id, cat, 1, T0))?.applied, true, 'work continues where it stopped');
  t.equal(await store.balance(envelopeAccount(envelope.id)), 0);
  await auditScene(t, store, s);
});

t.test('lmdb: the wallet shares a directory with the chat store', async (t) => {
  const path = join(root, uid('db'));
  t.teardown(() => rm(path, { recursive: true, force: true }));
  const s = walletScene(), amy = uid('u'), conv = uid('conv');
  let chat = await LmdbChatStore.open({ path });
  let wallet = await LmdbWalletStore.open({ path });
  await Promise.all([chat.commit(createCommit(conv, amy, 2)), wallet.post(s.topup(amy, 70))]);
  await wallet.close();
  await chat.commit({ conv, expectHead: 2, messages: [] });
  t.equal((await chat.getConversation(conv))?.head, 2, 'the chat store works after the wallet closed');
  await chat.close();

  wallet = await LmdbWalletStore.open({ path });
  chat = await LmdbChatStore.open({ path });
  t.teardown(async () => { await wallet.close(); await chat.close(); });
  t.equal(await wallet.balance(s.wallet(amy)), 70, 'wallet data kept');
  t.equal((await chat.readAfter(conv, 0, 10)).length, 2, 'chat data kept');
});

t.test('lmdb: an operation that fails half way writes nothing', async (t) => {
  const path = join(root, uid('db'));
  const store = await LmdbWalletStore.open({ path });
  t.teardown(async () => { await store.close(); await rm(path, { recursive: true, force: true }); });
  const s = walletScene(), amy = uid('u');
  await store.post(s.topup(amy, 100));
  const { envelope, txn } = s.envelope(amy, [60, 40]);
  // msgpack cannot encode a symbol: the envelope fails after the debit was put.
  (envelope as unknown as Record<string, unknown>).greeting = Symbol('unencodable');
  const error = await failure(store.openEnvelope(envelope, txn));
  t.ok(error instanceof Error && !(error instanceof StoreUnavailableError), 'the request is wrong, not the store');
  t.equal(await store.getTxn(txn.id), undefined, 'the debit was rolled back');
  t.equal(await store.balance(s.wallet(amy)), 100);
  t.equal(await store.balance(envelopeAccount(envelope.id)), 0);
  t.equal((await store.statement(s.wallet(amy), { limit: 10 })).length, 1);
  envelope.greeting = 'fine';
  t.equal((await store.openEnvelope(envelope, txn)).applied, true, 'the same request, fixed, goes through');
  await auditScene(t, store, s);
});

t.test('lmdb: a closed store reports StoreUnavailableError', async (t) => {
  const path = join(root, uid('db'));
  t.teardown(() => rm(path, { recursive: true, force: true }));
  const store = await LmdbWalletStore.open({ path });
  await store.close();
  const s = walletScene();
  t.ok(await failure(store.post(s.topup(uid('u'), 1))) instanceof StoreUnavailableError, 'write');
  t.ok(await failure(store.balance(s.ext)) instanceof StoreUnavailableError, 'read');
});
