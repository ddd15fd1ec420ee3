// Several gateway URLs: every reconnect attempt moves to the next one, so the clients of a dead
// gateway land on a live one and their unacked sends go out there with the same cid.
import t from 'tap';
import { WebSocket } from 'ws';
import { LanternClient } from './client.ts';
import { FakeServer } from './test/fake-server.ts';
import { makeClient, record, until } from './test/helpers.ts';

t.test('a dead gateway: the client fails over to the next URL and re-sends the unacked send with the same cid', async (t) => {
  const a = await FakeServer.start();
  const b = await FakeServer.start();
  const client = makeClient(a, { url: [a.url, b.url] });
  const rec = record(client);
  t.teardown(async () => {
    await client.close();
    await b.stop();
  });
  await client.connect();
  t.equal(client.url, a.url, 'the first attempt uses the first URL');
  // Gateway A takes the send and dies before answering it.
  a.intercept = (frame) => frame['t'] === 'send';
  const sent = client.sendText('g', 'hello');
  await a.until(() => a.framesOfType('send').length === 1, 'the send reached A');
  await a.stop();

  const ack = await sent;
  t.equal(client.url, b.url, 'reconnected to the second URL');
  t.equal(b.hellos.length, 1);
  t.same(b.framesOfType('send').map((f) => f['cid']), a.framesOfType('send').map((f) => f['cid']), 'same cid on the new gateway');
  t.match(ack, { conv: 'g', seq: 1, dup: false });
  t.same(rec.keys(), ['g#1'], 'the message arrives once');
});

t.test('the rotation wraps around and a single string still works', async (t) => {
  const a = await FakeServer.start();
  const b = await FakeServer.start();
  const client = makeClient(a, { url: [a.url, b.url] });
  const single = makeClient(a);
  const rec = record(client);
  t.teardown(async () => {
    // Clients first: a client reconnecting while its server stops would hold the server open.
    await client.close();
    await single.close();
    await a.stop();
    await b.stop();
  });
  await client.connect();
  a.closeAll(4103, 'bye');
  await until(() => rec.connected.length === 2, 'second welcome');
  b.closeAll(4103, 'bye');
  await until(() => rec.connected.length === 3, 'third welcome');
  t.same([a.hellos.length, b.hellos.length], [2, 1], 'A, B, then A again');
  t.equal(client.url, a.url);

  await single.connect();
  a.closeAll(4103);
  await until(() => a.hellos.length === 4, 'the single-URL client came back to A');
  t.equal(single.url, a.url);
});

t.test('url is checked: a non-empty array of ws/wss URLs, the bad entry named', async (t) => {
  const base = { token: 'tok', device: 'dev', WebSocket };
  t.throws(() => new LanternClient({ ...base, url: [] }), { name: 'TypeError', message: /non-empty array/ });
  t.throws(() => new LanternClient({ ...base, url: ['ws://127.0.0.1:1/ws', 'http://x/ws'] }), { message: /options\.url\[1\] must use ws: or wss:/ });
  t.throws(() => new LanternClient({ ...base, url: ['nope'] }), { message: /options\.url\[0\] must be an absolute/ });
  t.throws(() => new LanternClient({ ...base, url: 'nope' }), { message: /options\.url must be an absolute/ });
});

t.test('close() while the welcome is on its way: close resolves and the welcome does not revive the client', async (t) => {
  const a = await FakeServer.start();
  t.teardown(() => a.stop());
  const client = makeClient(a);
  let closing: Promise<void> | undefined;
  a.intercept = (frame, socket) => {
    if (frame['t'] !== 'hello') return false;
    // The welcome leaves first; the app closes before the client has read it.
    a.sendTo(socket, {
      t: 'welcome', id: frame['id'], v: 1, user: a.user, device: 'dev', session: 's1', epoch: a.epoch, ts: Date.now(),
      limits: { maxFrameBytes: 65536, ratePerSec: 50, rateBurst: 100, maxSyncPage: 1000, maxGroupMembers: 500 },
    });
    closing = client.close();
    return true;
  };
  const connected = client.connect().then(() => 'welcomed', (err: Error) => err.message);
  await until(() => closing !== undefined, 'the hello reached the server');
  const closed = await Promise.race([closing!.then(() => 'closed'), new Promise((r) => setTimeout(() => r('close() still pending after 3 s'), 3000))]);
  t.equal(closed, 'closed');
  t.match(await connected, /closed/, 'connect() learns the client was closed');
  await new Promise((r) => setTimeout(r, 100)); // several backoff periods (5-20 ms)
  t.equal(a.framesOfType('hello').length, 1, 'no reconnect after close()');
});
