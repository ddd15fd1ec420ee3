// The SDK against a real deployment in each mode, through a proxy that simulates a network outage
// (in distributed mode alice and bob use different gateways).
import t from 'tap';
import { WebSocket } from 'ws';
import { LanternClient, type Message } from '../sdk/index.ts';
import { startDeployment, testModes } from './support/deployment.ts';
import { TcpProxy } from './support/tcp-proxy.ts';

function until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      if (pred()) { clearInterval(poll); resolve(); } else if (Date.now() - started > timeoutMs) {
        clearInterval(poll);
        reject(new Error(`timed out waiting for ${what}`));
      }
    }, 5);
  });
}

for (const mode of testModes()) {
  t.test(mode, async (t) => {
    t.test('outage: the SDK reconnects, resyncs every missed message once, and flushes its outbox', async (t) => {
      const d = await startDeployment(mode, { ratePerSec: 1000, rateBurst: 1000 });
      // Bob reaches the last gateway through the proxy; alice uses the first one directly.
      const proxy = await TcpProxy.start(Number(new URL(d.urls.at(-1)!).port));
      const client = (user: string, url: string) => new LanternClient({
        url, token: () => d.token(user), device: 'phone', WebSocket: WebSocket as never,
        backoff: { initialMs: 20, maxMs: 200 },
      });
      const alice = client('alice', d.urls[0]!);
      const bob = client('bob', `ws://127.0.0.1:${proxy.port}/ws`);
      // Clients first, even after a failed assertion: a live client keeps reconnecting (and the process alive).
      t.teardown(async () => { await alice.close(); await bob.close(); await proxy.close(); await d.close(); });
      const bobErrors: string[] = [];
      bob.on('error', ({ context }) => bobErrors.push(context));
      const bobGot: Message[] = [];
      bob.on('message', (m) => bobGot.push(m));
      const aliceGot: Message[] = [];
      alice.on('message', (m) => aliceGot.push(m));
      await alice.connect();
      await bob.connect();

      await alice.requestContact('bob');
      await bob.acceptContact('alice');
      const { conv } = await alice.direct('bob');
      const { conv: group } = await alice.createGroup('g', ['bob']);
      await alice.sendText(conv, 'before');
      await until(() => bobGot.length === 2, 'live delivery');

      let reconnects = 0;
      bob.on('connected', () => reconnects++);
      proxy.outage();
      const sent = [];
      for (let i = 0; i < 25; i++) sent.push(await alice.sendText(i % 2 ? conv : group, `during ${i}`));
      const bobSend = bob.sendText(conv, 'queued while offline');
      proxy.restore();

      const ack = await bobSend;
      t.equal(ack.dup, false, 'the outbox delivered the offline send once');
      await until(() => bobGot.length === 2 + 25 + 1, 'resync');
      t.ok(reconnects >= 1, 'bob reconnected');
      const keys = bobGot.map((m) => `${m.conv}#${m.seq}`);
      t.equal(new Set(keys).size, keys.length, 'no message twice');
      for (const c of [conv, group]) {
        const seqs = bobGot.filter((m) => m.conv === c).map((m) => m.seq);
        t.same(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), `${c}: every seq in order from 1`);
      }
      await until(() => aliceGot.some((m) => m.from === 'bob'), 'alice gets the queued send');
      t.equal(aliceGot.filter((m) => m.from === 'bob').length, 1, 'stored once');
      t.equal(sent.length, 25);
      await alice.close();
      await bob.close();
    });
  });
}
