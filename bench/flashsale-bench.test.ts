// Smoke test of `npm run bench -- flashsale` at a tiny scale, embedded only: the reserve ceiling on a
// private redis-server, two storms of a few hundred buyers (held by two generator processes) on an
// embedded Lantern, and the results file with every figure. It checks that the figures exist and
// that each storm sold exactly its stock to buyers told `reserved`, never how fast it was. Then the
// storm verifier on doctored data.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { OrderInfo, SaleInfo } from '../protocol/frames.ts';
import { startRedis } from '../test/support/infra.ts';
import { flashSaleBench } from './flashsale-bench.ts';
import { FINAL_OUTCOMES } from './loadgen/flashsale-run.ts';
import { verifyStorm } from './loadgen/flashsale-sale.ts';

t.setTimeout(120_000);

const BUYERS = 300, STOCK = 20;

t.test('the flashsale scenario writes every figure, and each storm sold exactly its stock', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.close());
  const out = await mkdtemp(join(tmpdir(), 'lantern-bench-results-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));

  const { file } = await flashSaleBench({
    modes: ['embedded'], buyers: BUYERS, stock: STOCK, perUserLimit: 1, storms: 2, loadWorkers: 2, store: 'memory',
    gateways: 1, engineWorkers: 1, ceiling: { concurrency: 32, durationMs: 300 }, leadMs: 800, redisUrl: redis.url,
  }, out);
  t.match(file, /flashsale-.*\.json$/);
  const body = JSON.parse(await readFile(file, 'utf8')) as Record<string, any>;
  t.match(body, { version: String, commit: String, date: String, machine: { cpus: { count: Number } }, settings: { scenario: 'flashsale', buyers: BUYERS, stock: STOCK } });

  const ceiling = body.results['reserve-ceiling'];
  t.notOk(ceiling?.error, `the ceiling ran (${ceiling?.error ?? ''})`);
  t.match(ceiling, { decisionsPerSec: Number, p99Ms: Number, oversold: 0, underfilled: 0, miscounted: 0, unexpected: 0, buyersPerSale: BUYERS, stockPerSale: STOCK });

  const p = body.results['embedded-flashsale'];
  t.notOk(p?.error, `the embedded storms ran (${p?.error ?? ''})`);
  t.match(p, { buyers: BUYERS, stock: STOCK, generators: 2, gateways: 1, verified: true, connectMs: Number });
  t.equal(p.storms.length, 2, 'both storms are listed');
  for (const [i, s] of (p.storms as Array<Record<string, any>>).entries()) {
    t.match(s.verification, { ok: true, problems: [], orders: STOCK, units: STOCK, reservedAnswers: STOCK }, `storm ${i}: exactly ${STOCK} reserved, each told so`);
    t.same(Object.keys(s.outcomes).sort(), [...FINAL_OUTCOMES].sort(), `storm ${i}: every outcome is counted`);
    t.match(s.outcomes, { reserved: STOCK, sold_out: BUYERS - STOCK, error: 0, unanswered: 0 }, `storm ${i}: everyone else heard sold_out`);
    t.equal(s.errors, 0, `storm ${i}: no errors (${s.errorSamples.join('; ')})`);
    t.ok(s.attemptsAnswered >= BUYERS && s.attemptsSent === s.attemptsAnswered, `storm ${i}: every attempt answered (${s.attemptsAnswered})`);
    t.ok(s.attemptsPerSec > 0, `storm ${i}: ${s.attemptsPerSec} attempts/s`);
    t.ok(s.p50Ms > 0 && s.p50Ms <= s.p99Ms && s.p99Ms <= s.maxMs, `storm ${i}: 0 < p50 ${s.p50Ms} <= p99 ${s.p99Ms} <= max ${s.maxMs}`);
    t.ok(s.timeToSoldOutMs !== null && s.timeToSoldOutMs <= s.stormMs, `storm ${i}: sold out after ${s.timeToSoldOutMs} ms of ${s.stormMs}`);
    const g = s.gateway;
    t.equal(g.local + g.forwarded + g.shed, s.attemptsAnswered, `storm ${i}: the gateway counted every attempt (local ${g.local}, forwarded ${g.forwarded}, shed ${g.shed})`);
    t.ok(g.forwarded >= STOCK, `storm ${i}: the winners went to a worker`);
    t.match(s.cpu, { cores: { server: Number, generator: Number } }, `storm ${i}: cores per process group`);
  }
  t.type(body.ratios['embedded attempts answered/s / ceiling decisions/s'], 'number');
});

t.test('the storm verifier catches overselling, a buyer twice and answers that do not match the store', async (t) => {
  const info: SaleInfo = {
    sale: 's1', merchant: 'm', conv: 'g:1', item: 'x', price: 100, currency: 'CNY', stock: 2, startAt: 1, endAt: 2, perUserLimit: 1,
    payWindowMs: 1000, createdAt: 0, state: 'sold_out', sold: 0, reserved: 2, remaining: 0,
  };
  const order = (id: string, user: string, over: Partial<OrderInfo> = {}): OrderInfo => ({
    order: id, sale: 's1', user, quantity: 1, amount: 100, currency: 'CNY', state: 'reserved', createdAt: 1, payBy: 2, ...over,
  });
  const outcomes = (reserved: number, soldOut: number) => ({ reserved, sold_out: soldOut, limit_reached: 0, not_open: 0, closed: 0, error: 0, unanswered: 0 });
  const answers = [{ user: 'a', outcome: 'reserved' as const, order: 'o1' }, { user: 'b', outcome: 'reserved' as const, order: 'o2' }, { user: 'c', outcome: 'sold_out' as const }];
  const good = verifyStorm(info, [order('o1', 'a'), order('o2', 'b')], { buyers: 3, outcomes: outcomes(2, 1), answers });
  t.match(good, { ok: true, expectedUnits: 2, orders: 2, units: 2, reservedAnswers: 2, problems: [] });

  const oversold = verifyStorm({ ...info, reserved: 3 }, [order('o1', 'a'), order('o2', 'b'), order('o3', 'c')], { buyers: 3, outcomes: outcomes(2, 1), answers });
  t.match(oversold.problems, [/orders hold 3 units; the storm had to sell exactly 2/, /0 \+ 3 \+ 0 != stock 2/, /c holds an order but was never told reserved/]);

  const twice = verifyStorm(info, [order('o1', 'a'), order('o2', 'a')], { buyers: 3, outcomes: outcomes(2, 1), answers });
  t.match(twice.problems, [/a holds two orders/, /a was told order o1, the store holds o2/, /b was told reserved but holds no order/]);

  const wrongId = verifyStorm(info, [order('o1', 'a'), order('o9', 'b')], { buyers: 3, outcomes: outcomes(2, 1), answers });
  t.match(wrongId.problems, [/b was told order o2, the store holds o9/]);

  const unanswered = verifyStorm(info, [order('o1', 'a'), order('o2', 'b')], { buyers: 3, outcomes: { ...outcomes(2, 0), unanswered: 1 }, answers });
  t.match(unanswered.problems, [/0 of the 1 buyers without an order heard sold_out \(1 unanswered\)/]);

  const miscounted = verifyStorm({ ...info, reserved: 1, remaining: 1 }, [order('o1', 'a'), order('o2', 'b')], { buyers: 3, outcomes: outcomes(2, 1), answers });
  t.match(miscounted.problems, [/sale.info says 0 sold \+ 1 reserved, the orders hold 2/]);
});
