// Idle connections held by generator processes (idle-worker.ts), for the connection-scale benchmark:
// IdleCrowd.open() forks the generators, waits until each is ready (its RSS before holding anything
// can be read then), has them connect their shares and merges their connect figures; status() asks
// what happened to the sockets since; close() closes them and ends the generators.
//
// Each generator binds its sockets to its own loopback source addresses, 127.<block>.<generator>.<n>,
// at most CONNECTIONS_PER_SOURCE_ADDRESS each: one source address has only the ephemeral port range
// (~28k here) to connect from, and a distinct block per phase keeps a phase's ports apart from the
// last one's.
import { ChildInbox, killChild } from './child-inbox.ts';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { splitEvenly } from './coordinator.ts';
import { LatencyHistogram } from './histogram.ts';
import type { ConnectReport, IdleCommand, IdleConfig, IdleMessage, IdleProtocol, IdleStatus } from './idle-messages.ts';

/** Sockets one generator holds by default: well under its open-file limit (20,000 here). */
export const CONNECTIONS_PER_GENERATOR = 15_000;
/** Sockets per source address: well under the ~28k ephemeral ports one address can connect from. */
export const CONNECTIONS_PER_SOURCE_ADDRESS = 5_000;
const ATTEMPT_TIMEOUT_MS = 60_000;
const READY_TIMEOUT_MS = 60_000;
const STATUS_TIMEOUT_MS = 30_000;
const CLOSE_TIMEOUT_MS = 60_000;
const WORKER_PATH = fileURLToPath(new URL('./idle-worker.ts', import.meta.url));
const TSX_LOADER = import.meta.resolve('tsx');

export interface IdleCrowdOptions {
  /** Servers: connection i goes to urls[i % urls.length]. */
  urls: readonly string[];
  connections: number;
  protocol: IdleProtocol;
  /** Lantern's HS256 secret and audience (tokens minted per user `c<i>`); lantern only. */
  auth?: { secret: string; audience: string };
  /** Generator processes (default ceil(connections / CONNECTIONS_PER_GENERATOR)). */
  workers?: number;
  /** Second octet of the source addresses (1-254): one per phase of a run. */
  sourceBlock: number;
  /** Bound on connecting everything (default 5 min). */
  setupTimeoutMs?: number;
  /** Called once every generator is ready, before any connects (e.g. to read their RSS). */
  beforeConnect?: (pids: number[]) => void | Promise<void>;
}

export interface ConnectFigures {
  /** Sockets open with a welcome (raw: upgraded), over all generators. */
  held: number;
  failed: number;
  reconnects: number;
  failureSamples: string[];
  /** First attempt of any generator -> the last connection of all, ms; and connections per second over it. */
  totalMs: number;
  perSec: number;
  /** Per connection: socket created -> welcome (raw: -> upgraded), ms. */
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  meanMs: number | null;
  generators: number;
  sourceAddresses: number;
}

export interface CrowdStatus {
  open: number;
  closed: number;
  closeSamples: string[];
  pings: number;
  frames: number;
}

/** The addresses generator `worker` binds its `count` sockets to. */
export function sourceAddresses(block: number, worker: number, count: number): string[] {
  if (!(block >= 1 && block <= 254) || !(worker >= 0 && worker <= 255)) throw new RangeError(`no source address block 127.${block}.${worker}.x`);
  const n = Math.max(1, Math.ceil(count / CONNECTIONS_PER_SOURCE_ADDRESS));
  if (n > 254) throw new RangeError(`${count} sockets need more than 254 source addresses in one generator`);
  return Array.from({ length: n }, (_, a) => `127.${block}.${worker}.${a + 1}`);
}

export class IdleCrowd {
  private closed = false;

  private constructor(
    private readonly children: readonly ChildProcess[],
    private readonly inboxes: readonly ChildInbox<IdleMessage>[],
    readonly connect: ConnectFigures,
  ) {}

  get pids(): number[] { return this.children.map((c) => c.pid!); }

