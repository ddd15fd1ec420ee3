// hello → welcome, and every way a hello can be refused (close codes per PROTOCOL.md).
import t, { type Test } from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, base64url } from 'jose';
import { TEST_SECRET, TestClient, connectUser, startTestServer } from './test-support.ts';

const secretKey = new TextEncoder().encode(TEST_SECRET);
const now = () => Math.floor(Date.now() / 1000);

t.test('hello with a valid token gets welcome with the negotiated version, ids and limits', async (t) => {
  const server = await startTestServer({ ratePerSec: 40, rateBurst: 80 });
  t.teardown(() => server.close());
  const client = new TestClient(server.url);
  t.teardown(() => client.close());
  const welcome = await client.hello(await server.token('alice'), 'phone', [7, 1, 3]);
  t.match(welcome, { t: 'welcome', v: 1, user: 'alice', device: 'phone', epoch: 'epoch-test' });
  t.type(welcome['session'], 'string');
  t.ok(Math.abs((welcome['ts'] as number) - Date.now()) < 5000, 'ts is server time');
  t.same(welcome['limits'], { maxFrameBytes: 65536, ratePerSec: 40, rateBurst: 80, maxSyncPage: 1000, maxGroupMembers: 500 });
  t.same(server.engine.connectedLog, [{ user: 'alice', device: 'phone', session: welcome['session'] }]);
  t.match(await client.request('ping'), { t: 'res', data: { ts: Number } });
  t.match(await client.request('hello', { v: [1], token: 'x', device: 'phone' }), { t: 'err', error: 'duplicate_hello', code: 1005 });
  client.close();
  await client.waitClose();
  await t.resolveMatch(waitFor(() => server.engine.disconnectedLog.length === 1 || undefined), true);
  t.same(server.engine.disconnectedLog[0], server.engine.connectedLog[0], 'engine.disconnected gets the same session');
});

t.test('requests before welcome get not_ready; no engine call', async (t) => {
  const server = await startTestServer();
  t.teardown(() => server.close());
  const client = new TestClient(server.url);
  t.teardown(() => client.close());
  await client.opened;
  t.match(await client.request('ping'), { t: 'err', error: 'not_ready', code: 1004 });
  t.equal(server.engine.requests.length, 0);
});

t.test('no common protocol version closes 4003', async (t) => {
  const server = await startTestServer();
  t.teardown(() => server.close());
  const client = new TestClient(server.url);
  await client.opened;
  client.send({ t: 'hello', v: [2, 3], token: await server.token('alice'), device: 'd' });
  t.equal(await client.waitClose(), 4003);
  t.equal(server.engine.connectedLog.length, 0);
});

async function closeCodeFor(t: Test, token: string, overrides = {}): Promise<number> {
  const server = await startTestServer(overrides);
  t.teardown(() => server.close());
  const client = new TestClient(server.url);
  await client.opened;
  client.send({ t: 'hello', v: [1], token, device: 'd' });
  const code = await client.waitClose();
  t.equal(server.engine.connectedLog.length, 0, 'engine never sees a refused device');
  return code;
}

t.test('tokens that are not acceptable close 4001', async (t) => {
  const exp = now() + 300;
  const sign = (claims: object, key = secretKey) => new SignJWT(claims as never).setProtectedHeader({ alg: 'HS256' }).sign(key);
  t.equal(await closeCodeFor(t, await sign({ sub: 'alice', aud: 'lantern', exp }, new TextEncoder().encode('another-secret-of-enough-length-000000'))), 4001, 'bad signature');
  t.equal(await closeCodeFor(t, await sign({ sub: 'alice', aud: 'other', exp })), 4001, 'wrong audience');
  t.equal(await closeCodeFor(t, await sign({ sub: 'alice', aud: 'lantern' })), 4001, 'no exp');
  t.equal(await closeCodeFor(t, await sign({ aud: 'lantern', exp })), 4001, 'no sub');
  t.equal(await closeCodeFor(t, await sign({ sub: 'x'.repeat(129), aud: 'lantern', exp })), 4001, 'sub too long');
  const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }));
  const payload = base64url.encode(JSON.stringify({ sub: 'alice', aud: 'lantern', exp }));
  t.equal(await closeCodeFor(t, `${header}.${payload}.`), 4001, 'alg none');
  t.equal(await closeCodeFor(t, 'not-a-jwt'), 4001, 'garbage');
});

t.test('an expired token closes 4200', async (t) => {
  const token = await new SignJWT({ sub: 'alice', aud: 'lantern', exp: now() - 60 }).setProtectedHeader({ alg: 'HS256' }).sign(secretKey);
  t.equal(await closeCodeFor(t, token), 4200);
});

t.test('EdDSA tokens verify against the configured Ed25519 public key; HS256 is then refused', async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const server = await startTestServer({ jwtSecret: undefined, jwtPublicKey: pem });
  t.teardown(() => server.close());
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'EdDSA' }).setSubject('bob').setAudience('lantern').setExpirationTime('5m').sign(privateKey);
  const client = new TestClient(server.url);
  t.teardown(() => client.close());
  t.match(await client.hello(token), { t: 'welcome', user: 'bob' });
  const hs = new TestClient(server.url);
  await hs.opened;
  hs.send({ t: 'hello', v: [1], token: await server.token('bob'), device: 'd' });
  t.equal(await hs.waitClose(), 4001, 'HS256 token with no shared secret configured');
});

t.test('no hello within helloTimeoutMs closes 4100; a completed hello is not closed', async (t) => {
  const server = await startTestServer({ helloTimeoutMs: 300 });
  t.teardown(() => server.close());
  const idle = new TestClient(server.url);
  const { client } = await connectUser(server, 'alice');
  t.teardown(() => client.close());
  t.equal(await idle.waitClose(), 4100);
  // The authenticated client outlived the timer and still gets answers.
  t.match(await client.request('ping'), { t: 'res' });
});

function waitFor<T>(check: () => T | undefined, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const poll = () => {
      const v = check();
      if (v !== undefined) resolve(v);
      else if (Date.now() > deadline) reject(new Error('condition not met'));
      else setImmediate(poll);
    };
    poll();
  });
}
