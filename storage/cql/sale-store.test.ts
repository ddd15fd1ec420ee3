// The SaleStore contract on the run's shared Cassandra, with its second store opened on another
// client (as a second worker would), plus what only the CQL adapter has: storms racing across two
// stores, group commit, stale knowledge in one store after another moved the sale, operations
// interrupted around their commit point, index rows that point to no order, the migration, driver
// error mapping. One fresh keyspace for the file, dropped at the end; every list read pages (fetchSize 3).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import cassandra from 'cassandra-driver';
import type { Client, types } from 'cassandra-driver';
import { StoreUnavailableError } from '../../engine/ports.ts';
import type { Order, ReserveResult, Sale, SaleStore } from '../../engine/sales/ports.ts';
import { freePort, sharedCassandra } from '../../test/support/infra.ts';
import { failure, uid } from '../contract/fixtures.ts';
import { saleStoreContract } from '../contract/sale-store.contract.ts';
import { createCqlClient } from './client.ts';
import { CqlSaleStore, type CqlSaleStoreOptions } from './sale-store.ts';
import { MIGRATIONS, migrate } from './schema.ts';

const REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}";
const endpoint = await sharedCassandra();
const client = createCqlClient(endpoint);
/** A second worker's connection to the cluster. */
const otherClient = createCqlClient(endpoint);
const keyspace = `lantern_sales_${randomBytes(4).toString('hex')}`;
await migrate(client, keyspace, { replication: REPLICATION });
t.teardown(async () => {
  await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  await Promise.all([client.shutdown(), otherClient.shutdown()]);
});

const open = (options: Partial<CqlSaleStoreOptions> = {}) => CqlSaleStore.open({ client, keyspace, fetchSize: 3, ...options });

const contractStart = Date.now();
t.test('contract', async (t) => {
  saleStoreContract(t, 'cql', async () => {
    const stores: CqlSaleStore[] = [await open()];
    return {
      store: stores[0]!,
      another: async () => {
        const store = await open({ client: otherClient });
        stores.push(store);
        return store;
      },
      cleanup: async () => { await Promise.all(stores.map((s) => s.close())); },
    };
  });
});
t.test('contract duration', async (t) => {
  t.comment(`contract suite: ${Date.now() - contractStart} ms`);
  t.pass();
});

// ---- helpers ---------------------------------------------------------------------------------

/** Deadlines in 2100: nothing here is due for a real clock unless a test says so. */
const T0 = Date.UTC(2100, 0, 1);
const MINUTE = 60_000;

function newSale(overrides: Partial<Sale> = {}): Sale {
  return {
    id: uid('sale'), merchant: uid('shop'), conv: uid('conv'), item: 'jasmine tea', price: 500, currency: 'CNY', stock: 10,
    startAt: T0, endAt: T0 + 60 * MINUTE, perUserLimit: 1, payWindowMs: 5 * MINUTE, createdAt: T0 - MINUTE, fingerprint: uid('fp'), ...overrides,
  };
}

function newOrder(sale: Sale, user: string, quantity = 1, at = T0): Order {
  return {
    id: uid('ord'), sale: sale.id, user, key: uid('key'), quantity, amount: quantity * sale.price, currency: sale.currency,
    state: 'reserved', createdAt: at, payBy: at + sale.payWindowMs, fingerprint: `${sale.id}/${quantity}`,
  };
}

