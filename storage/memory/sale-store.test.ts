import t from 'tap';
import { saleStoreContract } from '../contract/sale-store.contract.ts';
import { uid } from '../contract/fixtures.ts';
import type { Order, Sale } from '../../engine/sales/ports.ts';
import { MemorySaleStore } from './sale-store.ts';

saleStoreContract(t, 'memory', async () => {
  // Two workers on one process share the store itself.
  const store = new MemorySaleStore();
  return { store, another: async () => store, cleanup: () => store.close() };
});

t.test('memory: arguments and results are copies of the stored state', async (t) => {
  const store = new MemorySaleStore();
  const sale: Sale = {
    id: uid('sale'), merchant: 'shop', conv: 'c', item: 'tea', price: 100, currency: 'CNY', stock: 5, startAt: 0, endAt: 10,
    perUserLimit: 2, payWindowMs: 1000, createdAt: 0, fingerprint: 'f',
  };
  const created = await store.createSale(sale);
  sale.stock = 1;
  created.value.stock = 2;
  (await store.getSale(sale.id))!.sale.stock = 3;
  t.equal((await store.getSale(sale.id))?.sale.stock, 5, 'neither the argument nor a result aliases the sale');

  const order: Order = {
    id: uid('ord'), sale: sale.id, user: 'amy', key: 'k', quantity: 1, amount: 100, currency: 'CNY', state: 'reserved',
    createdAt: 0, payBy: 1000, fingerprint: 'o',
  };
  const result = await store.reserve(order);
  order.quantity = 2;
  if (result?.outcome === 'reserved') result.order.state = 'paid';
  (await store.userOrders('amy', { limit: 1 })).orders[0]!.state = 'expired';
  (await store.getOrder(order.id))!.user = 'ben';
  t.match(await store.getOrder(order.id), { quantity: 1, state: 'reserved', user: 'amy' }, 'nor does an order');
});
