// Smoke test of `npm run bench -- distributed` at a tiny scale: the whole scenario runs end to end
// (raw cassandra-driver phases, 2 gateways + 2 workers with profiles, embedded LMDB) on private
// nats-server and redis-server and the run's shared Cassandra, and the results file carries every
// figure. It checks that the figures exist and that the load arrived, never how fast it was.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { sharedCassandra, startNats, startRedis } from '../test/support/infra.ts';
import { distributedBench } from './distributed/main.ts';
import { DEFAULT_LOAD_SETTINGS } from './loadgen/messages.ts';

t.setTimeout(120_000);

t.test('distributed scenario writes every figure', async (t) => {
  const [nats, redis, cassandra] = await Promise.all([startNats(), startRedis(), sharedCassandra()]);
  t.teardown(() => Promise.all([nats.close(), redis.close()]));
  const out = await mkdtemp(join(tmpdir(), 'lantern-bench-results-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));

  const { file } = await distributedBench({
    clients: 4, groupClients: 6, group: { size: 3, senders: 1 }, gateways: 2, engineWorkers: 2, loadWorkers: 2,
    load: { ...DEFAULT_LOAD_SETTINGS, warmupMs: 200, durationMs: 800, drainMs: 2000, window: 2 },
    rate: 100, cqlConcurrency: 4, profile: true,
    endpoints: { natsUrl: nats.url, redisUrl: redis.url, cassandra },
  }, out);
  const body = JSON.parse(await readFile(file, 'utf8')) as Record<string, any>;

  t.match(body, { version: String, commit: String, date: String, machine: { cpus: { count: Number } }, settings: { scenario: 'distributed', gateways: 2, engineWorkers: 2 } });
  const loadPhases = ['distributed-1to1-max', 'distributed-1to1-rate', 'distributed-group-max', 'embedded-1to1-max', 'embedded-1to1-rate', 'embedded-group-max'];
  for (const name of loadPhases) {
    const p = body.results[name];
    t.notOk(p?.error, `${name} ran (${p?.error ?? ''})`);
    t.match(p, { msgsPerSec: Number, p50Ms: Number, p99Ms: Number, errors: 0, undelivered: 0 }, `${name} figures`);
    t.ok(p.delivered > 0, `${name}: messages sent in the window arrived (${p.delivered})`);
    t.match(p.cpu, { cores: { generator: Number, cassandra: Number }, machineCores: Number }, `${name}: cores per process group`);
  }
  for (const name of ['distributed-1to1-max', 'distributed-1to1-rate', 'distributed-group-max']) {
    t.match(body.results[name].cpu.cores, { gateways: Number, workers: Number, nats: Number }, `${name}: gateway and worker cores`);
  }
  for (const name of ['distributed-group-max', 'embedded-group-max']) {
    t.equal(body.results[name].delivered % 2, 0, `${name}: each message reached both other members`);
    t.type(body.results[name].deliveriesPerSec, 'number');
  }
  for (const name of ['cql-insert', 'cql-lwt', 'cql-store-commit']) {
    const p = body.results[name];
    t.notOk(p?.error, `${name} ran (${p?.error ?? ''})`);
    t.match(p, { opsPerSec: Number, p99Ms: Number, concurrency: 4, errors: 0 }, `${name} figures`);
    t.ok(p.ops > 0, `${name}: ${p.ops} operations`);
  }
  for (const [k, v] of Object.entries(body.ratios)) t.type(v, 'number', `ratio ${k}`);
  for (const kind of ['gateway', 'worker']) {
    const s = body.profile?.[kind];
    t.ok(s?.categories?.length > 0 && s?.topFunctions?.length > 0, `${kind} profile summarised (${body.profile?.note})`);
  }
});
