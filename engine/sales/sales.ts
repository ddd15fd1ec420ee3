// Flash sales (docs/decisions/0008): a merchant's sale posted as a card; purchase attempts pass the
// StockGate (fast, atomic, in arrival order) and only those it admits reach the SaleStore, which
// is the truth and enforces stock and the per-buyer limit again, so a gate that lost its state can
// over-admit but never oversell. A reservation is durable before the buyer hears `reserved`; it is
// paid from the wallet (ledger txn `order:<id>`, buyer -> merchant) before its deadline or expires,
// and its stock returns to the sale.
import { LanternError } from '../../protocol/errors.ts';
import type { AdminRequestMap, BuyResult, OrderInfo, RequestParams, RequestResult, SaleEvent, SaleInfo, SaleState } from '../../protocol/frames.ts';
import type { DeviceSession, EngineSettings } from '../api.ts';
import type { ConversationCache } from '../conversation-state.ts';
import type { Messaging, SendLimit } from '../messaging.ts';
import type { Clock, Delivery, Logger } from '../ports.ts';
import { currencyOf, derivedId, fingerprint, requireCents, requireText } from '../wallet/money.ts';
import { InsufficientFundsError, walletAccount, type LedgerTxn, type WalletStore } from '../wallet/ports.ts';
import {
  orderRefundTxnId, orderTxnId, SaleKeyReusedError,
  type GateHoldings, type Order, type OrderState, type Sale, type SaleRecord, type SaleStore, type StockGate,
} from './ports.ts';

/** Sales kept in memory (they are immutable once created): an attempt costs no read of its sale. */
const KNOWN_SALES = 10_000;
/** Gate rounds before an attempt gives up (only when the gate keeps losing its state). */
const BUY_ATTEMPTS = 3;
/** Orders read per page when a gate is rebuilt from the store. */
const REBUILD_PAGE = 1_000;
/** How long a gate keeps a sale's state after its last payment deadline can pass. */
const GATE_RETENTION_MS = 3600_000;

/** Tells every gateway a sale's state, so they answer attempts that cannot win locally. */
export interface SaleSignals {
  publish(event: SaleEvent): void;
}

export interface SalesDeps {
  store: SaleStore;
  gate: StockGate;
  wallet: WalletStore;
  messaging: Messaging;
  cache: ConversationCache;
  delivery: Delivery;
  signals: SaleSignals;
  /** Purchase attempts per user across all their devices and gateways (absent: no per-user limit). */
  attemptLimit?: SendLimit;
  settings: EngineSettings;
  clock: Clock;
  log: Logger;
}

export function orderInfo(o: Order): OrderInfo {
  return {
    order: o.id, sale: o.sale, user: o.user, quantity: o.quantity, amount: o.amount, currency: o.currency,
    state: o.state, createdAt: o.createdAt, payBy: o.payBy, ...(o.settledAt === undefined ? {} : { settledAt: o.settledAt }),
  };
}

export function saleStateAt(sale: Sale, remaining: number, now: number): SaleState {
  if (now >= sale.endAt) return 'closed';
  if (now < sale.startAt) return 'scheduled';
  return remaining > 0 ? 'open' : 'sold_out';
}

export function saleInfo(record: SaleRecord, now: number): SaleInfo {
  const { sale: s, counts } = record;
  return {
    sale: s.id, merchant: s.merchant, conv: s.conv, item: s.item, price: s.price, currency: s.currency, stock: s.stock,
    startAt: s.startAt, endAt: s.endAt, perUserLimit: s.perUserLimit, payWindowMs: s.payWindowMs, createdAt: s.createdAt,
    state: saleStateAt(s, counts.remaining, now), sold: counts.sold, reserved: counts.reserved, remaining: counts.remaining,
  };
}

interface Announced {
  state?: SaleState;
  timer?: NodeJS.Timeout;
}

export class Sales {
  private readonly known = new Map<string, Sale>();
  private readonly loading = new Map<string, Promise<Sale>>();
  private readonly rebuilding = new Map<string, Promise<void>>();
  private readonly announced = new Map<string, Announced>();

