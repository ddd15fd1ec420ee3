// The storm generators seen from the benchmark: forks the generator processes (storm-worker.ts),
// hands each its share of the clients and its own loopback source addresses (idle-run.ts's
// scheme: 127.<block>.<generator>.<n>, a block per phase), runs a storm across all of them at the
// same moment and merges what they report.
// - runConnectStorm: ramp to N connections at a rate (or all at once); connect time per connection.
// - runReconnectStorm: N clients in conversations with messages flowing, a drop of all of them (or a
//   fraction), a time away while messages keep flowing, every one back at once and synced from its
//   cursors until caught up; then every copy checked against the heads.
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { coresBetween, sampleCpu, type CoresUsed } from '../distributed/proc-cpu.ts';
import { ChildInbox, killChild } from './child-inbox.ts';
import { splitEvenly } from './coordinator.ts';
import { LatencyHistogram, type SerializedHistogram } from './histogram.ts';
import { CONNECTIONS_PER_GENERATOR, mergeConnectReports, sourceAddresses, type ConnectFigures } from './idle-run.ts';
import type { ResyncReport, StormCommand, StormMessage, StormProtocol, StormShare, VerifyReport } from './storm-messages.ts';

const WORKER_PATH = fileURLToPath(new URL('./storm-worker.ts', import.meta.url));
const TSX_LOADER = import.meta.resolve('tsx');
const READY_TIMEOUT_MS = 60_000;
const CLOSE_TIMEOUT_MS = 60_000;
const ATTEMPT_TIMEOUT_MS = 30_000;
const DEFAULT_GENERATORS = 2;
/** Bound on a storm: 2 min, or 10 ms per connection when more. */
const stormTimeoutMs = (connections: number): number => Math.max(120_000, connections * 10);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export const STORM_DEFAULTS = Object.freeze({
  groupSize: 10,
  dropFraction: 1,
  /** Messages per second into all the conversations together, from start to verify. */
  messageRate: 200,
  /** Messages flow this long before the drop, so every client holds a cursor beyond the created notice. */
  warmMs: 1_000,
  /** How long the dropped clients stay away while messages keep flowing. */
  awayMs: 3_000,
  /** After the last client caught up: messages keep flowing live this long before the check. */
  tailMs: 1_000,
  /** The check waits at most this long for the last messages to reach every client. */
  verifyWaitMs: 10_000,
});

/** Where a storm goes. */
export interface StormTarget {
  /** Servers: client i goes to urls[i % urls.length]. */
  urls: readonly string[];
  protocol: StormProtocol;
  /** Lantern's HS256 secret and audience (tokens minted per user). */
  auth?: { secret: string; audience: string };
  /** Second octet of the source addresses (1-254): one per phase of a run. */
  sourceBlock: number;
  /** Generator processes (default max(2, ceil(connections / CONNECTIONS_PER_GENERATOR))). */
  workers?: number;
  /** The server's processes by group: their cores during the storm are reported next to the generators'. */
  serverPids?: Record<string, readonly number[]>;
}

export interface LatencyFigures { p50Ms: number | null; p90Ms: number | null; p99Ms: number | null; maxMs: number | null; meanMs: number | null }

const ms = (v: number): number | null => (Number.isFinite(v) ? Math.round(v * 1000) / 1000 : null);

export function latencyFigures(parts: readonly SerializedHistogram[]): LatencyFigures {
  const h = new LatencyHistogram();
  for (const p of parts) h.merge(p);
  return { p50Ms: ms(h.percentile(50)), p90Ms: ms(h.percentile(90)), p99Ms: ms(h.percentile(99)), maxMs: ms(h.maxMs), meanMs: ms(h.meanMs) };
}

/**
 * The kernel's count of connections dropped because a listen queue was full (TcpExt
 * ListenOverflows in /proc/net/netstat; null elsewhere). uWS listens with a backlog of 512: a
 * storm that outruns accept() loses handshakes, and those clients wait for a SYN retransmit (1 s,
 * then 3 s). Machine-wide: other servers' overflows in the window count too.
 */
export function listenOverflows(): number | null {
  let text: string;
  try {
    text = readFileSync('/proc/net/netstat', 'utf8');
  } catch {
    return null; // not Linux
  }
  const [names, values] = text.split('\n').filter((line) => line.startsWith('TcpExt:')).map((line) => line.split(/\s+/));
  const i = names?.indexOf('ListenOverflows') ?? -1;
  return i > 0 && values?.[i] !== undefined ? Number(values[i]) : null;
}

const overflowsSince = (before: number | null): number | null => {
  const now = listenOverflows();
  return before === null || now === null ? null : now - before;
};

