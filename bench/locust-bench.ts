// `npm run bench -- locust <scenario>`: one Locust scenario of bench/locust/ (the capacity suite,
// decision 0009) against an embedded Lantern started here, or against a running fleet (`url`).
// Installs Locust first (bench/locust/install-locust.sh, cached), runs it headless, and returns
// the results file the scenario wrote (bench/locust/lantern_slo.py) with Locust's exit code:
// 0 when every SLO gate held, 1 on a breach.
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startBenchLantern, type BenchLantern } from './lantern-server.ts';

export const LOCUST_SCENARIOS = ['connection-storm', 'chat', 'group-fanout', 'red-envelope', 'flash-sale', 'reconnect-storm'] as const;
export type LocustScenario = (typeof LOCUST_SCENARIOS)[number];

export interface LocustBenchOptions {
  scenario: LocustScenario;
  users: number;
  spawnRate: number;
  durationSec: number;
  groupSize?: number;
  /** LANTERN_SLO, e.g. "p99_ms<250,error_rate<0.01". */
  slo?: string;
  /** A running fleet's ws URL(s), comma-separated: no local server. Its secrets come from extraEnv or LANTERN_JWT_SECRET etc. */
  url?: string;
  store: 'lmdb' | 'memory';
  /** More LANTERN_* (or LOCUST_*) settings for the scenario; they win over the ones set here. */
  extraEnv?: Record<string, string>;
}

const LOCUST_DIR = fileURLToPath(new URL('./locust/', import.meta.url));
/** Locust's grace for running tasks at the end before it stops the users. */
const STOP_TIMEOUT_SEC = 3;
/** Locust's start, the scenario's setup and the results file, on top of the run time. */
const OVERHEAD_MS = 60_000;
/** The credentials of a fleet the caller's environment may hold (remote runs only). */
const TARGET_SECRETS = ['LANTERN_JWT_SECRET', 'LANTERN_JWT_AUDIENCE', 'LANTERN_ADMIN_TOKEN', 'LANTERN_ADMIN_URL'];

const fileOf = (scenario: LocustScenario): string => `${LOCUST_DIR}${scenario.replace(/-/g, '_')}.py`;

/** Installs (once) the venv and returns the locust binary. */
export async function installLocust(): Promise<string> {
  const { stdout } = await promisify(execFile)('bash', [`${LOCUST_DIR}install-locust.sh`], { maxBuffer: 1 << 20 });
  const bin = stdout.trim().split('\n').pop();
  if (!bin) throw new Error('install-locust.sh printed no locust path');
  return bin;
}

/** Settings an embedded server needs for the scenario's groups to fit in its limits. */
function serverOverrides(groupSize: number): { maxGroupMembers: number; maxUsersPerCall: number; envelopeMaxShares: number } {
  return { maxGroupMembers: Math.max(500, groupSize), maxUsersPerCall: Math.max(100, groupSize), envelopeMaxShares: Math.max(100, groupSize) };
}

/** The caller's environment without LANTERN_* and LOCUST_*: a variable left in a shell must not change the run. */
function cleanEnv(keep: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && ((!k.startsWith('LANTERN_') && !k.startsWith('LOCUST_')) || keep.includes(k))) env[k] = v;
  }
  return env;
}

export async function locustBench(o: LocustBenchOptions, outDir: string): Promise<{ file: string; body: any; exitCode: number }> {
  if (!LOCUST_SCENARIOS.includes(o.scenario)) throw new RangeError(`no Locust scenario "${o.scenario}"; one of ${LOCUST_SCENARIOS.join(', ')}`);
  const locust = await installLocust();
  const groupSize = o.groupSize ?? 10;
  let server: BenchLantern | undefined;
  try {
    const env: Record<string, string> = {
      ...cleanEnv(o.url === undefined ? [] : TARGET_SECRETS),
      LANTERN_RESULTS_DIR: outDir, LANTERN_GROUP_SIZE: String(groupSize),
      PYTHONDONTWRITEBYTECODE: '1', // no __pycache__ beside the scenarios in the work tree
    };
    if (o.url === undefined) {
      const overrides = serverOverrides(groupSize);
      server = await startBenchLantern(o.store, overrides);
      Object.assign(env, {
        LANTERN_URL: server.url, LANTERN_JWT_SECRET: server.chat.jwtSecret, LANTERN_JWT_AUDIENCE: server.chat.audience,
        LANTERN_ADMIN_TOKEN: server.adminToken, LANTERN_USERS_PER_CALL: String(overrides.maxUsersPerCall),
      });
    } else {
      env['LANTERN_URL'] = o.url;
    }
    if (o.slo !== undefined) env['LANTERN_SLO'] = o.slo;
    Object.assign(env, o.extraEnv);
    const args = ['--headless', '--only-summary', '-f', fileOf(o.scenario), '-u', String(o.users), '-r', String(o.spawnRate),
      '-t', `${Math.max(1, Math.round(o.durationSec))}s`, '--stop-timeout', String(STOP_TIMEOUT_SEC)];
    const run = await runLocust(locust, args, env, o.durationSec * 1000 + OVERHEAD_MS);
    const file = /^lantern results: (.+\.json)$/m.exec(run.stdout)?.[1];
    if (file === undefined) throw new Error(`locust exited ${run.exitCode} without a results file\n${tail(run.stderr)}`);
    return { file, body: JSON.parse(await readFile(file, 'utf8')), exitCode: run.exitCode };
  } finally {
    await server?.close();
  }
}

function runLocust(bin: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd: LOCUST_DIR, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    // SIGTERM lets Locust stop and still write its results; SIGKILL if even that hangs.
    let kill: NodeJS.Timeout | undefined;
    const stop = setTimeout(() => {
      child.kill('SIGTERM');
      kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
    }, timeoutMs);
    child.on('error', (err) => { clearTimeout(stop); clearTimeout(kill); reject(err); });
    child.on('close', (code, signal) => {
      clearTimeout(stop);
      clearTimeout(kill);
      resolve({ exitCode: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

const tail = (text: string, lines = 30): string => text.trimEnd().split('\n').slice(-lines).join('\n');

/** A short table: each request name's count, failures, rate and latency, then the gates. */
export function formatLocust(body: any): string {
  const requests: Record<string, any> = body?.results?.requests ?? {};
  const n = (v: unknown): string => (typeof v === 'number' ? (v < 10 ? v.toFixed(2) : v.toFixed(1)) : '-');
  const head = ['name', 'count', 'failures', 'rate/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'];
  const rows = Object.entries(requests).map(([name, r]) => [name, String(r.count), String(r.failures), n(r.rate), n(r.p50_ms), n(r.p90_ms), n(r.p99_ms), n(r.max_ms)]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const s = body?.summary;
  const lantern = s?.rows?.[0];
  const out = [`${s?.title ?? 'locust'}: ${n(lantern?.value)} ${s?.metric ?? ''}, p99 ${n(lantern?.p99Ms)} ms`, line(head), ...rows.map(line)];
  for (const t of s?.thresholds ?? []) out.push(`SLO ${t.expression}: ${t.ok ? 'ok' : `BREACHED (measured ${t.actual ?? 'nothing'})`}`);
  return out.join('\n');
}
