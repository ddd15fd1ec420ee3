// The SaleStore conformance suite (engine/sales/ports.ts): memory, LMDB, CQL run it unchanged.
// It only uses the port. Every sale, user and order id comes from uid(), so an adapter may run it
// on a database shared with other tests and runs; the global reads (dueOrders, scanSales) are
// filtered to what each test made, or use deadlines before 1970 that nothing else uses. Other
// orders get deadlines in 2100, so a sweeper on a shared database never finds them due.
import { isDeepStrictEqual } from 'node:util';
import type { Test } from 'tap';
import {
  SaleKeyReusedError,
  type Order, type OrderPage, type OrderState, type ReserveResult, type Sale, type SaleCounts, type SaleStore,
} from '../../engine/sales/ports.ts';
import { failure, uid } from './fixtures.ts';

export interface SaleStoreHarness {
  /** A store on fresh (or shared, see above) data. */
  store: SaleStore;
  /** Another store on the same data, as a second worker opens it; may return `store` itself when the adapter is in-process only. */
  another(): Promise<SaleStore>;
  /** Closes every store the harness made (they may have been closed already) and removes what it created. */
  cleanup(): Promise<void>;
}

/** 2100-01-01: orders the tests leave reserved are never due for a real clock. */
const T0 = Date.UTC(2100, 0, 1);
const MINUTE = 60_000;

function newSale(overrides: Partial<Sale> = {}): Sale {
  return {
    id: uid('sale'), merchant: uid('shop'), conv: uid('conv'), item: 'oolong tea, 250 g', price: 1999, currency: 'CNY',
    stock: 10, startAt: T0, endAt: T0 + 60 * MINUTE, perUserLimit: 2, payWindowMs: 5 * MINUTE, createdAt: T0 - MINUTE,
    fingerprint: uid('fp'), ...overrides,
  };
}

/** The order a service builds for an attempt: state reserved, amount and deadline from the sale. */
function newOrder(sale: Sale, user: string, quantity: number, options: { at?: number; id?: string } = {}): Order {
  const at = options.at ?? T0;
  return {
    id: options.id ?? uid('ord'), sale: sale.id, user, key: uid('key'), quantity, amount: quantity * sale.price,
    currency: sale.currency, state: 'reserved', createdAt: at, payBy: at + sale.payWindowMs,
    // The real one hashes (sale, quantity); this is as unique.
    fingerprint: `${sale.id}/${quantity}`,
  };
}

const counts = (stock: number, sold: number, reserved: number): SaleCounts => ({ sold, reserved, remaining: stock - sold - reserved });

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** Follows `next` to the end; checks that only the last page lacks it and no page passes the limit. */
async function allPages(t: Test, limit: number, page: (after: string | undefined) => Promise<OrderPage>): Promise<Order[][]> {
  const pages: Order[][] = [];
  let after: string | undefined;
  do {
    const current = await page(after);
    t.ok(current.orders.length <= limit, `a page holds at most ${limit}`);
    if (current.next !== undefined) t.ok(current.orders.length > 0, 'a page with a next is not empty');
    pages.push(current.orders);
    after = current.next;
  } while (after !== undefined && pages.length < 100);
  return pages;
}

