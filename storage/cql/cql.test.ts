// The ChatStore contract on the run's shared Cassandra, plus what only the CQL adapter has:
// migrations, message buckets, the LWT commit point and its roll-forward, driver error mapping.
// One fresh keyspace for the file (random suffix), dropped at the end. The contract runs with
// bucketSize 3, so its timelines already span several partitions.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import cassandra from 'cassandra-driver';
import type { Client } from 'cassandra-driver';
import { HeadConflictError, StoreUnavailableError, type ChatStore } from '../../engine/ports.ts';
import { freePort, sharedCassandra } from '../../test/support/infra.ts';
import { chatStoreContract } from '../contract/chat-store.contract.ts';
import { appendCommit, createCommit, failure, member, seqs, textMessage, uid } from '../contract/fixtures.ts';
import { CqlChatStore } from './chat-store.ts';
import { createCqlClient } from './client.ts';
import { MIGRATIONS, migrate } from './schema.ts';

const BUCKET = 3;
const REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}";
const endpoint = await sharedCassandra();
const client = createCqlClient(endpoint);
const keyspace = `lantern_test_${randomBytes(4).toString('hex')}`;
const started = Date.now();
const first = await migrate(client, keyspace, { replication: REPLICATION });
t.comment(`migrate of a fresh keyspace: ${Date.now() - started} ms`);
t.teardown(async () => {
  await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  await client.shutdown();
});

const open = (options: { bucketSize?: number; client?: Client } = {}) =>
  CqlChatStore.open({ client: options.client ?? client, keyspace, bucketSize: options.bucketSize ?? BUCKET });

async function harness() {
  let store: ChatStore = await open();
  return {
    store,
    reopen: async () => { await store.close(); store = await open(); return store; },
    cleanup: () => store.close(),
  };
}

const contractStart = Date.now();
t.test('contract', async (t) => {
  chatStoreContract(t, 'cql', harness);
});
t.test('contract duration', async (t) => {
  t.comment(`contract suite: ${Date.now() - contractStart} ms`);
  t.pass();
});

t.test('cql: migrate applies every migration once and is idempotent', async (t) => {
  t.same(first.applied, MIGRATIONS.map((m) => m.id), 'a fresh keyspace gets every migration');
  const [again, concurrent] = await Promise.all([
    migrate(client, keyspace, { replication: REPLICATION }),
    migrate(client, keyspace, { replication: REPLICATION }),
  ]);
  t.same(again.applied, [], 'nothing left to apply');
  t.same(concurrent.applied, [], 'a concurrent run applies nothing either');
  t.same(again.alreadyApplied, MIGRATIONS.map((m) => m.id));
  const rows = await client.execute(`SELECT id FROM ${keyspace}.schema_migrations`);
  // Rows come back in token order: sort them (MIGRATIONS is in id order).
  t.same(rows.rows.map((r) => String(r['id'])).sort(), MIGRATIONS.map((m) => m.id), 'each id recorded once');
  await t.rejects(migrate(client, 'Bad-Name', { replication: REPLICATION }), /keyspace "Bad-Name" must match/);
});

t.test('cql: timelines page across bucket boundaries', async (t) => {
  const store = await open();
  const conv = uid('conv'), owner = uid('u');
  await store.commit(createCommit(conv, owner, 4));
  await store.commit(appendCommit(conv, 4, owner, 7)); // seqs 5..11: buckets 1, 2, 3
  const all = Array.from({ length: 11 }, (_, i) => i + 1);
  t.same(seqs(await store.readAfter(conv, 0, 100)), all, 'everything, in order, across four partitions');
  t.same(seqs(await store.readAfter(conv, 1, 5)), [2, 3, 4, 5, 6], 'a page that starts and ends mid-bucket');
  t.same(seqs(await store.readBefore(conv, 11, 4)), [7, 8, 9, 10], 'readBefore across a boundary');
  t.same(seqs(await store.readBefore(conv, 3, 4)), [1, 2]);
  t.equal((await store.getMessage(conv, 9))?.seq, 9);
  const perBucket = [];
  for (let bucket = 0; bucket <= 4; bucket++) {
    const rs = await client.execute(`SELECT seq FROM ${keyspace}.messages WHERE conv = ? AND bucket = ?`, [conv, bucket], { prepare: true });
    perBucket.push(rs.rows.map((r) => Number(r['seq'])));
  }
  t.same(perBucket, [[1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11], []], 'bucket = floor(seq / bucketSize)');
});

