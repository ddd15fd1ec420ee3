// The in-process StockGate (embedded mode, engine/sales/ports.ts): per sale, the units left, each
// buyer's held units, every decided order id and the admitted orders awaiting payment. Every method
// runs without an await, so on Node's one thread each is atomic under any number of concurrent
// attempts, and attempts are decided in arrival order.
//
// Memory is bounded by the sale's retainUntil: the state is dropped after it, swept lazily at most
// once a second on load and decide. A dropped sale answers 'unknown' and is rebuilt from the store
// if anyone asks again. A sale loaded at or after its retainUntil (a late retry, a sweeper) is held
// GATE_HOLD_AFTER_LOAD_MS from the load instead, so the load is not undone at once and the caller
// is not sent round an unknown -> load -> unknown loop.
//
// Decided order ids are remembered per sale until it is dropped, refusals included: a retried
// attempt gets the answer its key got first. not_open and closed are not remembered (a retry in the
// window may win). A released order is forgotten entirely: the same order id is decided afresh.
import type { Clock } from '../../engine/ports.ts';
import { systemClock } from '../../engine/ports.ts';
import type { GateDecision, GateHoldings, GateSale, StockGate } from '../../engine/sales/ports.ts';

export const GATE_HOLD_AFTER_LOAD_MS = 60_000;
const SWEEP_EVERY_MS = 1_000;

export type GateAttempt = { order: string; user: string; units: number; now: number; payBy: number };

const isCount = (n: number, least: number): boolean => Number.isSafeInteger(n) && n >= least;

/** Refuses what no store could hold (a bug in the caller): both adapters check the same way. */
export function checkGateLoad(sale: GateSale, holdings: GateHoldings): void {
  const { id, stock, perUserLimit, startAt, endAt, retainUntil } = sale;
  if (!isCount(stock, 1)) throw new RangeError(`sale ${id}: stock must be an integer >= 1 (got ${stock})`);
  if (!isCount(perUserLimit, 1)) throw new RangeError(`sale ${id}: perUserLimit must be an integer >= 1 (got ${perUserLimit})`);
  for (const [name, ms] of Object.entries({ startAt, endAt, retainUntil })) {
    if (!Number.isSafeInteger(ms)) throw new RangeError(`sale ${id}: ${name} must be an integer of ms (got ${ms})`);
  }
  if (endAt < startAt) throw new RangeError(`sale ${id}: endAt ${endAt} is before startAt ${startAt}`);
  const { taken, users, pending } = holdings;
  if (!isCount(taken, 0) || taken > stock) throw new RangeError(`sale ${id}: taken must be an integer in [0, ${stock}] (got ${taken})`);
  // Sums are not compared with `taken`: a rebuild may read the counts and the orders while
  // reservations land, and a gate that refuses to load would send every attempt round 'unknown'.
  const seenUsers = new Set<string>();
  for (const { user, units } of users) {
    if (!isCount(units, 1)) throw new RangeError(`sale ${id}: user ${user} holds ${units} units (an integer >= 1 is required)`);
    if (seenUsers.has(user)) throw new RangeError(`sale ${id}: user ${user} is listed twice`);
    seenUsers.add(user);
  }
  const seenOrders = new Set<string>();
  for (const { order, units, payBy } of pending) {
    if (!isCount(units, 1)) throw new RangeError(`sale ${id}: pending order ${order} has ${units} units (an integer >= 1 is required)`);
    if (!Number.isSafeInteger(payBy)) throw new RangeError(`sale ${id}: pending order ${order}: payBy must be an integer of ms (got ${payBy})`);
    if (seenOrders.has(order)) throw new RangeError(`sale ${id}: pending order ${order} is listed twice`);
    seenOrders.add(order);
  }
}

export function checkGateAttempt(saleId: string, attempt: GateAttempt): void {
  const { order, units, now, payBy } = attempt;
  if (!isCount(units, 1)) throw new RangeError(`sale ${saleId} order ${order}: units must be an integer >= 1 (got ${units})`);
  if (!Number.isSafeInteger(now)) throw new RangeError(`sale ${saleId} order ${order}: now must be an integer of ms (got ${now})`);
  if (!Number.isSafeInteger(payBy)) throw new RangeError(`sale ${saleId} order ${order}: payBy must be an integer of ms (got ${payBy})`);
}

export function checkDueLimit(limit: number): void {
  if (!isCount(limit, 0)) throw new RangeError(`due: limit must be an integer >= 0 (got ${limit})`);
}

/** What the gate remembers of a decided order id; user and units only for an admitted one. */
type Decided =
  | { earlier: 'admit'; user: string; units: number }
  | { earlier: 'sold_out' | 'limit_reached' };

