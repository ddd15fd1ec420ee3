// A distributed Lantern for one benchmark run: a fresh keyspace with the schema migrated, then
// M engine workers and N gateway shards as separate processes (`node bin/lantern.mjs worker|start`,
// what ops/cluster.sh runs), over the given NATS, Redis and Cassandra. Optionally the first
// gateway and the first worker run with --cpu-prof (the profile is written when they exit).
//
// No orphans: close() stops every child, and each child kills itself when this process is gone
// (a preloaded watchdog polls its parent pid), so a killed benchmark leaves nothing running.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { PARTITION_LEASE_PREFIX } from '../../engine/partition-leases.ts';
import { SETTINGS_SCHEMA } from '../../gateway/config.ts';
import { createCqlClient } from '../../storage/cql/client.ts';
import { NatsKvLeaseStore } from '../../storage/nats/lease-store.ts';
import { migrate } from '../../storage/cql/schema.ts';
import { BENCH_RATE_LIMIT } from '../lantern-server.ts';
import type { Endpoints } from './infra.ts';

const BIN = fileURLToPath(new URL('../../bin/lantern.mjs', import.meta.url));
const WATCHDOG = `data:text/javascript,const p=process.ppid;setInterval(()=>{if(process.ppid!==p)process.kill(process.pid,'SIGKILL')},500).unref()`;
const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 15_000;
const MAX_OUTPUT = 64 * 1024;
const JWT_AUDIENCE = 'lantern';

export interface ClusterOptions {
  endpoints: Endpoints;
  gateways: number;
  workers: number;
  /** Write V8 CPU profiles of gateway 0 and worker 0 into this directory. */
  profileDir?: string;
  /** Keyspace name prefix (a random suffix is added). */
  keyspacePrefix?: string;
  /** More LANTERN_* settings for every process, on top of the benchmark's (e.g. group size limits). */
  settings?: Record<string, string>;
}

export interface ClusterProcess {
  readonly kind: 'gateway' | 'worker';
  readonly name: string;
  readonly pid: number;
  /** The directory this process writes its .cpuprofile files into on exit (one per thread), when profiled. */
  readonly profileDir: string | undefined;
}

export interface BenchCluster {
  readonly keyspace: string;
  readonly urls: string[];
  readonly jwtSecret: string;
  /** Bearer token of the gateways' admin HTTP API (top-ups). */
  readonly adminToken: string;
  readonly audience: string;
  readonly processes: readonly ClusterProcess[];
  /** What the processes ran with (LANTERN_* settings, secrets removed). */
  readonly settings: Record<string, string>;
  /** Stops every process (SIGTERM, so profiles are written), then drops the keyspace. */
  close(): Promise<void>;
}

class Child implements ClusterProcess {
  private out = '';
  readonly exited: Promise<number | null>;
  constructor(readonly kind: 'gateway' | 'worker', readonly name: string, readonly child: ChildProcess, readonly profileDir: string | undefined) {
    const keep = (d: Buffer): void => { this.out = (this.out + d.toString()).slice(-MAX_OUTPUT); };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }
  get pid(): number { return this.child.pid!; }
  get alive(): boolean { return this.child.exitCode === null && this.child.signalCode === null; }
  get output(): string { return this.out; }
  tail(): string { return this.out.split('\n').slice(-20).map((l) => `  [${this.name}] ${l}`).join('\n'); }

