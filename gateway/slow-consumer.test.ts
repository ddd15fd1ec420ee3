// A client that stops reading: its socket's buffer stays bounded (events are dropped), it
// gets `lag` once it drains, and it is closed 4101 if it stays behind too long or a reply
// to it cannot be queued.
import t from 'tap';
import type { MessageEvent } from '../protocol/frames.ts';
import { connectUser, startTestServer, type TestClient, type TestServer } from './test-support.ts';

const BOUND = 256 * 1024;
const EVENT_TEXT = 'x'.repeat(32 * 1024);

function event(seq: number): MessageEvent {
  return { t: 'msg', m: { conv: 'g1', seq, from: 'bob', dev: 'd', cid: `c${seq}`, kind: 'text', body: { text: EVENT_TEXT }, ts: Date.now() } };
}

function pauseReading(client: TestClient): { resume(): void } {
  const socket = (client.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  socket.pause();
  return { resume: () => socket.resume() };
}

/** Publish until uWS is holding at least the lag mark for the paused client, then `extra` more. */
async function overfill(server: TestServer, user: string, extra: number): Promise<{ published: number; maxBuffered: number }> {
  let published = 0;
  let maxBuffered = 0;
  const buffered = () => Math.max(0, ...server.gateway.bufferedAmounts());
  while (buffered() < BOUND * 0.75) {
    server.gateway.delivery.toUsers([user], event(++published));
    if (published % 32 === 0) await new Promise((r) => setImmediate(r)); // let the kernel buffers fill
    if (published > 20_000) throw new Error('buffer never filled');
  }
  for (let i = 0; i < extra; i++) {
    server.gateway.delivery.toUsers([user], event(++published));
    maxBuffered = Math.max(maxBuffered, buffered());
  }
  return { published, maxBuffered };
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('paused reader: bounded buffer, events dropped, lag after it drains, others unaffected', async (t) => {
  const server = await startTestServer({ slowConsumerBytes: BOUND, slowConsumerCloseMs: 60_000 });
  t.teardown(() => server.close());
  const { client } = await connectUser(server, 'slow');
  const { client: other } = await connectUser(server, 'fast');
  t.teardown(() => { client.close(); other.close(); });
  const paused = pauseReading(client);
  const rssBefore = process.memoryUsage().rss;
  // ~6000 events of 32 KiB = ~190 MiB offered to a socket bounded at 256 KiB.
  const { published, maxBuffered } = await overfill(server, 'slow', 6000);
  const rssGrowth = process.memoryUsage().rss - rssBefore;
  t.ok(maxBuffered <= BOUND + 64 * 1024, `uWS buffer stays near the bound (max ${maxBuffered})`);
  t.ok(rssGrowth < 64 * 1024 * 1024, `process memory stays bounded (+${Math.round(rssGrowth / 1048576)} MiB for ${Math.round((published * 32) / 1024)} MiB offered)`);
  await until('the connection is marked lagging', () => server.gateway.metrics.laggingConnections === 1);
  t.match(await other.request('ping'), { t: 'res' }, 'another client is served meanwhile');

  paused.resume();
  const lag = await client.take((f) => f['t'] === 'lag', 'lag event', 10_000);
  t.same(lag, { t: 'lag' });
  const got = client.frames.filter((f) => f['t'] === 'msg').length;
  t.ok(got < published, `some events were dropped (${got} of ${published} arrived)`);
  t.equal(server.gateway.metrics.laggingConnections, 0);
  t.equal(server.gateway.metrics.lagEvents, 1);
  t.match(await client.request('ping'), { t: 'res' }, 'the lagging client is served again');
  t.equal(client.closeCode, undefined);
});

t.test('a reader that stays behind longer than slowConsumerCloseMs is closed 4101', async (t) => {
  const server = await startTestServer({ slowConsumerBytes: BOUND, slowConsumerCloseMs: 300 });
  t.teardown(() => server.close());
  const { client } = await connectUser(server, 'slow');
  const paused = pauseReading(client);
  await overfill(server, 'slow', 10);
  await until('server closes it 4101', () => server.gateway.metrics.closesByCode.get(4101) === 1);
  paused.resume();
  await client.waitClose(10_000);
  t.equal(server.gateway.metrics.openConnections, 0);
  t.equal(server.gateway.metrics.laggingConnections, 0);
});

t.test('a reply that cannot be queued closes the connection 4101 instead of vanishing', async (t) => {
  const server = await startTestServer({ slowConsumerBytes: BOUND, slowConsumerCloseMs: 60_000 });
  t.teardown(() => server.close());
  const { client } = await connectUser(server, 'slow');
  const paused = pauseReading(client);
  await overfill(server, 'slow', 100);
  client.send({ t: 'ping', id: 77 });
  await until('server closes it 4101', () => server.gateway.metrics.closesByCode.get(4101) === 1);
  paused.resume();
  await client.waitClose(10_000);
  t.notOk(client.frames.some((f) => f['id'] === 77), 'the ping was not answered: the client must resend after reconnecting');
});
