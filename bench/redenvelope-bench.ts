// `npm run bench -- redenvelope`: issue 4's red-envelope benchmark. One group of `members` spread
// over the gateways, a few of them sending envelopes, every member grabbing every envelope as its
// card arrives; grabs/s and grab latency next to the raw ceiling of the grab's atomic step (the
// Redis decide script driven directly, bench/grab-ceiling.ts) measured in the same run. Modes:
// embedded (the server in this process; in-memory decider + LMDB claims) and distributed (N
// gateways + M workers as processes over NATS, Redis and Cassandra). Writes
// bench/results/redenvelope-<ISO date>.json. See bench/README.md, "Red envelopes".
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureGrabCeiling, type GrabCeiling } from './grab-ceiling.ts';
import { startBenchLantern } from './lantern-server.ts';
import { startCluster, type BenchCluster } from './distributed/cluster.ts';
import { acquireInfra, acquireRedis, type Endpoints } from './distributed/infra.ts';
import { coresBetween, perUnit, pidListeningOn, sampleCpu, type CoresUsed, type CpuSample } from './distributed/proc-cpu.ts';
import { summariseClusterProfiles, summariseProfile, type ClusterProfiles, type ProfileSummary } from './distributed/profile.ts';
import type { ChatAuth, EnvelopeSettings, LoadSettings } from './loadgen/messages.ts';
import { runRedEnvelopeLoad, type Verification } from './loadgen/redenvelope-run.ts';
import { gitCommit, machine, packageVersion, writeResults, type PhaseFailure } from './results-file.ts';
import { attempt } from './phase-attempt.ts';

/** The aim: Lantern's grabs/s at least this share of the ceiling's decisions/s. */
export const AIM_SHARE_OF_CEILING = 0.5;
/** group.create / group.add users per call on the benchmark servers (the default is 100). */
const BENCH_USERS_PER_CALL = 500;

export interface RedEnvelopeBenchOptions {
  modes: Array<'embedded' | 'distributed'>;
  /** Group members (owner and senders included), spread round-robin over the gateways. */
  members: number;
  senders: number;
  envelope: EnvelopeSettings;
  /** Load generator processes. */
  loadWorkers: number;
  /** Envelopes: max mode keeps load.window open per sender; rate mode sends load.ratePerSec in all. */
  load: LoadSettings;
  /** Embedded store. */
  store: 'lmdb' | 'memory';
  gateways: number;
  engineWorkers: number;
  /** decide() calls in flight and decide time of the ceiling. */
  ceiling: { concurrency: number; durationMs: number };
  /** CPU profiles: the embedded server (this process) and gateway 0 + worker 0 of the cluster. */
  profile: boolean;
  /** Embedded only: the Redis for the ceiling (default LANTERN_REDIS_URL, else ops/infra.sh's). */
  redisUrl?: string;
  /** Infrastructure for the distributed mode (tests); default LANTERN_* env, else ops/infra.sh. */
  endpoints?: Endpoints;
}

/** One mode's figures. Rates are per second of the measured window; grabs count by send time. */
export interface RedEnvelopePhase {
  members: number;
  senders: number;
  /** Max mode: envelopes each sender keeps open; rate mode: null. */
  window: number | null;
  targetEnvelopesPerSec: number | null;
  /** Grabs sent in the window and answered (any outcome), per second: the headline rate. */
  grabsPerSec: number;
  /** Of those, answered `grabbed`, per second. */
  grabbedPerSec: number;
  /** Grab answers arriving in the window, whenever sent (differs from grabsPerSec under overload). */
  answeredPerSec: number;
  /** Envelopes sent in the window whose shares all went, per second. */
  envelopesPerSec: number;
  envelopesSent: number;
  /** Grab latency: envelope.grab sent -> its res (ms). */
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  meanMs: number | null;
  outcomes: { window: Record<string, number>; all: Record<string, number> };
  errors: number;
  errorSamples: string[];
  undelivered: number;
  verification: Verification;
  setupMs: number;
  /** Cores per process group over the window, and CPU µs per answered grab. */
  cpu: CoresUsed & { usPerGrab: Record<string, number> | null };
  profile?: ProfileSummary | ClusterProfiles;
}

type CeilingPhase = GrabCeiling & { redisUrl: string; envelopes: number; sharesPerEnvelope: number; grabbersPerEnvelope: number; concurrency: number };
type Phase = RedEnvelopePhase | CeilingPhase | PhaseFailure;

