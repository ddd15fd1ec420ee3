import t from 'tap';
import { grabDeciderContract } from '../contract/grab-decider.contract.ts';
import { MemoryGrabDecider } from './grab-decider.ts';

grabDeciderContract(t, 'memory', async () => {
  // Deciders made by one harness share state, as Redis deciders share the server: one instance.
  let shared: MemoryGrabDecider | undefined;
  return {
    make: () => (shared ??= new MemoryGrabDecider()),
    cleanup: async () => {},
  };
});

/** A clock the test moves by hand. */
const manualClock = (start: number) => ({ ms: start, now() { return this.ms; } });

t.test('memory: an envelope is kept for the retention after expiry, then dropped', async (t) => {
  const clock = manualClock(0);
  const decider = new MemoryGrabDecider({ retainAfterExpiryMs: 500, clock });
  await decider.load({ id: 'e', count: 2, expiresAt: 1_000 }, [{ user: 'alice', index: 1 }]);
  clock.ms = 1_400;
  t.same(await decider.decide('e', 'bob', 1_400), { outcome: 'expired' }, 'expired, still known within the retention');
  t.same(await decider.decide('e', 'alice', 1_400), { outcome: 'share', index: 1 }, 'decisions still answered');
  clock.ms = 1_500 + 1_000;
  t.same(await decider.decide('e', 'alice', clock.ms), { outcome: 'unknown' }, 'gone after the retention (and one sweep period)');
  t.equal(decider.size, 0);
});

t.test('memory: an envelope loaded after its expiry is kept for a full retention from the load', async (t) => {
  const clock = manualClock(100_000);
  const decider = new MemoryGrabDecider({ retainAfterExpiryMs: 500, clock });
  await decider.load({ id: 'old', count: 1, expiresAt: 1_000 }, [{ user: 'alice', index: 0 }]);
  clock.ms += 400;
  t.same(await decider.decide('old', 'alice', clock.ms), { outcome: 'share', index: 0 }, 'the expiry sweep can still read it');
});

t.test('memory: a steady flow of envelopes keeps memory bounded', async (t) => {
  const clock = manualClock(0);
  const decider = new MemoryGrabDecider({ retainAfterExpiryMs: 100, clock });
  let most = 0;
  for (let i = 0; i < 2_000; i++) {
    clock.ms += 10;
    await decider.load({ id: `e${i}`, count: 3, expiresAt: clock.ms + 100 }, []);
    await decider.decide(`e${i}`, 'u', clock.ms);
    most = Math.max(most, decider.size);
  }
  // Alive for expiry (100) + retention (100) + at most one sweep period (1000), one load per 10 ms.
  t.ok(most <= 121, `at most ${most} envelopes held at once out of 2000`);
});

t.test('memory: bad options are refused with the option named', async (t) => {
  t.throws(() => new MemoryGrabDecider({ retainAfterExpiryMs: -1 }), /retainAfterExpiryMs/);
  t.throws(() => new MemoryGrabDecider({ retainAfterExpiryMs: 1.5 }), /retainAfterExpiryMs/);
});
