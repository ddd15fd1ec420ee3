import t from 'tap';
import type { ConversationInfo, Message, SyncResult } from '../protocol/frames.ts';
import { MemoryCursorStore, SyncState } from './sync-state.ts';

const msg = (conv: string, seq: number): Message => ({ conv, seq, from: 'bob', dev: 'd', cid: `c${seq}`, kind: 'text', body: { text: `m${seq}` }, ts: seq });
const info = (conv: string, over: Partial<ConversationInfo> = {}): ConversationInfo => ({
  conv, type: 'group', title: conv, epoch: 'e1', head: 0, role: 'member', joined: 0, read: 0, members: 2, ...over,
});
const page = (over: Partial<SyncResult>): SyncResult => ({ convs: [], msgs: [], removed: [], more: false, ...over });
const seqs = (ms: Message[]) => ms.map((m) => `${m.conv}#${m.seq}`);

t.test('in-order messages are delivered at once; duplicates never twice', async (t) => {
  const s = new SyncState();
  t.same(seqs(s.accept(msg('a', 1)).deliver), ['a#1']);
  t.same(seqs(s.accept(msg('a', 2)).deliver), ['a#2']);
  const dup = s.accept(msg('a', 1));
  t.same(dup, { deliver: [], gap: false });
  t.equal(s.cursor('a'), 2);
});

t.test('early messages are held, flagged as a gap, and released in order', async (t) => {
  const s = new SyncState();
  s.accept(msg('a', 1));
  const r4 = s.accept(msg('a', 4));
  t.same(r4, { deliver: [], gap: true });
  t.same(s.accept(msg('a', 4)), { deliver: [], gap: false }, 'a held duplicate is not a second gap');
  t.same(s.gaps(), [{ conv: 'a', cursor: 1, nextHeld: 4 }]);
  t.same(seqs(s.accept(msg('a', 3)).deliver), []);
  t.same(seqs(s.accept(msg('a', 2)).deliver), ['a#2', 'a#3', 'a#4']);
  t.same(s.gaps(), []);
});

t.test('conversations are ordered independently', async (t) => {
  const s = new SyncState();
  s.accept(msg('a', 1));
  t.same(seqs(s.accept(msg('b', 1)).deliver), ['b#1']);
  t.equal(s.accept(msg('a', 3)).gap, true);
  t.same(seqs(s.accept(msg('b', 2)).deliver), ['b#2'], 'a gap in a does not hold back b');
});

t.test('an unknown conversation starting above seq 1 waits for sync to learn joined', async (t) => {
  const s = new SyncState();
  t.same(s.accept(msg('g', 11)), { deliver: [], gap: true });
  t.same(s.since(), {}, 'unknown cursor is left out of since so the server starts at joined');
  const out = s.applyPage(page({ convs: [info('g', { joined: 10, head: 11 })], msgs: [msg('g', 11)] }));
  t.same(seqs(out.deliver), ['g#11']);
  t.same(s.since(), { g: 11 });
});

t.test('sync pages merge with live messages without duplicates', async (t) => {
  const s = new SyncState();
  s.accept(msg('a', 1));
  s.accept(msg('a', 3)); // live, ahead of the gap
  const out = s.applyPage(page({ convs: [info('a', { head: 4 })], msgs: [msg('a', 2), msg('a', 3), msg('a', 4)] }));
  t.same(seqs(out.deliver), ['a#2', 'a#3', 'a#4']);
  t.equal(out.progressed, true);
  const again = s.applyPage(page({ convs: [info('a', { head: 4 })], msgs: [msg('a', 3), msg('a', 4)] }));
  t.same(again.deliver, []);
});

t.test('a conversation epoch change drops its cursor and skips the stale page', async (t) => {
  const s = new SyncState();
  s.applyPage(page({ convs: [info('a', { head: 2 })], msgs: [msg('a', 1), msg('a', 2)] }));
  t.same(s.since(), { a: 2 });
  const out = s.applyPage(page({ convs: [info('a', { epoch: 'e2', head: 1 })], msgs: [msg('a', 3)] }));
  t.same(out.reset, ['a']);
  t.same(out.deliver, [], 'messages computed against the dropped cursor are ignored');
  t.same(s.since(), {}, 'the next sync asks for the conversation from joined');
  const reload = s.applyPage(page({ convs: [info('a', { epoch: 'e2', head: 1 })], msgs: [msg('a', 1)] }));
  t.same(seqs(reload.deliver), ['a#1'], 'the new history is delivered from the start');
  t.same(reload.reset, []);
});

t.test('removed conversations lose their state', async (t) => {
  const s = new SyncState();
  s.accept(msg('a', 1));
  const out = s.applyPage(page({ removed: ['a'] }));
  t.same(out.removed, ['a']);
  t.equal(s.cursor('a'), undefined);
});

t.test('a server epoch change drops everything', async (t) => {
  const s = new SyncState();
  t.equal(s.setServerEpoch('x'), false, 'first epoch is just recorded');
  s.accept(msg('a', 1));
  t.equal(s.setServerEpoch('x'), false);
  t.equal(s.cursor('a'), 1);
  t.equal(s.setServerEpoch('y'), true);
  t.equal(s.cursor('a'), undefined);
});

t.test('cursors round-trip through a store', async (t) => {
  const s = new SyncState();
  s.setServerEpoch('x');
  s.applyPage(page({ convs: [info('a', { head: 1 })], msgs: [msg('a', 1)] }));
  s.accept(msg('b', 1));
  const store = new MemoryCursorStore();
  store.save(s.toPersisted());
  const restored = SyncState.fromPersisted(store.load());
  t.equal(restored.epoch, 'x');
  t.same(restored.since(), { a: 1, b: 1 });
  t.same(restored.accept(msg('a', 1)).deliver, [], 'a restored cursor still dedupes');
});