  constructor(private readonly d: SalesDeps) {}

  // ---- merchant -----------------------------------------------------------------------------

  async create(p: AdminRequestMap['sale.create']['params']): Promise<AdminRequestMap['sale.create']['result']> {
    const { settings, clock } = this.d;
    const currency = currencyOf(settings, p.currency);
    const price = requireCents(p.price, settings.saleMaxPrice, 'price', 'saleMaxPrice');
    const stock = requireCount(p.stock, settings.saleMaxStock, 'stock', 'saleMaxStock');
    const perUserLimit = requireCount(p.perUserLimit, settings.saleMaxPerUserLimit, 'perUserLimit', 'saleMaxPerUserLimit');
    if (!Number.isSafeInteger(price * settings.saleMaxPerUserLimit)) throw new LanternError('too_large', 'price x saleMaxPerUserLimit overflows', { field: 'price' });
    const item = requireText(p.item, settings.saleMaxItemLength, 'item');
    if (item.trim() === '') throw new LanternError('invalid_field', 'item must name what is sold', { field: 'item' });
    for (const field of ['startAt', 'endAt'] as const) {
      if (!Number.isSafeInteger(p[field]) || p[field] < 0) throw new LanternError('invalid_field', `${field} must be a time in ms since the epoch`, { field });
    }
    if (p.endAt <= p.startAt) throw new LanternError('invalid_field', 'endAt must be after startAt', { field: 'endAt' });
    if (p.endAt - p.startAt > settings.saleMaxDurationMs) throw new LanternError('too_large', `the sale lasts longer than saleMaxDurationMs (${settings.saleMaxDurationMs} ms)`, { field: 'endAt' });
    const payWindowMs = p.payWindowMs ?? settings.salePayWindowMs;
    if (!Number.isSafeInteger(payWindowMs) || payWindowMs < 1_000 || payWindowMs > settings.saleMaxPayWindowMs) {
      throw new LanternError('invalid_field', `payWindowMs must be between 1000 and saleMaxPayWindowMs (${settings.saleMaxPayWindowMs})`, { field: 'payWindowMs' });
    }
    const merchant: DeviceSession = { user: p.merchant, device: 'admin', session: 'admin' };
    await this.d.messaging.requirePostable(merchant, p.conv);

    const now = clock.now();
    const proposed: Sale = {
      id: derivedId('s', p.merchant, p.key), merchant: p.merchant, conv: p.conv, item, price, currency, stock,
      startAt: p.startAt, endAt: p.endAt, perUserLimit, payWindowMs, createdAt: now,
      fingerprint: fingerprint({ conv: p.conv, item, price, currency, stock, startAt: p.startAt, endAt: p.endAt, perUserLimit, payWindowMs }),
    };
    let created;
    try {
      created = await this.d.store.createSale(proposed);
    } catch (err) {
      if (err instanceof SaleKeyReusedError) throw new LanternError('key_reused', `key ${p.key} was used for a different sale`, { field: 'key' });
      throw err;
    }
    const sale = created.value;
    this.remember(sale);
    await this.d.gate.load(gateSale(sale), { taken: 0, users: [], pending: [] })
      .catch((err: unknown) => this.d.log.warn({ err, sale: sale.id }, 'stock gate load failed; the first attempt loads it'));
    // The card is idempotent by its cid (the sale id): a retried create posts it once.
    await this.d.messaging.postCard(merchant, sale.conv, sale.id, 'sale', {
      sale: sale.id, item: sale.item, price: sale.price, currency: sale.currency, stock: sale.stock,
      startAt: sale.startAt, endAt: sale.endAt, perUserLimit: sale.perUserLimit,
    });
    const record = await this.record(sale.id);
    this.announce(sale, saleStateAt(sale, record.counts.remaining, now), record.counts.remaining, true);
    return { ...saleInfo(record, now), applied: created.applied };
  }

  // ---- buyers -------------------------------------------------------------------------------

