// `npm run bench -- chat` and `npm run bench -- fanout` (issue 6): the same load from the same
// multi-process generator against every peer (bench/peers/), in one run, each reported as a ratio
// to the raw uWebSockets.js ceiling measured in that run.
//
// chat: 1:1 pairs at max rate (or at --rate), one phase per target: deliveries/s and latency.
// fanout: for each group size, one phase per target: groups of that size, a few senders per group
// publishing, every copy reaching a member (the sender's own included) a delivery; the ceiling of a
// size is raw uWS broadcast at that size.
//
// Every phase gets a fresh server (raw uWS, Socket.IO and embedded Lantern in this process,
// Centrifugo as its own process), except the distributed Lantern: its cluster (gateways and engine
// workers over NATS, Redis and Cassandra) starts once, runs its phases last with fresh users per
// phase, and stops, so its processes idle through nobody else's phases. A target that cannot start
// (Centrifugo's build fails, no Cassandra) is a failed phase with its error, not a crash.
// See bench/README.md, "Chat and fan-out on every peer".
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { DEFAULT_ENGINE_SETTINGS } from '../engine/api.ts';
import { startCluster, type BenchCluster } from './distributed/cluster.ts';
import { acquireInfra, type Endpoints, type Infra } from './distributed/infra.ts';
import { coresBetween, pidListeningOn, sampleCpu, type CpuSample } from './distributed/proc-cpu.ts';
import { startBenchLantern } from './lantern-server.ts';
import { runLoad, type LoadRunResult } from './loadgen/coordinator.ts';
import { DEFAULT_GROUP_SETTINGS, DEFAULT_LOAD_SETTINGS, type LoadSettings, type PeerTarget } from './loadgen/messages.ts';
import { installCentrifugo, startCentrifugo } from './peers/centrifugo.ts';
import { start as startSocketIo } from './peers/socketio.ts';
import { start as startBroadcast } from './peers/uws-broadcast.ts';
import { attempt } from './phase-attempt.ts';
import { evaluateThresholds, parseThresholds, type Threshold } from './report/slo.ts';
import { withRatios, type ScenarioSummary, type SummaryRow } from './report/summary.ts';
import { REPO_ROOT, gitCommit, machine, packageVersion, writeResults, type PhaseFailure } from './results-file.ts';

export const PEER_TARGETS = ['raw-uws', 'socketio', 'centrifugo', 'lantern-embedded', 'lantern-distributed'] as const;
export type PeerTargetName = (typeof PEER_TARGETS)[number];
/** The ceiling row of every comparison: it always runs. */
export const CEILING_TARGET: PeerTargetName = 'raw-uws';
export const DEFAULT_GROUP_SIZES: readonly number[] = [10, 100, 500];
/** Which Lantern rows the SLO gates read, first one that ran: embedded, else distributed. */
const SLO_TARGETS: readonly PeerTargetName[] = ['lantern-embedded', 'lantern-distributed'];

export interface PeersBenchOptions {
  /**
   * Targets in the order they run. Default: raw-uws, socketio, centrifugo, then lantern-<mode> for
   * each of `modes`. raw-uws is added first when missing: it is the ceiling every ratio divides by.
   */
  targets?: readonly PeerTargetName[];
  /** Lantern modes of the default targets (default ['embedded']); ignored when `targets` is given. */
  modes?: ReadonlyArray<'embedded' | 'distributed'>;
  /** chat: connections (whole pairs). fanout: connections per group size, whole groups, at least one group. */
  clients: number;
  /** fanout: the group sizes, each its own set of phases (default 10, 100, 500). */
  groupSizes?: readonly number[];
  /** fanout: members of each group that publish (default 4, at most the group size). */
  groupSenders?: number;
  /** Generator processes (default one per core). */
  workers?: number;
  /** Window, durations, payload (defaults DEFAULT_LOAD_SETTINGS); max mode unless `rate` is given. */
  load?: Partial<LoadSettings>;
  /** Open loop instead: messages/s of all senders together (fanout: publishes/s, each `size` copies). */
  rate?: number;
  /** Embedded Lantern's store (default lmdb). */
  store?: 'lmdb' | 'memory';
  /** lantern-distributed: processes (default 2 and 2) and infrastructure (default: LANTERN_* env, else ops/infra.sh). */
  gateways?: number;
  engineWorkers?: number;
  endpoints?: Endpoints;
  /** SLO gates (bench/report/slo.ts syntax) on the Lantern row: p99_ms, p50_ms, deliveries_per_sec, error_rate, ratio. */
  slo?: string;
}

