// The sale service over the in-memory adapters: what the e2e suite cannot stage — a worker dying
// between the gate and the store, a payment interrupted by a crash — plus the live state events.
import t from 'tap';
import { MemoryChatStore } from '../../storage/memory/chat-store.ts';
import { MemoryGrabDecider } from '../../storage/memory/grab-decider.ts';
import { MemorySaleStore } from '../../storage/memory/sale-store.ts';
import { MemoryStockGate } from '../../storage/memory/stock-gate.ts';
import { MemoryWalletStore } from '../../storage/memory/wallet-store.ts';
import type { SaleEvent } from '../../protocol/frames.ts';
import { harness, ManualClock } from '../test/harness.ts';
import type { Clock } from '../ports.ts';
import { orderTxnId, type StockGate } from './ports.ts';

/** A gate whose state can be lost, as when Redis restarts empty. */
class LosableGate implements StockGate {
  inner: MemoryStockGate;
  constructor(private readonly clock: Clock) { this.inner = new MemoryStockGate({ clock }); }
  lose(): void { this.inner = new MemoryStockGate({ clock: this.clock }); }
  load: StockGate['load'] = (s, h) => this.inner.load(s, h);
  decide: StockGate['decide'] = (s, a) => this.inner.decide(s, a);
  release: StockGate['release'] = (s, o) => this.inner.release(s, o);
  settle: StockGate['settle'] = (s, o) => this.inner.settle(s, o);
  due: StockGate['due'] = (s, n, l) => this.inner.due(s, n, l);
  remaining: StockGate['remaining'] = (s) => this.inner.remaining(s);
  drop: StockGate['drop'] = (s) => this.inner.drop(s);
}

function shop(settings: Record<string, number> = {}) {
  const wallet = new MemoryWalletStore();
  const store = new MemorySaleStore();
  const clock = new ManualClock();
  const gate = new LosableGate(clock);
  const signals: SaleEvent[] = [];
  const base = harness({ saleStateThrottleMs: 10, saleStuckPaymentMs: 1_000, ...settings }, new MemoryChatStore(), {
    wallet: { store: wallet, decider: new MemoryGrabDecider() },
    sales: { store, gate, signals: { publish: (e) => signals.push(e) } },
    clock,
  });
  const h = { ...base, clock };
  const now = () => h.clock.now();
  const create = async (more: Record<string, unknown> = {}) => {
    const { conv } = await h.as('shop').req('group.create', { title: 'shop', members: ['fan'] });
    return h.engine.admin!('sale.create', {
      merchant: 'shop', conv, item: 'phone', price: 100, stock: 3, perUserLimit: 1, startAt: now() - 1, endAt: now() + 3600_000,
      payWindowMs: 60_000, key: `k${Math.random()}`, ...more,
    });
  };
  const topup = (user: string, amount: number) => h.engine.admin!('wallet.topup', { user, amount, key: `t${Math.random()}` });
  return { h, wallet, store, gate, signals, create, topup };
}

t.test('units the gate admitted but the store never got (a worker died between them) come back at the deadline', async (t) => {
  const { h, gate, create } = shop();
  const sale = await create({ stock: 1 });
  // The dead worker's admission: the gate counted the unit, no order was stored.
  const now = h.clock.now();
  t.same(await gate.decide(sale.sale, { order: 'o-lost', user: 'ghost', units: 1, now, payBy: now + 60_000 }), { outcome: 'admit' });
  t.equal((await h.as('u1').req('sale.buy', { sale: sale.sale, quantity: 1, key: 'a' })).outcome, 'sold_out', 'the unit looks taken');
  h.clock.ms += 61_000;
  await h.engine.sweepWallet!();
  t.equal((await h.as('u2').req('sale.buy', { sale: sale.sale, quantity: 1, key: 'b' })).outcome, 'reserved', 'after the deadline it is sold again');
});

t.test('a payment a crash left in paying is finished from the ledger: paid if the money moved, else expired', async (t) => {
  const { h, store, wallet, create, topup } = shop();
  const sale = await create({ stock: 2, perUserLimit: 1 });
  await topup('a', 1_000);
  await topup('b', 1_000);
  const a = (await h.as('a').req('sale.buy', { sale: sale.sale, quantity: 1, key: 'x' })).order!;
  const b = (await h.as('b').req('sale.buy', { sale: sale.sale, quantity: 1, key: 'x' })).order!;
  // a's payment crashed after the ledger write; b's before it.
  await store.transition(a.order, ['reserved'], 'paying', h.clock.now());
  await wallet.post({ id: orderTxnId(a.order), kind: 'purchase', currency: 'CNY', ref: a.order, ts: h.clock.now(), fingerprint: `${a.order}:100`,
    postings: [{ account: 'u:a:CNY', amount: -100 }, { account: 'u:shop:CNY', amount: 100 }] });
  await store.transition(b.order, ['reserved'], 'paying', h.clock.now());
  h.clock.ms += 60_000 + 1_000;
  await h.engine.sweepWallet!();
  t.same([(await store.getOrder(a.order))!.state, (await store.getOrder(b.order))!.state], ['paid', 'expired']);
  const info = await h.as('shop').req('sale.info', { sale: sale.sale });
  t.same([info.sold, info.reserved, info.remaining], [1, 0, 1], 'the expired unit is back');
  t.same([(await h.as('a').req('wallet.balance', {})).balances[0]!.cents, (await h.as('b').req('wallet.balance', {})).balances[0]!.cents], [900, 1_000]);
});

