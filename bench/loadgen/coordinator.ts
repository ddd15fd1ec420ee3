// Coordinator: forks the workers, splits clients and rate between them, starts them
// together once all are connected, and merges their reports into one result.
import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { LatencyHistogram } from './histogram.ts';
import {
  DEFAULT_GROUP_SETTINGS, type ChatAuth, type GrabReport, type GroupSettings, type LoadSettings, type RedEnvelopeConfig,
  type PeerConfig, type ScenarioName, type WorkerConfig, type WorkerMessage, type WorkerReport,
} from './messages.ts';
import { noOutcomes } from './scenarios/redenvelope.ts';

export interface LoadRunOptions {
  scenario: ScenarioName;
  url: string;
  /** Several gateways: clients are spread round-robin over them (client i on urls[i % n]). */
  urls?: string[];
  clients: number;
  /** Worker processes; default one per core. */
  workers?: number;
  load: LoadSettings;
  chat?: ChatAuth;
  /** chat-group, peer-fanout: group size and senders per group (default DEFAULT_GROUP_SETTINGS). */
  group?: GroupSettings;
  /** peer-chat, peer-fanout: the target server and its credentials (bench/peers/). */
  peer?: PeerConfig;
  /** redenvelope: the group set up beforehand and its senders (loadgen/redenvelope-run.ts). */
  redenvelope?: RedEnvelopeConfig;
  /** Bound on connecting and preparing all clients (default 60 s). */
  setupTimeoutMs?: number;
  /** Called right before 'go' with the worker processes' pids, and right after the last report (to sample CPU of other processes over the run). */
  onGo?: (workerPids: number[]) => void;
  onReported?: () => void;
}

export interface LoadRunResult {
  scenario: ScenarioName;
  mode: LoadSettings['mode'];
  /** Aggregate open-loop target (0 in max mode). */
  targetRatePerSec: number;
  clients: number;
  workers: number;
  /** Messages sent inside the measured window and delivered, per second of the window, all workers together. */
  msgsPerSec: number;
  /** Deliveries arriving per second of the window, whenever sent (differs from msgsPerSec under overload). */
  arrivedPerSec: number;
  /**
   * Sends of the window completed per second: equals msgsPerSec for 1:1 and echo; for groups,
   * messages/s (msgsPerSec is then deliveries/s); for redenvelope, envelopes whose shares all went
   * (msgsPerSec is then answered grabs/s).
   */
  completedPerSec: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  sent: number;
  delivered: number;
  skipped: number;
  errors: number;
  errorSamples: string[];
  undelivered: number;
  measuredMs: number;
  /** redenvelope: every worker's grab answers together. */
  grabs?: GrabReport;
  /**
   * Where the CPU went from 'go' to the last report: this process (which hosts the server
   * under test when it is embedded, as in bench/run.ts) and all workers together.
   */
  cpu: { wallMs: number; coordinatorMs: number; workersMs: number };
}

const DEFAULT_SETUP_TIMEOUT_MS = 60_000;
/** Slack on top of warm-up + duration + drain before a silent worker is declared stuck. */
const REPORT_SLACK_MS = 15_000;
const WORKER_PATH = fileURLToPath(new URL('./worker.ts', import.meta.url));
// Absolute, so workers find tsx whatever the current directory is.
const TSX_LOADER = import.meta.resolve('tsx');

/** Splits `units` as evenly as possible into `parts` (earlier parts get the remainder). */
export function splitEvenly(units: number, parts: number): number[] {
  const base = Math.floor(units / parts);
  const extra = units % parts;
  return Array.from({ length: parts }, (_, i) => base + (i < extra ? 1 : 0));
}

/** The part of the aggregate rate one worker's clients send: by clients, or for redenvelope by its senders. */
function rateShare(options: LoadRunOptions, firstClient: number, share: number, clients: number): number {
  const senders = options.redenvelope?.senders;
  if (options.scenario !== 'redenvelope' || senders === undefined) return share / clients;
  const own = senders.filter((g) => g >= firstClient && g < firstClient + share).length;
  return senders.length > 0 ? own / senders.length : 0;
}

