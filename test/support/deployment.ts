// One interface over both ways to run Lantern, so the behaviour suite runs unchanged against each:
// embedded (one process with LMDB, through startTestServer) and distributed (2 gateway shards and
// 2 engine workers in this process, over a private nats-server and redis-server and a fresh
// keyspace on the run's shared Cassandra). Consecutive connects land on different gateways, so
// the users and devices of a test are spread over both shards.
import { randomBytes } from 'node:crypto';
import { startLantern, type RunningLantern } from '../../gateway/main.ts';
import type { Settings } from '../../gateway/config.ts';
import { startWorker, type RunningWorker } from '../../gateway/worker.ts';
import { createCqlClient } from '../../storage/cql/client.ts';
import { migrate } from '../../storage/cql/schema.ts';
import { sharedCassandra, startNats, startRedis, type TestService } from './infra.ts';
import { startTestServer } from './server.ts';
import { mintToken, WireClient } from './wire-client.ts';

export const MODES = ['embedded', 'distributed'] as const;
export type Mode = (typeof MODES)[number];

export interface Deployment {
  readonly mode: Mode;
  /** WebSocket URL of each gateway (one in embedded mode); new ones after restart(). */
  readonly urls: readonly string[];
  readonly secret: string;
  token(user: string, ttlSec?: number): Promise<string>;
  /** A hello'd client on gateway `gateway`, or (default) on the next gateway round-robin. */
  connect(user: string, device?: string, gateway?: number): Promise<WireClient>;
  /** Stop every process (data kept) and start them again. */
  restart(): Promise<void>;
  /** Tear everything down and delete the data. */
  close(): Promise<void>;
}

/**
 * Settings for every process of the deployment: the embedded server, or both gateways and both
 * workers (each reads the settings it uses: frame and rate limits in gateways, engine settings
 * such as maxGroupMembers in workers).
 */
export type DeploymentOverrides = Partial<Settings>;

export const DISTRIBUTED_GATEWAYS = 2;
export const DISTRIBUTED_WORKERS = 2;
const PARTITIONS = 8;
/**
 * Both workers live in the test process, so a stall of the whole process (a loaded 2-core CI
 * machine) must not outlast the leases' slack (ttl - ttl/3 - ttl/10): at 1500 ms a ~1 s stall
 * dropped every partition mid-test (`unavailable`). 4500 ms tolerates ~2.5 s and costs ~0.8 s
 * per start (workers rebalance once per ttl/3); no test here kills a worker, and a stopped one
 * releases its leases at once.
 */
const PARTITION_LEASE_MS = 4500;
const SHARE_TIMEOUT_MS = 20_000;

/** The modes to run: both by default; LANTERN_TEST_MODES=embedded|distributed|embedded,distributed narrows. */
export function testModes(env: Readonly<Record<string, string | undefined>> = process.env): Mode[] {
  const raw = env['LANTERN_TEST_MODES']?.trim();
  if (!raw) return [...MODES];
  const picked = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const unknown = picked.filter((m) => !(MODES as readonly string[]).includes(m));
  if (unknown.length > 0 || picked.length === 0) {
    throw new Error(`LANTERN_TEST_MODES must be a comma-separated list of ${MODES.join(', ')}; got ${JSON.stringify(raw)}`);
  }
  return MODES.filter((m) => picked.includes(m));
}

export function startDeployment(mode: Mode, overrides: DeploymentOverrides = {}): Promise<Deployment> {
  return mode === 'embedded' ? startEmbedded(overrides) : startDistributed(overrides);
}

async function startEmbedded(overrides: DeploymentOverrides): Promise<Deployment> {
  const server = await startTestServer(overrides);
  return {
    mode: 'embedded',
    get urls() { return [server.url]; },
    secret: server.secret,
    token: (user, ttl) => server.token(user, ttl),
    connect: (user, device = 'phone', gateway = 0) => {
      if (gateway !== 0) throw new RangeError(`embedded mode has one gateway (0), not ${gateway}`);
      return server.connect(user, device);
    },
    restart: () => server.restart(),
    close: () => server.close(),
  };
}

