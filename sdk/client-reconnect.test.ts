// Reconnect policy by close code: 41xx reconnect + resync, 40xx stop, 42xx fresh token.
import t from 'tap';
import { LanternClientError } from './errors.ts';
import { FakeServer } from './test/fake-server.ts';
import { makeClient, record, until } from './test/helpers.ts';

t.test('after a 4101 close the client reconnects and resync emits the missed messages once', async (t) => {
  const server = await FakeServer.start();
  const client = makeClient(server);
  const rec = record(client);
  t.teardown(async () => {
    await client.close();
    await server.stop();
  });
  await client.connect();
  server.publish('g', 'bob', 'one');
  server.publish('g', 'bob', 'two');
  await until(() => rec.messages.length === 2, 'two live messages');

  server.closeAll(4101, 'slow consumer');
  // Committed while the client is away; no socket sees them live.
  server.append('g', 'bob', 'text', { text: 'three' });
  server.append('g', 'bob', 'text', { text: 'four' });
  server.append('h', 'carol', 'text', { text: 'new conv' });

  await until(() => rec.connected.length === 2, 'the second welcome');
  await until(() => rec.synced.length === 2, 'the resync');
  t.same(rec.keys(), ['g#1', 'g#2', 'g#3', 'g#4', 'h#1'], 'each message exactly once, in order');
  t.match(rec.disconnected, [{ code: 4101, reason: 'slow consumer', willReconnect: true }]);
  t.ok(rec.disconnected[0]!.delayMs! >= 0 && rec.disconnected[0]!.delayMs! <= 5, 'first delay within the initial backoff ceiling');
  t.same(server.framesOfType('sync').at(-1)?.['since'], { g: 2 }, 'resync starts at the contiguous cursor');
  t.equal(server.hellos.length, 2);
  t.equal(client.status, 'ready');
});

t.test('backoff grows across failed attempts and resets after a welcome', async (t) => {
  const server = await FakeServer.start();
  let refuse = 3;
  server.onHello = () => (refuse-- > 0 ? { close: 4103, reason: 'try later' } : { welcome: true });
  const client = makeClient(server, { backoff: { initialMs: 8, maxMs: 1000, factor: 2 }, random: () => 0.999 });
  const rec = record(client);
  t.teardown(async () => {
    await client.close();
    await server.stop();
  });
  await client.connect();
  t.same(rec.disconnected.map((d) => d.delayMs), [7, 15, 31], 'ceilings 8, 16, 32 with jitter ~1');
  server.closeAll(4103);
  await until(() => rec.connected.length === 2, 'reconnected');
  t.equal(rec.disconnected.at(-1)?.delayMs, 7, 'the welcome reset the backoff');
});

t.test('a 4001 close stops reconnecting and rejects connect()', async (t) => {
  const server = await FakeServer.start();
  server.onHello = () => ({ close: 4001, reason: 'bad token' });
  const client = makeClient(server);
  const rec = record(client);
  t.teardown(() => server.stop());
  const err = await client.connect().then(() => undefined, (e: unknown) => e);
  t.type(err, LanternClientError);
  t.match(err, { closeCode: 4001, error: 'auth_failed', retry: false });
  t.same(rec.disconnected, [{ code: 4001, reason: 'bad token', willReconnect: false }]);
  t.equal(client.status, 'stopped');
  t.equal(server.hellos.length, 1, 'exactly one attempt');
  t.equal(rec.errors.at(-1)?.context, 'connection', 'the terminal stop is reported as an error event');
  await t.rejects(client.ping(), { name: 'LanternClientError', error: 'unavailable' }, 'requests fail fast once stopped');
});

t.test('a 4001 close of a live session rejects unacked sends', async (t) => {
  const server = await FakeServer.start();
  server.intercept = (frame, socket) => {
    if (frame['t'] !== 'send') return false;
    socket.close(4001, 'revoked');
    return true;
  };
  const client = makeClient(server);
  const rec = record(client);
  t.teardown(() => server.stop());
  await client.connect();
  await t.rejects(client.sendText('g', 'hi'), { name: 'LanternClientError', closeCode: 4001, retry: false });
  t.match(rec.disconnected, [{ code: 4001, willReconnect: false }]);
  t.equal(client.status, 'stopped');
  t.same(client.pendingSends(), []);
  t.equal(server.hellos.length, 1);
});

t.test('a 4200 close calls the token function again before reconnecting', async (t) => {
  const server = await FakeServer.start();
  let calls = 0;
  const client = makeClient(server, { token: async () => `tok-${++calls}` });
  const rec = record(client);
  t.teardown(async () => {
    await client.close();
    await server.stop();
  });
  await client.connect();
  server.closeAll(4200, 'token expired');
  await until(() => rec.connected.length === 2, 'the second welcome');
  t.same(server.hellos.map((h) => h.token), ['tok-1', 'tok-2']);
  t.equal(calls, 2);
  t.match(rec.disconnected, [{ code: 4200, willReconnect: true }]);
});

t.test('a 4200 close with a fixed token string stops with an explanation', async (t) => {
  const server = await FakeServer.start();
  const client = makeClient(server, { token: 'fixed' });
  const rec = record(client);
  t.teardown(() => server.stop());
  await client.connect();
  server.closeAll(4200, 'token expired');
  await until(() => rec.disconnected.length === 1, 'disconnected');
  t.same(rec.disconnected, [{ code: 4200, reason: 'token expired', willReconnect: false }]);
  t.match(rec.errors.at(-1)?.error.message, /pass a function/);
  t.equal(client.status, 'stopped');
});

t.test('a failing token function is reported and retried with backoff', async (t) => {
  const server = await FakeServer.start();
  let calls = 0;
  const client = makeClient(server, {
    token: () => {
      if (++calls === 1) throw new Error('auth service down');
      return 'tok';
    },
  });
  const rec = record(client);
  t.teardown(async () => {
    await client.close();
    await server.stop();
  });
  await client.connect();
  t.equal(calls, 2);
  t.match(rec.errors, [{ context: 'token', error: { message: 'auth service down' } }]);
});

t.test('close() ends the session without reconnecting', async (t) => {
  const server = await FakeServer.start();
  const client = makeClient(server);
  const rec = record(client);
  t.teardown(() => server.stop());
  await client.connect();
  await client.close();
  t.same(rec.disconnected, [{ code: 1000, reason: 'client closed', willReconnect: false }]);
  t.equal(client.status, 'stopped');
  await server.until(() => server.connections === 0, 'the server to see the close');
  t.equal(server.hellos.length, 1);
});

t.test('a silent connection is probed with ping and dropped when the ping goes unanswered', async (t) => {
  const server = await FakeServer.start();
  let swallowed = 0;
  server.intercept = (frame) => frame['t'] === 'ping' && swallowed++ === 0;
  const client = makeClient(server, { heartbeatMs: 40, requestTimeoutMs: 80 });
  const rec = record(client);
  t.teardown(async () => {
    await client.close();
    await server.stop();
  });
  await client.connect();
  await until(() => rec.connected.length === 2, 'a new session after the dead one');
  t.match(rec.disconnected, [{ code: 1006, reason: 'heartbeat timeout', willReconnect: true }]);
  t.match(rec.errors, [{ context: 'heartbeat', error: { message: /no reply to the heartbeat ping/ } }]);
  t.equal(server.hellos.length, 2);
});
