// Flash sales' storage ports (docs/decisions/0008). Two seams, as for red envelopes:
//   SaleStore  the truth: sales and their orders, durable, and the only place that decides whether
//              stock or a buyer's limit allows a reservation (so a gate that lost its state can never
//              oversell);
//   StockGate  the fast admission step in front of it (Redis Lua, or a map in the embedded process):
//              answers the storm's losers (sold out, limit reached, not open, duplicates) without
//              touching the store, and lets through only attempts that may still win.
// Every write is idempotent: a reservation by its order id (derived from the buyer and their key),
// payment by the order's ledger transaction. storage/contract/sale-store.contract.ts and
// stock-gate.contract.ts check every adapter.

export interface Sale {
  id: string;
  /** The merchant (official account) user: receives the payments, posts the card. */
  merchant: string;
  /** The conversation the sale's card is posted in; its members see the live state. */
  conv: string;
  item: string;
  /** Per unit, integer cents. */
  price: number;
  currency: string;
  /** Units for sale. */
  stock: number;
  startAt: number;
  endAt: number;
  /** Most units one buyer may hold (reserved and paid together). */
  perUserLimit: number;
  /** How long a reservation waits for payment before its stock returns to the sale. */
  payWindowMs: number;
  createdAt: number;
  /** Hash of the admin request that created it: the same key with another request is refused. */
  fingerprint: string;
}

/**
 * reserved -> paying -> paid, or reserved -> expired (deadline passed unpaid). paying -> reserved
 * when the payment failed (not enough money). A crash in paying is finished by the sweeper from the
 * ledger: the payment transaction exists (paid) or not (reserved, then expired if past the deadline).
 */
export type OrderState = 'reserved' | 'paying' | 'paid' | 'expired';

export interface Order {
  /** Derived from (sale, user, key): a retried attempt names the same order. */
  id: string;
  sale: string;
  user: string;
  /** The buyer's idempotency key. */
  key: string;
  quantity: number;
  /** quantity x price, cents. */
  amount: number;
  currency: string;
  state: OrderState;
  createdAt: number;
  /** Payment deadline (createdAt + the sale's payWindowMs). */
  payBy: number;
  /** When it became paid or expired. */
  settledAt?: number;
  /** Hash of the attempt (sale, quantity): the same key with another body is refused. */
  fingerprint: string;
}

/** Units of a sale by where they are. stock == sold + reserved + remaining, always. */
export interface SaleCounts {
  /** In paid orders. */
  sold: number;
  /** In reserved or paying orders. */
  reserved: number;
  remaining: number;
}

export interface SaleRecord {
  sale: Sale;
  counts: SaleCounts;
}

export type ReserveResult =
  /** `applied` false: the order existed (a retried attempt); it is returned in its current state. */
  | { outcome: 'reserved'; order: Order; applied: boolean }
  | { outcome: 'sold_out'; remaining: number }
  /** `held`: units the buyer holds in reserved, paying and paid orders. */
  | { outcome: 'limit_reached'; held: number };

export interface Applied<T> {
  value: T;
  applied: boolean;
}

export interface OrderPage {
  orders: Order[];
  /** Pass as `after` for the next page; absent on the last one. */
  next?: string;
}

export interface SaleStore {
  /** Store a sale. Idempotent by id; the same id with another fingerprint throws SaleKeyReusedError. */
  createSale(sale: Sale): Promise<Applied<Sale>>;
  getSale(id: string): Promise<SaleRecord | undefined>;
  /**
   * Reserve `order.quantity` units for `order.user`, atomically: refused with sold_out when fewer
   * remain, limit_reached when the buyer's held units would pass the sale's perUserLimit. `order`
   * arrives in state reserved. Idempotent by order id (applied false, the stored order back, even
   * when the sale has sold out since); the same id with another fingerprint throws
   * SaleKeyReusedError. Undefined for an unknown sale.
   */
  reserve(order: Order): Promise<ReserveResult | undefined>;
  getOrder(orderId: string): Promise<Order | undefined>;
  /**
   * Move the order to `to` if it is in one of `from` (a compare-and-set), setting settledAt for paid
   * and expired; its units follow (expired returns them to remaining, paid moves them to sold).
   * Returns the order after the call and whether this call moved it. Undefined for an unknown order.
   */
  transition(orderId: string, from: readonly OrderState[], to: OrderState, at: number): Promise<Applied<Order> | undefined>;
  /** Ids of orders in reserved or paying whose payBy <= now, soonest first. */
  dueOrders(now: number, limit: number): Promise<string[]>;
  /** A buyer's orders, newest first. */
  userOrders(user: string, options: { after?: string; limit: number }): Promise<OrderPage>;
  /** A sale's orders, oldest first. */
  saleOrders(saleId: string, options: { after?: string; limit: number }): Promise<OrderPage>;
  /** Everything, for the audit. */
  scanSales(): AsyncIterable<SaleRecord>;
  close(): Promise<void>;
}

