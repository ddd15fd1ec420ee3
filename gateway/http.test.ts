// Health, readiness, metrics and graceful shutdown.
import t from 'tap';
import { loadSettings } from './config.ts';
import { createTokenVerifier } from './auth.ts';
import { createGateway } from './server.ts';
import { FakeEngine, TEST_SECRET, captureLogger, connectUser, startTestServer } from './test-support.ts';

t.test('healthz, readyz and metrics', async (t) => {
  const server = await startTestServer();
  t.teardown(() => server.close());
  const health = await fetch(`${server.httpUrl}/healthz`);
  t.equal(health.status, 200);
  t.equal(await health.text(), 'ok');
  t.equal((await fetch(`${server.httpUrl}/readyz`)).status, 200);
  t.equal((await fetch(`${server.httpUrl}/nope`)).status, 404);

  const { client } = await connectUser(server, 'alice');
  t.teardown(() => client.close());
  await client.request('ping');
  await client.request('conv.info', { conv: 'x' });
  const res = await fetch(`${server.httpUrl}/metrics`);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /text\/plain/);
  const text = await res.text();
  t.match(text, /^# HELP lantern_ready/m);
  t.match(text, /^lantern_connections_open 1$/m);
  t.match(text, /^lantern_connections_authenticated 1$/m);
  t.match(text, /^lantern_frames_in_total 3$/m, 'hello + 2 requests');
  t.match(text, /^lantern_frames_out_total 3$/m);
  t.match(text, /^lantern_errors_total\{error="not_found",code="3000"\} 1$/m);
  t.match(text, /^lantern_rate_limited_frames_total 0$/m);
  t.match(text, /^lantern_lag_events_total 0$/m);
});

t.test('readyz is 503 until an engine is attached', async (t) => {
  const settings = loadSettings({ overrides: { port: 0, jwtSecret: TEST_SECRET } });
  const verifier = createTokenVerifier({ secret: TEST_SECRET, audience: 'lantern', clockToleranceSec: 0 });
  const gateway = createGateway({ settings, verifier, log: captureLogger() });
  t.teardown(() => gateway.close());
  const port = await gateway.listen();
  const before = await fetch(`http://127.0.0.1:${port}/readyz`);
  t.equal(before.status, 503);
  t.equal(await before.text(), 'starting');
  t.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200, 'healthz answers while starting');
  gateway.attachEngine(new FakeEngine());
  t.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
});

t.test('close: sockets get 1001, engine.disconnected then engine.close, listener stops', async (t) => {
  const server = await startTestServer();
  const { client: a } = await connectUser(server, 'alice');
  const { client: b } = await connectUser(server, 'bob', 'phone');
  const closed = server.close();
  t.equal(await a.waitClose(), 1001);
  t.equal(await b.waitClose(), 1001);
  await closed;
  t.equal(server.engine.disconnectedLog.length, 2, 'every device disconnected before the engine closed');
  t.equal(server.engine.closed, true);
  await t.rejects(fetch(`${server.httpUrl}/healthz`), 'no longer listening');
  await server.close(); // idempotent
});
