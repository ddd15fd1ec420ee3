// Smoke test: the multi-process generator against the raw uWS echo baseline, both modes.
import t, { type Test } from 'tap';
import { start } from '../baseline/uws-echo.ts';
import { runLoad, splitEvenly } from './coordinator.ts';
import { DEFAULT_LOAD_SETTINGS } from './messages.ts';

const short = { ...DEFAULT_LOAD_SETTINGS, warmupMs: 200, durationMs: 1000, drainMs: 1000 };

function checkSane(t: Test, r: Awaited<ReturnType<typeof runLoad>>): void {
  t.ok(r.delivered > 0, `delivered ${r.delivered} > 0`);
  t.ok(r.sent > 0, `sent ${r.sent} > 0`);
  t.ok(r.msgsPerSec > 0, 'msgs/s > 0');
  t.equal(r.errors, 0, `no errors (${r.errorSamples.join('; ')})`);
  t.equal(r.undelivered, 0, 'every echo came back');
  t.ok(r.p50Ms > 0 && r.p50Ms <= r.p90Ms && r.p90Ms <= r.p99Ms && r.p99Ms <= r.maxMs, `0 < p50 ${r.p50Ms} <= p90 ${r.p90Ms} <= p99 ${r.p99Ms} <= max ${r.maxMs}`);
  t.ok(r.maxMs < 5000, 'no latency beyond the run itself');
}

t.test('splitEvenly spreads the remainder over the first parts', async (t) => {
  t.same(splitEvenly(7, 3), [3, 2, 2]);
  t.same(splitEvenly(4, 2), [2, 2]);
});

t.test('echo scenario against the uWS baseline', async (t) => {
  const server = await start();
  t.teardown(() => server.close());

  t.test('max rate, two workers', async (t) => {
    const r = await runLoad({ scenario: 'echo', url: server.url, clients: 6, workers: 2, load: { ...short, mode: 'max', window: 4 } });
    t.equal(r.workers, 2);
    t.equal(r.clients, 6);
    checkSane(t, r);
  });

  t.test('open loop delivers about the target rate', async (t) => {
    const rate = 2000;
    const r = await runLoad({ scenario: 'echo', url: server.url, clients: 4, workers: 2, load: { ...short, mode: 'rate', ratePerSec: rate } });
    checkSane(t, r);
    t.equal(r.targetRatePerSec, rate);
    t.ok(r.msgsPerSec > rate * 0.8 && r.msgsPerSec < rate * 1.2, `msgs/s ${r.msgsPerSec.toFixed(0)} within 20% of ${rate}`);
  });
});

t.test('a server that is not there fails the run instead of hanging', async (t) => {
  const server = await start();
  const url = server.url;
  await server.close();
  await t.rejects(runLoad({ scenario: 'echo', url, clients: 2, workers: 1, load: short, setupTimeoutMs: 3000 }), /load worker 0 failed/);
});
