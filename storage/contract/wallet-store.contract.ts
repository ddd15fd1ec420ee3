// The WalletStore conformance suite: every adapter (memory, LMDB, later CQL) runs it unchanged.
// It only uses the port. Ids come from uid() and each test has its own currency (walletScene),
// so an adapter may run it on a database shared with other tests and runs. Every test ends
// with the ledger audit (auditScene): double entry holds whatever the scenario did.
import { isDeepStrictEqual } from 'node:util';
import type { Test } from 'tap';
import {
  EnvelopeClosedError, InsufficientFundsError, KeyReusedError, ShareTakenError, TransferSettledError,
  envelopeAccount, grabTxn, grabTxnId, refundTxn, refundTxnId, settleTxn, settleTxnId, transferAccount,
  type LedgerTxn, type WalletStore,
} from '../../engine/wallet/ports.ts';
import { failure, uid } from './fixtures.ts';
import { T0, auditScene, collect, fullStatement, walletScene, type WalletScene } from './wallet-fixtures.ts';

export interface WalletStoreHarness {
  store: WalletStore;
  /** Closes `store` and removes what the harness created. */
  cleanup: () => Promise<void>;
}

export function walletStoreContract(t: Test, name: string, makeHarness: () => Promise<WalletStoreHarness>): void {
  const withStore = (title: string, body: (t: Test, store: WalletStore, s: WalletScene) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const harness = await makeHarness();
      t.teardown(() => harness.cleanup());
      const scene = walletScene();
      await body(t, harness.store, scene);
      await auditScene(t, harness.store, scene);
    });

  withStore('a top-up moves money from the outside world into a wallet', async (t, store, s) => {
    const amy = uid('u');
    t.equal(await store.balance(s.wallet(amy)), 0, 'an account never posted to holds 0');
    const txn = s.topup(amy, 500);
    t.same(await store.post(txn), { value: txn, applied: true });
    t.equal(await store.balance(s.wallet(amy)), 500, 'the wallet is credited');
    t.equal(await store.balance(s.ext), -500, 'the outside world goes negative by what came in');
    t.same(await store.getTxn(txn.id), txn, 'getTxn returns the stored transaction');
    t.equal(await store.getTxn(uid('topup')), undefined, 'unknown txn');
    const [entry, ...rest] = await store.statement(s.wallet(amy), { limit: 10 });
    t.same(rest, [], 'one entry');
    t.match(entry, { seq: Number, txn: txn.id, kind: 'topup', amount: 500, balance: 500, ts: T0 });
    t.equal(entry?.ref, undefined, 'no ref for a txn without one');
  });

  withStore('statements are newest first, paged by seq, with the balance after each entry', async (t, store, s) => {
    const amy = uid('u'), ben = uid('u');
    for (const amount of [100, 20, 3]) await store.post(s.topup(amy, amount));
    await store.post(s.payment(amy, ben, 50));
    await store.post(s.topup(amy, 7));
    const all = await store.statement(s.wallet(amy), { limit: 100 });
    t.same(all.map((e) => [e.amount, e.balance]), [[7, 80], [-50, 73], [3, 123], [20, 120], [100, 100]], 'newest first, balance after each');
    t.ok(all.every((e, i) => i === 0 || e.seq < all[i - 1]!.seq), 'seq increases with age');
    const first = await store.statement(s.wallet(amy), { limit: 2 });
    t.same(first, all.slice(0, 2), 'limit takes the newest');
    const next = await store.statement(s.wallet(amy), { before: first[1]!.seq, limit: 2 });
    t.same(next, all.slice(2, 4), 'before continues after the last entry seen');
    t.same(await fullStatement(store, s.wallet(amy)), [...all].reverse(), 'paging to the end yields every entry once');
    t.same(await store.statement(s.wallet(amy), { before: all[4]!.seq, limit: 10 }), [], 'nothing before the oldest');
    t.same(await store.statement(s.wallet(amy), { limit: 0 }), [], 'limit 0');
    t.same(await store.statement(s.wallet(uid('u')), { limit: 10 }), [], 'unknown account');
    t.same((await store.statement(s.wallet(ben), { limit: 10 })).map((e) => [e.amount, e.balance]), [[50, 50]], 'the other side');
  });

  withStore('a transaction id moves money once; reused with another request it is refused', async (t, store, s) => {
    const amy = uid('u');
    const txn = s.topup(amy, 300);
    await store.post(txn);
    const retry = { ...txn, ts: T0 + 5 };
    t.same(await store.post(retry), { value: txn, applied: false }, 'the same request again returns what was stored');
    t.equal(await store.balance(s.wallet(amy)), 300, 'moved once');
    const other = s.topup(amy, 999, txn.id);
    const error = await failure(store.post(other));
    t.ok(error instanceof KeyReusedError, 'KeyReusedError');
    t.match(error, { txn: txn.id });
    t.equal(await store.balance(s.wallet(amy)), 300, 'the reused id moved nothing');
    t.same(await store.getTxn(txn.id), txn, 'the first request stays stored');
    t.equal((await store.statement(s.wallet(amy), { limit: 10 })).length, 1, 'one statement entry');
  });

  withStore('a wallet cannot go negative; the refused transaction stores nothing', async (t, store, s) => {
    const amy = uid('u'), ben = uid('u');
    await store.post(s.topup(amy, 100));
    const tooMuch = s.payment(amy, ben, 150);
    const error = await failure(store.post(tooMuch));
    t.ok(error instanceof InsufficientFundsError, 'InsufficientFundsError');
    t.match(error, { account: s.wallet(amy), balance: 100, needed: 150 });
    t.equal(await store.getTxn(tooMuch.id), undefined, 'no txn stored');
    t.equal(await store.balance(s.wallet(amy)), 100);
    t.equal(await store.balance(s.wallet(ben)), 0);
    t.same(await store.statement(s.wallet(ben), { limit: 10 }), [], 'no entry for the would-be payee');
    t.equal((await store.statement(s.wallet(amy), { limit: 10 })).length, 1);
    const fits = { ...tooMuch, postings: s.payment(amy, ben, 100).postings };
    t.same(await store.post(fits), { value: fits, applied: true }, 'the id is still free: nothing was stored under it');
    t.equal(await store.balance(s.wallet(amy)), 0, 'down to exactly 0 is allowed');
  });

  withStore('malformed transactions are refused with RangeError and store nothing', async (t, store, s) => {
    const amy = uid('u'), ben = uid('u');
    await store.post(s.topup(amy, 100));
    const base = s.payment(amy, ben, 10);
    const bad: Array<[string, LedgerTxn]> = [
      ['postings not summing to 0', { ...base, postings: [{ account: s.wallet(amy), amount: -10 }, { account: s.wallet(ben), amount: 9 }] }],
      ['a zero posting', { ...base, postings: [{ account: s.wallet(amy), amount: 0 }, { account: s.wallet(ben), amount: 0 }] }],
      ['fractional cents', { ...base, postings: [{ account: s.wallet(amy), amount: -0.5 }, { account: s.wallet(ben), amount: 0.5 }] }],
      ['an account twice', { ...base, postings: [{ account: s.wallet(ben), amount: -10 }, { account: s.wallet(ben), amount: 10 }] }],
      ['no postings', { ...base, postings: [] }],
    ];
    for (const [what, txn] of bad) t.ok(await failure(store.post(txn)) instanceof RangeError, what);
    t.equal(await store.getTxn(base.id), undefined, 'nothing stored under the id');
    t.equal(await store.balance(s.wallet(ben)), 0, 'nothing moved');

    const { envelope, txn } = s.envelope(amy, [10, 20]);
    const unbalanced = { ...txn, postings: [{ account: s.wallet(amy), amount: -30 }, { account: envelopeAccount(envelope.id), amount: 31 }] };
    t.ok(await failure(store.openEnvelope(envelope, unbalanced)) instanceof RangeError, 'openEnvelope checks its txn');
    const short = { ...txn, postings: [{ account: s.wallet(amy), amount: -20 }, { account: envelopeAccount(envelope.id), amount: 20 }] };
    t.ok(await failure(store.openEnvelope(envelope, short)) instanceof RangeError, 'the escrow must receive the total');
    t.equal(await store.getEnvelope(envelope.id), undefined, 'no envelope stored');
    const { transfer, txn: xferTxn } = s.transfer(amy, ben, 10);
    t.ok(await failure(store.openTransfer({ ...transfer, amount: 11 }, xferTxn)) instanceof RangeError, 'the transfer escrow must receive the amount');
    t.ok(await failure(store.openTransfer({ ...transfer, state: 'accepted' }, xferTxn)) instanceof RangeError, 'a transfer opens pending');
    t.equal(await store.getTransfer(transfer.id), undefined, 'no transfer stored');
    t.equal(await store.balance(s.wallet(amy)), 100, 'nothing moved');
  });

  withStore('opening an envelope moves its total into escrow, once', async (t, store, s) => {
    const amy = uid('u'), poor = uid('u');
    await store.post(s.topup(amy, 1000));
    const { envelope, txn } = s.envelope(amy, [300, 200, 100]);
    t.same(await store.openEnvelope(envelope, txn), { value: envelope, applied: true });
    t.equal(await store.balance(s.wallet(amy)), 400, 'the sender pays the total');
    t.equal(await store.balance(envelopeAccount(envelope.id)), 600, 'the escrow holds it');
    t.same(await store.getEnvelope(envelope.id), { envelope, claims: [] }, 'stored with no claims and not refunded');
    t.same(await store.getTxn(txn.id), txn);

    // A retry builds a new envelope (new id, new split): the stored one is the answer.
    const { envelope: rebuilt } = s.envelope(amy, [550, 50]);
    const again = await store.openEnvelope(rebuilt, { ...txn, ref: rebuilt.id, postings: [txn.postings[0]!, { account: envelopeAccount(rebuilt.id), amount: 600 }] });
    t.same(again, { value: envelope, applied: false }, 'the same txn id returns the first envelope');
    t.equal(await store.getEnvelope(rebuilt.id), undefined, 'the retry stored nothing');
    t.equal(await store.balance(s.wallet(amy)), 400, 'and moved nothing');
    const reused = s.envelope(amy, [1, 2], { txnId: txn.id });
    t.ok(await failure(store.openEnvelope(reused.envelope, reused.txn)) instanceof KeyReusedError, 'same id, another request');

    await store.post(s.topup(poor, 5));
    const broke = s.envelope(poor, [6, 4]);
    const error = await failure(store.openEnvelope(broke.envelope, broke.txn));
    t.ok(error instanceof InsufficientFundsError, 'InsufficientFundsError');
    t.match(error, { account: s.wallet(poor), balance: 5, needed: 10 });
    t.equal(await store.getEnvelope(broke.envelope.id), undefined, 'no envelope stored');
    t.equal(await store.getTxn(broke.txn.id), undefined, 'no txn stored');
    t.equal(await store.balance(s.wallet(poor)), 5);
    t.equal(await store.claimShare(broke.envelope.id, amy, 0, T0), undefined, 'nothing to claim from');
  });

  withStore('claims pay each user their share once, by the grab transaction', async (t, store, s) => {
    const [amy, ben, cat] = [uid('u'), uid('u'), uid('u')];
    await store.post(s.topup(amy, 100));
    const { envelope, txn } = s.envelope(amy, [30, 50, 20]);
    await store.openEnvelope(envelope, txn);

    const claim = { user: ben, index: 0, amount: 30, ts: T0 + 1 };
    t.same(await store.claimShare(envelope.id, ben, 0, T0 + 1), { value: claim, applied: true });
    t.same(await store.getTxn(grabTxnId(envelope.id, ben)), grabTxn(envelope, claim), 'posted exactly as grabTxn() builds it');
    t.equal(await store.balance(s.wallet(ben)), 30);
    t.equal(await store.balance(envelopeAccount(envelope.id)), 70);
    t.same(await store.claimShare(envelope.id, ben, 2, T0 + 9), { value: claim, applied: false }, 'a user with a claim gets it back, whatever index they ask');
    t.equal(await store.balance(s.wallet(ben)), 30, 'paid once');

    const taken = await failure(store.claimShare(envelope.id, cat, 0, T0 + 2));
    t.ok(taken instanceof ShareTakenError, 'another user holds index 0');
    t.match(taken, { envelope: envelope.id, index: 0 });
    t.same(await store.claimShare(envelope.id, cat, 2, T0 + 3), { value: { user: cat, index: 2, amount: 20, ts: T0 + 3 }, applied: true });
    for (const index of [-1, 3, 1.5]) t.ok(await failure(store.claimShare(envelope.id, amy, index, T0)) instanceof RangeError, `index ${index} is out of range`);
    t.equal(await store.claimShare(uid('env'), ben, 0, T0), undefined, 'unknown envelope');
    t.same(await store.getEnvelope(envelope.id), { envelope, claims: [claim, { user: cat, index: 2, amount: 20, ts: T0 + 3 }] }, 'claims in the order made');
  });

  withStore('a refund returns what no one claimed and closes the envelope', async (t, store, s) => {
    const [amy, ben, cat] = [uid('u'), uid('u'), uid('u')];
    // Expiry far below any other test's, so the due list holds this envelope alone even on a shared database.
    const expiresAt = -T0 - Math.floor(Math.random() * T0);
    await store.post(s.topup(amy, 100));
    const { envelope, txn } = s.envelope(amy, [30, 50, 20], { expiresAt });
    await store.openEnvelope(envelope, txn);
    const claim = (await store.claimShare(envelope.id, ben, 1, T0))!.value;
    t.same(await store.dueEnvelopes(expiresAt - 1, 10), [], 'not due before its expiry');
    t.same(await store.dueEnvelopes(expiresAt, 10), [envelope.id], 'due at its expiry');

    const refunded = await store.refundEnvelope(envelope.id, T0 + 7);
    t.same(refunded, { value: { envelope, claims: [claim], refunded: 50 }, applied: true }, 'total 100 - claimed 50');
    t.same(await store.getTxn(refundTxnId(envelope.id)), refundTxn(envelope, 50, T0 + 7), 'posted exactly as refundTxn() builds it');
    t.equal(await store.balance(s.wallet(amy)), 50, 'the sender gets the rest back');
    t.equal(await store.balance(envelopeAccount(envelope.id)), 0, 'the escrow is empty');
    t.same(await store.dueEnvelopes(expiresAt, 10), [], 'no longer due');

    t.same(await store.refundEnvelope(envelope.id, T0 + 8), { value: { envelope, claims: [claim], refunded: 50 }, applied: false }, 'refunding again moves nothing');
    t.equal(await store.balance(s.wallet(amy)), 50);
    const closed = await failure(store.claimShare(envelope.id, cat, 0, T0 + 9));
    t.ok(closed instanceof EnvelopeClosedError, 'no claims after the refund');
    t.match(closed, { envelope: envelope.id });
    t.same(await store.claimShare(envelope.id, ben, 0, T0 + 9), { value: claim, applied: false }, 'an earlier claim is still returned');
    t.same(await store.getEnvelope(envelope.id), { envelope, claims: [claim], refunded: 50 });
    t.equal(await store.refundEnvelope(uid('env'), T0), undefined, 'unknown envelope');
  });

  withStore('a fully claimed envelope refunds 0 and posts no transaction', async (t, store, s) => {
    const [amy, ben, cat] = [uid('u'), uid('u'), uid('u')];
    await store.post(s.topup(amy, 30));
    const { envelope, txn } = s.envelope(amy, [10, 20]);
    await store.openEnvelope(envelope, txn);
    await store.claimShare(envelope.id, ben, 1, T0);
    await store.claimShare(envelope.id, cat, 0, T0);
    const refunded = await store.refundEnvelope(envelope.id, T0);
    t.equal(refunded?.value.refunded, 0, 'refunded 0');
    t.equal(refunded?.applied, true, 'the envelope is now closed');
    t.equal(await store.getTxn(refundTxnId(envelope.id)), undefined, 'no refund transaction');
    t.equal(await store.balance(s.wallet(amy)), 0);
    t.ok(await failure(store.claimShare(envelope.id, uid('u'), 0, T0)) instanceof EnvelopeClosedError, 'closed');
  });

  withStore('due envelopes and transfers come soonest first, up to the limit', async (t, store, s) => {
    const amy = uid('u'), ben = uid('u');
    const base = -T0 - Math.floor(Math.random() * T0);
    await store.post(s.topup(amy, 1000));
    const envs: string[] = [];
    for (const offset of [2, 0, 5, 1]) {
      const e = s.envelope(amy, [10], { expiresAt: base + offset });
      await store.openEnvelope(e.envelope, e.txn);
      envs[offset] = e.envelope.id;
    }
    t.same(await store.dueEnvelopes(base + 2, 10), [envs[0], envs[1], envs[2]], 'expired ones, soonest first');
    t.same(await store.dueEnvelopes(base + 2, 2), [envs[0], envs[1]], 'limit');
    t.same(await store.dueEnvelopes(base + 2, 0), [], 'limit 0');
    await store.refundEnvelope(envs[1]!, T0);
    t.same(await store.dueEnvelopes(base + 9, 10), [envs[0], envs[2], envs[5]], 'a refunded envelope is no longer due');

    const xfers: string[] = [];
    for (const offset of [3, 1, 2]) {
      const x = s.transfer(amy, ben, 10, { expiresAt: base + offset });
      await store.openTransfer(x.transfer, x.txn);
      xfers[offset] = x.transfer.id;
    }
    t.same(await store.dueTransfers(base + 2, 10), [xfers[1], xfers[2]], 'pending ones, soonest first');
    t.same(await store.dueTransfers(base + 3, 1), [xfers[1]], 'limit');
    await store.settleTransfer(xfers[1]!, 'accepted', T0);
    await store.settleTransfer(xfers[2]!, 'returned', T0);
    t.same(await store.dueTransfers(base + 3, 10), [xfers[3]], 'settled transfers are no longer due');
    // Leave nothing due behind on a shared database.
    for (const id of [envs[0]!, envs[2]!, envs[5]!]) await store.refundEnvelope(id, T0);
    await store.settleTransfer(xfers[3]!, 'returned', T0);
  });

  withStore('transfers: accepted pays the recipient, returned pays the sender back, never both', async (t, store, s) => {
    const amy = uid('u'), ben = uid('u'), poor = uid('u');
    await store.post(s.topup(amy, 100));
    const { transfer, txn } = s.transfer(amy, ben, 40);
    t.same(await store.openTransfer(transfer, txn), { value: transfer, applied: true });
    t.same(await store.getTransfer(transfer.id), transfer);
    t.equal(await store.balance(s.wallet(amy)), 60);
    t.equal(await store.balance(transferAccount(transfer.id)), 40, 'held in escrow');
    t.same(await store.openTransfer({ ...transfer, createdAt: T0 + 1 }, txn), { value: transfer, applied: false }, 'a retry returns the stored transfer');
    t.equal(await store.balance(s.wallet(amy)), 60, 'and moves nothing');
    t.ok(await failure(store.openTransfer(transfer, { ...txn, fingerprint: 'other' })) instanceof KeyReusedError, 'same id, another request');
    const broke = s.transfer(poor, ben, 1);
    t.ok(await failure(store.openTransfer(broke.transfer, broke.txn)) instanceof InsufficientFundsError, 'the sender cannot pay');
    t.equal(await store.getTransfer(broke.transfer.id), undefined, 'nothing stored');
    t.equal(await store.getTxn(broke.txn.id), undefined);

    const accepted = { ...transfer, state: 'accepted', settledAt: T0 + 5 };
    t.same(await store.settleTransfer(transfer.id, 'accepted', T0 + 5), { value: accepted, applied: true });
    t.same(await store.getTxn(settleTxnId(transfer.id, 'accepted')), settleTxn(transfer, 'accepted', T0 + 5), 'posted exactly as settleTxn() builds it');
    t.equal(await store.balance(s.wallet(ben)), 40, 'the recipient is paid');
    t.equal(await store.balance(transferAccount(transfer.id)), 0);
    t.same(await store.settleTransfer(transfer.id, 'accepted', T0 + 6), { value: accepted, applied: false }, 'accepting again is a no-op');
    const conflict = await failure(store.settleTransfer(transfer.id, 'returned', T0 + 6));
    t.ok(conflict instanceof TransferSettledError, 'cannot return an accepted transfer');
    t.match(conflict, { transfer: transfer.id, state: 'accepted' });
    t.same(await store.getTransfer(transfer.id), accepted);

    const back = s.transfer(amy, ben, 25);
    await store.openTransfer(back.transfer, back.txn);
    const returned = { ...back.transfer, state: 'returned', settledAt: T0 + 7 };
    t.same(await store.settleTransfer(back.transfer.id, 'returned', T0 + 7), { value: returned, applied: true });
    t.same(await store.getTxn(settleTxnId(back.transfer.id, 'returned')), settleTxn(back.transfer, 'returned', T0 + 7));
    t.equal(await store.balance(s.wallet(amy)), 60, 'the sender has it back');
    t.same(await store.settleTransfer(back.transfer.id, 'returned', T0 + 8), { value: returned, applied: false });
    t.match(await failure(store.settleTransfer(back.transfer.id, 'accepted', T0 + 8)), TransferSettledError);
    t.ok(await failure(store.settleTransfer(back.transfer.id, 'pending' as 'accepted', T0 + 8)) instanceof RangeError, 'only accepted or returned');
    t.equal(await store.settleTransfer(uid('xfer'), 'accepted', T0), undefined, 'unknown transfer');
    t.equal(await store.getTransfer(uid('xfer')), undefined);
  });

  withStore('scans return what was written', async (t, store, s) => {
    const amy = uid('u'), ben = uid('u');
    const topup = s.topup(amy, 100);
    await store.post(topup);
    const { envelope, txn } = s.envelope(amy, [10, 15]);
    await store.openEnvelope(envelope, txn);
    await store.claimShare(envelope.id, ben, 1, T0);
    const { transfer, txn: xferTxn } = s.transfer(amy, ben, 5);
    await store.openTransfer(transfer, xferTxn);

    const txns = (await collect(store.scanTxns())).filter((x) => x.currency === s.cur);
    t.same(txns.map((x) => x.id).sort(), [topup.id, txn.id, grabTxnId(envelope.id, ben), xferTxn.id].sort(), 'every transaction once');
    t.same(txns.find((x) => x.id === topup.id), topup, 'as stored');
    const balances = (await collect(store.scanBalances())).filter((b) => [s.ext, s.wallet(amy), s.wallet(ben), envelopeAccount(envelope.id), transferAccount(transfer.id)].includes(b.account));
    t.same(balances.sort((a, b) => (a.account < b.account ? -1 : 1)), [
      { account: envelopeAccount(envelope.id), balance: 10 }, { account: s.ext, balance: -100 },
      { account: s.wallet(amy), balance: 70 }, { account: s.wallet(ben), balance: 15 }, { account: transferAccount(transfer.id), balance: 5 },
    ].sort((a, b) => (a.account < b.account ? -1 : 1)), 'every account of the scene with its balance');
    const records = (await collect(store.scanEnvelopes())).filter((r) => r.envelope.id === envelope.id);
    t.same(records, [{ envelope, claims: [{ user: ben, index: 1, amount: 15, ts: T0 }] }], 'the envelope with its claims');
  });

  withStore('50 users racing for 10 shares: each share and each user once', async (t, store, s) => {
    const sender = uid('u');
    const shares = [5, 10, 15, 20, 25, 30, 35, 40, 45, 50];
    await store.post(s.topup(sender, 275));
    const { envelope, txn } = s.envelope(sender, shares);
    await store.openEnvelope(envelope, txn);
    const users = Array.from({ length: 50 }, () => uid('u'));
    // Every index is asked for by 5 users, and every user asks twice, for two different indices.
    const calls = users.flatMap((user, i) => [[user, i % 10], [user, (i + 3) % 10]] as const);
    const results = await Promise.allSettled(calls.map(([user, index]) => store.claimShare(envelope.id, user, index, T0)));
    const refused = results.filter((r) => r.status === 'rejected');
    t.ok(refused.every((r) => r.reason instanceof ShareTakenError), 'losers get ShareTakenError');
    const applied = results.flatMap((r) => (r.status === 'fulfilled' && r.value?.applied ? [r.value.value] : []));
    t.equal(applied.length, 10, 'exactly 10 claims applied');
    const { claims } = (await store.getEnvelope(envelope.id))!;
    t.equal(claims.length, 10, 'exactly 10 claims stored');
    t.same(claims.map((c) => c.index).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'each index once');
    t.equal(new Set(claims.map((c) => c.user)).size, 10, 'no user twice');
    const mine = new Map(claims.map((c) => [c.user, c]));
    const returned = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value?.value] : []));
    t.ok(returned.every((c) => c !== undefined && isDeepStrictEqual(c, mine.get(c.user))), "every call that resolved returns the user's stored claim");
    const paid = await Promise.all(claims.map((c) => store.balance(s.wallet(c.user))));
    t.same(paid, claims.map((c) => shares[c.index]), 'each winner holds their share');
    const claimed = claims.reduce((sum, c) => sum + c.amount, 0);
    t.equal(await store.balance(envelopeAccount(envelope.id)), envelope.total - claimed, 'escrow == total - claimed');
  });

  withStore('concurrent duplicates apply once; concurrent debits never overdraw', async (t, store, s) => {
    const amy = uid('u'), ben = uid('u');
    const topup = s.topup(amy, 100);
    const posts = await Promise.all(Array.from({ length: 8 }, () => store.post(topup)));
    t.equal(posts.filter((p) => p.applied).length, 1, 'one of 8 identical posts applies');
    t.ok(posts.every((p) => p.value.id === topup.id && p.value.fingerprint === topup.fingerprint), 'all return the stored txn');
    t.equal(await store.balance(s.wallet(amy)), 100, 'moved once');

    const debits = await Promise.allSettled(Array.from({ length: 10 }, () => store.post(s.payment(amy, ben, 30))));
    t.equal(debits.filter((d) => d.status === 'fulfilled').length, 3, '3 of 10 debits of 30 fit in 100');
    t.ok(debits.every((d) => d.status === 'fulfilled' || d.reason instanceof InsufficientFundsError), 'the rest are refused');
    t.equal(await store.balance(s.wallet(amy)), 10);

    await store.post(s.topup(amy, 90));
    const { envelope, txn } = s.envelope(amy, [40, 60]);
    const opens = await Promise.all([store.openEnvelope(envelope, txn), store.openEnvelope(envelope, txn), store.openEnvelope(envelope, txn)]);
    t.equal(opens.filter((o) => o.applied).length, 1, 'one of 3 identical opens applies');
    t.equal(await store.balance(s.wallet(amy)), 0, 'debited once');
    await store.claimShare(envelope.id, ben, 0, T0);
    const refunds = await Promise.all(Array.from({ length: 4 }, () => store.refundEnvelope(envelope.id, T0)));
    t.equal(refunds.filter((r) => r?.applied).length, 1, 'two sweepers cannot refund twice');
    t.equal(await store.balance(s.wallet(amy)), 60, 'refunded once');

    const { transfer, txn: xferTxn } = s.transfer(ben, amy, 40);
    await store.openTransfer(transfer, xferTxn);
    const before = (await store.balance(s.wallet(amy))) + (await store.balance(s.wallet(ben)));
    const settles = await Promise.allSettled([store.settleTransfer(transfer.id, 'accepted', T0), store.settleTransfer(transfer.id, 'returned', T0)]);
    t.equal(settles.filter((r) => r.status === 'fulfilled').length, 1, 'accept and return race: one wins');
    t.ok(settles.some((r) => r.status === 'rejected' && r.reason instanceof TransferSettledError), 'the other is told it is settled');
    t.equal((await store.balance(s.wallet(amy))) + (await store.balance(s.wallet(ben))), before + 40, 'the 40 went to exactly one side');
    t.equal(await store.balance(transferAccount(transfer.id)), 0, 'and left the escrow');
  });
}