/** One phase: one target at one load (and group size). */
export interface PeerFigures {
  target: PeerTargetName;
  scenario: 'peer-chat' | 'peer-fanout';
  /** fanout: members per group and how many of them publish; null for chat. */
  groupSize: number | null;
  groupSenders: number | null;
  clients: number;
  workers: number;
  mode: 'max' | 'rate';
  targetRatePerSec: number;
  /** The headline: messages (chat) or copies reaching members (fanout) sent in the window and delivered, per second of the window. */
  deliveriesPerSec: number;
  /** Sends of the window completed per second (fanout: the sender's own copy came back). */
  messagesPerSec: number;
  /** Deliveries arriving in the window, whenever sent (differs from deliveriesPerSec under overload). */
  arrivedPerSec: number;
  /** Deliveries each message owes: 1 (chat) or the group size (fanout, sender included). */
  copiesPerMessage: number;
  /** Delivery latency (payload stamp -> arrival at the member), ms. */
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  meanMs: number | null;
  /** Sends issued in the window, and the deliveries they owe (sent x copiesPerMessage). */
  sent: number;
  expectedDeliveries: number;
  /** Deliveries of the window's sends that arrived before the drain ended. */
  delivered: number;
  errors: number;
  /** Over the whole run (warm-up and drain included): sends and copies still missing when the drain ended. */
  undelivered: number;
  skipped: number;
  errorSamples: string[];
  /**
   * Average cores in the measured window: the target's processes (`server`; embedded targets share
   * this process with the coordinator), the generator's, the whole machine, and for the distributed
   * Lantern its infrastructure (nats, redis, cassandra). Null when /proc could not be read.
   */
  cores: { server: number | null; generator: number | null; machine: number | null; [group: string]: number | null };
}

export type PeerResult = PeerFigures | PhaseFailure;

export interface PeersBody {
  version: string;
  commit: string;
  date: string;
  machine: Record<string, unknown>;
  settings: Record<string, unknown>;
  results: Record<string, PeerResult>;
  /** Row name -> deliveries/s ÷ the raw uWS row of the same group size (chat: of the run); null when either failed. */
  ratios: Record<string, number | null>;
  summary: ScenarioSummary;
}

export interface PeersBenchRun { file: string; body: PeersBody; exitCode: number }

/** What a phase needs of a running target. */
interface RunningTarget {
  peer: PeerTarget;
  urls: string[];
  /** CPU groups sampled over the window; `server` is the target's own processes. */
  pids: Record<string, number[]>;
  close(): Promise<void>;
}

interface Resolved {
  targets: PeerTargetName[];
  clients: number;
  sizes: number[];
  senders: number;
  workers: number;
  load: LoadSettings;
  store: 'lmdb' | 'memory';
  gateways: number;
  engineWorkers: number;
  thresholds: Threshold[];
}

function resolve(o: PeersBenchOptions): Resolved {
  const modes = o.modes ?? ['embedded'];
  const asked = o.targets ?? ['raw-uws', 'socketio', 'centrifugo', ...modes.map((m) => `lantern-${m}` as const)];
  for (const t of asked) if (!PEER_TARGETS.includes(t)) throw new Error(`unknown target "${t}": one of ${PEER_TARGETS.join(', ')}`);
  const targets = [...new Set<PeerTargetName>([CEILING_TARGET, ...asked])];
  // Ascending: the last size is the largest (the SLO gates and summary.ceiling read it).
  const sizes = [...new Set(o.groupSizes ?? DEFAULT_GROUP_SIZES)].sort((a, b) => a - b);
  for (const s of sizes) if (!Number.isInteger(s) || s < 2) throw new Error(`group sizes must be integers >= 2, got ${s}`);
  const senders = o.groupSenders ?? DEFAULT_GROUP_SETTINGS.senders;
  if (!Number.isInteger(senders) || senders < 1) throw new Error(`group senders must be a positive integer, got ${senders}`);
  if (!Number.isInteger(o.clients) || o.clients < 2) throw new Error(`clients must be an integer >= 2, got ${o.clients}`);
  const load: LoadSettings = { ...DEFAULT_LOAD_SETTINGS, ...o.load };
  if (o.rate !== undefined) Object.assign(load, { mode: 'rate', ratePerSec: o.rate });
  return {
    targets, clients: o.clients, sizes, senders, workers: o.workers ?? availableParallelism(), load, store: o.store ?? 'lmdb',
    gateways: o.gateways ?? 2, engineWorkers: o.engineWorkers ?? 2,
    // Parsed before anything runs: a typo in a gate fails at once, not after the run.
    thresholds: parseThresholds(o.slo),
  };
}

