// The Locust capacity suite at tiny scale: the Python codec against the protocol's test vectors
// (and a wrong vector caught), then every scenario once against its own embedded Lantern, checking
// that something was measured, the results file is complete and its SLO gates were evaluated, and
// that a gate nobody can meet fails the run with exit code 1. Timings are never asserted.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { formatLocust, installLocust, locustBench, LOCUST_SCENARIOS, type LocustBenchOptions } from '../locust-bench.ts';

// A first run builds the venv (~15 s); then seven Locust runs of a few seconds each.
t.setTimeout(170_000);

const HERE = dirname(fileURLToPath(import.meta.url));
const VECTORS = join(HERE, '..', '..', 'protocol', 'vectors', 'v1.json');

function runPython(python: string, env: Record<string, string> = {}): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(python, [join(HERE, 'test_vectors.py')], { env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: stdout + stderr });
    });
  });
}

let out = '';
t.before(async () => { out = await mkdtemp(join(tmpdir(), 'lantern-locust-')); });
t.teardown(() => rm(out, { recursive: true, force: true }));

t.test('the Python codec passes every protocol test vector, and a wrong vector fails it', async (t) => {
  const python = join(dirname(await installLocust()), 'python');
  const good = await runPython(python);
  t.equal(good.code, 0, good.output);
  t.match(good.output, /Ran \d+ tests[\s\S]*\nOK/);

  const file = JSON.parse(await readFile(VECTORS, 'utf8'));
  const ping = file.valid.find((v: { name: string }) => v.name === 'client.ping');
  ping.hex = ping.hex.slice(0, -2) + '03'; // id 2 -> 3: the frame no longer matches its bytes
  const wrong = join(out, 'wrong-vectors.json');
  await writeFile(wrong, JSON.stringify(file));
  const bad = await runPython(python, { LANTERN_VECTORS: wrong });
  t.equal(bad.code, 1, 'the wrong vector fails the run');
  t.match(bad.output, /client\.ping/, 'and is named');
});

interface Smoke {
  options: Omit<LocustBenchOptions, 'scenario' | 'store' | 'slo'>;
  /** Gates besides the lenient timing ones: what must hold whatever the speed. */
  gates: string;
  /** Figures a user of the run would check. */
  figures: Record<string, number>;
}

const LENIENT = 'p99_ms<60000,error_rate<0.5';
const SMOKES: Record<(typeof LOCUST_SCENARIOS)[number], Smoke> = {
  'connection-storm': {
    options: { users: 6, spawnRate: 6, durationSec: 3, extraEnv: { LANTERN_PING_INTERVAL_S: '1' } },
    gates: 'connected>=1', figures: { connects: 6, held: 6, dropped: 0 },
  },
  chat: {
    options: { users: 6, spawnRate: 6, durationSec: 3, extraEnv: { LANTERN_SEND_INTERVAL_S: '0.2' } },
    gates: 'deliver_failures<=0', figures: { pairs: 6, lag: 0 },
  },
  'group-fanout': {
    options: { users: 6, spawnRate: 6, durationSec: 3, groupSize: 3, extraEnv: { LANTERN_SEND_INTERVAL_S: '0.2' } },
    gates: 'deliver_failures<=0', figures: { groups: 2, lag: 0 },
  },
  'red-envelope': {
    options: { users: 6, spawnRate: 6, durationSec: 3, groupSize: 3, extraEnv: { LANTERN_ENVELOPE_INTERVAL_S: '0.3', LANTERN_ENVELOPE_SHARES: '2' } },
    gates: 'overpaid<=0,overclaimed<=0,duplicate_grabs<=0,grab_errors<=0', figures: { overpaid: 0, overclaimed: 0, duplicate_grabs: 0 },
  },
  'flash-sale': {
    options: { users: 6, spawnRate: 6, durationSec: 3, extraEnv: { LANTERN_SALE_STOCK: '3', LANTERN_SALE_LEAD_MS: '1500' } },
    gates: 'oversold<=0,unanswered<=0', figures: { stock: 3, buyers: 6, answered: 6, reserved: 3, reserved_units: 3, sold_out: 3, oversold: 0 },
  },
  'reconnect-storm': {
    // Receivers stay away up to 800 ms while senders send every 50 ms: the resyncs have messages to bring.
    // The drop comes 2 s in, well after the last of the six users is set up (late users take no part).
    options: { users: 6, spawnRate: 6, durationSec: 5, groupSize: 3, extraEnv: { LANTERN_SEND_INTERVAL_S: '0.05', LANTERN_DROP_AT_S: '2', LANTERN_RECONNECT_JITTER_MS: '800' } },
    gates: 'gaps<=0,resync_failures<=0,resynced_msgs>0', figures: { resyncs: 6, gaps: 0, unreconnected: 0, late_users: 0 },
  },
};

for (const scenario of LOCUST_SCENARIOS) {
  t.test(`${scenario}: a tiny run measures, writes its results file and passes its gates`, async (t) => {
    const smoke = SMOKES[scenario];
    const slo = `${LENIENT},${smoke.gates}`;
    const { file, body, exitCode } = await locustBench({ scenario, store: 'memory', slo, ...smoke.options }, out);
    t.equal(exitCode, 0, `exit code 0 (${formatLocust(body)})`);
    t.equal(dirname(file), out, 'written where asked');
    t.match(file, new RegExp(`locust-${scenario}-\\d{4}-\\d\\d-\\d\\dT\\d\\d-\\d\\d-\\d\\d-\\d{3}Z\\.json$`));
    t.same(JSON.parse(await readFile(file, 'utf8')), body);
    t.match(body, {
      version: String, commit: String, date: String, machine: { cpus: { count: Number }, python: String, locust: '2.47.0' },
      settings: { scenario, users: smoke.options.users, spawnRate: smoke.options.spawnRate, LANTERN_SLO: slo },
      summary: { scenario, title: String, metric: String, ceiling: null },
    });
    t.notOk('LANTERN_JWT_SECRET' in body.settings || 'LANTERN_ADMIN_TOKEN' in body.settings, 'no secret in the results');
    const row = body.summary.rows[0];
    t.equal(row.name, 'lantern');
    t.ok(row.value > 0, `the headline was measured: ${row.value} ${body.summary.metric}`);
    t.ok(row.p99Ms >= 0, `with its p99 (${row.p99Ms} ms)`);
    const gates = slo.split(',');
    t.same(body.summary.thresholds.map((g: { expression: string }) => g.expression), gates, 'every gate evaluated');
    for (const g of body.summary.thresholds) t.ok(g.ok && typeof g.actual === 'number', `${g.expression} holds (${g.actual})`);
    t.match(body.results.figures, smoke.figures, 'the scenario\'s own figures');
  });
}

t.test('a gate nobody can meet fails the run with exit code 1 and is recorded as breached', async (t) => {
  const { body, exitCode } = await locustBench({ scenario: 'connection-storm', store: 'memory', users: 2, spawnRate: 2, durationSec: 1, slo: 'p99_ms<0' }, out);
  t.equal(exitCode, 1);
  t.match(body.summary.thresholds, [{ expression: 'p99_ms<0', metric: 'p99_ms', actual: Number, ok: false }]);
  t.match(formatLocust(body), /SLO p99_ms<0: BREACHED/);
});
