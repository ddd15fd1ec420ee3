// Reservations and transitions of flash-sale orders, the hot path of CqlSaleStore. Each commits
// by one conditional batch on the sale's partition (its rows: sale-statements.ts):
//   INSERT 'o'/<order> IF NOT EXISTS                   -- a reservation: the id is free
//   UPDATE 'o'/<order> SET state IF state = <seen>     -- a transition: the order is where we saw it
//   INSERT 'u'/<user> IF NOT EXISTS | UPDATE 'u'/<user> SET units = U' IF units = U   -- the buyer's units
//   UPDATE sale SET taken = T' IF taken = T  (and/or sold = S' IF sold = S)          -- the counters
// so the stock check (T' <= stock), the buyer's limit (U' <= perUserLimit), idempotency and the
// compare-and-set of a transition are decided together, atomically, by Paxos on one partition.
// Operations on one sale that meet in this process share one batch (group commit): a storm costs a
// few Paxos rounds per process instead of one each, all contending for the same partition. A buyer
// appears once per batch (one row with the sum of their changes), an order once.
//
// The batch is written from what this process knows (the counters, the buyers' units, orders):
// knowledge can be stale, which only makes a batch fail. A failed batch returns the current value
// of every row it conditioned on that exists (and the counters, when it conditioned on them), so
// the loser learns and tries again without a read. Refusals need more: an attempt is refused
// (sold_out, limit_reached, a transition not applied) only on knowledge obtained by a request that
// started after the attempt arrived, and, for a reservation, after checking that its order does not
// exist (a retry gets its order back, whatever happened since). Knowledge that old is refreshed by
// reads, a few attempts at a time. So every answer is one the store gave at some moment during the
// call, which makes the store linearizable for these operations, across processes.
import type { Client, QueryOptions, types } from 'cassandra-driver';
import { StoreUnavailableError } from '../../engine/ports.ts';
import {
  SaleKeyReusedError,
  type Applied, type Order, type OrderState, type ReserveResult, type Sale,
} from '../../engine/sales/ports.ts';
import { moved, unitsMoved } from '../sale-rules.ts';
import { toStoreError } from './client.ts';
import { num } from './rows.ts';
import { listingKey, orderBody, orderOf } from './sale-rows.ts';
import type { SaleStatements } from './sale-statements.ts';

/** Sales whose knowledge is kept (idle ones are evicted first). */
const SALES_TRACKED = 1_000;
/** Buyers and orders remembered per sale; older facts are dropped (they are only a cache). */
const FACTS_TRACKED = 20_000;
/** Keys per IN read. */
const READ_CHUNK = 100;
/** Failed batches in a row that taught nothing before the operations waiting give up (retryable). */
const FRUITLESS_ROUNDS = 3;

/** A value and the request it came from: `stamp` orders requests within one sale; 0 is a guess. */
interface Fact<T> {
  value: T;
  stamp: number;
}

interface Pending<T> {
  /** The sale's clock when the call arrived: a fact with a larger stamp was read during the call. */
  arrived: number;
  resolve: (result: T) => void;
  reject: (error: unknown) => void;
}

interface ReserveWaiter extends Pending<ReserveResult> {
  type: 'reserve';
  order: Order;
  /** Wall-clock ms when its index rows were last written (prepare). */
  preparedAt?: number;
}

interface MoveWaiter extends Pending<Applied<Order>> {
  type: 'move';
  /** The order as read at the start of the call. */
  seen: Order;
  from: readonly OrderState[];
  to: OrderState;
  at: number;
  /** A failed batch said the order moved without saying where: read it again. */
  reread?: boolean;
  /** Filled by plan(): the state the batch conditions on, and the order after it. */
  expect?: OrderState;
  next?: Order;
}

type Waiter = ReserveWaiter | MoveWaiter;

