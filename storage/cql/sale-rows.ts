// Row <-> domain conversion for the CQL flash-sale store, and the sort key of a sale's listing.
// Pure functions, no I/O.
import type { types } from 'cassandra-driver';
import type { Order, OrderState, Sale, SaleRecord } from '../../engine/sales/ports.ts';
import { saleCounts } from '../sale-rules.ts';
import { num } from './rows.ts';

type Row = types.Row;

/** The sale's static columns: the sale, and its counters (units in open and paid orders; units in paid ones). */
export interface StoredSale {
  sale: Sale;
  taken: number;
  sold: number;
}

export function toStoredSale(row: Row | undefined | null): StoredSale | undefined {
  const body = row?.['body'] as string | null | undefined;
  if (!row || !body) return undefined;
  return { sale: JSON.parse(body) as Sale, taken: num(row['taken']), sold: num(row['sold']) };
}

export function recordOf(stored: StoredSale): SaleRecord {
  const { sale, taken, sold } = stored;
  return { sale, counts: saleCounts(sale.stock, sold, taken - sold) };
}

/** What the order row keeps as JSON: everything but the state and settledAt, which transitions change. */
export function orderBody(order: Order): string {
  const { state: _state, settledAt: _settled, ...fixed } = order;
  return JSON.stringify(fixed);
}

/** An order row (kind 'o') as the order in its current state. */
export function orderOf(row: Row): Order {
  const fixed = JSON.parse(row['order_body'] as string) as Omit<Order, 'state' | 'settledAt'>;
  const settledAt = row['settled_at'];
  return { ...fixed, state: row['state'] as OrderState, ...(settledAt === null || settledAt === undefined ? {} : { settledAt: num(settledAt) }) };
}

// Listing keys sort as text in (createdAt, id) order: createdAt is shifted by 2^53, so every safe
// integer (the contract uses times before 1970 too) becomes a non-negative number of 17 digits.
const SHIFT = 2n ** 53n;

/** The order's key among the sale's 'c' rows: oldest first, ties by id. */
export function listingKey(order: Pick<Order, 'createdAt' | 'id'>): string {
  return `${(BigInt(order.createdAt) + SHIFT).toString().padStart(17, '0')}:${order.id}`;
}

export function listedId(key: string): string {
  return key.slice(18);
}

