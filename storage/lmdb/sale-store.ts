// SaleStore on LMDB (lmdb-js), the embedded mode's: msgpack values, ordered-binary array keys,
// sub-databases named `sales.*`. Give it its own directory: the chat store (9 sub-databases) and
// the wallet (7) already fill the 16 an environment opened by either allows.
//
// Key layout (sub-database: key -> value):
//   sales.sales:   sale id                          -> { sale, sold, reserved } (the counts live in
//                                                      the sale's row, written with each order)
//   sales.orders:  order id                         -> Order (the idempotency record too)
//   sales.held:    [sale, user]                     -> units the buyer holds (reserved, paying, paid)
//   sales.byUser:  [user, createdAt, order]         -> true (read backwards: newest first)
//   sales.bySale:  [sale, createdAt, order]         -> true (oldest first)
//   sales.due:     [payBy, order]                   -> true (reserved and paying orders only)
//
// Every write is one lmdb-js child transaction: callbacks queued in the same event turn run one
// after another inside one LMDB write txn, so each check-then-write sees the writes of the calls
// before it (a storm of reservations serializes: no oversell), and a callback that throws rolls
// back alone. The order, its indexes and the sale's counts change in the same transaction.
// Promises resolve after the batch is flushed to disk (durable).
import { mkdir } from 'node:fs/promises';
import { open, type Database, type Key, type RootDatabase } from 'lmdb';
import { StoreUnavailableError } from '../../engine/ports.ts';
import {
  SaleKeyReusedError,
  type Applied, type Order, type OrderPage, type OrderState, type ReserveResult, type Sale, type SaleRecord, type SaleStore,
} from '../../engine/sales/ports.ts';
import {
  checkNewOrder, checkOrderFitsSale, checkSale, checkTransition, isOpen, moved, saleCounts, unitsMoved,
} from '../sale-rules.ts';

/** Sorts after every string and number element: [prefix, END] closes a prefix range. */
const END = new Uint8Array([0xff]);

export interface LmdbSaleStoreOptions {
  /** Directory of the LMDB environment; created if missing. */
  path: string;
  /** Initial map size in bytes (lmdb-js grows it as needed). */
  mapSize?: number;
}

interface SaleRow {
  sale: Sale;
  /** Units in paid orders. */
  sold: number;
  /** Units in reserved and paying orders. */
  reserved: number;
}

/** Carries an error thrown by the operation itself (a refusal, or a value that cannot be stored) out of the transaction untouched. */
class Refused {
  constructor(readonly error: unknown) {}
}

export class LmdbSaleStore implements SaleStore {
  /** lmdb-js sub-databases still queue writes after the environment closes (they then crash in a timer): refuse them here. */
  private closed = false;

  private constructor(
    private readonly root: RootDatabase,
    private readonly sales: Database<SaleRow, string>,
    private readonly orders: Database<Order, string>,
    private readonly held: Database<number, Key>,
    private readonly byUser: Database<true, Key>,
    private readonly bySale: Database<true, Key>,
    private readonly due: Database<true, Key>,
  ) {}

  static async open(options: LmdbSaleStoreOptions): Promise<LmdbSaleStore> {
    try {
      await mkdir(options.path, { recursive: true });
      const root = open({ path: options.path, maxDbs: 16, encoding: 'msgpack', ...(options.mapSize ? { mapSize: options.mapSize } : {}) });
      const db = <V, K extends Key>(name: string) => root.openDB<V, K>(`sales.${name}`, { encoding: 'msgpack' });
      return new LmdbSaleStore(root, db('sales'), db('orders'), db('held'), db('byUser'), db('bySale'), db('due'));
    } catch (error) {
      throw new StoreUnavailableError(`lmdb: cannot open ${options.path}`, { cause: error });
    }
  }

  async createSale(sale: Sale): Promise<Applied<Sale>> {
    checkSale(sale);
    return this.write('createSale', () => {
      const stored = this.sales.get(sale.id);
      if (stored) {
        if (stored.sale.fingerprint !== sale.fingerprint) throw new SaleKeyReusedError(sale.id);
        return { value: stored.sale, applied: false };
      }
      void this.sales.put(sale.id, { sale, sold: 0, reserved: 0 });
      return { value: sale, applied: true };
    });
  }

  async getSale(id: string): Promise<SaleRecord | undefined> {
    return this.read('getSale', () => {
      const row = this.sales.get(id);
      return row && recordOf(row);
    });
  }

  async reserve(order: Order): Promise<ReserveResult | undefined> {
    checkNewOrder(order);
    return this.write('reserve', (): ReserveResult | undefined => {
      const existing = this.orders.get(order.id);
      if (existing) {
        if (existing.fingerprint !== order.fingerprint) throw new SaleKeyReusedError(order.id);
        return { outcome: 'reserved', order: existing, applied: false };
      }
      const row = this.sales.get(order.sale);
      if (!row) return undefined;
      checkOrderFitsSale(order, row.sale);
      const held = this.held.get([order.sale, order.user]) ?? 0;
      if (held + order.quantity > row.sale.perUserLimit) return { outcome: 'limit_reached', held };
      const remaining = row.sale.stock - row.sold - row.reserved;
      if (order.quantity > remaining) return { outcome: 'sold_out', remaining };

      void this.orders.put(order.id, order);
      void this.sales.put(order.sale, { ...row, reserved: row.reserved + order.quantity });
      void this.held.put([order.sale, order.user], held + order.quantity);
      void this.byUser.put([order.user, order.createdAt, order.id], true);
      void this.bySale.put([order.sale, order.createdAt, order.id], true);
      void this.due.put([order.payBy, order.id], true);
      return { outcome: 'reserved', order, applied: true };
    });
  }

