import t from 'tap';
import type { EnvelopeEvent } from '../../protocol/frames.ts';
import type { GrabDecider } from './ports.ts';
import { MemoryGrabDecider } from '../../storage/memory/grab-decider.ts';
import { MemoryChatStore } from '../../storage/memory/chat-store.ts';
import { group, walletHarness } from './test-kit.ts';

t.test('a lucky envelope in a group: debited at send, shares sum to the total, one per member, live updates, luckiest', async (t) => {
  const h = walletHarness();
  const members = ['b', 'c', 'd', 'e'];
  const conv = await group(h, 'a', members);
  await h.topup('a', 10_000);
  const sent = await h.as('a').req('envelope.send', { conv, total: 1000, count: 3, mode: 'lucky', key: 'cny-1', greeting: 'Happy new year' });
  t.equal(await h.cents('a'), 9000, 'the sender paid the total at send');
  const card = (await h.as('b').req('history', { conv })).msgs.find((m) => m.seq === sent.seq)!;
  t.same([card.kind, card.from, card.body], ['envelope', 'a', { envelope: sent.envelope, greeting: 'Happy new year', total: 1000, count: 3, mode: 'lucky', currency: 'CNY' }], 'the card is a message in the group');

  const answers = [];
  for (const u of members) answers.push(await h.as(u).req('envelope.grab', { envelope: sent.envelope }));
  const grabbed = answers.filter((a) => a.outcome === 'grabbed');
  t.equal(grabbed.length, 3, 'three shares');
  t.same(answers[3], { envelope: sent.envelope, outcome: 'empty', currency: 'CNY' }, 'the fourth grabber finds it empty');
  t.equal(grabbed.reduce((s, a) => s + a.amount!, 0), 1000, 'the shares sum exactly to the total');
  for (const [i, u] of members.slice(0, 3).entries()) t.equal(await h.cents(u), answers[i]!.amount, `${u} holds the share`);
  t.same(await h.as('b').req('envelope.grab', { envelope: sent.envelope }), { envelope: sent.envelope, outcome: 'already', amount: answers[0]!.amount, currency: 'CNY' }, 'grabbing again: already, same amount, paid once');
  t.equal(await h.cents('b'), answers[0]!.amount);

  const seen = h.delivery.of('e', 'envelope') as EnvelopeEvent[];
  t.same(seen.map((e) => [e.grabs?.map((g) => g.user), e.left]), [[['b'], 2], [['c'], 1], [['d'], 0]], 'every member saw each grab and how many are left');
  const max = Math.max(...grabbed.map((a) => a.amount!));
  const luckiest = members[answers.findIndex((a) => a.amount === max)];
  t.equal(seen[2]!.luckiest, luckiest, 'the last grab names the luckiest');
  const info = await h.as('e').req('envelope.info', { envelope: sent.envelope });
  t.same([info.left, info.luckiest, info.claims.map((c) => c.user)], [0, luckiest, ['b', 'c', 'd']], 'info: claims in order, luckiest');
});

t.test('equal shares differ by at most a cent', async (t) => {
  const h = walletHarness();
  const conv = await group(h, 'a', ['b', 'c', 'd']);
  await h.topup('a', 100);
  const { envelope } = await h.as('a').req('envelope.send', { conv, total: 100, count: 3, mode: 'equal', key: 'eq' });
  const amounts = [];
  for (const u of ['b', 'c', 'd']) amounts.push((await h.as(u).req('envelope.grab', { envelope })).amount!);
  t.same(amounts.sort(), [33, 33, 34]);
});

t.test('sending: idempotent by key; a reused key with another request is refused; short funds move nothing', async (t) => {
  const h = walletHarness();
  const conv = await group(h, 'a', ['b', 'c']);
  await h.topup('a', 500);
  const first = await h.as('a').req('envelope.send', { conv, total: 300, count: 2, mode: 'lucky', key: 'k1' });
  const again = await h.as('a', 'laptop').req('envelope.send', { conv, total: 300, count: 2, mode: 'lucky', key: 'k1' });
  t.same(again, first, 'a retry (from any device) gets the same envelope and card');
  t.equal(await h.cents('a'), 200, 'debited once');
  t.equal((await h.as('a').req('history', { conv })).msgs.filter((m) => m.kind === 'envelope').length, 1, 'one card');
  await t.rejects(h.as('a').req('envelope.send', { conv, total: 200, count: 2, mode: 'lucky', key: 'k1' }), { name: 'LanternError', error: 'key_reused', field: 'key' }, 'same key, another total');
  await t.rejects(h.as('a').req('envelope.send', { conv, total: 201, count: 2, mode: 'lucky', key: 'k2' }), { name: 'LanternError', error: 'insufficient_funds' }, 'one cent short');
  t.equal(await h.cents('a'), 200, 'nothing debited by the refused send');
  t.equal((await h.as('a').req('history', { conv })).msgs.filter((m) => m.kind === 'envelope').length, 1, 'no card for it');
});

