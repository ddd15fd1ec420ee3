// What distributed mode adds to one engine's assumptions: several workers over one store, each the
// single writer of the conversations it owns, and a remote store whose reads finish out of order.
import t from 'tap';
import { MemoryChatStore } from '../storage/memory/chat-store.ts';
import { MemoryPresenceRegistry } from '../storage/memory/presence-registry.ts';
import type { DeviceSession } from './api.ts';
import { subjectFor } from './bus-engine.ts';
import { createChatEngine } from './chat-engine.ts';
import { RecordingDelivery } from './test/harness.ts';

const who = (user: string, session = `s-${user}`): DeviceSession => ({ user, device: 'phone', session });
const text = (i: number) => ({ kind: 'text' as const, body: { text: `m${i}` } });

t.test('pipelined sends from one connection take seqs in arrival order even when store reads finish out of order', async (t) => {
  const store = new MemoryChatStore();
  const original = store.findByClientId.bind(store);
  let n = 0;
  // Later reads finish first, as CQL round trips may.
  store.findByClientId = async (...args) => { const delay = 20 - (n++ % 20); await new Promise((r) => setTimeout(r, delay)); return original(...args); };
  const engine = createChatEngine({ store, presence: new MemoryPresenceRegistry(), delivery: new RecordingDelivery() });
  const { conv } = await engine.request(who('alice'), 'group.create', { title: 'g', members: ['bob'] });
  const acks = await Promise.all(Array.from({ length: 20 }, (_, i) => engine.request(who('alice'), 'send', { conv, cid: `c${i}`, ...text(i) })));
  t.same(acks.map((a) => a.seq), Array.from({ length: 20 }, (_, i) => i + 2), 'seq order = send order');
  const other = await Promise.all([
    engine.request(who('bob', 'b1'), 'send', { conv, cid: 'b-0', ...text(0) }),
    engine.request(who('bob', 'b1'), 'send', { conv, cid: 'c0', ...text(0) }),
    engine.request(who('bob', 'b1'), 'send', { conv, cid: 'b-1', ...text(1) }),
  ]);
  t.same(other.map((a) => a.seq), [22, 23, 24], 'a connection\'s sends stay ordered around one that is its own cid space');
  const dup = await engine.request(who('alice'), 'send', { conv, cid: 'c3', ...text(3) });
  t.same([dup.seq, dup.dup], [5, true], 'a resend is answered with its original seq');
});

t.test('a worker that does not own a conversation reads it from the store, never from a stale cache', async (t) => {
  const store = new MemoryChatStore();
  const engine = (owns: boolean) => createChatEngine({
    store, presence: new MemoryPresenceRegistry(), delivery: new RecordingDelivery(), ownsConversation: () => owns,
  });
  const [other, owner] = [engine(false), engine(true)];
  // group.create is a user request: any worker serves it, here one that does not own the group.
  const { conv } = await other.request(who('alice'), 'group.create', { title: 'g', members: ['bob'] });
  for (let i = 0; i < 3; i++) await owner.request(who('alice'), 'send', { conv, cid: `c${i}`, ...text(i) });
  const synced = await other.request(who('bob'), 'sync', { since: { [conv]: 1 } });
  t.same(synced.msgs.map((m) => m.seq), [2, 3, 4], 'sync on the other worker sees the owner\'s messages');
  const listed = await other.request(who('bob'), 'conv.list', {});
  t.equal(listed.convs.find((c) => c.conv === conv)?.head, 4, 'conv.list too');
});

t.test('every contact change of a pair goes to the owner of its direct conversation', async (t) => {
  // One owner per pair: crossed requests from two gateways are serialized there (Contacts), not raced.
  for (const type of ['contact.request', 'contact.accept', 'contact.remove', 'contact.block', 'contact.unblock'] as const) {
    t.equal(subjectFor(type, { user: 'bob' }, who('alice'), 64), subjectFor('conv.direct', { user: 'bob' }, who('alice'), 64), type);
    t.equal(subjectFor(type, { user: 'alice' }, who('bob'), 64), subjectFor('send', { conv: 'd:5:alice:bob' }, who('bob'), 64), `${type} from the other side`);
  }
  t.equal(subjectFor('contact.list', {}, who('alice'), 64), 'lantern.user', 'listing goes to any worker');
});
