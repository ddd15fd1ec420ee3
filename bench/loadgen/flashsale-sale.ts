// What a flash-sale storm needs around it (as test/sales.test.ts sets one up): the merchant's
// conversation (a group the merchant creates), the sale created in it through the admin API
// (POST /admin/sales), the gateways' attempt counters (/metrics), the sale's orders read back
// (GET /admin/sales/<id>/orders, paged by `next`), and the check that the storm sold exactly the
// stock, nobody twice, to exactly the buyers who were told `reserved`.
import type { OrderInfo, SaleInfo } from '../../protocol/frames.ts';
import type { SaleStormResult } from './flashsale-run.ts';
import { LanternConnection, mintToken } from './lantern-client.ts';
import { closeSockets } from './socket.ts';

const MAX_PROBLEMS = 10;
/** Orders per admin page (the server's saleOrdersPageMax). */
export const ORDERS_PAGE = 200;

/** The HTTP URL of `path` on the gateway behind a WebSocket URL. */
export function httpUrl(wsUrl: string, path: string): URL {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  const [pathname, query] = path.split('?');
  url.pathname = pathname!;
  url.search = query ?? '';
  return url;
}

/** An admin API call; a status other than 200 throws with the server's answer. */
export async function adminCall<T>(wsUrl: string, adminToken: string, path: string, body?: object): Promise<T> {
  const url = httpUrl(wsUrl, path);
  const res = await fetch(url, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${body === undefined ? 'GET' : 'POST'} ${url.pathname}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

export interface Shop {
  merchant: string;
  conv: string;
  /** The merchant's connection (sale.info is for the merchant and the conversation's members). */
  conn: LanternConnection;
  close(): Promise<void>;
}

/** The merchant connects and creates the group its sale cards go to (one follower, offline). */
export async function openShop(wsUrl: string, auth: { secret: string; audience: string }, merchant: string, follower: string, timeoutMs: number): Promise<Shop> {
  const conn = await LanternConnection.open(wsUrl, await mintToken(auth.secret, auth.audience, merchant), merchant, 'bench-merchant', timeoutMs);
  try {
    const { conv } = await conn.request('group.create', { title: 'bench flash sale', members: [follower] });
    return {
      merchant, conv, conn,
      close: async () => { conn.markClosing(); await closeSockets([conn.ws]); },
    };
  } catch (err) {
    conn.markClosing();
    await closeSockets([conn.ws]);
    throw err;
  }
}

export interface SaleTerms { stock: number; perUserLimit: number; price: number; startAt: number; endAt: number; key: string; item?: string }

export function createSale(wsUrl: string, adminToken: string, shop: Pick<Shop, 'merchant' | 'conv'>, terms: SaleTerms): Promise<SaleInfo & { applied: boolean }> {
  const { item = 'Bench phone, 128 GB', ...rest } = terms;
  return adminCall(wsUrl, adminToken, '/admin/sales', { merchant: shop.merchant, conv: shop.conv, item, ...rest });
}

/** Every order of the sale, oldest first, through the admin API's pages. */
export async function readSaleOrders(wsUrl: string, adminToken: string, sale: string): Promise<OrderInfo[]> {
  const orders: OrderInfo[] = [];
  for (let after: string | undefined; ;) {
    const query = new URLSearchParams({ limit: String(ORDERS_PAGE), ...(after ? { after } : {}) });
    const page = await adminCall<{ orders: OrderInfo[]; next?: string }>(wsUrl, adminToken, `/admin/sales/${encodeURIComponent(sale)}/orders?${query}`);
    orders.push(...page.orders);
    if (!page.next) return orders;
    after = page.next;
  }
}

/** lantern_sale_attempts_total of one gateway, or of several summed. */
export interface SaleAttemptCounters { local: number; forwarded: number; shed: number }

export async function saleAttemptCounters(wsUrls: readonly string[]): Promise<SaleAttemptCounters> {
  const sum: SaleAttemptCounters = { local: 0, forwarded: 0, shed: 0 };
  for (const wsUrl of wsUrls) {
    const url = httpUrl(wsUrl, '/metrics');
    const res = await fetch(url);
    if (res.status !== 200) throw new Error(`GET ${url.href}: ${res.status}`);
    const text = await res.text();
    for (const where of ['local', 'forwarded', 'shed'] as const) {
      const m = new RegExp(`^lantern_sale_attempts_total\\{where="${where}"\\} (\\d+)`, 'm').exec(text);
      if (!m) throw new Error(`${url.href} has no lantern_sale_attempts_total{where="${where}"}`);
      sum[where] += Number(m[1]);
    }
  }
  return sum;
}

export function countersBetween(a: SaleAttemptCounters, b: SaleAttemptCounters): SaleAttemptCounters & { localShare: number | null } {
  const d = { local: b.local - a.local, forwarded: b.forwarded - a.forwarded, shed: b.shed - a.shed };
  const all = d.local + d.forwarded + d.shed;
  return { ...d, localShare: all > 0 ? Math.round((d.local / all) * 1000) / 1000 : null };
}

export interface StormVerification {
  /** Nothing below went wrong. */
  ok: boolean;
  /** Units the storm had to sell: min(stock, buyers x quantity). */
  expectedUnits: number;
  /** Orders the store holds for the sale, and their units. */
  orders: number;
  units: number;
  /** Buyers told `reserved`. */
  reservedAnswers: number;
  problemCount: number;
  /** The first few problems. */
  problems: string[];
}

/**
 * The storm sold exactly what it had to: the store holds min(stock, demand) units in reserved
 * orders, no buyer twice, its counts agree (sold + reserved + remaining == stock); the buyers told
 * `reserved` are exactly the orders' buyers, each with its order's id; everyone else heard
 * `sold_out`, and nobody was left without an answer.
 */
export function verifyStorm(info: SaleInfo, orders: readonly OrderInfo[], storm: Pick<SaleStormResult, 'buyers' | 'outcomes' | 'answers'>, quantity = 1): StormVerification {
  const problems: string[] = [];
  const expectedUnits = Math.min(info.stock, storm.buyers * quantity);
  const byUser = new Map<string, OrderInfo>();
  let units = 0;
  for (const o of orders) {
    if (byUser.has(o.user)) problems.push(`${o.user} holds two orders (${byUser.get(o.user)!.order}, ${o.order})`);
    byUser.set(o.user, o);
    units += o.quantity;
    if (o.sale !== info.sale) problems.push(`order ${o.order} is of sale ${o.sale}, not ${info.sale}`);
    if (o.state !== 'reserved') problems.push(`order ${o.order} of ${o.user} is ${o.state}, not reserved`);
    if (o.quantity !== quantity) problems.push(`order ${o.order} of ${o.user} has ${o.quantity} units, not ${quantity}`);
  }
  if (units !== expectedUnits) problems.push(`the orders hold ${units} units; the storm had to sell exactly ${expectedUnits}`);
  if (info.sold + info.reserved !== units) problems.push(`sale.info says ${info.sold} sold + ${info.reserved} reserved, the orders hold ${units}`);
  if (info.sold + info.reserved + info.remaining !== info.stock) problems.push(`sale.info: ${info.sold} + ${info.reserved} + ${info.remaining} != stock ${info.stock}`);

  const reserved = storm.answers.filter((a) => a.outcome === 'reserved');
  const told = new Set<string>();
  for (const a of reserved) {
    if (told.has(a.user)) problems.push(`${a.user} was told reserved twice`);
    told.add(a.user);
    const o = byUser.get(a.user);
    if (o === undefined) problems.push(`${a.user} was told reserved but holds no order`);
    else if (a.order !== o.order) problems.push(`${a.user} was told order ${a.order}, the store holds ${o.order}`);
  }
  for (const user of byUser.keys()) if (!told.has(user)) problems.push(`${user} holds an order but was never told reserved`);
  if (storm.outcomes.reserved !== reserved.length) problems.push(`${storm.outcomes.reserved} buyers were told reserved, ${reserved.length} answers say so`);
  const losers = storm.buyers - storm.outcomes.reserved;
  if (storm.outcomes.sold_out !== losers) {
    const others = Object.entries(storm.outcomes).filter(([k, n]) => k !== 'reserved' && k !== 'sold_out' && n > 0).map(([k, n]) => `${n} ${k}`);
    problems.push(`${storm.outcomes.sold_out} of the ${losers} buyers without an order heard sold_out${others.length > 0 ? ` (${others.join(', ')})` : ''}`);
  }
  return {
    ok: problems.length === 0, expectedUnits, orders: orders.length, units, reservedAnswers: reserved.length,
    problemCount: problems.length, problems: problems.slice(0, MAX_PROBLEMS),
  };
}