t.test('cql: a losing commit leaves no row anywhere', async (t) => {
  const store = await open();
  const conv = uid('conv'), a = uid('u'), b = uid('u'), joiner = uid('u');
  await store.commit(createCommit(conv, a, 1));
  const fromA = { conv, expectHead: 1, messages: [textMessage(conv, 2, a, uid('cid'), 'from a')] };
  const fromB = { conv, expectHead: 1, messages: [textMessage(conv, 2, b, uid('cid'), 'from b')], putMembers: [member(conv, joiner)] };
  const results = await Promise.allSettled([store.commit(fromA), store.commit(fromB)]);
  const loser = results[0]!.status === 'fulfilled' ? fromB : fromA;
  const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
  t.ok(lost.reason instanceof HeadConflictError, 'the loser gets HeadConflictError');
  const raw = await client.execute(`SELECT body FROM ${keyspace}.messages WHERE conv = ? AND bucket = 0 AND seq = 2`, [conv], { prepare: true });
  t.not(raw.first()?.['body'], JSON.stringify(loser.messages[0]!.body), "the loser's message is not in the table");
  t.equal(await store.findByClientId(conv, loser.messages[0]!.from, loser.messages[0]!.cid), undefined, "the loser's client id is not indexed");
  if (loser === fromB) t.equal(await store.getMembership(conv, joiner), undefined, "the loser's member was not added");
});

/** The shared client, except that batches and statements for which `fails(query)` holds time out. */
function failingClient(fails: (query: string) => boolean): Client {
  const broken = () => Promise.reject(new cassandra.errors.OperationTimedOutError('injected: connection lost'));
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === 'batch') return (...args: unknown[]) => fails('BATCH') ? broken() : (target.batch as (...a: unknown[]) => unknown)(...args);
      if (prop === 'execute') {
        return (query: string, ...rest: unknown[]) => fails(query) ? broken() : (target.execute as (...a: unknown[]) => unknown)(query, ...rest);
      }
      return Reflect.get(target, prop, receiver);
    },
  });
}

/** Once a commit LWT has run, every further write fails: the process "died" between the two. */
function failingAfterCommitPoint(): Client {
  let passed = false;
  return failingClient((query) => {
    if (passed) return true;
    if (/IF version = \?/.test(query)) passed = true;
    return false;
  });
}

t.test('cql: a commit interrupted after its LWT is visible at once and rolled forward by the next commit', async (t) => {
  const healthy = await open();
  const conv = uid('conv'), owner = uid('u'), joiner = uid('u'), cid = uid('cid');
  await healthy.commit(createCommit(conv, owner, 2));
  const crashing = await open({ client: failingAfterCommitPoint() });
  const change = { conv, expectHead: 2, messages: [textMessage(conv, 3, owner, cid)], putMembers: [member(conv, joiner, 'member', 2)], recall: [1] };
  const error = await failure(crashing.commit(change));
  t.ok(error instanceof StoreUnavailableError, 'the writer reports the store unavailable');
  t.match((error as Error).message, /may or may not have been applied/, 'and says the outcome is unknown');

  const reader = await open();
  t.equal((await reader.getConversation(conv))?.head, 3, 'the commit point was passed: head moved');
  t.same(await reader.readAfter(conv, 2, 10), change.messages, 'its message is readable (from the pending intent)');
  t.equal((await reader.getMessage(conv, 1))?.recalled, true, 'its recall is visible');
  t.same(await reader.getMembership(conv, joiner), member(conv, joiner, 'member', 2), 'its member is visible');
  t.equal(await reader.findByClientId(conv, owner, cid), 3, 'its client id resolves');

  const retry = await failure(healthy.commit(change));
  t.ok(retry instanceof HeadConflictError, "the engine's retry on the old head conflicts (the first attempt did commit)");
  t.same((await reader.listUserConversations(joiner)).map((m) => m.conv), [conv], 'the retry rolled the intent forward: reverse index written');
  const raw = await client.execute(`SELECT seq, recalled FROM ${keyspace}.messages WHERE conv = ? AND bucket = 0`, [conv], { prepare: true });
  t.same(raw.rows.map((r) => [Number(r['seq']), r['recalled']]), [[1, true], [2, false]], 'recall written to the table');
  await healthy.commit(appendCommit(conv, 3, owner, 1));
  t.same(seqs(await reader.readAfter(conv, 0, 10)), [1, 2, 3, 4], 'gapless after the next commit');
  t.equal((await reader.getConversation(conv))?.memberCount, 2);
});

