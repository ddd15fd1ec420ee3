// SaleStore (engine/sales/ports.ts) on Cassandra / ScyllaDB through an injected cassandra-driver
// Client, for the distributed mode: several workers run it against one cluster at once. Tables:
// schema.ts (migration 0004_sales). Costs and the failure table: README.md ("Flash sales").
//
// THE RULE. A sale is one partition (`sales`): its static columns hold the sale and two counters,
// taken (units in reserved, paying and paid orders) and sold (units in paid ones); its rows hold
// the orders ('o', by id), each buyer's held units ('u', by user) and the sale's listing ('c', by
// createdAt then id). Every change of stock is ONE conditional batch on that partition, so the
// checks and the writes are one Paxos decision:
//   reserve     the order row IF NOT EXISTS (idempotency), the buyer's row IF units = U (the limit:
//               U + quantity <= perUserLimit), the counter IF taken = T (the stock: T + quantity <= stock);
//   transition  the order row IF state = <the state it leaves> (the compare-and-set), and for the
//               units that move: expired -> taken and the buyer's units go down (IF taken = T,
//               IF units = U); paid -> sold goes up (IF sold = S).
// Nothing can oversell or pass a limit, whatever any process believes: a batch computed from stale
// values fails, returns the current ones, and is tried again (sale-committer.ts, which also groups
// the operations meeting in this process into one batch).
// INDEXES (order id -> sale, a buyer's orders, payment deadlines) are plain rows written before the
// batch and checked against the order by their readers (sale-indexes.ts): a crash at any point
// leaves either no order, or an order that every index finds.
// Plain writes never share a cell with LWT writes: the `sales` table is written only by LWTs.
import cassandra from 'cassandra-driver';
import type { Client, QueryOptions, types as Types } from 'cassandra-driver';
import { StoreUnavailableError } from '../../engine/ports.ts';
import {
  SaleKeyReusedError,
  type Applied, type Order, type OrderPage, type OrderState, type ReserveResult, type Sale, type SaleRecord, type SaleStore,
} from '../../engine/sales/ports.ts';
import { checkNewOrder, checkOrderFitsSale, checkSale, checkTransition } from '../sale-rules.ts';
import { toStoreError, assertOpen, guarded } from './client.ts';
import { SaleCommitter } from './sale-committer.ts';
import { SaleIndexes } from './sale-indexes.ts';
import { listedId, listingKey, orderOf, recordOf, toStoredSale } from './sale-rows.ts';
import { SaleStatements } from './sale-statements.ts';
import { assertKeyspaceName } from './schema.ts';

const { consistencies } = cassandra.types;

/** Operations per conditional batch: an order row is ~0.4 KB, so 16 stay near Cassandra's 5 KiB batch warning. */
export const DEFAULT_ORDER_BATCH = 16;
/** Sales kept in memory (they never change), so a reservation reads nothing before its batch. */
const KNOWN_SALES = 10_000;
/** Keys per IN read. */
const READ_CHUNK = 100;

export interface CqlSaleStoreOptions {
  /** Owned by the caller (see client.ts createCqlClient); close() does not shut it down. */
  client: Client;
  keyspace: string;
  /** Rows per page for scans and listings. Default 500. */
  fetchSize?: number;
  /** Operations per conditional batch. Default DEFAULT_ORDER_BATCH. */
  orderBatchSize?: number;
  /** How old an index row without its order must be before a reader deletes it (ms). Default 15 000. */
  inFlightMs?: number;
  /** Default LOCAL_QUORUM (reads and writes), LOCAL_SERIAL (Paxos). */
  consistency?: number;
  serialConsistency?: number;
}

export class CqlSaleStore implements SaleStore {
  private closed = false;
  private readonly committer: SaleCommitter;
  private readonly indexes: SaleIndexes;
  private readonly known = new Map<string, Sale>();
  private readonly loading = new Map<string, Promise<Sale | undefined>>();
  private readonly read: QueryOptions;
  private readonly write: QueryOptions;
  private readonly paxos: QueryOptions;

