// The sale audit over the in-memory adapters. The clean scene is made by the sale service itself
// (buy, pay, the sweeper's expiry, a late payment refunded), so what the service writes is what
// the audit accepts; each damage is then written through the stores' own API where it allows it,
// else shown through a store that answers doctored data (as a damaged database would).
import t, { type Test } from 'tap';
import { MemoryChatStore } from '../../storage/memory/chat-store.ts';
import { MemoryGrabDecider } from '../../storage/memory/grab-decider.ts';
import { MemorySaleStore } from '../../storage/memory/sale-store.ts';
import { MemoryStockGate } from '../../storage/memory/stock-gate.ts';
import { MemoryWalletStore } from '../../storage/memory/wallet-store.ts';
import { harness, ManualClock } from '../test/harness.ts';
import { walletAccount, type LedgerTxn, type WalletStore } from '../wallet/ports.ts';
import { auditSales, auditWalletAndSales, PurchaseLedger, type SaleAuditOptions } from './audit.ts';
import { orderRefundTxnId, orderTxnId, type Order, type OrderPage, type SaleRecord, type SaleStore } from './ports.ts';

const cny = (user: string) => walletAccount(user, 'CNY');

/** A ledger txn moving `amount` CNY from `from` to `to` for `order`. */
function purchase(order: string, from: string, to: string, amount: number, more: Partial<LedgerTxn> = {}): LedgerTxn {
  return {
    id: orderTxnId(order), kind: 'purchase', currency: 'CNY', ref: order, ts: 0, fingerprint: `${order}:${amount}`,
    postings: [{ account: cny(from), amount: -amount }, { account: cny(to), amount }], ...more,
  };
}

/**
 * shop sells 10 phones at 100, at most 3 per buyer, 60 s to pay. cat reserves 3 and lets them
 * expire; eve's payment stalls past the deadline, so the sweeper expires her order and the late
 * payment is refunded. Then amy buys 2 and pays, ben reserves 1, and dan's payment of 1 is in flight
 * (posted, the order still paying). So: sold 2, reserved 2, remaining 6; four purchase txns.
 */
async function scene() {
  const wallet = new MemoryWalletStore();
  const sales = new MemorySaleStore();
  const clock = new ManualClock();
  const h = harness({ saleStateThrottleMs: 10, saleStuckPaymentMs: 1_000 }, new MemoryChatStore(), {
    wallet: { store: wallet, decider: new MemoryGrabDecider() },
    sales: { store: sales, gate: new MemoryStockGate({ clock }), signals: { publish: () => {} } },
    clock,
  });
  const { conv } = await h.as('shop').req('group.create', { title: 'shop', members: ['amy'] });
  const { sale } = await h.engine.admin!('sale.create', {
    merchant: 'shop', conv, item: 'phone', price: 100, stock: 10, perUserLimit: 3,
    startAt: clock.now() - 1, endAt: clock.now() + 3600_000, payWindowMs: 60_000, key: 'launch',
  });
  for (const user of ['amy', 'ben', 'cat', 'dan', 'eve']) await h.engine.admin!('wallet.topup', { user, amount: 1_000, key: user });
  const buy = async (user: string, quantity: number) => (await h.as(user).req('sale.buy', { sale, quantity, key: 'k' })).order!.order;

  const cat = await buy('cat', 3);
  const eve = await buy('eve', 1);
  let resume!: () => void;
  const stalled = new Promise<void>((r) => { resume = r; });
  const post = wallet.post.bind(wallet);
  wallet.post = async (txn) => { if (txn.kind === 'purchase') await stalled; return post(txn); };
  const paying = h.as('eve').req('sale.pay', { order: eve }).catch((e: unknown) => e);
  await new Promise((r) => setTimeout(r, 10));
  clock.ms += 62_000;
  await h.engine.sweepWallet!();
  resume();
  await paying;
  wallet.post = post;

  const amy = await buy('amy', 2);
  await h.as('amy').req('sale.pay', { order: amy });
  const ben = await buy('ben', 1);
  const dan = await buy('dan', 1);
  // dan's payment: the ledger write done, the order not yet moved to paid.
  await sales.transition(dan, ['reserved'], 'paying', clock.now());
  await wallet.post(purchase(dan, 'dan', 'shop', 100));
  return { wallet, sales, sale, orders: { amy, ben, cat, dan, eve }, now: clock.now() };
}

