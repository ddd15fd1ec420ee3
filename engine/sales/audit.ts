// The sale part of `lantern audit` (docs/decisions/0008): every sale and its orders, read from the
// SaleStore, checked against each other and against the ledger's purchase transactions.
//
// The ledger is not scanned a second time: a PurchaseLedger watches the wallet audit's scan and
// keeps, per order, only the ids of the `purchase` and `purchase_refund` txns that name it. A txn is
// fetched by id where a check needs its postings (as the wallet audit does for grabs). So memory
// grows with the number of purchase txns (ids only) and with one sale's buyers, never with orders.
import { auditWallet, type AuditOptions, type AuditReport } from '../wallet/audit.ts';
import { walletAccount, type LedgerTxn, type Posting, type WalletStore } from '../wallet/ports.ts';
import { orderRefundTxnId, orderTxnId, type Order, type OrderState, type SaleRecord, type SaleStore } from './ports.ts';

export interface SaleAuditReport {
  ok: boolean;
  /** One readable line per difference found, naming the sale, the order or the txn. */
  problems: string[];
  /** `txns`: purchase and purchase_refund txns in the ledger (in scope). */
  counts: { sales: number; orders: number; txns: number };
}

export interface SaleAuditOptions {
  /** Problem lines kept; beyond it one line says how many more there were. Default 10 000. */
  maxProblems?: number;
  /** Txns fetched by id at once. Default 32. */
  concurrency?: number;
  /** Orders read per saleOrders() page. Default 500. */
  pageSize?: number;
}

/** Ids of the txns that name one order, by kind. */
interface OrderTxns {
  payments: string[];
  refunds: string[];
}

/**
 * The purchase txns of a ledger, gathered while something else (the wallet audit) scans it:
 * pass `watch(store)` instead of `store` to that scan. Only the scope's currency is kept.
 */
export class PurchaseLedger {
  private readonly byOrder = new Map<string, OrderTxns>();
  /** Purchase txns that name no order at all (no ref). */
  private readonly unnamed: Array<Pick<LedgerTxn, 'id' | 'kind'>> = [];
  private seen = 0;
  private scanned = false;

  constructor(readonly currency?: string) {}

