// The driver with in-process fake clients: pacing, windows, counting and the drain.
import t from 'tap';
import { LoadDriver, nowMs, type Sender } from './driver.ts';
import { DEFAULT_LOAD_SETTINGS, type LoadSettings } from './messages.ts';

const quick: LoadSettings = { ...DEFAULT_LOAD_SETTINGS, warmupMs: 100, durationMs: 500, drainMs: 300 };

/** Fake clients that deliver each message after `delayMs` (or never, for indices in `lose`). */
function fakeClients(n: number, driver: () => LoadDriver, delayMs: number, lose = new Set<number>()) {
  const inFlight = new Array<number>(n).fill(0);
  let peak = 0;
  const senders: Sender[] = Array.from({ length: n }, (_, i) => ({
    send(stampMs: number) {
      if (lose.has(i)) return;
      inFlight[i]!++;
      peak = Math.max(peak, inFlight[i]!);
      setTimeout(() => { inFlight[i]!--; driver().delivered(i, stampMs); }, delayMs);
    },
    bufferedAmount: () => 0,
  }));
  return { senders, peak: () => peak };
}

t.test('open loop sends at the target rate and measures the delay', async (t) => {
  const rate = 2000;
  const driver = new LoadDriver({ ...quick, mode: 'rate', ratePerSec: rate }, rate, 4);
  const clients = fakeClients(4, () => driver, 5);
  const r = await driver.run(clients.senders);
  const expected = (rate * quick.durationMs) / 1000;
  t.ok(Math.abs(r.sent - expected) <= expected * 0.1, `sent ${r.sent} ~ ${expected}`);
  t.equal(r.delivered, r.sent, 'everything sent in the window was delivered');
  t.equal(r.undelivered, 0);
  t.equal(r.latency.count, r.delivered);
  // Node timers may fire up to ~1 ms early against performance.now().
  t.ok(r.latency.minMs >= 4, `latency ${r.latency.minMs} includes the 5 ms delay`);
});

t.test('max mode never exceeds the window per client', async (t) => {
  const driver = new LoadDriver({ ...quick, mode: 'max', window: 3 }, 0, 2);
  const clients = fakeClients(2, () => driver, 1);
  const r = await driver.run(clients.senders);
  t.ok(r.delivered > 0);
  t.equal(clients.peak(), 3);
  t.equal(r.undelivered, 0);
});

t.test('lost messages show up as undelivered and the drain is bounded', async (t) => {
  const driver = new LoadDriver({ ...quick, mode: 'max', window: 2 }, 0, 2);
  const clients = fakeClients(2, () => driver, 1, new Set([1]));
  const started = nowMs();
  const r = await driver.run(clients.senders);
  const took = nowMs() - started;
  t.equal(r.undelivered, 2, 'the silent client stalls with its window full');
  t.ok(took < quick.warmupMs + quick.durationMs + quick.drainMs + 300, `run ended in ${took.toFixed(0)} ms`);
});

t.test('errors are counted, sampled, and finish the refused send', async (t) => {
  const driver = new LoadDriver({ ...quick, mode: 'max', window: 1, durationMs: 200 }, 0, 1);
  let sends = 0;
  const r = await driver.run([{
    send() { sends++; if (sends <= 7) setImmediate(() => driver.failed(0, `refused ${sends}`)); },
    bufferedAmount: () => 0,
  }]);
  t.equal(r.errors, 7);
  t.equal(r.errorSamples.length, 5, 'only the first few descriptions are kept');
  t.equal(sends, 8, 'each refusal frees the window for the next send');
  t.equal(r.undelivered, 1, 'the eighth send is never answered');
});

t.test('open loop skips clients whose socket buffer is over the bound', async (t) => {
  const driver = new LoadDriver({ ...quick, mode: 'rate', ratePerSec: 1000, maxBufferedBytes: 10 }, 1000, 1);
  const r = await driver.run([{ send() { t.fail('must not send into a full buffer'); }, bufferedAmount: () => 11 }]);
  t.equal(r.sent, 0);
  t.ok(r.skipped > 0 && r.skipped === r.scheduled, `skipped ${r.skipped} of ${r.scheduled}`);
});