const PHASE = { ceiling: 'grab-ceiling', embedded: 'embedded-redenvelope', distributed: 'distributed-redenvelope' } as const;

interface Target {
  urls: string[];
  chat: ChatAuth;
  adminToken: string;
  /** Processes whose CPU is sampled (the generator's are added at 'go'). */
  groups: Record<string, number[]>;
}

/**
 * One load run against a target. CPU is sampled at the start and end of the measured window;
 * `window.us` gets that window in µs of CLOCK_MONOTONIC (for the cluster's profiles), and
 * `onWindow` is called at its start and end (the embedded profiler).
 */
async function loadPhase(
  o: RedEnvelopeBenchOptions, target: Target, window: { us?: [number, number] } = {},
  onWindow?: { start(): void; end(): void },
): Promise<RedEnvelopePhase> {
  let before: CpuSample | undefined, after: CpuSample | undefined;
  const timers: NodeJS.Timeout[] = [];
  const { load } = o;
  try {
    const run = await runRedEnvelopeLoad({
      urls: target.urls, chat: target.chat, adminToken: target.adminToken, members: o.members, senders: o.senders,
      envelope: o.envelope, usersPerCall: BENCH_USERS_PER_CALL, workers: o.loadWorkers, load,
      onGo: (workerPids) => {
        const groups = { ...target.groups, generator: workerPids };
        const goUs = Number(process.hrtime.bigint() / 1000n);
        window.us = [goUs + load.warmupMs * 1000, goUs + (load.warmupMs + load.durationMs) * 1000];
        timers.push(setTimeout(() => { before = sampleCpu(groups); onWindow?.start(); }, load.warmupMs));
        timers.push(setTimeout(() => { after = sampleCpu(groups); onWindow?.end(); }, load.warmupMs + load.durationMs));
      },
    });
    if (before === undefined || after === undefined) throw new Error('the CPU samples of the measured window were not taken');
    const r = run.load;
    const seconds = load.durationMs / 1000;
    const ms = (v: number): number | null => (Number.isFinite(v) ? Math.round(v * 1000) / 1000 : null);
    const grabsPerSec = Math.round(r.msgsPerSec);
    const cpu = coresBetween(before, after);
    return {
      members: r.clients, senders: o.senders,
      window: load.mode === 'max' ? load.window : null,
      targetEnvelopesPerSec: load.mode === 'rate' ? load.ratePerSec : null,
      grabsPerSec,
      grabbedPerSec: Math.round(r.grabs!.window.grabbed / seconds),
      answeredPerSec: Math.round(r.arrivedPerSec),
      envelopesPerSec: Math.round(r.completedPerSec * 10) / 10,
      envelopesSent: r.sent,
      p50Ms: ms(r.p50Ms), p90Ms: ms(r.p90Ms), p99Ms: ms(r.p99Ms), maxMs: ms(r.maxMs), meanMs: ms(r.meanMs),
      outcomes: { window: r.grabs!.window, all: r.grabs!.all },
      errors: r.errors, errorSamples: r.errorSamples, undelivered: r.undelivered,
      verification: run.verification,
      setupMs: run.setup.ms,
      cpu: { ...cpu, usPerGrab: perUnit(cpu, grabsPerSec) },
    };
  } finally {
    for (const t of timers) clearTimeout(t);
  }
}


