// The flash-sale store's index tables, all written by plain statements BEFORE the order they point
// to commits (a row that points to no order is skipped by readers), so an order committed by a
// process that died at once is still found by id, by its buyer and by the payment-deadline sweep:
//   sale_order_index  order id -> sale (getOrder, transition);
//   sale_user_orders  a buyer's orders, newest first (userOrders);
//   sale_due          orders by hour of payBy, and sale_due_hours, the hours that may hold rows (dueOrders).
// A row is live while its order exists with the same createdAt (payBy for a due row) and, for a due
// row, is still open. Readers delete the rest, at the write time they read (so a rewrite of the same
// row since then survives): rows of settled orders, rows a retry wrote with other times, and rows
// whose order does not exist once they are older than inFlightMs (the reservation failed or died;
// one still trying rewrites its rows before each batch once they are that old, sale-committer.ts).
import type { Client, QueryOptions, types } from 'cassandra-driver';
import type { Order, OrderPage } from '../../engine/sales/ports.ts';
import { isOpen } from '../sale-rules.ts';
import { num } from './rows.ts';
import type { SaleStatements } from './sale-statements.ts';
import { HOUR_MS, hourOf } from './wallet-rows.ts';

/** An empty deadline-hour marker is deleted only this long after its hour ended (clock-skew margin). */
const HOUR_MARKER_GRACE_MS = 2 * HOUR_MS;
/** A marker this process wrote is not written again for this long (a storm writes it once a minute, not per order). */
const MARKER_REUSE_MS = 60_000;
/** The due-row read cursor never passes rows whose deadline is this recent (wall clock): late inserts land there. */
const DUE_CURSOR_LAG_MS = 60_000;

export interface IndexOptions {
  client: Client;
  q: SaleStatements;
  read: QueryOptions;
  write: QueryOptions;
  fetchSize: number;
  inFlightMs: number;
  /** Orders of one sale by id, as stored (absent ids are not in the map). */
  readOrders: (sale: string, ids: readonly string[]) => Promise<Map<string, Order>>;
}

type Liveness = 'live' | 'gone' | 'later';

export class SaleIndexes {
  /** hour -> wall-clock ms until which its marker is known to stay. */
  private readonly markers = new Map<number, number>();
  /** hour -> the deadline below which every due row was seen deleted (per process). */
  private readonly dueFrom = new Map<number, number>();

  constructor(private readonly o: IndexOptions) {}

  /** The index rows of orders about to commit (idempotent: a retry writes the same rows). */
  async prepare(orders: readonly Order[]): Promise<void> {
    const { client, q, write } = this.o;
    await Promise.all(orders.flatMap((o) => [
      client.execute(q.indexInsert, [o.id, o.sale], write),
      client.execute(q.userOrderInsert, [o.user, o.createdAt, o.id, o.sale], write),
      client.execute(q.dueInsert, [hourOf(o.payBy), o.payBy, o.id, o.sale], write),
    ]));
    // Row before marker: a sweeper that sees no marker for the hour sees no row in it either.
    const now = Date.now();
    const hours = new Set(orders.map((o) => hourOf(o.payBy)));
    await Promise.all([...hours].filter((h) => (this.markers.get(h) ?? 0) <= now).map(async (hour) => {
      await client.execute(q.hourInsert, [hour], write);
      // Sweepers drop a marker only HOUR_MARKER_GRACE_MS after its hour: trust ours until well before that.
      const until = Math.min(now + MARKER_REUSE_MS, (hour + 1) * HOUR_MS + HOUR_MARKER_GRACE_MS - MARKER_REUSE_MS);
      if (until > now) this.markers.set(hour, until);
      else this.markers.delete(hour);
    }));
    for (const [hour, until] of this.markers) if (until <= now) this.markers.delete(hour);
  }

