// Real infrastructure for integration tests, through the project's own ops scripts:
// nats-server and redis-server are private per test (temp data dir, free ports; they start in
// ~0.1 s and can be stopped and restarted for fault tests); Cassandra is shared by the run
// (ops/test-cassandra.sh). The binaries are installed by `npm test`'s pretest step.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const OPS = fileURLToPath(new URL('../../ops/', import.meta.url));

/**
 * Where test servers listen: below the kernel's ephemeral range (32768+ here), which the OS hands
 * to outgoing connections. A port picked there (listen(0)) can be taken by any client socket before
 * the server binds it, and tests open thousands of client sockets at once.
 */
const SERVER_PORTS = { from: 20_000, to: 32_000 };

async function canListen(port: number): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A free loopback port outside the ephemeral range (another process could still take it before we bind, rarely). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = SERVER_PORTS.from + Math.floor(Math.random() * (SERVER_PORTS.to - SERVER_PORTS.from));
    if (await canListen(port)) return port;
  }
}

async function infra(env: Record<string, string>, ...args: string[]): Promise<void> {
  try {
    await run(join(OPS, 'infra.sh'), args, { env: { ...process.env, ...env }, timeout: 300_000 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`ops/infra.sh ${args.join(' ')} failed: ${e.stderr || e.stdout || e.message}`);
  }
}

export interface TestService {
  readonly url: string;
  readonly port: number;
  /** Stop the server (data kept). */
  stop(): Promise<void>;
  /** Start it again on the same port with the same data. */
  start(): Promise<void>;
  /** Stop it and delete its data. */
  close(): Promise<void>;
}

async function privateService(name: 'nats' | 'redis', ports: Record<string, number>, url: string, port: number): Promise<TestService> {
  const dir = await mkdtemp(join(tmpdir(), `lantern-${name}-`));
  const env = { LANTERN_INFRA_DIR: dir, ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])) };
  try {
    await infra(env, 'start', name);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  let running = true;
  const stop = async (): Promise<void> => { if (running) { running = false; await infra(env, 'stop', name); } };
  return {
    url,
    port,
    stop,
    async start() { if (!running) { await infra(env, 'start', name); running = true; } },
    async close() { await stop(); await rm(dir, { recursive: true, force: true }); },
  };
}

/** Starts a private server, on other ports if the chosen ones were taken between the check and the bind. */
async function onFreePorts(start: () => Promise<TestService>): Promise<TestService> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt >= 3 || !/address already in use|Address already in use|EADDRINUSE/.test(String((err as Error).message))) throw err;
    }
  }
}

/** A private nats-server with JetStream on free ports. */
export async function startNats(): Promise<TestService> {
  return onFreePorts(async () => {
    const port = await freePort();
    const monitor = await freePort();
    return privateService('nats', { LANTERN_NATS_PORT: port, LANTERN_NATS_MONITOR_PORT: monitor }, `nats://127.0.0.1:${port}`, port);
  });
}

/** A private redis-server on a free port. */
export async function startRedis(): Promise<TestService> {
  return onFreePorts(async () => {
    const port = await freePort();
    return privateService('redis', { LANTERN_REDIS_PORT: port }, `redis://127.0.0.1:${port}`, port);
  });
}

export interface CassandraEndpoint { contactPoints: string[]; localDataCenter: string }

/** The run's shared Cassandra (LANTERN_CQL_CONTACT_POINTS if set, else ops/test-cassandra.sh). */
export async function sharedCassandra(): Promise<CassandraEndpoint> {
  const localDataCenter = process.env['LANTERN_CQL_LOCAL_DC'] ?? 'datacenter1';
  const given = process.env['LANTERN_CQL_CONTACT_POINTS'];
  if (given) return { contactPoints: given.split(','), localDataCenter };
  try {
    await run(join(OPS, 'test-cassandra.sh'), ['start'], { timeout: 600_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ops/test-cassandra.sh start failed: ${e.stderr || e.message}`);
  }
  const port = process.env['LANTERN_TEST_CQL_PORT'] ?? '19042';
  return { contactPoints: [`127.0.0.1:${port}`], localDataCenter };
}
