// Smoke test of `npm run bench -- connect-storm` and `reconnect-storm` at a tiny scale, embedded only:
// a storm of 200 connections on the raw uWS server and on an embedded Lantern (each in a child
// process), a reconnect storm of 40 clients in groups of 10, and the results files with the
// summary rows and the SLO gates. It checks that the figures exist, that every client came back
// with every message and no seq twice, and that the gates decide the exit code; never how fast.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { connectStormBench, formatConnectStorm, formatReconnectStorm, reconnectStormBench, reconnectStormMetrics, stormExitCode, type ReconnectStormPhase } from './storms-bench.ts';

t.setTimeout(120_000);

const readBody = async (file: string): Promise<Record<string, any>> => JSON.parse(await readFile(file, 'utf8')) as Record<string, any>;

t.test('connection storm: every connection welcomed, both rows in the summary, a lenient SLO passes', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'lantern-bench-results-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const { file, exitCode, body: returned } = await connectStormBench({
    connections: 200, loadWorkers: 2, store: 'memory', slo: 'connect_p99_ms<60000,error_rate<=0,connects_per_sec>0',
  }, out);
  t.match(file, /connect-storm-.*\.json$/);
  const body = await readBody(file);
  t.match(body, { version: String, commit: String, date: String, machine: { cpus: { count: Number } }, settings: { scenario: 'connect-storm', connections: 200, rampPerSec: 0, modes: ['embedded'] } });
  for (const name of ['raw-uws', 'lantern-embedded']) {
    const p = body.results[name];
    t.notOk(p?.error, `${name} ran (${p?.error ?? ''})`);
    t.match(p, { server: name, connections: 200, connected: 200, failed: 0, generators: 2 }, `${name}: all 200 ${name === 'raw-uws' ? 'upgraded' : 'welcomed'}`);
    t.ok(p.connectsPerSec > 0 && p.p50Ms > 0 && p.p50Ms <= p.p99Ms && p.p99Ms <= p.maxMs, `${name}: ${p.connectsPerSec}/s, 0 < p50 ${p.p50Ms} <= p99 ${p.p99Ms} <= max ${p.maxMs}`);
    t.match(p.cpu, { cores: { server: Number, generators: Number } }, `${name}: cores of the server and the generators`);
    t.ok(p.listenOverflows === null || p.listenOverflows >= 0, `${name}: listen overflows ${p.listenOverflows}`);
  }
  const s = body.summary;
  t.match(s, { scenario: 'connect-storm', metric: 'connects/s', ceiling: 'raw-uws' });
  t.same(s.rows.map((r: any) => r.name), ['raw-uws', 'lantern-embedded']);
  t.equal(s.rows[0].ratio, 1, 'the ceiling row is 1');
  t.ok(s.rows.every((r: any) => r.value > 0 && r.p99Ms > 0), 'every row has its connects/s and p99');
  t.ok(s.rows[1].ratio > 0, `lantern-embedded is ${s.rows[1].ratio} of the raw ceiling`);
  t.same(s.thresholds.map((g: any) => [g.metric, g.ok]), [['connect_p99_ms', true], ['error_rate', true], ['connects_per_sec', true]]);
  t.equal(s.thresholds[0].actual, body.results['lantern-embedded'].p99Ms, 'the gate reads the Lantern row');
  t.equal(exitCode, 0);
  t.match(formatConnectStorm(returned), /lantern-embedded +200\/200/);
});

t.test('connection storm: a ramp spaces the connections out; an impossible SLO fails the run', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'lantern-bench-results-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const { file, exitCode } = await connectStormBench({ connections: 20, rampPerSec: 40, loadWorkers: 1, store: 'memory', slo: 'connect_p99_ms<0' }, out);
  const body = await readBody(file);
  const lantern = body.results['lantern-embedded'];
  t.equal(lantern.connected, 20);
  // The 20th of 20 at 40/s starts 475 ms after the first.
  t.ok(lantern.totalMs >= 470, `20 connections at 40/s took ${lantern.totalMs} ms`);
  t.match(body.summary.thresholds, [{ expression: 'connect_p99_ms<0', ok: false }]);
  t.ok(body.summary.thresholds[0].actual > 0, 'the breach names the measured p99');
  t.equal(exitCode, 1, 'a breached gate exits 1');
});

