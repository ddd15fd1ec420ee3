// The SDK against a real server, through a proxy that simulates a network outage.
import t from 'tap';
import { WebSocket } from 'ws';
import { LanternClient, type Message } from '../sdk/index.ts';
import { startTestServer } from './support/server.ts';
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

t.test('outage: the SDK reconnects, resyncs every missed message once, and flushes its outbox', async (t) => {
  const server = await startTestServer({ ratePerSec: 1000, rateBurst: 1000 });
  const proxy = await TcpProxy.start(server.port);
  t.teardown(async () => { await proxy.close(); await server.close(); });
  const client = (user: string, url: string) => new LanternClient({
    url, token: () => server.token(user), device: 'phone', WebSocket: WebSocket as never,
    backoff: { initialMs: 20, maxMs: 200 },
  });
  const alice = client('alice', server.url);
  const bob = client('bob', `ws://127.0.0.1:${proxy.port}/ws`);
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