/** Fanout clients at group size `size`: whole groups of the asked clients, at least one group. */
export function fanoutClients(clients: number, size: number): number {
  return Math.max(size, Math.floor(clients / size) * size);
}

const rowName = (target: PeerTargetName, size: number | null): string => (size === null ? target : `${target}@${size}`);

/** Starts one target's server (not lantern-distributed: its cluster lives across phases). */
async function startTarget(target: Exclude<PeerTargetName, 'lantern-distributed'>, r: Resolved, centrifugoBin: () => Promise<string>): Promise<RunningTarget> {
  const here = { server: [process.pid] };
  switch (target) {
    case 'raw-uws': {
      const s = await startBroadcast();
      return { peer: { kind: 'raw-uws' }, urls: [s.url], pids: here, close: () => s.close() };
    }
    case 'socketio': {
      const s = await startSocketIo();
      return { peer: { kind: 'socketio' }, urls: [s.url], pids: here, close: () => s.close() };
    }
    case 'centrifugo': {
      const s = await startCentrifugo({ bin: await centrifugoBin() });
      return { peer: { kind: 'centrifugo', secret: s.secret }, urls: [s.url], pids: { server: [s.pid] }, close: () => s.close() };
    }
    case 'lantern-embedded': {
      const s = await startBenchLantern(r.store, lanternGroupLimit(r));
      return { peer: { kind: 'lantern', jwtSecret: s.chat.jwtSecret, audience: s.chat.audience }, urls: [s.url], pids: here, close: () => s.close() };
    }
  }
}

/** Lantern's default group limit holds 500 members; larger sizes raise it. */
function lanternGroupLimit(r: Resolved): { maxGroupMembers?: number } {
  const largest = Math.max(0, ...r.sizes);
  return largest > DEFAULT_ENGINE_SETTINGS.maxGroupMembers ? { maxGroupMembers: largest } : {};
}

/** One load run against a running target; CPU sampled at the start and end of the measured window. */
async function loadPhase(r: Resolved, target: PeerTargetName, running: RunningTarget, size: number | null, userPrefix: string): Promise<PeerFigures> {
  const senders = size === null ? null : Math.min(r.senders, size);
  const clients = size === null ? r.clients : fanoutClients(r.clients, size);
  let before: CpuSample | undefined, after: CpuSample | undefined;
  const timers: NodeJS.Timeout[] = [];
  try {
    const result = await runLoad({
      scenario: size === null ? 'peer-chat' : 'peer-fanout',
      url: running.urls[0]!, urls: running.urls, clients, workers: r.workers, load: r.load,
      peer: { target: running.peer, userPrefix },
      ...(size === null ? {} : { group: { size, senders: senders! } }),
      onGo: (workerPids) => {
        const groups = { ...running.pids, generator: workerPids };
        timers.push(setTimeout(() => { before = sampleCpu(groups); }, r.load.warmupMs));
        timers.push(setTimeout(() => { after = sampleCpu(groups); }, r.load.warmupMs + r.load.durationMs));
      },
    });
    return figuresOf(target, result, size, senders, before && after ? coresBetween(before, after) : undefined);
  } finally {
    for (const t of timers) clearTimeout(t);
  }
}

