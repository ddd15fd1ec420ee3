// In-process SaleStore: the reference the other adapters are checked against (the shared suite in
// storage/contract/sale-store.contract.ts runs on all). Every method runs to completion without an
// await, so it is atomic with respect to every other call; all checks precede the first write, so
// a refused call changes nothing. Values are cloned in and out: callers never alias stored state.
// The rules every adapter applies the same way are in storage/sale-rules.ts.
import {
  SaleKeyReusedError,
  type Applied, type Order, type OrderPage, type OrderState, type ReserveResult, type Sale, type SaleCounts,
  type SaleRecord, type SaleStore,
} from '../../engine/sales/ports.ts';
import { checkNewOrder, checkOrderFitsSale, checkSale, checkTransition, isOpen, moved, saleCounts, unitsMoved } from '../sale-rules.ts';

// ---- the store -------------------------------------------------------------------------------

interface StoredSale {
  sale: Sale;
  sold: number;
  reserved: number;
  /** Units each buyer holds in reserved, paying and paid orders. */
  held: Map<string, number>;
  /** Order ids, oldest first (createdAt, then id). */
  orders: string[];
}

const clone = <T>(value: T): T => structuredClone(value);

export class MemorySaleStore implements SaleStore {
  private readonly sales = new Map<string, StoredSale>();
  private readonly orders = new Map<string, Order>();
  /** user -> order ids, oldest first (createdAt, then id); read backwards. */
  private readonly byUser = new Map<string, string[]>();
  /** Open orders: id -> payBy. */
  private readonly due = new Map<string, number>();
  private closed = false;

  async createSale(sale: Sale): Promise<Applied<Sale>> {
    this.assertOpen();
    checkSale(sale);
    const stored = this.sales.get(sale.id);
    if (stored) {
      if (stored.sale.fingerprint !== sale.fingerprint) throw new SaleKeyReusedError(sale.id);
      return { value: clone(stored.sale), applied: false };
    }
    this.sales.set(sale.id, { sale: clone(sale), sold: 0, reserved: 0, held: new Map(), orders: [] });
    return { value: clone(sale), applied: true };
  }

  async getSale(id: string): Promise<SaleRecord | undefined> {
    this.assertOpen();
    const stored = this.sales.get(id);
    return stored && recordOf(stored);
  }

  async reserve(order: Order): Promise<ReserveResult | undefined> {
    this.assertOpen();
    checkNewOrder(order);
    const existing = this.orders.get(order.id);
    if (existing) {
      if (existing.fingerprint !== order.fingerprint) throw new SaleKeyReusedError(order.id);
      return { outcome: 'reserved', order: clone(existing), applied: false };
    }
    const stored = this.sales.get(order.sale);
    if (!stored) return undefined;
    checkOrderFitsSale(order, stored.sale);
    const held = stored.held.get(order.user) ?? 0;
    if (held + order.quantity > stored.sale.perUserLimit) return { outcome: 'limit_reached', held };
    const remaining = stored.sale.stock - stored.sold - stored.reserved;
    if (order.quantity > remaining) return { outcome: 'sold_out', remaining };

    const copy = clone(order);
    this.orders.set(order.id, copy);
    stored.reserved += order.quantity;
    stored.held.set(order.user, held + order.quantity);
    insertSorted(stored.orders, copy, this.orders);
    let mine = this.byUser.get(order.user);
    if (!mine) this.byUser.set(order.user, (mine = []));
    insertSorted(mine, copy, this.orders);
    this.due.set(order.id, order.payBy);
    return { outcome: 'reserved', order: clone(order), applied: true };
  }

  async getOrder(orderId: string): Promise<Order | undefined> {
    this.assertOpen();
    return clone(this.orders.get(orderId));
  }

  async transition(orderId: string, from: readonly OrderState[], to: OrderState, at: number): Promise<Applied<Order> | undefined> {
    this.assertOpen();
    checkTransition(from, to, at);
    const order = this.orders.get(orderId);
    if (!order) return undefined;
    if (!from.includes(order.state)) return { value: clone(order), applied: false };
    const stored = this.sales.get(order.sale)!;
    const units = unitsMoved(order, to);
    stored.sold += units.sold;
    stored.reserved += units.reserved;
    stored.held.set(order.user, (stored.held.get(order.user) ?? 0) + units.held);
    const next = moved(order, to, at);
    this.orders.set(orderId, next);
    if (!isOpen(to)) this.due.delete(orderId);
    return { value: clone(next), applied: true };
  }

  async dueOrders(now: number, limit: number): Promise<string[]> {
    this.assertOpen();
    if (limit <= 0) return [];
    return [...this.due]
      .filter(([, payBy]) => payBy <= now)
      .sort(([a, atA], [b, atB]) => atA - atB || compareIds(a, b))
      .slice(0, limit)
      .map(([id]) => id);
  }

  async userOrders(user: string, options: { after?: string; limit: number }): Promise<OrderPage> {
    this.assertOpen();
    return this.page([...(this.byUser.get(user) ?? [])].reverse(), options);
  }

  async saleOrders(saleId: string, options: { after?: string; limit: number }): Promise<OrderPage> {
    this.assertOpen();
    return this.page(this.sales.get(saleId)?.orders ?? [], options);
  }

  // Copies the current state first: writes made while a caller iterates do not disturb it.
  async *scanSales(): AsyncIterable<SaleRecord> {
    this.assertOpen();
    for (const record of [...this.sales.values()].map(recordOf)) yield record;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /**
   * `limit` orders of `ids` after the one named `after` (an id this store gave out as `next`; the
   * cursor comes from clients, so one not in the list gets an empty page, not an error).
   */
  private page(ids: readonly string[], options: { after?: string; limit: number }): OrderPage {
    let start = 0;
    if (options.after !== undefined) {
      const at = ids.indexOf(options.after);
      if (at < 0) return { orders: [] };
      start = at + 1;
    }
    const slice = ids.slice(start, start + Math.max(0, options.limit));
    const orders = slice.map((id) => clone(this.orders.get(id)!));
    const last = slice[slice.length - 1];
    return start + slice.length < ids.length && last !== undefined ? { orders, next: last } : { orders };
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('MemorySaleStore is closed');
  }
}

function recordOf(stored: StoredSale): SaleRecord {
  return { sale: clone(stored.sale), counts: saleCounts(stored.sale.stock, stored.sold, stored.reserved) };
}

const compareIds = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Keeps `ids` ordered by (createdAt, id); orders mostly arrive in time order, so this usually appends. */
function insertSorted(ids: string[], order: Order, orders: ReadonlyMap<string, Order>): void {
  const before = (id: string): boolean => {
    const other = orders.get(id)!;
    return other.createdAt < order.createdAt || (other.createdAt === order.createdAt && compareIds(other.id, order.id) < 0);
  };
  let i = ids.length;
  while (i > 0 && !before(ids[i - 1]!)) i--;
  ids.splice(i, 0, order.id);
}