  /** Ids of open orders with payBy <= now, soonest first (then by id); see SaleStore.dueOrders. */
  async due(now: number, limit: number): Promise<string[]> {
    const { q } = this.o;
    const ids: string[] = [];
    for await (const hourRows of this.pages(q.hoursSelect, [hourOf(now)])) {
      for (const hourRow of hourRows) {
        const hour = num(hourRow['hour']);
        const from = this.dueFrom.get(hour) ?? hour * HOUR_MS;
        const readAt = Date.now() * 1000;
        let seen = 0, firstLive: number | undefined;
        for await (const rows of this.pages(q.dueSelect, [hour, from, now])) {
          seen += rows.length;
          const liveness = await this.check(rows, (row, order) => isOpen(order.state) && order.payBy === num(row['pay_by']), (row) =>
            this.o.client.execute(q.dueDelete, [row['wt'], hour, row['pay_by'], row['id']], this.o.write));
          for (const [i, row] of rows.entries()) {
            if (liveness[i] === 'gone') continue;
            firstLive ??= num(row['pay_by']);
            if (liveness[i] === 'later') continue;
            ids.push(String(row['id']));
            if (ids.length >= limit) break;
          }
          if (ids.length >= limit) break;
        }
        // Rows below the first live one were deleted; recent ones may still arrive late, so stay behind them.
        const cursor = Math.min(firstLive ?? Math.min(now, (hour + 1) * HOUR_MS - 1), Date.now() - DUE_CURSOR_LAG_MS);
        if (cursor > from) this.dueFrom.set(hour, cursor);
        if (ids.length >= limit) return ids;
        const hourOver = (hour + 1) * HOUR_MS - 1 <= now;
        if (seen === 0 && hourOver && (hour + 1) * HOUR_MS < Date.now() - HOUR_MARKER_GRACE_MS) {
          // Empty and long past: drop the marker (a marker written after this read began survives).
          await this.o.client.execute(q.hourDelete, [readAt, hour], this.o.write);
          this.dueFrom.delete(hour);
        }
      }
    }
    return ids;
  }

  /** A buyer's orders, newest first, from the one after `after` (an order of theirs). */
  async userOrders(user: string, after: Order | undefined, limit: number): Promise<OrderPage> {
    const { q } = this.o;
    const query = after ? q.userOrdersAfter : q.userOrdersFirst;
    const params = after ? [user, after.createdAt, after.id] : [user];
    const live: Order[] = [];
    for await (const rows of this.pages(query, params)) {
      const found = new Map<types.Row, Order>();
      const liveness = await this.check(rows, (row, order) => {
        const matches = order.user === user && order.createdAt === num(row['created_at']);
        if (matches) found.set(row, order);
        return matches;
      }, (row) => this.o.client.execute(q.userOrderDelete, [row['wt'], user, row['created_at'], row['id']], this.o.write));
      for (const [i, row] of rows.entries()) if (liveness[i] === 'live') live.push(found.get(row)!);
      // One more than the page, to know whether a next page exists.
      if (live.length > limit) break;
    }
    const orders = live.slice(0, limit);
    const last = orders[orders.length - 1];
    return live.length > limit && last ? { orders, next: last.id } : { orders };
  }

  /**
   * Whether each index row (columns id, sale, wt) is live, per `matches` on its order; deletes the
   * rows that are not and never will be ('gone'). 'later': no order yet, written too recently to judge.
   */
  private async check(rows: readonly types.Row[], matches: (row: types.Row, order: Order) => boolean,
    remove: (row: types.Row) => Promise<unknown>): Promise<Liveness[]> {
    const bySale = new Map<string, string[]>();
    for (const row of rows) {
      const sale = String(row['sale']);
      bySale.set(sale, [...(bySale.get(sale) ?? []), String(row['id'])]);
    }
    const orders = new Map<string, Map<string, Order>>();
    await Promise.all([...bySale].map(async ([sale, ids]) => orders.set(sale, await this.o.readOrders(sale, ids))));
    const staleBefore = (Date.now() - this.o.inFlightMs) * 1000;
    const liveness = rows.map((row): Liveness => {
      const order = orders.get(String(row['sale']))?.get(String(row['id']));
      if (order) return matches(row, order) ? 'live' : 'gone';
      return num(row['wt']) < staleBefore ? 'gone' : 'later';
    });
    await Promise.all(rows.filter((_, i) => liveness[i] === 'gone').map(remove));
    return liveness;
  }

  /** The rows of a query, a page (fetchSize rows) at a time. */
  private async *pages(query: string, params: unknown[]): AsyncGenerator<types.Row[]> {
    let pageState: string | undefined;
    do {
      const rs = await this.o.client.execute(query, params, { ...this.o.read, fetchSize: this.o.fetchSize, ...(pageState ? { pageState } : {}) });
      if (rs.rows.length > 0) yield rs.rows;
      pageState = rs.pageState ?? undefined;
    } while (pageState);
  }
}
