// Gateway and worker processes (`node bin/lantern.mjs start|worker`) for fault tests: the real
// binaries over real NATS, Redis and Cassandra, so a test can kill -9 one of them.
//
// No orphans: every child is killed with SIGKILL in cleanup() (call it from t.teardown), on this
// process' exit, and by the child itself when its parent disappears (a watchdog preloaded with
// --import polls process.ppid), so even a test process killed by tap's timeout leaves nothing.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCqlClient } from '../../storage/cql/client.ts';
import { migrate } from '../../storage/cql/schema.ts';
import type { CassandraEndpoint } from './infra.ts';

const BIN = fileURLToPath(new URL('../../bin/lantern.mjs', import.meta.url));
/** Kills the child as soon as its parent (the test) is gone: reparenting changes process.ppid. */
const WATCHDOG = `data:text/javascript,const p=process.ppid;setInterval(()=>{if(process.ppid!==p)process.kill(process.pid,'SIGKILL')},300).unref()`;
/** Output kept per process for diagnostics (the tail). */
const MAX_OUTPUT = 256 * 1024;

export interface ClusterSettings {
  natsUrl: string;
  redisUrl: string;
  cassandra: CassandraEndpoint;
  keyspace: string;
  jwtSecret: string;
  partitions?: number;
  partitionLeaseMs?: number;
  presenceSessionTtlMs?: number;
  engineTimeoutMs?: number;
  /** More LANTERN_* variables (they win over the above). */
  env?: Record<string, string>;
}

export type ProcessKind = 'gateway' | 'worker';

