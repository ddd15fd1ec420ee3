// Outbox guarantees: same cid across reconnects and retries, one resolution per send,
// per-conversation order, non-retryable errors reject.
import t from 'tap';
import { LanternClientError } from './errors.ts';
import { FakeServer } from './test/fake-server.ts';
import { makeClient, record, until } from './test/helpers.ts';

async function setup(t: { teardown(fn: () => unknown): void }, overrides: Parameters<typeof makeClient>[1] = {}) {
  const server = await FakeServer.start();
  const client = makeClient(server, overrides);
  const rec = record(client);
  t.teardown(async () => {
    await client.close();
    await server.stop();
  });
  await client.connect();
  // Sends go on the wire once the post-welcome sync is done.
  await until(() => rec.synced.length === 1, 'the first sync');
  return { server, client, rec };
}

t.test('a send whose ack was lost is re-sent with the same cid after reconnect and resolves once', async (t) => {
  const { server, client, rec } = await setup(t);
  let lost = 0;
  server.intercept = (frame, socket) => {
    if (frame['t'] !== 'send' || lost++ > 0) return false;
    // Commit the message, then lose the connection before the ack goes out.
    server.append(frame['conv'] as string, server.user, 'text', frame['body'] as { text: string }, frame['cid'] as string, 'dev');
    socket.close(4103, 'server error');
    return true;
  };
  let resolutions = 0;
  const first = client.sendText('g', 'hello', { cid: 'cid-1' }).then((r) => {
    resolutions++;
    return r;
  });
  await until(() => rec.disconnected.length === 1, 'the drop');
  const second = client.sendText('g', 'queued while offline');
  t.equal(client.pendingSends().length, 2, 'both wait in the outbox');

  const ack = await first;
  t.same(ack, { conv: 'g', seq: 1, ts: ack.ts, dup: true }, 'the resend was recognised by cid');
  const ack2 = await second;
  t.equal(ack2.seq, 2, 'order within the conversation is kept');
  t.equal(resolutions, 1);

  const sends = server.framesOfType('send');
  t.same(sends.map((f) => f['cid']).slice(0, 2), ['cid-1', 'cid-1'], 'same cid on the wire twice');
  t.equal(server.logs.get('g')?.length, 2, 'no duplicate message stored');
  await until(() => rec.messages.length === 2, 'own messages delivered');
  t.same(rec.keys(), ['g#1', 'g#2'], 'each own message emitted once');
  // The resend waited for the resync of the new session.
  const secondSession = server.received.filter((r) => r.socket !== server.received[0]!.socket).map((r) => r.frame['t']);
  t.same(secondSession.slice(0, 3), ['hello', 'sync', 'send']);
  t.same(client.pendingSends(), []);
});

t.test('sends to one conversation go one at a time, in order', async (t) => {
  const { server, client } = await setup(t);
  // Leave the first send unanswered so the rest must wait behind it.
  server.intercept = (frame) => frame['t'] === 'send' && frame['cid'] === 'a';
  const results = ['a', 'b', 'c'].map((cid) => client.sendText('k', cid, { cid }));
  // A ping written after the sends is answered after any send the client had put on the wire.
  await client.ping();
  t.same(server.framesOfType('send').map((f) => f['cid']), ['a'], 'only the head is in flight');
  t.same(client.pendingSends().map((p) => p.cid), ['a', 'b', 'c']);
  // Drop the connection: the head is re-sent first after the reconnect, then the others.
  server.intercept = () => false;
  server.closeAll(4103);
  const acks = await Promise.all(results);
  t.same(acks.map((a) => a.seq), [1, 2, 3]);
  t.same(server.logs.get('k')!.map((m) => (m.body as { text: string }).text), ['a', 'b', 'c']);
  t.same(server.framesOfType('send').map((f) => f['cid']), ['a', 'a', 'b', 'c']);
});