interface SaleState {
  sale: Sale;
  clock: number;
  taken: Fact<number> | undefined;
  sold: Fact<number> | undefined;
  /** Units per buyer; value undefined: no row. */
  users: Map<string, Fact<number | undefined>>;
  /** Orders; value undefined: no such order. */
  orders: Map<string, Fact<Order | undefined>>;
  queue: Waiter[];
  running: boolean;
}

interface Needs {
  counters: boolean;
  users: Set<string>;
  orders: Set<string>;
  /** Waiters that wait for these reads (rejected if they fail). */
  waiters: Waiter[];
}

interface Plan {
  group: Waiter[];
  needs: Needs;
  /** Net changes of the group: the counters, and each buyer it touches. */
  taken: number;
  sold: number;
  takesStock: boolean;
  sells: boolean;
  users: Map<string, number>;
}

export interface CommitterOptions {
  client: Client;
  q: SaleStatements;
  paxos: QueryOptions;
  read: QueryOptions;
  /** Operations per conditional batch. */
  batchSize: number;
  /** Writes the index rows of reservations about to commit (idempotent). */
  prepare: (orders: readonly Order[]) => Promise<void>;
  /** Index rows older than this are written again before another batch (the sweep may drop orderless rows that old). */
  refreshMs: number;
}

/** The fact came from a request that started after the waiter arrived, so it held at some moment during the call. */
const fresh = <T>(fact: Fact<T> | undefined, w: { arrived: number }): fact is Fact<T> => fact !== undefined && fact.stamp > w.arrived;

export class SaleCommitter {
  private readonly states = new Map<string, SaleState>();

  constructor(private readonly o: CommitterOptions) {}

  /** See SaleStore.reserve; the sale exists and the order fits it. */
  reserve(sale: Sale, order: Order): Promise<ReserveResult> {
    return this.enqueue(sale, (state, resolve, reject) => ({ type: 'reserve', order, arrived: state.clock, resolve, reject }));
  }

  /** See SaleStore.transition; `seen` is the order as read during this call, in one of `from`. */
  move(sale: Sale, seen: Order, from: readonly OrderState[], to: OrderState, at: number): Promise<Applied<Order>> {
    return this.enqueue(sale, (state, resolve, reject) => ({ type: 'move', seen, from, to, at, arrived: state.clock, resolve, reject }));
  }

  private enqueue<T>(sale: Sale, make: (state: SaleState, resolve: (v: T) => void, reject: (e: unknown) => void) => Waiter): Promise<T> {
    const state = this.stateOf(sale);
    return new Promise<T>((resolve, reject) => {
      state.queue.push(make(state, resolve, reject));
      if (!state.running) void this.drain(state);
    });
  }

  private stateOf(sale: Sale): SaleState {
    let state = this.states.get(sale.id);
    if (state) {
      this.states.delete(sale.id);
      this.states.set(sale.id, state);
      return state;
    }
    state = { sale, clock: 0, taken: undefined, sold: undefined, users: new Map(), orders: new Map(), queue: [], running: false };
    this.states.set(sale.id, state);
    if (this.states.size > SALES_TRACKED) {
      for (const [key, s] of this.states) if (!s.running && s.queue.length === 0) { this.states.delete(key); break; }
    }
    return state;
  }