/** Profiles this process's main thread between start() and end() (the embedded server runs here). */
function inProcessProfiler(): { start(): void; end(): void; summary(): Promise<ProfileSummary | undefined> } {
  const session = new Session();
  let stopped: Promise<unknown> | undefined;
  let started: Promise<unknown> | undefined;
  return {
    start() {
      session.connect();
      started = session.post('Profiler.enable').then(() => session.post('Profiler.setSamplingInterval', { interval: 1000 })).then(() => session.post('Profiler.start'));
    },
    end() { stopped = started?.then(() => session.post('Profiler.stop')); },
    async summary() {
      if (!stopped) return undefined;
      const { profile } = await stopped as { profile: object };
      session.disconnect();
      const dir = await mkdtemp(join(tmpdir(), 'lantern-bench-prof-'));
      try {
        const file = join(dir, 'embedded.cpuprofile');
        await writeFile(file, JSON.stringify(profile));
        return await summariseProfile(file, undefined);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

export interface RedEnvelopeResults {
  infra: string;
  phases: Record<string, Phase>;
  ratios: Record<string, number | null>;
  aim: Partial<Record<'embedded' | 'distributed', { ratio: number | null; met: boolean | null }>>;
  cluster: { gateways: number; workers: number; settings: Record<string, string> } | null;
  embeddedSettings: Record<string, unknown> | null;
}

export async function runRedEnvelopes(o: RedEnvelopeBenchOptions): Promise<RedEnvelopeResults> {
  const phases: Record<string, Phase> = {};
  const distributed = o.modes.includes('distributed');
  const infra = distributed ? await acquireInfra(o.endpoints) : undefined;
  const redis = infra ? { redisUrl: infra.endpoints.redisUrl, source: infra.source, release: () => infra.release() } : await acquireRedis(o.redisUrl);
  const port = (url: string): number => Number(new URL(url).port);
  const redisPids = (): number[] => [pidListeningOn(port(redis.redisUrl))].filter((p): p is number => p !== undefined);
  let cluster: RedEnvelopeResults['cluster'] = null;
  let embeddedSettings: RedEnvelopeResults['embeddedSettings'] = null;
  try {
    // 1. The ceiling, while Redis has nothing else to do: as many envelopes open at once as the
    // load keeps open, the same shares and grabbers per envelope.
    const envelopesAtOnce = Math.max(1, o.load.mode === 'max' ? o.senders * o.load.window : o.senders);
    await attempt(phases, PHASE.ceiling, async (): Promise<CeilingPhase> => {
      const settings = { envelopes: envelopesAtOnce, sharesPerEnvelope: o.envelope.count, grabbersPerEnvelope: o.members, concurrency: o.ceiling.concurrency };
      const figures = await measureGrabCeiling({ redisUrl: redis.redisUrl, ...settings, durationMs: o.ceiling.durationMs });
      return { ...figures, redisUrl: redis.redisUrl, ...settings };
    });

    // 2. Embedded: the server in this process, fresh data dir.
    if (o.modes.includes('embedded')) {
      await attempt(phases, PHASE.embedded, async () => {
        const lantern = await startBenchLantern(o.store, { maxGroupMembers: o.members + 1, maxUsersPerCall: BENCH_USERS_PER_CALL });
        embeddedSettings = lantern.settings;
        const profiler = o.profile ? inProcessProfiler() : undefined;
        try {
          const figures = await loadPhase(o, {
            urls: [lantern.url], chat: lantern.chat, adminToken: lantern.adminToken,
            groups: { server: [process.pid], redis: redisPids() },
          }, {}, profiler);
          const profile = await profiler?.summary();
          return profile ? { ...figures, profile } : figures;
        } finally {
          await lantern.close();
        }
      });
    }

    // 3. Distributed: gateways + workers as processes, on the Redis the ceiling used.
    if (infra) {
      const { endpoints } = infra;
      const profileDir = o.profile ? await mkdtemp(join(tmpdir(), 'lantern-bench-prof-')) : undefined;
      let c: BenchCluster | undefined;
      try {
        await attempt(phases, PHASE.distributed, async () => {
          console.error(`bench: starting ${o.gateways} gateways + ${o.engineWorkers} workers ...`);
          c = await startCluster({
            endpoints, gateways: o.gateways, workers: o.engineWorkers, ...(profileDir ? { profileDir } : {}),
            settings: { LANTERN_MAX_GROUP_MEMBERS: String(o.members + 1), LANTERN_MAX_USERS_PER_CALL: String(BENCH_USERS_PER_CALL) },
          });
          const running = c;
          cluster = { gateways: o.gateways, workers: o.engineWorkers, settings: running.settings };
          const cassandraPid = pidListeningOn(Number(endpoints.cassandra.contactPoints[0]!.split(':')[1] ?? 9042));
          const window: { us?: [number, number] } = {};
          const figures = await loadPhase(o, {
            urls: running.urls, chat: { jwtSecret: running.jwtSecret, audience: running.audience, userPrefix: 'r' }, adminToken: running.adminToken,
            groups: {
              gateways: running.processes.filter((p) => p.kind === 'gateway').map((p) => p.pid),
              workers: running.processes.filter((p) => p.kind === 'worker').map((p) => p.pid),
              cassandra: cassandraPid === undefined ? [] : [cassandraPid],
              nats: [pidListeningOn(port(endpoints.natsUrl))].filter((p): p is number => p !== undefined),
              redis: redisPids(),
              bench: [process.pid],
            },
          }, window);
          // Stopping writes the profiles.
          await running.close();
          c = undefined;
          return profileDir ? { ...figures, profile: await summariseClusterProfiles(running.processes, window.us) } : figures;
        });
      } finally {
        await (c as BenchCluster | undefined)?.close().catch((err: unknown) => console.error('bench: stopping the cluster failed:', err));
        if (profileDir && !process.env['BENCH_KEEP_PROFILES']) await rm(profileDir, { recursive: true, force: true });
      }
    }
  } finally {
    await redis.release();
  }

  const ceiling = phases[PHASE.ceiling];
  const decisions = ceiling && 'decisionsPerSec' in ceiling ? ceiling.decisionsPerSec : undefined;
  const ratio = (a: number | undefined): number | null => (a !== undefined && decisions !== undefined && decisions > 0 ? Math.round((a / decisions) * 1000) / 1000 : null);
  const figure = (name: string, key: 'grabsPerSec' | 'grabbedPerSec'): number | undefined => {
    const p = phases[name];
    return p && 'grabsPerSec' in p ? p[key] : undefined;
  };
  const ratios: Record<string, number | null> = {};
  const aim: RedEnvelopeResults['aim'] = {};
  for (const mode of o.modes) {
    const name = PHASE[mode];
    ratios[`${mode} grabs/s / ceiling decisions/s`] = ratio(figure(name, 'grabsPerSec'));
    ratios[`${mode} grabbed/s / ceiling decisions/s`] = ratio(figure(name, 'grabbedPerSec'));
    const r = ratios[`${mode} grabs/s / ceiling decisions/s`]!;
    aim[mode] = { ratio: r, met: r === null ? null : r >= AIM_SHARE_OF_CEILING };
  }
  return { infra: redis.source, phases, ratios, aim, cluster, embeddedSettings };
}


/** Runs the modes and writes the results file into `out`. */
export async function redEnvelopeBench(o: RedEnvelopeBenchOptions, out: string): Promise<{ file: string; body: ReturnType<typeof resultsBody> }> {
  const date = new Date();
  const machineAtStart = machine(); // before our own load lifts the load average
  const r = await runRedEnvelopes(o);
  const body = resultsBody(o, date, machineAtStart, r);
  return { file: await writeResults(out, 'redenvelope', date, body), body };
}

function resultsBody(o: RedEnvelopeBenchOptions, date: Date, machineAtStart: Record<string, unknown>, r: RedEnvelopeResults) {
  const { endpoints: _endpoints, redisUrl: _redisUrl, ...settings } = o;
  return {
    version: packageVersion(),
    commit: gitCommit(),
    date: date.toISOString(),
    machine: machineAtStart,
    settings: { scenario: 'redenvelope', ...settings, infra: r.infra, lantern: r.embeddedSettings, cluster: r.cluster },
    results: r.phases,
    ratios: r.ratios,
    aim: { target: `grabs/s >= ${AIM_SHARE_OF_CEILING} x ceiling decisions/s`, ...r.aim },
  };
}

export function formatRedEnvelopes(phases: Record<string, Phase>): string {
  const n = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : v < 10 ? v.toFixed(2) : v.toFixed(1));
  const lines = ['phase                    grabs/s  grabbed/s  env/s  p50 ms  p99 ms  max ms  errors  verified  cores'];
  for (const [name, p] of Object.entries(phases)) {
    if ('error' in p) { lines.push(`${name.padEnd(24)} FAILED ${p.error.split('\n')[0]!.slice(0, 80)}`); continue; }
    if ('decisionsPerSec' in p) {
      lines.push(`${name.padEnd(24)} ${String(p.decisionsPerSec).padStart(7)} decisions/s (${p.concurrency} in flight)  p50 ${n(p.p50Ms)}  p99 ${n(p.p99Ms)}  misallocated ${p.misallocated}`);
      continue;
    }
    const cores = Object.entries(p.cpu.cores).filter(([, v]) => v >= 0.01).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
    const verified = p.verification.ok ? `ok ${p.verification.envelopes}` : `FAILED ${p.verification.problemCount}`;
    lines.push(`${name.padEnd(24)} ${String(p.grabsPerSec).padStart(7)}  ${String(p.grabbedPerSec).padStart(9)}  ${n(p.envelopesPerSec).padStart(5)}  ${n(p.p50Ms).padStart(6)}  ${n(p.p99Ms).padStart(6)}  ${n(p.maxMs).padStart(6)}  ${String(p.errors).padStart(6)}  ${verified.padStart(8)}  ${cores}; machine ${n(p.cpu.machineCores)}`);
  }
  return lines.join('\n');
}
