// `npm run bench -- connections`: issue 6's connection scale. N authenticated connections (hello +
// welcome, a token per user) are opened by generator processes (loadgen/idle-run.ts, each bound to
// its own 127.x source addresses) and then held idle. Measured: connect time (total, and p50/p99 per
// connection), the server's RSS (/proc/<pid>/status VmRSS) before and after and the difference per
// connection, its V8 heap when it can be asked, the generators' RSS per connection, and the CPU of
// every process while nothing happens for `idleMs`. The same number of sockets held by the raw
// uWebSockets.js server (baseline/uws-echo.ts) in the same run gives the ratio Lantern / raw.
// Embedded: Lantern in a child process (connections-server.ts) so its memory is measured alone; one
// process holds every socket, so the open-file limit caps it. Distributed: the sockets spread over N
// gateway processes (distributed/cluster.ts), and the raw baseline over as many raw processes.
// Writes bench/results/connections-<ISO date>.json. See bench/README.md, "Connection scale".
import { readFileSync } from 'node:fs';
import { startCluster, type BenchCluster } from './distributed/cluster.ts';
import { acquireInfra, type Endpoints } from './distributed/infra.ts';
import { coresBetween, sampleCpu, type CoresUsed } from './distributed/proc-cpu.ts';
import { buyersPerServerProcess } from './flashsale-bench.ts';
import { CONNECTIONS_PER_GENERATOR, CONNECTIONS_PER_SOURCE_ADDRESS, IdleCrowd, type ConnectFigures } from './loadgen/idle-run.ts';
import type { IdleProtocol } from './loadgen/idle-messages.ts';
import { attempt } from './phase-attempt.ts';
import { gitCommit, machine, packageVersion, writeResults, type PhaseFailure } from './results-file.ts';
import { ServerChild } from './server-child.ts';

export const DEFAULT_IDLE_MS = 10_000;
/** After the last connection: the server finishes what the hellos started before its memory is read. */
const DEFAULT_SETTLE_MS = 2_000;
/** Bound on connecting: 5 min, or 10 ms per connection when more (distributed hellos ran ~250/s on this box). */
const connectTimeoutMs = (connections: number): number => Math.max(300_000, connections * 10);

export interface ConnectionsBenchOptions {
  modes: Array<'embedded' | 'distributed'>;
  connections: number;
  /** How long the connections sit idle while CPU is measured (ms). */
  idleMs: number;
  store: 'lmdb' | 'memory';
  gateways: number;
  engineWorkers: number;
  /** Generator processes (default ceil(connections / CONNECTIONS_PER_GENERATOR)). */
  loadWorkers?: number;
  settleMs?: number;
  /** Infrastructure for the distributed mode (tests); default LANTERN_* env, else ops/infra.sh. */
  endpoints?: Endpoints;
}

export interface MemoryFigures {
  rssBeforeBytes: number;
  rssAfterBytes: number;
  /** (after - before) / connections held. */
  rssPerConnectionBytes: number | null;
}

export interface ConnectionsPhase {
  server: 'lantern-embedded' | 'lantern-distributed' | 'uws-raw';
  /** Processes holding the server side of the sockets. */
  serverProcesses: number;
  /** Connections asked for, when the servers' open-file limit capped them. */
  connectionsAsked?: number;
  connections: number;
  /** Welcomed (raw: upgraded) and still open at the end of the idle window. */
  held: number;
  connect: ConnectFigures;
  /** The processes holding the sockets (all of them together). */
  serverMemory: MemoryFigures & {
    /** V8 heap after a full GC (embedded and raw: the child is asked; null for gateways). */
    heapUsedBeforeBytes: number | null;
    heapUsedAfterBytes: number | null;
    heapPerConnectionBytes: number | null;
  };
  /** Distributed: the engine workers' RSS too (presence sessions live there). */
  workerMemory?: MemoryFigures;
  generatorMemory: MemoryFigures;
  idle: {
    /** Cores per process group while the connections sat idle (server, workers, generator, ...). */
    cpu: CoresUsed;
    /** WebSocket pings the clients got from the server in the window, data frames, and sockets closed. */
    pings: number;
    frames: number;
    closed: number;
    closeSamples: string[];
  };
}

type Phase = ConnectionsPhase | PhaseFailure;

/** Resident set of a process from /proc/<pid>/status (bytes); 0 when it is gone or not Linux. */
export function vmRssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

