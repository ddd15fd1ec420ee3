import t from 'tap';
import { stockGateContract } from '../contract/stock-gate.contract.ts';
import { GATE_HOLD_AFTER_LOAD_MS, MemoryStockGate } from './stock-gate.ts';

stockGateContract(t, 'memory', async () => {
  // Gates made by one harness share state, as Redis gates share the server: one instance.
  let shared: MemoryStockGate | undefined;
  return {
    make: () => (shared ??= new MemoryStockGate()),
    cleanup: async () => {},
  };
});

/** A clock the test moves by hand. */
const manualClock = (start: number) => ({ ms: start, now() { return this.ms; } });

const NOTHING_HELD = { taken: 0, users: [], pending: [] };
const sale = (id: string, at: number, retainUntil: number) =>
  ({ id, stock: 5, perUserLimit: 2, startAt: at, endAt: at + 1_000, retainUntil });

t.test('memory: a sale is kept until its retainUntil, then dropped', async (t) => {
  const start = 1_000_000;
  const clock = manualClock(start);
  const gate = new MemoryStockGate({ clock });
  const retainUntil = start + GATE_HOLD_AFTER_LOAD_MS + 5_000;
  await gate.load(sale('s', start, retainUntil), NOTHING_HELD);
  const order = { order: 'o1', user: 'alice', units: 1, now: start, payBy: start + 500 };
  t.same(await gate.decide('s', order), { outcome: 'admit' });
  clock.ms = retainUntil - 1;
  t.same(await gate.decide('s', order), { outcome: 'duplicate', earlier: 'admit' }, 'still known just before retainUntil');
  clock.ms = retainUntil + 1_000;
  t.same(await gate.decide('s', order), { outcome: 'unknown' }, 'gone after it (and one sweep period)');
  t.equal(gate.size, 0);
});

t.test('memory: a sale loaded at or after its retainUntil is held for a while from the load', async (t) => {
  const clock = manualClock(10_000_000);
  const gate = new MemoryStockGate({ clock });
  await gate.load(sale('late', 0, 1_000), NOTHING_HELD);
  clock.ms += GATE_HOLD_AFTER_LOAD_MS - 1;
  t.equal(await gate.remaining('late'), 5, 'the load was not undone at once');
  t.same(await gate.decide('late', { order: 'o', user: 'u', units: 1, now: clock.ms, payBy: clock.ms }), { outcome: 'closed' }, 'it answers from its state');
  clock.ms += 1_001;
  await gate.decide('other', { order: 'o', user: 'u', units: 1, now: clock.ms, payBy: clock.ms });
  t.equal(gate.size, 0, 'then it goes');
});

t.test('memory: a steady flow of sales keeps memory bounded', async (t) => {
  const clock = manualClock(0);
  const gate = new MemoryStockGate({ clock });
  let most = 0;
  for (let i = 0; i < 2_000; i++) {
    clock.ms += 100;
    await gate.load(sale(`s${i}`, clock.ms, clock.ms + GATE_HOLD_AFTER_LOAD_MS), NOTHING_HELD);
    await gate.decide(`s${i}`, { order: 'o', user: 'u', units: 1, now: clock.ms, payBy: clock.ms + 10 });
    most = Math.max(most, gate.size);
  }
  // Alive for the retention (60 s) + at most one sweep period (1 s), one load per 100 ms.
  const bound = (GATE_HOLD_AFTER_LOAD_MS + 1_000) / 100 + 1;
  t.ok(most <= bound, `at most ${most} sales held at once out of 2000 (bound ${bound})`);
  t.ok(most >= GATE_HOLD_AFTER_LOAD_MS / 100, 'and each was kept for its retention');
});
