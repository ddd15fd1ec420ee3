// The StockGate conformance suite (engine/sales/ports.ts): memory and Redis. Times are real
// wall-clock values around now, so Redis keys get sane TTLs; the sale window is tested through the
// `now` of decide(), which is the gate's only clock for it.
//
// What the suite pins down beyond the port's comments: refusals (sold_out, limit_reached) are
// remembered per order id like admissions, not_open and closed are not; release forgets the order
// entirely, so the same order id is then decided afresh; settle keeps the order's answer (duplicate
// of admit) and its units taken.
import type { Test } from 'tap';
import type { GateDecision, GateHoldings, GateSale, StockGate } from '../../engine/sales/ports.ts';
import { uid } from './fixtures.ts';

export interface StockGateHarness {
  /** A gate; every one made by a harness shares state with the others (as workers share Redis). */
  make(): StockGate;
  cleanup(): Promise<void>;
}

const MINUTE = 60_000;
const HOUR = 3600_000;

const ADMIT: GateDecision = { outcome: 'admit' };
const SOLD_OUT: GateDecision = { outcome: 'sold_out' };
const LIMIT: GateDecision = { outcome: 'limit_reached' };
const NOT_OPEN: GateDecision = { outcome: 'not_open' };
const CLOSED: GateDecision = { outcome: 'closed' };
const UNKNOWN: GateDecision = { outcome: 'unknown' };
const duplicate = (earlier: 'admit' | 'sold_out' | 'limit_reached'): GateDecision => ({ outcome: 'duplicate', earlier });

const NOTHING_HELD: GateHoldings = { taken: 0, users: [], pending: [] };

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const count = (decisions: readonly GateDecision[], outcome: GateDecision['outcome']): number =>
  decisions.filter((d) => d.outcome === outcome).length;

