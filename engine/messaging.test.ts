import t from 'tap';
import { harness } from './test/harness.ts';

const code = (error: string) => ({ name: 'LanternError', error });

t.test('sends get strictly increasing seqs, an ack, and reach every member device', async (t) => {
  const h = harness();
  const conv = await h.friends('alice', 'bob');
  const acks = await Promise.all(Array.from({ length: 50 }, (_, i) => h.as('alice').text(conv, `m${i}`)));
  t.same(acks.map((a) => a.seq), Array.from({ length: 50 }, (_, i) => i + 1), 'seqs 1..50 in send order');
  t.ok(acks.every((a) => a.dup === false));
  const atBob = h.delivery.of('bob', 'msg').map((e) => e.m.seq);
  t.same(atBob, acks.map((a) => a.seq), 'bob got every message in order');
  t.same(h.delivery.of('alice', 'msg').length, 50, "the sender's own devices get the messages too");
});

t.test('a retried send with the same cid returns the first result and stores nothing new', async (t) => {
  const h = harness();
  const conv = await h.friends('alice', 'bob');
  const first = await h.as('alice').text(conv, 'hello', 'cid-1');
  const again = await h.as('alice', 'laptop').text(conv, 'hello', 'cid-1');
  t.same({ ...again, dup: false }, first);
  t.equal(again.dup, true);
  const concurrent = await Promise.all([h.as('alice').text(conv, 'x', 'cid-2'), h.as('alice').text(conv, 'x', 'cid-2')]);
  t.equal(concurrent[0].seq, concurrent[1].seq, 'concurrent retries resolve to one message');
  const hist = await h.as('bob').req('history', { conv });
  t.same(hist.msgs.map((m) => m.cid), ['cid-1', 'cid-2']);
  t.same(h.delivery.of('bob', 'msg').length, 2, 'delivered once each');
});

t.test('non-members cannot send, read or page history', async (t) => {
  const h = harness();
  const conv = await h.friends('alice', 'bob');
  await t.rejects(h.as('mallory').text(conv, 'hi'), code('not_member'));
  await t.rejects(h.as('mallory').req('history', { conv }), code('not_member'));
  await t.rejects(h.as('mallory').req('read', { conv, seq: 1 }), code('not_member'));
  await t.rejects(h.as('alice').text('d:nope', 'hi'), code('not_found'));
});

t.test('message kinds are validated and stored with only protocol fields', async (t) => {
  const h = harness({ maxTextLength: 10 });
  const conv = await h.friends('alice', 'bob');
  const alice = h.as('alice');
  const send = (kind: 'text' | 'sticker' | 'image' | 'file' | 'location', body: Record<string, unknown>, cid: string) =>
    alice.req('send', { conv, cid, kind, body: body as never });
  await send('sticker', { pack: 'cats', sticker: 'wave', extra: 1 }, 'k1');
  await send('image', { url: 'https://x/i.png', mime: 'image/png', size: 10, width: 1, height: 2 }, 'k2');
  await send('file', { url: 'https://x/f', mime: 'application/pdf', size: 10, name: 'f.pdf' }, 'k3');
  await send('location', { lat: 39.9, lng: 116.4, name: 'Beijing' }, 'k4');
  await t.rejects(send('text', { text: 'x'.repeat(11) }, 'k5'), code('too_large'));
  await t.rejects(send('location', { lat: 91, lng: 0 }, 'k6'), code('invalid_field'));
  await t.rejects(send('image', { url: 'u', mime: 'm', size: -1, width: 1, height: 1 }, 'k7'), code('invalid_field'));
  await t.rejects(send('text', {}, 'k8'), code('invalid_field'));
  const { msgs } = await h.as('bob').req('history', { conv });
  t.same(msgs.map((m) => m.kind), ['sticker', 'image', 'file', 'location']);
  t.same(msgs[0]!.body, { pack: 'cats', sticker: 'wave' }, 'unknown body fields dropped');
});

t.test('recall within the window replaces the body and appends a notice; later it is refused', async (t) => {
  const h = harness();
  const conv = await h.friends('alice', 'bob');
  const a = await h.as('alice').text(conv, 'oops');
  const b = await h.as('alice').text(conv, 'keep');
  await t.rejects(h.as('bob').req('recall', { conv, seq: a.seq }), code('forbidden'));
  const r = await h.as('alice').req('recall', { conv, seq: a.seq });
  t.equal(r.seq, 3, 'the recall notice takes the next seq');
  const { msgs } = await h.as('bob').req('history', { conv });
  t.equal(msgs[0]!.recalled, true);
  t.equal(msgs[0]!.body, undefined, 'recalled body is gone');
  t.same(msgs[2]!.body, { event: 'recalled', by: 'alice', seq: a.seq });
  h.clock.ms += 2 * 60_000 + 1;
  await t.rejects(h.as('alice').req('recall', { conv, seq: b.seq }), code('recall_window_passed'));
  await t.rejects(h.as('alice').req('recall', { conv, seq: 3 }), code('conflict'), 'notices cannot be recalled');
});

