// Builders and the ledger audit of the WalletStore suite. Every scene has a currency of its own,
// so its outside-world account (ext:<cur>), its due lists and its sums belong to it alone even
// when an adapter runs the suite on a database that other tests and runs share.
import { isDeepStrictEqual } from 'node:util';
import type { Test } from 'tap';
import {
  envelopeAccount, externalAccount, grabTxn, transferAccount, walletAccount,
  type Envelope, type LedgerEntry, type LedgerTxn, type Transfer, type WalletStore,
} from '../../engine/wallet/ports.ts';
import { uid } from './fixtures.ts';

export const T0 = 1_700_000_000_000;

export type WalletScene = ReturnType<typeof walletScene>;

export function walletScene() {
  const cur = uid('CUR');
  const wallet = (user: string) => walletAccount(user, cur);
  return {
    cur,
    wallet,
    ext: externalAccount(cur),

    /** Money from the outside world into `user`'s wallet. */
    topup(user: string, amount: number, id = `topup:${uid('key')}`, ts = T0): LedgerTxn {
      return {
        id, kind: 'topup', currency: cur, ts,
        postings: [{ account: externalAccount(cur), amount: -amount }, { account: wallet(user), amount }],
        fingerprint: `${user}:${amount}`,
      };
    },

    /** Wallet to wallet, for tests that need a debit from a `u:` account through post(). */
    payment(from: string, to: string, amount: number, id = `pay:${uid('key')}`): LedgerTxn {
      return {
        id, kind: 'transfer', currency: cur, ts: T0,
        postings: [{ account: wallet(from), amount: -amount }, { account: wallet(to), amount }],
        fingerprint: `${from}:${to}:${amount}`,
      };
    },

    /** An envelope with these shares and the sender's debit into its escrow. */
    envelope(sender: string, shares: number[], options: { expiresAt?: number; txnId?: string } = {}): { envelope: Envelope; txn: LedgerTxn } {
      const id = uid('env'), total = shares.reduce((a, b) => a + b, 0);
      const envelope: Envelope = {
        id, conv: uid('conv'), sender, currency: cur, total, count: shares.length, mode: 'lucky', greeting: 'good luck',
        shares, createdAt: T0, expiresAt: options.expiresAt ?? T0 + 86_400_000,
      };
      const txn: LedgerTxn = {
        id: options.txnId ?? `env:${sender}:${uid('key')}`, kind: 'envelope', currency: cur, ref: id, ts: T0,
        postings: [{ account: wallet(sender), amount: -total }, { account: envelopeAccount(id), amount: total }],
        fingerprint: `${sender}:${shares.join(',')}`,
      };
      return { envelope, txn };
    },

    /** A pending transfer and the sender's debit into its escrow. */
    transfer(from: string, to: string, amount: number, options: { expiresAt?: number; txnId?: string } = {}): { transfer: Transfer; txn: LedgerTxn } {
      const id = uid('xfer');
      const transfer: Transfer = {
        id, from, to, currency: cur, amount, note: 'for lunch', conv: uid('conv'),
        createdAt: T0, expiresAt: options.expiresAt ?? T0 + 86_400_000, state: 'pending',
      };
      const txn: LedgerTxn = {
        id: options.txnId ?? `xfer:${from}:${uid('key')}`, kind: 'transfer', currency: cur, ref: id, ts: T0,
        postings: [{ account: wallet(from), amount: -amount }, { account: transferAccount(id), amount }],
        fingerprint: `${to}:${amount}`,
      };
      return { transfer, txn };
    },
  };
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** The whole statement of `account`, oldest first, read newest first in small pages (so paging is exercised everywhere). */
export async function fullStatement(store: WalletStore, account: string): Promise<LedgerEntry[]> {
  const newestFirst: LedgerEntry[] = [];
  let before: number | undefined;
  for (;;) {
    const page = await store.statement(account, { ...(before === undefined ? {} : { before }), limit: 3 });
    if (page.length === 0) return newestFirst.reverse();
    // An adapter whose paging does not move on would otherwise loop forever.
    if (before !== undefined && page.some((e) => e.seq >= before!)) throw new Error(`statement of ${account} before ${before} returned seq ${page[0]!.seq}`);
    newestFirst.push(...page);
    before = page[page.length - 1]!.seq;
  }
}

/**
 * What `lantern audit` checks, over everything in the scene's currency: every transaction sums
 * to 0; each account's statement holds exactly its postings, in seq order, with a running
 * balance that ends at balance(); scanBalances agrees; no wallet is negative; the balances sum to
 * 0; every envelope's claims + refund + escrow make its total, with one claim per user and per
 * share, each paid by the grab transaction grabTxn() builds. One assertion listing every problem.
 */
export async function auditScene(t: Test, store: WalletStore, scene: WalletScene): Promise<void> {
  const problems: string[] = [];
  const txns = (await collect(store.scanTxns())).filter((txn) => txn.currency === scene.cur);
  /** account -> txn id -> amount, from the transactions. */
  const postings = new Map<string, Map<string, number>>();
  for (const txn of txns) {
    const sum = txn.postings.reduce((s, p) => s + p.amount, 0);
    if (sum !== 0) problems.push(`txn ${txn.id} sums to ${sum}`);
    for (const { account, amount } of txn.postings) {
      if (!postings.has(account)) postings.set(account, new Map());
      postings.get(account)!.set(txn.id, amount);
    }
  }
  const txnById = new Map(txns.map((txn) => [txn.id, txn]));
  const scanned = new Map((await collect(store.scanBalances())).map(({ account, balance }) => [account, balance]));
  let total = 0;
  for (const [account, byTxn] of postings) {
    const balance = await store.balance(account);
    total += balance;
    if (scanned.get(account) !== balance) problems.push(`${account}: scanBalances says ${scanned.get(account)}, balance() ${balance}`);
    if (account.startsWith('u:') && balance < 0) problems.push(`${account} is negative: ${balance}`);
    let running = 0, lastSeq = 0;
    const seen = new Map<string, number>();
    for (const entry of await fullStatement(store, account)) {
      running += entry.amount;
      if (entry.seq <= lastSeq) problems.push(`${account}: seq ${entry.seq} after ${lastSeq}`);
      if (entry.balance !== running) problems.push(`${account} seq ${entry.seq}: balance ${entry.balance}, running sum ${running}`);
      const txn = txnById.get(entry.txn);
      if (!txn || txn.kind !== entry.kind || txn.ts !== entry.ts || txn.ref !== entry.ref) problems.push(`${account} seq ${entry.seq}: does not match txn ${entry.txn}`);
      seen.set(entry.txn, entry.amount);
      lastSeq = entry.seq;
    }
    if (running !== balance) problems.push(`${account}: entries sum to ${running}, balance is ${balance}`);
    if (JSON.stringify([...seen].sort()) !== JSON.stringify([...byTxn].sort())) problems.push(`${account}: statement and transactions differ`);
  }
  if (total !== 0) problems.push(`balances of ${scene.cur} sum to ${total}`);

  for (const { envelope, claims, refunded } of await collect(store.scanEnvelopes())) {
    if (envelope.currency !== scene.cur) continue;
    const claimed = claims.reduce((s, c) => s + c.amount, 0);
    const escrow = await store.balance(envelopeAccount(envelope.id));
    if (claimed + (refunded ?? 0) + escrow !== envelope.total) problems.push(`${envelope.id}: claimed ${claimed} + refunded ${refunded} + escrow ${escrow} != ${envelope.total}`);
    if (new Set(claims.map((c) => c.user)).size !== claims.length) problems.push(`${envelope.id}: a user claimed twice`);
    if (new Set(claims.map((c) => c.index)).size !== claims.length) problems.push(`${envelope.id}: a share was claimed twice`);
    for (const claim of claims) {
      if (claim.amount !== envelope.shares[claim.index]) problems.push(`${envelope.id}: claim of ${claim.user} is not share ${claim.index}`);
      const expected = grabTxn(envelope, claim);
      if (!isDeepStrictEqual(txnById.get(expected.id), expected)) problems.push(`${envelope.id}: claim of ${claim.user} is not paid by grabTxn()`);
    }
  }
  t.same(problems, [], `ledger audit of ${scene.cur}`);
}
