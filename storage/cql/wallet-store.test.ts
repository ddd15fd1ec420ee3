// The WalletStore contract on the run's shared Cassandra, plus what only the CQL adapter has:
// claims grouped into few LWTs, operations interrupted after their commit point and finished by
// whoever comes next, two processes racing, the expiry index, paging, driver error mapping.
// One fresh keyspace for the file, dropped at the end. Statements span partitions (bucketSize 2)
// and every list read pages (fetchSize 3).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import cassandra from 'cassandra-driver';
import type { Client, types } from 'cassandra-driver';
import { StoreUnavailableError } from '../../engine/ports.ts';
import {
  EnvelopeClosedError, InsufficientFundsError, ShareTakenError, envelopeAccount, grabTxn, grabTxnId, refundTxnId, settleTxnId, transferAccount,
  type WalletStore,
} from '../../engine/wallet/ports.ts';
import { freePort, sharedCassandra } from '../../test/support/infra.ts';
import { failure, uid } from '../contract/fixtures.ts';
import { T0, auditScene, collect, walletScene } from '../contract/wallet-fixtures.ts';
import { walletStoreContract } from '../contract/wallet-store.contract.ts';
import { createCqlClient } from './client.ts';
import { migrate } from './schema.ts';
import { hourOf } from './wallet-rows.ts';
import { CqlWalletStore, type CqlWalletStoreOptions } from './wallet-store.ts';

const BUCKET = 2;
const REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}";
const endpoint = await sharedCassandra();
const client = createCqlClient(endpoint);
const keyspace = `lantern_wallet_${randomBytes(4).toString('hex')}`;
await migrate(client, keyspace, { replication: REPLICATION });
t.teardown(async () => {
  await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  await client.shutdown();
});

const open = (options: Partial<CqlWalletStoreOptions> = {}) =>
  CqlWalletStore.open({ client, keyspace, bucketSize: BUCKET, fetchSize: 3, ...options });

const contractStart = Date.now();
t.test('contract', async (t) => {
  walletStoreContract(t, 'cql', async () => {
    const store = await open();
    return { store, cleanup: () => store.close() };
  });
});
t.test('contract duration', async (t) => {
  t.comment(`contract suite: ${Date.now() - contractStart} ms`);
  t.pass();
});

// ---- helpers ---------------------------------------------------------------------------------

const injected = () => Promise.reject(new cassandra.errors.OperationTimedOutError('injected: connection lost'));

/** The shared client, except that statements (and batches, as 'BATCH <queries>') for which `fails` holds time out. */
function failingClient(fails: (query: string) => boolean, base: Client = client): Client {
  return new Proxy(base, {
    get(target, prop, receiver) {
      if (prop === 'execute') return (query: string, ...rest: unknown[]) => fails(query) ? injected() : (target.execute as (...a: unknown[]) => unknown).call(target, query, ...rest);
      if (prop === 'batch') {
        return (queries: Array<{ query: string }>, ...rest: unknown[]) => fails(`BATCH ${queries.map((q) => q.query).join('; ')}`)
          ? injected() : (target.batch as (...a: unknown[]) => unknown).call(target, queries, ...rest);
      }
      return Reflect.get(target, prop, receiver);
    },
  });
}

/** A client that "dies" right after the first applied LWT matching `commitPoint`: every later statement fails. */
function crashingAfter(commitPoint: RegExp): Client {
  let passed = false;
  const mark = (query: string, result: Promise<types.ResultSet>) => {
    if (commitPoint.test(query)) void result.then((rs) => { if (rs.wasApplied()) passed = true; }, () => undefined);
    return result;
  };
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === 'execute') return (query: string, ...rest: unknown[]) => passed ? injected() : mark(query, (target.execute as (...a: unknown[]) => Promise<types.ResultSet>).call(target, query, ...rest));
      if (prop === 'batch') {
        return (queries: Array<{ query: string }>, ...rest: unknown[]) => passed ? injected()
          : mark(queries.map((q) => q.query).join('; '), (target.batch as (...a: unknown[]) => Promise<types.ResultSet>).call(target, queries, ...rest));
      }
      return Reflect.get(target, prop, receiver);
    },
  });
}

