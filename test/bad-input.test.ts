// Bad input over a real connection, in each deployment mode: each case gets its documented error
// frame or close code, the same connection (where it stays open) and everyone else keep being
// served, and nothing already acked is lost. Limits are gateway settings, given to every gateway.
import t from 'tap';
import { encodeFrame } from '../protocol/codec.ts';
import { startDeployment, testModes } from './support/deployment.ts';
import { befriend } from './support/server.ts';
import { mintToken, WireClient } from './support/wire-client.ts';

for (const mode of testModes()) {
  t.test(mode, async (t) => {
    t.test('bad frames on a live connection', async (t) => {
      const d = await startDeployment(mode, { maxFrameBytes: 4096, ratePerSec: 20, rateBurst: 20, floodCloseAfter: 40 });
      t.teardown(() => d.close());
      // Round-robin: alice and mallory on one gateway, bob and bigsender on the other.
      const alice = await d.connect('alice');
      const bob = await d.connect('bob');
      const conv = await befriend(alice, 'alice', bob, 'bob');
      const acked = [await alice.text(conv, 'one'), await alice.text(conv, 'two')];

      const expectErr = async (send: () => void, error: string, field?: string) => {
        const before = alice.frames.length;
        send();
        const f = await alice.waitFor((x) => alice.frames.indexOf(x) >= before && x.t === 'err');
        t.match(f, { t: 'err', error, ...(field ? { field } : {}) }, `${error}${field ? ` (${field})` : ''}`);
      };
      await expectErr(() => alice.sendRaw(Buffer.from([0xc1])), 'bad_frame');
      await expectErr(() => alice.sendRaw('{"t":"ping"}'), 'bad_frame');
      await expectErr(() => alice.sendRaw(Buffer.from('81a95f5f70726f746f5f5f01', 'hex')), 'bad_frame');
      await expectErr(() => alice.sendFrame({ t: 'explode', id: 50 }), 'unknown_type');
      await expectErr(() => alice.sendFrame({ t: 'send', id: 51, conv, kind: 'text', body: { text: 'x' } }), 'invalid_field', 'cid');
      await expectErr(() => alice.sendFrame({ t: 'read', id: 52, conv, seq: 'ten' }), 'invalid_field', 'seq');
      await expectErr(() => alice.sendFrame({ t: 'history', id: 53, conv, limit: -1 }), 'invalid_field', 'limit');
      t.equal((await alice.req('ping', {})).ts > 0, true, 'the same connection still answers');

      const mallory = await d.connect('mallory');
      await t.rejects(mallory.text(conv, 'let me in'), { name: 'WireError', error: 'not_member' });

      // Flood: frames past the bucket are refused with retryAfterMs; then the connection is closed.
      // The flood goes on until the close: on a loaded machine a token may refill mid-burst and
      // restart the count of refused frames in a row.
      let pingId = 1000;
      const burst = () => { for (let i = 0; i < 60; i++) mallory.sendFrame({ t: 'ping', id: pingId++ }); };
      burst();
      const flood = setInterval(burst, 100);
      try {
        const limited = await mallory.waitFor((f) => f.t === 'err' && f.error === 'rate_limited');
        t.ok(limited.t === 'err' && (limited.retryAfterMs ?? 0) > 0, 'rate_limited says when to retry');
        t.equal((await mallory.closedWithin(10_000)).code, 4102, 'a sustained flood is closed with 4102');
      } finally {
        clearInterval(flood);
      }
      t.equal((await bob.req('ping', {})).ts > 0, true, 'others are unaffected');

      // Oversized frame: the WebSocket layer closes with 1009.
      const big = await d.connect('bigsender');
      big.sendFrame({ t: 'ping', id: 1, pad: 'x'.repeat(8000) });
      t.equal((await big.closedWithin(10_000)).code, 1009);

      const { msgs } = await bob.req('history', { conv });
      t.same(msgs.map((m) => m.seq), acked.map((a) => a.seq), 'every acked message is still there');
      await alice.close();
      await bob.close();
    });

    t.test('authentication failures close with documented codes', async (t) => {
      const d = await startDeployment(mode, { helloTimeoutMs: 300 });
      t.teardown(() => d.close());
      // Each case on the next gateway in turn, so every gateway's handshake is exercised.
      let turn = 0;
      const nextUrl = () => d.urls[turn++ % d.urls.length]!;
      const cases: Array<[string, () => Promise<string>, number]> = [
        ['wrong signature', () => mintToken('not-the-secret', 'alice'), 4001],
        ['wrong audience', () => mintToken(d.secret, 'alice', 3600, 'other-app'), 4001],
        ['expired', () => mintToken(d.secret, 'alice', -60), 4200],
        ['garbage', async () => 'not.a.jwt', 4001],
      ];
      for (const [name, make, code] of cases) {
        const c = await WireClient.open(nextUrl());
        await t.rejects(c.hello(await make(), 'phone'));
        t.equal((await c.closedWithin(10_000)).code, code, name);
      }
      const silent = await WireClient.open(nextUrl());
      t.equal((await silent.closedWithin(10_000)).code, 4100, 'no hello in time');
      const early = await WireClient.open(nextUrl());
      early.sendFrame({ t: 'ping', id: 1 });
      t.match(await early.waitFor((f) => f.t === 'err'), { error: 'not_ready' });
      early.ws.send(encodeFrame({ t: 'hello', id: 2, v: [99], token: await d.token('alice'), device: 'x' }));
      t.equal((await early.closedWithin(10_000)).code, 4003, 'no common protocol version');
      const ok = await d.connect('alice');
      t.equal(ok.welcome.user, 'alice', 'the server keeps serving');
      await ok.close();
    });
  });
}