  /** Resolves with what `pattern` captured once the output matches it; fails if the process exits or time runs out. */
  async waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = pattern.exec(this.out);
      if (m) return m;
      if (!this.alive) throw new Error(`${this.name} exited while starting:\n${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.name} not ready after ${timeoutMs} ms:\n${this.tail()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

export async function startCluster(o: ClusterOptions): Promise<BenchCluster> {
  const keyspace = `${o.keyspacePrefix ?? 'lantern_bench'}_${randomBytes(4).toString('hex')}`;
  const jwtSecret = randomBytes(32).toString('hex');
  const adminToken = randomBytes(32).toString('hex');
  const admin = createCqlClient({ contactPoints: o.endpoints.cassandra.contactPoints, localDataCenter: o.endpoints.cassandra.localDataCenter });
  const children: Child[] = [];
  const close = async (): Promise<void> => {
    // Gateways first: they stop taking load before the workers go.
    await Promise.all(children.filter((c) => c.kind === 'gateway').map((c) => c.stop()));
    await Promise.all(children.filter((c) => c.kind === 'worker').map((c) => c.stop()));
    try {
      await admin.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    } finally {
      await admin.shutdown();
    }
  };
  const settings: Record<string, string> = {
    LANTERN_NATS_URL: o.endpoints.natsUrl,
    LANTERN_REDIS_URL: o.endpoints.redisUrl,
    LANTERN_CQL_CONTACT_POINTS: o.endpoints.cassandra.contactPoints.join(','),
    LANTERN_CQL_LOCAL_DC: o.endpoints.cassandra.localDataCenter,
    LANTERN_CQL_KEYSPACE: keyspace,
    LANTERN_JWT_AUDIENCE: JWT_AUDIENCE,
    LANTERN_LOG_LEVEL: 'warn',
    LANTERN_HOST: '127.0.0.1',
    // As in the embedded benchmark: measure the engine, not the per-connection limiter.
    LANTERN_RATE_PER_SEC: String(BENCH_RATE_LIMIT),
    LANTERN_RATE_BURST: String(BENCH_RATE_LIMIT),
    LANTERN_FLOOD_CLOSE_AFTER: String(BENCH_RATE_LIMIT),
    // Lifted, not removed: the per-user limiter still runs (a Redis call per send in worker mode).
    LANTERN_USER_SEND_RATE_PER_SEC: String(BENCH_RATE_LIMIT),
    LANTERN_USER_SEND_BURST: String(BENCH_RATE_LIMIT),
    ...o.settings,
  };
  // The shell's LANTERN_* settings and loaders (tap's NODE_OPTIONS) must not change the processes.
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LANTERN_') && k !== 'NODE_OPTIONS') env[k] = v;
  Object.assign(env, settings, { LANTERN_JWT_SECRET: jwtSecret, LANTERN_ADMIN_TOKEN: adminToken });

  const spawnOne = (kind: 'gateway' | 'worker', index: number): Child => {
    const name = `${kind}-${index}`;
    const profiled = o.profileDir !== undefined && index === 0;
    // A directory per process: tsx's loader runs on its own thread, which writes a profile too.
    const profileDir = profiled ? join(o.profileDir!, name) : undefined;
    const nodeArgs = ['--import', WATCHDOG, ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [])];
    const childEnv = kind === 'gateway' ? { ...env, LANTERN_MODE: 'gateway', LANTERN_PORT: '0' } : env;
    const child = spawn(process.execPath, [...nodeArgs, BIN, kind === 'gateway' ? 'start' : 'worker'], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    const c = new Child(kind, name, child, profileDir);
    children.push(c);
    return c;
  };

  try {
    await admin.connect();
    await migrate(admin, keyspace, { replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}" });
    // Workers first: gateways ask a worker for the store epoch before they serve.
    const workers = Array.from({ length: o.workers }, (_, i) => spawnOne('worker', i));
    await Promise.all(workers.map((w) => w.waitFor(/lantern: worker serving/, READY_TIMEOUT_MS)));
    await partitionsSettled(o.endpoints.natsUrl, o.workers, READY_TIMEOUT_MS);
    const gateways = Array.from({ length: o.gateways }, (_, i) => spawnOne('gateway', i));
    const urls = await Promise.all(gateways.map(async (g) => {
      const m = await g.waitFor(/lantern: listening on (ws:\/\/[^\s]+)/, READY_TIMEOUT_MS);
      const url = m[1]!;
      const port = new URL(url).port;
      const deadline = Date.now() + READY_TIMEOUT_MS;
      while ((await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status, (err: Error) => err.message)) !== 200) {
        if (Date.now() > deadline) throw new Error(`${g.name} never answered /readyz 200:\n${g.tail()}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      return url;
    }));
    return { keyspace, urls, jwtSecret, adminToken, audience: JWT_AUDIENCE, processes: children, settings, close };
  } catch (err) {
    await close().catch((closeErr: unknown) => console.error('bench: cluster cleanup after a failed start failed:', closeErr));
    throw err;
  }
}

/**
 * Waits until the workers share every partition evenly and the lease table has held still for a
 * renewal period: a worker that just joined takes partitions over from the first one, and a
 * request to a partition in handover gets `unavailable`, which would count against the run.
 */
async function partitionsSettled(natsUrl: string, workers: number, timeoutMs: number): Promise<void> {
  const partitions = SETTINGS_SCHEMA.partitions.default;
  const ttlMs = SETTINGS_SCHEMA.partitionLeaseMs.default;
  const nc = await connect({ servers: natsUrl });
  try {
    const leases = await NatsKvLeaseStore.open(nc, { ttlMs });
    const deadline = Date.now() + timeoutMs;
    let previous = '', stableSince = Date.now();
    for (;;) {
      const holders = await leases.holders(PARTITION_LEASE_PREFIX);
      const perWorker = new Map<string, number>();
      for (const owner of holders.values()) perWorker.set(owner, (perWorker.get(owner) ?? 0) + 1);
      const counts = [...perWorker.values()];
      const even = holders.size === partitions && perWorker.size === workers && Math.max(...counts) - Math.min(...counts) <= 1;
      const table = [...holders].sort().join(',');
      if (table !== previous) { previous = table; stableSince = Date.now(); }
      if (even && Date.now() - stableSince >= ttlMs / 2) return;
      if (Date.now() > deadline) throw new Error(`workers did not settle on ${partitions} partitions within ${timeoutMs} ms: ${counts.join('/')} of ${holders.size} held`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await nc.close();
  }
}