/** What the gate says about an attempt. */
export type GateDecision =
  /** Go on to the store with this reservation; the gate counts its units as taken. */
  | { outcome: 'admit' }
  /** The buyer's key was seen: the earlier decision for it (admit: ask the store for the order). */
  | { outcome: 'duplicate'; earlier: 'admit' | 'sold_out' | 'limit_reached' }
  | { outcome: 'sold_out' }
  | { outcome: 'limit_reached' }
  | { outcome: 'not_open' }
  | { outcome: 'closed' }
  /** The gate holds nothing for the sale (never loaded, or Redis restarted): load() it from the store and ask again. */
  | { outcome: 'unknown' };

export interface GateSale {
  id: string;
  stock: number;
  perUserLimit: number;
  startAt: number;
  endAt: number;
  /** The gate may drop the sale's state after this (ms since the epoch). */
  retainUntil: number;
}

/** Units the store says are taken, to install or rebuild a gate from. */
export interface GateHoldings {
  /** Units in reserved, paying and paid orders. */
  taken: number;
  /** Per buyer, the units they hold. */
  users: ReadonlyArray<{ user: string; units: number }>;
  /** Reserved and paying orders, with their deadlines (the gate releases them if they go unpaid). */
  pending: ReadonlyArray<{ order: string; user: string; units: number; payBy: number }>;
}

/**
 * Admission in front of the store, atomic under any number of concurrent attempts, in arrival order.
 * Never more pessimistic than the store except for units admitted and not yet stored (a worker that
 * died between the two: they come back at the admitted order's deadline, through `due`).
 */
export interface StockGate {
  /** Install the sale (does nothing when installed: a concurrent load won). */
  load(sale: GateSale, holdings: GateHoldings): Promise<void>;
  /**
   * One attempt: `order` is its derived order id. Checks in order: a known key (duplicate), the
   * window (not_open before startAt, closed from endAt), the buyer's limit, the stock. Admit takes
   * the units and records the order as pending until payBy.
   */
  decide(saleId: string, attempt: { order: string; user: string; units: number; now: number; payBy: number }): Promise<GateDecision>;
  /** The store refused an admitted order, or it expired unpaid: its units come back (once per order). */
  release(saleId: string, order: string): Promise<void>;
  /** The order was paid: it is no longer pending (its units stay taken). */
  settle(saleId: string, order: string): Promise<void>;
  /** Pending orders whose payBy <= now (to be expired, released or settled by the sweeper). */
  due(saleId: string, now: number, limit: number): Promise<string[]>;
  /** Units the gate still has (coarse: admitted-but-unstored units count as taken). Undefined when not loaded. */
  remaining(saleId: string): Promise<number | undefined>;
  drop(saleId: string): Promise<void>;
}

/** The order's payment, buyer -> merchant; idempotent by this id. */
export const orderTxnId = (orderId: string): string => `order:${orderId}`;
/** Money back for a payment that landed after its order expired (a crash mid-payment). */
export const orderRefundTxnId = (orderId: string): string => `order-refund:${orderId}`;

export class SaleKeyReusedError extends Error {
  override readonly name = 'SaleKeyReusedError';
  constructor(readonly id: string) { super(`${id} exists with a different request`); }
}