t.test('bad input gets a clear error and moves nothing', async (t) => {
  const h = walletHarness({ envelopeMaxShares: 10, envelopeMaxTotal: 5000, envelopeMaxGreeting: 8 });
  const conv = await group(h, 'a', ['b', 'c']);
  await h.topup('a', 5000);
  const send = (p: Record<string, unknown>) => h.as('a').req('envelope.send', { conv, total: 100, count: 2, mode: 'lucky', key: `k${Math.random()}`, ...p } as never);
  await t.rejects(send({ count: 4 }), { name: 'LanternError', error: 'invalid_field', field: 'count' }, 'more shares than members');
  await t.rejects(send({ count: 11 }), { name: 'LanternError', error: 'too_large', field: 'count' }, 'above envelopeMaxShares');
  await t.rejects(send({ total: 1, count: 2 }), { name: 'LanternError', error: 'invalid_field', field: 'total' }, 'total below count cents');
  await t.rejects(send({ total: 5001 }), { name: 'LanternError', error: 'too_large', field: 'total' }, 'above envelopeMaxTotal');
  await t.rejects(send({ total: 0 }), { name: 'LanternError', error: 'invalid_field', field: 'total' });
  await t.rejects(send({ total: -5 }), { name: 'LanternError', error: 'invalid_field', field: 'total' });
  await t.rejects(send({ total: 10.5 }), { name: 'LanternError', error: 'invalid_field', field: 'total' });
  await t.rejects(send({ currency: 'USD' }), { name: 'LanternError', error: 'invalid_field', field: 'currency' });
  await t.rejects(send({ greeting: 'much too long' }), { name: 'LanternError', error: 'too_large', field: 'greeting' });
  await t.rejects(h.as('x').req('envelope.send', { conv, total: 100, count: 1, mode: 'lucky', key: 'z' }), { name: 'LanternError', error: 'not_member' });
  t.equal(await h.cents('a'), 5000, 'no refused send debited anything');
  await t.rejects(h.as('b').req('envelope.grab', { envelope: 'e-not-there' }), { name: 'LanternError', error: 'not_found' });
  const { envelope } = await send({});
  await t.rejects(h.as('x').req('envelope.grab', { envelope }), { name: 'LanternError', error: 'not_member' }, 'someone outside the group');
  await t.rejects(h.as('x').req('envelope.info', { envelope }), { name: 'LanternError', error: 'not_member' });
});

t.test('expiry: late grabbers get expired, the remainder returns to the sender once', async (t) => {
  const h = walletHarness({ envelopeExpiryMs: 60_000 });
  const conv = await group(h, 'a', ['b', 'c', 'd']);
  await h.topup('a', 1000);
  const { envelope } = await h.as('a').req('envelope.send', { conv, total: 1000, count: 3, mode: 'lucky', key: 'x' });
  const b = await h.as('b').req('envelope.grab', { envelope });
  h.clock.ms += 60_000;
  t.equal((await h.as('c').req('envelope.grab', { envelope })).outcome, 'expired');
  t.same(await h.engine.sweepWallet!(), { envelopes: 1, transfers: 0, orders: 0 });
  t.same(await h.engine.sweepWallet!(), { envelopes: 0, transfers: 0, orders: 0 }, 'refunded once');
  t.equal(await h.cents('a'), 1000 - b.amount!, 'the sender has everything not grabbed back');
  t.equal((await h.as('d').req('envelope.grab', { envelope })).outcome, 'expired');
  const info = await h.as('d').req('envelope.info', { envelope });
  t.same([info.refunded, info.left], [1000 - b.amount!, 0]);
  const last = (h.delivery.of('d', 'envelope') as EnvelopeEvent[]).at(-1)!;
  t.same([last.refunded, last.left], [1000 - b.amount!, 0], 'members saw the refund');
});

