// The GrabDecider conformance suite (engine/wallet/ports.ts): memory and Redis. Times are real
// wall-clock values an hour ahead, so Redis keys get sane TTLs; expiry is tested through the
// `now` argument of decide(), which is the decider's only clock for it.
import type { Test } from 'tap';
import type { GrabDecider, GrabDecision } from '../../engine/wallet/ports.ts';
import { uid } from './fixtures.ts';

export interface GrabDeciderHarness {
  /** A decider; every one made by a harness shares state with the others (as workers share Redis). */
  make(): GrabDecider;
  cleanup(): Promise<void>;
}

const HOUR = 3600_000;

const share = (index: number): GrabDecision => ({ outcome: 'share', index });
const EMPTY: GrabDecision = { outcome: 'empty' };
const EXPIRED: GrabDecision = { outcome: 'expired' };
const UNKNOWN: GrabDecision = { outcome: 'unknown' };

/** The indices of the 'share' answers, in answer order. */
const indices = (decisions: readonly GrabDecision[]): number[] =>
  decisions.flatMap((d) => (d.outcome === 'share' ? [d.index] : []));

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

export function grabDeciderContract(t: Test, name: string, makeHarness: () => Promise<GrabDeciderHarness>): void {
  const withHarness = (title: string, body: (t: Test, h: GrabDeciderHarness, now: number) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const h = await makeHarness();
      t.teardown(() => h.cleanup());
      await body(t, h, Date.now());
    });

  withHarness('an envelope never loaded is unknown', async (t, h) => {
    const decider = h.make();
    t.same(await decider.decide(uid('env'), uid('u'), Date.now()), UNKNOWN);
    await decider.forget(uid('env'), uid('u'));
    await decider.drop(uid('env'));
    t.pass('forget and drop of an unknown envelope do not fail');
  });

  withHarness('N users get the N shares in order, the next finds it empty', async (t, h, now) => {
    const decider = h.make();
    const id = uid('env');
    await decider.load({ id, count: 4, expiresAt: now + HOUR }, []);
    const users = range(4).map(() => uid('u'));
    const answers: GrabDecision[] = [];
    for (const user of users) answers.push(await decider.decide(id, user, now));
    t.same(answers, range(4).map(share), 'shares 0..3, one each, in order');
    t.same(await decider.decide(id, uid('u'), now), EMPTY, 'a fifth user finds none left');
    t.same(await decider.decide(id, users[2]!, now), share(2), 'an earlier grabber still gets their index');
  });

  withHarness('a state rebuilt after a loss says so on its no answers; one loaded at send does not', async (t, h, now) => {
    const decider = h.make();
    const atSend = uid('env'), rebuilt = uid('env');
    await decider.load({ id: atSend, count: 1, expiresAt: now + HOUR }, []);
    await decider.load({ id: rebuilt, count: 2, expiresAt: now + HOUR }, [{ user: uid('u'), index: 0 }], { rebuild: true });
    await decider.decide(atSend, uid('u'), now);
    t.same(await decider.decide(atSend, uid('u'), now), EMPTY, 'loaded at send: plain empty');
    t.same(await decider.decide(rebuilt, uid('u'), now), share(1), 'the share no claim held');
    t.same(await decider.decide(rebuilt, uid('u'), now), { outcome: 'empty', rebuilt: true }, 'rebuilt: empty, flagged');
    t.same(await decider.decide(rebuilt, uid('u'), now + HOUR), { outcome: 'expired', rebuilt: true }, 'rebuilt: expired, flagged');
    t.same(await decider.decide(atSend, uid('u'), now + HOUR), { outcome: 'expired' }, 'loaded at send: plain expired');
  });

  withHarness('the same user asking again gets the same index, also after expiry', async (t, h, now) => {
    const decider = h.make();
    const id = uid('env');
    const expiresAt = now + HOUR;
    await decider.load({ id, count: 3, expiresAt }, []);
    const alice = uid('alice');
    t.same(await decider.decide(id, uid('u'), now), share(0));
    t.same(await decider.decide(id, alice, now), share(1));
    t.same(await decider.decide(id, alice, now + 1), share(1), 'asked again');
    t.same(await decider.decide(id, alice, expiresAt), share(1), 'asked again at expiry');
    t.same(await decider.decide(id, alice, expiresAt + HOUR), share(1), 'asked again long after');
    t.same(await decider.decide(id, uid('u'), now), share(2), 'her second ask took nothing from the pool');
  });

  withHarness('a new user at or after expiresAt finds it expired', async (t, h, now) => {
    const decider = h.make();
    const id = uid('env');
    const expiresAt = now + HOUR;
    await decider.load({ id, count: 3, expiresAt }, []);
    t.same(await decider.decide(id, uid('u'), expiresAt - 1), share(0), 'one ms before expiry still grabs');
    t.same(await decider.decide(id, uid('u'), expiresAt), EXPIRED, 'at expiresAt');
    t.same(await decider.decide(id, uid('u'), expiresAt + 5_000), EXPIRED, 'after');
    t.same(await decider.decide(id, uid('u'), now), share(1), 'the shares were not consumed by the refusals');
  });

  withHarness('an emptied envelope that expires answers expired to newcomers', async (t, h, now) => {
    const decider = h.make();
    const id = uid('env');
    await decider.load({ id, count: 1, expiresAt: now + HOUR }, []);
    await decider.decide(id, uid('u'), now);
    t.same(await decider.decide(id, uid('u'), now + HOUR), EXPIRED);
  });

  withHarness('load with claimed keeps those users\' indices and never hands them out again', async (t, h, now) => {
    const decider = h.make();
    const id = uid('env');
    const [alice, bob] = [uid('alice'), uid('bob')];
    await decider.load({ id, count: 5, expiresAt: now + HOUR }, [{ user: alice, index: 1 }, { user: bob, index: 3 }]);
    t.same(await decider.decide(id, bob, now), share(3), 'bob keeps 3');
    const others: GrabDecision[] = [];
    for (let i = 0; i < 4; i++) others.push(await decider.decide(id, uid('u'), now));
    t.same(others, [share(0), share(2), share(4), EMPTY], 'newcomers get only the free shares');
    t.same(await decider.decide(id, alice, now), share(1), 'alice keeps 1');
  });

  withHarness('load with every share claimed leaves nothing to grab', async (t, h, now) => {
    const decider = h.make();
    const id = uid('env');
    const alice = uid('alice');
    await decider.load({ id, count: 2, expiresAt: now + HOUR }, [{ user: uid('u'), index: 0 }, { user: alice, index: 1 }]);
    t.same(await decider.decide(id, uid('u'), now), EMPTY);
    t.same(await decider.decide(id, alice, now), share(1));
  });

  withHarness('a second load of an installed envelope changes nothing', async (t, h, now) => {
    const decider = h.make();
    const id = uid('env');
    const [alice, bob] = [uid('alice'), uid('bob')];
    await decider.load({ id, count: 3, expiresAt: now + HOUR }, []);
    t.same(await decider.decide(id, alice, now), share(0));
    await decider.load({ id, count: 3, expiresAt: now + HOUR }, []);
    await decider.load({ id, count: 9, expiresAt: now + 1 }, [{ user: bob, index: 0 }]);
    t.same(await decider.decide(id, alice, now), share(0), 'alice keeps her decision');
    t.same(await decider.decide(id, bob, now + 10), share(1), 'bob\'s claim in the second load was ignored; the first expiry holds');
    t.same([await decider.decide(id, uid('u'), now), await decider.decide(id, uid('u'), now)], [share(2), EMPTY], 'the first count holds');
  });

  withHarness('concurrent loads: one installs whole, the others change nothing', async (t, h, now) => {
    const deciders = [h.make(), h.make(), h.make()];
    const id = uid('env');
    // Loader i says its two users hold shares 0 and 1; only one loader's pair can be true.
    const pairs = range(12).map(() => [uid('a'), uid('b')] as const);
    await Promise.all(pairs.map(([a, b], i) =>
      deciders[i % 3]!.load({ id, count: 3, expiresAt: now + HOUR }, [{ user: a, index: 0 }, { user: b, index: 1 }])));
    t.same(await deciders[0]!.decide(id, uid('u'), now), share(2), 'exactly one share was left free');
    const firsts = await Promise.all(pairs.map(([a]) => deciders[1]!.decide(id, a, now)));
    const seconds = await Promise.all(pairs.map(([, b]) => deciders[2]!.decide(id, b, now)));
    const winners = range(12).filter((i) => firsts[i]!.outcome === 'share');
    t.equal(winners.length, 1, 'one loader\'s claims were installed');
    t.same(firsts[winners[0]!], share(0));
    t.same(seconds[winners[0]!], share(1), 'both of the winner\'s claims');
    t.same(indices(seconds), [1], 'no other loader\'s claim');
  });

  withHarness('forget lets the user take another free index; the old one is not reused', async (t, h, now) => {
    const decider = h.make();
    const id = uid('env');
    const alice = uid('alice');
    await decider.load({ id, count: 3, expiresAt: now + HOUR }, []);
    t.same(await decider.decide(id, alice, now), share(0));
    await decider.forget(id, alice);
    t.same(await decider.decide(id, alice, now), share(1), 'a new free index');
    t.same(await decider.decide(id, alice, now), share(1), 'which then sticks');
    t.same(await decider.decide(id, uid('u'), now), share(2));
    t.same(await decider.decide(id, uid('u'), now), EMPTY, 'index 0 was not returned to the pool');
    await decider.forget(id, alice);
    t.same(await decider.decide(id, alice, now), EMPTY, 'forgotten again, with nothing left');
    await decider.forget(id, uid('never-asked'));
    t.same(await decider.decide(id, uid('u'), now), EMPTY, 'forgetting a user with no decision changes nothing');
  });

  withHarness('reassign: the user keeps the held index, the decided one is handed out next', async (t, h, now) => {
    const decider = h.make();
    const id = uid('env');
    const alice = uid('alice'), bob = uid('bob');
    // A rebuild missed alice's claim on index 2: index 2 looks free, and alice is decided index 0.
    await decider.load({ id, count: 3, expiresAt: now + HOUR }, [], { rebuild: true });
    t.same(await decider.decide(id, alice, now), share(0));
    await decider.reassign(id, alice, 0, 2);
    t.same(await decider.decide(id, alice, now), share(2), 'alice now holds what the store says');
    t.same(await decider.decide(id, bob, now), share(0), 'the index alice gave back goes next');
    t.same(await decider.decide(id, uid('u'), now), share(1));
    t.same(await decider.decide(id, uid('u'), now), { outcome: 'empty', rebuilt: true }, 'index 2 is not handed out again');
  });

  withHarness('reassign after the last index went puts it back; a stale or unknown reassign changes nothing', async (t, h, now) => {
    const decider = h.make();
    const id = uid('env');
    const alice = uid('alice'), bob = uid('bob');
    await decider.load({ id, count: 2, expiresAt: now + HOUR }, [], { rebuild: true });
    t.same(await decider.decide(id, alice, now), share(0));
    t.same(await decider.decide(id, uid('u'), now), share(1));
    // alice's missed claim is on an index another user now holds in the decider; only the decided one frees.
    await decider.reassign(id, alice, 0, 1);
    t.same(await decider.decide(id, bob, now), share(0), 'the freed index is handed out');
    await decider.reassign(id, bob, 1, 0);
    t.same(await decider.decide(id, bob, now), share(0), 'bob was not decided index 1: nothing changes');
    t.same(await decider.decide(id, uid('u'), now), { outcome: 'empty', rebuilt: true }, 'and nothing was freed');
    await decider.reassign(uid('env'), alice, 0, 1);
    t.pass('reassign on an unknown envelope does not fail');
  });

  withHarness('forget of a claimed user from load frees no index either', async (t, h, now) => {
    const decider = h.make();
    const id = uid('env');
    const alice = uid('alice');
    await decider.load({ id, count: 2, expiresAt: now + HOUR }, [{ user: alice, index: 0 }]);
    await decider.forget(id, alice);
    t.same(await decider.decide(id, alice, now), share(1));
    t.same(await decider.decide(id, uid('u'), now), EMPTY);
  });

  withHarness('drop forgets the envelope; a later load installs it afresh', async (t, h, now) => {
    const decider = h.make();
    const id = uid('env');
    const alice = uid('alice');
    await decider.load({ id, count: 2, expiresAt: now + HOUR }, []);
    t.same(await decider.decide(id, alice, now), share(0));
    await decider.drop(id);
    t.same(await decider.decide(id, alice, now), UNKNOWN, 'her decision is gone with it');
    t.same(await decider.decide(id, uid('u'), now), UNKNOWN);
    await decider.load({ id, count: 2, expiresAt: now + HOUR }, [{ user: alice, index: 1 }]);
    t.same(await decider.decide(id, alice, now), share(1), 'the new load is installed, not ignored');
    t.same(await decider.decide(id, uid('u'), now), share(0));
  });

  withHarness('envelopes are independent', async (t, h, now) => {
    const decider = h.make();
    const [a, b] = [uid('env'), uid('env')];
    const alice = uid('alice');
    await decider.load({ id: a, count: 1, expiresAt: now + HOUR }, []);
    await decider.load({ id: b, count: 2, expiresAt: now + 10 }, []);
    t.same(await decider.decide(a, uid('u'), now), share(0));
    t.same(await decider.decide(a, alice, now), EMPTY, 'a is empty');
    t.same(await decider.decide(b, alice, now), share(0), 'b is not, and alice has nothing in it yet');
    t.same(await decider.decide(b, uid('u'), now + 10), EXPIRED, 'b expires on its own time');
    t.same(await decider.decide(a, alice, now + 10), EMPTY, 'a does not');
    await decider.forget(b, alice);
    await decider.drop(b);
    t.same(await decider.decide(a, uid('u'), now), EMPTY, 'dropping b leaves a');
    t.same(await decider.decide(b, alice, now), UNKNOWN);
  });

  withHarness('500 concurrent grabbers of 100 shares: exactly 100 distinct shares, 400 empty', async (t, h, now) => {
    const deciders = [h.make(), h.make(), h.make()];
    const id = uid('env');
    await deciders[0]!.load({ id, count: 100, expiresAt: now + HOUR }, []);
    const answers = await Promise.all(range(500).map((i) => deciders[i % 3]!.decide(id, `u${i}`, now)));
    const got = indices(answers);
    t.equal(got.length, 100, '100 shares handed out');
    t.same([...got].sort((x, y) => x - y), range(100), 'each index once');
    t.equal(answers.filter((a) => a.outcome === 'empty').length, 400, 'everyone else finds it empty');
  });

  withHarness('200 concurrent grabs by one user decide one index', async (t, h, now) => {
    const deciders = [h.make(), h.make(), h.make()];
    const id = uid('env');
    const alice = uid('alice');
    await deciders[0]!.load({ id, count: 5, expiresAt: now + HOUR }, []);
    const answers = await Promise.all(range(200).map((i) => deciders[i % 3]!.decide(id, alice, now)));
    t.same(new Set(answers.map((a) => JSON.stringify(a))), new Set([JSON.stringify(share(0))]), 'every answer is share 0');
    t.same(await deciders[1]!.decide(id, uid('u'), now), share(1), 'she took one share only');
  });

  withHarness('load refuses a malformed envelope or claim', async (t, h, now) => {
    const decider = h.make();
    const expiresAt = now + HOUR;
    await t.rejects(decider.load({ id: uid('env'), count: 0, expiresAt }, []), RangeError, 'count 0');
    await t.rejects(decider.load({ id: uid('env'), count: 2.5, expiresAt }, []), RangeError, 'fractional count');
    await t.rejects(decider.load({ id: uid('env'), count: 2, expiresAt: Number.NaN }, []), RangeError, 'no expiry');
    await t.rejects(decider.load({ id: uid('env'), count: 2, expiresAt }, [{ user: 'a', index: 2 }]), RangeError, 'index past the shares');
    await t.rejects(decider.load({ id: uid('env'), count: 2, expiresAt }, [{ user: 'a', index: 0 }, { user: 'b', index: 0 }]), RangeError, 'index claimed twice');
    await t.rejects(decider.load({ id: uid('env'), count: 2, expiresAt }, [{ user: 'a', index: 0 }, { user: 'a', index: 1 }]), RangeError, 'user claims twice');
  });
}