async function startDistributed(overrides: DeploymentOverrides): Promise<Deployment> {
  const secret = randomBytes(24).toString('base64url');
  const keyspace = `lantern_e2e_${randomBytes(4).toString('hex')}`;
  // Everything started so far, torn down in reverse if a later step fails or on close().
  const cleanups: Array<() => Promise<void>> = [];
  const teardown = async (): Promise<void> => {
    const errors: unknown[] = [];
    for (const step of cleanups.splice(0).reverse()) await step().catch((err: unknown) => errors.push(err));
    if (errors.length > 0) throw new AggregateError(errors, 'distributed deployment teardown failed');
  };
  const gateways: RunningLantern[] = [];
  const workers: RunningWorker[] = [];
  const stopProcesses = async (): Promise<void> => {
    // Gateways first: they drain their sockets while the workers still answer.
    for (const g of gateways.splice(0)) await g.close();
    for (const w of workers.splice(0)) await w.close();
  };

  try {
    const nats: TestService = await startNats();
    cleanups.push(() => nats.close());
    const redis: TestService = await startRedis();
    cleanups.push(() => redis.close());
    const cassandra = await sharedCassandra();
    const admin = createCqlClient({ contactPoints: cassandra.contactPoints, localDataCenter: cassandra.localDataCenter });
    cleanups.push(() => admin.shutdown());
    await migrate(admin, keyspace, { replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}" });
    cleanups.push(async () => { await admin.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`); });
    cleanups.push(stopProcesses);

    const common: Partial<Settings> = { logLevel: 'warn', ...overrides, natsUrl: nats.url, partitions: PARTITIONS };
    const workerSettings: Partial<Settings> = {
      partitionLeaseMs: PARTITION_LEASE_MS, ...common, redisUrl: redis.url,
      cqlContactPoints: cassandra.contactPoints.join(','), cqlLocalDc: cassandra.localDataCenter, cqlKeyspace: keyspace,
    };
    const gatewaySettings: Partial<Settings> = { ...common, mode: 'gateway', host: '127.0.0.1', port: 0, jwtSecret: secret };
    const startProcesses = async (): Promise<void> => {
      // Each process is recorded as soon as it runs, so a failure of its sibling still stops it.
      await settleAll(Array.from({ length: DISTRIBUTED_WORKERS }, () => startWorker(workerSettings).then((w) => { workers.push(w); })));
      await untilPartitionsShared(workers);
      await settleAll(Array.from({ length: DISTRIBUTED_GATEWAYS }, () => startLantern(gatewaySettings).then((g) => { gateways.push(g); })));
    };
    await startProcesses();

    let next = 0;
    return {
      mode: 'distributed',
      get urls() { return gateways.map((g) => g.url); },
      secret,
      token: (user, ttl) => mintToken(secret, user, ttl),
      async connect(user, device = 'phone', gateway) {
        const index = gateway ?? next++ % gateways.length;
        const target = gateways[index];
        if (!target) throw new RangeError(`no gateway ${index} (there are ${gateways.length})`);
        return WireClient.connect(target.url, await mintToken(secret, user), device);
      },
      async restart() {
        await stopProcesses();
        await startProcesses();
      },
      close: teardown,
    };
  } catch (err) {
    await teardown().catch((cleanupErr: unknown) => { throw new AggregateError([err, cleanupErr], 'starting a distributed deployment failed, and so did its cleanup'); });
    throw err;
  }
}

/** Wait for every start, then fail with the first error (unlike Promise.all, which leaves the others running unseen). */
async function settleAll(starts: Array<Promise<void>>): Promise<void> {
  const failed = (await Promise.allSettled(starts)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * Wait until every worker serves some partitions and together they serve all of them (the first
 * to start claims everything, then hands back what exceeds its share): before that, requests to a
 * partition in handover would get `unavailable`, which no behaviour test expects.
 */
async function untilPartitionsShared(workers: readonly RunningWorker[]): Promise<void> {
  const deadline = Date.now() + SHARE_TIMEOUT_MS;
  for (;;) {
    const owned = workers.map((w) => w.owned().length);
    if (owned.every((n) => n > 0) && owned.reduce((a, b) => a + b, 0) === PARTITIONS) return;
    if (Date.now() > deadline) throw new Error(`workers did not share the ${PARTITIONS} partitions within ${SHARE_TIMEOUT_MS} ms: ${owned.join('/')}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
