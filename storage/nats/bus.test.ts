// The Bus contract against a real nats-server (private, free port), plus what only a network
// bus has: surviving a server restart.
import t from 'tap';
import { connect } from '@nats-io/transport-node';
import { startNats } from '../../test/support/infra.ts';
import { busContract } from '../contract/bus.contract.ts';
import { NatsBus } from './bus.ts';

const nats = await startNats();
t.teardown(() => nats.close());
const open = async () => new NatsBus(await connect({ servers: nats.url, reconnectTimeWait: 50, maxReconnectAttempts: -1 }));

busContract(t, 'nats bus', async () => {
  const a = await open();
  const b = await open();
  return { a, b, cleanup: async () => { await a.close(); await b.close(); } };
});

t.test('nats bus: subscriptions survive a nats-server restart (the client reconnects and resubscribes)', async (t) => {
  const a = await open();
  const b = await open();
  t.teardown(async () => { await a.close(); await b.close(); });
  const got: string[] = [];
  b.subscribe('restart.test', (d) => got.push(new TextDecoder().decode(d)));
  await b.flush();
  await nats.stop();
  await nats.start();
  // Publish until delivery resumes: the clients reconnect on their own schedule.
  const deadline = Date.now() + 10_000;
  while (got.length === 0) {
    if (Date.now() > deadline) throw new Error('no delivery after restart');
    a.publish('restart.test', new TextEncoder().encode('after'));
    await a.flush().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(got[0], 'after');
});
