import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoreUnavailableError, type ChatStore } from '../../engine/ports.ts';
import { chatStoreContract } from '../contract/chat-store.contract.ts';
import { appendCommit, createCommit, failure, isPlainRejection, uid } from '../contract/fixtures.ts';
import { LmdbChatStore } from './chat-store.ts';

const root = await mkdtemp(join(tmpdir(), 'lantern-lmdb-test-'));
t.teardown(() => rm(root, { recursive: true, force: true }));

/** A store in a fresh directory; reopen closes it and opens the same directory again. */
async function harness() {
  const path = join(root, uid('db'));
  let store: ChatStore = await LmdbChatStore.open({ path });
  return {
    path,
    store,
    reopen: async () => {
      await store.close();
      store = await LmdbChatStore.open({ path });
      return store;
    },
    cleanup: async () => {
      await store.close();
      await rm(path, { recursive: true, force: true });
    },
  };
}

chatStoreContract(t, 'lmdb', harness);

t.test('lmdb: a new directory gets a new epoch, an existing one keeps it', async (t) => {
  const a = await harness(), b = await harness();
  t.teardown(async () => { await a.cleanup(); await b.cleanup(); });
  t.not(a.store.epoch, b.store.epoch, 'two fresh directories differ');
  const epoch = a.store.epoch;
  t.equal((await a.reopen()).epoch, epoch);
  t.equal((await a.reopen()).epoch, epoch, 'stable over repeated reopens');
});

t.test('lmdb: many concurrent commits across conversations stay gapless', async (t) => {
  const h = await harness();
  t.teardown(() => h.cleanup());
  const convs = Array.from({ length: 10 }, () => uid('conv'));
  await Promise.all(convs.map((conv) => h.store.commit(createCommit(conv, 'owner', 0))));
  // 50 commits per conversation, all in flight at once, each based on the previous head.
  await Promise.all(convs.flatMap((conv) => Array.from({ length: 50 }, (_, i) => h.store.commit(appendCommit(conv, i, 'owner', 1)))));
  const reopened = await h.reopen();
  for (const conv of convs) {
    const msgs = await reopened.readAfter(conv, 0, 100);
    t.same(msgs.map((m) => m.seq), Array.from({ length: 50 }, (_, i) => i + 1), `${conv} gapless after reopen`);
  }
});

t.test('lmdb: a commit that fails half way writes nothing', async (t) => {
  const h = await harness();
  t.teardown(() => h.cleanup());
  const conv = uid('conv');
  await h.store.commit(createCommit(conv, 'owner', 1));
  const commit = appendCommit(conv, 1, 'owner', 2);
  // msgpack cannot encode a symbol: the second message fails after the first was put.
  (commit.messages[1]!.body as unknown as Record<string, unknown>).bad = Symbol('unencodable');
  const error = await failure(h.store.commit(commit));
  t.ok(isPlainRejection(error), 'a plain Error: the commit is wrong, retrying will not help');
  t.equal(await h.store.getMessage(conv, 2), undefined, 'the first message was rolled back');
  t.equal((await h.store.getConversation(conv))?.head, 1, 'head unchanged');
  await h.store.commit(appendCommit(conv, 1, 'owner', 1));
  t.equal((await h.store.getConversation(conv))?.head, 2, 'the next commit on the same head succeeds');
});

t.test('lmdb: a closed store reports StoreUnavailableError', async (t) => {
  const h = await harness();
  t.teardown(() => rm(h.path, { recursive: true, force: true }));
  await h.store.close();
  t.ok(await failure(h.store.commit(createCommit(uid('conv'), 'o', 1))) instanceof StoreUnavailableError, 'commit');
  t.ok(await failure(h.store.getConversation('c')) instanceof StoreUnavailableError, 'read');
});

t.test('lmdb: open fails with StoreUnavailableError when the path is unusable', async (t) => {
  const file = join(root, uid('file'));
  const { writeFile } = await import('node:fs/promises');
  await writeFile(file, 'not a directory');
  t.ok(await failure(LmdbChatStore.open({ path: join(file, 'db') })) instanceof StoreUnavailableError);
});
