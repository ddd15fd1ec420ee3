// Flash-sale storms (issue 5) on a cluster of processes (2 gateways, 2 workers, real NATS, Redis and
// Cassandra) with a fault in the middle: a worker killed with SIGKILL, Redis restarted empty (the
// stock gate is rebuilt from the store's orders), and reservations expiring unpaid while the storm
// still runs (their units go to later buyers). Buyers behave as the SDK does: tap once, and on no
// answer, a retryable error or try_later, send the same key again (with `retry` once an attempt
// may have reached a worker unanswered). Each time: every
// buyer got an answer; exactly the buyers told `reserved` hold orders; never more units held than
// the stock; nobody twice; the sale's counts add up, and the store agrees with the answers.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { BuyResult, OrderInfo, SaleInfo } from '../../protocol/frames.ts';
import { auditWalletAndSales } from '../../engine/sales/audit.ts';
import { createCqlClient } from '../../storage/cql/client.ts';
import { CqlSaleStore } from '../../storage/cql/sale-store.ts';
import { CqlWalletStore } from '../../storage/cql/wallet-store.ts';
import { until } from '../support/processes.ts';
import { mintToken, WireClient, WireError } from '../support/wire-client.ts';
import { startFaultStage } from './traffic.ts';

const BUYERS = 1_200;
const STOCK = 100;
const ADMIN_TOKEN = randomBytes(24).toString('hex');
/** A buyer gives up waiting for an answer after this long and sends the same key again. */
const ANSWER_TIMEOUT_MS = 2_500;
const DEADLINE_MS = 40_000;

interface Buyer { user: string; client: WireClient }
interface Attempt { user: string; answers: BuyResult[]; retries: string[]; failure?: string }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function buyUntilAnswered(b: Buyer, sale: string, key: string): Promise<Attempt> {
  const record: Attempt = { user: b.user, answers: [], retries: [] };
  const deadline = Date.now() + DEADLINE_MS;
  // Set once an attempt went unanswered or failed with its outcome unknown; try_later decided nothing.
  let uncertain = false;
  for (let n = 0; ; n++) {
    const request = b.client.req('sale.buy', { sale, quantity: 1, key, ...(uncertain ? { retry: true } : {}) })
      .then((r): BuyResult | Error => { record.answers.push(r); return r; }, (err: unknown) => (err instanceof Error ? err : new Error(String(err))));
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<'no-answer'>((r) => { timer = setTimeout(() => r('no-answer'), ANSWER_TIMEOUT_MS); });
    const got = await Promise.race([request, gaveUp]);
    clearTimeout(timer);
    if (got !== 'no-answer' && !(got instanceof Error)) {
      if (got.outcome !== 'try_later') return record;
      record.retries.push('try_later');
      await sleep(got.retryAfterMs ?? 200);
    } else if (got instanceof WireError && !got.frame.retry) {
      record.failure = got.message;
      return record;
    } else if (got instanceof Error && !(got instanceof WireError)) {
      record.failure = got.message;
      return record;
    } else {
      record.retries.push(got === 'no-answer' ? 'no-answer' : got.error);
      if (got === 'no-answer' || got.error === 'timeout' || got.error === 'unavailable') uncertain = true;
      await sleep(100 + Math.floor(Math.random() * 200));
    }
    if (Date.now() > deadline) {
      record.failure = `no answer after ${n + 1} attempts (${record.retries.join(', ')})`;
      return record;
    }
  }
}

const final = (a: Attempt): BuyResult | undefined => a.answers.filter((r) => r.outcome !== 'try_later').at(-1);