type Scene = Awaited<ReturnType<typeof scene>>;

/** The sale problems the audit of these stores reports (paging 2 orders at a time). */
async function saleProblems(t: Test, wallet: WalletStore, sales: SaleStore, options: SaleAuditOptions = {}): Promise<string[]> {
  const report = await auditWalletAndSales(wallet, sales, { pageSize: 2, ...options });
  t.same(report.wallet.problems, [], 'the wallet ledger itself is sound');
  return report.sales.problems;
}

async function sameProblems(t: Test, s: Pick<Scene, 'wallet'>, sales: SaleStore, expected: string[], message = 'the problems reported'): Promise<void> {
  t.same((await saleProblems(t, s.wallet, sales)).sort(), [...expected].sort(), message);
}

interface Doctoring {
  records?: (record: SaleRecord) => SaleRecord;
  orders?: (orders: Order[]) => Order[];
  /** saleOrders() pages ignore their cursor: always the first page, with a next. */
  loop?: boolean;
}

/** `store` as a damaged database would present it: scanSales and saleOrders return doctored data. */
function doctored(store: SaleStore, d: Doctoring): SaleStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'scanSales') {
        return () => (async function* () {
          for await (const record of target.scanSales()) yield d.records ? d.records(record) : record;
        })();
      }
      if (prop === 'saleOrders') {
        return async (sale: string, options: { after?: string; limit: number }): Promise<OrderPage> => {
          if (d.loop) return { ...(await target.saleOrders(sale, { limit: options.limit })), next: 'again' };
          const page = await target.saleOrders(sale, options);
          return { ...page, orders: d.orders ? d.orders(page.orders) : page.orders };
        };
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
}

const what = (s: Scene, user: keyof Scene['orders'], state: string) => `sale ${s.sale} order ${s.orders[user]} (${state}, ${user})`;

t.test('the sale service\'s own writes audit clean: paid, reserved, paying, expired and refunded orders', async (t) => {
  const s = await scene();
  const states = await Promise.all(Object.values(s.orders).map(async (id) => (await s.sales.getOrder(id))!.state));
  t.same(states, ['paid', 'reserved', 'expired', 'paying', 'expired'], 'the scene is what the comment says (amy, ben, cat, dan, eve)');
  t.same((await s.sales.getSale(s.sale))!.counts, { sold: 2, reserved: 2, remaining: 6 });
  t.ok(await s.wallet.getTxn(orderRefundTxnId(s.orders.eve)), 'eve\'s late payment was refunded');

  const report = await auditWalletAndSales(s.wallet, s.sales, { pageSize: 2 });
  t.same(report.sales, { ok: true, problems: [], counts: { sales: 1, orders: 5, txns: 4 } });
  t.same(report.wallet.problems, []);
  t.equal(report.wallet.counts.txns, 5 + 4, 'one scan fed both: the wallet audit saw the top-ups and the purchases');

  const usd = await auditWalletAndSales(s.wallet, s.sales, { currency: 'USD' });
  t.same(usd.sales, { ok: true, problems: [], counts: { sales: 0, orders: 0, txns: 0 } }, 'another currency: nothing of this sale is in scope');
});

t.test('an order marked paid without any payment txn', async (t) => {
  const s = await scene();
  await s.sales.transition(s.orders.ben, ['reserved'], 'paid', s.now);
  await sameProblems(t, s, s.sales, [`${what(s, 'ben', 'paid')}: no payment txn ${orderTxnId(s.orders.ben)}`]);
});

t.test('a payment of the wrong amount, and one to someone else than the merchant', async (t) => {
  const s = await scene();
  await s.sales.transition(s.orders.ben, ['reserved'], 'paying', s.now);
  await s.wallet.post(purchase(s.orders.ben, 'ben', 'shop', 90));
  await s.sales.transition(s.orders.ben, ['paying'], 'paid', s.now);
  await sameProblems(t, s, s.sales, [
    `${what(s, 'ben', 'paid')}: txn ${orderTxnId(s.orders.ben)} is purchase in CNY: u:ben:CNY -90, u:shop:CNY +90, expected purchase in CNY: u:ben:CNY -100, u:shop:CNY +100`,
  ]);
  const other = await scene();
  await other.wallet.post(purchase(other.orders.ben, 'ben', 'cat', 100));
  await other.sales.transition(other.orders.ben, ['reserved'], 'paid', other.now);
  await sameProblems(t, other, other.sales, [
    `${what(other, 'ben', 'paid')}: txn ${orderTxnId(other.orders.ben)} is purchase in CNY: u:ben:CNY -100, u:cat:CNY +100, expected purchase in CNY: u:ben:CNY -100, u:shop:CNY +100`,
  ]);
});