  async getOrder(orderId: string): Promise<Order | undefined> {
    return this.read('getOrder', () => this.orders.get(orderId));
  }

  async transition(orderId: string, from: readonly OrderState[], to: OrderState, at: number): Promise<Applied<Order> | undefined> {
    checkTransition(from, to, at);
    return this.write('transition', () => {
      const order = this.orders.get(orderId);
      if (!order) return undefined;
      if (!from.includes(order.state)) return { value: order, applied: false };
      const row = this.sales.get(order.sale);
      if (!row) throw new Error(`order ${orderId} names sale ${order.sale}, which is not stored`);
      const units = unitsMoved(order, to);
      if (units.sold !== 0 || units.reserved !== 0) {
        void this.sales.put(order.sale, { ...row, sold: row.sold + units.sold, reserved: row.reserved + units.reserved });
      }
      if (units.held !== 0) {
        void this.held.put([order.sale, order.user], (this.held.get([order.sale, order.user]) ?? 0) + units.held);
      }
      const next = moved(order, to, at);
      void this.orders.put(orderId, next);
      if (!isOpen(to)) void this.due.remove([order.payBy, orderId]);
      return { value: next, applied: true };
    });
  }

  async dueOrders(now: number, limit: number): Promise<string[]> {
    if (limit <= 0) return [];
    return this.read('dueOrders', () =>
      Array.from(this.due.getKeys({ end: [now, END], limit }), (key) => (key as [number, string])[1]));
  }

  async userOrders(user: string, options: { after?: string; limit: number }): Promise<OrderPage> {
    return this.read('userOrders', () => {
      const after = this.cursor(options.after, (o) => o.user === user);
      if (after === null) return { orders: [] };
      // Reverse ranges include `start` and exclude `end`.
      const start = after ? [user, after.createdAt, after.id] : [user, END];
      return this.page(this.byUser, { start, end: [user], reverse: true }, after?.id, options.limit);
    });
  }

  async saleOrders(saleId: string, options: { after?: string; limit: number }): Promise<OrderPage> {
    return this.read('saleOrders', () => {
      const after = this.cursor(options.after, (o) => o.sale === saleId);
      if (after === null) return { orders: [] };
      const start = after ? [saleId, after.createdAt, after.id] : [saleId];
      return this.page(this.bySale, { start, end: [saleId, END] }, after?.id, options.limit);
    });
  }

  async *scanSales(): AsyncIterable<SaleRecord> {
    this.assertOpen('scanSales');
    for (const { value } of this.sales.getRange()) yield recordOf(value);
  }

  /** Waits for queued writes to be durable, then closes this handle on the environment. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.root.flushed;
      await this.root.close();
    } catch (error) {
      throw new StoreUnavailableError('lmdb: close failed', { cause: error });
    }
  }

  /**
   * The order a page continues after (one this store gave out as `next` for the same list);
   * undefined for the first page, null when `after` is not an order of the list: the cursor comes
   * from clients, and nothing follows a stranger.
   */
  private cursor(after: string | undefined, belongs: (order: Order) => boolean): Order | undefined | null {
    if (after === undefined) return undefined;
    const order = this.orders.get(after);
    return order && belongs(order) ? order : null;
  }

  /**
   * Up to `limit` orders of an index range whose keys end in the order id, skipping the `after`
   * order the range starts at; one more key is read to tell whether a next page exists.
   */
  private page(index: Database<true, Key>, range: { start: Key; end: Key; reverse?: boolean }, after: string | undefined, limit: number): OrderPage {
    if (limit <= 0) return { orders: [] };
    const ids: string[] = [];
    for (const key of index.getKeys({ ...range, limit: limit + 2 })) {
      const id = (key as [string, number, string])[2];
      if (id !== after) ids.push(id);
    }
    const orders = ids.slice(0, limit).map((id) => this.orders.get(id)!);
    return ids.length > limit ? { orders, next: orders[orders.length - 1]!.id } : { orders };
  }

  /** One write transaction; refusals pass through as thrown, failures of the store become StoreUnavailableError. */
  private async write<T>(what: string, operation: () => T): Promise<T> {
    this.assertOpen(what);
    try {
      const result = await this.orders.childTransaction(() => {
        try {
          return operation();
        } catch (error) {
          throw new Refused(error);
        }
      });
      await this.root.flushed;
      return result;
    } catch (error) {
      if (error instanceof Refused) throw error.error;
      throw new StoreUnavailableError(`lmdb: ${what} failed`, { cause: error });
    }
  }

  /** Reads are synchronous in lmdb-js (memory-mapped); failures become StoreUnavailableError. */
  private async read<T>(what: string, fn: () => T): Promise<T> {
    this.assertOpen(what);
    try {
      return fn();
    } catch (error) {
      throw new StoreUnavailableError(`lmdb: ${what} failed`, { cause: error });
    }
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new StoreUnavailableError(`lmdb: ${what} on a closed store`);
  }
}

const recordOf = (row: SaleRow): SaleRecord => ({ sale: row.sale, counts: saleCounts(row.sale.stock, row.sold, row.reserved) });
