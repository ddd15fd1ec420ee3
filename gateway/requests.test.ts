// Frames after welcome: replies, error frames for bad input (connection stays usable), and
// the limits that close a connection (protocol errors, frame size, flood).
import t from 'tap';
import { encodeFrame } from '../protocol/codec.ts';
import { connectUser, startTestServer } from './test-support.ts';

t.test('engine results become res; params are the frame minus t and id', async (t) => {
  const server = await startTestServer();
  t.teardown(() => server.close());
  const { client } = await connectUser(server, 'alice');
  t.teardown(() => client.close());
  const reply = await client.request('typing', { conv: 'g1', on: true, extra: 'kept' });
  t.same(reply['data'], { echo: { conv: 'g1', on: true, extra: 'kept' }, user: 'alice' });
});

t.test('LanternError becomes err with code/name/field; other errors become internal and are logged', async (t) => {
  const server = await startTestServer();
  t.teardown(() => server.close());
  const { client } = await connectUser(server, 'alice');
  t.teardown(() => client.close());
  t.same(await client.request('conv.info', { conv: 'nope' }), {
    t: 'err', id: 2, code: 3000, error: 'not_found', msg: 'no such conversation', retry: false, field: 'conv',
  });
  const internal = await client.request('send', { conv: 'c', cid: 'x1', kind: 'text', body: { text: 'hi' } });
  t.match(internal, { t: 'err', code: 5000, error: 'internal', retry: true });
  t.notMatch(internal['msg'], /disk on fire/, 'internal details stay in the log');
  const logged = server.log.entries.find((e) => e.level === 'error' && e.msg === 'request failed');
  t.ok(logged, 'the failure is logged');
  t.match(logged?.obj, { user: 'alice', t: 'send', err: { message: 'disk on fire' } });
});

t.test('bad frames get err frames and the same connection keeps working; others unaffected', async (t) => {
  const server = await startTestServer();
  t.teardown(() => server.close());
  const { client } = await connectUser(server, 'alice');
  const { client: other } = await connectUser(server, 'bob');
  t.teardown(() => { client.close(); other.close(); });
  const errOf = () => client.take((f) => f['t'] === 'err', 'an err frame');

  client.sendRaw(new Uint8Array([0xc1, 0xff, 0x00])); // 0xc1 is never valid msgpack
  t.match(await errOf(), { id: 0, error: 'bad_frame', code: 1000 });
  client.sendRaw(encodeFrame([1, 2, 3])); // not a map
  t.match(await errOf(), { id: 0, error: 'bad_frame' });
  client.sendRaw('{"t":"ping","id":9}');
  t.match(await errOf(), { id: 0, error: 'bad_frame', msg: /text/ });
  client.sendRaw(encodeFrame({ t: 'teleport', id: 11 }));
  t.match(await errOf(), { id: 11, error: 'unknown_type', code: 1001 });
  client.sendRaw(encodeFrame({ t: 'read', id: 12, conv: 'c' }));
  t.match(await errOf(), { id: 12, error: 'invalid_field', code: 1002, field: 'seq' });
  client.sendRaw(encodeFrame({ t: 'read', id: 13, conv: 'c', seq: 'seven' }));
  t.match(await errOf(), { id: 13, error: 'invalid_field', field: 'seq' });
  client.sendRaw(encodeFrame({ t: 'ping' }));
  t.match(await errOf(), { id: 0, error: 'invalid_field', field: 'id' });

  t.match(await client.request('ping'), { t: 'res', data: { ts: Number } }, 'same connection still answers');
  t.match(await other.request('ping'), { t: 'res' }, 'other connection unaffected');
  t.equal(client.closeCode, undefined);
  t.equal(server.gateway.metrics.errorsByName.get('bad_frame'), 3);
});

t.test('maxProtocolErrors invalid frames close the connection with 4000', async (t) => {
  const server = await startTestServer({ maxProtocolErrors: 5 });
  t.teardown(() => server.close());
  const { client } = await connectUser(server, 'alice');
  const { client: other } = await connectUser(server, 'bob');
  t.teardown(() => other.close());
  // Request errors from the engine (not_found) do not count.
  for (let i = 0; i < 6; i++) t.match(await client.request('conv.info', { conv: 'x' }), { error: 'not_found' });
  for (let i = 0; i < 4; i++) client.sendRaw(new Uint8Array([0xc1]));
  await client.until('4 errors', () => (client.frames.filter((f) => f['error'] === 'bad_frame').length === 4 ? true : undefined));
  t.equal(client.closeCode, undefined, 'still open after 4');
  client.sendRaw(new Uint8Array([0xc1]));
  t.equal(await client.waitClose(), 4000);
  t.match(await other.request('ping'), { t: 'res' });
});

t.test('a frame over maxFrameBytes closes with 1009', async (t) => {
  const server = await startTestServer({ maxFrameBytes: 1024 });
  t.teardown(() => server.close());
  const { client } = await connectUser(server, 'alice');
  const { client: other } = await connectUser(server, 'bob');
  t.teardown(() => other.close());
  client.sendRaw(encodeFrame({ t: 'typing', id: 5, conv: 'c', on: true, pad: 'x'.repeat(1100) }));
  t.equal(await client.waitClose(), 1009);
  // Far beyond the limit uWS cuts the TCP connection itself (no close frame: 1006).
  const { client: huge } = await connectUser(server, 'carol');
  huge.sendRaw(new Uint8Array(1024 * 4));
  t.not(await huge.waitClose(), 1000, 'grossly oversized frame closes the connection');
  t.match(await other.request('ping'), { t: 'res' }, 'others unaffected');
  t.equal(server.engine.requests.filter((r) => r.who.user !== 'bob').length, 0, 'oversized frames never reach the engine');
});

t.test('flooding: rate_limited errs with retryAfterMs and the request id, then 4102; others keep being served', async (t) => {
  const server = await startTestServer({ ratePerSec: 5, rateBurst: 10, floodCloseAfter: 30 });
  t.teardown(() => server.close());
  const { client } = await connectUser(server, 'alice'); // the hello took one token
  const { client: other } = await connectUser(server, 'bob');
  t.teardown(() => other.close());
  for (let i = 0; i < 100; i++) client.send({ t: 'ping', id: 100 + i });
  const code = await client.waitClose();
  t.equal(code, 4102);
  const ok = client.frames.filter((f) => f['t'] === 'res');
  const limited = client.frames.filter((f) => f['error'] === 'rate_limited');
  t.ok(ok.length >= 9 && ok.length <= 11, `about the burst was served (${ok.length})`);
  t.equal(limited.length, 29, 'floodCloseAfter-1 frames answered rate_limited, the next closes');
  t.match(limited[0], { code: 5001, retry: true, retryAfterMs: Number });
  t.ok((limited[0]!['retryAfterMs'] as number) > 0 && (limited[0]!['retryAfterMs'] as number) <= 200);
  t.equal(limited[0]!['id'], 100 + ok.length, 'the refused frame id is echoed');
  t.equal(server.engine.requests.filter((r) => r.who.user === 'alice').length, ok.length, 'refused frames never reach the engine');
  t.match(await other.request('ping'), { t: 'res' }, 'a second client is served');
  t.ok(server.gateway.metrics.rateLimitedFrames >= 30);
});