export function stockGateContract(t: Test, name: string, makeHarness: () => Promise<StockGateHarness>): void {
  const withHarness = (title: string, body: (t: Test, h: StockGateHarness, now: number) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const h = await makeHarness();
      t.teardown(() => h.cleanup());
      await body(t, h, Date.now());
    });

  /** A sale open since a minute ago for an hour, kept two hours. */
  const saleAt = (now: number, fields: Partial<GateSale> = {}): GateSale => ({
    id: uid('sale'), stock: 10, perUserLimit: 5, startAt: now - MINUTE, endAt: now + HOUR, retainUntil: now + 2 * HOUR, ...fields,
  });
  /** An attempt by `user` for `units`, with a fresh order id unless given, due in 15 minutes. */
  const attempt = (user: string, units: number, now: number, order = uid('o'), payBy = now + 15 * MINUTE) =>
    ({ order, user, units, now, payBy });

  withHarness('a sale never loaded is unknown; the other calls on it do not fail', async (t, h, now) => {
    const gate = h.make();
    const id = uid('sale');
    t.same(await gate.decide(id, attempt(uid('u'), 1, now)), UNKNOWN);
    t.equal(await gate.remaining(id), undefined, 'no remaining count');
    t.same(await gate.due(id, now + HOUR, 10), [], 'nothing due');
    await gate.release(id, uid('o'));
    await gate.settle(id, uid('o'));
    await gate.drop(id);
    t.same(await gate.decide(id, attempt(uid('u'), 1, now)), UNKNOWN, 'release, settle and drop did not install it');
  });

  withHarness('admit takes the units; the stock runs out per request size', async (t, h, now) => {
    const gate = h.make();
    const sale = saleAt(now, { stock: 5 });
    await gate.load(sale, NOTHING_HELD);
    t.equal(await gate.remaining(sale.id), 5, 'the whole stock');
    t.same(await gate.decide(sale.id, attempt(uid('u'), 3, now)), ADMIT);
    t.equal(await gate.remaining(sale.id), 2);
    t.same(await gate.decide(sale.id, attempt(uid('u'), 3, now)), SOLD_OUT, '3 when 2 remain is sold out for it');
    t.equal(await gate.remaining(sale.id), 2, 'a refusal takes nothing');
    t.same(await gate.decide(sale.id, attempt(uid('u'), 2, now)), ADMIT, 'while 2 may still be had');
    t.equal(await gate.remaining(sale.id), 0);
    t.same(await gate.decide(sale.id, attempt(uid('u'), 1, now)), SOLD_OUT);
  });

  withHarness('the window: not open before startAt, closed from endAt, neither remembered', async (t, h, now) => {
    const gate = h.make();
    const sale = saleAt(now, { startAt: now + MINUTE, endAt: now + 2 * MINUTE });
    await gate.load(sale, NOTHING_HELD);
    const early = attempt(uid('u'), 1, sale.startAt - 1);
    t.same(await gate.decide(sale.id, early), NOT_OPEN, 'one ms before the start');
    t.same(await gate.decide(sale.id, { ...early, now: sale.startAt }), ADMIT, 'the same attempt retried at the start wins');
    t.same(await gate.decide(sale.id, attempt(uid('u'), 1, sale.endAt - 1)), ADMIT, 'one ms before the end');
    const late = attempt(uid('u'), 1, sale.endAt);
    t.same(await gate.decide(sale.id, late), CLOSED, 'at endAt');
    t.same(await gate.decide(sale.id, attempt(uid('u'), 1, sale.endAt + HOUR)), CLOSED, 'after');
    t.same(await gate.decide(sale.id, { ...late, now: sale.endAt - 1 }), ADMIT, 'a closed answer is not remembered either (a worker whose clock ran ahead)');
    t.equal(await gate.remaining(sale.id), 7, 'only the three admissions took units');
  });

  withHarness('the window is checked before the limit and the stock', async (t, h, now) => {
    const gate = h.make();
    const sale = saleAt(now, { stock: 1, perUserLimit: 1, startAt: now + MINUTE, endAt: now + 2 * MINUTE });
    await gate.load(sale, NOTHING_HELD);
    t.same(await gate.decide(sale.id, attempt(uid('u'), 5, now)), NOT_OPEN, 'over the limit and the stock, and early');
    t.same(await gate.decide(sale.id, attempt(uid('u'), 5, sale.endAt)), CLOSED, 'over the limit and the stock, and late');
  });

  withHarness('a buyer holds at most perUserLimit units; the limit is checked before the stock', async (t, h, now) => {
    const gate = h.make();
    const sale = saleAt(now, { stock: 6, perUserLimit: 3 });
    await gate.load(sale, NOTHING_HELD);
    const alice = uid('alice');
    t.same(await gate.decide(sale.id, attempt(alice, 4, now)), LIMIT, 'one request above the limit');
    t.same(await gate.decide(sale.id, attempt(alice, 2, now)), ADMIT);
    t.same(await gate.decide(sale.id, attempt(alice, 2, now)), LIMIT, '2 held + 2 > 3');
    t.same(await gate.decide(sale.id, attempt(alice, 1, now)), ADMIT, '2 held + 1 == 3');
    t.same(await gate.decide(sale.id, attempt(alice, 1, now)), LIMIT, 'at the limit');
    t.same(await gate.decide(sale.id, attempt(uid('bob'), 3, now)), ADMIT, 'another buyer has their own allowance');
    t.equal(await gate.remaining(sale.id), 0);
    t.same(await gate.decide(sale.id, attempt(alice, 1, now)), LIMIT, 'sold out, but she hears limit_reached');
    t.same(await gate.decide(sale.id, attempt(uid('carol'), 4, now)), LIMIT, 'a newcomer over the limit too');
    t.same(await gate.decide(sale.id, attempt(uid('dave'), 1, now)), SOLD_OUT, 'within the limit: sold out');
  });

  withHarness('a decided order id is a duplicate of its first answer, before every other check', async (t, h, now) => {
    const gate = h.make();
    const sale = saleAt(now, { stock: 2, perUserLimit: 2 });
    await gate.load(sale, NOTHING_HELD);
    const alice = uid('alice'), bob = uid('bob');
    const admitted = attempt(alice, 2, now);
    t.same(await gate.decide(sale.id, admitted), ADMIT);
    t.same(await gate.decide(sale.id, admitted), duplicate('admit'), 'asked again');
    t.same(await gate.decide(sale.id, { ...admitted, now: sale.endAt + HOUR }), duplicate('admit'), 'asked again after the close');
    const limited = attempt(alice, 1, now);
    t.same(await gate.decide(sale.id, limited), LIMIT);
    const soldOut = attempt(bob, 1, now);
    t.same(await gate.decide(sale.id, soldOut), SOLD_OUT);
    await gate.release(sale.id, admitted.order);
    t.equal(await gate.remaining(sale.id), 2, 'the stock came back');
    t.same(await gate.decide(sale.id, limited), duplicate('limit_reached'), 'her refused key keeps its answer though she could buy now');
    t.same(await gate.decide(sale.id, soldOut), duplicate('sold_out'), 'his too though units are back');
    t.same(await gate.decide(sale.id, { ...soldOut, now: sale.startAt - 1 }), duplicate('sold_out'), 'also before the window');
    t.same(await gate.decide(sale.id, attempt(bob, 1, now)), ADMIT, 'a new key of his is decided afresh');
    t.equal(await gate.remaining(sale.id), 1, 'duplicates took nothing');
  });

  withHarness('release returns a pending order\'s units to the stock and the buyer, once; the order is forgotten', async (t, h, now) => {
    const gate = h.make();
    const sale = saleAt(now, { stock: 4, perUserLimit: 3 });
    await gate.load(sale, NOTHING_HELD);
    const alice = `u:${uid('alice')}:x`; // ids with the separators an adapter might use
    const first = attempt(alice, 2, now, `o:${uid('o')}`);
    t.same(await gate.decide(sale.id, first), ADMIT);
    const second = attempt(alice, 1, now);
    t.same(await gate.decide(sale.id, second), ADMIT);
    t.equal(await gate.remaining(sale.id), 1);
    await gate.release(sale.id, first.order);
    t.equal(await gate.remaining(sale.id), 3, 'its 2 units are back');
    await gate.release(sale.id, first.order);
    t.equal(await gate.remaining(sale.id), 3, 'a second release gives nothing more');
    t.same(await gate.due(sale.id, now + HOUR, 10), [second.order], 'no longer pending');
    t.same(await gate.decide(sale.id, first), ADMIT, 'the released order id is decided afresh: she may take 2 again (1 held + 2 == 3)');
    t.equal(await gate.remaining(sale.id), 1);
    t.same(await gate.decide(sale.id, attempt(alice, 1, now)), LIMIT, 'and is at her limit again');
    t.same(await gate.decide(sale.id, first), duplicate('admit'), 'the new decision is remembered');
  });

  withHarness('release of what is not pending changes nothing', async (t, h, now) => {
    const gate = h.make();
    const sale = saleAt(now, { stock: 2, perUserLimit: 2 });
    await gate.load(sale, NOTHING_HELD);
    const alice = uid('alice');
    const paid = attempt(alice, 1, now);
    t.same(await gate.decide(sale.id, paid), ADMIT);
    await gate.settle(sale.id, paid.order);
    const limited = attempt(alice, 2, now);
    t.same(await gate.decide(sale.id, limited), LIMIT);
    t.same(await gate.decide(sale.id, attempt(uid('bob'), 1, now)), ADMIT);
    const soldOut = attempt(uid('carol'), 1, now);
    t.same(await gate.decide(sale.id, soldOut), SOLD_OUT);
    for (const order of [paid.order, limited.order, soldOut.order, uid('never-decided')]) await gate.release(sale.id, order);
    t.equal(await gate.remaining(sale.id), 0, 'no units came back');
    t.same(await gate.decide(sale.id, paid), duplicate('admit'), 'the paid order is still known');
    t.same(await gate.decide(sale.id, limited), duplicate('limit_reached'), 'refusals are still remembered');
    t.same(await gate.decide(sale.id, soldOut), duplicate('sold_out'));
    t.same(await gate.decide(sale.id, attempt(alice, 2, now)), LIMIT, 'alice still holds her paid unit');
  });

  withHarness('settle: the order leaves the pending ones, its units stay taken', async (t, h, now) => {
    const gate = h.make();
    const sale = saleAt(now, { stock: 3, perUserLimit: 2 });
    await gate.load(sale, NOTHING_HELD);
    const alice = uid('alice');
    const paid = attempt(alice, 2, now, uid('o'), now + MINUTE);
    const unpaid = attempt(uid('bob'), 1, now, uid('o'), now + 2 * MINUTE);
    t.same(await gate.decide(sale.id, paid), ADMIT);
    t.same(await gate.decide(sale.id, unpaid), ADMIT);
    t.same(await gate.due(sale.id, now + HOUR, 10), [paid.order, unpaid.order]);
    await gate.settle(sale.id, paid.order);
    await gate.settle(sale.id, paid.order);
    t.same(await gate.due(sale.id, now + HOUR, 10), [unpaid.order], 'only the unpaid one is due');
    t.equal(await gate.remaining(sale.id), 0, 'the paid units stay taken');
    t.same(await gate.decide(sale.id, attempt(alice, 1, now)), LIMIT, 'and count to her limit');
    t.same(await gate.decide(sale.id, paid), duplicate('admit'));
  });

  withHarness('due lists pending orders with payBy <= now, soonest first, up to the limit', async (t, h, now) => {
    const gate = h.make();
    const sale = saleAt(now);
    await gate.load(sale, NOTHING_HELD);
    const payBys = [now + 5 * MINUTE, now + 1 * MINUTE, now + 3 * MINUTE, now + 2 * MINUTE, now + 4 * MINUTE];
    const orders = payBys.map((payBy) => attempt(uid('u'), 1, now, uid('o'), payBy));
    for (const o of orders) t.same(await gate.decide(sale.id, o), ADMIT);
    const [o5, o1, o3, o2, o4] = orders.map((o) => o.order);
    t.same(await gate.due(sale.id, now, 10), [], 'none due yet');
    t.same(await gate.due(sale.id, now + MINUTE - 1, 10), [], 'one ms before the first deadline');
    t.same(await gate.due(sale.id, now + MINUTE, 10), [o1], 'at its payBy');
    t.same(await gate.due(sale.id, now + 3 * MINUTE, 10), [o1, o2, o3]);
    t.same(await gate.due(sale.id, now + HOUR, 2), [o1, o2], 'the limit keeps the soonest');
    t.same(await gate.due(sale.id, now + HOUR, 0), [], 'limit 0');
    t.same(await gate.due(sale.id, now + HOUR, 10), [o1, o2, o3, o4, o5], 'every one, soonest first');
    t.same(await gate.decide(sale.id, orders[0]!), duplicate('admit'), 'due changes nothing');
  });

  withHarness('load with holdings reproduces the store\'s state', async (t, h, now) => {
    const gate = h.make();
    const sale = saleAt(now, { stock: 10, perUserLimit: 3 });
    const [alice, bob, carol] = [uid('alice'), uid('bob'), uid('carol')];
    const aliceOrder = uid('o'), bobOrder = uid('o');
    // alice has 2 reserved, bob 3 reserved, carol 1 paid.
    await gate.load(sale, {
      taken: 6,
      users: [{ user: alice, units: 2 }, { user: bob, units: 3 }, { user: carol, units: 1 }],
      pending: [
        { order: bobOrder, user: bob, units: 3, payBy: now + 2 * MINUTE },
        { order: aliceOrder, user: alice, units: 2, payBy: now + MINUTE },
      ],
    });
    t.equal(await gate.remaining(sale.id), 4, 'stock - taken');
    t.same(await gate.due(sale.id, now + HOUR, 10), [aliceOrder, bobOrder], 'the pending orders, soonest first');
    t.same(await gate.decide(sale.id, attempt(alice, 2, now, aliceOrder)), duplicate('admit'), 'a pending order is a known key');
    t.same(await gate.decide(sale.id, attempt(bob, 1, now)), LIMIT, 'bob holds 3 of 3');
    t.same(await gate.decide(sale.id, attempt(carol, 3, now)), LIMIT, 'carol holds 1 (paid)');
    t.same(await gate.decide(sale.id, attempt(alice, 1, now)), ADMIT, 'alice may take 1 more');
    t.same(await gate.decide(sale.id, attempt(alice, 1, now)), LIMIT);
    await gate.release(sale.id, bobOrder);
    t.equal(await gate.remaining(sale.id), 6, 'bob\'s loaded order is releasable: 3 back');
    t.same(await gate.decide(sale.id, attempt(bob, 3, now)), ADMIT, 'and his allowance with it');
    t.equal((await gate.due(sale.id, now + HOUR, 10))[0], aliceOrder, 'alice\'s loaded order is still the first due');
    t.notOk((await gate.due(sale.id, now + HOUR, 10)).includes(bobOrder), 'bob\'s released one is no longer pending');
  });

  withHarness('a second load of an installed sale changes nothing', async (t, h, now) => {
    const gate = h.make();
    const sale = saleAt(now, { stock: 3, perUserLimit: 1 });
    const alice = uid('alice');
    await gate.load(sale, NOTHING_HELD);
    t.same(await gate.decide(sale.id, attempt(alice, 1, now)), ADMIT);
    await gate.load(sale, NOTHING_HELD);
    await gate.load({ ...sale, stock: 50, perUserLimit: 9, endAt: now + 1 }, { taken: 1, users: [{ user: uid('bob'), units: 1 }], pending: [] });
    t.equal(await gate.remaining(sale.id), 2, 'the first stock and the admission hold');
    t.same(await gate.decide(sale.id, attempt(alice, 1, now + 10)), LIMIT, 'the first limit and window hold, and her unit');
  });

  withHarness('concurrent loads: one installs whole, the others change nothing', async (t, h, now) => {
    const gates = [h.make(), h.make(), h.make()];
    const sale = saleAt(now, { stock: 30, perUserLimit: 2 });
    // Loader i says its buyer holds 2 units; only one loader's holdings can be true.
    const buyers = range(12).map(() => uid('u'));
    await Promise.all(buyers.map((user, i) =>
      gates[i % 3]!.load(sale, { taken: 2, users: [{ user, units: 2 }], pending: [{ order: `p-${user}`, user, units: 2, payBy: now + MINUTE }] })));
    t.equal(await gates[0]!.remaining(sale.id), 28, 'one loader\'s taken');
    const answers = await Promise.all(buyers.map((user, i) => gates[i % 3]!.decide(sale.id, attempt(user, 1, now))));
    t.equal(count(answers, 'limit_reached'), 1, 'one loader\'s buyer is at the limit');
    t.equal(count(answers, 'admit'), 11, 'no other loader\'s');
    const winner = buyers[answers.findIndex((a) => a.outcome === 'limit_reached')]!;
    t.same(await gates[1]!.due(sale.id, now + MINUTE, 100), [`p-${winner}`], 'the winner\'s pending order, alone');
  });

  withHarness('drop forgets the sale; a later load installs it afresh', async (t, h, now) => {
    const gate = h.make();
    const sale = saleAt(now, { stock: 2, perUserLimit: 2 });
    const alice = uid('alice');
    await gate.load(sale, NOTHING_HELD);
    const first = attempt(alice, 2, now);
    t.same(await gate.decide(sale.id, first), ADMIT);
    await gate.drop(sale.id);
    t.same(await gate.decide(sale.id, first), UNKNOWN, 'her admission is gone with it');
    t.equal(await gate.remaining(sale.id), undefined);
    t.same(await gate.due(sale.id, now + HOUR, 10), []);
    await gate.load(sale, { taken: 1, users: [{ user: alice, units: 1 }], pending: [] });
    t.equal(await gate.remaining(sale.id), 1, 'the new load is installed, not ignored');
    t.same(await gate.decide(sale.id, first), LIMIT, 'her order id is decided afresh against what she holds now');
  });

  withHarness('sales are independent', async (t, h, now) => {
    const gate = h.make();
    const a = saleAt(now, { stock: 1, perUserLimit: 1 });
    const b = saleAt(now, { stock: 2, perUserLimit: 1, endAt: now + 10 });
    await gate.load(a, NOTHING_HELD);
    await gate.load(b, NOTHING_HELD);
    const alice = uid('alice');
    const order = uid('o');
    t.same(await gate.decide(a.id, attempt(alice, 1, now, order)), ADMIT);
    t.same(await gate.decide(b.id, attempt(alice, 1, now, order)), ADMIT, 'the same order id and buyer in b: b has its own keys and limits');
    t.same(await gate.decide(a.id, attempt(uid('u'), 1, now)), SOLD_OUT, 'a is sold out');
    t.same(await gate.decide(b.id, attempt(uid('u'), 1, now)), ADMIT, 'b is not');
    t.same(await gate.decide(b.id, attempt(uid('u'), 1, now + 10)), CLOSED, 'b closes on its own time');
    await gate.release(b.id, order);
    t.equal(await gate.remaining(a.id), 0, 'releasing in b gives a nothing');
    await gate.drop(b.id);
    t.equal(await gate.remaining(a.id), 0, 'dropping b leaves a');
    t.same(await gate.decide(b.id, attempt(uid('u'), 1, now)), UNKNOWN);
  });

  withHarness('2,000 concurrent buyers of 100 units through two gates: exactly 100 admitted', async (t, h, now) => {
    const gates = [h.make(), h.make()];
    const sale = saleAt(now, { stock: 100, perUserLimit: 1 });
    await gates[0]!.load(sale, NOTHING_HELD);
    const answers = await Promise.all(range(2_000).map((i) => gates[i % 2]!.decide(sale.id, attempt(`u${i}`, 1, now, `o${i}`))));
    t.equal(count(answers, 'admit'), 100, '100 admitted');
    t.equal(count(answers, 'sold_out'), 1_900, 'everyone else hears sold out');
    t.equal(await gates[1]!.remaining(sale.id), 0);
    t.equal((await gates[0]!.due(sale.id, now + HOUR, 5_000)).length, 100, 'exactly the admitted are pending');
  });

  withHarness('one buyer\'s 50 concurrent attempts with limit 2: exactly 2 admitted', async (t, h, now) => {
    const gates = [h.make(), h.make()];
    const sale = saleAt(now, { stock: 100, perUserLimit: 2 });
    await gates[0]!.load(sale, NOTHING_HELD);
    const alice = uid('alice');
    const answers = await Promise.all(range(50).map((i) => gates[i % 2]!.decide(sale.id, attempt(alice, 1, now))));
    t.equal(count(answers, 'admit'), 2, '2 admitted');
    t.equal(count(answers, 'limit_reached'), 48, 'the rest reach her limit');
    t.equal(await gates[1]!.remaining(sale.id), 98);
  });

  withHarness('concurrent releases of one order give its units back once', async (t, h, now) => {
    const gates = [h.make(), h.make()];
    const sale = saleAt(now, { stock: 5, perUserLimit: 5 });
    await gates[0]!.load(sale, NOTHING_HELD);
    const order = attempt(uid('alice'), 3, now);
    t.same(await gates[0]!.decide(sale.id, order), ADMIT);
    t.same(await gates[0]!.decide(sale.id, attempt(uid('bob'), 1, now)), ADMIT);
    await Promise.all(range(20).map((i) => gates[i % 2]!.release(sale.id, order.order)));
    t.equal(await gates[1]!.remaining(sale.id), 4, '1 + 3, not more');
  });

  withHarness('malformed loads and attempts are refused', async (t, h, now) => {
    const gate = h.make();
    const user = uid('u');
    await t.rejects(gate.load(saleAt(now, { stock: 0 }), NOTHING_HELD), RangeError, 'stock 0');
    await t.rejects(gate.load(saleAt(now, { stock: 2.5 }), NOTHING_HELD), RangeError, 'fractional stock');
    await t.rejects(gate.load(saleAt(now, { perUserLimit: 0 }), NOTHING_HELD), RangeError, 'limit 0');
    await t.rejects(gate.load(saleAt(now, { retainUntil: Number.NaN }), NOTHING_HELD), RangeError, 'no retention');
    await t.rejects(gate.load(saleAt(now, { startAt: now, endAt: now - 1 }), NOTHING_HELD), RangeError, 'ends before it starts');
    await t.rejects(gate.load(saleAt(now, { stock: 2 }), { taken: 3, users: [], pending: [] }), RangeError, 'more taken than the stock');
    await t.rejects(gate.load(saleAt(now), { taken: 2, users: [{ user, units: 1 }, { user, units: 1 }], pending: [] }), RangeError, 'a buyer twice');
    await t.rejects(gate.load(saleAt(now), { taken: 0, users: [{ user, units: 0 }], pending: [] }), RangeError, 'a buyer holding nothing');
    const pending = { order: 'o', user, units: 1, payBy: now };
    await t.rejects(gate.load(saleAt(now), { taken: 2, users: [{ user, units: 2 }], pending: [pending, pending] }), RangeError, 'an order twice');
    await t.rejects(gate.load(saleAt(now), { taken: 1, users: [{ user, units: 1 }], pending: [{ ...pending, payBy: 1.5 }] }), RangeError, 'a fractional deadline');
    const sale = saleAt(now);
    await gate.load(sale, NOTHING_HELD);
    await t.rejects(gate.decide(sale.id, attempt(user, 0, now)), RangeError, 'zero units');
    await t.rejects(gate.decide(sale.id, attempt(user, 1.5, now)), RangeError, 'fractional units');
    await t.rejects(gate.decide(sale.id, attempt(user, 1, now, uid('o'), Number.NaN)), RangeError, 'no deadline');
    await t.rejects(gate.due(sale.id, now, -1), RangeError, 'a negative due limit');
    t.equal(await gate.remaining(sale.id), 10, 'nothing was taken');
  });
}