async function saleWith(store: SaleStore, overrides: Partial<Sale> = {}): Promise<Sale> {
  const sale = newSale(overrides);
  await store.createSale(sale);
  return sale;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const applied = (results: ReadonlyArray<ReserveResult | undefined>) => results.filter((r) => r?.outcome === 'reserved' && r.applied).length;
const countsOf = async (store: SaleStore, sale: Sale) => (await store.getSale(sale.id))?.counts;
const injected = () => Promise.reject(new cassandra.errors.OperationTimedOutError('injected: connection lost'));

/** `base`, counting the conditional batches it runs, and failing statements (and batches, as 'BATCH <queries>') for which `fails` holds. */
function instrumented(base: Client, fails: (query: string) => boolean = () => false): { client: Client; batches: () => number } {
  let batches = 0;
  const proxy = new Proxy(base, {
    get(target, prop, receiver) {
      if (prop === 'execute') return (query: string, ...rest: unknown[]) => fails(query) ? injected() : (target.execute as (...a: unknown[]) => unknown).call(target, query, ...rest);
      if (prop === 'batch') {
        return (queries: Array<{ query: string }>, ...rest: unknown[]) => {
          if (fails(`BATCH ${queries.map((q) => q.query).join('; ')}`)) return injected();
          batches++;
          return (target.batch as (...a: unknown[]) => unknown).call(target, queries, ...rest);
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
  return { client: proxy, batches: () => batches };
}

/** A client that "dies" right after the first applied batch: every later statement fails. */
function crashingAfterBatch(): Client {
  let dead = false;
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === 'execute') return (query: string, ...rest: unknown[]) => dead ? injected() : (target.execute as (...a: unknown[]) => unknown).call(target, query, ...rest);
      if (prop === 'batch') {
        return async (...args: unknown[]) => {
          if (dead) return injected();
          const rs = await (target.batch as (...a: unknown[]) => Promise<types.ResultSet>).apply(target, args);
          if (rs.wasApplied()) dead = true;
          return rs;
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
}

// ---- storms across two stores -----------------------------------------------------------------

t.test('cql: 200 buyers racing for 20 units through two stores: exactly 20 win, in a few batches per store', async (t) => {
  const a = instrumented(client), b = instrumented(otherClient);
  const [one, two] = [await open({ client: a.client }), await open({ client: b.client })];
  const sale = await saleWith(one, { stock: 20 });
  const orders = range(200).map(() => newOrder(sale, uid('u')));
  const started = process.hrtime.bigint();
  const results = await Promise.all(orders.map((order, i) => (i % 2 ? two : one).reserve(order)));
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  t.equal(applied(results), 20, '20 reservations applied');
  t.ok(results.every((r) => r?.outcome === 'reserved' || (r?.outcome === 'sold_out' && r.remaining === 0)), 'the other 180: sold_out, 0 remaining');
  t.same(await countsOf(two, sale), { sold: 0, reserved: 20, remaining: 0 }, 'counts exact, through either store');
  const listed = (await one.saleOrders(sale.id, { limit: 100 })).orders.map((o) => o.id).sort();
  t.same(listed, results.flatMap((r) => (r?.outcome === 'reserved' ? [r.order.id] : [])).sort(), 'the sale lists exactly the winners');
  t.ok(a.batches() + b.batches() <= 24, `${a.batches()} + ${b.batches()} conditional batches for 200 attempts`);
  t.comment(`200 attempts on 20 units through two stores: ${ms.toFixed(0)} ms, ${a.batches()} + ${b.batches()} batches`);

  // One at a time: what a single buyer waits for a reservation, then a payment.
  const quiet = await saleWith(one, { stock: 20 });
  const lone = range(20).map(() => newOrder(quiet, uid('u')));
  let at = process.hrtime.bigint();
  for (const order of lone) await one.reserve(order);
  const reserveMs = Number(process.hrtime.bigint() - at) / 1e6 / lone.length;
  at = process.hrtime.bigint();
  for (const order of lone) await one.transition(order.id, ['reserved'], 'paid', T0 + 1);
  const payMs = Number(process.hrtime.bigint() - at) / 1e6 / lone.length;
  t.same(await countsOf(two, quiet), { sold: 20, reserved: 0, remaining: 0 }, 'twenty sequential reservations, each paid');
  t.comment(`sequential: reserve ${reserveMs.toFixed(1)} ms, transition ${payMs.toFixed(1)} ms (mean of ${lone.length})`);
});

t.test('cql: one buyer racing 40 attempts through two stores never holds more than the limit', async (t) => {
  const [one, two] = [await open(), await open({ client: otherClient })];
  const sale = await saleWith(one, { stock: 100, perUserLimit: 2 });
  const amy = uid('u');
  const results = await Promise.all(range(40).map((i) => (i % 2 ? two : one).reserve(newOrder(sale, amy, 1, T0 + i))));
  t.equal(applied(results), 2, '2 of 40 reserved');
  t.ok(results.every((r) => r?.outcome === 'reserved' || (r?.outcome === 'limit_reached' && r.held === 2)), 'the rest: limit_reached, holding 2');
  t.same(await countsOf(one, sale), { sold: 0, reserved: 2, remaining: 98 });
  t.equal((await two.userOrders(amy, { limit: 50 })).orders.length, 2, 'she has 2 orders');
});

t.test('cql: payers and sweepers racing on 30 orders through two stores: each order moves once, its units follow once', async (t) => {
  const [one, two] = [await open(), await open({ client: otherClient })];
  const sale = await saleWith(one, { stock: 50, perUserLimit: 2 });
  const orders = await Promise.all(range(30).map((i) => (i % 2 ? two : one).reserve(newOrder(sale, uid('u'), 1 + (i % 2)))))
    .then((rs) => rs.map((r) => (r?.outcome === 'reserved' ? r.order : undefined)));
  t.ok(orders.every(Boolean), 'all 30 reserved');
  const outcomes = await Promise.all(orders.map(async (order, i) => {
    const [payer, sweeper] = i % 2 ? [one, two] : [two, one];
    const [pay, expire] = await Promise.all([
      payer.transition(order!.id, ['reserved'], 'paid', T0 + 1),
      sweeper.transition(order!.id, ['reserved', 'paying'], 'expired', T0 + 2),
    ]);
    return { order: order!, paid: pay?.applied === true, expired: expire?.applied === true };
  }));
  t.ok(outcomes.every((o) => o.paid !== o.expired), 'exactly one of payer and sweeper moved each order');
  const soldUnits = outcomes.filter((o) => o.paid).reduce((sum, o) => sum + o.order.quantity, 0);
  t.same(await countsOf(two, sale), { sold: soldUnits, reserved: 0, remaining: 50 - soldUnits }, 'sold = the paid units; the expired ones are back');
  const stored = await Promise.all(outcomes.map((o) => one.getOrder(o.order.id)));
  t.ok(stored.every((s, i) => s?.state === (outcomes[i]!.paid ? 'paid' : 'expired')), 'every order is where its winner put it');
});

t.test('cql: a store that saw the sale sold out, or a buyer at the limit, sees units another store released', async (t) => {
  const [one, two] = [await open(), await open({ client: otherClient })];
  const sale = await saleWith(one, { stock: 2, perUserLimit: 2 });
  const amy = uid('u');
  const held = [newOrder(sale, amy), newOrder(sale, amy)];
  for (const order of held) await one.reserve(order);
  t.same(await one.reserve(newOrder(sale, uid('u'))), { outcome: 'sold_out', remaining: 0 }, 'the first store knows it sold out');
  t.same(await one.reserve(newOrder(sale, amy)), { outcome: 'limit_reached', held: 2 }, 'and that amy is at her limit');
  await two.transition(held[0]!.id, ['reserved'], 'expired', T0 + 1);
  const again = newOrder(sale, amy);
  t.match(await one.reserve(again), { outcome: 'reserved', applied: true }, 'the unit another store released is reserved through the first one');
  await two.transition(held[1]!.id, ['reserved'], 'paid', T0 + 2);
  t.same(await one.reserve(newOrder(sale, uid('u'))), { outcome: 'sold_out', remaining: 0 }, 'sold out again');
  t.same(await countsOf(one, sale), { sold: 1, reserved: 1, remaining: 0 });
});

t.test("cql: a store whose counters are current but whose view of a buyer is old cannot pass the buyer's limit", async (t) => {
  const [one, two] = [await open(), await open({ client: otherClient })];
  const sale = await saleWith(one, { stock: 10, perUserLimit: 2 });
  const [amy, ben] = [uid('u'), uid('u')];
  await one.reserve(newOrder(sale, amy));
  t.match(await two.reserve(newOrder(sale, amy)), { outcome: 'reserved', applied: true }, 'amy reaches her limit through the other store');
  // The first store learns the new counter from a batch that involves only ben, so it still believes amy holds 1.
  t.match(await one.reserve(newOrder(sale, ben)), { outcome: 'reserved', applied: true });
  t.same(await one.reserve(newOrder(sale, amy)), { outcome: 'limit_reached', held: 2 }, "the buyer's row condition refuses her third unit");
  t.same(await countsOf(one, sale), { sold: 0, reserved: 3, remaining: 7 });
});

// ---- crashes, index rows without orders ----------------------------------------------------------

t.test('cql: a reservation whose process died right after its batch is found by id, by its buyer and by the sweep', async (t) => {
  const store = await open();
  const crashing = await open({ client: crashingAfterBatch() });
  // A deadline before 1970 that nothing else uses, so it is due now and alone in its hour.
  const sale = await saleWith(store, { payWindowMs: MINUTE });
  const at = -1e13 - Math.floor(Math.random() * 1e12);
  const order = newOrder(sale, uid('u'), 1, at);
  const result = await crashing.reserve(order);
  t.same(result, { outcome: 'reserved', order, applied: true }, 'the batch was the last thing it did, and it answered');
  t.ok(await failure(crashing.getOrder(order.id)) instanceof StoreUnavailableError, 'then it died');
  t.same(await store.getOrder(order.id), order, 'found by id');
  t.same((await store.userOrders(order.user, { limit: 5 })).orders, [order], 'found by its buyer');
  t.same(await store.dueOrders(order.payBy, 5), [order.id], 'found by the sweep');
  await store.transition(order.id, ['reserved'], 'expired', at + 1);
  t.same(await store.dueOrders(order.payBy, 5), [], 'and gone from it once expired');
});

t.test('cql: index rows of a reservation that never committed are skipped, and deleted once old', async (t) => {
  const store = await open({ inFlightMs: 300 });
  const sale = await saleWith(store, { stock: 1, payWindowMs: MINUTE });
  const at = -1e13 - Math.floor(Math.random() * 1e12);
  // The index rows are written, then every batch fails: the order never commits.
  const dying = await open({ client: instrumented(client, (query) => query.startsWith('BATCH')).client });
  const lost = newOrder(sale, uid('u'), 1, at);
  t.ok(await failure(dying.reserve(lost)) instanceof StoreUnavailableError, 'the reservation failed');
  t.equal(await store.getOrder(lost.id), undefined, 'no order');
  t.same(await store.dueOrders(lost.payBy, 5), [], 'not due');
  t.same(await store.userOrders(lost.user, { limit: 5 }), { orders: [] }, 'not listed');
  const rows = async () => (await client.execute(`SELECT id FROM ${keyspace}.sale_due WHERE hour = ?`, [Math.floor(lost.payBy / 3_600_000)], { prepare: true })).rows.length
    + (await client.execute(`SELECT id FROM ${keyspace}.sale_user_orders WHERE user = ?`, [lost.user], { prepare: true })).rows.length;
  t.equal(await rows(), 2, 'its due and listing rows wait while it may still be committing');
  await new Promise((resolve) => setTimeout(resolve, 400));
  await store.dueOrders(lost.payBy, 5);
  await store.userOrders(lost.user, { limit: 5 });
  t.equal(await rows(), 0, 'once older than inFlightMs, the readers delete them');
  const hour = Math.floor(lost.payBy / 3_600_000);
  const marker = async () => (await client.execute(`SELECT hour FROM ${keyspace}.sale_due_hours WHERE scope = 'orders' AND hour = ?`, [hour], { prepare: true })).rows.length;
  t.equal(await marker(), 1, 'its hour is still listed for the sweep');
  await store.dueOrders(lost.payBy + 3_600_000, 5);
  t.equal(await marker(), 0, 'a sweep that finds the long-past hour empty drops it');

  // A retry with other times writes rows of its own; the order is listed once, at its stored time.
  const order = newOrder(sale, uid('u'), 1, T0);
  await store.reserve(order);
  t.match(await store.reserve({ ...order, createdAt: T0 + 9, payBy: T0 + 9 + sale.payWindowMs }), { applied: false });
  t.same(await store.userOrders(order.user, { limit: 5 }), { orders: [order] }, 'listed once');
});

t.test('cql: unknown outcomes and outages are StoreUnavailableError; the retry settles them', async (t) => {
  const store = await open();
  const sale = await saleWith(store, { stock: 3 });
  const order = newOrder(sale, uid('u'));
  // The batch reaches Cassandra, but the answer is lost.
  let lose = true;
  const losing = new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === 'batch') {
        return async (...args: unknown[]) => {
          const rs = await (target.batch as (...a: unknown[]) => Promise<types.ResultSet>).apply(target, args);
          if (lose) { lose = false; throw new cassandra.errors.OperationTimedOutError('injected: answer lost'); }
          return rs;
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
  const unsure = await open({ client: losing });
  const error = await failure(unsure.reserve(order));
  t.ok(error instanceof StoreUnavailableError, 'StoreUnavailableError');
  t.match(String((error as Error).message), /may or may not have been applied/, 'saying the write may have been applied');
  t.same(await unsure.reserve(order), { outcome: 'reserved', order, applied: false }, 'the retry through the same store finds it applied');
  t.same(await countsOf(store, sale), { sold: 0, reserved: 1, remaining: 2 }, 'taken once');

  const down = await open({ client: instrumented(client, () => true).client }).catch((e: unknown) => e);
  t.ok(down instanceof StoreUnavailableError, 'open with every statement timing out');
  let failReads = false;
  const reads = await open({ client: instrumented(client, (query) => failReads && query.startsWith('SELECT')).client });
  failReads = true;
  t.ok(await failure(reads.getSale(sale.id)) instanceof StoreUnavailableError, 'a timed-out read');
  t.ok(await failure(reads.reserve(newOrder(sale, uid('u')))) instanceof StoreUnavailableError, 'a reservation whose sale read timed out');
  const unreachable = createCqlClient({ contactPoints: [`127.0.0.1:${await freePort()}`], localDataCenter: 'datacenter1', connectTimeoutMs: 500 });
  t.ok(await failure(CqlSaleStore.open({ client: unreachable, keyspace })) instanceof StoreUnavailableError, 'open against a closed port');
  await unreachable.shutdown();
  await store.close();
  t.ok(await failure(store.getSale(sale.id)) instanceof StoreUnavailableError, 'a closed store');
});

// ---- the migration ---------------------------------------------------------------------------

t.test('cql: 0004_sales applies on a fresh keyspace, once; the store opens only after it', async (t) => {
  const fresh = `lantern_sales_m_${randomBytes(4).toString('hex')}`;
  t.teardown(() => client.execute(`DROP KEYSPACE IF EXISTS ${fresh}`));
  t.ok(await failure(CqlSaleStore.open({ client, keyspace: fresh })) instanceof StoreUnavailableError, 'no keyspace yet: StoreUnavailableError');
  const sales = MIGRATIONS.filter((m) => m.id === '0004_sales');
  t.same((await migrate(client, fresh, { replication: REPLICATION, migrations: sales })).applied, ['0004_sales'], 'applied');
  t.same((await migrate(client, fresh, { replication: REPLICATION, migrations: sales })).alreadyApplied, ['0004_sales'], 'once');
  t.equal(MIGRATIONS[MIGRATIONS.length - 1]!.id, '0004_sales', 'appended after the wallet migrations');
  const store = await CqlSaleStore.open({ client, keyspace: fresh });
  const sale = await saleWith(store);
  t.match(await store.reserve(newOrder(sale, uid('u'))), { outcome: 'reserved', applied: true }, 'and works');
});