  private constructor(
    private readonly client: Client,
    private readonly q: SaleStatements,
    private readonly fetchSize: number,
    batchSize: number,
    inFlightMs: number,
    consistency: number,
    serialConsistency: number,
  ) {
    this.read = { prepare: true, isIdempotent: true, consistency };
    this.write = { prepare: true, isIdempotent: true, consistency };
    // An LWT is never retried by the driver: a retry of our own applied write would report "not applied".
    this.paxos = { prepare: true, isIdempotent: false, consistency, serialConsistency };
    this.indexes = new SaleIndexes({
      client, q, read: this.read, write: this.write, fetchSize, inFlightMs,
      readOrders: (sale, ids) => this.readOrders(sale, ids),
    });
    this.committer = new SaleCommitter({
      client, q, paxos: this.paxos, read: this.read, batchSize,
      prepare: (orders) => this.indexes.prepare(orders),
      // Well before a reader may take the rows for a dead reservation's.
      refreshMs: inFlightMs / 3,
    });
  }

  static async open(options: CqlSaleStoreOptions): Promise<CqlSaleStore> {
    assertKeyspaceName(options.keyspace);
    const batchSize = options.orderBatchSize ?? DEFAULT_ORDER_BATCH;
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new Error(`orderBatchSize must be a positive integer, got ${batchSize}`);
    const fetchSize = options.fetchSize ?? 500;
    if (!Number.isSafeInteger(fetchSize) || fetchSize < 1) throw new Error(`fetchSize must be a positive integer, got ${fetchSize}`);
    const inFlightMs = options.inFlightMs ?? 15_000;
    if (!Number.isSafeInteger(inFlightMs) || inFlightMs < 1) throw new Error(`inFlightMs must be a positive integer, got ${inFlightMs}`);
    const q = new SaleStatements(options.keyspace);
    const consistency = options.consistency ?? consistencies.localQuorum;
    try {
      // Fails when 0004_sales has not been applied.
      await options.client.execute(q.saleStatic, ['?'], { prepare: true, consistency });
    } catch (error) {
      throw toStoreError(error, `open keyspace ${options.keyspace} (has \`lantern migrate\` run?)`);
    }
    return new CqlSaleStore(options.client, q, fetchSize, batchSize, inFlightMs, consistency, options.serialConsistency ?? consistencies.localSerial);
  }

  async createSale(sale: Sale): Promise<Applied<Sale>> {
    checkSale(sale);
    return this.guard('createSale', async () => {
      const rs = await this.client.execute(this.q.saleCreate, [sale.id, JSON.stringify(sale)], this.paxos);
      if (rs.wasApplied()) return { value: structuredClone(sale), applied: true };
      const stored = toStoredSale(rs.first());
      if (!stored) throw new Error(`cql: sale ${sale.id} exists without its body`);
      if (stored.sale.fingerprint !== sale.fingerprint) throw new SaleKeyReusedError(sale.id);
      return { value: stored.sale, applied: false };
    });
  }

  async getSale(id: string): Promise<SaleRecord | undefined> {
    return this.guard('getSale', async () => {
      const stored = toStoredSale((await this.client.execute(this.q.saleStatic, [id], this.read)).first());
      return stored && recordOf(stored);
    });
  }

  async reserve(order: Order): Promise<ReserveResult | undefined> {
    checkNewOrder(order);
    return this.guard('reserve', async () => {
      const sale = await this.knownSale(order.sale);
      if (!sale) return undefined;
      checkOrderFitsSale(order, sale);
      return this.committer.reserve(sale, structuredClone(order));
    });
  }

  async getOrder(orderId: string): Promise<Order | undefined> {
    return this.guard('getOrder', async () => {
      const sale = await this.saleOf(orderId);
      return sale === undefined ? undefined : this.readOrder(sale, orderId);
    });
  }

  async transition(orderId: string, from: readonly OrderState[], to: OrderState, at: number): Promise<Applied<Order> | undefined> {
    checkTransition(from, to, at);
    return this.guard('transition', async () => {
      const saleId = await this.saleOf(orderId);
      const order = saleId === undefined ? undefined : await this.readOrder(saleId, orderId);
      if (!order) return undefined;
      if (!from.includes(order.state)) return { value: order, applied: false };
      const sale = await this.knownSale(order.sale);
      if (!sale) throw new Error(`cql: order ${orderId} belongs to sale ${order.sale}, which is gone`);
      return this.committer.move(sale, order, [...from], to, at);
    });
  }

  async dueOrders(now: number, limit: number): Promise<string[]> {
    if (limit <= 0) return [];
    return this.guard('dueOrders', () => this.indexes.due(now, limit));
  }