/** The forked generators and their inboxes. */
class Generators {
  private closed = false;
  private constructor(readonly children: readonly ChildProcess[], private readonly inboxes: readonly ChildInbox<StormMessage>[]) {}

  get pids(): number[] { return this.children.map((c) => c.pid!); }

  static async fork(workers: number): Promise<Generators> {
    const children: ChildProcess[] = [];
    const inboxes: ChildInbox<StormMessage>[] = [];
    try {
      for (let w = 0; w < workers; w++) {
        const child = fork(WORKER_PATH, [], { execArgv: ['--import', TSX_LOADER], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        children.push(child);
        inboxes.push(new ChildInbox<StormMessage>(child, `storm generator ${w}`));
      }
      await Promise.all(inboxes.map((inbox) => inbox.next('ready', READY_TIMEOUT_MS)));
      return new Generators(children, inboxes);
    } catch (err) {
      for (const child of children) killChild(child);
      throw err;
    }
  }

  send(w: number, command: StormCommand): void { this.children[w]!.send(command); }
  sendAll(command: StormCommand): void { for (const child of this.children) child.send(command); }

  collect<T extends StormMessage['type']>(type: T, timeoutMs: number): Promise<Array<Extract<StormMessage, { type: T }>>> {
    return Promise.all(this.inboxes.map((inbox) => inbox.next(type, timeoutMs)));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      for (const child of this.children) if (child.connected) child.send({ type: 'close' } satisfies StormCommand);
      await Promise.all(this.inboxes.map((inbox) => inbox.next('closed', CLOSE_TIMEOUT_MS).catch((err: unknown) => {
        if (!inbox.exitedCleanly) throw err; // exiting right after 'closed' may beat the message
      })));
    } finally {
      for (const child of this.children) killChild(child);
    }
  }
}

/** Each generator's share: `counts[w]` clients from global index first, its own source addresses. */
function shares(t: StormTarget, counts: readonly number[], userPrefix: string, connectionsPerClient = 1): StormShare[] {
  let first = 0;
  return counts.map((count, w) => {
    const share: StormShare = {
      workerIndex: w, urls: [...t.urls], first, count, userPrefix, protocol: t.protocol,
      ...(t.auth ? { secret: t.auth.secret, audience: t.auth.audience } : {}),
      sourceAddresses: sourceAddresses(t.sourceBlock, w, count * connectionsPerClient), attemptTimeoutMs: ATTEMPT_TIMEOUT_MS,
    };
    first += count;
    return share;
  });
}

function checkTarget(t: StormTarget, connections: number): number {
  if (t.urls.length === 0) throw new RangeError('a storm needs at least one server URL');
  if (!(Number.isInteger(connections) && connections >= 1)) throw new RangeError(`a storm needs a whole number of connections >= 1, got ${connections}`);
  if (t.protocol === 'lantern' && t.auth === undefined) throw new RangeError('lantern connections need the token secret');
  // At least two by default: one process's event loop is soon the storm's bottleneck.
  return Math.max(1, Math.min(t.workers ?? Math.max(DEFAULT_GENERATORS, Math.ceil(connections / CONNECTIONS_PER_GENERATOR)), connections));
}

export interface ConnectStormFigures extends ConnectFigures {
  /** Asked-for ramp, connections per second (0: all at once). */
  rampPerSec: number;
  /** Sockets the server closed after their welcome while the storm went on. */
  closedAfterWelcome: number;
  /** Cores per process group from `go` to the last report (the server's groups, generators). */
  cpu: CoresUsed;
  /** Handshakes the kernel dropped on a full listen queue during the storm (machine-wide; null: unknown). */
  listenOverflows: number | null;
}

/** Ramps to `connections` at `rampPerSec` (0: all at once) and holds them until every one is welcomed or given up. */
export async function runConnectStorm(t: StormTarget & { connections: number; rampPerSec: number }): Promise<ConnectStormFigures> {
  const workers = checkTarget(t, t.connections);
  if (!(t.rampPerSec >= 0)) throw new RangeError(`ramp must be >= 0 connections/s, got ${t.rampPerSec}`);
  const timeoutMs = stormTimeoutMs(t.connections);
  const generators = await Generators.fork(workers);
  try {
    const all = shares(t, splitEvenly(t.connections, workers), 's');
    for (const share of all) {
      generators.send(share.workerIndex, { type: 'connect-storm', config: { ...share, ratePerSec: (t.rampPerSec * share.count) / t.connections, timeoutMs } });
    }
    await generators.collect('prepared', timeoutMs); // tokens minted: nothing of that is timed
    const startAt = Date.now() + 200;
    generators.sendAll({ type: 'go', startAt });
    await sleep(startAt - Date.now());
    const groups = { ...t.serverPids, generators: generators.pids };
    const cpuBefore = sampleCpu(groups);
    const overflowsBefore = listenOverflows();
    const reports = (await generators.collect('stormed', timeoutMs + 10_000)).map((m) => m.report);
    const cpu = coresBetween(cpuBefore, sampleCpu(groups));
    const overflows = overflowsSince(overflowsBefore);
    const addresses = all.reduce((n, s) => n + s.sourceAddresses.length, 0);
    return { ...mergeConnectReports(reports, addresses), rampPerSec: t.rampPerSec, closedAfterWelcome: reports.reduce((n, r) => n + r.closedAfterWelcome, 0), cpu, listenOverflows: overflows };
  } finally {
    await generators.close();
  }
}

export interface ReconnectStormOptions {
  clients: number;
  /** Members per conversation: 2 = direct conversations (pairs), more = groups. */
  groupSize?: number;
  /** Fraction of the clients that drop, 0 < f <= 1. */
  dropFraction?: number;
  messageRate?: number;
  warmMs?: number;
  awayMs?: number;
  tailMs?: number;
  verifyWaitMs?: number;
}

export interface ReconnectStormFigures {
  clients: number;
  /** Lantern only (the raw ceiling has no conversations). */
  conversations: number;
  dropped: number;
  /** Welcomed (raw: upgraded) again. */
  reconnected: number;
  /** Synced from their cursors until caught up (raw: = reconnected). */
  caughtUp: number;
  retries: number;
  /** First reconnect started -> last client caught up (raw: last upgrade). */
  stormMs: number;
  /** reconnected / (first reconnect started -> last welcome). */
  reconnectsPerSec: number;
  /** caughtUp / stormMs: clients back and complete per second. */
  resyncedPerSec: number;
  /** Per client: reconnect start -> welcome (raw: upgraded). */
  reconnect: LatencyFigures;
  /** Per client: reconnect start -> caught up. */
  resync: LatencyFigures;
  /** Per client: drop -> caught up (awayMs included). */
  dropToCaughtUp: LatencyFigures;
  /** Messages committed while the clients were away (feeder acks between drop and reconnect). */
  sentWhileAway: number;
  /** Messages the clients got from sync that they did not hold yet. */
  recovered: number;
  syncRequests: number;
  gapResyncs: number;
  /** missing + duplicates + skipped: must be 0. */
  gaps: number;
  missing: number;
  duplicates: number;
  skipped: number;
  clientsBehind: number;
  /** Messages the feeders got acks for, from start to the check. */
  messagesSent: number;
  feederErrors: number;
  feederSkipped: number;
  errors: number;
  errorSamples: string[];
  generators: number;
  sourceAddresses: number;
  /** Cores per process group from `reconnect` until every generator reported (the server's groups, generators). */
  cpu: CoresUsed;
  /** Handshakes the kernel dropped on a full listen queue while they reconnected (machine-wide; null: unknown). */
  listenOverflows: number | null;
}


/** The whole reconnect storm against one target, from forking the generators to the check. */
/** The reconnect storm's settings with the defaults filled in (for the run and its results file). */
export function reconnectSettings(o: Omit<ReconnectStormOptions, 'clients'>): Required<Omit<ReconnectStormOptions, 'clients'>> {
  const given = Object.fromEntries(Object.entries(o).filter(([k, v]) => v !== undefined && k in STORM_DEFAULTS));
  return { ...STORM_DEFAULTS, ...given };
}

export async function runReconnectStorm(t: StormTarget & ReconnectStormOptions): Promise<ReconnectStormFigures> {
  const o = reconnectSettings(t);
  const workers = checkTarget(t, t.clients);
  if (!(Number.isInteger(o.groupSize) && o.groupSize >= 2)) throw new RangeError(`group size must be a whole number >= 2, got ${o.groupSize}`);
  if (t.clients % o.groupSize !== 0) throw new RangeError(`${t.clients} clients are not whole conversations of ${o.groupSize}`);
  if (!(o.dropFraction > 0 && o.dropFraction <= 1)) throw new RangeError(`drop fraction must be in (0, 1], got ${o.dropFraction}`);
  if (!(o.messageRate >= 0)) throw new RangeError(`message rate must be >= 0, got ${o.messageRate}`);
  const conversations = t.clients / o.groupSize;
  // Whole conversations per generator: its members and its feeder live in one process.
  const perWorker = splitEvenly(conversations, Math.min(workers, conversations)).filter((n) => n > 0);
  const generators = await Generators.fork(perWorker.length);
  const timeoutMs = stormTimeoutMs(t.clients);
  try {
    // Feeders: one more socket per conversation on the same source addresses.
    const all = shares(t, perWorker.map((n) => n * o.groupSize), 'r', 1 + 1 / o.groupSize);
    for (const share of all) {
      generators.send(share.workerIndex, { type: 'setup', config: {
        ...share, groupSize: o.groupSize, dropFraction: o.dropFraction, messagesPerSec: (o.messageRate * share.count) / t.clients,
        setupTimeoutMs: timeoutMs, resyncTimeoutMs: timeoutMs,
      } });
    }
    const setUp = await generators.collect('set-up', timeoutMs + 10_000);
    generators.sendAll({ type: 'feed' });
    await sleep(o.warmMs);
    generators.sendAll({ type: 'drop' });
    const dropped = (await generators.collect('dropped', 60_000)).reduce((n, m) => n + m.dropped, 0);
    await sleep(o.awayMs);
    const groups = { ...t.serverPids, generators: generators.pids };
    const cpuBefore = sampleCpu(groups);
    const overflowsBefore = listenOverflows();
    generators.sendAll({ type: 'reconnect' });
    const resynced = (await generators.collect('resynced', timeoutMs + 10_000)).map((m) => m.report);
    const cpu = coresBetween(cpuBefore, sampleCpu(groups));
    const overflows = overflowsSince(overflowsBefore);
    await sleep(o.tailMs);
    generators.sendAll({ type: 'verify', waitMs: o.verifyWaitMs });
    const verified = (await generators.collect('verified', o.verifyWaitMs + 30_000)).map((m) => m.report);
    return { ...mergeReconnect(t.clients, setUp.reduce((n, m) => n + m.conversations, 0), dropped, resynced, verified, all.reduce((n, s) => n + s.sourceAddresses.length, 0)), cpu, listenOverflows: overflows };
  } finally {
    await generators.close();
  }
}

export function mergeReconnect(clients: number, conversations: number, dropped: number, resynced: readonly ResyncReport[], verified: readonly VerifyReport[], addresses: number): Omit<ReconnectStormFigures, 'cpu' | 'listenOverflows'> {
  const sum = <R>(rows: readonly R[], f: (r: R) => number): number => rows.reduce((n, r) => n + f(r), 0);
  const startedAt = Math.min(...resynced.map((r) => r.startedAt));
  const reconnected = sum(resynced, (r) => r.reconnected), caughtUp = sum(resynced, (r) => r.caughtUp);
  const lastWelcome = Math.max(...resynced.map((r) => r.reconnectedAt));
  const lastCaughtUp = Math.max(...resynced.map((r) => r.caughtUpAt));
  const reconnectMs = reconnected > 0 ? lastWelcome - startedAt : 0;
  const stormMs = caughtUp > 0 ? lastCaughtUp - startedAt : 0;
  const perSec = (n: number, wallMs: number): number => (wallMs > 0 ? Math.round((n * 1000) / wallMs) : 0);
  const missing = sum(verified, (r) => r.missing), duplicates = sum(verified, (r) => r.duplicates), skipped = sum(verified, (r) => r.skipped);
  // A generator's error samples are cumulative: its verify report holds those of its resync too.
  const errorSamples = verified.flatMap((r) => r.errorSamples.map((s) => `generator ${r.workerIndex}: ${s}`)).slice(0, 20);
  return {
    clients, conversations, dropped, reconnected, caughtUp, retries: sum(resynced, (r) => r.retries),
    stormMs: Math.round(stormMs), reconnectsPerSec: perSec(reconnected, reconnectMs), resyncedPerSec: perSec(caughtUp, stormMs),
    reconnect: latencyFigures(resynced.map((r) => r.reconnect)), resync: latencyFigures(resynced.map((r) => r.resync)),
    dropToCaughtUp: latencyFigures(resynced.map((r) => r.dropToCaughtUp)),
    sentWhileAway: sum(resynced, (r) => r.sentWhileAway), recovered: sum(resynced, (r) => r.recovered),
    syncRequests: sum(resynced, (r) => r.syncRequests), gapResyncs: sum(verified, (r) => r.gapResyncs),
    gaps: missing + duplicates + skipped, missing, duplicates, skipped, clientsBehind: sum(verified, (r) => r.clientsBehind),
    messagesSent: sum(verified, (r) => r.sent), feederErrors: sum(verified, (r) => r.feederErrors), feederSkipped: sum(verified, (r) => r.feederSkipped),
    errors: sum(verified, (r) => r.errors), errorSamples, generators: resynced.length, sourceAddresses: addresses,
  };
}