t.test('settings that cannot run are refused', async (t) => {
  t.throws(() => new LoadDriver({ ...quick, mode: 'rate' }, 0, 1), /positive rate/);
  t.throws(() => new LoadDriver({ ...quick, mode: 'max', window: 0 }, 0, 1), /window/);
});

t.test('fan-out: copies are counted and timed, the own copy completes the send, the drain waits for late copies', async (t) => {
  const driver = new LoadDriver({ ...quick, mode: 'max', window: 1, durationMs: 300 }, 0, 1);
  driver.expectCopiesPerSend(2);
  let lateCopy = false;
  const r = await driver.run([{
    send(stampMs: number) {
      setTimeout(() => { driver.deliveredCopy(stampMs); driver.completed(0, stampMs); }, 1);
      // The second copy arrives after the sender's own copy (another gateway).
      setTimeout(() => { lateCopy = true; driver.deliveredCopy(stampMs); }, 20);
    },
    bufferedAmount: () => 0,
  }]);
  t.ok(lateCopy, 'the drain waited for the last copy');
  t.ok(r.completed > 0, `completed ${r.completed}`);
  t.equal(r.delivered, 2 * r.completed, 'two copies per message of the window');
  t.equal(r.latency.count, r.delivered);
  t.equal(r.undelivered, 0);
});

t.test('fan-out: copies that never arrive are undelivered', async (t) => {
  const driver = new LoadDriver({ ...quick, mode: 'max', window: 1, durationMs: 100, drainMs: 100 }, 0, 1);
  driver.expectCopiesPerSend(3);
  let sends = 0;
  const r = await driver.run([{
    send(stampMs: number) { sends++; setImmediate(() => { driver.deliveredCopy(stampMs); driver.completed(0, stampMs); }); },
    bufferedAmount: () => 0,
  }]);
  t.equal(r.undelivered, 2 * sends, 'two of three copies missing per send');
});

t.test('reactive requests: counted and timed by send time, the drain waits for answers and a quiet spell', async (t) => {
  const driver = new LoadDriver({ ...quick, mode: 'max', window: 1, durationMs: 300, drainMs: 3000 }, 0, 0);
  driver.expectReactive();
  let answered = 0, late = false;
  const request = (delayMs: number, then?: () => void): void => {
    driver.reactiveSent();
    const sentAt = nowMs();
    setTimeout(() => { answered++; driver.reactiveAnswered(sentAt); then?.(); }, delayMs);
  };
  // Requests start during the run and one more, late in the drain's quiet spell, in reaction to an answer.
  const timer = setInterval(() => request(5), 20);
  setTimeout(() => clearInterval(timer), quick.warmupMs + 300);
  setTimeout(() => request(5, () => setTimeout(() => request(5, () => { late = true; }), 600)), quick.warmupMs + 300);
  const r = await driver.run([]);
  t.ok(late, 'the drain waited out a request made 600 ms after the previous answer');
  t.ok(r.delivered > 0 && r.delivered < answered, `${r.delivered} of ${answered} answers were to requests of the window`);
  t.equal(r.latency.count, r.delivered);
  t.ok(r.latency.minMs >= 4, `latency ${r.latency.minMs} includes the 5 ms delay`);
  t.equal(r.undelivered, 0);
});

t.test('reactive requests never answered or refused show up as undelivered and errors', async (t) => {
  const driver = new LoadDriver({ ...quick, mode: 'max', window: 1, durationMs: 100, drainMs: 200 }, 0, 0);
  driver.expectReactive();
  setTimeout(() => { driver.reactiveSent(); driver.reactiveSent(); driver.reactiveSent(); driver.reactiveFailed('refused'); }, quick.warmupMs);
  const r = await driver.run([]);
  t.equal(r.undelivered, 2);
  t.equal(r.errors, 1);
  t.same(r.errorSamples, ['refused']);
});
