// The rules every SaleStore adapter applies the same way (memory, LMDB, CQL): what a sale and a new
// order must look like, which moves transition() accepts, and how units and counts follow.
import type { Order, OrderState, Sale, SaleCounts } from '../engine/sales/ports.ts';

const positive = (value: number): boolean => Number.isSafeInteger(value) && value > 0;

/** A sale the store can keep its counts for: positive integer stock, price, limit and pay window; a window that ends after it starts. */
export function checkSale(sale: Sale): void {
  const bad = (what: string) => new RangeError(`sale ${sale.id}: ${what}`);
  if (typeof sale.id !== 'string' || sale.id === '') throw bad('no id');
  for (const field of ['price', 'stock', 'perUserLimit', 'payWindowMs'] as const) {
    if (!positive(sale[field])) throw bad(`${field} must be a positive safe integer, not ${sale[field]}`);
  }
  for (const field of ['startAt', 'endAt', 'createdAt'] as const) {
    if (!Number.isSafeInteger(sale[field])) throw bad(`${field} must be a safe integer`);
  }
  if (sale.endAt <= sale.startAt) throw bad('endAt must come after startAt');
}

/** What reserve() accepts before looking anything up: a reserved order of a positive integer quantity. */
export function checkNewOrder(order: Order): void {
  const bad = (what: string) => new RangeError(`order ${order.id}: ${what}`);
  if (typeof order.id !== 'string' || order.id === '') throw bad('no id');
  if (order.state !== 'reserved' || order.settledAt !== undefined) throw bad(`a new order is reserved and unsettled, not ${order.state}`);
  if (!positive(order.quantity)) throw bad(`quantity must be a positive safe integer, not ${order.quantity}`);
  if (!Number.isSafeInteger(order.createdAt) || !Number.isSafeInteger(order.payBy)) throw bad('createdAt and payBy must be safe integers');
}

/** The order must be priced by its sale: its currency, quantity x price. */
export function checkOrderFitsSale(order: Order, sale: Sale): void {
  if (order.currency !== sale.currency) throw new RangeError(`order ${order.id}: currency ${order.currency}, the sale sells in ${sale.currency}`);
  if (order.amount !== order.quantity * sale.price) throw new RangeError(`order ${order.id}: amount ${order.amount} is not ${order.quantity} x ${sale.price}`);
}

const STATES: readonly OrderState[] = ['reserved', 'paying', 'paid', 'expired'];
/** States whose units are held by the order (counted as reserved, and as the buyer's). */
export const isOpen = (state: OrderState): boolean => state === 'reserved' || state === 'paying';

/**
 * transition() moves only open orders (reserved, paying), to any other state: paid and expired are
 * final, since leaving them would take stock back without the checks reserve() makes.
 */
export function checkTransition(from: readonly OrderState[], to: OrderState, at: number): void {
  if (!STATES.includes(to)) throw new RangeError(`no order state ${String(to)}`);
  if (from.length === 0) throw new RangeError('transition from no state');
  for (const state of from) {
    if (!isOpen(state) || state === to) throw new RangeError(`an order does not move from ${state} to ${to}`);
  }
  if (!Number.isSafeInteger(at)) throw new RangeError(`transition time must be a safe integer, not ${at}`);
}

/** The order after moving to `to` at `at`: settled when it becomes paid or expired. */
export function moved(order: Order, to: OrderState, at: number): Order {
  return { ...order, state: to, ...(to === 'paid' || to === 'expired' ? { settledAt: at } : {}) };
}

/** Units that leave reserved when an open order moves to `to`, and where they go. */
export function unitsMoved(order: Order, to: OrderState): { sold: number; reserved: number; held: number } {
  const q = order.quantity;
  if (to === 'paid') return { sold: q, reserved: -q, held: 0 };
  if (to === 'expired') return { sold: 0, reserved: -q, held: -q };
  return { sold: 0, reserved: 0, held: 0 };
}

export function saleCounts(stock: number, sold: number, reserved: number): SaleCounts {
  return { sold, reserved, remaining: stock - sold - reserved };
}