  async buy(who: DeviceSession, p: RequestParams<'sale.buy'>): Promise<BuyResult> {
    const sale = await this.sale(p.sale);
    if (!Number.isSafeInteger(p.quantity) || p.quantity < 1) throw new LanternError('invalid_field', 'quantity must be a positive integer', { field: 'quantity' });
    if (p.quantity > sale.perUserLimit) {
      throw new LanternError('invalid_field', `quantity ${p.quantity} is above this sale's limit of ${sale.perUserLimit} per buyer`, { field: 'quantity' });
    }
    // A flood from one user is refused before it costs the gate anything; others are unaffected.
    await this.d.attemptLimit?.check(who.user);
    const now = this.d.clock.now();
    const order: Order = {
      id: derivedId('o', who.user, `${sale.id}\u0000${p.key}`), sale: sale.id, user: who.user, key: p.key,
      quantity: p.quantity, amount: p.quantity * sale.price, currency: sale.currency, state: 'reserved',
      createdAt: now, payBy: now + sale.payWindowMs, fingerprint: fingerprint({ sale: sale.id, quantity: p.quantity }),
    };
    const answer = (outcome: BuyResult['outcome'], more: Partial<BuyResult> = {}): BuyResult => ({ sale: sale.id, outcome, ...more });

    for (let attempt = 0; attempt < BUY_ATTEMPTS; attempt++) {
      const decision = await this.d.gate.decide(sale.id, { order: order.id, user: who.user, units: order.quantity, now, payBy: order.payBy });
      switch (decision.outcome) {
        case 'unknown':
          await this.rebuildGate(sale);
          continue;
        case 'not_open': return answer('not_open', { startAt: sale.startAt });
        case 'closed': return answer('closed');
        case 'limit_reached':
        case 'sold_out': {
          if (decision.outcome === 'sold_out') this.announce(sale, 'sold_out', 0);
          // A resent key whose order the gate no longer knows (rebuilt after a Redis loss counts a
          // paid order's units but not its id): the buyer hears their order, not a refusal.
          const earlier = p.retry === true ? await this.d.store.getOrder(order.id) : undefined;
          if (earlier) {
            if (earlier.fingerprint !== order.fingerprint) throw keyReused(p.key);
            return answer('reserved', { order: orderInfo(earlier), duplicate: true });
          }
          return answer(decision.outcome);
        }
        case 'duplicate': {
          if (decision.earlier !== 'admit') return answer(decision.earlier, { duplicate: true });
          const stored = await this.d.store.getOrder(order.id);
          if (stored) {
            if (stored.fingerprint !== order.fingerprint) throw keyReused(p.key);
            return answer('reserved', { order: orderInfo(stored), duplicate: true });
          }
          // Admitted earlier, never stored (the worker died in between): store it now.
          return this.reserve(sale, order, answer);
        }
        case 'admit':
          return this.reserve(sale, order, answer);
      }
    }
    throw new LanternError('unavailable', `sale ${sale.id}: the stock gate keeps losing its state; retry with the same key`);
  }

  /** The store's word on an admitted attempt; the gate gets back what the store did not take. */
  private async reserve(sale: Sale, order: Order, answer: (o: BuyResult['outcome'], more?: Partial<BuyResult>) => BuyResult): Promise<BuyResult> {
    const { store, gate } = this.d;
    const giveBack = (): Promise<void> => gate.release(sale.id, order.id)
      .catch((err: unknown) => this.d.log.warn({ err, sale: sale.id, order: order.id }, 'stock gate release failed; the units come back at the deadline'));
    let result;
    try {
      result = await store.reserve(order);
    } catch (err) {
      if (err instanceof SaleKeyReusedError) { await giveBack(); throw keyReused(order.key); }
      // Unknown outcome: the gate keeps the units until the buyer retries (same key) or the deadline.
      throw err;
    }
    if (!result) { await giveBack(); throw new LanternError('not_found', `no sale ${sale.id}`, { field: 'sale' }); }
    if (result.outcome === 'reserved') {
      if (!result.applied) {
        // The gate had forgotten this order (rebuilt from holdings that already count a paid order,
        // and never an expired one): it took the units again, so they go back. An open order stays
        // pending there, released or settled by its deadline.
        if (result.order.state === 'expired' || result.order.state === 'paid') await giveBack();
        return answer('reserved', { order: orderInfo(result.order), duplicate: true });
      }
      this.announceSoon(sale);
      return answer('reserved', { order: orderInfo(result.order) });
    }
    await giveBack();
    if (result.outcome === 'sold_out') {
      this.announce(sale, 'sold_out', 0);
      return answer('sold_out');
    }
    return answer('limit_reached');
  }