interface SaleState {
  perUserLimit: number;
  startAt: number;
  endAt: number;
  stock: number;
  /** When the state may go (wall clock). */
  dropAt: number;
  remaining: number;
  held: Map<string, number>;
  decided: Map<string, Decided>;
  /** Admitted orders neither released nor settled: order -> payBy. */
  pending: Map<string, number>;
}

export interface MemoryStockGateOptions {
  /** The clock of retention only; the sale window is judged by decide()'s `now`. */
  clock?: Clock;
}

export class MemoryStockGate implements StockGate {
  private readonly clock: Clock;
  private readonly sales = new Map<string, SaleState>();
  private nextSweepAt = -Infinity;

  constructor(options: MemoryStockGateOptions = {}) {
    this.clock = options.clock ?? systemClock;
  }

  /** Sales held (for tests and metrics). */
  get size(): number {
    return this.sales.size;
  }

  async load(sale: GateSale, holdings: GateHoldings): Promise<void> {
    checkGateLoad(sale, holdings);
    const now = this.clock.now();
    this.sweep(now);
    if (this.sales.has(sale.id)) return;
    const decided = new Map<string, Decided>();
    const pending = new Map<string, number>();
    for (const { order, user, units, payBy } of holdings.pending) {
      decided.set(order, { earlier: 'admit', user, units });
      pending.set(order, payBy);
    }
    this.sales.set(sale.id, {
      perUserLimit: sale.perUserLimit,
      startAt: sale.startAt,
      endAt: sale.endAt,
      stock: sale.stock,
      dropAt: Math.max(sale.retainUntil, now + GATE_HOLD_AFTER_LOAD_MS),
      remaining: sale.stock - holdings.taken,
      held: new Map(holdings.users.map(({ user, units }) => [user, units])),
      decided,
      pending,
    });
  }

  async decide(saleId: string, attempt: GateAttempt): Promise<GateDecision> {
    checkGateAttempt(saleId, attempt);
    this.sweep(this.clock.now());
    const state = this.sales.get(saleId);
    if (!state) return { outcome: 'unknown' };
    const { order, user, units, now, payBy } = attempt;
    const earlier = state.decided.get(order);
    if (earlier) return { outcome: 'duplicate', earlier: earlier.earlier };
    if (now < state.startAt) return { outcome: 'not_open' };
    if (now >= state.endAt) return { outcome: 'closed' };
    const held = state.held.get(user) ?? 0;
    if (held + units > state.perUserLimit) {
      state.decided.set(order, { earlier: 'limit_reached' });
      return { outcome: 'limit_reached' };
    }
    if (state.remaining < units) {
      state.decided.set(order, { earlier: 'sold_out' });
      return { outcome: 'sold_out' };
    }
    state.remaining -= units;
    state.held.set(user, held + units);
    state.decided.set(order, { earlier: 'admit', user, units });
    state.pending.set(order, payBy);
    return { outcome: 'admit' };
  }

  async release(saleId: string, order: string): Promise<void> {
    const state = this.sales.get(saleId);
    const decided = state?.decided.get(order);
    if (!state || !state.pending.has(order) || decided?.earlier !== 'admit') return;
    state.pending.delete(order);
    state.decided.delete(order);
    // Capped at the stock: holdings that listed a pending order outside `taken` must not mint units.
    state.remaining = Math.min(state.stock, state.remaining + decided.units);
    const left = (state.held.get(decided.user) ?? 0) - decided.units;
    if (left > 0) state.held.set(decided.user, left);
    else state.held.delete(decided.user);
  }

  async settle(saleId: string, order: string): Promise<void> {
    this.sales.get(saleId)?.pending.delete(order);
  }

  async due(saleId: string, now: number, limit: number): Promise<string[]> {
    checkDueLimit(limit);
    const state = this.sales.get(saleId);
    if (!state || limit === 0) return [];
    const due: Array<[order: string, payBy: number]> = [];
    for (const entry of state.pending) if (entry[1] <= now) due.push(entry);
    // Soonest first; ties by order id, as a Redis sorted set orders them.
    due.sort(([a, x], [b, y]) => x - y || (a < b ? -1 : a > b ? 1 : 0));
    return due.slice(0, limit).map(([order]) => order);
  }

  async remaining(saleId: string): Promise<number | undefined> {
    return this.sales.get(saleId)?.remaining;
  }

  async drop(saleId: string): Promise<void> {
    this.sales.delete(saleId);
  }

  private sweep(now: number): void {
    if (now < this.nextSweepAt) return;
    this.nextSweepAt = now + SWEEP_EVERY_MS;
    for (const [id, state] of this.sales) if (state.dropAt <= now) this.sales.delete(id);
  }
}