  private async drain(s: SaleState): Promise<void> {
    s.running = true;
    let fruitless = 0;
    try {
      while (s.queue.length > 0) {
        const plan = this.plan(s);
        if (plan.group.length > 0) {
          const outcome = await this.commit(s, plan);
          if (outcome === 'learned' || outcome === 'applied') fruitless = 0;
          else if (outcome === 'fruitless' && ++fruitless >= FRUITLESS_ROUNDS) {
            this.takeFromQueue(s, plan.group);
            for (const w of plan.group) w.reject(new StoreUnavailableError(`cql: sale ${s.sale.id}: the batch keeps failing without a reason`));
            fruitless = 0;
          }
        }
        const { needs } = plan;
        if (needs.counters || needs.users.size > 0 || needs.orders.size > 0) {
          try {
            await this.refresh(s, needs);
          } catch (error) {
            this.takeFromQueue(s, needs.waiters);
            for (const w of needs.waiters) w.reject(toStoreError(error, `read sale ${s.sale.id}`));
          }
        } else if (plan.group.length === 0) {
          // Cannot happen (a waiter left waiting always needs a read); never spin.
          const stuck = s.queue.splice(0);
          for (const w of stuck) w.reject(new Error(`cql: sale ${s.sale.id}: nothing to do for a waiting operation`));
        }
      }
    } catch (error) {
      // A fault of ours (say, a row that does not parse): no caller may be left waiting for it.
      for (const w of s.queue.splice(0)) w.reject(toStoreError(error, `sale ${s.sale.id}`));
    } finally {
      s.running = false;
    }
  }

  private takeFromQueue(s: SaleState, waiters: readonly Waiter[]): void {
    const gone = new Set<Waiter>(waiters);
    s.queue = s.queue.filter((w) => !gone.has(w));
  }

  // ---- planning: answer what knowledge can answer, choose the next batch, list what to read ----

  /** Goes through the queue in arrival order; what stays in it is the plan's group (first) and the waiters for later. */
  private plan(s: SaleState): Plan {
    const plan: Plan = {
      group: [], taken: 0, sold: 0, takesStock: false, sells: false, users: new Map(),
      needs: { counters: false, users: new Set(), orders: new Set(), waiters: [] },
    };
    const inGroup = new Set<string>();
    const later: Waiter[] = [];
    const wait = (w: Waiter) => later.push(w);
    const needs = (w: Waiter) => { plan.needs.waiters.push(w); later.push(w); };
    for (const w of s.queue) {
      if (w.type === 'reserve') this.planReserve(s, w, plan, inGroup, wait, needs);
      else this.planMove(s, w, plan, inGroup, wait, needs);
    }
    s.queue = [...plan.group, ...later];
    return plan;
  }

  private planReserve(s: SaleState, w: ReserveWaiter, plan: Plan, inGroup: Set<string>, wait: (w: Waiter) => void, needs: (w: Waiter) => void): void {
    const { order } = w;
    const known = s.orders.get(order.id);
    if (known?.value) {
      if (fresh(known, w)) return this.answerExisting(w, known.value);
      plan.needs.orders.add(order.id);
      return needs(w);
    }
    if (inGroup.has(order.id)) return wait(w);
    if (!s.taken) {
      plan.needs.counters = true;
      return needs(w);
    }
    const { stock, perUserLimit } = s.sale;
    const user = s.users.get(order.user);
    const held = user?.value ?? 0;
    const refusal: ReserveResult | undefined = held + order.quantity > perUserLimit ? { outcome: 'limit_reached', held }
      : order.quantity > stock - s.taken.value ? { outcome: 'sold_out', remaining: stock - s.taken.value } : undefined;
    if (refusal) {
      // The limit is checked before the stock (as the gate does), so either answer needs both facts fresh.
      if (fresh(user, w) && fresh(s.taken, w) && fresh(known, w)) return w.resolve(refusal);
      if (!fresh(user, w)) plan.needs.users.add(order.user);
      if (!fresh(s.taken, w)) plan.needs.counters = true;
      if (!fresh(known, w)) plan.needs.orders.add(order.id);
      return needs(w);
    }
    // It fits what is committed; does it fit after the operations already in the batch?
    const heldAfter = held + (plan.users.get(order.user) ?? 0);
    if (plan.group.length >= this.o.batchSize || heldAfter + order.quantity > perUserLimit || order.quantity > stock - s.taken.value - plan.taken) return wait(w);
    plan.group.push(w);
    inGroup.add(order.id);
    plan.taken += order.quantity;
    plan.takesStock = true;
    plan.users.set(order.user, (plan.users.get(order.user) ?? 0) + order.quantity);
  }

