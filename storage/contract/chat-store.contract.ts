// The ChatStore conformance suite: every adapter (memory, LMDB, later CQL) runs it unchanged.
// It only uses the port, never adapter internals, and every id is unique per test, so an
// adapter may hand out one shared backend for all tests.
import type { Test } from 'tap';
import { HeadConflictError, type ChatStore } from '../../engine/ports.ts';
import type { TextBody } from '../../protocol/frames.ts';
import {
  appendCommit, createCommit, failure, isPlainRejection, member, seqs, systemMessage, textMessage, uid,
} from './fixtures.ts';

export interface ChatStoreHarness {
  store: ChatStore;
  /** Closes `store` and opens the same data again (adapters with durable state provide it). */
  reopen?: () => Promise<ChatStore>;
  /** Closes whichever store is open and removes what the harness created. */
  cleanup: () => Promise<void>;
}

export function chatStoreContract(t: Test, name: string, makeStore: () => Promise<ChatStoreHarness>): void {
  const withStore = (title: string, body: (t: Test, h: ChatStoreHarness) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const harness = await makeStore();
      t.teardown(() => harness.cleanup());
      await body(t, harness);
    });

  withStore('create, commit and page through a timeline', async (t, { store }) => {
    const conv = uid('conv'), owner = uid('u');
    t.equal(await store.getConversation(conv), undefined, 'unknown conversation is absent');
    const create = createCommit(conv, owner, 3);
    await store.commit(create);
    await store.commit(appendCommit(conv, 3, owner, 2));
    const info = await store.getConversation(conv);
    t.same(info, { ...create.create, head: 5, memberCount: 1 }, 'conversation meta with head and memberCount');

    t.same(seqs(await store.readAfter(conv, 0, 100)), [1, 2, 3, 4, 5], 'readAfter 0 returns everything ascending');
    t.same(seqs(await store.readAfter(conv, 2, 2)), [3, 4], 'readAfter honours afterSeq and limit');
    t.same(await store.readAfter(conv, 5, 10), [], 'readAfter head is empty');
    t.same(await store.readAfter(conv, 0, 0), [], 'limit 0 returns nothing');
    t.same(seqs(await store.readBefore(conv, 6, 2)), [4, 5], 'readBefore head+1 returns the newest, ascending');
    t.same(seqs(await store.readBefore(conv, 3, 10)), [1, 2], 'readBefore stops at seq 1');
    t.same(await store.readBefore(conv, 1, 10), [], 'nothing before seq 1');
    t.same(seqs(await store.readBefore(conv, Number.MAX_SAFE_INTEGER, 3)), [3, 4, 5], 'readBefore with a huge bound');
    t.same(await store.getMessage(conv, 3), create.messages[2], 'getMessage returns the committed message');
    t.equal(await store.getMessage(conv, 6), undefined, 'seq above head is absent');
    t.equal(await store.getMessage(conv, 0), undefined, 'seq 0 is absent');
    t.same(await store.readAfter(uid('conv'), 0, 10), [], 'unknown conversation reads empty');
  });

  withStore('conversations whose ids share a prefix stay separate', async (t, { store }) => {
    const base = uid('conv'), owner = uid('u');
    for (const [conv, n] of [[base, 2], [`${base}x`, 3], [base.slice(0, -1), 4]] as const) {
      await store.commit(createCommit(conv, owner, n));
    }
    t.same(seqs(await store.readAfter(base, 0, 100)), [1, 2]);
    t.same(seqs(await store.readBefore(base, 100, 100)), [1, 2]);
    t.same((await store.listMembers(base)).map((m) => m.conv), [base]);
    await store.advanceReadCursor(`${base}x`, owner, 3);
    t.same(await store.getReadCursors(base), {}, 'cursor of the longer id does not leak');
  });

  withStore('commits must continue the head contiguously', async (t, { store }) => {
    const conv = uid('conv'), owner = uid('u');
    await store.commit(createCommit(conv, owner, 2));
    const wrongStart = { conv, expectHead: 2, messages: [textMessage(conv, 4, owner)] };
    t.ok(isPlainRejection(await failure(store.commit(wrongStart))), 'seq must be expectHead+1');
    const gap = { conv, expectHead: 2, messages: [textMessage(conv, 3, owner), textMessage(conv, 5, owner)] };
    t.ok(isPlainRejection(await failure(store.commit(gap))), 'seqs must have no gap');
    const foreign = { conv, expectHead: 2, messages: [textMessage(uid('conv'), 3, owner)] };
    t.ok(isPlainRejection(await failure(store.commit(foreign))), 'messages must belong to conv');
    const missing = appendCommit(uid('conv'), 0, owner, 1);
    t.ok(isPlainRejection(await failure(store.commit(missing))), 'no commit to an absent conversation');
    t.equal(await store.getConversation(missing.conv), undefined, 'the rejected commit created nothing');
    const lateCreate = { ...createCommit(uid('conv'), owner, 0), expectHead: 1 };
    t.ok(isPlainRejection(await failure(store.commit(lateCreate))), 'create needs expectHead 0');
    t.equal((await store.getConversation(conv))?.head, 2, 'head unchanged by rejected commits');
    t.same(seqs(await store.readAfter(conv, 0, 10)), [1, 2], 'no message written by rejected commits');
  });

  withStore('a stale expectHead conflicts and writes nothing', async (t, { store }) => {
    const conv = uid('conv'), owner = uid('u'), late = uid('u');
    await store.commit(createCommit(conv, owner, 3));
    const stale = { ...appendCommit(conv, 2, owner, 1), putMembers: [member(conv, late)] };
    const error = await failure(store.commit(stale));
    t.ok(error instanceof HeadConflictError, 'HeadConflictError');
    t.match(error, { conv, expected: 2, actual: 3 });
    t.equal(await store.getMembership(conv, late), undefined, 'membership of the conflicting commit not written');
    t.equal((await store.getConversation(conv))?.memberCount, 1);
    const again = await failure(store.commit(createCommit(conv, owner, 0)));
    t.ok(again instanceof HeadConflictError, 'creating an existing conversation conflicts');
  });

  withStore('of two concurrent commits on the same head exactly one wins', async (t, { store }) => {
    const conv = uid('conv'), a = uid('u'), b = uid('u');
    await store.commit(createCommit(conv, a, 1));
    const fromA = appendCommit(conv, 1, a, 1), fromB = appendCommit(conv, 1, b, 2);
    const results = await Promise.allSettled([store.commit(fromA), store.commit(fromB)]);
    const won = results.filter((r) => r.status === 'fulfilled').length;
    const conflicts = results.filter((r) => r.status === 'rejected' && r.reason instanceof HeadConflictError).length;
    t.equal(won, 1, 'one commit succeeds');
    t.equal(conflicts, 1, 'the other gets HeadConflictError');
    const winner = results[0]!.status === 'fulfilled' ? fromA : fromB;
    t.same(await store.readAfter(conv, 1, 10), winner.messages, 'only the winner is stored');
    t.equal((await store.getConversation(conv))?.head, 1 + winner.messages.length);
    const creates = await Promise.allSettled([store.commit(createCommit(`${conv}-n`, a, 1)), store.commit(createCommit(`${conv}-n`, b, 1))]);
    t.equal(creates.filter((r) => r.status === 'fulfilled').length, 1, 'concurrent creates: one wins');
    t.ok(creates.some((r) => r.status === 'rejected' && r.reason instanceof HeadConflictError), 'the loser conflicts');
  });

  withStore('findByClientId indexes sends by (conv, from, cid)', async (t, { store }) => {
    const conv = uid('conv'), a = uid('u'), b = uid('u'), cid = uid('cid');
    await store.commit(createCommit(conv, a, 1));
    await store.commit({ conv, expectHead: 1, messages: [textMessage(conv, 2, a, cid), textMessage(conv, 3, b, cid)] });
    t.equal(await store.findByClientId(conv, a, cid), 2);
    t.equal(await store.findByClientId(conv, b, cid), 3, 'same cid from another user is a separate send');
    t.equal(await store.findByClientId(conv, a, uid('cid')), undefined, 'unknown cid');
    t.equal(await store.findByClientId(uid('conv'), a, cid), undefined, 'other conversation');
    await store.commit({ conv, expectHead: 3, messages: [textMessage(conv, 4, a, cid)] });
    t.equal(await store.findByClientId(conv, a, cid), 2, 'the first commit of a cid stays indexed');
  });

  withStore('membership: put, update, remove, ordering and counts', async (t, { store }) => {
    const conv = uid('conv'), conv2 = uid('conv'), owner = 'o-' + uid('u');
    const [amy, mia, zed] = ['a-' + uid('u'), 'm-' + uid('u'), 'z-' + uid('u')] as [string, string, string];
    await store.commit(createCommit(conv, owner, 1, [zed, amy]));
    await store.commit({ ...appendCommit(conv, 1, owner, 1), putMembers: [member(conv, mia, 'member', 1), member(conv, zed, 'admin')] });
    t.equal((await store.getConversation(conv))?.memberCount, 4, 'updating an existing member does not double count');
    t.same(await store.getMembership(conv, zed), member(conv, zed, 'admin'), 'role updated');
    t.same(await store.getMembership(conv, mia), member(conv, mia, 'member', 1), 'joined recorded');
    t.same((await store.listMembers(conv)).map((m) => m.user), [amy, mia, owner, zed], 'members ordered by user id');
    await store.commit(createCommit(conv2, owner, 0, [mia]));
    const [first, second] = conv < conv2 ? [conv, conv2] : [conv2, conv];
    t.same((await store.listUserConversations(mia)).map((m) => [m.conv, m.role]), [[first, 'member'], [second, 'member']],
      'user conversations ordered by conv id');
    await store.commit({ conv, expectHead: 2, messages: [], removeMembers: [mia, uid('stranger')] });
    t.equal((await store.getConversation(conv))?.memberCount, 3, 'removing a non-member changes nothing');
    t.equal(await store.getMembership(conv, mia), undefined);
    t.same((await store.listUserConversations(mia)).map((m) => m.conv), [conv2], 'reverse index follows removal');
    t.equal((await store.getConversation(conv))?.head, 2, 'a commit without messages keeps the head');
    t.same(await store.listMembers(uid('conv')), [], 'unknown conversation has no members');
  });

  withStore('recall drops the body and marks the message', async (t, { store }) => {
    const conv = uid('conv'), owner = uid('u');
    const create = createCommit(conv, owner, 2);
    await store.commit(create);
    await store.commit({ conv, expectHead: 2, messages: [systemMessage(conv, 3, owner, 'recalled', { seq: 1 })], recall: [1] });
    const recalled = await store.getMessage(conv, 1);
    const { body: _dropped, ...rest } = create.messages[0]!;
    t.same(recalled, { ...rest, recalled: true }, 'recalled: true and no body; other fields kept');
    t.notOk(recalled && 'body' in recalled && recalled.body !== undefined, 'body gone');
    t.same((await store.readAfter(conv, 0, 1))[0], recalled, 'reads see the recalled form');
    t.same(await store.getMessage(conv, 2), create.messages[1], 'other messages untouched');
    const outside = { ...appendCommit(conv, 3, owner, 0), recall: [9] };
    t.ok(isPlainRejection(await failure(store.commit(outside))), 'recall of a seq above head rejected');
  });

  withStore('read cursors only move up', async (t, { store }) => {
    const conv = uid('conv'), a = uid('u'), b = uid('u');
    t.equal(await store.getReadCursor(conv, a), 0, 'no cursor reads 0');
    t.equal(await store.advanceReadCursor(conv, a, 5), 5);
    t.equal(await store.advanceReadCursor(conv, a, 3), 5, 'a lower value does not lower it');
    t.equal(await store.getReadCursor(conv, a), 5);
    const results = await Promise.all([7, 12, 9].map((seq) => store.advanceReadCursor(conv, b, seq)));
    t.equal(await store.getReadCursor(conv, b), 12, 'concurrent advances end at the max');
    t.ok(results.every((r, i) => r >= [7, 12, 9][i]!), 'each call returns a cursor at least its own seq');
    t.same(await store.getReadCursors(conv), { [a]: 5, [b]: 12 });
    t.ok(isPlainRejection(await failure(store.advanceReadCursor(conv, a, -1))), 'negative seq rejected');
  });

  withStore('contacts: multi-edge writes, listing and deletion', async (t, { store }) => {
    const a = uid('u'), b = 'b-' + uid('u'), c = 'c-' + uid('u');
    await store.setContacts([
      { owner: a, other: c, state: 'requested', ts: 1, note: 'hi' },
      { owner: c, other: a, state: 'incoming', ts: 1, note: 'hi' },
      { owner: a, other: b, state: 'friend', ts: 2 },
      { owner: b, other: a, state: 'friend', ts: 2 },
    ]);
    t.same(await store.getContact(c, a), { owner: c, other: a, state: 'incoming', ts: 1, note: 'hi' });
    t.same((await store.listContacts(a)).map((e) => [e.other, e.state]), [[b, 'friend'], [c, 'requested']], 'ordered by other');
    await store.setContacts([{ owner: a, other: c, state: 'friend', ts: 3 }, { owner: c, other: a, state: 'friend', ts: 3 }]);
    t.same(await store.getContact(a, c), { owner: a, other: c, state: 'friend', ts: 3 }, 'overwrite replaces the edge');
    await store.setContacts([{ owner: a, other: b, state: 'none' }, { owner: b, other: a, state: 'none' }]);
    t.equal(await store.getContact(a, b), undefined, "'none' deletes");
    t.equal(await store.getContact(b, a), undefined, "'none' deletes the other side too");
    t.same((await store.listContacts(a)).map((e) => e.other), [c]);
    t.same(await store.listContacts(uid('u')), [], 'no contacts');
    await store.setContacts([{ owner: uid('u'), other: a, state: 'none' }]);
    t.pass('deleting a missing edge is fine');
  });

  withStore('lastSeen', async (t, { store }) => {
    const a = uid('u'), b = uid('u'), never = uid('u');
    await store.setLastSeen(a, 100);
    await store.setLastSeen(b, 200);
    await store.setLastSeen(a, 300);
    t.same(await store.getLastSeen([a, b, never]), { [a]: 300, [b]: 200 }, 'never-seen users are absent');
    t.same(await store.getLastSeen([]), {});
  });

  withStore('values go in and come out as copies', async (t, { store }) => {
    const conv = uid('conv'), owner = uid('u'), other = uid('u');
    const create = createCommit(conv, owner, 1);
    const original = structuredClone(create.messages[0]!);
    await store.commit(create);
    (create.messages[0]!.body as TextBody).text = 'changed by caller';
    create.putMembers![0]!.role = 'member';
    const read = (await store.getMessage(conv, 1))!;
    t.same(read, original, 'caller mutation after commit does not reach the store');
    (read.body as TextBody).text = 'changed by reader';
    t.same(await store.getMessage(conv, 1), original, 'mutating a returned message does not change the store');
    (await store.readAfter(conv, 0, 1))[0]!.seq = 99;
    t.same(await store.readAfter(conv, 0, 1), [original]);
    const info = (await store.getConversation(conv))!;
    info.head = 42;
    t.equal((await store.getConversation(conv))?.head, 1);
    (await store.listMembers(conv))[0]!.role = 'admin';
    t.equal((await store.getMembership(conv, owner))?.role, 'owner');
    const edge = { owner, other, state: 'friend' as const, ts: 1 };
    await store.setContacts([edge]);
    edge.ts = 2;
    (await store.getContact(owner, other))!.ts = 3;
    t.equal((await store.getContact(owner, other))?.ts, 1);
  });

  withStore('epoch is stable and data survives a reopen', async (t, harness) => {
    const { store } = harness;
    t.type(store.epoch, 'string');
    t.ok(store.epoch.length > 0, 'epoch is a non-empty id');
    if (!harness.reopen) {
      t.pass('adapter has no durable state to reopen');
      return;
    }
    const conv = uid('conv'), owner = uid('u'), cid = uid('cid'), friend = uid('u');
    const create = createCommit(conv, owner, 2, [friend]);
    await store.commit(create);
    await store.commit({ conv, expectHead: 2, messages: [textMessage(conv, 3, owner, cid)] });
    await store.advanceReadCursor(conv, owner, 3);
    await store.setContacts([{ owner, other: friend, state: 'friend', ts: 5 }]);
    await store.setLastSeen(owner, 1234);
    const epoch = store.epoch;
    const reopened = await harness.reopen();
    t.equal(reopened.epoch, epoch, 'epoch unchanged by reopen');
    t.same(await reopened.getConversation(conv), { ...create.create, head: 3, memberCount: 2 });
    t.same(seqs(await reopened.readAfter(conv, 0, 10)), [1, 2, 3]);
    t.equal(await reopened.findByClientId(conv, owner, cid), 3);
    t.same((await reopened.listUserConversations(friend)).map((m) => m.conv), [conv]);
    t.equal(await reopened.getReadCursor(conv, owner), 3);
    t.equal((await reopened.getContact(owner, friend))?.state, 'friend');
    t.same(await reopened.getLastSeen([owner]), { [owner]: 1234 });
    await reopened.commit(appendCommit(conv, 3, owner, 1));
    t.equal((await reopened.getConversation(conv))?.head, 4, 'commits continue after reopen');
  });
}
