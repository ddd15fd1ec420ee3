// Smoke test of the chat-group scenario against a real embedded Lantern (memory store): groups
// are created, every member gets every other sender's message, and the senders' windows turn.
import t from 'tap';
import { startBenchLantern } from '../lantern-server.ts';
import { runLoad } from './coordinator.ts';
import { DEFAULT_LOAD_SETTINGS } from './messages.ts';

t.test('chat-group delivers each message to every other member', async (t) => {
  const lantern = await startBenchLantern('memory');
  t.teardown(() => lantern.close());
  const size = 5, senders = 2;
  const r = await runLoad({
    scenario: 'chat-group', url: lantern.url, chat: lantern.chat, clients: 10, workers: 2, group: { size, senders },
    load: { ...DEFAULT_LOAD_SETTINGS, mode: 'rate', ratePerSec: 200, warmupMs: 200, durationMs: 1000, drainMs: 2000 },
  });
  t.equal(r.workers, 2, 'one group per worker');
  t.equal(r.errors, 0, `no errors (${r.errorSamples.join('; ')})`);
  t.ok(r.sent >= 150, `sent ${r.sent} of ~200 paced`);
  t.equal(r.delivered, r.sent * (size - 1), 'every message sent in the window reached the other members');
  t.equal(Math.round(r.completedPerSec), Math.round(r.sent / (r.measuredMs / 1000)), 'every send completed (own copy back)');
  t.equal(r.undelivered, 0);
});

t.test('max mode keeps the window turning on the sender\'s own copy', async (t) => {
  const lantern = await startBenchLantern('memory');
  t.teardown(() => lantern.close());
  const r = await runLoad({
    scenario: 'chat-group', url: lantern.url, chat: lantern.chat, clients: 7, workers: 2, group: { size: 3, senders: 1 },
    load: { ...DEFAULT_LOAD_SETTINGS, mode: 'max', window: 2, warmupMs: 100, durationMs: 500, drainMs: 2000 },
  });
  t.equal(r.clients, 6, 'rounded down to whole groups');
  t.ok(r.completedPerSec > 0 && r.delivered > 0, `completed ${r.completedPerSec}/s, delivered ${r.delivered}`);
  t.equal(r.errors, 0, r.errorSamples.join('; '));
  t.equal(r.undelivered, 0);
});
