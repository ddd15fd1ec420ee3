import t from 'tap';
import { walletHarness } from './test-kit.ts';

t.test('top-ups are idempotent by the operator key; statements page newest first with running balances', async (t) => {
  const h = walletHarness({ statementPageMax: 2 });
  const first = await h.engine.admin!('wallet.topup', { user: 'a', amount: 500, key: 'op-1' });
  t.same(first, { user: 'a', currency: 'CNY', amount: 500, balance: 500, applied: true });
  t.same(await h.engine.admin!('wallet.topup', { user: 'a', amount: 500, key: 'op-1' }), { ...first, applied: false }, 'a retried top-up moves nothing');
  await t.rejects(h.engine.admin!('wallet.topup', { user: 'a', amount: 501, key: 'op-1' }), { name: 'LanternError', error: 'key_reused' }, 'same key, other amount');
  await t.rejects(h.engine.admin!('wallet.topup', { user: 'a', amount: 5, key: 'op-x', currency: 'XYZ' }), { name: 'LanternError', error: 'invalid_field', field: 'currency' }, 'unknown currency');
  await h.topup('a', 20);
  await h.topup('a', 3);
  const page1 = await h.as('a').req('wallet.statement', {});
  t.same(page1.entries.map((e) => [e.amount, e.balance]), [[3, 523], [20, 520]], 'newest first, balance after each');
  t.equal(page1.more, true);
  const page2 = await h.as('a').req('wallet.statement', { before: page1.entries.at(-1)!.seq });
  t.same(page2.entries.map((e) => [e.kind, e.amount, e.balance]), [['topup', 500, 500]]);
  t.equal(page2.more, false);
  t.same(await h.as('a').req('wallet.balance', {}), { balances: [{ currency: 'CNY', cents: 523 }] });
  t.same(await h.as('nobody').req('wallet.balance', {}), { balances: [{ currency: 'CNY', cents: 0 }] }, 'a new user holds 0');
});