  async pay(who: DeviceSession, p: RequestParams<'sale.pay'>): Promise<OrderInfo> {
    const order = await this.d.store.getOrder(p.order);
    if (!order || order.user !== who.user) throw new LanternError('not_found', `no order ${p.order}`, { field: 'order' });
    if (order.state === 'paid') return orderInfo(order);
    if (order.state === 'expired') throw expired(order);
    const sale = await this.sale(order.sale);
    const now = this.d.clock.now();
    if (order.state === 'reserved') {
      if (now >= order.payBy) {
        await this.expire(sale, order.id, ['reserved']);
        throw expired(order);
      }
      const began = await this.d.store.transition(order.id, ['reserved'], 'paying', now);
      if (!began) throw new LanternError('not_found', `no order ${p.order}`, { field: 'order' });
      if (began.value.state === 'paid') return orderInfo(began.value);
      if (began.value.state === 'expired') throw expired(order);
    }
    // paying: ours, or an earlier attempt's that did not finish. The txn is idempotent by order id.
    try {
      await this.d.wallet.post(paymentTxn(sale, order, now));
    } catch (err) {
      if (err instanceof InsufficientFundsError) {
        await this.d.store.transition(order.id, ['paying'], 'reserved', now);
        throw new LanternError('insufficient_funds', `the ${order.currency} wallet holds ${err.balance} cents; the order needs ${order.amount}`, { field: 'order' });
      }
      throw err;
    }
    return orderInfo(await this.finishPayment(sale, order.id, now));
  }

  /** The payment txn is posted: paying -> paid; if the sweeper expired the order meanwhile, refund. */
  private async finishPayment(sale: Sale, orderId: string, now: number): Promise<Order> {
    const done = await this.d.store.transition(orderId, ['paying'], 'paid', now);
    if (!done) throw new LanternError('not_found', `no order ${orderId}`, { field: 'order' });
    const order = done.value;
    if (order.state === 'paid') {
      await this.d.gate.settle(sale.id, orderId).catch((err: unknown) => this.d.log.warn({ err, order: orderId }, 'stock gate settle failed; the sweeper settles it'));
      return order;
    }
    if (order.state === 'expired') {
      await this.d.wallet.post(paymentRefundTxn(sale, order, now));
      throw expired(order);
    }
    return order;
  }

  async info(who: DeviceSession, p: RequestParams<'sale.info'>): Promise<SaleInfo> {
    const record = await this.d.store.getSale(p.sale);
    if (!record) throw new LanternError('not_found', `no sale ${p.sale}`, { field: 'sale' });
    if (record.sale.merchant !== who.user) (await this.d.cache.require(record.sale.conv)).requireMember(who.user);
    return saleInfo(record, this.d.clock.now());
  }

  async orders(who: DeviceSession | undefined, p: RequestParams<'sale.orders'>): Promise<RequestResult<'sale.orders'>> {
    const { settings } = this.d;
    const limit = Math.min(p.limit ?? settings.saleOrdersPageDefault, settings.saleOrdersPageMax);
    const page = { limit, ...(p.after === undefined ? {} : { after: p.after }) };
    let result;
    if (p.sale !== undefined) {
      const sale = await this.sale(p.sale);
      if (who && who.user !== sale.merchant) throw new LanternError('forbidden', 'only the merchant lists a sale\'s orders', { field: 'sale' });
      result = await this.d.store.saleOrders(sale.id, page);
    } else {
      if (!who) throw new LanternError('invalid_field', 'sale is required', { field: 'sale' });
      result = await this.d.store.userOrders(who.user, page);
    }
    return { orders: result.orders.map(orderInfo), ...(result.next === undefined ? {} : { next: result.next }) };
  }

