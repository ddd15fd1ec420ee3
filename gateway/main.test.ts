// The composition root end to end: startLantern with the real engine and memory store, dev
// auth, events delivered through uWS topics to every device of a user.
import t from 'tap';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintToken } from './auth.ts';
import { startLantern } from './main.ts';
import { FakeEngine, TestClient, captureLogger } from './test-support.ts';

const quiet = { env: {}, log: captureLogger() };

t.test('dev auth, ephemeral port, real engine: contacts, direct conversation, msg to all devices', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'lantern-main-'));
  const log = captureLogger();
  const lantern = await startLantern({ port: 0, store: 'memory', dataDir }, { env: {}, log });
  t.teardown(() => lantern.close());
  t.ok(lantern.port > 0);
  t.equal(lantern.url, `ws://127.0.0.1:${lantern.port}/ws`);
  t.type(lantern.epoch, 'string');
  t.equal(lantern.devSecret, (await readFile(join(dataDir, 'dev-secret'), 'utf8')).trim());
  t.ok(log.entries.some((e) => e.level === 'warn' && /DEV AUTH/.test(e.msg ?? '') && /lantern token --user alice/.test(e.msg ?? '')), 'dev auth warning with the mint command');
  t.match(log.entries.find((e) => e.msg === 'listening')?.obj, { host: '127.0.0.1', port: lantern.port, url: lantern.url, store: 'memory', dataDir });
  t.equal((await fetch(`http://127.0.0.1:${lantern.port}/readyz`)).status, 200);

  const token = (user: string) => mintToken({ secret: lantern.devSecret!, user, ttlSec: 60 });
  const alice = new TestClient(lantern.url);
  const alicePhone = new TestClient(lantern.url);
  const bob = new TestClient(lantern.url);
  t.teardown(() => { alice.close(); alicePhone.close(); bob.close(); });
  t.match(await alice.hello(await token('alice'), 'laptop'), { t: 'welcome', user: 'alice', epoch: lantern.epoch });
  await alicePhone.hello(await token('alice'), 'phone');
  await bob.hello(await token('bob'), 'laptop');

  t.match(await alice.request('contact.request', { user: 'bob' }), { t: 'res' });
  t.match(await bob.request('contact.accept', { user: 'alice' }), { t: 'res' });
  const conv = await alice.request('conv.direct', { user: 'bob' });
  t.match(conv, { t: 'res', data: { conv: String, type: 'direct', peer: 'bob' } });
  const convId = (conv['data'] as { conv: string }).conv;
  const sent = await alice.request('send', { conv: convId, cid: 'c-1', kind: 'text', body: { text: 'hello bob' } });
  t.match(sent, { t: 'res', data: { conv: convId, seq: Number, dup: false } });
  const isMsg = (f: Record<string, unknown>) => f['t'] === 'msg' && (f['m'] as { cid?: string }).cid === 'c-1';
  for (const [name, c] of [['bob', bob], ['alice laptop', alice], ['alice phone', alicePhone]] as const) {
    const ev = await c.take(isMsg, `msg on ${name}`);
    t.match(ev, { m: { conv: convId, from: 'alice', body: { text: 'hello bob' } } }, `${name} gets the msg event`);
  }
  t.match(await alice.request('send', { conv: convId, cid: 'c-1', kind: 'text', body: { text: 'hello bob' } }), { data: { dup: true } });
});

t.test('configured secret: no dev secret file; settings come from env and overrides', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'lantern-main-'));
  const secret = 'configured-secret-0123456789abcdef-xyz';
  const lantern = await startLantern({ port: 0, dataDir }, {
    env: { LANTERN_STORE: 'memory', LANTERN_JWT_SECRET: secret, LANTERN_JWT_AUDIENCE: 'chat' }, log: captureLogger(),
  });
  t.teardown(() => lantern.close());
  t.equal(lantern.devSecret, undefined);
  await t.rejects(readFile(join(dataDir, 'dev-secret')), { code: 'ENOENT' });
  t.equal(lantern.settings.jwtAudience, 'chat');
  const c = new TestClient(lantern.url);
  t.teardown(() => c.close());
  t.match(await c.hello(await mintToken({ secret, user: 'carol', ttlSec: 60, audience: 'chat' })), { t: 'welcome', user: 'carol' });
});

t.test('an injected engine factory gets the gateway delivery and engine settings; close closes it', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'lantern-main-'));
  let fake: FakeEngine | undefined;
  let seenSettings: unknown;
  const lantern = await startLantern({ port: 0, store: 'memory', dataDir, maxGroupMembers: 9 }, {
    ...quiet,
    createEngine: (deps) => { seenSettings = deps.settings; fake = new FakeEngine(); return fake; },
  });
  t.match(seenSettings, { maxGroupMembers: 9, syncPageMax: 1000 });
  t.equal(lantern.epoch, 'epoch-test');
  await lantern.close();
  t.equal(fake?.closed, true);
  await t.rejects(fetch(`http://127.0.0.1:${lantern.port}/healthz`));
});

t.test('invalid settings reject before anything listens', async (t) => {
  await t.rejects(startLantern({ port: 0 }, { env: { LANTERN_RATE_BURST: '0' }, log: captureLogger() }), { name: 'ConfigError', message: /LANTERN_RATE_BURST \/ --rate-burst/ });
});

t.test('lmdb store: data and epoch survive a restart on the same dataDir', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'lantern-main-'));
  const first = await startLantern({ port: 0, store: 'lmdb', dataDir }, quiet);
  const token = await mintToken({ secret: first.devSecret!, user: 'alice', ttlSec: 60 });
  const c1 = new TestClient(first.url);
  await c1.hello(token);
  const group = await c1.request('group.create', { title: 'kept', members: ['bob'] });
  t.match(group, { t: 'res', data: { type: 'group', title: 'kept' } });
  await first.close();
  t.equal(await c1.waitClose(), 1001);

  const second = await startLantern({ port: 0, store: 'lmdb', dataDir }, quiet);
  t.teardown(() => second.close());
  t.equal(second.epoch, first.epoch, 'same data set, same epoch');
  t.equal(second.devSecret, first.devSecret, 'dev secret reused');
  const c2 = new TestClient(second.url);
  t.teardown(() => c2.close());
  await c2.hello(token);
  const list = await c2.request('conv.list');
  t.match(list, { t: 'res', data: { convs: [{ title: 'kept' }] } });
});