export function saleStoreContract(t: Test, name: string, makeHarness: () => Promise<SaleStoreHarness>): void {
  const withStore = (title: string, body: (t: Test, store: SaleStore, h: SaleStoreHarness) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const harness = await makeHarness();
      t.teardown(() => harness.cleanup());
      await body(t, harness.store, harness);
    });

  /** Creates the sale and checks that it starts with all its stock remaining. */
  const opened = async (t: Test, store: SaleStore, sale: Sale): Promise<Sale> => {
    t.same(await store.createSale(sale), { value: sale, applied: true }, 'sale created');
    return sale;
  };

  /** The reservation must succeed; returns the stored order. */
  const reserve = async (t: Test, store: SaleStore, order: Order): Promise<Order> => {
    const result = await store.reserve(order);
    t.same(result, { outcome: 'reserved', order, applied: true }, `reserves ${order.quantity}`);
    return order;
  };

  /** Counts as getSale reports them, checked against the invariant stock == sold + reserved + remaining. */
  const countsOf = async (t: Test, store: SaleStore, sale: Sale): Promise<SaleCounts | undefined> => {
    const record = await store.getSale(sale.id);
    if (record) t.equal(record.counts.sold + record.counts.reserved + record.counts.remaining, record.sale.stock, 'stock == sold + reserved + remaining');
    return record?.counts;
  };

  const move = async (store: SaleStore, order: Order, from: readonly OrderState[], to: OrderState, at: number) =>
    (await store.transition(order.id, from, to, at))?.value;

  withStore('a sale is stored once by id; the same id with another request is refused', async (t, store) => {
    const sale = newSale();
    t.equal(await store.getSale(sale.id), undefined, 'unknown sale');
    await opened(t, store, sale);
    t.same(await store.getSale(sale.id), { sale, counts: counts(10, 0, 0) }, 'all its stock remains');
    t.same(await store.createSale({ ...sale, createdAt: sale.createdAt + 5 }), { value: sale, applied: false }, 'a retry gets the stored sale');
    const error = await failure(store.createSale({ ...sale, stock: 99, fingerprint: uid('fp') }));
    t.ok(error instanceof SaleKeyReusedError, 'SaleKeyReusedError');
    t.match(error, { id: sale.id });
    t.same(await store.getSale(sale.id), { sale, counts: counts(10, 0, 0) }, 'the first sale stays as it was');
  });

  withStore('reservations take stock until none remains; the rest are told what is left', async (t, store) => {
    const sale = await opened(t, store, newSale({ stock: 5, perUserLimit: 5 }));
    const [amy, ben, cat] = [uid('u'), uid('u'), uid('u')];
    await reserve(t, store, newOrder(sale, amy, 3));
    t.same(await countsOf(t, store, sale), counts(5, 0, 3), '3 reserved, 2 remain');
    const tooMany = newOrder(sale, ben, 3);
    t.same(await store.reserve(tooMany), { outcome: 'sold_out', remaining: 2 }, 'asking for 3 of 2 left: sold_out, 2 remaining');
    t.equal(await store.getOrder(tooMany.id), undefined, 'the refused order is not stored');
    const fits = await reserve(t, store, newOrder(sale, ben, 2));
    t.same(await store.getOrder(fits.id), fits, 'getOrder returns the stored order');
    t.same(await store.reserve(newOrder(sale, cat, 1)), { outcome: 'sold_out', remaining: 0 }, 'nothing left');
    t.same(await countsOf(t, store, sale), counts(5, 0, 5), 'all 5 reserved, none oversold');
    t.equal(await store.reserve(newOrder(newSale(), amy, 1)), undefined, 'unknown sale');
    t.equal(await store.getOrder(uid('ord')), undefined, 'unknown order');
  });

  withStore("a buyer holds at most perUserLimit units across their orders; expired ones give room back", async (t, store) => {
    const sale = await opened(t, store, newSale({ stock: 20, perUserLimit: 3 }));
    const amy = uid('u');
    const first = await reserve(t, store, newOrder(sale, amy, 2));
    t.same(await store.reserve(newOrder(sale, amy, 2)), { outcome: 'limit_reached', held: 2 }, '2 held + 2 > 3');
    const second = await reserve(t, store, newOrder(sale, amy, 1));
    t.same(await store.reserve(newOrder(sale, amy, 1)), { outcome: 'limit_reached', held: 3 }, 'at the limit');
    await move(store, first, ['reserved'], 'paying', T0 + 1);
    await move(store, first, ['paying'], 'paid', T0 + 2);
    t.same(await store.reserve(newOrder(sale, amy, 1)), { outcome: 'limit_reached', held: 3 }, 'paid units count too');
    await move(store, second, ['reserved'], 'expired', T0 + 3);
    t.same(await store.reserve(newOrder(sale, amy, 2)), { outcome: 'limit_reached', held: 2 }, 'expired units do not count');
    await reserve(t, store, newOrder(sale, amy, 1));
    t.same(await store.reserve(newOrder(sale, uid('u'), 4)), { outcome: 'limit_reached', held: 0 }, 'one order above the limit, from a new buyer');
    await reserve(t, store, newOrder(sale, uid('u'), 3));
    t.same(await countsOf(t, store, sale), counts(20, 2, 4), 'every buyer is counted separately');
    // As the gate checks: the buyer's limit before the stock, so both answer a buyer the same.
    const small = await opened(t, store, newSale({ stock: 1, perUserLimit: 1 }));
    const ben = uid('u');
    await reserve(t, store, newOrder(small, ben, 1));
    t.same(await store.reserve(newOrder(small, ben, 1)), { outcome: 'limit_reached', held: 1 }, 'a buyer at their limit on a sold-out sale: limit_reached');
  });

  withStore('reserve is idempotent by order id, whatever happened to the sale or the order since', async (t, store) => {
    const sale = await opened(t, store, newSale({ stock: 2, perUserLimit: 2 }));
    const amy = uid('u');
    const order = await reserve(t, store, newOrder(sale, amy, 1));
    // A retry rebuilds the order a moment later: same id and body, other times.
    const rebuilt = { ...order, createdAt: T0 + 9, payBy: T0 + 9 + sale.payWindowMs };
    t.same(await store.reserve(rebuilt), { outcome: 'reserved', order, applied: false }, 'the stored order back, not applied');
    t.same(await countsOf(t, store, sale), counts(2, 0, 1), 'reserved once');
    await reserve(t, store, newOrder(sale, uid('u'), 1));
    t.same(await store.reserve(order), { outcome: 'reserved', order, applied: false }, 'still the order after the sale sold out');

    const reused = await failure(store.reserve({ ...newOrder(sale, amy, 2), id: order.id }));
    t.ok(reused instanceof SaleKeyReusedError, 'the same id with another quantity: SaleKeyReusedError');
    t.match(reused, { id: order.id });
    t.same(await store.getOrder(order.id), order, 'the stored order is unchanged');

    const expired = await move(store, order, ['reserved'], 'expired', T0 + 50);
    t.same(await store.reserve(order), { outcome: 'reserved', order: expired, applied: false }, 'an expired order comes back expired');
    t.same(await countsOf(t, store, sale), counts(2, 0, 1), 'and takes no stock again');
  });

  withStore('malformed sales and orders are refused with RangeError and store nothing', async (t, store) => {
    const good = newSale();
    const badSales: Array<[string, Sale]> = [
      ['stock 0', { ...good, stock: 0 }],
      ['fractional price', { ...good, price: 9.99 }],
      ['negative price', { ...good, price: -1 }],
      ['perUserLimit 0', { ...good, perUserLimit: 0 }],
      ['a window ending before it starts', { ...good, endAt: good.startAt - 1 }],
      ['no pay window', { ...good, payWindowMs: 0 }],
    ];
    for (const [what, sale] of badSales) t.ok(await failure(store.createSale(sale)) instanceof RangeError, what);
    t.equal(await store.getSale(good.id), undefined, 'no sale stored');

    const sale = await opened(t, store, good);
    const base = newOrder(sale, uid('u'), 1);
    const badOrders: Array<[string, Order]> = [
      ['quantity 0', { ...base, quantity: 0, amount: 0 }],
      ['negative quantity', { ...base, quantity: -1, amount: -sale.price }],
      ['fractional quantity', { ...base, quantity: 1.5, amount: 1.5 * sale.price }],
      ['an amount other than quantity x price', { ...base, amount: sale.price + 1 }],
      ['another currency than the sale', { ...base, currency: 'USD' }],
      ['an order not in state reserved', { ...base, state: 'paid' }],
    ];
    for (const [what, order] of badOrders) t.ok(await failure(store.reserve(order)) instanceof RangeError, what);
    t.equal(await store.getOrder(base.id), undefined, 'no order stored');
    t.same(await countsOf(t, store, sale), counts(10, 0, 0), 'no stock taken');
    await reserve(t, store, base);
  });

  withStore('reserved -> paying -> paid moves the units to sold, once', async (t, store) => {
    const sale = await opened(t, store, newSale({ stock: 4 }));
    const order = await reserve(t, store, newOrder(sale, uid('u'), 2));
    const paying = { ...order, state: 'paying' as const };
    t.same(await store.transition(order.id, ['reserved'], 'paying', T0 + 1), { value: paying, applied: true }, 'reserved -> paying, no settledAt');
    t.same(await countsOf(t, store, sale), counts(4, 0, 2), 'a paying order still holds its units as reserved');
    const paid = { ...order, state: 'paid' as const, settledAt: T0 + 2 };
    t.same(await store.transition(order.id, ['paying'], 'paid', T0 + 2), { value: paid, applied: true }, 'paying -> paid at T0 + 2');
    t.same(await countsOf(t, store, sale), counts(4, 2, 0), 'the units are sold');
    t.same(await store.transition(order.id, ['paying'], 'paid', T0 + 3), { value: paid, applied: false }, 'paying again moves nothing');
    t.same(await store.transition(order.id, ['reserved', 'paying'], 'expired', T0 + 4), { value: paid, applied: false }, 'a paid order does not expire');
    t.same(await store.getOrder(order.id), paid, 'stored as paid, settled at the first call');
    t.same(await countsOf(t, store, sale), counts(4, 2, 0), 'sold once');
    t.equal(await store.transition(uid('ord'), ['reserved'], 'paying', T0), undefined, 'unknown order');
  });

  withStore('an expired order returns its units, a later buyer takes them; a failed payment goes back to reserved', async (t, store) => {
    const sale = await opened(t, store, newSale({ stock: 2 }));
    const [amy, ben, cat] = [uid('u'), uid('u'), uid('u')];
    const order = await reserve(t, store, newOrder(sale, amy, 2));
    t.same(await store.reserve(newOrder(sale, ben, 1)), { outcome: 'sold_out', remaining: 0 }, 'sold out while amy holds both');
    const expired = { ...order, state: 'expired' as const, settledAt: T0 + 7 };
    t.same(await store.transition(order.id, ['reserved'], 'expired', T0 + 7), { value: expired, applied: true }, 'reserved -> expired');
    t.same(await countsOf(t, store, sale), counts(2, 0, 0), 'both units remain again');
    t.same(await store.transition(order.id, ['reserved', 'paying'], 'expired', T0 + 8), { value: expired, applied: false }, 'expiring twice moves nothing');
    t.same(await store.transition(order.id, ['reserved'], 'paying', T0 + 8), { value: expired, applied: false }, 'an expired order cannot be paid');
    t.same(await countsOf(t, store, sale), counts(2, 0, 0), 'returned once');

    const late = await reserve(t, store, newOrder(sale, ben, 1, { at: T0 + 9 }));
    await move(store, late, ['reserved'], 'paying', T0 + 10);
    t.same(await store.transition(late.id, ['paying'], 'reserved', T0 + 11), { value: late, applied: true }, 'paying -> reserved when the payment failed');
    t.same(await countsOf(t, store, sale), counts(2, 0, 1), 'still reserved');
    await reserve(t, store, newOrder(sale, cat, 1, { at: T0 + 12 }));
    t.same(await countsOf(t, store, sale), counts(2, 0, 2), 'the units amy let go went to ben and cat');
  });

  withStore('transition is a compare-and-set over open orders; moves out of paid or expired are refused', async (t, store) => {
    const sale = await opened(t, store, newSale());
    const order = await reserve(t, store, newOrder(sale, uid('u'), 1));
    t.same(await store.transition(order.id, ['paying'], 'paid', T0 + 1), { value: order, applied: false }, 'not in from: unchanged, not applied');
    t.same(await store.getOrder(order.id), order, 'stored unchanged');
    const bad: Array<[string, OrderState[], OrderState]> = [
      ['out of paid', ['paid'], 'reserved'],
      ['out of expired', ['expired'], 'reserved'],
      ['to the same state', ['reserved'], 'reserved'],
      ['from nothing', [], 'paying'],
      ['to no state', ['reserved'], 'lost' as OrderState],
    ];
    for (const [what, from, to] of bad) t.ok(await failure(store.transition(order.id, from, to, T0 + 2)) instanceof RangeError, what);
    t.same(await store.getOrder(order.id), order, 'nothing moved');
    t.same(await countsOf(t, store, sale), counts(10, 0, 1));
  });

  withStore('due orders: reserved and paying past their deadline, soonest first, up to the limit', async (t, store) => {
    // Deadlines before 1970 that no other test uses, so the due list of a shared database holds only these.
    const base = -T0 - Math.floor(Math.random() * T0);
    const sale = await opened(t, store, newSale({ stock: 10, payWindowMs: MINUTE }));
    const orders: Order[] = [];
    for (const offset of [2, 0, 5, 1, 3, 4]) orders[offset] = await reserve(t, store, newOrder(sale, uid('u'), 1, { at: base + offset - MINUTE }));
    const o = (i: number) => orders[i]!;
    t.same(await store.dueOrders(base - 1, 10), [], 'none due before the first deadline');
    t.same(await store.dueOrders(base + 2, 10), [o(0).id, o(1).id, o(2).id], 'due at and after the deadline, soonest first');
    t.same(await store.dueOrders(base + 2, 2), [o(0).id, o(1).id], 'limit');
    t.same(await store.dueOrders(base + 2, 0), [], 'limit 0');
    await move(store, o(1), ['reserved'], 'paying', T0);
    await move(store, o(3), ['reserved'], 'paying', T0);
    await move(store, o(3), ['paying'], 'paid', T0);
    await move(store, o(0), ['reserved'], 'expired', T0);
    t.same(await store.dueOrders(base + 5, 10), [o(1).id, o(2).id, o(4).id, o(5).id], 'paying orders stay due; paid and expired ones leave');
    await move(store, o(1), ['paying'], 'reserved', T0);
    t.same(await store.dueOrders(base + 1, 10), [o(1).id], 'back to reserved, still due');
    // Leave nothing due behind on a shared database.
    for (const i of [1, 2, 4, 5]) await move(store, o(i), ['reserved'], 'expired', T0);
    t.same(await store.dueOrders(base + 5, 10), [], 'nothing left due');
  });

  withStore("a buyer's orders, newest first, across sales, paged", async (t, store) => {
    const [tea, cups] = [await opened(t, store, newSale({ perUserLimit: 5 })), await opened(t, store, newSale({ perUserLimit: 5 }))];
    const amy = uid('u');
    const made: Order[] = [];
    for (const [i, sale] of [tea, cups, tea, tea, cups].entries()) made.push(await reserve(t, store, newOrder(sale, amy, 1, { at: T0 + i * 10 })));
    await reserve(t, store, newOrder(tea, uid('u'), 1, { at: T0 + 5 }));
    await move(store, made[1]!, ['reserved'], 'expired', T0 + 100);
    const current = [...made];
    current[1] = (await store.getOrder(made[1]!.id))!;
    const newestFirst = [...current].reverse();

    t.same(await store.userOrders(amy, { limit: 10 }), { orders: newestFirst }, 'every order of hers in its current state, newest first, no next');
    t.same(await store.userOrders(amy, { limit: 5 }), { orders: newestFirst }, 'a page that ends the list has no next');
    const pages = await allPages(t, 2, (after) => store.userOrders(amy, { limit: 2, ...(after === undefined ? {} : { after }) }));
    t.same(pages, [newestFirst.slice(0, 2), newestFirst.slice(2, 4), newestFirst.slice(4)], 'pages of 2, 2 and 1');
    t.same(await store.userOrders(uid('u'), { limit: 10 }), { orders: [] }, 'a buyer with no orders');
    // The service passes a client's cursor through: one this list never gave is not an error.
    const stranger = (await store.userOrders(amy, { limit: 1 })).orders[0]!;
    t.same(await store.userOrders(uid('u'), { limit: 10, after: stranger.id }), { orders: [] }, "after another buyer's order: an empty page");
    t.same(await store.userOrders(amy, { limit: 10, after: uid('ord') }), { orders: [] }, 'after an unknown order: an empty page');
  });

  withStore("a sale's orders, oldest first, paged", async (t, store) => {
    const sale = await opened(t, store, newSale({ perUserLimit: 5 }));
    const other = await opened(t, store, newSale());
    const made: Order[] = [];
    for (const i of [3, 0, 2, 1]) made[i] = await reserve(t, store, newOrder(sale, uid('u'), 1, { at: T0 + i }));
    await reserve(t, store, newOrder(other, uid('u'), 1, { at: T0 + 1 }));
    const paid = { ...made[2]!, state: 'paid' as const, settledAt: T0 + 50 };
    await move(store, made[2]!, ['reserved'], 'paying', T0 + 40);
    await move(store, made[2]!, ['paying'], 'paid', T0 + 50);
    const oldestFirst = [made[0], made[1], paid, made[3]];

    t.same(await store.saleOrders(sale.id, { limit: 10 }), { orders: oldestFirst }, 'this sale only, in its current state, oldest first');
    const pages = await allPages(t, 3, (after) => store.saleOrders(sale.id, { limit: 3, ...(after === undefined ? {} : { after }) }));
    t.same(pages, [oldestFirst.slice(0, 3), oldestFirst.slice(3)], 'pages of 3 and 1');
    const twos = await allPages(t, 2, (after) => store.saleOrders(sale.id, { limit: 2, ...(after === undefined ? {} : { after }) }));
    t.same(twos.flat(), oldestFirst, 'pages of 2 yield each order once, in order');
    t.same(await store.saleOrders(uid('sale'), { limit: 10 }), { orders: [] }, 'unknown sale');
    t.same(await store.saleOrders(other.id, { limit: 10, after: made[0]!.id }), { orders: [] }, "after another sale's order: an empty page");
  });

  withStore('scanSales yields every sale with its exact counts', async (t, store) => {
    const [a, b] = [await opened(t, store, newSale({ stock: 3, perUserLimit: 3 })), await opened(t, store, newSale({ stock: 7 }))];
    const paid = await reserve(t, store, newOrder(a, uid('u'), 2));
    await move(store, paid, ['reserved'], 'paying', T0);
    await move(store, paid, ['paying'], 'paid', T0);
    await reserve(t, store, newOrder(a, uid('u'), 1));
    const gone = await reserve(t, store, newOrder(b, uid('u'), 2));
    await move(store, gone, ['reserved'], 'expired', T0);
    const mine = (await collect(store.scanSales())).filter((r) => r.sale.id === a.id || r.sale.id === b.id);
    t.equal(mine.length, 2, 'each sale once');
    t.same(mine.find((r) => r.sale.id === a.id), { sale: a, counts: counts(3, 2, 1) }, 'as stored, with its counts');
    t.same(mine.find((r) => r.sale.id === b.id), { sale: b, counts: counts(7, 0, 0) }, 'expired units are back in remaining');
  });

  withStore('60 buyers racing for 10 units across two stores: exactly 10 win', async (t, store, h) => {
    const other = await h.another();
    const sale = await opened(t, store, newSale({ stock: 10, perUserLimit: 1 }));
    const orders = range(60).map(() => newOrder(sale, uid('u'), 1));
    const results = await Promise.all(orders.map((order, i) => (i % 2 ? other : store).reserve(order)));
    const won = results.flatMap((r) => (r?.outcome === 'reserved' && r.applied ? [r.order] : []));
    t.equal(won.length, 10, '10 reservations applied');
    t.ok(results.every((r) => (r?.outcome === 'reserved' && r.applied) || isDeepStrictEqual(r, { outcome: 'sold_out', remaining: 0 })), 'the other 50: sold_out, 0 remaining');
    t.same(await countsOf(t, store, sale), counts(10, 0, 10), 'counts exact');
    t.same(await countsOf(t, other, sale), counts(10, 0, 10), 'and the same through the other store');
    const stored = (await store.saleOrders(sale.id, { limit: 100 })).orders;
    t.same(stored.map((o) => o.id).sort(), won.map((o) => o.id).sort(), 'the sale holds exactly the winners');

    // Bigger orders: 3 units each out of 10, so 3 win and one unit is left.
    const big = await opened(t, store, newSale({ stock: 10, perUserLimit: 3 }));
    const bigResults: Array<ReserveResult | undefined> = await Promise.all(range(20).map((i) => (i % 2 ? other : store).reserve(newOrder(big, uid('u'), 3))));
    t.equal(bigResults.filter((r) => r?.outcome === 'reserved').length, 3, '3 orders of 3 fit');
    t.ok(bigResults.every((r) => r?.outcome === 'reserved' || (r?.outcome === 'sold_out' && r.remaining < 3)), 'the rest were refused because fewer than 3 remained');
    t.same(await countsOf(t, store, big), counts(10, 0, 9), '9 reserved, 1 remains');
  });

  withStore("one buyer's concurrent attempts with different keys never pass the limit", async (t, store, h) => {
    const other = await h.another();
    const sale = await opened(t, store, newSale({ stock: 50, perUserLimit: 3 }));
    const amy = uid('u');
    const results = await Promise.all(range(12).map((i) => (i % 2 ? other : store).reserve(newOrder(sale, amy, 1))));
    t.equal(results.filter((r) => r?.outcome === 'reserved' && r.applied).length, 3, '3 of 12 attempts reserved');
    t.ok(results.every((r) => r?.outcome === 'reserved' || isDeepStrictEqual(r, { outcome: 'limit_reached', held: 3 })), 'the rest: limit_reached, holding 3');
    t.same(await countsOf(t, store, sale), counts(50, 0, 3), 'she holds 3 units');
    t.equal((await store.userOrders(amy, { limit: 100 })).orders.length, 3, 'and 3 orders');
  });

  withStore('concurrent duplicates reserve once; a payer and a sweeper racing on an order: one wins', async (t, store, h) => {
    const other = await h.another();
    const sale = await opened(t, store, newSale({ stock: 5 }));
    const order = newOrder(sale, uid('u'), 2);
    const results = await Promise.all(range(8).map((i) => (i % 2 ? other : store).reserve(order)));
    t.equal(results.filter((r) => r?.outcome === 'reserved' && r.applied).length, 1, 'one of 8 identical attempts applies');
    t.ok(results.every((r) => r?.outcome === 'reserved' && isDeepStrictEqual(r.order, order)), 'all get the order');
    t.same(await countsOf(t, store, sale), counts(5, 0, 2), 'reserved once');

    const [pay, expire] = await Promise.all([
      store.transition(order.id, ['reserved'], 'paying', T0 + 1),
      other.transition(order.id, ['reserved'], 'expired', T0 + 1),
    ]);
    t.equal([pay?.applied, expire?.applied].filter(Boolean).length, 1, 'exactly one of them moved it');
    const final = await store.getOrder(order.id);
    t.equal(final?.state, pay?.applied ? 'paying' : 'expired', 'the order is where the winner put it');
    t.same(await countsOf(t, store, sale), pay?.applied ? counts(5, 0, 2) : counts(5, 0, 0), 'and its units followed once');

    // Two sweepers expiring the same orders return the units once.
    const pending = [await reserve(t, store, newOrder(sale, uid('u'), 1)), await reserve(t, store, newOrder(sale, uid('u'), 1))];
    const before = (await countsOf(t, store, sale))!;
    const sweeps = await Promise.all(pending.flatMap((o) => [store, other, store].map((s) => s.transition(o.id, ['reserved', 'paying'], 'expired', T0 + 2))));
    t.equal(sweeps.filter((r) => r?.applied).length, 2, 'each order expired once');
    t.same(await countsOf(t, store, sale), counts(5, 0, before.reserved - 2), 'two units back, not six');
  });

  withStore('close ends the store; closing again is harmless', async (t, store) => {
    const sale = await opened(t, store, newSale());
    await store.close();
    await store.close();
    t.ok(await failure(store.getSale(sale.id)) instanceof Error, 'a read after close rejects');
    t.ok(await failure(store.reserve(newOrder(sale, uid('u'), 1))) instanceof Error, 'a write after close rejects');
  });
}