t.test('direct envelope: one share, for the other person', async (t) => {
  const h = walletHarness();
  const conv = await h.friends('a', 'b');
  await h.topup('a', 888);
  await t.rejects(h.as('a').req('envelope.send', { conv, total: 888, count: 2, mode: 'lucky', key: 'd2' }), { name: 'LanternError', error: 'invalid_field', field: 'count' });
  const { envelope } = await h.as('a').req('envelope.send', { conv, total: 888, count: 1, mode: 'lucky', key: 'd1' });
  await t.rejects(h.as('a').req('envelope.grab', { envelope }), { name: 'LanternError', error: 'forbidden' });
  t.same(await h.as('b').req('envelope.grab', { envelope }), { envelope, outcome: 'grabbed', amount: 888, currency: 'CNY' });
  t.same([await h.cents('a'), await h.cents('b')], [0, 888]);
});

t.test('the decider loses its state mid-envelope: it is rebuilt from the claims, nobody is paid twice', async (t) => {
  let inner = new MemoryGrabDecider();
  const forgetful: GrabDecider = {
    load: (e, c, o) => inner.load(e, c, o), decide: (e, u, n) => inner.decide(e, u, n), forget: (e, u) => inner.forget(e, u), reassign: (e, u, d, k) => inner.reassign(e, u, d, k), drop: (e) => inner.drop(e),
  };
  const h = walletHarness({}, forgetful);
  const members = Array.from({ length: 8 }, (_, i) => `m${i}`);
  const conv = await group(h, 'a', members);
  await h.topup('a', 800);
  const { envelope } = await h.as('a').req('envelope.send', { conv, total: 800, count: 5, mode: 'lucky', key: 'r' });
  const before = await Promise.all(members.slice(0, 3).map((u) => h.as(u).req('envelope.grab', { envelope })));
  inner = new MemoryGrabDecider(); // Redis restarted empty
  const again = await h.as('m0').req('envelope.grab', { envelope });
  t.same([again.outcome, again.amount], ['already', before[0]!.amount], 'an earlier grabber is recognised after the rebuild');
  const after = await Promise.all(members.slice(3).map((u) => h.as(u).req('envelope.grab', { envelope })));
  t.same(after.map((a) => a.outcome).sort(), ['empty', 'empty', 'empty', 'grabbed', 'grabbed'], 'exactly the two shares left are handed out');
  const paid = [...before, ...after].filter((a) => a.outcome === 'grabbed').reduce((s, a) => s + a.amount!, 0);
  t.equal(paid, 800);
});

t.test('a burst: 300 members grab 100 shares at once', async (t) => {
  const h = walletHarness({ maxGroupMembers: 400, maxUsersPerCall: 400, envelopeMaxShares: 100 });
  const members = Array.from({ length: 300 }, (_, i) => `g${i}`);
  const conv = await group(h, 'a', members);
  await h.topup('a', 20_000);
  const { envelope } = await h.as('a').req('envelope.send', { conv, total: 20_000, count: 100, mode: 'lucky', key: 'burst' });
  const answers = await Promise.all(members.map((u) => h.as(u).req('envelope.grab', { envelope })));
  const grabbed = answers.filter((a) => a.outcome === 'grabbed');
  t.equal(grabbed.length, 100);
  t.equal(answers.filter((a) => a.outcome === 'empty').length, 200);
  t.equal(grabbed.reduce((s, a) => s + a.amount!, 0), 20_000);
  t.ok(grabbed.every((a) => a.amount! >= 1), 'every share at least a cent');
  const info = await h.as('a').req('envelope.info', { envelope });
  t.equal(new Set(info.claims.map((c) => c.user)).size, 100, 'no user twice');
});

t.test('grabs close together reach the members as one event', async (t) => {
  const h = walletHarness({ envelopeEventCoalesceMs: 50 });
  const members = ['b', 'c', 'd', 'e'];
  const conv = await group(h, 'a', members);
  await h.topup('a', 400);
  const { envelope } = await h.as('a').req('envelope.send', { conv, total: 400, count: 4, mode: 'lucky', key: 'co' });
  const answers = await Promise.all(members.map((u) => h.as(u).req('envelope.grab', { envelope })));
  t.same(h.delivery.of('a', 'envelope'), [], 'nothing before the window closes');
  await new Promise((resolve) => setTimeout(resolve, 120));
  const events = h.delivery.of('a', 'envelope') as EnvelopeEvent[];
  t.equal(events.length, 1, 'one event for the four grabs');
  t.same(events[0]!.grabs!.map((g) => [g.user, g.amount]).sort(), members.map((u, i) => [u, answers[i]!.amount]).sort());
  const max = Math.max(...answers.map((a) => a.amount!));
  t.same([events[0]!.left, events[0]!.luckiest], [0, members[answers.findIndex((a) => a.amount === max)]]);
});