  private planMove(s: SaleState, w: MoveWaiter, plan: Plan, inGroup: Set<string>, wait: (w: Waiter) => void, needs: (w: Waiter) => void): void {
    const id = w.seen.id;
    const known = s.orders.get(id);
    let current: Order | undefined = w.seen;
    if (fresh(known, w)) current = known.value;
    else if (w.reread) {
      plan.needs.orders.add(id);
      return needs(w);
    }
    if (!current) return w.reject(new Error(`cql: order ${id} of sale ${s.sale.id} is gone`));
    if (!w.from.includes(current.state)) return w.resolve({ value: structuredClone(current), applied: false });
    if (inGroup.has(id)) return wait(w);
    const units = unitsMoved(current, w.to);
    const taken = units.sold + units.reserved;
    if ((taken !== 0 && !s.taken) || (units.sold !== 0 && !s.sold)) {
      plan.needs.counters = true;
      return needs(w);
    }
    if (units.held !== 0) {
      const user = s.users.get(current.user);
      if (user?.value === undefined) {
        if (fresh(user, w)) return w.reject(new Error(`cql: order ${id} holds units but its buyer ${current.user} has none in sale ${s.sale.id}`));
        plan.needs.users.add(current.user);
        return needs(w);
      }
    }
    if (plan.group.length >= this.o.batchSize) return wait(w);
    w.expect = current.state;
    w.next = moved(current, w.to, w.at);
    plan.group.push(w);
    inGroup.add(id);
    plan.taken += taken;
    plan.sold += units.sold;
    plan.takesStock ||= taken !== 0;
    plan.sells ||= units.sold !== 0;
    if (units.held !== 0) plan.users.set(current.user, (plan.users.get(current.user) ?? 0) + units.held);
  }

  /** A retried reservation: the stored order, unless the id was used for another request. */
  private answerExisting(w: ReserveWaiter, stored: Order): void {
    if (stored.fingerprint !== w.order.fingerprint) return w.reject(new SaleKeyReusedError(w.order.id));
    w.resolve({ outcome: 'reserved', order: structuredClone(stored), applied: false });
  }

  // ---- the batch -------------------------------------------------------------------------------

  private async commit(s: SaleState, plan: Plan): Promise<'applied' | 'learned' | 'fruitless' | 'failed'> {
    const { group } = plan;
    const now = Date.now();
    const unprepared = group.filter((w): w is ReserveWaiter => w.type === 'reserve' && (w.preparedAt === undefined || now - w.preparedAt > this.o.refreshMs));
    if (unprepared.length > 0) {
      try {
        await this.o.prepare(unprepared.map((w) => w.order));
      } catch (error) {
        this.takeFromQueue(s, unprepared);
        for (const w of unprepared) w.reject(toStoreError(error, `reserve in sale ${s.sale.id}`));
        return 'failed';
      }
      for (const w of unprepared) w.preparedAt = now;
    }
    const stamp = ++s.clock;
    let rs: types.ResultSet;
    try {
      rs = await this.o.client.batch(this.statements(s, plan), this.o.paxos);
    } catch (error) {
      // The outcome is unknown: what the batch would have changed is a guess from now on.
      this.takeFromQueue(s, group);
      this.forget(s, plan);
      for (const w of group) w.reject(toStoreError(error, `${group[0]!.type === 'reserve' ? 'reserve' : 'transition'} in sale ${s.sale.id}`));
      return 'failed';
    }
    if (rs.wasApplied()) {
      this.applied(s, plan, stamp);
      return 'applied';
    }
    if (this.learn(s, plan, rs.rows, stamp)) return 'learned';
    // Refused, yet every value it returned was the one assumed: read everything it touched before the next try.
    const { needs } = plan;
    needs.counters = true;
    for (const user of plan.users.keys()) needs.users.add(user);
    for (const w of group) {
      needs.orders.add(w.type === 'reserve' ? w.order.id : w.seen.id);
      if (w.type === 'move') w.reread = true;
      needs.waiters.push(w);
    }
    return 'fruitless';
  }