t.test('a payment posted twice under different ids; a paid order refunded', async (t) => {
  const s = await scene();
  await s.wallet.post(purchase(s.orders.amy, 'amy', 'shop', 200, { id: 'order-retry:1' }));
  await sameProblems(t, s, s.sales, [`${what(s, 'amy', 'paid')}: purchase txn order-retry:1 also pays for it (its payment is ${orderTxnId(s.orders.amy)})`]);
  const refunded = await scene();
  const { amy } = refunded.orders;
  await refunded.wallet.post(purchase(amy, 'shop', 'amy', 200, { id: orderRefundTxnId(amy), kind: 'purchase_refund' }));
  await sameProblems(t, refunded, refunded.sales, [`${what(refunded, 'amy', 'paid')}: refund txn ${orderRefundTxnId(amy)} exists, but the order is paid`]);
});

t.test('expired orders: paid and never refunded; refunded and never paid; a refund of the wrong amount', async (t) => {
  const s = await scene();
  const { cat } = s.orders;
  await s.wallet.post(purchase(cat, 'cat', 'shop', 300));
  await sameProblems(t, s, s.sales, [`${what(s, 'cat', 'expired')}: payment txn ${orderTxnId(cat)} exists, but no refund txn ${orderRefundTxnId(cat)} gives it back`]);

  const unpaid = await scene();
  const refund = orderRefundTxnId(unpaid.orders.cat);
  await unpaid.wallet.post(purchase(unpaid.orders.cat, 'shop', 'cat', 300, { id: refund, kind: 'purchase_refund' }));
  await sameProblems(t, unpaid, unpaid.sales, [`${what(unpaid, 'cat', 'expired')}: refund txn ${refund} exists, but no payment txn ${orderTxnId(unpaid.orders.cat)}`]);

  const short = await scene();
  const c = short.orders.cat;
  await short.wallet.post(purchase(c, 'cat', 'shop', 300));
  await short.wallet.post(purchase(c, 'shop', 'cat', 200, { id: orderRefundTxnId(c), kind: 'purchase_refund' }));
  await sameProblems(t, short, short.sales, [
    `${what(short, 'cat', 'expired')}: txn ${orderRefundTxnId(c)} is purchase_refund in CNY: u:shop:CNY -200, u:cat:CNY +200, expected purchase_refund in CNY: u:shop:CNY -300, u:cat:CNY +300`,
  ]);
});

t.test('a reserved order with a payment txn; a paying order refunded', async (t) => {
  const s = await scene();
  await s.wallet.post(purchase(s.orders.ben, 'ben', 'shop', 100));
  const dan = orderRefundTxnId(s.orders.dan);
  await s.wallet.post(purchase(s.orders.dan, 'shop', 'dan', 100, { id: dan, kind: 'purchase_refund' }));
  await sameProblems(t, s, s.sales, [
    `${what(s, 'ben', 'reserved')}: payment txn ${orderTxnId(s.orders.ben)} exists, but the order is still reserved`,
    `${what(s, 'dan', 'paying')}: refund txn ${dan} exists, but the order is still paying`,
  ]);
});

t.test('purchase txns that name an order the store does not have, or none at all', async (t) => {
  const s = await scene();
  await s.wallet.post(purchase('o-ghost', 'amy', 'shop', 100));
  await s.wallet.post({ ...purchase('x', 'ben', 'shop', 100, { id: 'order:anon' }), ref: undefined });
  await sameProblems(t, s, s.sales, [
    'txn order:o-ghost: names order o-ghost, which the sale store does not have',
    'txn order:anon (purchase): names no order',
  ]);
});