  // Pages continue after an order id, as in the memory store: `next` is the id of the page's last
  // order. The cursor comes from clients, so one that is not an order of the list gets an empty page.

  async userOrders(user: string, options: { after?: string; limit: number }): Promise<OrderPage> {
    const { after, limit } = options;
    return this.guard('userOrders', async () => {
      if (limit <= 0) return { orders: [] };
      let from: Order | undefined;
      if (after !== undefined) {
        const sale = await this.saleOf(after);
        from = sale === undefined ? undefined : await this.readOrder(sale, after);
        if (from?.user !== user) return { orders: [] };
      }
      return this.indexes.userOrders(user, from, limit);
    });
  }

  /** The 'c' rows are written by the same batch as their order, so each names an order that exists. */
  async saleOrders(saleId: string, options: { after?: string; limit: number }): Promise<OrderPage> {
    const { after, limit } = options;
    return this.guard('saleOrders', async () => {
      if (limit <= 0) return { orders: [] };
      const from = after === undefined ? undefined : await this.readOrder(saleId, after);
      if (after !== undefined && !from) return { orders: [] };
      // One more than the page, to know whether a next page exists.
      const rs = from === undefined
        ? await this.client.execute(this.q.listedFirst, [saleId, limit + 1], this.read)
        : await this.client.execute(this.q.listedAfter, [saleId, listingKey(from), limit + 1], this.read);
      const ids = rs.rows.map((row) => listedId(String(row['key'])));
      const found = await this.readOrders(saleId, ids.slice(0, limit));
      const orders = ids.slice(0, limit).map((id) => {
        const order = found.get(id);
        if (!order) throw new Error(`cql: sale ${saleId} lists order ${id}, which does not exist: data lost`);
        return order;
      });
      const last = orders[orders.length - 1];
      return ids.length > limit && last ? { orders, next: last.id } : { orders };
    });
  }

  /** One row per sale, from its static columns (SELECT DISTINCT reads no order rows). */
  async *scanSales(): AsyncIterable<SaleRecord> {
    this.assertOpen('scanSales');
    const stream = this.client.stream(this.q.salesScan, [], { ...this.read, fetchSize: this.fetchSize }) as unknown as AsyncIterable<Types.Row> & { destroy(): void };
    try {
      for await (const row of stream) {
        const stored = toStoredSale(row);
        if (stored) yield recordOf(stored);
      }
    } catch (error) {
      throw toStoreError(error, 'scanSales');
    } finally {
      stream.destroy();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  // ---- reads -----------------------------------------------------------------------------------

  /** A sale, from memory after the first read (it never changes once stored). */
  private async knownSale(id: string): Promise<Sale | undefined> {
    const hit = this.known.get(id);
    if (hit) return hit;
    // The first attempts of a storm share one read (and so reach the commit queue in call order).
    let loading = this.loading.get(id);
    if (!loading) {
      loading = this.client.execute(this.q.saleStatic, [id], this.read).then((rs) => {
        const stored = toStoredSale(rs.first());
        if (!stored) return undefined;
        this.known.set(id, stored.sale);
        if (this.known.size > KNOWN_SALES) this.known.delete(this.known.keys().next().value!);
        return stored.sale;
      }).finally(() => this.loading.delete(id));
      this.loading.set(id, loading);
    }
    return loading;
  }

  private async saleOf(orderId: string): Promise<string | undefined> {
    const row = (await this.client.execute(this.q.indexSelect, [orderId], this.read)).first();
    return row ? String(row['sale']) : undefined;
  }

  private async readOrder(sale: string, id: string): Promise<Order | undefined> {
    const row = (await this.client.execute(this.q.orderSelect, [sale, id], this.read)).first();
    return row ? orderOf(row) : undefined;
  }

  private async readOrders(sale: string, ids: readonly string[]): Promise<Map<string, Order>> {
    const found = new Map<string, Order>();
    const reads: Array<Promise<void>> = [];
    for (let i = 0; i < ids.length; i += READ_CHUNK) {
      reads.push(this.client.execute(this.q.ordersSelect, [sale, ids.slice(i, i + READ_CHUNK)], this.read).then((rs) => {
        for (const row of rs.rows) found.set(String(row['key']), orderOf(row));
      }));
    }
    await Promise.all(reads);
    return found;
  }

  private assertOpen(what: string): void {
    assertOpen(this.closed, what);
  }

  private guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return guarded(this.closed, what, fn);
  }
}
