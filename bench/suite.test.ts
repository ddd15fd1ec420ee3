// CI smoke run of the whole capacity suite through the command a capacity engineer types:
// `npm run bench -- all --smoke --slo ...` at a tiny scale against private nats-server,
// redis-server and the run's shared Cassandra. Every scenario must write its results file with a
// summary and evaluated SLO gates, a chart beside it, and a BENCHMARKS.md section; an impossible
// gate must fail the run. Figures are not judged: timing has no place in CI.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { sharedCassandra, startNats, startRedis } from '../test/support/infra.ts';
import { ALL_SET } from './options.ts';
import { LOCUST_SCENARIOS } from './locust-bench.ts';

// Every scenario (Centrifugo's first `go install` and the Locust venv included) on a busy 2-core box.
t.setTimeout(15 * 60_000);

const RUN = fileURLToPath(new URL('./run.ts', import.meta.url));
const REPO = fileURLToPath(new URL('..', import.meta.url));

function bench(args: string[], env: Record<string, string>): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', RUN, ...args], { cwd: REPO, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024, timeout: 14 * 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: stdout + stderr }));
  });
}

/** The results files of a folder, newest summary per scenario. */
async function results(dir: string): Promise<Map<string, { name: string; body: Record<string, any> }>> {
  const out = new Map<string, { name: string; body: Record<string, any> }>();
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.json')).sort()) {
    const body = JSON.parse(await readFile(join(dir, name), 'utf8')) as Record<string, any>;
    out.set(body.summary?.scenario ?? name, { name, body });
  }
  return out;
}

t.test('all --smoke: every scenario writes its figures, gates and chart', async (t) => {
  const [nats, redis, cassandra] = await Promise.all([startNats(), startRedis(), sharedCassandra()]);
  t.teardown(() => Promise.all([nats.close(), redis.close()]));
  const out = await mkdtemp(join(tmpdir(), 'lantern-bench-suite-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const env = {
    LANTERN_NATS_URL: nats.url, LANTERN_REDIS_URL: redis.url,
    LANTERN_CQL_CONTACT_POINTS: cassandra.contactPoints.join(','), LANTERN_CQL_LOCAL_DC: cassandra.localDataCenter,
  };

  // Every scenario has a p99: a lenient gate on it must be evaluated and hold everywhere.
  const run = await bench(['all', '--smoke', '--out', out, '--slo', 'p99_ms<600000'], env);
  t.equal(run.code, 0, `exit code 0 (output tail: ${run.output.slice(-3000)})`);

  const files = await results(out);
  const expected = ALL_SET.flatMap((s) => (s === 'locust' ? LOCUST_SCENARIOS.map((l) => `locust-${l}`) : [s]));
  const md = await readFile(join(out, 'BENCHMARKS.md'), 'utf8');
  const names = await readdir(out);
  for (const scenario of expected) {
    const f = files.get(scenario);
    if (!t.ok(f, `${scenario}: a results file`)) continue;
    const { body, name } = f!;
    t.match(body, { version: String, commit: String, date: String, machine: Object, settings: Object, results: Object }, `${scenario}: the common shape`);
    t.match(body.command, /^npm run bench -- all --smoke/, `${scenario}: the command that produced it`);
    const s = body.summary;
    t.ok(s.rows.some((r: { value: number | null }) => r.value !== null && r.value > 0), `${scenario}: something was measured`);
    if (s.ceiling !== null) t.equal(s.rows.find((r: { name: string }) => r.name === s.ceiling)?.ratio, 1, `${scenario}: the ceiling row is the ratio's base`);
    t.match(s.thresholds, [{ expression: 'p99_ms<600000', ok: true, actual: Number }], `${scenario}: the gate was evaluated on a measured p99`);
    t.ok(names.includes(name.replace(/\.json$/, '.svg')), `${scenario}: its chart`);
    t.match(md, new RegExp(`^## ${scenario}$`, 'm'), `${scenario}: a BENCHMARKS.md section`);
  }
});

t.test('a breached gate fails the run and is recorded', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'lantern-bench-suite-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const run = await bench(['echo-chat', '--smoke', '--out', out, '--slo', 'p99_ms<0,rate>0'], {});
  t.equal(run.code, 1, 'exit code 1');
  t.match(run.output, /SLO p99_ms<0: BREACHED/);
  const [file] = [...(await results(out)).values()];
  t.match(file?.body.summary.thresholds, [{ expression: 'p99_ms<0', ok: false }, { expression: 'rate>0', ok: true }]);
  const bad = await bench(['echo-chat', '--out', out, '--slo', 'p99<fast'], {});
  t.equal(bad.code, 2, 'a malformed gate is refused before any load');
  t.match(bad.output, /not <metric><op><number>/);
});