t.test('history pages backwards without gaps or overlaps', async (t) => {
  const h = harness();
  const conv = await h.friends('alice', 'bob');
  for (let i = 0; i < 23; i++) await h.as('alice').text(conv, `m${i}`);
  const seen: number[] = [];
  let before: number | undefined;
  for (;;) {
    const page = await h.as('bob').req('history', before === undefined ? { conv, limit: 5 } : { conv, before, limit: 5 });
    seen.unshift(...page.msgs.map((m) => m.seq));
    if (!page.more) break;
    before = page.msgs[0]!.seq;
  }
  t.same(seen, Array.from({ length: 23 }, (_, i) => i + 1));
});

t.test('read cursors only move forward and emit receipts to members', async (t) => {
  const h = harness();
  const conv = await h.friends('alice', 'bob');
  for (let i = 0; i < 3; i++) await h.as('alice').text(conv, `m${i}`);
  t.same(await h.as('bob').req('read', { conv, seq: 2 }), { conv, read: 2 });
  t.same(await h.as('bob').req('read', { conv, seq: 1 }), { conv, read: 2 }, 'does not move back');
  t.same(await h.as('bob').req('read', { conv, seq: 99 }), { conv, read: 3 }, 'capped at head');
  t.same(h.delivery.of('alice', 'receipt').map((e) => e.seq), [2, 3]);
  t.same((await h.as('alice').req('receipts', { conv })).reads, { bob: 3 });
});

t.test('typing reaches the other members only and is not stored', async (t) => {
  const h = harness();
  const conv = await h.friends('alice', 'bob');
  await h.as('alice').req('typing', { conv, on: true });
  t.same(h.delivery.of('bob', 'typing'), [{ t: 'typing', conv, user: 'alice', on: true }]);
  t.same(h.delivery.of('alice', 'typing'), []);
  t.equal((await h.as('bob').req('history', { conv })).msgs.length, 0);
});

t.test('a failed commit rejects its sends as retryable and leaves no gap', async (t) => {
  const { MemoryChatStore } = await import('../storage/memory/chat-store.ts');
  const { StoreUnavailableError } = await import('./ports.ts');
  const store = new MemoryChatStore();
  let failNext = false;
  const commit = store.commit.bind(store);
  store.commit = async (c) => {
    if (failNext) { failNext = false; throw new StoreUnavailableError('disk on fire'); }
    return commit(c);
  };
  const h = harness({}, store);
  const conv = await h.friends('alice', 'bob');
  await h.as('alice').text(conv, 'one', 'c-1');
  failNext = true;
  const failed = await Promise.allSettled([h.as('alice').text(conv, 'two', 'c-2'), h.as('alice').text(conv, 'three', 'c-3')]);
  t.ok(failed.some((r) => r.status === 'rejected'), 'the batch that hit the failure is rejected');
  for (const r of failed) {
    if (r.status === 'rejected') t.match(r.reason, { error: 'unavailable', retry: true });
  }
  // The client retries both with the same cids: the one that had succeeded answers dup.
  const retried = [await h.as('alice').text(conv, 'two', 'c-2'), await h.as('alice').text(conv, 'three', 'c-3')];
  const { msgs } = await h.as('bob').req('history', { conv });
  t.same(msgs.map((m) => m.seq), [1, 2, 3], 'no gap');
  t.same(msgs.map((m) => m.cid).sort(), ['c-1', 'c-2', 'c-3'], 'each send stored exactly once');
  const bySeq = new Map(msgs.map((m) => [m.cid, m.seq]));
  t.same(retried.map((r) => r.seq), [bySeq.get('c-2'), bySeq.get('c-3')], 'retries answer with the stored seqs');
});

t.test('a tiny conversation cache (eviction under load) keeps seqs contiguous and nothing fails', async (t) => {
  const h = harness({ conversationCacheSize: 2 });
  const convs: string[] = [];
  for (const peer of ['b', 'c', 'd', 'e', 'f']) convs.push(await h.friends('a', peer));
  const sends = [];
  for (let i = 0; i < 20; i++) for (const conv of convs) sends.push(h.as('a').text(conv, `m${i}`));
  const acks = await Promise.all(sends);
  t.equal(acks.length, 100, 'every send acked');
  for (const conv of convs) {
    const seqs = acks.filter((a) => a.conv === conv).map((a) => a.seq).sort((x, y) => x - y);
    t.same(seqs, Array.from({ length: 20 }, (_, i) => i + 1), `${conv}: 1..20`);
  }
});