/** Polls `cond` every `everyMs` until it returns a truthy value; fails after `timeoutMs` naming `what`. */
export async function until<T>(cond: () => T | Promise<T>, what: string, timeoutMs = 15_000, everyMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

export class LanternProcess {
  private child: ChildProcess | undefined;
  private exitedPromise: Promise<number | null> = Promise.resolve(null);
  private out = '';
  /** Fixed after the first start, so a restarted gateway comes back on the same URL. */
  private boundPort = 0;

  constructor(readonly kind: ProcessKind, readonly name: string, private readonly env: NodeJS.ProcessEnv, private readonly readyTimeoutMs: number) {}

  get pid(): number | undefined { return this.child?.pid; }
  get alive(): boolean { return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null; }
  get port(): number { return this.boundPort; }
  /** The gateway's WebSocket URL. */
  get url(): string { return `ws://127.0.0.1:${this.boundPort}/ws`; }
  /** Everything the process printed (stdout and stderr, the last 256 KiB) across restarts. */
  get output(): string { return this.out; }
  /** Resolves with the exit code (null when killed by a signal) once the current incarnation exits. */
  get exited(): Promise<number | null> { return this.exitedPromise; }

  /** Spawn and wait until it serves: a gateway's /readyz answers 200, a worker says it is serving. */
  async start(): Promise<void> {
    if (this.alive) throw new Error(`${this.name} is already running (pid ${this.pid})`);
    const args = ['--import', WATCHDOG, BIN, this.kind === 'gateway' ? 'start' : 'worker'];
    const env = { ...this.env, ...(this.kind === 'gateway' ? { LANTERN_MODE: 'gateway', LANTERN_PORT: String(this.boundPort) } : {}) };
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    live.add(this);
    this.exitedPromise = new Promise((resolve) => child.once('exit', (code) => { live.delete(this); resolve(code); }));
    // This incarnation's output, read for the ready line (a restart must not see the last one's).
    let current = '';
    const append = (d: Buffer) => {
      const text = d.toString();
      this.out += text;
      if (this.out.length > MAX_OUTPUT) this.out = this.out.slice(-MAX_OUTPUT);
      if (current.length < MAX_OUTPUT) current += text;
    };
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    let died = false;
    void this.exitedPromise.then(() => { died = true; });
    const deadline = Date.now() + this.readyTimeoutMs;
    for (;;) {
      if (died) throw new Error(`${this.name} exited while starting:\n${this.tail()}`);
      if (await this.ready(current).catch(() => false)) return;
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`${this.name} not ready after ${this.readyTimeoutMs} ms:\n${this.tail()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private async ready(output: string): Promise<boolean> {
    if (this.kind === 'worker') return /lantern: worker serving/.test(output);
    const m = /lantern: listening on ws:\/\/[^:]+:(\d+)\//.exec(output);
    if (!m) return false;
    this.boundPort = Number(m[1]);
    const res = await fetch(`http://127.0.0.1:${this.boundPort}/readyz`);
    return res.status === 200;
  }

  /** Send a signal (default SIGKILL: no shutdown code runs) and wait until the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    if (!this.alive) return this.child?.exitCode ?? null;
    this.child!.kill(signal);
    return this.exitedPromise;
  }

  /** SIGTERM (graceful shutdown), SIGKILL if it is still there after `graceMs`. */
  async stop(graceMs = 10_000): Promise<number | null> {
    if (!this.alive) return this.child?.exitCode ?? null;
    this.child!.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
    try {
      return await this.exitedPromise;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kill (if running) and start again; a gateway keeps its port. */
  async restart(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.kill(signal);
    await this.start();
  }

  /** The last lines of output, for failure messages. */
  tail(lines = 40): string {
    return this.out.split('\n').slice(-lines).map((l) => `  [${this.name}] ${l}`).join('\n');
  }
}

/** Every child still running, killed synchronously if the test process exits without cleanup. */
const live = new Set<LanternProcess>();
process.once('exit', () => {
  for (const p of live) if (p.pid !== undefined) { try { process.kill(p.pid, 'SIGKILL'); } catch { /* already gone */ } }
});

/** Gateways and workers of one test cluster, sharing settings. */
export class ProcessCluster {
  readonly processes: LanternProcess[] = [];
  private readonly env: NodeJS.ProcessEnv;

  constructor(settings: ClusterSettings, private readonly readyTimeoutMs = 30_000) {
    const base: NodeJS.ProcessEnv = {};
    // The parent's LANTERN_* settings and tap's NODE_OPTIONS loaders must not leak into the children.
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LANTERN_') && k !== 'NODE_OPTIONS') base[k] = v;
    this.env = {
      ...base,
      LANTERN_NATS_URL: settings.natsUrl,
      LANTERN_REDIS_URL: settings.redisUrl,
      LANTERN_CQL_CONTACT_POINTS: settings.cassandra.contactPoints.join(','),
      LANTERN_CQL_LOCAL_DC: settings.cassandra.localDataCenter,
      LANTERN_CQL_KEYSPACE: settings.keyspace,
      LANTERN_JWT_SECRET: settings.jwtSecret,
      LANTERN_PARTITIONS: String(settings.partitions ?? 8),
      LANTERN_PARTITION_LEASE_MS: String(settings.partitionLeaseMs ?? 1500),
      LANTERN_PRESENCE_SESSION_TTL_MS: String(settings.presenceSessionTtlMs ?? 60_000),
      LANTERN_ENGINE_TIMEOUT_MS: String(settings.engineTimeoutMs ?? 2000),
      LANTERN_LOG_LEVEL: 'info',
      LANTERN_HOST: '127.0.0.1',
      ...settings.env,
    };
  }

  gateway(name = `gateway-${this.processes.length}`): LanternProcess {
    return this.add(new LanternProcess('gateway', name, this.env, this.readyTimeoutMs));
  }

  worker(name = `worker-${this.processes.length}`): LanternProcess {
    return this.add(new LanternProcess('worker', name, this.env, this.readyTimeoutMs));
  }

  /** SIGKILL every process of the cluster and wait until all are gone. Safe to call twice. */
  async cleanup(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.kill('SIGKILL')));
  }

  /** Output of every process, for a failing test's diagnostics. */
  tails(lines = 30): string {
    return this.processes.map((p) => p.tail(lines)).join('\n');
  }

  /** Write each process' whole output to a temp file; returns a line naming the files. */
  async dumpLogs(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'lantern-fault-logs-'));
    await Promise.all(this.processes.map((p) => writeFile(join(dir, `${p.name}.log`), p.output)));
    return `process logs: ${dir}/{${this.processes.map((p) => p.name).join(',')}}.log`;
  }

  /** For t.teardown: when the test failed, show the output tails and keep the full logs. */
  async reportIfFailed(t: { passing(): boolean; comment(...args: unknown[]): void }): Promise<void> {
    if (t.passing()) return;
    t.comment(this.tails(15));
    t.comment(await this.dumpLogs());
  }

  private add(p: LanternProcess): LanternProcess {
    this.processes.push(p);
    return p;
  }
}

/** A fresh keyspace with the schema migrated; drop() removes it (call it in teardown). */
export async function freshKeyspace(cassandra: CassandraEndpoint, prefix = 'lantern_fault'): Promise<{ keyspace: string; drop(): Promise<void> }> {
  const keyspace = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = () => createCqlClient({ contactPoints: cassandra.contactPoints, localDataCenter: cassandra.localDataCenter });
  const client = admin();
  try {
    await migrate(client, keyspace, { replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}" });
  } finally {
    await client.shutdown();
  }
  return {
    keyspace,
    async drop() {
      const c = admin();
      try {
        await c.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
      } finally {
        await c.shutdown();
      }
    },
  };
}