t.test('a payment that lands after the sweeper expired its order is refunded', async (t) => {
  const { h, wallet, create, topup } = shop();
  const sale = await create();
  await topup('a', 1_000);
  const a = (await h.as('a').req('sale.buy', { sale: sale.sale, quantity: 1, key: 'x' })).order!;
  // The payer's ledger write stalls (a slow store) long enough for the sweeper to give up on it.
  let resume!: () => void;
  const stalled = new Promise<void>((r) => { resume = r; });
  const post = wallet.post.bind(wallet);
  wallet.post = async (txn) => { if (txn.kind === 'purchase') await stalled; return post(txn); };
  const paying = h.as('a').req('sale.pay', { order: a.order }).catch((e: unknown) => e);
  await new Promise((r) => setTimeout(r, 10));
  h.clock.ms += 62_000;
  await h.engine.sweepWallet!();
  resume();
  t.match(await paying, { error: 'order_expired' }, 'the payer hears the order expired');
  t.equal((await h.as('a').req('wallet.balance', {})).balances[0]!.cents, 1_000, 'the buyer has every cent back');
  t.equal((await h.as('shop').req('wallet.balance', {})).balances[0]!.cents, 0, 'the merchant keeps nothing');
  t.ok(await wallet.getTxn(`order-refund:${a.order}`), 'the refund is on the ledger');
});

t.test('a gate that lost its state is rebuilt from the store: no unit twice, limits kept', async (t) => {
  const { h, store, gate, create } = shop();
  const sale = await create({ stock: 3, perUserLimit: 1 });
  t.equal((await h.as('a').req('sale.buy', { sale: sale.sale, quantity: 1, key: 'x' })).outcome, 'reserved');
  // Redis restarted empty.
  gate.lose();
  t.equal(await gate.remaining(sale.sale), undefined, 'the gate knows nothing of the sale');
  t.equal((await h.as('a').req('sale.buy', { sale: sale.sale, quantity: 1, key: 'y' })).outcome, 'limit_reached', 'a\'s unit is remembered');
  t.equal((await h.as('b').req('sale.buy', { sale: sale.sale, quantity: 1, key: 'x' })).outcome, 'reserved');
  t.equal((await h.as('c').req('sale.buy', { sale: sale.sale, quantity: 1, key: 'x' })).outcome, 'reserved');
  t.equal((await h.as('d').req('sale.buy', { sale: sale.sale, quantity: 1, key: 'x' })).outcome, 'sold_out');
  t.equal((await store.getSale(sale.sale))!.counts.remaining, 0);
});

t.test('state events: sold out at once, reopened when a reservation expires', async (t) => {
  const { h, signals, create } = shop();
  const sale = await create({ stock: 1, payWindowMs: 1_000 });
  await h.as('a').req('sale.buy', { sale: sale.sale, quantity: 1, key: 'x' });
  t.equal((await h.as('b').req('sale.buy', { sale: sale.sale, quantity: 1, key: 'x' })).outcome, 'sold_out');
  t.equal(signals.at(-1)!.state, 'sold_out', 'gateways hear sold out at once');
  t.equal(h.delivery.of('fan', 'sale').at(-1)?.state, 'sold_out', 'the conversation hears it too');
  h.clock.ms += 2_000;
  await h.engine.sweepWallet!();
  await new Promise((r) => setTimeout(r, 50));
  t.same([signals.at(-1)!.state, signals.at(-1)!.remaining], ['open', 1], 'the expired unit reopens the sale');
});

t.test('after the gate is lost, a resent key of a paid order at its limit gets the order back, not limit_reached', async (t) => {
  const { h, gate, create, topup } = shop();
  const sale = await create({ stock: 3, perUserLimit: 1 });
  await topup('a', 1_000);
  const first = (await h.as('a').req('sale.buy', { sale: sale.sale, quantity: 1, key: 'x' })).order!;
  await h.as('a').req('sale.pay', { order: first.order });
  gate.lose();
  const again = await h.as('a').req('sale.buy', { sale: sale.sale, quantity: 1, key: 'x', retry: true });
  t.same([again.outcome, again.duplicate, again.order?.order, again.order?.state], ['reserved', true, first.order, 'paid']);
  t.equal((await h.as('a').req('sale.buy', { sale: sale.sale, quantity: 1, key: 'other' })).outcome, 'limit_reached', 'a new key is still refused');
});
