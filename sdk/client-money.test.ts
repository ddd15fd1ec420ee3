// Money helpers: a request whose reply is lost is retried with the same idempotency key, and
// envelope/transfer events reach the app.
import t from 'tap';
import { FakeServer } from './test/fake-server.ts';
import { makeClient, until } from './test/helpers.ts';

t.test('sendEnvelope: the reply is lost, the retry carries the same key and the app gets one result', async (t) => {
  const a = await FakeServer.start();
  const client = makeClient(a, { requestTimeoutMs: 150 });
  t.teardown(async () => { await client.close(); await a.stop(); });
  await client.connect();
  let seen = 0;
  a.intercept = (frame, socket) => {
    if (frame['t'] !== 'envelope.send') return false;
    // The first attempt is swallowed (its outcome unknown to the client); the second is answered.
    if (++seen === 2) a.sendTo(socket, { t: 'res', id: frame['id'], data: { envelope: 'e1', conv: frame['conv'], seq: 7, expiresAt: 1 } });
    return true;
  };
  const sent = await client.sendEnvelope('g', { total: 888, count: 3, mode: 'lucky', greeting: 'hi' });
  t.same(sent, { envelope: 'e1', conv: 'g', seq: 7, expiresAt: 1 });
  const keys = a.framesOfType('envelope.send').map((f) => f['key']);
  t.equal(keys.length, 2, 'retried once');
  t.equal(keys[0], keys[1], 'with the same key');
  t.ok(typeof keys[0] === 'string' && (keys[0] as string).length > 0, 'a fresh key was made');
});

t.test('a refusal is not retried; envelope and transfer events are emitted', async (t) => {
  const a = await FakeServer.start();
  const client = makeClient(a);
  t.teardown(async () => { await client.close(); await a.stop(); });
  const envelopes: unknown[] = [];
  const transfers: unknown[] = [];
  client.on('envelope', (e) => envelopes.push(e));
  client.on('transfer', (e) => transfers.push(e));
  await client.connect();
  let socket: Parameters<typeof a.sendTo>[0] | undefined;
  a.intercept = (frame, s) => {
    if (frame['t'] !== 'transfer.send') return false;
    socket = s;
    a.sendTo(s, { t: 'err', id: frame['id'], code: 3004, error: 'insufficient_funds', msg: 'short', retry: false, field: 'amount' });
    return true;
  };
  await t.rejects(client.sendTransfer('bob', 500, { key: 'k1' }), { name: 'LanternClientError', error: 'insufficient_funds' });
  t.equal(a.framesOfType('transfer.send').length, 1, 'not retried');
  a.sendTo(socket!, { t: 'envelope', conv: 'g', envelope: 'e1', grabs: [{ user: 'bob', amount: 5, ts: 1 }], left: 2 });
  const info = { transfer: 't1', from: 'alice', to: 'bob', currency: 'CNY', amount: 500, note: '', conv: 'd', createdAt: 1, expiresAt: 2, state: 'accepted', settledAt: 2 };
  a.sendTo(socket!, { t: 'transfer', transfer: info });
  await until(() => envelopes.length === 1 && transfers.length === 1, 'both events');
  t.same(envelopes[0], { conv: 'g', envelope: 'e1', grabs: [{ user: 'bob', amount: 5, ts: 1 }], left: 2 });
  t.same(transfers[0], info);
});

t.test('buy: a lost reply and a try_later are sent again with the same key, retry set after the lost reply; sale events reach the app', async (t) => {
  const a = await FakeServer.start();
  const client = makeClient(a, { requestTimeoutMs: 150 });
  t.teardown(async () => { await client.close(); await a.stop(); });
  const sales: unknown[] = [];
  client.on('sale', (e) => sales.push(e));
  await client.connect();
  let seen = 0;
  a.intercept = (frame, socket) => {
    if (frame['t'] !== 'sale.buy') return false;
    seen++;
    // 1: lost; 2: shed by the gateway; 3: answered.
    if (seen === 2) a.sendTo(socket, { t: 'res', id: frame['id'], data: { sale: 's1', outcome: 'try_later', retryAfterMs: 20 } });
    if (seen === 3) {
      a.sendTo(socket, { t: 'res', id: frame['id'], data: { sale: 's1', outcome: 'sold_out' } });
      a.sendTo(socket, { t: 'sale', sale: 's1', conv: 'g', state: 'sold_out', remaining: 0, startAt: 1, endAt: 2, ts: 3 });
    }
    return true;
  };
  t.same(await client.buy('s1', 1), { sale: 's1', outcome: 'sold_out' });
  const frames = a.framesOfType('sale.buy');
  t.equal(frames.length, 3, 'sent three times');
  t.equal(new Set(frames.map((f) => f['key'])).size, 1, 'always with the same key');
  t.same(frames.map((f) => f['retry'] === true), [false, true, true], 'the first tap plain, the resends marked retry');
  await until(() => sales.length === 1, 'the sale event');
  t.same(sales[0], { sale: 's1', conv: 'g', state: 'sold_out', remaining: 0, startAt: 1, endAt: 2, ts: 3 });
});
