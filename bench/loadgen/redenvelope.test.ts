// Smoke test of the redenvelope scenario against a real embedded Lantern (memory store): one group
// set up in chunks of maxUsersPerCall, senders topped up through the admin API, every member grabs
// every envelope, and the end-of-run verification holds. Then the verifier on doctored data.
import t from 'tap';
import { encodeFrame } from '../../protocol/codec.ts';
import type { EnvelopeInfo } from '../../protocol/frames.ts';
import { startBenchLantern } from '../lantern-server.ts';
import { DEFAULT_LOAD_SETTINGS } from './messages.ts';
import { runRedEnvelopeLoad, spreadSenders, verifyEnvelopes } from './redenvelope-run.ts';
import { isEnvelopeEvent } from './scenarios/redenvelope.ts';

t.test('every member grabs every envelope; the shares of each add up to its total', async (t) => {
  const members = 20, count = 5, total = 100;
  // maxUsersPerCall 8: the group needs a create and two adds.
  const lantern = await startBenchLantern('memory', { maxUsersPerCall: 8, maxGroupMembers: members + 1 });
  t.teardown(() => lantern.close());
  const run = await runRedEnvelopeLoad({
    urls: [lantern.url], chat: lantern.chat, adminToken: lantern.adminToken, members, senders: 2,
    envelope: { count, total, mode: 'lucky' }, usersPerCall: 8, workers: 2,
    load: { ...DEFAULT_LOAD_SETTINGS, mode: 'max', window: 2, warmupMs: 200, durationMs: 1000, drainMs: 3000 },
  });
  const { load: r, verification: v } = run;
  t.same(run.setup.senders, [0, 10], 'one sender in each worker');
  t.equal(r.errors, 0, `no errors (${r.errorSamples.join('; ')})`);
  t.equal(r.undelivered, 0, 'every grab answered, every envelope emptied');
  const envelopes = r.grabs!.envelopes.length;
  t.ok(r.sent > 0 && envelopes >= r.sent, `${r.sent} envelopes sent in the window, ${envelopes} in all`);
  const all = r.grabs!.all;
  t.equal(all.grabbed + all.already + all.empty + all.expired, envelopes * members, 'each member grabbed each envelope once');
  t.equal(all.grabbed, envelopes * count, 'each envelope handed out exactly its shares');
  t.equal(all.empty, envelopes * (members - count), 'the other members were told empty');
  const window = r.grabs!.window;
  t.equal(window.grabbed + window.already + window.empty + window.expired, r.delivered, 'the answered grabs of the window are the latency samples');
  t.ok(r.msgsPerSec > 0 && r.completedPerSec > 0, `${r.msgsPerSec.toFixed(0)} grabs/s, ${r.completedPerSec.toFixed(0)} envelopes/s`);
  t.ok(r.p50Ms > 0 && r.p50Ms <= r.p99Ms && r.p99Ms <= r.maxMs, `0 < p50 ${r.p50Ms} <= p99 ${r.p99Ms} <= max ${r.maxMs}`);
  t.match(v, { ok: true, problems: [], envelopes, fullyGrabbed: envelopes, claims: envelopes * count, grabbedAnswers: envelopes * count, unseenClaims: 0 });
});

t.test('senders are spread evenly over the members', async (t) => {
  t.same(spreadSenders(500, 4), [0, 125, 250, 375]);
  t.same(spreadSenders(3, 3), [0, 1, 2]);
  t.throws(() => spreadSenders(3, 4), RangeError);
});

t.test('members who do not send skip envelope events undecoded, and nothing else', async (t) => {
  const bytes = (frame: object): Buffer => Buffer.from(encodeFrame(frame));
  t.ok(isEnvelopeEvent(bytes({ t: 'envelope', conv: 'g:1', envelope: 'e1', left: 3, grabs: [{ user: 'u1', amount: 5, ts: 1 }] })));
  t.notOk(isEnvelopeEvent(bytes({ t: 'msg', m: { conv: 'g:1', seq: 2, kind: 'envelope', body: { envelope: 'e1' } } })), 'the card is decoded');
  t.notOk(isEnvelopeEvent(bytes({ t: 'res', id: 7, data: { envelope: 'e1', outcome: 'empty', currency: 'CNY' } })), 'grab answers are decoded');
  t.notOk(isEnvelopeEvent(bytes({ conv: 'g:1', t: 'envelope' })), 'unsure (t not first): decoded');
  t.notOk(isEnvelopeEvent(Buffer.alloc(0)));
});

t.test('the verifier catches wrong sums, double claims and answers that do not match the claims', async (t) => {
  const info = (claims: Array<[string, number]>, over: Partial<EnvelopeInfo> = {}): EnvelopeInfo => ({
    envelope: 'e1', conv: 'g:1', sender: 'u0', currency: 'CNY', total: 100, count: 3, mode: 'lucky', greeting: '',
    createdAt: 1, expiresAt: 2, claims: claims.map(([user, amount]) => ({ user, amount, ts: 1 })), left: 3 - claims.length, ...over,
  });
  const good = info([['u1', 50], ['u2', 30], ['u3', 20]]);
  const told: Array<[string, string, number, 'grabbed' | 'already']> = [['e1', 'u1', 50, 'grabbed'], ['e1', 'u2', 30, 'grabbed'], ['e1', 'u3', 20, 'grabbed']];
  t.match(verifyEnvelopes([good], told), { ok: true, envelopes: 1, fullyGrabbed: 1, claims: 3, grabbedAnswers: 3, unseenClaims: 0, problems: [] });

  const short = verifyEnvelopes([info([['u1', 50], ['u2', 30], ['u3', 19]])], [['e1', 'u1', 50, 'grabbed'], ['e1', 'u2', 30, 'grabbed'], ['e1', 'u3', 19, 'grabbed']]);
  t.equal(short.ok, false);
  t.match(short.problems, [/e1: all 3 shares went, summing to 99 cents of 100/]);

  const twice = verifyEnvelopes([info([['u1', 50], ['u1', 30], ['u3', 20]])], told);
  t.match(twice.problems, [/e1: u1 claimed twice/, /u1 was told grabbed 50 cents, the claim says 30/, /u2 was told grabbed 30 cents but has no claim/]);

  const wrongAmount = verifyEnvelopes([good], [['e1', 'u1', 51, 'grabbed'], ...told.slice(1)]);
  t.match(wrongAmount.problems, [/u1 was told grabbed 51 cents, the claim says 50/]);

  const toldTwice = verifyEnvelopes([good], [...told, ['e1', 'u1', 50, 'grabbed']]);
  t.match(toldTwice.problems, [/u1 was told grabbed twice/]);

  const partial = verifyEnvelopes([info([['u1', 50]])], [['e1', 'u1', 50, 'grabbed']]);
  t.match(partial, { ok: true, fullyGrabbed: 0 }, 'shares left: the sum is not yet the total');
  t.match(verifyEnvelopes([info([['u1', 101]], { count: 3 })], []).problems, [/more than the total 100/]);
  t.match(verifyEnvelopes([], [], ['e9']).problems, [/e9: .* not_found/]);
  t.equal(verifyEnvelopes([good], told.slice(1)).unseenClaims, 1, 'a claim nobody was told about is counted');
});