const rssOf = (pids: readonly number[]): number => pids.reduce((sum, pid) => sum + vmRssBytes(pid), 0);
const perConnection = (before: number, after: number, n: number): number | null => (n > 0 ? Math.round((after - before) / n) : null);
const memory = (before: number, after: number, n: number): MemoryFigures => ({ rssBeforeBytes: before, rssAfterBytes: after, rssPerConnectionBytes: perConnection(before, after, n) });
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The RSS of `pids` once it holds still (within 1 MiB per process over a second, at most 15 s): a
 * just-started process keeps returning memory for a few seconds (V8's memory reducer, the tsx
 * loader thread), which read too early shows up as negative bytes per connection.
 */
async function steadyRss(pids: readonly number[]): Promise<number> {
  const deadline = Date.now() + 15_000;
  let last = rssOf(pids);
  for (;;) {
    await sleep(1_000);
    const now = rssOf(pids);
    if (Math.abs(now - last) <= pids.length * 1024 * 1024 || Date.now() > deadline) return now;
    last = now;
  }
}

/** Where the sockets go and which processes hold them. */
interface Target {
  server: ConnectionsPhase['server'];
  protocol: IdleProtocol;
  urls: string[];
  auth?: { secret: string; audience: string };
  serverPids: number[];
  workerPids?: number[];
  /** Other processes whose CPU is worth seeing while idle (nats, redis, ...). */
  groups?: Record<string, number[]>;
  /** V8 heap of the server side after a GC, when it can be asked. */
  heapUsed?: () => Promise<number>;
  /** Sockets the server side can hold (open files of its processes). */
  capacity: number;
}

async function idlePhase(o: ConnectionsBenchOptions, t: Target, sourceBlock: number): Promise<ConnectionsPhase> {
  const n = Math.min(o.connections, t.capacity);
  if (n < o.connections) console.error(`bench: ${o.connections} connections do not fit the open-file limit of ${t.serverPids.length} server process(es): ${n} (see bench/README.md, "Connection scale")`);
  await sleep(o.settleMs ?? DEFAULT_SETTLE_MS); // a just-started server is still settling (JIT, lazy allocations)
  const heapBefore = t.heapUsed ? await t.heapUsed() : null;
  const serverBefore = await steadyRss(t.serverPids);
  const workersBefore = t.workerPids ? rssOf(t.workerPids) : 0;
  let generatorBefore = 0;
  console.error(`bench: ${t.server}: connecting ${n} ...`);
  const crowd = await IdleCrowd.open({
    urls: t.urls, connections: n, protocol: t.protocol, ...(t.auth ? { auth: t.auth } : {}), sourceBlock,
    setupTimeoutMs: connectTimeoutMs(n), ...(o.loadWorkers ? { workers: o.loadWorkers } : {}),
    beforeConnect: (pids) => { generatorBefore = rssOf(pids); },
  });
  try {
    const c = crowd.connect;
    console.error(`bench: ${t.server}: ${c.held} connected in ${c.totalMs} ms by ${c.generators} generators (${c.failed} failed, ${c.reconnects} reconnects)`);
    await sleep(o.settleMs ?? DEFAULT_SETTLE_MS);
    const heapAfter = t.heapUsed ? await t.heapUsed() : null;
    const serverAfter = await steadyRss(t.serverPids); // read as the "before" was: after the GC has settled
    const workersAfter = t.workerPids ? rssOf(t.workerPids) : 0;
    const generatorAfter = rssOf(crowd.pids);

    const groups = { server: t.serverPids, ...(t.workerPids ? { workers: t.workerPids } : {}), ...t.groups, generator: crowd.pids, bench: [process.pid] };
    const statusBefore = await crowd.status();
    const cpuBefore = sampleCpu(groups);
    await sleep(o.idleMs);
    const cpuAfter = sampleCpu(groups);
    const statusAfter = await crowd.status();
    return {
      server: t.server, serverProcesses: t.serverPids.length, ...(n < o.connections ? { connectionsAsked: o.connections } : {}),
      connections: n, held: statusAfter.open, connect: c,
      serverMemory: {
        ...memory(serverBefore, serverAfter, c.held),
        heapUsedBeforeBytes: heapBefore, heapUsedAfterBytes: heapAfter,
        heapPerConnectionBytes: heapBefore === null || heapAfter === null ? null : perConnection(heapBefore, heapAfter, c.held),
      },
      ...(t.workerPids ? { workerMemory: memory(workersBefore, workersAfter, c.held) } : {}),
      generatorMemory: memory(generatorBefore, generatorAfter, c.held),
      idle: {
        cpu: coresBetween(cpuBefore, cpuAfter),
        pings: statusAfter.pings - statusBefore.pings, frames: statusAfter.frames - statusBefore.frames,
        closed: statusAfter.closed, closeSamples: statusAfter.closeSamples,
      },
    };
  } finally {
    await crowd.close();
  }
}