function figuresOf(target: PeerTargetName, r: LoadRunResult, size: number | null, senders: number | null, cpu: ReturnType<typeof coresBetween> | undefined): PeerFigures {
  const ms = (v: number): number | null => (Number.isFinite(v) ? Math.round(v * 1000) / 1000 : null);
  const copies = size ?? 1;
  return {
    target, scenario: size === null ? 'peer-chat' : 'peer-fanout', groupSize: size, groupSenders: senders,
    clients: r.clients, workers: r.workers, mode: r.mode, targetRatePerSec: Math.round(r.targetRatePerSec),
    deliveriesPerSec: Math.round(r.msgsPerSec), messagesPerSec: Math.round(r.completedPerSec), arrivedPerSec: Math.round(r.arrivedPerSec),
    copiesPerMessage: copies,
    p50Ms: ms(r.p50Ms), p90Ms: ms(r.p90Ms), p99Ms: ms(r.p99Ms), maxMs: ms(r.maxMs), meanMs: ms(r.meanMs),
    sent: r.sent, expectedDeliveries: r.sent * copies, delivered: r.delivered,
    errors: r.errors, undelivered: r.undelivered, skipped: r.skipped, errorSamples: r.errorSamples,
    cores: { ...cpu?.cores, server: cpu?.cores['server'] ?? null, generator: cpu?.cores['generator'] ?? null, machine: cpu?.machineCores ?? null },
  };
}

/** Runs every phase: size by size, target by target (null size: chat), the distributed ones last. */
async function runPhases(r: Resolved, o: PeersBenchOptions, sizes: ReadonlyArray<number | null>): Promise<{ results: Record<string, PeerResult>; extra: Record<string, unknown> }> {
  const results: Record<string, PeerResult> = {};
  const extra: Record<string, unknown> = {};
  // Built once, and only when a Centrifugo phase runs; a failed build fails each Centrifugo phase.
  let bin: Promise<string> | undefined;
  const centrifugoBin = (): Promise<string> => (bin ??= installCentrifugo());
  const prefix = (size: number | null): string => (size === null ? 'c' : `s${size}u`);

  for (const size of sizes) {
    for (const target of r.targets) {
      if (target === 'lantern-distributed') continue;
      await attempt(results, rowName(target, size), async () => {
        const running = await startTarget(target, r, centrifugoBin);
        try {
          return await loadPhase(r, target, running, size, prefix(size));
        } finally {
          await running.close();
        }
      });
    }
  }

  if (r.targets.includes('lantern-distributed')) {
    let infra: Infra | undefined;
    let cluster: BenchCluster | undefined;
    try {
      infra = await acquireInfra(o.endpoints);
      extra['infra'] = infra.source;
      const limit = lanternGroupLimit(r).maxGroupMembers;
      console.error(`bench: starting ${r.gateways} gateways + ${r.engineWorkers} workers ...`);
      cluster = await startCluster({
        endpoints: infra.endpoints, gateways: r.gateways, workers: r.engineWorkers,
        ...(limit ? { settings: { LANTERN_MAX_GROUP_MEMBERS: String(limit) } } : {}),
      });
      extra['cluster'] = { gateways: r.gateways, workers: r.engineWorkers, settings: cluster.settings };
      const c = cluster;
      const port = (url: string): number => Number(new URL(url).port);
      const listening = (p: number): number[] => [pidListeningOn(p)].filter((pid): pid is number => pid !== undefined);
      const running: RunningTarget = {
        peer: { kind: 'lantern', jwtSecret: c.jwtSecret, audience: c.audience },
        urls: c.urls,
        pids: {
          server: c.processes.map((p) => p.pid),
          nats: listening(port(infra.endpoints.natsUrl)),
          redis: listening(port(infra.endpoints.redisUrl)),
          cassandra: listening(Number(infra.endpoints.cassandra.contactPoints[0]!.split(':')[1] ?? 9042)),
        },
        close: async () => {},
      };
      // One cluster for every size: fresh users (prefix) per phase, so phases share no groups.
      for (const size of sizes) await attempt(results, rowName('lantern-distributed', size), () => loadPhase(r, 'lantern-distributed', running, size, `d${prefix(size)}`));
    } catch (err) {
      console.error('bench: the distributed Lantern could not start:', err);
      for (const size of sizes) results[rowName('lantern-distributed', size)] ??= { error: `distributed Lantern: ${(err as Error).message}` };
    } finally {
      await cluster?.close().catch((err: unknown) => console.error('bench: stopping the cluster failed:', err));
      await infra?.release().catch((err: unknown) => console.error('bench: releasing the infrastructure failed:', err));
    }
  }
  return { results, extra };
}

