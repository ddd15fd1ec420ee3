// The per-user send limit: shared by the user's devices, never applied to resends of committed
// messages, and failing open (logged) when the limiter is unreachable.
import t from 'tap';
import { LanternError } from '../protocol/errors.ts';
import { MemoryChatStore } from '../storage/memory/chat-store.ts';
import { MemoryPresenceRegistry } from '../storage/memory/presence-registry.ts';
import { MemoryRateLimiter } from '../storage/memory/rate-limiter.ts';
import { createChatEngine } from './chat-engine.ts';
import type { RateLimiter } from './ports.ts';
import { ManualClock, RecordingDelivery } from './test/harness.ts';

function setup(limiter: RateLimiter, warnings: object[] = []) {
  const engine = createChatEngine({
    store: new MemoryChatStore(), presence: new MemoryPresenceRegistry(), delivery: new RecordingDelivery(), sendLimiter: limiter,
    log: { debug() {}, info() {}, warn: (o) => { warnings.push(o); }, error() {} },
  });
  const dev = (user: string, device: string) => ({ user, device, session: `${user}-${device}` });
  const send = (user: string, device: string, conv: string, cid: string) =>
    engine.request(dev(user, device), 'send', { conv, cid, kind: 'text', body: { text: cid } });
  return { engine, dev, send };
}

t.test('a user\'s devices share one bucket; over it sends are refused with retryAfterMs and nothing committed', async (t) => {
  const clock = new ManualClock();
  const { engine, dev, send } = setup(new MemoryRateLimiter({ ratePerSec: 1, burst: 3 }, clock));
  const { conv } = await engine.request(dev('alice', 'phone'), 'group.create', { title: 'g', members: ['bob'] });
  await send('alice', 'phone', conv, 'a1');
  await send('alice', 'laptop', conv, 'a2');
  await send('alice', 'phone', conv, 'a3');
  const err = await send('alice', 'laptop', conv, 'a4').catch((e: unknown) => e);
  t.ok(err instanceof LanternError && err.error === 'rate_limited', 'the 4th send in a burst of 3 is refused');
  t.ok((err as LanternError).retryAfterMs! > 0 && (err as LanternError).retryAfterMs! <= 1000, 'with when to retry');
  t.equal((await send('alice', 'phone', conv, 'a3')).dup, true, 'a resend of a committed message is answered, not limited');
  t.equal((await send('bob', 'phone', conv, 'b1')).seq, 5, 'others are not affected; the refused send took no seq');
  clock.ms += 1000;
  t.equal((await send('alice', 'laptop', conv, 'a4')).seq, 6, 'after retryAfterMs the send goes through');
});

t.test('an unreachable limiter lets sends through and says so once', async (t) => {
  const warnings: object[] = [];
  const broken: RateLimiter = { ratePerSec: 1, burst: 1, take: async () => { throw new Error('ECONNREFUSED'); } };
  const { engine, dev, send } = setup(broken, warnings);
  const { conv } = await engine.request(dev('alice', 'phone'), 'group.create', { title: 'g', members: [] });
  for (let i = 0; i < 5; i++) await send('alice', 'phone', conv, `m${i}`);
  t.equal(warnings.length, 1, 'one warning, not one per send');
});
