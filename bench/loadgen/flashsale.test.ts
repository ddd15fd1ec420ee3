// runSaleStorm against a real embedded Lantern (LMDB, whose reservations really wait for the disk) whose gateway admits one attempt at a
// time (saleMaxInflight 1): most first attempts are shed with try_later, and the generators resend
// the same key with retry: true until each buyer has a final answer. Exactly the stock is reserved,
// nobody twice, and the store agrees with what the buyers were told.
import t from 'tap';
import { startBenchLantern } from '../lantern-server.ts';
import { runSaleStorm } from './flashsale-run.ts';
import { createSale, openShop, readSaleOrders, verifyStorm } from './flashsale-sale.ts';

t.test('a storm shed with try_later still ends with exactly the stock reserved', async (t) => {
  const buyers = 200, stock = 15;
  const lantern = await startBenchLantern('lmdb', { saleMaxInflight: 1, saleTryLaterMs: 20 });
  t.teardown(() => lantern.close());
  const auth = { secret: lantern.chat.jwtSecret, audience: lantern.chat.audience };
  const shop = await openShop(lantern.url, auth, 'merchant', 'follower', 10_000);
  t.teardown(() => shop.close());
  const startAt = Date.now() + 2_500;
  const { sale } = await createSale(lantern.url, lantern.adminToken, shop, { stock, perUserLimit: 1, price: 500, startAt, endAt: startAt + 60_000, key: 'storm' });
  const users = Array.from({ length: buyers }, (_, i) => `buyer${i}`);

  const r = await runSaleStorm({ urls: [lantern.url], secret: auth.secret, users, sale, startAt, workers: 2 });
  t.equal(r.buyers, buyers);
  t.equal(r.workers, 2);
  t.equal(r.errors, 0, `no errors (${r.errorSamples.join('; ')})`);
  t.ok(r.tryLater > 0, `attempts were shed (${r.tryLater} try_later) and resent`);
  t.equal(r.attemptsAnswered, buyers + r.tryLater + r.early, 'each buyer\'s attempts: one final answer, the rest try_later or early');
  t.match(r.outcomes, { reserved: stock, sold_out: buyers - stock, error: 0, unanswered: 0 });
  t.equal(r.answers.length, buyers, 'every buyer\'s answer');
  const winners = r.answers.filter((a) => a.outcome === 'reserved');
  t.equal(new Set(winners.map((a) => a.user)).size, stock, 'no buyer twice');
  t.ok(winners.every((a) => typeof a.order === 'string'), 'each winner has its order id');
  t.ok(r.timeToSoldOutMs !== null && r.timeToSoldOutMs >= 0, `first sold_out after ${r.timeToSoldOutMs} ms (first send ${r.firstSendLagMs} ms after the start)`);

  const info = await shop.conn.request('sale.info', { sale });
  const orders = await readSaleOrders(lantern.url, lantern.adminToken, sale);
  t.match(verifyStorm(info, orders, r), { ok: true, orders: stock, problems: [] }, 'the store holds exactly the orders the winners were told');
});
