// The wallet audit over a ledger built through the store port: clean it passes with the right
// totals; doctored (through a store wrapper that alters what the scans and reads return) each
// difference is reported by a line naming what is wrong, with the expected and actual numbers.
import t, { type Test } from 'tap';
import { MemoryWalletStore } from '../../storage/memory/wallet-store.ts';
import { auditWallet } from './audit.ts';
import {
  envelopeAccount, externalAccount, transferAccount, walletAccount,
  type Envelope, type EnvelopeRecord, type LedgerTxn, type Transfer, type WalletStore,
} from './ports.ts';

const T0 = 1_700_000_000_000;
const cny = (user: string) => walletAccount(user, 'CNY');

function topup(key: string, user: string, amount: number, currency = 'CNY'): LedgerTxn {
  return {
    id: `topup:${key}`, kind: 'topup', currency, ts: T0, fingerprint: key,
    postings: [{ account: externalAccount(currency), amount: -amount }, { account: walletAccount(user, currency), amount }],
  };
}

function envelope(id: string, sender: string, shares: number[]): [Envelope, LedgerTxn] {
  const total = shares.reduce((a, b) => a + b, 0);
  return [
    { id, conv: 'c1', sender, currency: 'CNY', total, count: shares.length, mode: 'lucky', greeting: '', shares, createdAt: T0, expiresAt: T0 + 1000 },
    { id: `env:${sender}:${id}`, kind: 'envelope', currency: 'CNY', ref: id, ts: T0, fingerprint: id,
      postings: [{ account: cny(sender), amount: -total }, { account: envelopeAccount(id), amount: total }] },
  ];
}

function transfer(id: string, from: string, to: string, amount: number): [Transfer, LedgerTxn] {
  return [
    { id, from, to, currency: 'CNY', amount, note: '', conv: 'd1', createdAt: T0, expiresAt: T0 + 1000, state: 'pending' },
    { id: `xfer:${from}:${id}`, kind: 'transfer', currency: 'CNY', ref: id, ts: T0, fingerprint: id,
      postings: [{ account: cny(from), amount: -amount }, { account: transferAccount(id), amount }] },
  ];
}

/**
 * CNY: amy 10000 and ben 5000 topped up. E1 (amy: 300/200/500): ben takes share 0, cat share 2,
 * the 200 left is refunded. E2 (ben: 100/100): amy takes share 1, 100 stays in escrow. T1 amy -> ben
 * 250 accepted, T2 ben -> cat 120 returned, T3 cat -> amy 50 pending. USD: dan 700 topped up.
 */
async function cleanLedger(): Promise<MemoryWalletStore> {
  const store = new MemoryWalletStore();
  await store.post(topup('k1', 'amy', 10_000));
  await store.post(topup('k2', 'ben', 5_000));
  await store.post(topup('k3', 'dan', 700, 'USD'));
  await store.openEnvelope(...envelope('E1', 'amy', [300, 200, 500]));
  await store.claimShare('E1', 'ben', 0, T0 + 1);
  await store.claimShare('E1', 'cat', 2, T0 + 2);
  await store.refundEnvelope('E1', T0 + 1000);
  await store.openEnvelope(...envelope('E2', 'ben', [100, 100]));
  await store.claimShare('E2', 'amy', 1, T0 + 3);
  await store.openTransfer(...transfer('T1', 'amy', 'ben', 250));
  await store.settleTransfer('T1', 'accepted', T0 + 4);
  await store.openTransfer(...transfer('T2', 'ben', 'cat', 120));
  await store.settleTransfer('T2', 'returned', T0 + 5);
  await store.openTransfer(...transfer('T3', 'cat', 'amy', 50));
  return store;
}