/** The SLO figures of one row; error_rate = (errors + deliveries owed but missing) / deliveries owed. */
function sloFigures(p: PeerResult | undefined, ratio: number | null): Record<string, number | null> {
  if (p === undefined || 'error' in p) return { p99_ms: null, p50_ms: null, deliveries_per_sec: null, error_rate: null, ratio: null };
  const missing = Math.max(0, p.expectedDeliveries - p.delivered);
  return {
    p99_ms: p.p99Ms, p50_ms: p.p50Ms, deliveries_per_sec: p.deliveriesPerSec,
    error_rate: p.expectedDeliveries > 0 ? (p.errors + missing) / p.expectedDeliveries : null,
    ratio,
  };
}

function summarise(
  scenario: 'chat' | 'fanout', r: Resolved, results: Record<string, PeerResult>, sizes: ReadonlyArray<number | null>,
): { summary: ScenarioSummary; ratios: Record<string, number | null>; sloRow: string | null } {
  const rows: SummaryRow[] = [];
  // Ratios per size: each row against raw uWS at its own group size (withRatios on that size's rows).
  for (const size of sizes) {
    const sized = r.targets.map((target): SummaryRow => {
      const name = rowName(target, size);
      const p = results[name];
      if (p === undefined || 'error' in p) return { name, value: null, p99Ms: null, note: p ? `failed: ${p.error.split('\n')[0]!.slice(0, 200)}` : 'did not run' };
      const problems = [p.errors > 0 ? `${p.errors} errors` : '', p.undelivered > 0 ? `${p.undelivered} undelivered` : '', p.skipped > 0 ? `${p.skipped} sends skipped` : ''].filter(Boolean);
      return { name, value: p.deliveriesPerSec, p99Ms: p.p99Ms, ...(problems.length > 0 ? { note: problems.join(', ') } : {}) };
    });
    rows.push(...withRatios(sized, rowName(CEILING_TARGET, size)));
  }
  const ratios = Object.fromEntries(rows.map((row) => [row.name, row.ratio ?? null]));
  // The gates read the Lantern row (embedded, else distributed), of the largest group size in fanout.
  const gateSize = sizes[sizes.length - 1] ?? null;
  const gateTarget = SLO_TARGETS.find((t) => r.targets.includes(t));
  const gateRow = gateTarget === undefined ? undefined : rowName(gateTarget, gateSize);
  const pace = r.load.mode === 'rate' ? `at ${r.load.ratePerSec} msgs/s` : 'at max rate';
  const thresholds = evaluateThresholds(r.thresholds, sloFigures(gateRow === undefined ? undefined : results[gateRow], gateRow === undefined ? null : ratios[gateRow] ?? null));
  return {
    ratios,
    sloRow: gateRow ?? null,
    summary: {
      scenario,
      // Short enough for the chart's title line (report/svg-chart.ts).
      title: scenario === 'chat'
        ? `1:1 chat ${pace}: deliveries/s per target, ratio to raw uWebSockets.js`
        : `Group fan-out (${r.senders} senders/group) ${pace}: copies delivered/s, ratio to raw uWS at the same size`,
      metric: 'deliveries/s',
      // fanout has one ceiling per group size and each row's ratio is against its own; the field
      // names the largest size's, the hardest fan-out and the one the SLO gates read.
      ceiling: rowName(CEILING_TARGET, gateSize),
      rows,
      thresholds,
    },
  };
}

function versions(): Record<string, string> {
  const pkg = (name: string): string => {
    try {
      return (JSON.parse(readFileSync(new URL(`node_modules/${name}/package.json`, REPO_ROOT), 'utf8')) as { version: string }).version;
    } catch {
      return 'unknown';
    }
  };
  const script = readFileSync(new URL('bench/peers/install-centrifugo.sh', REPO_ROOT), 'utf8');
  return {
    'socket.io': pkg('socket.io'),
    'socket.io-client': pkg('socket.io-client'),
    centrifugo: /^CENTRIFUGO_VERSION=(\S+)/m.exec(script)?.[1] ?? 'unknown',
    'uWebSockets.js': pkg('uWebSockets.js'),
    node: process.version,
  };
}

