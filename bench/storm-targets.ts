// The servers a storm phase runs against, each started fresh for its phase and closed after it:
// the raw uWebSockets.js server (the ceiling) and embedded Lantern each in child processes of
// their own (connections-server.ts), so the storm's generators and this process never share an
// event loop with them; or a distributed Lantern (distributed/cluster.ts) on NATS, Redis and
// Cassandra (distributed/infra.ts).
import { startCluster, type BenchCluster } from './distributed/cluster.ts';
import { acquireInfra, type Endpoints } from './distributed/infra.ts';
import { buyersPerServerProcess } from './flashsale-bench.ts';
import type { StormProtocol } from './loadgen/storm-messages.ts';
import { ServerChild } from './server-child.ts';


export type StormServerName = 'raw-uws' | 'lantern-embedded' | 'lantern-distributed';

export interface StormServer {
  name: StormServerName;
  protocol: StormProtocol;
  urls: string[];
  auth?: { secret: string; audience: string };
  /** Processes holding the server side of the sockets. */
  processes: number;
  /** Sockets they can hold together (the open-file limit of each, less a reserve). */
  capacity: number;
  /** What Lantern ran with (secrets removed), for the results file. */
  settings: Record<string, unknown> | null;
  /** Where the distributed infrastructure came from. */
  infra?: string;
  /** The server's processes by group (server; gateways and workers), for their CPU during the storm. */
  pids: Record<string, number[]>;
  close(): Promise<void>;
}

/** `processes` raw uWS servers; a storm spreads over them as over gateways. */
export async function startRawServers(processes: number): Promise<StormServer> {
  const started: ServerChild[] = [];
  try {
    for (let i = 0; i < processes; i++) started.push(await ServerChild.start('raw', 'memory'));
  } catch (err) {
    await Promise.all(started.map((s) => s.close()));
    throw err;
  }
  return {
    name: 'raw-uws', protocol: 'raw', urls: started.map((s) => s.ready.url), processes, capacity: buyersPerServerProcess() * processes, settings: null,
    pids: { server: started.map((s) => s.pid) },
    close: async () => { await Promise.all(started.map((s) => s.close())); },
  };
}

/** Embedded Lantern with the benchmark's settings (lantern-server.ts), fresh data dir. */
export async function startEmbeddedLantern(store: 'lmdb' | 'memory'): Promise<StormServer> {
  const s = await ServerChild.start('lantern', store);
  return {
    name: 'lantern-embedded', protocol: 'lantern', urls: [s.ready.url], auth: s.ready.auth!, processes: 1, capacity: buyersPerServerProcess(),
    settings: s.ready.settings ?? null, pids: { server: [s.pid] }, close: () => s.close(),
  };
}

/** `gateways` gateways and `workers` engine workers on a fresh keyspace. */
export async function startDistributedLantern(o: { endpoints?: Endpoints; gateways: number; workers: number }): Promise<StormServer> {
  const infra = await acquireInfra(o.endpoints);
  let cluster: BenchCluster;
  try {
    console.error(`bench: starting ${o.gateways} gateways + ${o.workers} workers ...`);
    cluster = await startCluster({ endpoints: infra.endpoints, gateways: o.gateways, workers: o.workers });
  } catch (err) {
    await infra.release();
    throw err;
  }
  return {
    name: 'lantern-distributed', protocol: 'lantern', urls: cluster.urls, auth: { secret: cluster.jwtSecret, audience: cluster.audience },
    processes: o.gateways, capacity: buyersPerServerProcess() * o.gateways,
    settings: { gateways: o.gateways, workers: o.workers, ...cluster.settings }, infra: infra.source,
    pids: {
      gateways: cluster.processes.filter((p) => p.kind === 'gateway').map((p) => p.pid),
      workers: cluster.processes.filter((p) => p.kind === 'worker').map((p) => p.pid),
    },
    close: async () => {
      try {
        await cluster.close();
      } finally {
        await infra.release();
      }
    },
  };
}

/** Runs `phase` against a server started for it, and always closes the server. */
export async function withServer<T>(start: () => Promise<StormServer>, phase: (s: StormServer) => Promise<T>): Promise<T> {
  const server = await start();
  try {
    return await phase(server);
  } finally {
    await server.close().catch((err: unknown) => console.error(`bench: closing ${server.name} failed:`, err));
  }
}