  private statements(s: SaleState, plan: Plan): Array<{ query: string; params: unknown[] }> {
    const { q } = this.o;
    const id = s.sale.id;
    const statements: Array<{ query: string; params: unknown[] }> = [];
    for (const w of plan.group) {
      if (w.type === 'reserve') {
        statements.push({ query: q.orderInsert, params: [id, w.order.id, orderBody(w.order)] });
        statements.push({ query: q.orderListed, params: [id, listingKey(w.order)] });
      } else {
        const settledAt = w.next!.settledAt;
        statements.push(settledAt === undefined
          ? { query: q.orderMoveOpen, params: [w.to, id, w.seen.id, w.expect] }
          : { query: q.orderSettle, params: [w.to, settledAt, id, w.seen.id, w.expect] });
      }
    }
    for (const [user, delta] of plan.users) {
      const units = s.users.get(user)?.value;
      statements.push(units === undefined
        ? { query: q.userInsert, params: [id, user, delta] }
        : { query: q.userUpdate, params: [units + delta, id, user, units] });
    }
    const taken = s.taken?.value ?? 0, sold = s.sold?.value ?? 0;
    if (plan.takesStock && plan.sells) statements.push({ query: q.countersUpdate, params: [taken + plan.taken, sold + plan.sold, id, taken, sold] });
    else if (plan.takesStock) statements.push({ query: q.takenUpdate, params: [taken + plan.taken, id, taken] });
    else if (plan.sells) statements.push({ query: q.soldUpdate, params: [sold + plan.sold, id, sold] });
    return statements;
  }

  private applied(s: SaleState, plan: Plan, stamp: number): void {
    this.takeFromQueue(s, plan.group);
    if (plan.takesStock) s.taken = { value: s.taken!.value + plan.taken, stamp };
    if (plan.sells) s.sold = { value: s.sold!.value + plan.sold, stamp };
    for (const [user, delta] of plan.users) remember(s.users, user, { value: (s.users.get(user)?.value ?? 0) + delta, stamp });
    for (const w of plan.group) {
      if (w.type === 'reserve') {
        remember(s.orders, w.order.id, { value: w.order, stamp });
        w.resolve({ outcome: 'reserved', order: structuredClone(w.order), applied: true });
      } else {
        remember(s.orders, w.seen.id, { value: w.next!, stamp });
        w.resolve({ value: structuredClone(w.next!), applied: true });
      }
    }
  }

  /**
   * What a failed batch returned: every row it conditioned on that exists, and the counters it
   * conditioned on (checked on Cassandra 5.0). True if anything was new.
   */
  private learn(s: SaleState, plan: Plan, rows: readonly types.Row[], stamp: number): boolean {
    let learned = false;
    const returned = new Set<string>();
    for (const row of rows) {
      if (plan.takesStock && row['taken'] !== null && row['taken'] !== undefined) learned = set(s, 'taken', num(row['taken']), stamp) || learned;
      if (plan.sells && row['sold'] !== null && row['sold'] !== undefined) learned = set(s, 'sold', num(row['sold']), stamp) || learned;
      const key = row['key'] as string | null;
      if (row['kind'] === 'u' && key !== null) {
        returned.add(`u:${key}`);
        learned = remember(s.users, key, { value: num(row['units']), stamp }) || learned;
      } else if (row['kind'] === 'o' && key !== null) {
        returned.add(`o:${key}`);
        learned = this.learnOrder(s, plan, key, row, stamp) || learned;
      }
    }
    // Absence is inferred only where the batch inserted IF NOT EXISTS (the condition held), which
    // holds whatever rows a server returns; Cassandra returns the others anyway.
    for (const user of plan.users.keys()) {
      if (!returned.has(`u:${user}`) && s.users.get(user)?.value === undefined) remember(s.users, user, { value: undefined, stamp });
    }
    for (const w of plan.group) {
      if (w.type === 'reserve' && !returned.has(`o:${w.order.id}`)) remember(s.orders, w.order.id, { value: undefined, stamp });
    }
    return learned;
  }