t.test('a retryable error is retried with the same cid after retryAfterMs', async (t) => {
  const { server, client, rec } = await setup(t);
  let limited = false;
  server.intercept = (frame, socket) => {
    if (frame['t'] !== 'send' || limited) return false;
    limited = true;
    server.sendTo(socket, { t: 'err', id: frame['id'], code: 5001, error: 'rate_limited', msg: 'slow down', retry: true, retryAfterMs: 30 });
    return true;
  };
  const started = Date.now();
  const ack = await client.sendText('r', 'hi', { cid: 'rl-1' });
  t.ok(Date.now() - started >= 25, 'waited for retryAfterMs');
  t.same({ seq: ack.seq, dup: ack.dup }, { seq: 1, dup: false });
  t.same(server.framesOfType('send').map((f) => f['cid']), ['rl-1', 'rl-1']);
  t.match(rec.errors, [{ context: /^outbox: send rl-1 to r retries in \d+ ms$/, error: { code: 5001, error: 'rate_limited' } }]);
});

t.test('a non-retryable error rejects that send and the next one proceeds', async (t) => {
  const { server, client } = await setup(t);
  server.intercept = (frame, socket) => {
    if (frame['t'] !== 'send' || frame['cid'] !== 'bad') return false;
    server.sendTo(socket, { t: 'err', id: frame['id'], code: 2000, error: 'not_member', msg: 'not a member', retry: false });
    return true;
  };
  const bad = client.sendText('n', 'x', { cid: 'bad' });
  const good = client.sendText('n', 'y', { cid: 'good' });
  const err = await bad.then(() => undefined, (e: unknown) => e);
  t.type(err, LanternClientError);
  t.match(err, { code: 2000, error: 'not_member', retry: false, request: 'send' });
  t.equal((await good).seq, 1);
  t.equal(server.framesOfType('send').filter((f) => f['cid'] === 'bad').length, 1, 'not retried');
});

t.test('a send without reply is retried after requestTimeoutMs with the same cid', async (t) => {
  const { server, client } = await setup(t, { requestTimeoutMs: 100 });
  let swallowed = false;
  server.intercept = (frame) => {
    if (frame['t'] !== 'send' || swallowed) return false;
    swallowed = true;
    return true;
  };
  const ack = await client.sendText('to', 'hi', { cid: 'slow' });
  t.equal(ack.seq, 1);
  t.same(server.framesOfType('send').map((f) => f['cid']), ['slow', 'slow']);
});

t.test('requests without reply reject with a retryable timeout', async (t) => {
  const { server, client } = await setup(t, { requestTimeoutMs: 50 });
  server.intercept = (frame) => frame['t'] === 'ping';
  await t.rejects(client.ping(), { name: 'LanternClientError', code: 5003, error: 'timeout', retry: true, request: 'ping' });
});

t.test('close() rejects unacked sends', async (t) => {
  const server = await FakeServer.start();
  server.intercept = (frame) => frame['t'] === 'send';
  const client = makeClient(server);
  t.teardown(() => server.stop());
  await client.connect();
  const pending = client.sendText('z', 'never acked').then(() => 'acked', (e: unknown) => e);
  await server.until(() => server.framesOfType('send').length === 1, 'the send on the wire');
  await client.close();
  t.match(await pending, { name: 'LanternClientError', error: 'closed', retry: false });
  t.same(client.pendingSends(), []);
});

t.test('a send over the server frame limit is refused locally instead of getting the socket closed', async (t) => {
  const { server, client, rec } = await setup(t);
  await t.rejects(client.sendText('big', 'x'.repeat(70 * 1024)), { name: 'LanternClientError', code: 1003, error: 'too_large', retry: false });
  t.equal(server.framesOfType('send').length, 0, 'never put on the wire');
  t.equal((await client.sendText('big', 'small')).seq, 1, 'the next send still goes out');
  t.same(rec.disconnected, []);
});