t.test('counts that do not add up to the stock, disagree with the orders, or go negative', async (t) => {
  const s = await scene();
  const counts = (c: SaleRecord['counts']) => doctored(s.sales, { records: (r) => ({ ...r, counts: c }) });
  await sameProblems(t, s, counts({ sold: 2, reserved: 2, remaining: 7 }), [`sale ${s.sale}: sold 2 + reserved 2 + remaining 7 = 11, expected stock 10`]);
  await sameProblems(t, s, counts({ sold: 3, reserved: 1, remaining: 6 }), [
    `sale ${s.sale}: sold is 3, but its paid orders hold 2 units`,
    `sale ${s.sale}: reserved is 1, but its reserved and paying orders hold 2 units`,
  ]);
  await sameProblems(t, s, counts({ sold: 2, reserved: 9, remaining: -1 }), [
    `sale ${s.sale}: remaining is -1, expected a non-negative integer`,
    `sale ${s.sale}: reserved is 9, but its reserved and paying orders hold 2 units`,
  ]);
});

t.test('a buyer holding more than the limit (expired units do not count)', async (t) => {
  const s = await scene();
  const store = doctored(s.sales, { records: (r) => ({ ...r, sale: { ...r.sale, perUserLimit: 1 } }) });
  await sameProblems(t, s, store, [`sale ${s.sale}: user amy holds 2 units (reserved, paying and paid), above the limit of 1`]);
});

t.test('orders that do not fit their sale: amount, currency, quantity, another sale', async (t) => {
  const s = await scene();
  const store = doctored(s.sales, {
    orders: (orders) => orders.map((o) => {
      if (o.id === s.orders.ben) return { ...o, amount: 150 };
      if (o.id === s.orders.cat) return { ...o, currency: 'USD', quantity: 0 };
      if (o.id === s.orders.eve) return { ...o, sale: 's-other' };
      return o;
    }),
  });
  await sameProblems(t, s, store, [
    `${what(s, 'ben', 'reserved')}: amount 150, expected quantity 1 x price 100 = 100`,
    `${what(s, 'cat', 'expired')}: quantity 0, expected a positive integer`,
    `${what(s, 'cat', 'expired')}: currency USD, but the sale sells in CNY`,
    `${what(s, 'eve', 'expired')}: the order names sale s-other`,
  ]);
});

t.test('an order the sale\'s listing leaves out; a listing that repeats itself forever', async (t) => {
  const s = await scene();
  const missing = doctored(s.sales, { orders: (orders) => orders.filter((o) => o.id !== s.orders.amy) });
  await sameProblems(t, s, missing, [
    `sale ${s.sale}: sold is 2, but its paid orders hold 0 units`,
    `txn ${orderTxnId(s.orders.amy)}: names order ${s.orders.amy} of sale ${s.sale}, which the store does not list among that sale's orders`,
  ]);
  // The first page (cat, eve) again and again: the audit stops and says so instead of paging forever.
  const looping = doctored(s.sales, { loop: true });
  // What the cut-off listing hides shows up too: the counts, and the payments naming unlisted orders.
  await sameProblems(t, s, looping, [
    `sale ${s.sale}: order ${s.orders.cat} listed twice`,
    `sale ${s.sale}: order ${s.orders.eve} listed twice`,
    `sale ${s.sale}: the order listing repeats itself after cursor "again"; the orders after it were not checked`,
    `sale ${s.sale}: sold is 2, but its paid orders hold 0 units`,
    `sale ${s.sale}: reserved is 2, but its reserved and paying orders hold 0 units`,
    ...(['amy', 'dan'] as const).map((u) =>
      `txn ${orderTxnId(s.orders[u])}: names order ${s.orders[u]} of sale ${s.sale}, which the store does not list among that sale's orders`),
  ]);
});

t.test('the sale audit refuses a ledger whose scan did not run to its end', async (t) => {
  const s = await scene();
  const ledger = new PurchaseLedger();
  await t.rejects(auditSales(s.sales, s.wallet, ledger), /the ledger scan did not run to its end/);
  for await (const txn of ledger.watch(s.wallet).scanTxns()) void txn;
  t.same((await auditSales(s.sales, s.wallet, ledger)).counts, { sales: 1, orders: 5, txns: 4 }, 'after a whole scan it runs');
});

t.test('problems beyond maxProblems are counted in one last line', async (t) => {
  const s = await scene();
  for (const user of ['ben', 'dan'] as const) await s.wallet.post(purchase(s.orders[user], user, 'shop', 100, { id: `order-again:${user}` }));
  await s.wallet.post(purchase('o-ghost', 'amy', 'shop', 100));
  const report = await auditWalletAndSales(s.wallet, s.sales, { maxProblems: 2 });
  t.equal(report.sales.ok, false);
  t.equal(report.sales.problems.length, 3);
  t.equal(report.sales.problems[2], '... and 1 more problems not listed');
});