t.test('cql: concurrent membership-only commits on one head both apply, counted once each', async (t) => {
  const store = await open();
  const conv = uid('conv'), owner = uid('u'), x = uid('u'), y = uid('u');
  await store.commit(createCommit(conv, owner, 1));
  // No messages: the head does not move, so neither conflicts; the version condition serializes them.
  await Promise.all([x, y].map((u) => store.commit({ conv, expectHead: 1, messages: [], putMembers: [member(conv, u)] })));
  t.equal((await store.getConversation(conv))?.memberCount, 3, 'both joins counted');
  t.same((await store.listMembers(conv)).map((m) => m.user).sort(), [owner, x, y].sort());
});

t.test('cql: ids sort by code point like the other adapters', async (t) => {
  const store = await open();
  const conv = uid('conv'), astral = `\u{1F600}${uid('u')}`, bmp = `\uFFFD${uid('u')}`, ascii = `a${uid('u')}`;
  await store.commit({ ...createCommit(conv, ascii, 0, [astral, bmp]) });
  t.same((await store.listMembers(conv)).map((m) => m.user), [ascii, bmp, astral], 'U+FFFD sorts before U+1F600 (UTF-16 order would not)');
});

t.test('cql: a keyspace keeps the bucket size it was created with', async (t) => {
  const error = await failure(open({ bucketSize: 10_000 }));
  t.match(error, { message: /created with bucketSize 3, not 10000/ });
  const reopened = await open();
  t.equal(reopened.epoch, (await open()).epoch, 'epoch stable across opens');
});

t.test('cql: driver failures become StoreUnavailableError', async (t) => {
  const port = await freePort();
  const dead = createCqlClient({ contactPoints: [`127.0.0.1:${port}`], localDataCenter: endpoint.localDataCenter, connectTimeoutMs: 1000 });
  t.teardown(() => dead.shutdown());
  const error = await failure(CqlChatStore.open({ client: dead, keyspace }));
  t.ok(error instanceof StoreUnavailableError, 'open against a closed port');
  t.match((error as Error).message, /lantern migrate/, 'the message suggests the usual fix');
  const store = await open({ client: failingClient((query) => /last_seen/.test(query)) });
  t.ok(await failure(store.setLastSeen(uid('u'), 1)) instanceof StoreUnavailableError, 'a timed-out write');
  t.ok(await failure(store.getLastSeen([uid('u')])) instanceof StoreUnavailableError, 'a timed-out read');
  await store.close();
  t.ok(await failure(store.getConversation('c')) instanceof StoreUnavailableError, 'a closed store');
});

t.test('cql: commit latency (rough, one writer)', async (t) => {
  const store = await open({});
  const conv = uid('conv');
  await store.commit(createCommit(conv, 'owner', 0));
  const n = 30, start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await store.commit(appendCommit(conv, i, 'owner', 1));
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  t.comment(`commit latency: ${(ms / n).toFixed(1)} ms mean over ${n} sequential one-message commits`);
  t.equal((await store.getConversation(conv))?.head, n);
});