/** The raw uWS baseline on `processes` processes, holding as many sockets as the Lantern phase did. */
async function rawPhase(o: ConnectionsBenchOptions, processes: number, connections: number, sourceBlock: number): Promise<ConnectionsPhase> {
  const servers: ServerChild[] = [];
  try {
    for (let i = 0; i < processes; i++) servers.push(await ServerChild.start('raw', o.store));
    const figures = await idlePhase({ ...o, connections }, {
      server: 'uws-raw', protocol: 'raw', urls: servers.map((s) => s.ready.url), serverPids: servers.map((s) => s.pid),
      heapUsed: async () => (await Promise.all(servers.map((s) => s.heapUsed()))).reduce((a, b) => a + b, 0),
      capacity: buyersPerServerProcess() * processes,
    }, sourceBlock);
    return figures;
  } finally {
    await Promise.all(servers.map((s) => s.close()));
  }
}

export interface ConnectionsResults {
  phases: Record<string, Phase>;
  ratios: Record<string, number | null>;
  infra: string | null;
  cluster: { gateways: number; workers: number; settings: Record<string, string> } | null;
  embeddedSettings: Record<string, unknown> | null;
}

export async function runConnections(o: ConnectionsBenchOptions): Promise<ConnectionsResults> {
  const phases: Record<string, Phase> = {};
  const ratios: Record<string, number | null> = {};
  const perServer = buyersPerServerProcess();
  let embeddedSettings: Record<string, unknown> | null = null;
  let cluster: ConnectionsResults['cluster'] = null;
  let infraSource: string | null = null;
  // Source address blocks: one per phase, so no phase binds ports another left in TIME_WAIT.
  let block = 0;
  const heldBy = (name: string): number | undefined => {
    const p = phases[name];
    return p && 'held' in p ? p.connect.held : undefined;
  };
  const ratio = (mode: string): void => {
    const l = phases[`${mode}-lantern`], r = phases[`${mode}-raw`];
    const a = l && 'serverMemory' in l ? l.serverMemory.rssPerConnectionBytes : null;
    const b = r && 'serverMemory' in r ? r.serverMemory.rssPerConnectionBytes : null;
    ratios[`${mode}: lantern / raw uWS server RSS per connection`] = a !== null && b !== null && b > 0 ? Math.round((a / b) * 100) / 100 : null;
    // The raw server's growth can be below the noise of its RSS (null then); its V8 heap still compares.
    const ha = l && 'serverMemory' in l ? l.serverMemory.heapPerConnectionBytes : null;
    const hb = r && 'serverMemory' in r ? r.serverMemory.heapPerConnectionBytes : null;
    ratios[`${mode}: lantern / raw uWS server heap per connection`] = ha !== null && hb !== null && hb > 0 ? Math.round((ha / hb) * 100) / 100 : null;
  };

  if (o.modes.includes('embedded')) {
    const lanternBlock = ++block, rawBlock = ++block;
    await attempt(phases, 'embedded-lantern', async () => {
      const server = await ServerChild.start('lantern', o.store);
      embeddedSettings = server.ready.settings ?? null;
      try {
        return await idlePhase(o, {
          server: 'lantern-embedded', protocol: 'lantern', urls: [server.ready.url], auth: server.ready.auth!,
          serverPids: [server.pid], heapUsed: () => server.heapUsed(), capacity: perServer,
        }, lanternBlock);
      } finally {
        await server.close();
      }
    });
    const held = heldBy('embedded-lantern');
    if (held !== undefined && held > 0) await attempt(phases, 'embedded-raw', () => rawPhase(o, 1, held, rawBlock));
    else phases['embedded-raw'] = { error: 'skipped: the Lantern phase held no connections to compare with' };
    ratio('embedded');
  }

  if (o.modes.includes('distributed')) {
    const lanternBlock = ++block, rawBlock = ++block;
    const infra = await acquireInfra(o.endpoints);
    infraSource = infra.source;
    try {
      let c: BenchCluster | undefined;
      try {
        await attempt(phases, 'distributed-lantern', async () => {
          console.error(`bench: starting ${o.gateways} gateways + ${o.engineWorkers} workers ...`);
          c = await startCluster({ endpoints: infra.endpoints, gateways: o.gateways, workers: o.engineWorkers });
          const running = c;
          cluster = { gateways: o.gateways, workers: o.engineWorkers, settings: running.settings };
          return idlePhase(o, {
            server: 'lantern-distributed', protocol: 'lantern', urls: running.urls, auth: { secret: running.jwtSecret, audience: running.audience },
            serverPids: running.processes.filter((p) => p.kind === 'gateway').map((p) => p.pid),
            workerPids: running.processes.filter((p) => p.kind === 'worker').map((p) => p.pid),
            capacity: perServer * o.gateways,
          }, lanternBlock);
        });
      } finally {
        await (c as BenchCluster | undefined)?.close().catch((err: unknown) => console.error('bench: stopping the cluster failed:', err));
      }
    } finally {
      await infra.release();
    }
    const held = heldBy('distributed-lantern');
    if (held !== undefined && held > 0) await attempt(phases, 'distributed-raw', () => rawPhase(o, o.gateways, held, rawBlock));
    else phases['distributed-raw'] = { error: 'skipped: the Lantern phase held no connections to compare with' };
    ratio('distributed');
  }
  return { phases, ratios, infra: infraSource, cluster, embeddedSettings };
}

