// Smoke test of `npm run bench -- connections` at a tiny scale, embedded only: 300 authenticated
// connections held idle by two generator processes against an embedded Lantern in its own process,
// then as many against the raw uWS server, and the results file with every figure. It checks that
// the figures exist and that every connection was welcomed and stayed open, never how fast or how big.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { connectionsBench } from './connections-bench.ts';
import { CONNECTIONS_PER_SOURCE_ADDRESS, sourceAddresses } from './loadgen/idle-run.ts';

t.setTimeout(90_000);

const CONNECTIONS = 300;

t.test('the connections scenario holds every connection idle and writes every figure', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'lantern-bench-results-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));

  const { file } = await connectionsBench({
    modes: ['embedded'], connections: CONNECTIONS, idleMs: 1_000, settleMs: 200, store: 'memory', loadWorkers: 2, gateways: 1, engineWorkers: 1,
  }, out);
  t.match(file, /connections-.*\.json$/);
  const body = JSON.parse(await readFile(file, 'utf8')) as Record<string, any>;
  t.match(body, { version: String, commit: String, date: String, machine: { cpus: { count: Number } }, settings: { scenario: 'connections', connections: CONNECTIONS, idleMs: 1_000 } });

  for (const [name, server] of [['embedded-lantern', 'lantern-embedded'], ['embedded-raw', 'uws-raw']] as const) {
    const p = body.results[name];
    t.notOk(p?.error, `${name} ran (${p?.error ?? ''})`);
    t.match(p, { server, serverProcesses: 1, connections: CONNECTIONS, held: CONNECTIONS }, `${name}: all ${CONNECTIONS} still open after the idle window`);
    t.equal(p.connectionsAsked, undefined, `${name}: not capped`);
    t.match(p.connect, { held: CONNECTIONS, failed: 0, failureSamples: [], generators: 2, sourceAddresses: 2, totalMs: Number, perSec: Number }, `${name}: every connection ${name === 'embedded-lantern' ? 'welcomed' : 'upgraded'}`);
    t.ok(p.connect.p50Ms > 0 && p.connect.p50Ms <= p.connect.p99Ms && p.connect.p99Ms <= p.connect.maxMs, `${name}: 0 < p50 ${p.connect.p50Ms} <= p99 ${p.connect.p99Ms} <= max ${p.connect.maxMs}`);
    t.match(p.serverMemory, { rssBeforeBytes: Number, rssAfterBytes: Number, rssPerConnectionBytes: Number, heapUsedBeforeBytes: Number, heapUsedAfterBytes: Number, heapPerConnectionBytes: Number }, `${name}: server memory`);
    t.ok(p.serverMemory.rssBeforeBytes > 0, `${name}: the server's RSS was read (${p.serverMemory.rssBeforeBytes} bytes)`);
    t.match(p.generatorMemory, { rssBeforeBytes: Number, rssAfterBytes: Number, rssPerConnectionBytes: Number }, `${name}: generator memory`);
    t.ok(p.generatorMemory.rssBeforeBytes > 0, `${name}: the generators' RSS was read`);
    t.match(p.idle, { cpu: { cores: { server: Number, generator: Number } }, pings: Number, frames: 0, closed: 0, closeSamples: [] }, `${name}: idle figures, nothing closed, no data frames`);
  }
  t.ok('embedded: lantern / raw uWS server RSS per connection' in body.ratios, 'the RSS ratio is reported (null when the raw growth is below the noise)');
  // Raw uWS keeps its sockets in native memory: at 300 connections its heap growth can be nil after
  // GC, and the ratio is null then rather than a division by noise. When it is given it is positive.
  const heapRatio = body.ratios['embedded: lantern / raw uWS server heap per connection'];
  t.ok(heapRatio === null || heapRatio > 0, `the heap ratio is null or positive (${heapRatio})`);
});

t.test('each generator binds its sockets to its own source addresses, a few thousand per address', async (t) => {
  t.same(sourceAddresses(1, 0, 300), ['127.1.0.1']);
  const big = sourceAddresses(3, 6, 15_000);
  t.equal(big.length, Math.ceil(15_000 / CONNECTIONS_PER_SOURCE_ADDRESS));
  t.same(big, ['127.3.6.1', '127.3.6.2', '127.3.6.3']);
  const all = [0, 1, 2].flatMap((w) => sourceAddresses(1, w, 15_000)).concat(sourceAddresses(2, 0, 15_000));
  t.equal(new Set(all).size, all.length, 'no two generators or phases share an address');
  t.throws(() => sourceAddresses(0, 0, 10), RangeError);
});