interface Doctoring {
  txns?: (txns: LedgerTxn[]) => LedgerTxn[];
  balances?: (balances: Map<string, number>) => void;
  envelopes?: (records: EnvelopeRecord[]) => void;
  /** Txn ids the store no longer has (scanTxns and getTxn). */
  lost?: string[];
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** `store` as a damaged database would present it: the scans and getTxn return doctored data. */
function doctored(store: WalletStore, d: Doctoring): WalletStore {
  const lost = new Set(d.lost ?? []);
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'scanTxns') {
        return () => (async function* () {
          const txns = (await collect(target.scanTxns())).filter((txn) => !lost.has(txn.id));
          yield* d.txns ? d.txns(txns) : txns;
        })();
      }
      if (prop === 'getTxn') return async (id: string) => (lost.has(id) ? undefined : target.getTxn(id));
      if (prop === 'scanBalances') {
        return () => (async function* () {
          const balances = new Map((await collect(target.scanBalances())).map(({ account, balance }) => [account, balance]));
          d.balances?.(balances);
          yield* [...balances].map(([account, balance]) => ({ account, balance }));
        })();
      }
      if (prop === 'scanEnvelopes') {
        return () => (async function* () {
          const records = await collect(target.scanEnvelopes());
          d.envelopes?.(records);
          yield* records;
        })();
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
}

/** `store`, except that getTransfer(id) answers `transfer`. */
function withTransfer(store: WalletStore, id: string, transfer: Transfer | undefined): WalletStore {
  return new Proxy(store, {
    get: (target, prop, receiver) => (prop === 'getTransfer'
      ? async (asked: string) => (asked === id ? transfer : target.getTransfer(asked))
      : Reflect.get(target, prop, receiver) as unknown),
  });
}

/** The audit of `store` reports exactly `expected`, in any order (it follows the store's scan order). */
async function sameProblems(t: Test, store: WalletStore, expected: string[], message = 'the problems reported'): Promise<void> {
  t.same((await auditWallet(store)).problems.sort(), [...expected].sort(), message);
}

const envelopeOf = (records: EnvelopeRecord[], id: string) => records.find((r) => r.envelope.id === id)!;

t.test('a clean ledger audits ok, with the totals per currency and the counts', async (t) => {
  const store = await cleanLedger();
  const report = await auditWallet(store);
  t.same(report.problems, []);
  t.equal(report.ok, true);
  t.same(report.totals, {
    // Escrow: E2's unclaimed 100 and pending T3's 50. Wallets: the rest of what came in.
    CNY: { toppedUp: 15_000, wallets: 14_850, escrow: 150 },
    USD: { toppedUp: 700, wallets: 700, escrow: 0 },
  });
  t.same(report.counts, { txns: 14, accounts: 11, envelopes: 2, transfers: 3 });
  t.equal(await store.balance(cny('cat')), 500 + 120 - 120 - 50, 'the scene is what the comment says (cat)');

  const usd = await auditWallet(store, { currency: 'USD' });
  t.same(usd, { ok: true, problems: [], totals: { USD: { toppedUp: 700, wallets: 700, escrow: 0 } }, counts: { txns: 1, accounts: 2, envelopes: 0, transfers: 0 } },
    'one currency only');
});

t.test('a balance off by one cent names the account, both numbers, and the currency sum', async (t) => {
  const store = doctored(await cleanLedger(), { balances: (b) => b.set(cny('ben'), b.get(cny('ben'))! + 1) });
  const report = await auditWallet(store);
  t.equal(report.ok, false);
  const ben = await store.balance(cny('ben'));
  t.same(report.problems, [
    `u:ben:CNY: balance is ${ben + 1}, but its postings sum to ${ben} (difference 1)`,
    'CNY: balances sum to 1, expected 0 (topped up 15000, but wallets 14851 + escrow 150 = 15001)',
  ]);
  t.same(report.totals['CNY'], { toppedUp: 15_000, wallets: 14_851, escrow: 150 }, 'totals are what the store lists');
});

t.test('a claim recorded twice: the user, the share and the escrow sum are reported', async (t) => {
  const store = doctored(await cleanLedger(), { envelopes: (r) => { const e1 = envelopeOf(r, 'E1'); e1.claims.push({ ...e1.claims[0]! }); } });
  await sameProblems(t, store, [
    'envelope E1: claimed 1100 + refunded 200 + escrow 0 = 1300, expected total 1000',
    'envelope E1: user ben claimed twice (shares 0 and 0)',
    'envelope E1: share 0 claimed twice (by ben and ben)',
  ]);
});

t.test('a share given to two users', async (t) => {
  const store = doctored(await cleanLedger(), {
    envelopes: (r) => { const e1 = envelopeOf(r, 'E1'); e1.claims[1] = { ...e1.claims[1]!, index: 0 }; },
  });
  await sameProblems(t, store, [
    'envelope E1: share 0 claimed twice (by ben and cat)',
    'envelope E1: claim of cat is 500, but share 0 is 300',
  ]);
});

t.test('a txn whose postings do not sum to zero', async (t) => {
  const store = doctored(await cleanLedger(), {
    txns: (txns) => txns.map((txn) => (txn.id === 'topup:k2' ? { ...txn, postings: [txn.postings[0]!, { account: cny('ben'), amount: 5_001 }] } : txn)),
  });
  const ben = await store.balance(cny('ben'));
  await sameProblems(t, store, [
    'txn topup:k2 (topup, CNY): postings sum to 1, expected 0',
    `u:ben:CNY: balance is ${ben}, but its postings sum to ${ben + 1} (difference -1)`,
  ]);
});

t.test('malformed postings: a fraction of a cent, a zero, an account posted twice, one posting', async (t) => {
  const store = doctored(await cleanLedger(), {
    txns: (txns) => [...txns,
      { ...topup('x1', 'eve', 0), postings: [{ account: externalAccount('CNY'), amount: -0.5 }, { account: cny('eve'), amount: 0.5 }] },
      { ...topup('x2', 'eve', 0), postings: [{ account: cny('eve'), amount: 0 }, { account: cny('eve'), amount: 0 }] },
      { ...topup('x3', 'eve', 0), postings: [{ account: cny('eve'), amount: 0 }] }],
  });
  await sameProblems(t, store, [
    'txn topup:x1 (topup, CNY): posting to ext:CNY is -0.5, expected a non-zero integer of cents',
    'txn topup:x1 (topup, CNY): posting to u:eve:CNY is 0.5, expected a non-zero integer of cents',
    'txn topup:x2 (topup, CNY): posting to u:eve:CNY is 0, expected a non-zero integer of cents',
    'txn topup:x2 (topup, CNY): account u:eve:CNY is posted twice',
    'txn topup:x2 (topup, CNY): posting to u:eve:CNY is 0, expected a non-zero integer of cents',
    'txn topup:x3 (topup, CNY): has 1 posting(s), expected at least 2',
    'txn topup:x3 (topup, CNY): posting to u:eve:CNY is 0, expected a non-zero integer of cents',
  ]);
});

t.test('a claim whose grab txn is missing', async (t) => {
  const store = doctored(await cleanLedger(), { lost: ['grab:E1:cat'] });
  const cat = await store.balance(cny('cat'));
  await sameProblems(t, store, [
    // Without the txn, the escrow and cat's wallet no longer add up to their postings either.
    'env:E1: balance is 0, but its postings sum to 500 (difference -500)',
    `u:cat:CNY: balance is ${cat}, but its postings sum to ${cat - 500} (difference 500)`,
    'envelope E1: claim of cat (share 2, 500) has no grab txn grab:E1:cat',
  ]);
});

t.test('a grab txn paying another amount than the claim, and one without a claim', async (t) => {
  const store = doctored(await cleanLedger(), {
    envelopes: (r) => { const e2 = envelopeOf(r, 'E2'); e2.claims = []; },
  });
  await sameProblems(t, store, [
    'envelope E2: claimed 0 + refunded 0 + escrow 100 = 100, expected total 200',
    'envelope E2: 1 grab txns in the ledger, but only 0 claims',
  ]);
  const wrong = doctored(await cleanLedger(), {
    envelopes: (r) => { const e2 = envelopeOf(r, 'E2'); e2.envelope.shares = [100, 90]; e2.envelope.total = 190; e2.claims[0]!.amount = 90; },
  });
  await sameProblems(t, wrong, [
    'envelope E2: claim of amy (90): txn grab:E2:amy moves 100 out of env:E2 and 100 into u:amy:CNY, expected 90',
  ], 'the sums agree, the grab txn does not');
});

t.test('shares that do not sum to the total, and a share count that is not the count', async (t) => {
  const store = doctored(await cleanLedger(), { envelopes: (r) => { envelopeOf(r, 'E2').envelope.shares = [150, 100]; } });
  await sameProblems(t, store, ['envelope E2: shares sum to 250, expected total 200']);
  const short = doctored(await cleanLedger(), { envelopes: (r) => { envelopeOf(r, 'E2').envelope.count = 3; } });
  await sameProblems(t, short, ['envelope E2: has 2 shares, expected count 3']);
});

t.test('a refund that does not match the refund txn; a refunded envelope still holding escrow', async (t) => {
  const store = doctored(await cleanLedger(), { envelopes: (r) => { envelopeOf(r, 'E1').refunded = 150; } });
  await sameProblems(t, store, [
    'envelope E1: claimed 800 + refunded 150 + escrow 0 = 950, expected total 1000',
    'envelope E1: refund of 150: txn refund:E1 moves 200 out of env:E1 and 200 into u:amy:CNY, expected 150',
  ]);
  const open = doctored(await cleanLedger(), { envelopes: (r) => { envelopeOf(r, 'E2').refunded = 0; } });
  await sameProblems(t, open, ['envelope E2: refunded, but its escrow holds 100, expected 0']);
  const lost = doctored(await cleanLedger(), { lost: ['refund:E1'] });
  const amy = await lost.balance(cny('amy'));
  await sameProblems(t, lost, [
    'env:E1: balance is 0, but its postings sum to 200 (difference -200)',
    `u:amy:CNY: balance is ${amy}, but its postings sum to ${amy - 200} (difference 200)`,
    'envelope E1: refunded 200, but there is no refund txn refund:E1',
  ]);
});

t.test('negative wallets and escrows, transfers whose escrow is not their state', async (t) => {
  const store = doctored(await cleanLedger(), {
    balances: (b) => {
      // Moves that keep every sum at 0, so only the per-account rules can catch them.
      b.set(cny('dan'), -20); b.set(cny('eve'), 20);
      b.set(transferAccount('T3'), 0); b.set(transferAccount('T1'), 50);
    },
  });
  await sameProblems(t, store, [
    'u:dan:CNY: balance is -20, but no txn posts to it (expected 0)',
    'u:dan:CNY: wallet is negative (-20)',
    'u:eve:CNY: balance is 20, but no txn posts to it (expected 0)',
    'xfer:T1: balance is 50, but its postings sum to 0 (difference 50)',
    'xfer:T3: balance is 0, but its postings sum to 50 (difference -50)',
    'transfer T1 (accepted, 250): escrow holds 50, expected 0',
    'transfer T3 (pending, 50): escrow holds 0, expected 50',
  ]);
  const escrow = doctored(await cleanLedger(), { balances: (b) => { b.set(envelopeAccount('E2'), -100); b.set(cny('ben'), b.get(cny('ben'))! + 200); } });
  const ben = await escrow.balance(cny('ben'));
  await sameProblems(t, escrow, [
    'env:E2: balance is -100, but its postings sum to 100 (difference -200)',
    'env:E2: escrow is negative (-100)',
    `u:ben:CNY: balance is ${ben + 200}, but its postings sum to ${ben} (difference 200)`,
    'envelope E2: claimed 100 + refunded 0 + escrow -100 = 0, expected total 200',
  ]);
});

t.test('transfers: a missing settle txn, a settle txn of the other way, a transfer the store lost', async (t) => {
  const store = doctored(await cleanLedger(), { lost: ['accept:T1'], balances: (b) => { b.set(cny('ben'), b.get(cny('ben'))! - 250); b.set(transferAccount('T1'), 250); } });
  await sameProblems(t, store, ['transfer T1 (accepted, 250): escrow holds 250, expected 0', 'transfer T1 (accepted, 250): no settle txn accept:T1']);
  const clean = await cleanLedger();
  const t2 = (await clean.getTransfer('T2'))!;
  await sameProblems(t, withTransfer(clean, 'T2', { ...t2, state: 'accepted' }), [
    'transfer T2 (accepted, 120): no settle txn accept:T2',
    'transfer T2 (accepted, 120): settle txn return:T2 exists, but the transfer is accepted',
  ]);
  await sameProblems(t, withTransfer(clean, 'T3', undefined), [
    'transfer T3: txns refer to it, but the store has no such transfer',
    'xfer:T3: escrow holds 50, but the store has no envelope or transfer for it',
  ]);
});

t.test('problems beyond maxProblems are counted in one last line', async (t) => {
  const store = doctored(await cleanLedger(), { balances: (b) => { for (const account of b.keys()) b.set(account, b.get(account)! + 1); } });
  const report = await auditWallet(store, { maxProblems: 3 });
  t.equal(report.problems.length, 4);
  t.match(report.problems[3], /^\.\.\. and \d+ more problems not listed$/);
  t.equal(report.ok, false);
});