t.test('a worker that does not own the group reads its members once for a burst, not once per grab', async (t) => {
  const store = new MemoryChatStore();
  let memberReads = 0;
  const listMembers = store.listMembers.bind(store);
  store.listMembers = (conv) => { memberReads++; return listMembers(conv); };
  let owned = true;
  const h = walletHarness({ grabMembershipCacheMs: 60_000 }, new MemoryGrabDecider(), { store, ownsConversation: () => owned });
  const members = Array.from({ length: 40 }, (_, i) => `w${i}`);
  const conv = await group(h, 'a', members);
  await h.topup('a', 1000);
  const { envelope } = await h.as('a').req('envelope.send', { conv, total: 1000, count: 10, mode: 'lucky', key: 'nw' });
  owned = false; // grabs now land on a worker that is not the group's writer
  memberReads = 0;
  const answers = await Promise.all(members.map((u) => h.as(u).req('envelope.grab', { envelope })));
  t.equal(answers.filter((a) => a.outcome === 'grabbed').length, 10);
  t.equal(memberReads, 1, 'one member read for 40 concurrent grabs');
  await t.rejects(h.as('outsider').req('envelope.grab', { envelope }), { name: 'LanternError', error: 'not_member' }, 'the snapshot still checks membership');
});

t.test('a decider rebuilt without a claim committed just after its read still answers that grabber \'already\'', async (t) => {
  let inner = new MemoryGrabDecider();
  const decider: GrabDecider = {
    load: (e, c, o) => inner.load(e, c, o), decide: (e, u, n) => inner.decide(e, u, n), forget: (e, u) => inner.forget(e, u), reassign: (e, u, d, k) => inner.reassign(e, u, d, k), drop: (e) => inner.drop(e),
  };
  const h = walletHarness({}, decider);
  const conv = await group(h, 'a', ['b', 'c', 'd']);
  await h.topup('a', 300);
  const { envelope } = await h.as('a').req('envelope.send', { conv, total: 300, count: 2, mode: 'equal', key: 'miss' });
  const b = await h.as('b').req('envelope.grab', { envelope });
  t.equal(b.outcome, 'grabbed');
  // Redis lost everything, and the rebuild read the claims before b's claim landed: b is unknown
  // to it and both shares look free; c and d take them (d's collides with b's and is re-decided).
  inner = new MemoryGrabDecider();
  const record = (await h.wallet.getEnvelope(envelope))!;
  await inner.load(record.envelope, [], { rebuild: true });
  await inner.decide(envelope, 'c', h.clock.now());
  await inner.decide(envelope, 'd', h.clock.now());
  t.same(await h.as('b').req('envelope.grab', { envelope }), { envelope, outcome: 'already', amount: b.amount, currency: 'CNY' },
    'b, told grabbed before, hears already with the same amount, not empty');
});

t.test('a grabber the rebuilt decider missed gives the share it was decided back: the last grabber is paid, not told empty', async (t) => {
  let inner = new MemoryGrabDecider();
  const decider: GrabDecider = {
    load: (e, c, o) => inner.load(e, c, o), decide: (e, u, n) => inner.decide(e, u, n), forget: (e, u) => inner.forget(e, u),
    reassign: (e, u, d, k) => inner.reassign(e, u, d, k), drop: (e) => inner.drop(e),
  };
  const h = walletHarness({}, decider);
  const conv = await group(h, 'a', ['b', 'c', 'd']);
  await h.topup('a', 300);
  const { envelope } = await h.as('a').req('envelope.send', { conv, total: 300, count: 3, mode: 'equal', key: 'gap' });
  const b = await h.as('b').req('envelope.grab', { envelope });
  // Redis lost everything and the rebuild read no claims (b's landed just after). c comes first and
  // collides with b's index (re-decided), then b retries and is decided a share it does not hold.
  inner = new MemoryGrabDecider();
  await inner.load((await h.wallet.getEnvelope(envelope))!.envelope, [], { rebuild: true });
  const c = await h.as('c').req('envelope.grab', { envelope });
  t.same(await h.as('b').req('envelope.grab', { envelope }), { envelope, outcome: 'already', amount: b.amount, currency: 'CNY' });
  const d = await h.as('d').req('envelope.grab', { envelope });
  t.same([c.outcome, d.outcome], ['grabbed', 'grabbed'], 'both remaining shares are paid; none is held back until expiry');
  const record = (await h.wallet.getEnvelope(envelope))!;
  t.equal(record.claims.reduce((sum, x) => sum + x.amount, 0), 300, 'the envelope is fully claimed');
  t.same(await h.as('a').req('envelope.grab', { envelope }).then((r) => r.outcome), 'empty', 'and then it is empty');
});