/** The shared client, counting the LWTs it runs by kind. */
function countingClient(): { client: Client; lwts: { claimBatches: number; accountCas: number } } {
  const lwts = { claimBatches: 0, accountCas: 0 };
  const proxy = new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === 'execute') {
        return (query: string, ...rest: unknown[]) => {
          if (/wallet_accounts .*(IF version|IF NOT EXISTS)/.test(query)) lwts.accountCas++;
          return (target.execute as (...a: unknown[]) => unknown).call(target, query, ...rest);
        };
      }
      if (prop === 'batch') {
        return (queries: Array<{ query: string }>, ...rest: unknown[]) => {
          if (queries.some((q) => /IF NOT EXISTS/.test(q.query))) lwts.claimBatches++;
          return (target.batch as (...a: unknown[]) => unknown).call(target, queries, ...rest);
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
  return { client: proxy, lwts };
}

/** A funded sender and an open envelope with these shares, in a scene of its own. */
async function envelopeScene(store: WalletStore, shares: number[], options: { expiresAt?: number } = {}) {
  const s = walletScene(), sender = uid('u');
  await store.post(s.topup(sender, shares.reduce((a, b) => a + b, 0)));
  const { envelope, txn } = s.envelope(sender, shares, options);
  await store.openEnvelope(envelope, txn);
  return { s, sender, envelope };
}

const rawCount = async (query: string, params: unknown[]) => (await client.execute(query, params, { prepare: true })).rows.length;

// ---- the grab path ---------------------------------------------------------------------------

t.test('cql: a burst of grabs on one envelope shares a few LWTs and no other; a read folds the credit into the wallet', async (t) => {
  const counting = countingClient();
  const store = await open({ client: counting.client });
  const count = 64;
  const { s, envelope } = await envelopeScene(store, Array.from({ length: count }, (_, i) => i + 1));
  const users = Array.from({ length: count }, () => uid('u'));
  const before = { ...counting.lwts };
  const start = process.hrtime.bigint();
  // As the grab decider hands them out: distinct users, distinct indices, all at once.
  const claims = await Promise.all(users.map((user, i) => store.claimShare(envelope.id, user, i, T0 + i)));
  const burstMs = Number(process.hrtime.bigint() - start) / 1e6;
  t.ok(claims.every((c, i) => c?.applied && c.value.amount === i + 1), 'every grab applied with its share');
  const batches = counting.lwts.claimBatches - before.claimBatches;
  t.ok(batches <= Math.ceil((count - 1) / 16) + 1, `${batches} claim LWTs for ${count} concurrent grabs (batches of up to 16)`);
  t.equal(counting.lwts.accountCas - before.accountCas, 0, 'no compare-and-set on a wallet: each credit is a plain row');
  t.same(await Promise.all(users.map((u) => store.balance(s.wallet(u)))), users.map((_, i) => i + 1), 'each grabber paid their share');
  t.equal(counting.lwts.accountCas - before.accountCas, count, 'the balance reads folded each credit, one compare-and-set per wallet');
  t.same(await Promise.all(users.map((u) => store.balance(s.wallet(u)))), users.map((_, i) => i + 1), 'folded once');
  t.equal(counting.lwts.accountCas - before.accountCas, count, 'reading again folds nothing');
  t.same((await store.getEnvelope(envelope.id))!.claims.map((c) => c.user), users, 'claims of one batch keep their order');

  // One at a time: the latency a single grabber sees.
  const single = await envelopeScene(store, Array.from({ length: 20 }, () => 5));
  const lone = Array.from({ length: 20 }, () => uid('u'));
  const started = process.hrtime.bigint();
  for (const [i, user] of lone.entries()) await store.claimShare(single.envelope.id, user, i, T0);
  const loneMs = Number(process.hrtime.bigint() - started) / 1e6;
  t.comment(`claimShare latency: ${(loneMs / lone.length).toFixed(1)} ms mean over ${lone.length} sequential grabs; ` +
    `a burst of ${count} concurrent grabs took ${burstMs.toFixed(0)} ms (${(burstMs / count).toFixed(1)} ms per grab, ${batches} claim LWTs)`);
  await auditScene(t, store, s);
  await auditScene(t, store, single.s);
});

t.test("cql: a claim interrupted after its LWT is finished by the grabber's retry, by a later reader, or by the refund", async (t) => {
  const healthy = await open();
  const { s, envelope } = await envelopeScene(healthy, [10, 20, 30]);
  const [ben, cat, dan] = [uid('u'), uid('u'), uid('u')];
  const crashAfterClaim = () => open({ client: crashingAfter(/wallet_envelopes .*IF NOT EXISTS/) });

  const error = await failure((await crashAfterClaim()).claimShare(envelope.id, ben, 1, T0 + 1));
  t.ok(error instanceof StoreUnavailableError, 'the grabber hears that the store is unavailable');
  const claim = { user: ben, index: 1, amount: 20, ts: T0 + 1 };
  t.same((await healthy.getEnvelope(envelope.id))?.claims, [claim], 'the claim is committed');
  t.equal(await healthy.balance(envelopeAccount(envelope.id)), 40, 'the escrow already paid it out');
  t.equal(await healthy.balance(s.wallet(ben)), 0, 'the wallet is not credited yet');
  t.same(await healthy.claimShare(envelope.id, ben, 2, T0 + 5), { value: claim, applied: false }, 'the retry gets the claim back');
  t.equal(await healthy.balance(s.wallet(ben)), 20, 'and the credit is applied');
  t.same(await healthy.getTxn(grabTxnId(envelope.id, ben)), grabTxn(envelope, claim));
  t.same(await healthy.claimShare(envelope.id, ben, 1, T0 + 6), { value: claim, applied: false });
  t.equal(await healthy.balance(s.wallet(ben)), 20, 'paid once');

  await failure((await crashAfterClaim()).claimShare(envelope.id, cat, 0, T0 + 2));
  await healthy.getEnvelope(envelope.id);
  t.equal(await healthy.balance(s.wallet(cat)), 0, 'a reader leaves a claim younger than inFlightMs to its writer');
  await (await open({ inFlightMs: 0 })).getEnvelope(envelope.id);
  t.equal(await healthy.balance(s.wallet(cat)), 10, 'an older one it finishes');

  await failure((await crashAfterClaim()).claimShare(envelope.id, dan, 2, T0 + 3));
  const refund = await healthy.refundEnvelope(envelope.id, T0 + 9);
  t.equal(refund?.value.refunded, 0, 'fully claimed');
  t.equal(await healthy.balance(s.wallet(dan)), 30, 'the refund settled the interrupted claim first');
  await auditScene(t, healthy, s);
});

t.test('cql: wallet credits wait as rows until a compare-and-set folds them: debits see them, a replay folds nothing', async (t) => {
  const store = await open();
  const other = createCqlClient(endpoint);
  t.teardown(() => other.shutdown());
  const elsewhere = await open({ client: other });
  const { s, envelope } = await envelopeScene(store, [30, 40, 50]);
  const [amy, ben] = [uid('u'), uid('u')];
  const credits = `SELECT txn FROM ${keyspace}.wallet_credits WHERE account = ?`;
  await store.claimShare(envelope.id, amy, 0, T0 + 1);
  const topup = s.topup(amy, 5);
  await store.post(topup);
  t.equal(await rawCount(credits, [s.wallet(amy)]), 2, 'the grab and the top-up credits wait as rows');
  t.equal(await rawCount(`SELECT account FROM ${keyspace}.wallet_accounts WHERE account = ?`, [s.wallet(amy)]), 0, 'the wallet has no row yet');

  const pay = s.payment(amy, ben, 35);
  t.same(await store.post(pay), { value: pay, applied: true }, 'a debit is decided on the credits written before it');
  t.equal(await rawCount(credits, [s.wallet(amy)]), 0, 'its compare-and-set folded them');
  t.same((await store.statement(s.wallet(amy), { limit: 10 })).map((e) => [e.seq, e.txn, e.amount, e.balance]), [
    [3, pay.id, -35, 0],
    [2, topup.id, 5, 35],
    [1, grabTxnId(envelope.id, amy), 30, 30],
  ], 'folded in the order they were written, each with the balance after it; the debit after them');
  t.ok(await failure(store.post(s.payment(amy, ben, 1))) instanceof InsufficientFundsError, 'and nothing is left');

  // A late replay of a folded credit (a roll-forward that raced the fold) writes its row again.
  const grab = grabTxn(envelope, { user: amy, index: 0, amount: 30, ts: T0 + 1 });
  const replay = `INSERT INTO ${keyspace}.wallet_credits (account, txn, instance, kind, amount, ref, ts) VALUES (?, ?, 'derived', 'grab', 30, ?, ?)`;
  await client.execute(replay, [s.wallet(amy), grab.id, envelope.id, T0 + 1], { prepare: true });
  t.equal(await store.balance(s.wallet(amy)), 0, 'a replayed credit is not folded twice');
  t.equal(await rawCount(credits, [s.wallet(amy)]), 0, 'its row is deleted');

  // Two processes fold the same credits at once: one compare-and-set wins, the other finds them folded.
  await Promise.all([1, 2].map((i) => store.claimShare(envelope.id, uid('u'), i, T0 + 2)));
  const [cat, dan] = (await store.getEnvelope(envelope.id))!.claims.slice(1).map((c) => c.user);
  await Promise.all([cat, dan].map((u) => store.post(s.topup(u!, 7))));
  const folds = await Promise.all([store, elsewhere, store, elsewhere].flatMap((w) => [w.balance(s.wallet(cat!)), w.statement(s.wallet(dan!), { limit: 5 })]));
  t.same(folds.filter((_, i) => i % 2 === 0), [47, 47, 47, 47], 'every reader sees both credits');
  t.same((await store.statement(s.wallet(dan!), { limit: 5 })).map((e) => [e.seq, e.balance]), [[2, 57], [1, 50]], 'folded once, in order');
  await auditScene(t, store, s);
});

// ---- transactions interrupted ----------------------------------------------------------------

t.test('cql: a payment interrupted after its debit is committed, shown at once, and finished by a reader, a retry or a sweep', async (t) => {
  const healthy = await open();
  const s = walletScene(), amy = uid('u'), ben = uid('u');
  await healthy.post(s.topup(amy, 100));
  t.equal(await healthy.balance(s.wallet(amy)), 100, 'a read folds the top-up into the account row');
  const pay = s.payment(amy, ben, 30);
  const crashing = await open({ client: crashingAfter(/wallet_accounts .*IF version/) });
  t.ok(await failure(crashing.post(pay)) instanceof StoreUnavailableError, 'the writer hears that the store is unavailable');
  t.equal(await healthy.balance(s.wallet(amy)), 70, 'the debit, the commit point, is applied');
  t.same(await healthy.statement(s.wallet(amy), { limit: 1 }), [{ seq: 2, txn: pay.id, kind: 'transfer', amount: -30, balance: 70, ts: T0 }],
    'its statement line shows before it is written (from the account row)');
  t.equal(await rawCount(`SELECT seq FROM ${keyspace}.wallet_entries WHERE account = ? AND bucket = 1 AND seq = 2`, [s.wallet(amy)]), 0, '(it is not written)');
  t.equal(await healthy.balance(s.wallet(ben)), 0, 'the credit is not applied yet');
  t.same(await healthy.getTxn(pay.id), pay, 'a reader finds it committed and finishes it');
  t.equal(await healthy.balance(s.wallet(ben)), 30);
  t.same(await healthy.post(pay), { value: pay, applied: false }, "the writer's retry moves nothing");
  t.equal(await healthy.balance(s.wallet(ben)), 30);

  const again = s.payment(amy, ben, 20);
  await failure((await open({ client: crashingAfter(/wallet_accounts .*IF version/) })).post(again));
  t.same(await healthy.post(again), { value: again, applied: false }, 'a retry finishes an interrupted payment too');
  t.same([await healthy.balance(s.wallet(amy)), await healthy.balance(s.wallet(ben))], [50, 50]);

  const forgotten = s.payment(amy, ben, 10);
  await failure((await open({ client: crashingAfter(/wallet_accounts .*IF version/) })).post(forgotten));
  const worker = await open({ inFlightMs: 0 });
  await worker.post(s.topup(amy, 1));
  await worker.balance(s.wallet(amy));
  t.equal(await healthy.balance(s.wallet(ben)), 50, 'the next compare-and-set on the account (a read folding the top-up) writes the line, not the rest of the txn');
  await worker.dueTransfers(0, 1);
  t.equal(await healthy.balance(s.wallet(ben)), 60, "that process's next sweep finishes it (its client never retried)");
  await auditScene(t, healthy, s);
});

t.test('cql: an attempt interrupted before its debit is decided by a retry or, once old, by a reader', async (t) => {
  const healthy = await open();
  const s = walletScene(), amy = uid('u'), ben = uid('u');
  await healthy.post(s.topup(amy, 50));
  const crashAfterInsert = () => open({ client: crashingAfter(/INSERT INTO \w+\.wallet_txns .*IF NOT EXISTS/) });
  const tooMuch = s.payment(amy, ben, 80);
  t.ok(await failure((await crashAfterInsert()).post(tooMuch)) instanceof StoreUnavailableError);
  const held = `SELECT id FROM ${keyspace}.wallet_txns WHERE id = ?`;
  t.equal(await rawCount(held, [tooMuch.id]), 1, 'the attempt holds the id');
  t.equal(await healthy.getTxn(tooMuch.id), undefined, 'not committed; a reader does not decide an attempt that may still be in flight');
  t.equal(await rawCount(held, [tooMuch.id]), 1, 'it still holds the id');
  t.equal(await (await open({ inFlightMs: 0 })).getTxn(tooMuch.id), undefined, 'once old, a reader decides it: refused');
  t.equal(await rawCount(held, [tooMuch.id]), 0, 'which frees the id');
  t.equal(await healthy.balance(s.wallet(amy)), 50, 'nothing moved');
  await healthy.post(s.topup(amy, 30));
  t.same(await healthy.post(tooMuch), { value: tooMuch, applied: true }, 'the same request later goes through');

  const back = s.payment(ben, amy, 5);
  await failure((await crashAfterInsert()).post(back));
  t.same(await healthy.post(back), { value: back, applied: false }, "the writer's retry decides and finishes its interrupted attempt");
  t.same([await healthy.balance(s.wallet(amy)), await healthy.balance(s.wallet(ben))], [5, 75]);
  await auditScene(t, healthy, s);
});

t.test('cql: a refund interrupted after the close is shown at once and finished by the next sweep', async (t) => {
  const healthy = await open();
  const expiresAt = -T0 - Math.floor(Math.random() * T0);
  const { s, sender, envelope } = await envelopeScene(healthy, [10, 20], { expiresAt });
  const ben = uid('u');
  const claim = (await healthy.claimShare(envelope.id, ben, 0, T0))!.value;
  const crashing = await open({ client: crashingAfter(/SET closed_at/) });
  t.ok(await failure(crashing.refundEnvelope(envelope.id, T0 + 5)) instanceof StoreUnavailableError);
  t.ok(await failure(healthy.claimShare(envelope.id, uid('u'), 1, T0 + 6)) instanceof EnvelopeClosedError, 'no claim commits after the close');
  t.same(await healthy.getEnvelope(envelope.id), { envelope, claims: [claim], refunded: 20 }, 'readers see it refunded');
  t.equal(await healthy.balance(s.wallet(sender)), 0, 'the sender is not paid back yet');
  t.same(await healthy.dueEnvelopes(expiresAt, 10), [], 'not due any more: the sweep finished the refund');
  t.equal(await healthy.balance(s.wallet(sender)), 20, 'paid back');
  t.equal((await healthy.getTxn(refundTxnId(envelope.id)))?.ts, T0 + 5, "at the close's time");
  t.equal(await rawCount(`SELECT id FROM ${keyspace}.wallet_due WHERE kind = 'env' AND hour = ?`, [hourOf(expiresAt)]), 0, 'its due row is deleted');
  t.same(await healthy.refundEnvelope(envelope.id, T0 + 9), { value: { envelope, claims: [claim], refunded: 20 }, applied: false });
  await auditScene(t, healthy, s);
});

t.test('cql: a settlement interrupted after its LWT is finished by the next sweep', async (t) => {
  const healthy = await open();
  const s = walletScene(), amy = uid('u'), ben = uid('u');
  const expiresAt = -T0 - Math.floor(Math.random() * T0);
  await healthy.post(s.topup(amy, 40));
  const { transfer, txn } = s.transfer(amy, ben, 40, { expiresAt });
  await healthy.openTransfer(transfer, txn);
  const crashing = await open({ client: crashingAfter(/wallet_transfers SET state/) });
  t.ok(await failure(crashing.settleTransfer(transfer.id, 'accepted', T0 + 3)) instanceof StoreUnavailableError);
  t.same(await healthy.getTransfer(transfer.id), { ...transfer, state: 'accepted', settledAt: T0 + 3 }, 'accepted: the commit point was passed');
  t.equal(await healthy.balance(transferAccount(transfer.id)), 0, 'the escrow paid out');
  t.equal(await healthy.balance(s.wallet(ben)), 0, 'the recipient is not credited yet');
  t.same(await healthy.dueTransfers(expiresAt, 10), [], 'not due: the sweep finished it instead');
  t.equal(await healthy.balance(s.wallet(ben)), 40);
  t.equal((await healthy.getTxn(settleTxnId(transfer.id, 'accepted')))?.ts, T0 + 3);
  t.match(await failure(healthy.settleTransfer(transfer.id, 'returned', T0 + 4)), { name: 'TransferSettledError', state: 'accepted' });
  await auditScene(t, healthy, s);
});

// ---- two processes ---------------------------------------------------------------------------

t.test('cql: two processes racing: an id applies once, debits never overdraw, a share and a user claim once', async (t) => {
  const otherClient = createCqlClient(endpoint);
  t.teardown(() => otherClient.shutdown());
  const [a, b] = [await open(), await open({ client: otherClient })];
  const s = walletScene(), amy = uid('u'), ben = uid('u');
  const topup = s.topup(amy, 100);
  const posts = await Promise.all([a, b, a, b, a, b].map((store) => store.post(topup)));
  t.equal(posts.filter((p) => p.applied).length, 1, 'one of six posts of one id applies');
  const debits = await Promise.allSettled(Array.from({ length: 14 }, (_, i) => [a, b][i % 2]!.post(s.payment(amy, ben, 10))));
  t.equal(debits.filter((d) => d.status === 'fulfilled').length, 10, '10 of 14 debits of 10 fit in 100');
  t.ok(debits.every((d) => d.status === 'fulfilled' || d.reason instanceof InsufficientFundsError), 'the rest are refused');
  t.same([await a.balance(s.wallet(amy)), await b.balance(s.wallet(ben))], [0, 100]);

  const { envelope, txn } = s.envelope(ben, [10, 20, 30, 40]);
  await a.openEnvelope(envelope, txn);
  const users = Array.from({ length: 12 }, () => uid('u'));
  const calls = users.flatMap((user, i) => [a.claimShare(envelope.id, user, i % 4, T0), b.claimShare(envelope.id, user, (i + 1) % 4, T0)]);
  const results = await Promise.allSettled(calls);
  t.equal(results.filter((r) => r.status === 'fulfilled' && r.value?.applied).length, 4, 'four claims applied');
  const { claims } = (await b.getEnvelope(envelope.id))!;
  t.same(claims.map((c) => c.index).sort(), [0, 1, 2, 3], 'each share once');
  t.equal(new Set(claims.map((c) => c.user)).size, 4, 'each user once');
  t.equal(await a.balance(envelopeAccount(envelope.id)), 0);
  await auditScene(t, a, s);
});

t.test('cql: a claim made through another process comes back first, where this one knows the share taken or the envelope closed', async (t) => {
  const otherClient = createCqlClient(endpoint);
  t.teardown(() => otherClient.shutdown());
  const [a, b] = [await open(), await open({ client: otherClient })];
  const { s, envelope } = await envelopeScene(a, [10, 20, 30]);
  const [amy, ben, cat, dan] = [uid('u'), uid('u'), uid('u'), uid('u')];
  const amys = (await a.claimShare(envelope.id, amy, 0, T0))!.value;
  const dans = (await a.claimShare(envelope.id, dan, 2, T0))!.value;
  await b.claimShare(envelope.id, ben, 1, T0);
  t.same(await b.claimShare(envelope.id, amy, 1, T0 + 1), { value: amys, applied: false }, "amy's own claim, not ShareTakenError");
  t.match(await failure(b.claimShare(envelope.id, cat, 1, T0 + 1)), ShareTakenError, 'cat has none: the share is taken');
  await b.refundEnvelope(envelope.id, T0 + 2);
  t.same(await b.claimShare(envelope.id, dan, 0, T0 + 3), { value: dans, applied: false }, "dan's own claim, not EnvelopeClosedError");
  t.match(await failure(b.claimShare(envelope.id, cat, 0, T0 + 3)), EnvelopeClosedError, 'cat has none: closed');
  await auditScene(t, b, s);
});

// ---- storage layout --------------------------------------------------------------------------

t.test('cql: statement lines are bucketed by seq; a page reads across partitions', async (t) => {
  const store = await open();
  const s = walletScene(), amy = uid('u');
  for (const amount of [1, 2, 3, 4, 5]) await store.post(s.topup(amy, amount));
  t.equal(await store.balance(s.wallet(amy)), 15, 'the read folds the five credits into the wallet');
  const perBucket = [];
  for (let bucket = 0; bucket <= 3; bucket++) {
    const rs = await client.execute(`SELECT seq FROM ${keyspace}.wallet_entries WHERE account = ? AND bucket = ?`, [s.wallet(amy), bucket], { prepare: true });
    perBucket.push(rs.rows.map((r) => Number(r['seq'])));
  }
  t.same(perBucket, [[1], [3, 2], [5, 4], []], 'bucket = floor(seq / bucketSize), newest first within one');
  t.same((await store.statement(s.wallet(amy), { limit: 4 })).map((e) => e.seq), [5, 4, 3, 2], 'one page over three partitions');
  t.same((await store.statement(s.wallet(amy), { before: 5, limit: 10 })).map((e) => [e.seq, e.balance]), [[4, 10], [3, 6], [2, 3], [1, 1]]);
});

t.test('cql: the expiry index: read page by page in order, rows deleted when settled, an empty past hour dropped', async (t) => {
  const store = await open();
  const s = walletScene(), amy = uid('u');
  await store.post(s.topup(amy, 1000));
  const HOUR = 3_600_000;
  const hour = hourOf(-T0) - Math.floor(Math.random() * 1e6); // an hour no other test uses
  const ids: string[] = [];
  for (const offset of [4, 0, 6, 2, 1, 5, 3]) {
    const e = s.envelope(amy, [10], { expiresAt: hour * HOUR + offset * 1000 });
    await store.openEnvelope(e.envelope, e.txn);
    ids[offset] = e.envelope.id;
  }
  const endOfHour = (hour + 1) * HOUR - 1;
  t.same(await store.dueEnvelopes(endOfHour, 10), ids, 'seven rows, three per page, soonest first');
  t.same(await store.dueEnvelopes(hour * HOUR + 2000, 10), ids.slice(0, 3), 'only those due');
  const dueRows = `SELECT id FROM ${keyspace}.wallet_due WHERE kind = 'env' AND hour = ?`;
  const marker = `SELECT hour FROM ${keyspace}.wallet_due_hours WHERE kind = 'env' AND hour = ?`;
  t.equal(await rawCount(dueRows, [hour]), 7);
  t.equal(await rawCount(marker, [hour]), 1, 'the hour is listed');
  for (const id of ids.slice(0, 5)) await store.refundEnvelope(id, T0);
  t.equal(await rawCount(dueRows, [hour]), 2, 'refunded envelopes leave the index');
  t.same(await store.dueEnvelopes(endOfHour, 10), ids.slice(5), 'the rest');
  t.equal(await rawCount(marker, [hour]), 1, 'an hour with rows stays listed');
  for (const id of ids.slice(5)) await store.refundEnvelope(id, T0);
  t.same(await store.dueEnvelopes(endOfHour, 10), []);
  t.equal(await rawCount(marker, [hour]), 0, 'an empty hour long past is dropped from the list');
  await auditScene(t, store, s);
});

t.test('cql: scans page through more rows than one fetch', async (t) => {
  const store = await open({ fetchSize: 2 });
  const s = walletScene(), amy = uid('u');
  const topups = Array.from({ length: 9 }, (_, i) => s.topup(amy, i + 1));
  for (const txn of topups) await store.post(txn);
  t.same((await collect(store.scanTxns())).filter((x) => x.currency === s.cur).map((x) => x.id).sort(), topups.map((x) => x.id).sort());
  const balances = (await collect(store.scanBalances())).filter((b) => b.account === s.wallet(amy) || b.account === s.ext);
  t.same(balances.sort((x, y) => x.balance - y.balance), [{ account: s.ext, balance: -45 }, { account: s.wallet(amy), balance: 45 }]);
});

// ---- errors ----------------------------------------------------------------------------------

t.test('cql: a keyspace keeps its wallet bucket size; driver failures become StoreUnavailableError', async (t) => {
  t.match(await failure(open({ bucketSize: 1000 })), { message: /created with wallet bucketSize 2, not 1000/ });
  const port = await freePort();
  const dead = createCqlClient({ contactPoints: [`127.0.0.1:${port}`], localDataCenter: endpoint.localDataCenter, connectTimeoutMs: 1000 });
  t.teardown(() => dead.shutdown());
  const unreachable = await failure(CqlWalletStore.open({ client: dead, keyspace }));
  t.ok(unreachable instanceof StoreUnavailableError, 'open against a closed port');
  t.match(unreachable, { message: /lantern migrate/ });

  const s = walletScene();
  const broken = await open({ client: failingClient((query) => /wallet_accounts/.test(query)) });
  t.ok(await failure(broken.balance(s.wallet(uid('u')))) instanceof StoreUnavailableError, 'a timed-out read');
  const error = await failure(broken.post(s.topup(uid('u'), 5)));
  t.ok(error instanceof StoreUnavailableError, 'a timed-out write');
  t.match(error, { message: /may or may not have been applied/ });
  const noClaims = await open({ client: failingClient((query) => query.startsWith('BATCH')) });
  const { envelope } = await envelopeScene(await open(), [5]);
  t.ok(await failure(noClaims.claimShare(envelope.id, uid('u'), 0, T0)) instanceof StoreUnavailableError, 'a timed-out claim batch');

  const closed = await open();
  await closed.close();
  t.ok(await failure(closed.getTxn('x')) instanceof StoreUnavailableError, 'a closed store');
  t.ok(await failure(collect(closed.scanTxns())) instanceof StoreUnavailableError, 'a closed store scans nothing');
});