t.test('reconnect storm: 40 clients in groups of 10 drop, come back at once and sync every message they missed', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'lantern-bench-results-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const { file, exitCode, body: returned } = await reconnectStormBench({
    connections: 40, groupSize: 10, loadWorkers: 2, store: 'memory', messageRate: 200, warmMs: 300, awayMs: 500, tailMs: 200,
    slo: 'gaps<1,resync_p99_ms<60000,error_rate<=0',
  }, out);
  t.match(file, /reconnect-storm-.*\.json$/);
  const body = await readBody(file);
  t.match(body.settings, { scenario: 'reconnect-storm', connections: 40, groupSize: 10, dropFraction: 1, awayMs: 500 });
  const raw = body.results['raw-uws'];
  t.notOk(raw?.error, `raw-uws ran (${raw?.error ?? ''})`);
  t.match(raw, { dropped: 40, reconnected: 40, errors: 0 });
  t.ok(raw.reconnectsPerSec > 0, `raw: ${raw.reconnectsPerSec} reconnects/s`);
  const l = body.results['lantern-embedded'];
  t.notOk(l?.error, `lantern-embedded ran (${l?.error ?? ''})`);
  t.match(l, { clients: 40, conversations: 4, dropped: 40, reconnected: 40, caughtUp: 40, gaps: 0, missing: 0, duplicates: 0, skipped: 0, clientsBehind: 0, errors: 0 });
  t.ok(l.sentWhileAway > 0, `${l.sentWhileAway} messages were committed while the clients were away`);
  // Every member of a group missed what its group got while away: sync brought at least that back.
  t.ok(l.recovered >= l.sentWhileAway * 10 * 0.9, `${l.recovered} messages recovered by sync (about ${l.sentWhileAway} x 10 members or more)`);
  t.ok(l.resync.p99Ms >= l.reconnect.p50Ms && l.resync.p99Ms > 0, `resync p99 ${l.resync.p99Ms} ms, reconnect p50 ${l.reconnect.p50Ms} ms`);
  t.ok(l.dropToCaughtUp.p50Ms >= 500, 'drop -> caught up includes the time away');
  t.match(body.summary, { scenario: 'reconnect-storm', ceiling: 'raw-uws' });
  t.same(body.summary.rows.map((r: any) => r.name), ['raw-uws', 'lantern-embedded']);
  t.ok(body.summary.rows.every((r: any) => r.value > 0), 'both rows have a rate');
  t.equal(body.summary.rows[1].value, l.resyncedPerSec, "Lantern's row is clients back and caught up per second");
  t.same(body.summary.thresholds.map((g: any) => [g.metric, g.actual === null ? null : typeof g.actual, g.ok]), [['gaps', 'number', true], ['resync_p99_ms', 'number', true], ['error_rate', 'number', true]]);
  t.equal(exitCode, 0);
  t.match(formatReconnectStorm(returned), /lantern-embedded +40\/40/);
});

t.test('a malformed SLO fails before anything runs', async (t) => {
  await t.rejects(connectStormBench({ connections: 1, slo: 'p99 under 5' }, tmpdir()), /not <metric><op><number>/);
});

t.test('the exit code: a failed phase, a lost or duplicated seq, or a breached gate fails the run', async (t) => {
  const gate = (ok: boolean) => ({ thresholds: [{ expression: 'gaps<1', metric: 'gaps', actual: ok ? 0 : 1, ok }] });
  t.equal(stormExitCode({ 'raw-uws': { reconnectsPerSec: 1 }, 'lantern-embedded': { gaps: 0 } }, gate(true)), 0);
  t.equal(stormExitCode({ 'raw-uws': { reconnectsPerSec: 1 }, 'lantern-embedded': { gaps: 1 } }, { thresholds: [] }), 1, 'one gap fails without any SLO');
  t.equal(stormExitCode({ 'raw-uws': { error: 'could not start' }, 'lantern-embedded': { gaps: 0 } }, { thresholds: [] }), 1, 'the ceiling phase failing fails the run');
  t.equal(stormExitCode({ 'lantern-embedded': { gaps: 0 } }, gate(false)), 1);
  const phase = { dropped: 40, caughtUp: 38, gaps: 0, resync: { p99Ms: 80 }, reconnect: { p99Ms: 20 } } as unknown as ReconnectStormPhase;
  t.same(reconnectStormMetrics(phase), { p99_ms: 80, resync_p99_ms: 80, reconnect_p99_ms: 20, gaps: 0, error_rate: 0.05 }, 'error_rate: dropped clients that never caught up');
  t.same(reconnectStormMetrics(undefined), { p99_ms: null, resync_p99_ms: null, reconnect_p99_ms: null, gaps: null, error_rate: null }, 'no Lantern figures: every gate is breached');
});
