// Smoke test of `npm run bench -- chat` and `-- fanout` at a tiny scale: every default target (raw
// uWS, Socket.IO, Centrifugo, embedded Lantern) driven by the same generator, the results file
// with every row, ratios to the raw uWS row, and the SLO gates. It checks that each target carried
// the load without losing or duplicating a copy, never how fast it was. Centrifugo is built first
// (bench/peers/install-centrifugo.sh: minutes with `go install` the first time, cached after).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { chatPeersBench, fanoutPeersBench, formatPeers, type PeerFigures, type PeersBody } from './peers-bench.ts';
import { installCentrifugo } from './peers/centrifugo.ts';

// The first `go install` of Centrifugo on a busy 2-core machine; cached runs take seconds.
t.setTimeout(20 * 60_000);

const TARGETS = ['raw-uws', 'socketio', 'centrifugo', 'lantern-embedded'] as const;
const LOAD = { warmupMs: 200, durationMs: 1000, drainMs: 3000, window: 2 };

async function outDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lantern-bench-results-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The row ran, carried load, and every delivery the window's sends owed arrived exactly once. */
function checkRow(t: Test, body: PeersBody, name: string, copies: number): PeerFigures | undefined {
  const p = body.results[name];
  if (p === undefined || 'error' in p) {
    t.fail(`${name} ran (${p?.error ?? 'missing'})`);
    return undefined;
  }
  t.ok(p.sent > 0 && p.deliveriesPerSec > 0, `${name}: ${p.sent} sent, ${p.deliveriesPerSec} deliveries/s`);
  t.equal(p.copiesPerMessage, copies, `${name}: ${copies} deliveries owed per message`);
  t.equal(p.delivered, p.sent * copies, `${name}: every copy owed arrived, none twice (${p.delivered} of ${p.sent} x ${copies})`);
  t.equal(p.undelivered, 0, `${name}: nothing outstanding after the drain`);
  t.equal(p.errors, 0, `${name}: no errors (${p.errorSamples.join(' | ')})`);
  t.ok(p.p50Ms !== null && p.p99Ms !== null && p.p50Ms > 0 && p.p50Ms <= p.p99Ms, `${name}: 0 < p50 ${p.p50Ms} <= p99 ${p.p99Ms}`);
  const row = body.summary.rows.find((r) => r.name === name);
  t.equal(row?.value, p.deliveriesPerSec, `${name}: the summary row carries deliveries/s`);
  t.equal(row?.p99Ms, p.p99Ms, `${name}: and p99`);
  return p;
}

t.before(async () => {
  await installCentrifugo();
});

t.test('chat: 1:1 pairs on every target, ratios to raw uWS, a passing SLO', async (t) => {
  const out = await outDir(t);
  const run = await chatPeersBench({ clients: 20, workers: 2, store: 'memory', load: LOAD, slo: 'p99_ms<60000,error_rate<=0' }, out);
  t.match(run.file, /\/chat-[^/]+\.json$/);
  const body = JSON.parse(await readFile(run.file, 'utf8')) as PeersBody;
  t.same(body, run.body, 'the file holds the returned body');
  t.match(body, {
    version: String, commit: String, date: String, machine: { cpus: { count: Number } },
    settings: { scenario: 'chat', targets: [...TARGETS], clients: 20, versions: { 'socket.io': /^\d+\.\d+\.\d+$/, centrifugo: /^v\d+\.\d+\.\d+$/ } },
  });
  t.match(body.summary, { scenario: 'chat', metric: 'deliveries/s', ceiling: 'raw-uws' });
  t.same(body.summary.rows.map((r) => r.name), [...TARGETS], 'one row per target, in order');

  const raw = checkRow(t, body, 'raw-uws', 1);
  for (const name of TARGETS) {
    const p = checkRow(t, body, name, 1);
    if (p && raw) t.equal(body.ratios[name], Math.round((p.deliveriesPerSec / raw.deliveriesPerSec) * 1000) / 1000, `${name}: ratio to raw uWS`);
  }
  t.equal(body.ratios['raw-uws'], 1, 'the ceiling row has ratio 1');
  t.equal(body.summary.rows.find((r) => r.name === 'raw-uws')?.ratio, 1);

  t.match(body.summary.thresholds, [{ expression: 'p99_ms<60000', ok: true, actual: Number }, { expression: 'error_rate<=0', ok: true, actual: 0 }]);
  t.equal(run.exitCode, 0, 'every phase ran and every gate passed');
  t.match(formatPeers(body), /lantern-embedded\s+max\s+20\s+\d+/, 'the table has a line per target');
});