  // ---- expiry -------------------------------------------------------------------------------

  /**
   * Expire unpaid orders whose deadline passed (their stock returns), finish payments a crash left
   * in `paying` (from the ledger), and release units the gate admitted that never became orders.
   * Resolves how many orders were expired.
   */
  async sweep(limit = 200): Promise<number> {
    const { store, gate, clock, settings } = this.d;
    const now = clock.now();
    let expiredCount = 0;
    for (const id of await store.dueOrders(now, limit)) {
      try {
        const order = await store.getOrder(id);
        if (!order) continue;
        const sale = await this.sale(order.sale);
        if (order.state === 'reserved') {
          if (await this.expire(sale, id, ['reserved'])) expiredCount++;
        } else if (order.state === 'paying' && now - order.payBy >= settings.saleStuckPaymentMs) {
          // A payment interrupted by a crash: the ledger says whether it happened.
          if (await this.d.wallet.getTxn(orderTxnId(id))) await this.finishPayment(sale, id, now);
          else if (await this.expire(sale, id, ['paying'])) expiredCount++;
        }
      } catch (err) {
        this.d.log.warn({ err, order: id }, 'could not expire an order; retrying next sweep');
      }
    }
    // Orders the gate admitted, past their deadline: stored ones were settled above; the rest never
    // reached the store (a worker died in between) and give their units back.
    for (const sale of this.known.values()) {
      if (now > sale.endAt + sale.payWindowMs + GATE_RETENTION_MS) continue;
      try {
        for (const id of await gate.due(sale.id, now, limit)) {
          const order = await store.getOrder(id);
          if (!order || order.state === 'expired') await gate.release(sale.id, id);
          else if (order.state === 'paid') await gate.settle(sale.id, id);
        }
      } catch (err) {
        this.d.log.warn({ err, sale: sale.id }, 'could not reconcile the stock gate; retrying next sweep');
      }
    }
    return expiredCount;
  }

  private async expire(sale: Sale, orderId: string, from: OrderState[]): Promise<boolean> {
    const moved = await this.d.store.transition(orderId, from, 'expired', this.d.clock.now());
    if (!moved || moved.value.state !== 'expired') return false;
    await this.d.gate.release(sale.id, orderId);
    if (moved.applied) this.announceSoon(sale);
    return moved.applied;
  }

  // ---- live state ---------------------------------------------------------------------------

  /** The state to the conversation and to every gateway: at once when it changes, else throttled. */
  private announce(sale: Sale, state: SaleState, remaining: number, force = false): void {
    const seen = this.announced.get(sale.id) ?? {};
    this.announced.set(sale.id, seen);
    if (!force && seen.state === state && state !== 'open') return;
    seen.state = state;
    const event: SaleEvent = { t: 'sale', sale: sale.id, conv: sale.conv, state, remaining, startAt: sale.startAt, endAt: sale.endAt, ts: this.d.clock.now() };
    this.d.signals.publish(event);
    void this.d.cache.require(sale.conv).then(
      (conv) => this.d.delivery.toConversation(sale.conv, event, conv.audience()),
      (err: unknown) => this.d.log.warn({ err, sale: sale.id }, 'sale state event not sent to the conversation: its members could not be read'),
    );
  }

  /** Stock changed: one event per saleStateThrottleMs with the gate's (coarse) remaining. */
  private announceSoon(sale: Sale): void {
    const seen = this.announced.get(sale.id) ?? {};
    this.announced.set(sale.id, seen);
    if (seen.timer) return;
    seen.timer = setTimeout(() => {
      seen.timer = undefined;
      void this.d.gate.remaining(sale.id).then((remaining) => {
        if (remaining === undefined) return;
        this.announce(sale, saleStateAt(sale, remaining, this.d.clock.now()), remaining, true);
      }, (err: unknown) => this.d.log.warn({ err, sale: sale.id }, 'sale state event skipped: the gate could not say what remains'));
    }, this.d.settings.saleStateThrottleMs);
    seen.timer.unref();
  }