  /** `store`, whose scanTxns() also shows every txn it yields to this ledger. */
  watch(store: WalletStore): WalletStore {
    return new Proxy(store, {
      get: (target, prop) => {
        if (prop === 'scanTxns') return () => this.watchScan(target.scanTxns());
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /** Every txn of the ledger went past: an audit from a scan cut short would report paid orders as unpaid. */
  get complete(): boolean {
    return this.scanned;
  }

  get txns(): number {
    return this.seen;
  }

  observe(txn: LedgerTxn): void {
    if (txn.kind !== 'purchase' && txn.kind !== 'purchase_refund') return;
    if (this.currency !== undefined && txn.currency !== this.currency) return;
    this.seen++;
    if (txn.ref === undefined) {
      this.unnamed.push({ id: txn.id, kind: txn.kind });
      return;
    }
    let named = this.byOrder.get(txn.ref);
    if (!named) this.byOrder.set(txn.ref, (named = { payments: [], refunds: [] }));
    (txn.kind === 'purchase' ? named.payments : named.refunds).push(txn.id);
  }

  /** The txns naming `orderId`, once: what is never taken names orders the sales did not list. */
  take(orderId: string): OrderTxns {
    const named = this.byOrder.get(orderId) ?? { payments: [], refunds: [] };
    this.byOrder.delete(orderId);
    return named;
  }

  /** Txns naming orders nobody took, and txns naming no order. */
  leftovers(): { named: ReadonlyMap<string, OrderTxns>; unnamed: ReadonlyArray<Pick<LedgerTxn, 'id' | 'kind'>> } {
    return { named: this.byOrder, unnamed: this.unnamed };
  }

  private async *watchScan(txns: AsyncIterable<LedgerTxn>): AsyncIterable<LedgerTxn> {
    this.byOrder.clear();
    this.unnamed.length = 0;
    this.seen = 0;
    this.scanned = false;
    for await (const txn of txns) {
      this.observe(txn);
      yield txn;
    }
    this.scanned = true;
  }
}

/** The wallet audit and the sale audit over one scan of the ledger. `currency` scopes both. */
export async function auditWalletAndSales(
  wallet: WalletStore, sales: SaleStore, options: AuditOptions & SaleAuditOptions = {},
): Promise<{ wallet: AuditReport; sales: SaleAuditReport }> {
  const ledger = new PurchaseLedger(options.currency);
  const walletReport = await auditWallet(ledger.watch(wallet), options);
  return { wallet: walletReport, sales: await auditSales(sales, wallet, ledger, options) };
}

/** Audits the sales against a ledger whose scan has gone past `ledger` (its currency is the scope). */
export async function auditSales(sales: SaleStore, wallet: WalletStore, ledger: PurchaseLedger, options: SaleAuditOptions = {}): Promise<SaleAuditReport> {
  if (!ledger.complete) throw new Error('the ledger scan did not run to its end: the sale audit would miss payments');
  return new SaleAudit(sales, wallet, ledger, options).run();
}

/** What one sale's orders add up to. */
interface SaleTally {
  /** Units in paid orders. */
  paid: number;
  /** Units in reserved and paying orders. */
  open: number;
  /** Per buyer, units in reserved, paying and paid orders. */
  held: Map<string, number>;
}

const STATES: readonly OrderState[] = ['reserved', 'paying', 'paid', 'expired'];
const holds = (state: OrderState): boolean => state === 'reserved' || state === 'paying' || state === 'paid';

class SaleAudit {
  private readonly problems: string[] = [];
  private dropped = 0;
  private readonly counts = { sales: 0, orders: 0, txns: 0 };
  private readonly maxProblems: number;
  private readonly concurrency: number;
  private readonly pageSize: number;

  constructor(
    private readonly sales: SaleStore,
    private readonly wallet: WalletStore,
    private readonly ledger: PurchaseLedger,
    options: SaleAuditOptions,
  ) {
    this.maxProblems = options.maxProblems ?? 10_000;
    this.concurrency = options.concurrency ?? 32;
    this.pageSize = options.pageSize ?? 500;
  }

  async run(): Promise<SaleAuditReport> {
    const seenSales = new Set<string>();
    for await (const record of this.sales.scanSales()) {
      if (!this.inScope(record.sale.currency)) continue;
      if (seenSales.has(record.sale.id)) {
        this.problem(`sale ${record.sale.id}: listed twice by the store`);
        continue;
      }
      seenSales.add(record.sale.id);
      this.counts.sales++;
      await this.checkSale(record);
    }
    await this.checkLeftovers();
    this.counts.txns = this.ledger.txns;
    if (this.dropped > 0) this.problems.push(`... and ${this.dropped} more problems not listed`);
    return { ok: this.problems.length === 0, problems: this.problems, counts: this.counts };
  }

  private inScope(currency: string): boolean {
    return this.ledger.currency === undefined || this.ledger.currency === currency;
  }

  private problem(line: string): void {
    if (this.problems.length < this.maxProblems) this.problems.push(line);
    else this.dropped++;
  }

  // ---- a sale ----------------------------------------------------------------------------------

  private async checkSale(record: SaleRecord): Promise<void> {
    const { sale, counts } = record;
    const what = `sale ${sale.id}`;
    const tally: SaleTally = { paid: 0, open: 0, held: new Map() };
    const listed = new Set<string>();
    let after: string | undefined;
    do {
      const page = await this.sales.saleOrders(sale.id, { limit: this.pageSize, ...(after === undefined ? {} : { after }) });
      const fresh: Order[] = [];
      for (const order of page.orders) {
        if (listed.has(order.id)) this.problem(`${what}: order ${order.id} listed twice`);
        else fresh.push(order);
        listed.add(order.id);
      }
      if (fresh.length === 0 && page.next !== undefined) {
        // A cursor that yields nothing new would page forever.
        this.problem(`${what}: the order listing repeats itself after ${after === undefined ? 'its start' : `cursor ${JSON.stringify(after)}`}; the orders after it were not checked`);
        break;
      }
      // Taken before any await: each order's txns are its own from here on.
      const checks = fresh.map((order) => ({ order, txns: this.ledger.take(order.id) }));
      for (const lines of await this.inBatches(checks, ({ order, txns }) => this.checkOrder(record, order, txns))) lines.forEach((l) => this.problem(l));
      for (const order of fresh) {
        this.counts.orders++;
        if (!Number.isSafeInteger(order.quantity) || order.quantity <= 0) continue;
        if (order.state === 'paid') tally.paid += order.quantity;
        if (order.state === 'reserved' || order.state === 'paying') tally.open += order.quantity;
        if (holds(order.state)) tally.held.set(order.user, (tally.held.get(order.user) ?? 0) + order.quantity);
      }
      after = page.next;
    } while (after !== undefined);

    for (const field of ['sold', 'reserved', 'remaining'] as const) {
      if (!Number.isSafeInteger(counts[field]) || counts[field] < 0) this.problem(`${what}: ${field} is ${counts[field]}, expected a non-negative integer`);
    }
    const sum = counts.sold + counts.reserved + counts.remaining;
    if (sum !== sale.stock) {
      this.problem(`${what}: sold ${counts.sold} + reserved ${counts.reserved} + remaining ${counts.remaining} = ${sum}, expected stock ${sale.stock}`);
    }
    if (counts.sold !== tally.paid) this.problem(`${what}: sold is ${counts.sold}, but its paid orders hold ${tally.paid} units`);
    if (counts.reserved !== tally.open) this.problem(`${what}: reserved is ${counts.reserved}, but its reserved and paying orders hold ${tally.open} units`);
    for (const [user, units] of tally.held) {
      if (units > sale.perUserLimit) this.problem(`${what}: user ${user} holds ${units} units (reserved, paying and paid), above the limit of ${sale.perUserLimit}`);
    }
  }

  // ---- an order --------------------------------------------------------------------------------

  private async checkOrder({ sale }: SaleRecord, order: Order, txns: OrderTxns): Promise<string[]> {
    const lines: string[] = [];
    const what = `sale ${sale.id} order ${order.id} (${order.state}, ${order.user})`;
    if (order.sale !== sale.id) lines.push(`${what}: the order names sale ${order.sale}`);
    if (!STATES.includes(order.state)) lines.push(`${what}: no such order state`);
    if (!Number.isSafeInteger(order.quantity) || order.quantity <= 0) lines.push(`${what}: quantity ${order.quantity}, expected a positive integer`);
    else if (order.amount !== order.quantity * sale.price) {
      lines.push(`${what}: amount ${order.amount}, expected quantity ${order.quantity} x price ${sale.price} = ${order.quantity * sale.price}`);
    }
    if (order.currency !== sale.currency) lines.push(`${what}: currency ${order.currency}, but the sale sells in ${sale.currency}`);

    // One payment and at most one refund, each under the id derived from the order: another id
    // naming the order means its money moved twice.
    const paymentId = orderTxnId(order.id);
    const refundId = orderRefundTxnId(order.id);
    for (const id of txns.payments) if (id !== paymentId) lines.push(`${what}: purchase txn ${id} also pays for it (its payment is ${paymentId})`);
    for (const id of txns.refunds) if (id !== refundId) lines.push(`${what}: purchase_refund txn ${id} also refunds it (its refund is ${refundId})`);
    const paid = txns.payments.includes(paymentId);
    const refunded = txns.refunds.includes(refundId);

    const buyer = walletAccount(order.user, order.currency);
    const merchant = walletAccount(sale.merchant, order.currency);
    const payment = { id: paymentId, kind: 'purchase', from: buyer, to: merchant } as const;
    const refund = { id: refundId, kind: 'purchase_refund', from: merchant, to: buyer } as const;
    switch (order.state) {
      case 'paid':
        if (!paid) lines.push(`${what}: no payment txn ${paymentId}`);
        else lines.push(...await this.checkMoves(what, order, payment));
        if (refunded) lines.push(`${what}: refund txn ${refundId} exists, but the order is paid`);
        break;
      case 'expired':
        // Unpaid, or paid too late and refunded: either way the buyer keeps their money.
        if (paid && !refunded) lines.push(`${what}: payment txn ${paymentId} exists, but no refund txn ${refundId} gives it back`);
        if (refunded && !paid) lines.push(`${what}: refund txn ${refundId} exists, but no payment txn ${paymentId}`);
        if (paid && refunded) lines.push(...await this.checkMoves(what, order, payment), ...await this.checkMoves(what, order, refund));
        break;
      case 'reserved':
        if (paid) lines.push(`${what}: payment txn ${paymentId} exists, but the order is still reserved`);
        if (refunded) lines.push(`${what}: refund txn ${refundId} exists, but the order is still reserved`);
        break;
      case 'paying':
        // A payment in flight may have landed already; the sweeper settles it from the ledger.
        if (paid) lines.push(...await this.checkMoves(what, order, payment));
        if (refunded) lines.push(`${what}: refund txn ${refundId} exists, but the order is still paying`);
        break;
    }
    return lines;
  }

  /** Differences between the txn `expected.id` and a move of the order's amount from `from` to `to`. */
  private async checkMoves(what: string, order: Order, expected: { id: string; kind: 'purchase' | 'purchase_refund'; from: string; to: string }): Promise<string[]> {
    const txn = await this.wallet.getTxn(expected.id);
    if (!txn) return [`${what}: txn ${expected.id} was in the ledger scan, but reading it by id finds nothing`];
    const lines: string[] = [];
    if (txn.ref !== order.id) lines.push(`${what}: txn ${txn.id} names order ${txn.ref ?? '(none)'}`);
    const want = describe(expected.kind, order.currency, [{ account: expected.from, amount: -order.amount }, { account: expected.to, amount: order.amount }]);
    const got = describe(txn.kind, txn.currency, txn.postings);
    if (got !== want) lines.push(`${what}: txn ${txn.id} is ${got}, expected ${want}`);
    return lines;
  }

  // ---- txns that name no listed order ----------------------------------------------------------

  private async checkLeftovers(): Promise<void> {
    const { named, unnamed } = this.ledger.leftovers();
    for (const { id, kind } of unnamed) this.problem(`txn ${id} (${kind}): names no order`);
    const ids = [...named.keys()];
    for (const lines of await this.inBatches(ids, async (orderId) => {
      const { payments, refunds } = named.get(orderId)!;
      const txnIds = [...payments, ...refunds].join(', ');
      const order = await this.sales.getOrder(orderId);
      if (!order) return [`txn ${txnIds}: names order ${orderId}, which the sale store does not have`];
      // The wallet audit is scoped by the txn's currency, so an order of another one is only a mismatch.
      if (!this.inScope(order.currency)) return [`txn ${txnIds}: is in ${this.ledger.currency}, but its order ${orderId} is in ${order.currency}`];
      return [`txn ${txnIds}: names order ${orderId} of sale ${order.sale}, which the store does not list among that sale's orders`];
    })) lines.forEach((l) => this.problem(l));
  }

  /** Runs `fn` over `items`, `concurrency` at a time; results in the items' order. */
  private async inBatches<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
    const results: R[] = [];
    for (let i = 0; i < items.length; i += this.concurrency) {
      results.push(...await Promise.all(items.slice(i, i + this.concurrency).map(fn)));
    }
    return results;
  }
}

/** A txn's kind, currency and postings, in one canonical order: `purchase in CNY: u:a:CNY -200, u:m:CNY +200`. */
function describe(kind: string, currency: string, postings: readonly Posting[]): string {
  const moves = [...postings]
    .sort((a, b) => a.amount - b.amount || (a.account < b.account ? -1 : a.account > b.account ? 1 : 0))
    .map(({ account, amount }) => `${account} ${amount > 0 ? '+' : ''}${amount}`);
  return `${kind} in ${currency}: ${moves.join(', ')}`;
}