t.test('fanout: each group size its own phases, ratios per size, an impossible SLO fails the run', async (t) => {
  const out = await outDir(t);
  const sizes = [10, 20];
  const run = await fanoutPeersBench({
    clients: 20, groupSizes: sizes, groupSenders: 2, workers: 2, store: 'memory', load: LOAD, slo: 'p99_ms<0,deliveries_per_sec>0',
  }, out);
  t.match(run.file, /\/fanout-[^/]+\.json$/);
  const body = JSON.parse(await readFile(run.file, 'utf8')) as PeersBody;
  t.match(body.settings, { scenario: 'fanout', groupSizes: sizes, groupSenders: 2 });
  const names = sizes.flatMap((s) => TARGETS.map((target) => `${target}@${s}`));
  t.same(body.summary.rows.map((r) => r.name), names, 'a row per target and size');
  t.equal(body.summary.ceiling, 'raw-uws@20', 'the summary names the largest size\'s ceiling');

  for (const size of sizes) {
    const raw = checkRow(t, body, `raw-uws@${size}`, size);
    t.equal(body.ratios[`raw-uws@${size}`], 1, `raw-uws@${size} is its size's ceiling`);
    for (const target of TARGETS) {
      const name = `${target}@${size}`;
      const p = checkRow(t, body, name, size);
      if (p) t.match(p, { groupSize: size, groupSenders: 2, clients: 20 });
      if (p && raw) t.equal(body.ratios[name], Math.round((p.deliveriesPerSec / raw.deliveriesPerSec) * 1000) / 1000, `${name}: ratio to raw uWS at size ${size}`);
    }
  }

  const [p99, rate] = body.summary.thresholds;
  t.match(p99, { expression: 'p99_ms<0', metric: 'p99_ms', ok: false, actual: Number }, 'p99 below 0 ms is breached');
  const gateRow = body.results['lantern-embedded@20'];
  t.equal(p99?.actual, gateRow && !('error' in gateRow) ? gateRow.p99Ms : NaN, 'the gates read lantern-embedded at the largest size');
  t.match(rate, { expression: 'deliveries_per_sec>0', ok: true });
  t.equal(run.exitCode, 1, 'a breached gate fails the run');
  t.match(formatPeers(body), /SLO p99_ms<0: BREACHED/);
});

t.test('a target that cannot start is a failed phase, and the others still run', async (t) => {
  const out = await outDir(t);
  // An empty cache and no go on PATH: the Centrifugo install fails at once.
  const cache = await mkdtemp(join(tmpdir(), 'lantern-bench-cache-'));
  t.teardown(() => rm(cache, { recursive: true, force: true }));
  const saved = { path: process.env['PATH'], cache: process.env['LANTERN_BENCH_CACHE'] };
  process.env['PATH'] = '/usr/bin:/bin';
  process.env['LANTERN_BENCH_CACHE'] = cache;
  t.teardown(() => {
    process.env['PATH'] = saved.path;
    if (saved.cache === undefined) delete process.env['LANTERN_BENCH_CACHE'];
    else process.env['LANTERN_BENCH_CACHE'] = saved.cache;
  });

  const run = await chatPeersBench({ targets: ['centrifugo'], clients: 4, workers: 1, store: 'memory', load: { ...LOAD, durationMs: 500 } }, out);
  t.same(run.body.settings['targets'], ['raw-uws', 'centrifugo'], 'the ceiling is added when not asked for');
  t.match(run.body.results['centrifugo'], { error: /go is not on PATH/ }, 'the failure is recorded with its cause');
  checkRow(t, run.body, 'raw-uws', 1);
  t.match(run.body.summary.rows.find((r) => r.name === 'centrifugo'), { value: null, ratio: null, note: /failed: .*go is not on PATH/ });
  t.equal(run.exitCode, 1, 'a failed phase fails the run');
});
