import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoreUnavailableError } from '../../engine/ports.ts';
import type { Order, Sale } from '../../engine/sales/ports.ts';
import { saleStoreContract } from '../contract/sale-store.contract.ts';
import { failure, uid } from '../contract/fixtures.ts';
import { LmdbSaleStore } from './sale-store.ts';

const root = await mkdtemp(join(tmpdir(), 'lantern-lmdb-sales-test-'));
t.teardown(() => rm(root, { recursive: true, force: true }));

saleStoreContract(t, 'lmdb', async () => {
  const path = join(root, uid('db'));
  const stores = [await LmdbSaleStore.open({ path })];
  return {
    store: stores[0]!,
    // A second handle on the same directory: its writes go through the same LMDB write lock.
    another: async () => {
      const store = await LmdbSaleStore.open({ path });
      stores.push(store);
      return store;
    },
    cleanup: async () => {
      for (const store of stores) await store.close();
      await rm(path, { recursive: true, force: true });
    },
  };
});

const T0 = 1_900_000_000_000;

function scene() {
  const sale: Sale = {
    id: uid('sale'), merchant: uid('shop'), conv: uid('conv'), item: 'tea', price: 500, currency: 'CNY', stock: 5,
    startAt: T0, endAt: T0 + 3_600_000, perUserLimit: 2, payWindowMs: 60_000, createdAt: T0, fingerprint: uid('fp'),
  };
  const order = (user: string, quantity: number, at: number): Order => ({
    id: uid('ord'), sale: sale.id, user, key: uid('key'), quantity, amount: quantity * sale.price, currency: 'CNY',
    state: 'reserved', createdAt: at, payBy: at + sale.payWindowMs, fingerprint: `${sale.id}/${quantity}`,
  });
  return { sale, order };
}

t.test('lmdb: sales, orders, counts, limits and indexes survive close and reopen', async (t) => {
  const path = join(root, uid('db'));
  t.teardown(() => rm(path, { recursive: true, force: true }));
  const { sale, order } = scene();
  const [amy, ben] = [uid('u'), uid('u')];
  let store = await LmdbSaleStore.open({ path });
  await store.createSale(sale);
  const paid = order(amy, 2, T0 + 1);
  const open = order(ben, 1, T0 + 2);
  await store.reserve(paid);
  await store.reserve(open);
  await store.transition(paid.id, ['reserved'], 'paying', T0 + 3);
  const settled = (await store.transition(paid.id, ['paying'], 'paid', T0 + 4))!.value;
  await store.close();

  store = await LmdbSaleStore.open({ path });
  t.teardown(() => store.close());
  t.same(await store.getSale(sale.id), { sale, counts: { sold: 2, reserved: 1, remaining: 2 } }, 'the sale with its counts');
  t.same(await store.getOrder(paid.id), settled, 'the paid order');
  t.same(await store.dueOrders(open.payBy, 10), [open.id], 'the due index');
  t.same(await store.saleOrders(sale.id, { limit: 10 }), { orders: [settled, open] }, 'the sale index');
  t.same(await store.userOrders(amy, { limit: 10 }), { orders: [settled] }, 'the user index');
  t.same(await store.reserve(open), { outcome: 'reserved', order: open, applied: false }, 'order ids are remembered');
  t.same(await store.reserve(order(amy, 1, T0 + 5)), { outcome: 'limit_reached', held: 2 }, "amy's paid units still count");
  t.equal((await store.reserve(order(ben, 1, T0 + 5)))?.outcome, 'reserved', 'work continues where it stopped');
});

t.test('lmdb: a closed store reports StoreUnavailableError', async (t) => {
  const path = join(root, uid('db'));
  t.teardown(() => rm(path, { recursive: true, force: true }));
  const store = await LmdbSaleStore.open({ path });
  await store.close();
  const { sale } = scene();
  t.ok(await failure(store.createSale(sale)) instanceof StoreUnavailableError, 'write');
  t.ok(await failure(store.getSale(sale.id)) instanceof StoreUnavailableError, 'read');
});