export async function runLoad(options: LoadRunOptions): Promise<LoadRunResult> {
  const { scenario, load } = options;
  // Pairs and groups must live in one worker (setup needs all members), so split whole units.
  // redenvelope's one group is set up beforehand, so its members may sit in any worker.
  const group = options.group ?? DEFAULT_GROUP_SETTINGS;
  const grouped = scenario === 'chat-group' || scenario === 'peer-fanout';
  const peered = scenario === 'peer-chat' || scenario === 'peer-fanout';
  const unitSize = scenario === 'chat-1to1' || scenario === 'peer-chat' ? 2 : grouped ? group.size : 1;
  if (scenario === 'redenvelope' && options.redenvelope === undefined) throw new Error('redenvelope needs options.redenvelope');
  if (peered && options.peer === undefined) throw new Error(`${scenario} needs options.peer`);
  const units = Math.floor(options.clients / unitSize);
  if (units < 1) throw new RangeError(`${scenario} needs at least ${unitSize} clients, got ${options.clients}`);
  const workerCount = Math.max(1, Math.min(options.workers ?? availableParallelism(), units));
  const shares = splitEvenly(units, workerCount).map((u) => u * unitSize);
  const clients = units * unitSize;
  const setupTimeoutMs = options.setupTimeoutMs ?? DEFAULT_SETUP_TIMEOUT_MS;

  const children: ChildProcess[] = [];
  try {
    let firstClient = 0;
    const configs: WorkerConfig[] = shares.map((share, workerIndex) => {
      const config: WorkerConfig = {
        workerIndex, scenario, url: options.url, clients: share, firstClient, load,
        ...(options.urls ? { urls: options.urls } : {}),
        ...(grouped ? { group } : {}),
        ...(peered ? { peer: options.peer! } : {}),
        ...(scenario === 'redenvelope' ? { redenvelope: options.redenvelope! } : {}),
        workerRatePerSec: load.ratePerSec * rateShare(options, firstClient, share, clients),
        setupTimeoutMs,
        ...(options.chat ? { chat: options.chat } : {}),
      };
      firstClient += share;
      return config;
    });
    const inboxes = configs.map(() => new Inbox());
    for (const [i, config] of configs.entries()) {
      const child = fork(WORKER_PATH, [], { execArgv: ['--import', TSX_LOADER], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
      inboxes[i]!.attach(child, i);
      child.send({ type: 'setup', config });
    }
    await Promise.all(inboxes.map((inbox) => inbox.next('ready', setupTimeoutMs + 5000)));
    options.onGo?.(children.map((c) => c.pid!));
    const cpuBefore = process.cpuUsage();
    const wallBefore = performance.now();
    for (const child of children) child.send({ type: 'go' });
    const reportTimeout = load.warmupMs + load.durationMs + load.drainMs + REPORT_SLACK_MS;
    const reports = await Promise.all(inboxes.map(async (inbox) => {
      const m = await inbox.next('report', reportTimeout);
      return (m as Extract<WorkerMessage, { type: 'report' }>).report;
    }));
    const cpu = process.cpuUsage(cpuBefore);
    options.onReported?.();
    const coordinator = { wallMs: performance.now() - wallBefore, cpuMs: (cpu.user + cpu.system) / 1000 };
    return mergeReports(options, workerCount, clients, reports, coordinator);
  } finally {
    // Workers exit by themselves after reporting; this only ends ones left behind by a failure.
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

export function mergeReports(
  options: LoadRunOptions, workers: number, clients: number, reports: readonly WorkerReport[],
  coordinator: { wallMs: number; cpuMs: number },
): LoadRunResult {
  const latency = new LatencyHistogram();
  let msgsPerSec = 0;
  let arrivedPerSec = 0;
  let completedPerSec = 0;
  const sum = { sent: 0, delivered: 0, skipped: 0, errors: 0, undelivered: 0 };
  const errorSamples: string[] = [];
  let workersCpuMs = 0;
  for (const r of reports) {
    workersCpuMs += r.cpuMs;
    latency.merge(r.latency);
    msgsPerSec += r.measuredMs > 0 ? (r.delivered * 1000) / r.measuredMs : 0;
    arrivedPerSec += r.measuredMs > 0 ? (r.arrived * 1000) / r.measuredMs : 0;
    completedPerSec += r.measuredMs > 0 ? (r.completed * 1000) / r.measuredMs : 0;
    sum.sent += r.sent; sum.delivered += r.delivered; sum.skipped += r.skipped; sum.errors += r.errors; sum.undelivered += r.undelivered;
    errorSamples.push(...r.errorSamples.map((e) => `worker ${r.workerIndex}: ${e}`));
  }
  return {
    ...(options.scenario === 'redenvelope' ? { grabs: mergeGrabReports(reports) } : {}),
    scenario: options.scenario,
    mode: options.load.mode,
    targetRatePerSec: options.load.mode === 'rate' ? options.load.ratePerSec : 0,
    clients,
    workers,
    msgsPerSec,
    arrivedPerSec,
    completedPerSec,
    p50Ms: latency.percentile(50),
    p90Ms: latency.percentile(90),
    p99Ms: latency.percentile(99),
    maxMs: latency.maxMs,
    meanMs: latency.meanMs,
    ...sum,
    errorSamples,
    measuredMs: options.load.durationMs,
    cpu: { wallMs: coordinator.wallMs, coordinatorMs: coordinator.cpuMs, workersMs: workersCpuMs },
  };
}

function mergeGrabReports(reports: readonly WorkerReport[]): GrabReport {
  const merged: GrabReport = { window: noOutcomes(), all: noOutcomes(), envelopes: [], grabs: [] };
  const envelopes = new Set<string>();
  for (const r of reports) {
    if (r.grabs === undefined) throw new Error(`redenvelope worker ${r.workerIndex} reported no grabs`);
    for (const k of Object.keys(merged.all) as Array<keyof GrabReport['all']>) {
      merged.window[k] += r.grabs.window[k];
      merged.all[k] += r.grabs.all[k];
    }
    for (const e of r.grabs.envelopes) envelopes.add(e);
    merged.grabs.push(...r.grabs.grabs);
  }
  merged.envelopes = [...envelopes];
  return merged;
}

/** Messages of one worker, awaited by type; a worker failure or exit rejects the waiter. */
class Inbox {
  private readonly queue: WorkerMessage[] = [];
  private waiter: { type: WorkerMessage['type']; resolve(m: WorkerMessage): void; reject(e: Error): void } | undefined;
  private dead: Error | undefined;

  attach(child: ChildProcess, index: number): void {
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'failed') this.die(new Error(`load worker ${index} failed: ${m.error}`));
      else this.deliver(m);
    });
    child.on('error', (err) => this.die(new Error(`load worker ${index}: ${err.message}`, { cause: err })));
    child.on('exit', (code, signal) => this.die(new Error(`load worker ${index} exited (${signal ?? code}) before it reported`)));
  }

  next(type: WorkerMessage['type'], timeoutMs: number): Promise<WorkerMessage> {
    const i = this.queue.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]!);
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no '${type}' from a load worker within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        type,
        resolve: (m) => { clearTimeout(timer); resolve(m); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
    });
  }

  private deliver(m: WorkerMessage): void {
    if (this.waiter?.type === m.type) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve(m);
    } else {
      this.queue.push(m);
    }
  }

  private die(err: Error): void {
    // A clean exit after the report is normal; only the first cause matters.
    this.dead ??= err;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.dead);
  }
}