  // ---- sales and the gate -------------------------------------------------------------------

  private async sale(id: string): Promise<Sale> {
    const hit = this.known.get(id);
    if (hit) return hit;
    let loading = this.loading.get(id);
    if (!loading) {
      loading = this.record(id).then((r) => { this.remember(r.sale); return r.sale; }).finally(() => this.loading.delete(id));
      this.loading.set(id, loading);
    }
    return loading;
  }

  private async record(id: string): Promise<SaleRecord> {
    const record = await this.d.store.getSale(id);
    if (!record) throw new LanternError('not_found', `no sale ${id}`, { field: 'sale' });
    return record;
  }

  private remember(sale: Sale): void {
    this.known.delete(sale.id);
    this.known.set(sale.id, sale);
    if (this.known.size > KNOWN_SALES) this.known.delete(this.known.keys().next().value!);
  }

  /** The gate lost the sale (Redis restarted, or never loaded): load it from the store's orders. One rebuild per sale at a time. */
  private rebuildGate(sale: Sale): Promise<void> {
    let running = this.rebuilding.get(sale.id);
    if (!running) {
      running = (async () => {
        const holdings = { taken: 0, users: new Map<string, number>(), pending: [] as Array<GateHoldings['pending'][number]> };
        let after: string | undefined;
        do {
          const page = await this.d.store.saleOrders(sale.id, { limit: REBUILD_PAGE, ...(after === undefined ? {} : { after }) });
          for (const o of page.orders) {
            if (o.state === 'expired') continue;
            holdings.taken += o.quantity;
            holdings.users.set(o.user, (holdings.users.get(o.user) ?? 0) + o.quantity);
            if (o.state !== 'paid') holdings.pending.push({ order: o.id, user: o.user, units: o.quantity, payBy: o.payBy });
          }
          after = page.next;
        } while (after !== undefined);
        await this.d.gate.load(gateSale(sale), {
          taken: holdings.taken, users: [...holdings.users].map(([user, units]) => ({ user, units })), pending: holdings.pending,
        });
      })().finally(() => this.rebuilding.delete(sale.id));
      this.rebuilding.set(sale.id, running);
    }
    return running;
  }
}

function gateSale(sale: Sale) {
  return { id: sale.id, stock: sale.stock, perUserLimit: sale.perUserLimit, startAt: sale.startAt, endAt: sale.endAt, retainUntil: sale.endAt + sale.payWindowMs + GATE_RETENTION_MS };
}

function paymentTxn(sale: Sale, order: Order, ts: number): LedgerTxn {
  return {
    id: orderTxnId(order.id), kind: 'purchase', currency: order.currency, ref: order.id, ts,
    postings: [{ account: walletAccount(order.user, order.currency), amount: -order.amount }, { account: walletAccount(sale.merchant, order.currency), amount: order.amount }],
    fingerprint: `${order.id}:${order.amount}`,
  };
}

function paymentRefundTxn(sale: Sale, order: Order, ts: number): LedgerTxn {
  return {
    id: orderRefundTxnId(order.id), kind: 'purchase_refund', currency: order.currency, ref: order.id, ts,
    postings: [{ account: walletAccount(sale.merchant, order.currency), amount: -order.amount }, { account: walletAccount(order.user, order.currency), amount: order.amount }],
    fingerprint: `${order.id}:${order.amount}`,
  };
}

function requireCount(value: unknown, max: number, field: string, setting: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1) throw new LanternError('invalid_field', `${field} must be a positive integer`, { field });
  if ((value as number) > max) throw new LanternError('too_large', `${field} ${String(value)} is above ${setting} (${max})`, { field });
  return value as number;
}

const keyReused = (key: string): LanternError => new LanternError('key_reused', `key ${key} was used for a different purchase`, { field: 'key' });
const expired = (order: Order): LanternError =>
  new LanternError('order_expired', `order ${order.id} was not paid by ${new Date(order.payBy).toISOString()}; its stock went back to the sale`, { field: 'order' });
