// The infrastructure a distributed benchmark runs on: given endpoints (a test passes its own
// private servers), endpoints from LANTERN_* variables, or ops/infra.sh (starting what is not
// running and, on release, stopping only what it started).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const INFRA_SH = fileURLToPath(new URL('../../ops/infra.sh', import.meta.url));
const SERVICES = ['nats', 'redis', 'cassandra'] as const;
type Service = (typeof SERVICES)[number];

export interface Endpoints {
  natsUrl: string;
  redisUrl: string;
  cassandra: { contactPoints: string[]; localDataCenter: string };
}

export interface Infra {
  endpoints: Endpoints;
  /** How the endpoints were found: 'given', 'env', or 'ops/infra.sh' (with the services it started). */
  source: string;
  /** Stops the services this run started (none unless it used ops/infra.sh and they were down). */
  release(): Promise<void>;
}

async function infraSh(...args: string[]): Promise<string> {
  try {
    // Cassandra's first start (JVM, commit log, schema) takes a minute or more on a busy machine.
    const { stdout } = await run('bash', [INFRA_SH, ...args], { timeout: 600_000, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ops/infra.sh ${args.join(' ')} failed: ${e.stderr || e.message}`, { cause: err });
  }
}

/** The export lines of `ops/infra.sh env` as a map. */
function parseExports(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/^export (\w+)=(.*)$/gm)) out[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1');
  return out;
}

function fromEnv(env: Readonly<Record<string, string | undefined>>): Endpoints | undefined {
  const natsUrl = env['LANTERN_NATS_URL'], redisUrl = env['LANTERN_REDIS_URL'], cql = env['LANTERN_CQL_CONTACT_POINTS'];
  if (!natsUrl || !redisUrl || !cql) return undefined;
  return { natsUrl, redisUrl, cassandra: { contactPoints: cql.split(','), localDataCenter: env['LANTERN_CQL_LOCAL_DC'] || 'datacenter1' } };
}

export async function acquireInfra(given: Endpoints | undefined, env: Readonly<Record<string, string | undefined>> = process.env): Promise<Infra> {
  if (given) return { endpoints: given, source: 'given', release: async () => {} };
  const fromVars = fromEnv(env);
  if (fromVars) return { endpoints: fromVars, source: 'env (LANTERN_NATS_URL, LANTERN_REDIS_URL, LANTERN_CQL_CONTACT_POINTS)', release: async () => {} };
  const { vars, source, release } = await fromInfraSh(SERVICES);
  const endpoints = fromEnv(vars);
  if (!endpoints) throw new Error(`ops/infra.sh env did not print the endpoints: ${JSON.stringify(vars)}`);
  return { endpoints, source, release };
}

/** Only a Redis (the grab ceiling next to the embedded mode): given, LANTERN_REDIS_URL, or ops/infra.sh's. */
export async function acquireRedis(given: string | undefined, env: Readonly<Record<string, string | undefined>> = process.env): Promise<{ redisUrl: string; source: string; release(): Promise<void> }> {
  if (given) return { redisUrl: given, source: 'given', release: async () => {} };
  if (env['LANTERN_REDIS_URL']) return { redisUrl: env['LANTERN_REDIS_URL'], source: 'env (LANTERN_REDIS_URL)', release: async () => {} };
  const { vars, source, release } = await fromInfraSh(['redis']);
  const redisUrl = vars['LANTERN_REDIS_URL'];
  if (!redisUrl) throw new Error(`ops/infra.sh env did not print LANTERN_REDIS_URL: ${JSON.stringify(vars)}`);
  return { redisUrl, source, release };
}

/** Starts those of `services` that are down with ops/infra.sh; release() stops only those again. */
async function fromInfraSh(services: readonly Service[]): Promise<{ vars: Record<string, string>; source: string; release(): Promise<void> }> {
  // `status` exits 1 unless all run; its lines say which do ("nats  running").
  let status: string;
  try {
    status = (await run('bash', [INFRA_SH, 'status'], { timeout: 60_000 })).stdout;
  } catch (err) {
    status = (err as { stdout?: string }).stdout ?? '';
  }
  const down = services.filter((s) => !new RegExp(`^${s}\\s+(running|ready)`, 'm').test(status));
  if (down.length > 0) {
    console.error(`bench: starting ${down.join(', ')} with ops/infra.sh (stopped again at the end)`);
    await infraSh('start', ...down);
  }
  return {
    vars: parseExports(await infraSh('env')),
    source: `ops/infra.sh${down.length > 0 ? ` (started ${down.join(', ')})` : ' (already running)'}`,
    release: async () => { if (down.length > 0) await infraSh('stop', ...down); },
  };
}
