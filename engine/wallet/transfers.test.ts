import t from 'tap';
import type { TransferEvent } from '../../protocol/frames.ts';
import { walletHarness } from './test-kit.ts';

t.test('a transfer waits in escrow under a card until the recipient accepts it', async (t) => {
  const h = walletHarness();
  const conv = await h.friends('a', 'b');
  await h.topup('a', 1000);
  const sent = await h.as('a').req('transfer.send', { user: 'b', amount: 250, key: 'rent', note: 'rent' });
  t.same([sent.conv, sent.transfer.state, sent.transfer.amount], [conv, 'pending', 250]);
  t.same([await h.cents('a'), await h.cents('b')], [750, 0], 'debited at send, not yet credited');
  const card = (await h.as('b').req('history', { conv })).msgs.find((m) => m.seq === sent.seq)!;
  t.same([card.kind, card.body], ['transfer', { transfer: sent.transfer.transfer, amount: 250, currency: 'CNY', note: 'rent' }], 'the card is in the chat');
  await t.rejects(h.as('a').req('transfer.accept', { transfer: sent.transfer.transfer }), { name: 'LanternError', error: 'not_found' }, 'only the recipient settles');
  const accepted = await h.as('b').req('transfer.accept', { transfer: sent.transfer.transfer });
  t.equal(accepted.state, 'accepted');
  t.same([await h.cents('a'), await h.cents('b')], [750, 250]);
  t.same(await h.as('b').req('transfer.accept', { transfer: sent.transfer.transfer }), accepted, 'accepting again changes nothing');
  t.equal(await h.cents('b'), 250, 'paid once');
  await t.rejects(h.as('b').req('transfer.return', { transfer: sent.transfer.transfer }), { name: 'LanternError', error: 'already_settled' });
  for (const u of ['a', 'b']) t.same((h.delivery.of(u, 'transfer') as TransferEvent[]).map((e) => e.transfer.state), ['accepted'], `${u} was told once`);
});

t.test('declined or expired transfers go back to the sender, once', async (t) => {
  const h = walletHarness({ transferExpiryMs: 60_000 });
  await h.friends('a', 'b');
  await h.topup('a', 1000);
  const declined = await h.as('a').req('transfer.send', { user: 'b', amount: 100, key: 'one' });
  await h.as('a').req('transfer.send', { user: 'b', amount: 200, key: 'two' });
  t.equal((await h.as('b').req('transfer.return', { transfer: declined.transfer.transfer })).state, 'returned');
  t.equal(await h.cents('a'), 800);
  h.clock.ms += 60_000;
  t.same(await h.engine.sweepWallet!(), { envelopes: 0, transfers: 1, orders: 0 });
  t.same(await h.engine.sweepWallet!(), { envelopes: 0, transfers: 0, orders: 0 });
  t.same([await h.cents('a'), await h.cents('b')], [1000, 0], 'everything back');
});

t.test('transfers: idempotent by key, limits, contacts only', async (t) => {
  const h = walletHarness({ transferMaxAmount: 800 });
  await h.friends('a', 'b');
  await h.topup('a', 1000);
  const first = await h.as('a').req('transfer.send', { user: 'b', amount: 300, key: 'k' });
  t.same(await h.as('a').req('transfer.send', { user: 'b', amount: 300, key: 'k' }), first, 'a retry is the same transfer');
  t.equal(await h.cents('a'), 700, 'debited once');
  await t.rejects(h.as('a').req('transfer.send', { user: 'b', amount: 301, key: 'k' }), { name: 'LanternError', error: 'key_reused' }, 'same key, other amount');
  await t.rejects(h.as('a').req('transfer.send', { user: 'b', amount: 801, key: 'big' }), { name: 'LanternError', error: 'too_large', field: 'amount' }, 'above transferMaxAmount');
  await t.rejects(h.as('a').req('transfer.send', { user: 'b', amount: 0, key: 'zero' }), { name: 'LanternError', error: 'invalid_field', field: 'amount' }, 'zero');
  await t.rejects(h.as('a').req('transfer.send', { user: 'b', amount: 750, key: 'short' }), { name: 'LanternError', error: 'insufficient_funds' }, 'more than the wallet holds');
  await t.rejects(h.as('a').req('transfer.send', { user: 'stranger', amount: 5, key: 's' }), { name: 'LanternError', error: 'not_contact' }, 'not a contact');
  await t.rejects(h.as('a').req('transfer.send', { user: 'a', amount: 5, key: 'self' }), { name: 'LanternError', error: 'invalid_field', field: 'user' }, 'to oneself');
  await h.as('b').req('contact.block', { user: 'a' });
  await t.rejects(h.as('a').req('transfer.send', { user: 'b', amount: 5, key: 'blocked' }), { name: 'LanternError', error: 'blocked' }, 'blocked');
  t.equal(await h.cents('a'), 700, 'no refused transfer moved money');
  await t.rejects(h.as('c').req('transfer.info', { transfer: first.transfer.transfer }), { name: 'LanternError', error: 'not_found' }, 'a third user cannot see it');
});
