// Smoke test of the chat-1to1 scenario against a real embedded Lantern (memory store):
// pairs become contacts, open their direct conversation, and every message reaches the peer.
import t from 'tap';
import { startBenchLantern } from '../lantern-server.ts';
import { runLoad } from './coordinator.ts';
import { DEFAULT_LOAD_SETTINGS } from './messages.ts';

t.test('chat-1to1 delivers every message to the peer', async (t) => {
  const lantern = await startBenchLantern('memory');
  t.teardown(() => lantern.close());
  const r = await runLoad({
    scenario: 'chat-1to1', url: lantern.url, chat: lantern.chat, clients: 4, workers: 2,
    load: { ...DEFAULT_LOAD_SETTINGS, mode: 'rate', ratePerSec: 400, warmupMs: 200, durationMs: 1000, drainMs: 2000 },
  });
  t.equal(r.workers, 2, 'one pair per worker');
  t.equal(r.errors, 0, `no errors (${r.errorSamples.join('; ')})`);
  t.ok(r.sent >= 300, `sent ${r.sent} of ~400 paced`);
  t.equal(r.delivered, r.sent, 'every message sent in the window reached the peer');
  t.equal(r.undelivered, 0);
  t.ok(r.p50Ms > 0 && r.p50Ms <= r.p99Ms && r.p99Ms <= r.maxMs, `0 < p50 ${r.p50Ms} <= p99 ${r.p99Ms} <= max ${r.maxMs}`);
});

t.test('an odd client count is rounded down to whole pairs', async (t) => {
  const lantern = await startBenchLantern('memory');
  t.teardown(() => lantern.close());
  const r = await runLoad({
    scenario: 'chat-1to1', url: lantern.url, chat: lantern.chat, clients: 3, workers: 2,
    load: { ...DEFAULT_LOAD_SETTINGS, mode: 'max', window: 2, warmupMs: 100, durationMs: 500, drainMs: 2000 },
  });
  t.equal(r.clients, 2);
  t.equal(r.workers, 1, 'no worker without a whole pair');
  t.ok(r.delivered > 0);
  t.equal(r.errors, 0, r.errorSamples.join('; '));
});