async function peersBench(scenario: 'chat' | 'fanout', o: PeersBenchOptions, outDir: string): Promise<PeersBenchRun> {
  const r = resolve(o);
  const date = new Date();
  const machineAtStart = machine(); // before our own load lifts the load average
  const sizes = scenario === 'chat' ? [null] : r.sizes;
  const { results, extra } = await runPhases(r, o, sizes);
  const { summary, ratios, sloRow } = summarise(scenario, r, results, sizes);
  const body: PeersBody = {
    version: packageVersion(),
    commit: gitCommit(),
    date: date.toISOString(),
    machine: machineAtStart,
    settings: {
      scenario, targets: r.targets, clients: r.clients,
      ...(scenario === 'fanout' ? { groupSizes: r.sizes, groupSenders: r.senders, clientsPerSize: Object.fromEntries(r.sizes.map((s) => [s, fanoutClients(r.clients, s)])) } : {}),
      workers: r.workers, load: r.load, rate: o.rate ?? null, store: r.store, slo: o.slo ?? null, sloRow,
      ...(r.targets.includes('lantern-distributed') ? { gateways: r.gateways, engineWorkers: r.engineWorkers } : {}),
      versions: versions(), ...extra,
    },
    results,
    ratios,
    summary,
  };
  const file = await writeResults(outDir, scenario, date, body);
  const failed = Object.values(results).some((p) => 'error' in p);
  const breached = summary.thresholds.some((t) => !t.ok);
  return { file, body, exitCode: failed || breached ? 1 : 0 };
}

/** 1:1 chat against every target; writes `<outDir>/chat-<date>.json`. */
export function chatPeersBench(o: PeersBenchOptions, outDir: string): Promise<PeersBenchRun> {
  return peersBench('chat', o, outDir);
}

/** Group fan-out at each group size against every target; writes `<outDir>/fanout-<date>.json`. */
export function fanoutPeersBench(o: PeersBenchOptions, outDir: string): Promise<PeersBenchRun> {
  return peersBench('fanout', o, outDir);
}

/** The table printed after a run: one line per row, then the SLO gates. */
export function formatPeers(body: PeersBody): string {
  const n = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : v < 10 ? v.toFixed(2) : v.toFixed(1));
  const head = ['row', 'mode', 'clients', 'deliv/s', 'msgs/s', 'ratio', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'missing', 'undeliv.', 'cores srv/gen'];
  const cells: string[][] = [];
  for (const row of body.summary.rows) {
    const p = body.results[row.name];
    if (p === undefined || 'error' in p) { cells.push([row.name, 'FAILED', (row.note ?? '').slice(0, 100)]); continue; }
    cells.push([row.name, p.mode === 'rate' ? `rate ${p.targetRatePerSec}` : 'max', String(p.clients), String(p.deliveriesPerSec), String(p.messagesPerSec),
      row.ratio === null || row.ratio === undefined ? '-' : row.ratio.toFixed(3), n(p.p50Ms), n(p.p99Ms), n(p.maxMs), String(p.errors),
      String(Math.max(0, p.expectedDeliveries - p.delivered)), String(p.undelivered), `${n(p.cores.server)}/${n(p.cores.generator)}`]);
  }
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c.length === head.length ? c[i]!.length : 0))));
  const line = (c: string[]): string => (c.length === head.length ? c.map((v, i) => v.padEnd(widths[i]!)).join('  ') : c.join('  '));
  const lines = [body.summary.title, line(head), ...cells.map(line)];
  for (const [name, p] of Object.entries(body.results)) {
    if (!('error' in p) && p.errorSamples.length > 0) lines.push(`${name} errors (first ${p.errorSamples.length}): ${p.errorSamples.join(' | ')}`);
  }
  for (const t of body.summary.thresholds) lines.push(`SLO ${t.expression}: ${t.ok ? 'ok' : 'BREACHED'} (${t.metric} = ${t.actual ?? 'not measured'})`);
  return lines.join('\n');
}