  static async open(o: IdleCrowdOptions): Promise<IdleCrowd> {
    if (o.urls.length === 0) throw new RangeError('idle connections need at least one server URL');
    if (!(o.connections >= 1)) throw new RangeError('idle connections need at least one connection');
    if (o.protocol === 'lantern' && o.auth === undefined) throw new RangeError('lantern connections need the token secret');
    const workers = Math.max(1, Math.min(o.workers ?? Math.ceil(o.connections / CONNECTIONS_PER_GENERATOR), o.connections));
    const setupTimeoutMs = o.setupTimeoutMs ?? 300_000;
    const children: ChildProcess[] = [];
    const inboxes: ChildInbox<IdleMessage>[] = [];
    try {
      for (let w = 0; w < workers; w++) {
        const child = fork(WORKER_PATH, [], { execArgv: ['--import', TSX_LOADER], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        children.push(child);
        inboxes.push(new ChildInbox<IdleMessage>(child, `idle generator ${w}`));
      }
      await Promise.all(inboxes.map((inbox) => inbox.next('ready', READY_TIMEOUT_MS)));
      await o.beforeConnect?.(children.map((c) => c.pid!));
      let first = 0, addresses = 0;
      for (const [w, count] of splitEvenly(o.connections, workers).entries()) {
        const config: IdleConfig = {
          workerIndex: w, urls: [...o.urls], first, count, protocol: o.protocol,
          ...(o.auth ? { secret: o.auth.secret, audience: o.auth.audience } : {}),
          sourceAddresses: sourceAddresses(o.sourceBlock, w, count),
          attemptTimeoutMs: Math.min(ATTEMPT_TIMEOUT_MS, setupTimeoutMs), setupTimeoutMs,
        };
        first += count;
        addresses += config.sourceAddresses.length;
        send(children[w]!, { type: 'connect', config });
      }
      const reports = await Promise.all(inboxes.map(async (inbox) => {
        const m = await inbox.next('connected', setupTimeoutMs + 10_000);
        return (m as Extract<IdleMessage, { type: 'connected' }>).report;
      }));
      return new IdleCrowd(children, inboxes, mergeConnectReports(reports, addresses));
    } catch (err) {
      for (const child of children) killChild(child);
      throw err;
    }
  }

  /** What happened to the sockets since they connected (all generators). */
  async status(): Promise<CrowdStatus> {
    for (const child of this.children) send(child, { type: 'status' });
    const all = await Promise.all(this.inboxes.map(async (inbox) => {
      const m = await inbox.next('status', STATUS_TIMEOUT_MS);
      return (m as Extract<IdleMessage, { type: 'status' }>).status;
    }));
    return mergeStatus(all);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      for (const child of this.children) if (child.connected) send(child, { type: 'close' });
      await Promise.all(this.inboxes.map((inbox) => inbox.next('closed', CLOSE_TIMEOUT_MS).catch((err: unknown) => {
        if (!inbox.exitedCleanly) throw err; // exiting right after 'closed' may beat the message
      })));
    } finally {
      for (const child of this.children) killChild(child);
    }
  }
}

export function mergeConnectReports(reports: readonly ConnectReport[], addresses: number): ConnectFigures {
  const latency = new LatencyHistogram();
  let held = 0, failed = 0, reconnects = 0, startedAt = Infinity, doneAt = -Infinity;
  const failureSamples: string[] = [];
  for (const r of reports) {
    latency.merge(r.latency);
    held += r.held; failed += r.failed; reconnects += r.reconnects;
    failureSamples.push(...r.failureSamples.map((s) => `generator ${r.workerIndex}: ${s}`));
    startedAt = Math.min(startedAt, r.startedAt);
    doneAt = Math.max(doneAt, r.doneAt);
  }
  const ms = (v: number): number | null => (Number.isFinite(v) ? Math.round(v * 1000) / 1000 : null);
  const totalMs = Math.max(0, Math.round(doneAt - startedAt));
  return {
    held, failed, reconnects, failureSamples, totalMs, perSec: totalMs > 0 ? Math.round((held * 1000) / totalMs) : 0,
    p50Ms: ms(latency.percentile(50)), p90Ms: ms(latency.percentile(90)), p99Ms: ms(latency.percentile(99)),
    maxMs: ms(latency.maxMs), meanMs: ms(latency.meanMs), generators: reports.length, sourceAddresses: addresses,
  };
}

function mergeStatus(all: readonly IdleStatus[]): CrowdStatus {
  const out: CrowdStatus = { open: 0, closed: 0, closeSamples: [], pings: 0, frames: 0 };
  for (const s of all) {
    out.open += s.open; out.closed += s.closed; out.pings += s.pings; out.frames += s.frames;
    out.closeSamples.push(...s.closeSamples.map((c) => `generator ${s.workerIndex}: ${c}`));
  }
  return out;
}

function send(child: ChildProcess, command: IdleCommand): void {
  child.send(command);
}

