// The `distributed` benchmark: Lantern with N gateway shards + M engine workers over NATS, Redis
// and Cassandra, against the embedded mode (LMDB) and the raw cassandra-driver rates, all in one
// run with the same generator and load. See bench/README.md ("Distributed").
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBenchLantern } from '../lantern-server.ts';
import { runLoad, type LoadRunOptions } from '../loadgen/coordinator.ts';
import type { GroupSettings, LoadSettings, ScenarioName } from '../loadgen/messages.ts';
import { figuresOf, type PhaseFailure, type PhaseFigures } from '../results-file.ts';
import { startCluster, type BenchCluster } from './cluster.ts';
import { runCqlBaselines, type CqlPhaseFigures } from './cql-baseline.ts';
import { acquireInfra, type Endpoints } from './infra.ts';
import { coresBetween, perUnit, pidListeningOn, sampleCpu, type CoresUsed, type CpuSample } from './proc-cpu.ts';
import { summariseClusterProfiles, type ClusterProfiles } from './profile.ts';
import { attempt } from '../phase-attempt.ts';

export interface DistributedOptions {
  /** 1:1 clients (whole pairs; with 2 gateways the two ends of a pair sit on different gateways). */
  clients: number;
  /** Group phase clients: whole groups of group.size. */
  groupClients: number;
  group: GroupSettings;
  gateways: number;
  engineWorkers: number;
  /** Load generator processes. */
  loadWorkers: number;
  load: LoadSettings;
  /** Open-loop 1:1 rate; default half the distributed 1:1 max rate. */
  rate: number | undefined;
  /** cassandra-driver phases: operations in flight / conversations written at once. */
  cqlConcurrency: number;
  /** V8 CPU profiles of gateway 0 and worker 0 during the 1:1 max phase. */
  profile: boolean;
  /** Infrastructure to use (tests); default: LANTERN_* env, else ops/infra.sh. */
  endpoints?: Endpoints;
}

/** A load phase's figures plus where the cores went. */
export type LoadPhase = PhaseFigures & { cpu: CoresUsed & { usPerMessage: Record<string, number> | null } };
export type Phase = LoadPhase | CqlPhaseFigures | PhaseFailure;

export interface DistributedResults {
  infra: string;
  phases: Record<string, Phase>;
  ratios: Record<string, number | null>;
  profile: ClusterProfiles | null;
  cluster: { gateways: number; workers: number; settings: Record<string, string> } | null;
}

const PHASE = {
  d1max: 'distributed-1to1-max', d1rate: 'distributed-1to1-rate', dgroup: 'distributed-group-max',
  e1max: 'embedded-1to1-max', e1rate: 'embedded-1to1-rate', egroup: 'embedded-group-max',
} as const;

interface Target { urls: string[]; chat: { jwtSecret: string; audience: string }; groups: () => Record<string, number[]> }

/**
 * One load run. CPU is sampled at the start and end of the measured window (timers from 'go'),
 * the generator's worker processes included; `window` gets that window in µs of CLOCK_MONOTONIC.
 */
async function loadPhase(
  o: DistributedOptions, target: Target, scenario: ScenarioName, load: LoadSettings, userPrefix: string,
  window?: { us?: [number, number] },
): Promise<LoadPhase> {
  let before: CpuSample | undefined, after: CpuSample | undefined;
  const timers: NodeJS.Timeout[] = [];
  const groups = target.groups();
  const options: LoadRunOptions = {
    scenario, url: target.urls[0]!, urls: target.urls, workers: o.loadWorkers, load,
    clients: scenario === 'chat-group' ? o.groupClients : o.clients,
    chat: { ...target.chat, userPrefix },
    ...(scenario === 'chat-group' ? { group: o.group } : {}),
    onGo: (workerPids) => {
      groups['generator'] = workerPids;
      const goUs = Number(process.hrtime.bigint() / 1000n);
      if (window) window.us = [goUs + load.warmupMs * 1000, goUs + (load.warmupMs + load.durationMs) * 1000];
      timers.push(setTimeout(() => { before = sampleCpu(groups); }, load.warmupMs));
      timers.push(setTimeout(() => { after = sampleCpu(groups); }, load.warmupMs + load.durationMs));
    },
  };
  try {
    const r = await runLoad(options);
    if (before === undefined || after === undefined) throw new Error('the CPU samples of the measured window were not taken');
    const figures = figuresOf(r);
    const cpu = coresBetween(before, after);
    return { ...figures, cpu: { ...cpu, usPerMessage: perUnit(cpu, figures.msgsPerSec) } };
  } finally {
    for (const t of timers) clearTimeout(t);
  }
}


function ratio(a: number | undefined, b: number | undefined): number | null {
  return a !== undefined && b !== undefined && b > 0 ? Math.round((a / b) * 1000) / 1000 : null;
}