t.test('flash-sale storms with faults', async (t) => {
  const stage = await startFaultStage(t, {
    partitions: 8, partitionLeaseMs: 1500, engineTimeoutMs: 8_000,
    env: { LANTERN_ADMIN_TOKEN: ADMIN_TOKEN, LANTERN_WALLET_SWEEP_MS: '300', LANTERN_SALE_STATE_THROTTLE_MS: '100', LANTERN_RATE_PER_SEC: '1000', LANTERN_RATE_BURST: '1000' },
  });
  const { cluster, redis, secret } = stage;
  const cql = createCqlClient({ contactPoints: stage.cassandra.contactPoints, localDataCenter: stage.cassandra.localDataCenter });
  await cql.connect();
  const walletStore = await CqlWalletStore.open({ client: cql, keyspace: stage.keyspace });
  const saleStore = await CqlSaleStore.open({ client: cql, keyspace: stage.keyspace });
  t.teardown(async () => { await saleStore.close(); await walletStore.close(); await cql.shutdown(); });
  /** `npx lantern audit`'s checks, on the cluster's keyspace. */
  const audit = async (t: Test): Promise<void> => {
    const report = await auditWalletAndSales(walletStore, saleStore);
    t.same([...report.wallet.problems, ...report.sales.problems].slice(0, 20), [], 'the ledger and sale audit finds no problem');
    t.ok(report.wallet.ok && report.sales.ok, 'the audit passes');
  };
  const workers = [cluster.worker('worker-0'), cluster.worker('worker-1')];
  const gateways = [cluster.gateway('gateway-A'), cluster.gateway('gateway-B')];
  await Promise.all([...workers, ...gateways].map((p) => p.start()));
  const urls = gateways.map((g) => g.url);
  const base = urls[0]!.replace(/^ws:/, 'http:').replace(/\/ws$/, '');
  const admin = async (path: string, body?: unknown): Promise<Record<string, unknown>> => {
    const res = await fetch(`${base}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = await res.json() as Record<string, unknown>;
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };

  const merchant = await WireClient.connect(urls[0]!, await mintToken(secret, 'acme'));
  const buyers: Buyer[] = [];
  for (let i = 0; i < BUYERS; i += 100) {
    buyers.push(...await Promise.all(Array.from({ length: Math.min(100, BUYERS - i) }, async (_, j) => {
      const user = `b${i + j}`;
      return { user, client: await WireClient.connect(urls[(i + j) % urls.length]!, await mintToken(secret, user)) };
    })));
  }
  t.teardown(async () => { await Promise.all([merchant, ...buyers.map((b) => b.client)].map((c) => c.close())); });
  const { conv } = await merchant.req('group.create', { title: 'acme store', members: ['b0'] });

  let sales = 0;
  async function newSale(payWindowMs = 600_000, stock = STOCK): Promise<string> {
    const startAt = Date.now() + 800;
    const created = await admin('/admin/sales', {
      merchant: 'acme', conv, item: `phone #${++sales}`, price: 1_000, stock, perUserLimit: 1,
      startAt, endAt: startAt + 3600_000, payWindowMs, key: `sale-${sales}`,
    });
    await sleep(Math.max(0, startAt - Date.now()));
    return created['sale'] as string;
  }

  async function orders(sale: string): Promise<OrderInfo[]> {
    const all: OrderInfo[] = [];
    for (let after: string | undefined; ;) {
      const page = await admin(`/admin/sales/${sale}/orders?limit=200${after ? `&after=${after}` : ''}`) as { orders: OrderInfo[]; next?: string };
      all.push(...page.orders);
      if (!page.next) return all;
      after = page.next;
    }
  }

  /** What a buyer and the merchant can check after a storm. */
  async function check(t: Test, sale: string, attempts: readonly Attempt[], stock = STOCK): Promise<OrderInfo[]> {
    t.same(attempts.filter((a) => a.failure).map((a) => `${a.user}: ${a.failure}`), [], 'every buyer got an answer');
    const told = new Map<string, BuyResult>();
    for (const a of attempts) {
      const r = final(a);
      if (r?.outcome === 'reserved') told.set(a.user, r);
    }
    const twoOrders = attempts.filter((a) => new Set(a.answers.flatMap((r) => (r.order ? [r.order.order] : []))).size > 1);
    t.same(twoOrders.map((a) => a.user), [], 'no buyer was told two different orders');
    const stored = await orders(sale);
    const byUser = new Map<string, OrderInfo[]>();
    for (const o of stored) byUser.set(o.user, [...(byUser.get(o.user) ?? []), o]);
    t.same([...byUser].filter(([, os]) => os.length > 1).map(([u]) => u), [], 'nobody holds two orders');
    const held = stored.filter((o) => o.state !== 'expired');
    t.ok(held.reduce((s, o) => s + o.quantity, 0) <= stock, `never more units held (${held.length}) than the stock (${stock})`);
    const toldUsers = [...told.keys()].sort();
    const toldOrders = [...told.values()].map((r) => r.order!.order).sort();
    const storedIds = new Set(stored.map((o) => o.order));
    t.same(toldOrders.filter((id) => !storedIds.has(id)), [], 'every order a buyer was told of is in the store');
    const quiet = stored.filter((o) => !told.has(o.user)).map((o) => o.user);
    t.same(quiet, [], 'every stored order was answered to its buyer as reserved');
    const info = await merchant.req('sale.info', { sale }) as SaleInfo;
    t.equal(info.sold + info.reserved + info.remaining, stock, 'stock == sold + reserved + remaining');
    t.equal(info.reserved + info.sold, held.length, 'the counts agree with the orders');
    t.comment(`${toldUsers.length} reserved; ${attempts.filter((a) => a.retries.length > 0).length} buyers retried`);
    return stored;
  }

  t.test('kill -9 a worker mid-storm: retried attempts get answers, exactly the stock is reserved', async (t) => {
    // A stock a third of the buyers can get, and taps spread over 3 s as people open the card: the
    // workers are busy admitting when one of them dies.
    const stock = 400;
    const sale = await newSale(600_000, stock);
    let answered = 0;
    const storm = Promise.all(buyers.map(async (b) => {
      await sleep(Math.random() * 3_000);
      return buyUntilAnswered(b, sale, 'k1').finally(() => { answered++; });
    }));
    await until(() => answered >= 50, 'the storm to be under way', 20_000, 2);
    const unanswered = BUYERS - answered;
    t.equal(await workers[0]!.kill('SIGKILL'), null, 'worker-0 killed with SIGKILL');
    t.ok(unanswered > 0, `${unanswered} attempts unanswered when the worker died`);
    const attempts = await storm;
    const stored = await check(t, sale, attempts, stock);
    t.equal(stored.length, stock, `exactly ${stock} reserved: no unit lost with the worker`);
    await audit(t);
    await workers[0]!.start();
  });

  t.test('redis restarts empty mid-storm: the gate is rebuilt from the store, nothing oversold', async (t) => {
    // Enough stock that the sale is still selling when redis-server stops.
    const stock = 300;
    const sale = await newSale(600_000, stock);
    const first = buyers.filter((_, i) => i % 3 === 0);
    const rest = buyers.filter((_, i) => i % 3 !== 0);
    let answered = 0;
    // The first wave taps over 2 s; redis-server stops while it runs and comes back empty.
    const wave1 = Promise.all(first.map(async (b) => {
      await sleep(Math.random() * 2_000);
      return buyUntilAnswered(b, sale, 'k2').finally(() => { answered++; });
    }));
    await until(() => answered >= 10, 'the first wave to be under way', 20_000, 2);
    const unanswered = first.length - answered;
    await redis.stop();
    await redis.start();
    const flush = new Redis(redis.url);
    t.teardown(() => flush.disconnect());
    await flush.flushall();
    const flushedAt = Date.now();
    t.ok(unanswered > 0, `${unanswered} attempts of the first wave unanswered when redis-server stopped`);
    const wave2 = Promise.all(rest.map((b) => buyUntilAnswered(b, sale, 'k2')));
    const attempts = [...await wave1, ...await wave2];
    const stored = await check(t, sale, attempts, stock);
    t.equal(stored.length, stock, `exactly ${stock} reserved`);
    const after = stored.filter((o) => o.createdAt > flushedAt).length;
    t.ok(after > 0, `${after} reservations made after redis came back empty: the gate was rebuilt from the store`);
    await audit(t);
  });

  t.test('reservations expire unpaid while the storm runs: their units go to later buyers', async (t) => {
    const sale = await newSale(2_000);
    // The first wave reserves everything and only half of the winners pay; the rest expire 2 s
    // later while later waves keep tapping, and those units are sold again.
    await Promise.all(buyers.slice(0, 40).map((b) => admin('/admin/wallet/topup', { user: b.user, amount: 5_000, key: `w-${b.user}` })));
    const waves: Attempt[] = [];
    const paid: string[] = [];
    for (let w = 0; w < 6; w++) {
      const wave = buyers.slice(w * 200, (w + 1) * 200);
      // Winners among the first 40 buyers (they have money) pay at once, as a user would.
      const attempts = await Promise.all(wave.map(async (b) => {
        const a = await buyUntilAnswered(b, sale, 'k3');
        const r = final(a);
        if (r?.outcome === 'reserved' && Number(b.user.slice(1)) < 40) {
          const order = await b.client.req('sale.pay', { order: r.order!.order }).catch((err: unknown) => err);
          if (!(order instanceof Error)) paid.push(b.user);
          else if (!(order instanceof WireError && order.error === 'order_expired')) throw order;
        }
        return a;
      }));
      waves.push(...attempts);
      await sleep(700);
    }
    // Quiet: every unpaid reservation has passed its deadline and been swept.
    await sleep(2_000 + 1_500);
    const stored = await check(t, sale, waves);
    const expired = stored.filter((o) => o.state === 'expired').length;
    t.ok(expired > 0, `${expired} reservations expired during the storm`);
    t.ok(stored.length > STOCK, `${stored.length} orders for ${STOCK} units: units that came back were reserved again by later buyers`);
    t.equal(stored.filter((o) => o.state === 'paid').length, paid.length, 'every paid order is paid, once');
    await audit(t);
  });
});
