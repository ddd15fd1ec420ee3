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
  // Retained memory, not garbage: each event is encoded once and dropped after the write.
  const retained = () => { (globalThis as { gc?: () => void }).gc?.(); const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; };
  const rssBefore = retained();
  // ~6000 events of 32 KiB = ~190 MiB offered to a socket bounded at 256 KiB.
  const { published, maxBuffered } = await overfill(server, 'slow', 6000);
  const rssGrowth = retained() - rssBefore;
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
  // Keep the buffer over its bound while pings arrive: a reply that finds it full is dropped,
  // and the server ends the connection at once (uWS completes the close once the client reads).
  const sent: number[] = [];
  for (let id = 77; server.gateway.bufferedAmounts().length > 0; id++) {
    if (id > 577) throw new Error('no reply was ever dropped');
    for (let i = 0; i < 4; i++) server.gateway.delivery.toUsers(['slow'], event(id * 10 + i));
    client.send({ t: 'ping', id });
    sent.push(id);
    await new Promise((r) => setTimeout(r, 5));
  }
  paused.resume();
  // 4101 when the close frame still fits in the send buffer; when it is full the close frame
  // cannot be queued either and the client sees an abnormal close (1006). Both mean: reconnect.
  t.ok([4101, 1006].includes(await client.waitClose(10_000)), 'closed as a slow consumer');
  const answered = new Set(client.frames.map((f) => f['id']));
  t.ok(sent.some((id) => !answered.has(id)), 'a ping was not answered: the client must resend after reconnecting');
});