export async function runDistributed(o: DistributedOptions): Promise<DistributedResults> {
  const phases: Record<string, Phase> = {};
  const infra = await acquireInfra(o.endpoints);
  const { endpoints } = infra;
  const port = (url: string): number => Number(new URL(url).port);
  const cassandraPid = pidListeningOn(Number(endpoints.cassandra.contactPoints[0]!.split(':')[1] ?? 9042));
  const infraPids = (): Record<string, number[]> => ({
    cassandra: cassandraPid === undefined ? [] : [cassandraPid],
    nats: [pidListeningOn(port(endpoints.natsUrl))].filter((p): p is number => p !== undefined),
    redis: [pidListeningOn(port(endpoints.redisUrl))].filter((p): p is number => p !== undefined),
    bench: [process.pid],
  });
  const max: LoadSettings = { ...o.load, mode: 'max' };
  const paced = (ratePerSec: number): LoadSettings => ({ ...o.load, mode: 'rate', ratePerSec });
  let profile: DistributedResults['profile'] = null;
  let clusterInfo: DistributedResults['cluster'] = null;
  let rate = o.rate;
  const profileDir = o.profile ? await mkdtemp(join(tmpdir(), 'lantern-bench-prof-')) : undefined;
  try {
    // 1. Storage ceilings first, while the cluster does not run (Cassandra to themselves).
    Object.assign(phases, await runCqlBaselines({
      endpoints, concurrency: o.cqlConcurrency, warmupMs: o.load.warmupMs, durationMs: o.load.durationMs, payloadBytes: o.load.payloadBytes,
    }));

    // 2. The distributed cluster: 1:1 max (profiled), 1:1 open loop, group max.
    const window: { us?: [number, number] } = {};
    let cluster: BenchCluster | undefined;
    try {
      console.error(`bench: starting ${o.gateways} gateways + ${o.engineWorkers} workers ...`);
      cluster = await startCluster({ endpoints, gateways: o.gateways, workers: o.engineWorkers, ...(profileDir ? { profileDir } : {}) });
      const c = cluster;
      clusterInfo = { gateways: o.gateways, workers: o.engineWorkers, settings: c.settings };
      const target: Target = {
        urls: c.urls, chat: { jwtSecret: c.jwtSecret, audience: c.audience },
        groups: () => ({
          gateways: c.processes.filter((p) => p.kind === 'gateway').map((p) => p.pid),
          workers: c.processes.filter((p) => p.kind === 'worker').map((p) => p.pid),
          ...infraPids(),
        }),
      };
      // Fresh users per phase (prefix), so phases do not share conversations.
      const d1 = await attempt(phases, PHASE.d1max, () => loadPhase(o, target, 'chat-1to1', max, 'a', window));
      rate ??= d1 ? Math.max(1, Math.round(d1.msgsPerSec / 2)) : undefined;
      if (rate !== undefined) {
        const r = rate;
        await attempt(phases, PHASE.d1rate, () => loadPhase(o, target, 'chat-1to1', paced(r), 'b'));
      } else {
        phases[PHASE.d1rate] = { error: 'skipped: no rate to pace at (the max phase failed)' };
      }
      await attempt(phases, PHASE.dgroup, () => loadPhase(o, target, 'chat-group', max, 'g'));
    } catch (err) {
      console.error('bench: distributed cluster failed:', err);
      for (const name of [PHASE.d1max, PHASE.d1rate, PHASE.dgroup]) phases[name] ??= { error: `cluster: ${(err as Error).message}` };
    } finally {
      // Stopping writes the profiles.
      await cluster?.close().catch((err: unknown) => console.error('bench: stopping the cluster failed:', err));
    }
    if (cluster && profileDir) profile = await summariseClusterProfiles(cluster.processes, window.us, PHASE.d1max);

    // 3. Embedded (LMDB), same generator and load, one fresh server per phase in this process.
    const embedded = async (scenario: ScenarioName, load: LoadSettings): Promise<LoadPhase> => {
      const lantern = await startBenchLantern('lmdb');
      try {
        return await loadPhase(o, { urls: [lantern.url], chat: lantern.chat, groups: () => ({ ...infraPids() }) }, scenario, load, 'e');
      } finally {
        await lantern.close();
      }
    };
    await attempt(phases, PHASE.e1max, () => embedded('chat-1to1', max));
    if (rate !== undefined) {
      const r = rate;
      await attempt(phases, PHASE.e1rate, () => embedded('chat-1to1', paced(r)));
    }
    await attempt(phases, PHASE.egroup, () => embedded('chat-group', max));
  } finally {
    if (profileDir && !process.env["BENCH_KEEP_PROFILES"]) await rm(profileDir, { recursive: true, force: true });
    await infra.release();
  }

  const rateOf = (name: string): number | undefined => {
    const p = phases[name];
    return p && !('error' in p) ? ('opsPerSec' in p ? p.opsPerSec : p.msgsPerSec) : undefined;
  };
  const deliveries = (name: string): number | undefined => {
    const p = phases[name];
    return p && !('error' in p) && 'deliveriesPerSec' in p ? p.deliveriesPerSec : undefined;
  };
  const ratios = {
    'distributed/embedded 1:1 msgs/s': ratio(rateOf(PHASE.d1max), rateOf(PHASE.e1max)),
    'distributed/embedded group deliveries/s': ratio(deliveries(PHASE.dgroup), deliveries(PHASE.egroup)),
    'distributed 1:1 msgs/s / cql-insert rows/s': ratio(rateOf(PHASE.d1max), rateOf('cql-insert')),
    'distributed 1:1 msgs/s / cql-lwt LWTs/s': ratio(rateOf(PHASE.d1max), rateOf('cql-lwt')),
    'distributed 1:1 msgs/s / cql-store-commit commits/s': ratio(rateOf(PHASE.d1max), rateOf('cql-store-commit')),
    'distributed group msgs/s / cql-lwt LWTs/s': ratio(rateOf(PHASE.dgroup), rateOf('cql-lwt')),
  };
  return { infra: infra.source, phases, ratios, profile, cluster: clusterInfo };
}