/** Runs the modes and writes the results file into `out`. */
export async function connectionsBench(o: ConnectionsBenchOptions, out: string): Promise<{ file: string; body: ReturnType<typeof resultsBody> }> {
  const date = new Date();
  const machineAtStart = machine(); // before our own load lifts the load average
  const r = await runConnections(o);
  const body = resultsBody(o, date, machineAtStart, r);
  return { file: await writeResults(out, 'connections', date, body), body };
}

function resultsBody(o: ConnectionsBenchOptions, date: Date, machineAtStart: Record<string, unknown>, r: ConnectionsResults) {
  const { endpoints: _endpoints, ...settings } = o;
  return {
    version: packageVersion(),
    commit: gitCommit(),
    date: date.toISOString(),
    machine: machineAtStart,
    settings: {
      scenario: 'connections', ...settings, settleMs: o.settleMs ?? DEFAULT_SETTLE_MS,
      connectionsPerGenerator: CONNECTIONS_PER_GENERATOR, connectionsPerSourceAddress: CONNECTIONS_PER_SOURCE_ADDRESS,
      connectionsPerServerProcess: buyersPerServerProcess(), infra: r.infra, lantern: r.embeddedSettings, cluster: r.cluster,
    },
    results: r.phases,
    ratios: r.ratios,
  };
}

export function formatConnections(phases: Record<string, Phase>): string {
  const kb = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : (v / 1024).toFixed(1));
  const n = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : v < 10 ? v.toFixed(2) : v.toFixed(0));
  const lines = ['phase                held/asked     connect s  conn/s  p50 ms  p99 ms  server KiB/conn  heap KiB/conn  generator KiB/conn  idle cores (server, generator)  pings  closed'];
  for (const [name, p] of Object.entries(phases)) {
    if ('error' in p) { lines.push(`${name.padEnd(20)} FAILED ${p.error.split('\n')[0]!.slice(0, 100)}`); continue; }
    const held = `${p.held}/${p.connectionsAsked ?? p.connections}`;
    const cores = `${n(p.idle.cpu.cores['server'])}, ${n(p.idle.cpu.cores['generator'])}${p.idle.cpu.cores['workers'] === undefined ? '' : ` (workers ${n(p.idle.cpu.cores['workers'])})`}`;
    lines.push(`${name.padEnd(20)} ${held.padStart(13)}  ${(p.connect.totalMs / 1000).toFixed(1).padStart(9)}  ${String(p.connect.perSec).padStart(6)}  ${n(p.connect.p50Ms).padStart(6)}  ${n(p.connect.p99Ms).padStart(6)}  ${kb(p.serverMemory.rssPerConnectionBytes).padStart(15)}  ${kb(p.serverMemory.heapPerConnectionBytes).padStart(13)}  ${kb(p.generatorMemory.rssPerConnectionBytes).padStart(18)}  ${cores.padStart(30)}  ${String(p.idle.pings).padStart(5)}  ${String(p.idle.closed).padStart(6)}`);
  }
  return lines.join('\n');
}