  /** An order row the batch conditioned on: new if a reservation's id is taken, or an order is not where the batch expected it. */
  private learnOrder(s: SaleState, plan: Plan, id: string, row: types.Row, stamp: number): boolean {
    const w = plan.group.find((x) => (x.type === 'reserve' ? x.order.id : x.seen.id) === id);
    const moving = w?.type === 'move' ? w : undefined;
    const learned = !moving || row['state'] !== moving.expect;
    if (row['order_body'] !== null && row['order_body'] !== undefined) {
      remember(s.orders, id, { value: orderOf(row), stamp });
    } else if (moving && learned) {
      // Rows of a batch without an insert carry only the columns conditioned on: the state, not settledAt.
      s.orders.delete(id);
      moving.reread = true;
    }
    return learned;
  }

  /** After a batch whose outcome is unknown: its counters, buyers and orders are guesses again. */
  private forget(s: SaleState, plan: Plan): void {
    if (plan.takesStock && s.taken) s.taken = { ...s.taken, stamp: 0 };
    if (plan.sells && s.sold) s.sold = { ...s.sold, stamp: 0 };
    for (const user of plan.users.keys()) s.users.delete(user);
    for (const w of plan.group) s.orders.delete(w.type === 'reserve' ? w.order.id : w.seen.id);
  }

  // ---- reads that refresh knowledge -------------------------------------------------------------

  private async refresh(s: SaleState, needs: Needs): Promise<void> {
    const stamp = ++s.clock;
    const { client, q, read } = this.o;
    const id = s.sale.id;
    const reads: Array<Promise<void>> = [];
    if (needs.counters) {
      reads.push(client.execute(q.saleStatic, [id], read).then((rs) => {
        const row = rs.first();
        if (!row) throw new Error(`cql: sale ${id} is gone`);
        s.taken = { value: num(row['taken']), stamp };
        s.sold = { value: num(row['sold']), stamp };
      }));
    }
    for (const users of chunks([...needs.users])) {
      reads.push(client.execute(q.usersSelect, [id, users], read).then((rs) => {
        const found = new Map(rs.rows.map((row) => [row['key'] as string, num(row['units'])]));
        for (const user of users) remember(s.users, user, { value: found.get(user), stamp });
      }));
    }
    for (const orders of chunks([...needs.orders])) {
      reads.push(client.execute(q.ordersSelect, [id, orders], read).then((rs) => {
        const found = new Map(rs.rows.map((row) => [row['key'] as string, orderOf(row)]));
        for (const order of orders) remember(s.orders, order, { value: found.get(order), stamp });
      }));
    }
    await Promise.all(reads);
    for (const w of needs.waiters) if (w.type === 'move') w.reread = false;
  }
}

function set(s: SaleState, counter: 'taken' | 'sold', value: number, stamp: number): boolean {
  const changed = s[counter]?.value !== value;
  s[counter] = { value, stamp };
  return changed;
}

/** Records a fact, most recent last (the map is trimmed from the front); true if its value changed (no fact counts as undefined). */
function remember<T>(facts: Map<string, Fact<T>>, key: string, fact: Fact<T>): boolean {
  const before = facts.get(key);
  facts.delete(key);
  facts.set(key, fact);
  if (facts.size > FACTS_TRACKED) facts.delete(facts.keys().next().value!);
  return before?.value !== fact.value;
}

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += READ_CHUNK) out.push(items.slice(i, i + READ_CHUNK));
  return out;
}
