// `npm run bench -- connect-storm` and `reconnect-storm` (issue 6): what happens when thousands of
// clients arrive at once, or come back at once.
// - Connection storm: generator processes ramp to N authenticated connections (TCP + upgrade +
//   hello/welcome) at a rate, or all at once; connect time per connection from its first attempt.
// - Reconnect storm: N clients in conversations (groups, or direct pairs) with messages flowing;
//   all drop (or a fraction), stay away while messages keep flowing, come back at once and sync
//   from their cursors until caught up; then every copy is checked against the heads: a seq
//   missing or duplicated fails the run.
// The raw uWebSockets.js server takes the same storm in the same run (upgrade only) as the ceiling;
// the summary reports each Lantern row as a ratio to it. Writes bench/results/<scenario>-<date>.json
// with the common summary (report/summary.ts) and the SLO gates (report/slo.ts). See bench/README.md, "Connection storm" and "Reconnect storm".
import type { Endpoints } from './distributed/infra.ts';
import type { CoresUsed } from './distributed/proc-cpu.ts';
import { CONNECTIONS_PER_SOURCE_ADDRESS } from './loadgen/idle-run.ts';
import { reconnectSettings, runConnectStorm, runReconnectStorm, type ConnectStormFigures, type ReconnectStormFigures, type ReconnectStormOptions } from './loadgen/storm-run.ts';
import { attempt } from './phase-attempt.ts';
import { evaluateThresholds, parseThresholds, type Threshold } from './report/slo.ts';
import { withRatios, type ScenarioSummary, type SummaryRow } from './report/summary.ts';
import { gitCommit, machine, packageVersion, writeResults, type PhaseFailure } from './results-file.ts';
import { startDistributedLantern, startEmbeddedLantern, startRawServers, withServer, type StormServer, type StormServerName } from './storm-targets.ts';

export type StormMode = 'embedded' | 'distributed';

export interface StormBenchOptions {
  /** Default ['embedded']. */
  modes?: StormMode[];
  /** Connection storm: connections; reconnect storm: clients (one connection each). */
  connections: number;
  /** Generator processes (default max(2, ceil(connections / 15,000))). */
  loadWorkers?: number;
  /** Embedded Lantern's store (default lmdb). */
  store?: 'lmdb' | 'memory';
  /** Distributed mode (default 2 and 2). */
  gateways?: number;
  engineWorkers?: number;
  /** SLO gates, report/slo.ts syntax, e.g. "connect_p99_ms<500,error_rate<0.01". */
  slo?: string;
  /** Infrastructure for the distributed mode (tests); default LANTERN_* env, else ops/infra.sh. */
  endpoints?: Endpoints;
}

export interface ConnectStormOptions extends StormBenchOptions {
  /** Connections per second over all generators; 0 (default): all at once. */
  rampPerSec?: number;
}

export type ReconnectStormBenchOptions = StormBenchOptions & Omit<ReconnectStormOptions, 'clients'>;

export interface PhaseInfo {
  server: StormServerName;
  serverProcesses: number;
  /** Asked for, when the servers' open-file limit capped the phase. */
  connectionsAsked?: number;
}

export interface ConnectStormPhase extends PhaseInfo {
  connections: number;
  rampPerSec: number;
  /** Welcomed (raw: upgraded). */
  connected: number;
  /** Given up after every attempt failed. */
  failed: number;
  /** Attempts that failed and were made again. */
  retries: number;
  closedAfterWelcome: number;
  /** First attempt of any generator -> last connection of all. */
  totalMs: number;
  /** connected / totalMs: the rate achieved. */
  connectsPerSec: number;
  /** Per connection: first attempt -> welcome (raw: upgraded), retries included. */
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  meanMs: number | null;
  failureSamples: string[];
  generators: number;
  sourceAddresses: number;
  /** Cores per process group while the storm ran. */
  cpu: CoresUsed;
  /** Handshakes dropped on a full listen queue in the window (machine-wide; their clients waited for a SYN retransmit). */
  listenOverflows: number | null;
}

export type ReconnectStormPhase = PhaseInfo & ReconnectStormFigures;

export interface StormResults<P> {
  version: string;
  commit: string;
  date: string;
  machine: Record<string, unknown>;
  settings: Record<string, unknown>;
  results: Record<string, P | PhaseFailure>;
  ratios: Record<string, number | null>;
  summary: ScenarioSummary;
}

export interface StormBenchOutcome<P> {
  file: string;
  body: StormResults<P>;
  /** 1 when a phase failed, a seq was missing or duplicated, or an SLO gate was breached. */
  exitCode: 0 | 1;
}

const DEFAULTS = Object.freeze({ modes: ['embedded'] as StormMode[], store: 'lmdb' as const, gateways: 2, engineWorkers: 2, rampPerSec: 0 });

/** Source address blocks (idle-run.ts): one per phase, the two storms apart, so no phase binds ports another left in TIME_WAIT. */
const BLOCKS = { 'connect-storm': 20, 'reconnect-storm': 30 } as const;

interface Resolved extends Required<Omit<StormBenchOptions, 'slo' | 'endpoints' | 'loadWorkers'>> {
  loadWorkers: number | undefined;
  slo: string | undefined;
  endpoints: Endpoints | undefined;
  thresholds: Threshold[];
}

function resolve(o: StormBenchOptions): Resolved {
  const thresholds = parseThresholds(o.slo); // a malformed gate fails before anything runs
  const modes = o.modes ?? DEFAULTS.modes;
  if (modes.length === 0) throw new RangeError('a storm needs at least one mode (embedded, distributed)');
  return {
    modes, connections: o.connections, loadWorkers: o.loadWorkers, store: o.store ?? DEFAULTS.store,
    gateways: o.gateways ?? DEFAULTS.gateways, engineWorkers: o.engineWorkers ?? DEFAULTS.engineWorkers,
    slo: o.slo, endpoints: o.endpoints, thresholds,
  };
}

/** The servers of a run, in row order: the raw ceiling first (on as many processes as the first Lantern mode has). */
function servers(r: Resolved): Array<[StormServerName, () => Promise<StormServer>]> {
  const rawProcesses = r.modes[0] === 'embedded' ? 1 : r.gateways;
  const list: Array<[StormServerName, () => Promise<StormServer>]> = [['raw-uws', () => startRawServers(rawProcesses)]];
  if (r.modes.includes('embedded')) list.push(['lantern-embedded', () => startEmbeddedLantern(r.store)]);
  if (r.modes.includes('distributed')) list.push(['lantern-distributed', () => startDistributedLantern({ endpoints: r.endpoints, gateways: r.gateways, workers: r.engineWorkers })]);
  return list;
}

const phaseInfo = (s: StormServer, asked: number, n: number): PhaseInfo => ({ server: s.name, serverProcesses: s.processes, ...(n < asked ? { connectionsAsked: asked } : {}) });
const ok = <P extends object>(p: P | PhaseFailure | undefined): P | undefined => (p === undefined || 'error' in p ? undefined : p as P);
const round2 = (v: number): number => Math.round(v * 100) / 100;
const ratioOf = (a: number | null | undefined, b: number | null | undefined): number | null => (typeof a === 'number' && typeof b === 'number' && b > 0 ? round2(a / b) : null);

interface RunContext { settings: Record<string, unknown>; cluster: Record<string, unknown> | null; infra: string | null }

function remember(ctx: RunContext, s: StormServer): void {
  if (s.name === 'lantern-embedded') ctx.settings = s.settings ?? {};
  if (s.name === 'lantern-distributed') { ctx.cluster = s.settings; ctx.infra = s.infra ?? null; }
}

function baseBody(date: Date, machineAtStart: Record<string, unknown>) {
  return { version: packageVersion(), commit: gitCommit(), date: date.toISOString(), machine: machineAtStart };
}

function commonSettings(r: Resolved, ctx: RunContext) {
  return {
    modes: r.modes, connections: r.connections, loadWorkers: r.loadWorkers ?? null, store: r.store, gateways: r.gateways, engineWorkers: r.engineWorkers,
    slo: r.slo ?? null, connectionsPerSourceAddress: CONNECTIONS_PER_SOURCE_ADDRESS,
    lantern: ctx.settings, cluster: ctx.cluster, infra: ctx.infra,
  };
}

/** The summary rows: a failed phase keeps its row with no value and the reason. */
function rows<P extends object>(results: Record<string, P | PhaseFailure>, value: (p: P) => number, p99: (p: P) => number | null): SummaryRow[] {
  return Object.entries(results).map(([name, p]): SummaryRow => {
    if ('error' in (p as object)) return { name, value: null, p99Ms: null, note: (p as PhaseFailure).error.split('\n')[0]!.slice(0, 200) };
    const figures = p as P & Partial<PhaseInfo>;
    return { name, value: value(figures), p99Ms: p99(figures), ...(figures.serverProcesses !== undefined && figures.serverProcesses > 1 ? { note: `${figures.serverProcesses} server processes` } : {}) };
  });
}

function summarize<P extends object>(scenario: string, title: string, metric: string, results: Record<string, P | PhaseFailure>, value: (p: P) => number, p99: (p: P) => number | null, thresholds: Threshold[], figures: (p: P | undefined) => Record<string, number | null>): ScenarioSummary {
  const ceiling = ok(results['raw-uws']) !== undefined ? 'raw-uws' : null;
  const firstLantern = Object.keys(results).find((name) => name.startsWith('lantern-'));
  return {
    scenario, title, metric, ceiling,
    rows: withRatios(rows(results, value, p99), ceiling),
    thresholds: evaluateThresholds(thresholds, figures(firstLantern === undefined ? undefined : ok(results[firstLantern]))),
  };
}

/** 1 when a phase failed, a reconnect storm lost or duplicated a seq, or an SLO gate was breached. */
export function stormExitCode(results: Record<string, object>, summary: Pick<ScenarioSummary, 'thresholds'>): 0 | 1 {
  const failed = Object.values(results).some((p) => 'error' in p || ('gaps' in p && (p as { gaps: number }).gaps > 0));
  return failed || summary.thresholds.some((t) => !t.ok) ? 1 : 0;
}

// ---------------------------------------------------------------- connection storm

async function connectPhase(r: Resolved, rampPerSec: number, s: StormServer, sourceBlock: number): Promise<ConnectStormPhase> {
  const n = Math.min(r.connections, s.capacity);
  if (n < r.connections) console.error(`bench: ${r.connections} connections do not fit the open-file limit of ${s.processes} server process(es): ${n}`);
  console.error(`bench: ${s.name}: storm of ${n} connections ${rampPerSec > 0 ? `at ${rampPerSec}/s` : 'at once'} ...`);
  const f: ConnectStormFigures = await runConnectStorm({
    urls: s.urls, protocol: s.protocol, ...(s.auth ? { auth: s.auth } : {}), sourceBlock, serverPids: s.pids,
    ...(r.loadWorkers ? { workers: r.loadWorkers } : {}), connections: n, rampPerSec,
  });
  console.error(`bench: ${s.name}: ${f.held} connected in ${f.totalMs} ms (${f.perSec}/s, p99 ${f.p99Ms} ms), ${f.failed} failed, ${f.reconnects} retries`);
  return {
    ...phaseInfo(s, r.connections, n), connections: n, rampPerSec, connected: f.held, failed: f.failed, retries: f.reconnects,
    closedAfterWelcome: f.closedAfterWelcome, totalMs: f.totalMs, connectsPerSec: f.perSec,
    p50Ms: f.p50Ms, p90Ms: f.p90Ms, p99Ms: f.p99Ms, maxMs: f.maxMs, meanMs: f.meanMs,
    failureSamples: f.failureSamples, generators: f.generators, sourceAddresses: f.sourceAddresses, cpu: f.cpu,
    listenOverflows: f.listenOverflows,
  };
}

/** The SLO metrics of a connection storm (of its first Lantern row). */
export function connectStormMetrics(p: ConnectStormPhase | undefined): Record<string, number | null> {
  if (p === undefined) return { p99_ms: null, connect_p99_ms: null, connect_p50_ms: null, connects_per_sec: null, failed: null, error_rate: null };
  const asked = p.connectionsAsked ?? p.connections;
  // p99_ms: the headline's p99 under the name every scenario shares (a suite-wide gate).
  return { p99_ms: p.p99Ms, connect_p99_ms: p.p99Ms, connect_p50_ms: p.p50Ms, connects_per_sec: p.connectsPerSec, failed: p.failed, error_rate: asked > 0 ? (asked - p.connected) / asked : null };
}

export async function connectStormBench(o: ConnectStormOptions, outDir: string): Promise<StormBenchOutcome<ConnectStormPhase>> {
  const r = resolve(o);
  const rampPerSec = o.rampPerSec ?? DEFAULTS.rampPerSec;
  if (!(rampPerSec >= 0)) throw new RangeError(`ramp must be >= 0 connections/s, got ${rampPerSec}`);
  const date = new Date();
  const machineAtStart = machine(); // before our own load lifts the load average
  const results: Record<string, ConnectStormPhase | PhaseFailure> = {};
  const ctx: RunContext = { settings: {}, cluster: null, infra: null };
  let block = BLOCKS['connect-storm'];
  for (const [name, start] of servers(r)) {
    const sourceBlock = ++block;
    await attempt(results, name, () => withServer(start, (s) => { remember(ctx, s); return connectPhase(r, rampPerSec, s, sourceBlock); }));
  }
  const ratios: Record<string, number | null> = {};
  const raw = ok(results['raw-uws']);
  for (const name of ['lantern-embedded', 'lantern-distributed']) {
    if (!(name in results)) continue;
    const l = ok(results[name]);
    ratios[`${name} / raw-uws connects/s`] = ratioOf(l?.connectsPerSec, raw?.connectsPerSec);
    ratios[`${name} / raw-uws connect p99`] = ratioOf(l?.p99Ms, raw?.p99Ms);
  }
  const title = `Connection storm: ${r.connections.toLocaleString('en-US')} connections ${rampPerSec > 0 ? `at ${rampPerSec.toLocaleString('en-US')}/s` : 'at once'}`;
  const summary = summarize('connect-storm', title, 'connects/s', results, (p) => p.connectsPerSec, (p) => p.p99Ms, r.thresholds, connectStormMetrics);
  const body: StormResults<ConnectStormPhase> = {
    ...baseBody(date, machineAtStart),
    settings: { scenario: 'connect-storm', ...commonSettings(r, ctx), rampPerSec },
    results, ratios, summary,
  };
  const file = await writeResults(outDir, 'connect-storm', date, body);
  return { file, body, exitCode: stormExitCode(results, summary) };
}

// ---------------------------------------------------------------- reconnect storm

async function reconnectPhase(r: Resolved, o: ReconnectStormBenchOptions, s: StormServer, sourceBlock: number): Promise<ReconnectStormPhase> {
  const storm = reconnectSettings(o);
  const groupSize = storm.groupSize;
  // Lantern: a feeder socket per conversation too.
  const sockets = s.protocol === 'lantern' ? r.connections + Math.ceil(r.connections / groupSize) : r.connections;
  if (sockets > s.capacity) throw new RangeError(`${sockets} sockets do not fit the open-file limit of ${s.processes} server process(es) (${s.capacity})`);
  console.error(`bench: ${s.name}: reconnect storm of ${r.connections} clients ...`);
  const f = await runReconnectStorm({
    urls: s.urls, protocol: s.protocol, ...(s.auth ? { auth: s.auth } : {}), sourceBlock, serverPids: s.pids, ...(r.loadWorkers ? { workers: r.loadWorkers } : {}),
    clients: r.connections, ...storm,
  });
  console.error(`bench: ${s.name}: ${f.caughtUp}/${f.dropped} back and caught up in ${f.stormMs} ms (resync p99 ${f.resync.p99Ms} ms), ${f.recovered} messages recovered, gaps ${f.gaps}, errors ${f.errors}`);
  return { ...phaseInfo(s, r.connections, r.connections), ...f };
}

/** The SLO metrics of a reconnect storm (of its first Lantern row). */
export function reconnectStormMetrics(p: ReconnectStormPhase | undefined): Record<string, number | null> {
  if (p === undefined) return { p99_ms: null, resync_p99_ms: null, reconnect_p99_ms: null, gaps: null, error_rate: null };
  return { p99_ms: p.resync.p99Ms, resync_p99_ms: p.resync.p99Ms, reconnect_p99_ms: p.reconnect.p99Ms, gaps: p.gaps, error_rate: p.dropped > 0 ? (p.dropped - p.caughtUp) / p.dropped : null };
}

export async function reconnectStormBench(o: ReconnectStormBenchOptions, outDir: string): Promise<StormBenchOutcome<ReconnectStormPhase>> {
  const r = resolve(o);
  const storm = reconnectSettings(o);
  const date = new Date();
  const machineAtStart = machine();
  const results: Record<string, ReconnectStormPhase | PhaseFailure> = {};
  const ctx: RunContext = { settings: {}, cluster: null, infra: null };
  let block = BLOCKS['reconnect-storm'];
  for (const [name, start] of servers(r)) {
    const sourceBlock = ++block;
    await attempt(results, name, () => withServer(start, (s) => { remember(ctx, s); return reconnectPhase(r, o, s, sourceBlock); }));
  }
  const ratios: Record<string, number | null> = {};
  const raw = ok(results['raw-uws']);
  for (const name of ['lantern-embedded', 'lantern-distributed']) {
    if (!(name in results)) continue;
    const l = ok(results[name]);
    ratios[`${name} resynced/s / raw-uws reconnects/s`] = ratioOf(l?.resyncedPerSec, raw?.reconnectsPerSec);
    ratios[`${name} / raw-uws reconnects/s`] = ratioOf(l?.reconnectsPerSec, raw?.reconnectsPerSec);
  }
  const what = storm.groupSize === 2 ? 'direct pairs' : `groups of ${storm.groupSize}`;
  const title = `Reconnect storm: ${r.connections.toLocaleString('en-US')} clients in ${what}, ${storm.dropFraction === 1 ? 'all' : `${storm.dropFraction * 100}%`} back at once`;
  // raw-uws: reconnects/s (its ceiling); Lantern: clients back and caught up per second.
  const value = (p: ReconnectStormPhase): number => (p.server === 'raw-uws' ? p.reconnectsPerSec : p.resyncedPerSec);
  const p99 = (p: ReconnectStormPhase): number | null => (p.server === 'raw-uws' ? p.reconnect.p99Ms : p.resync.p99Ms);
  const summary = summarize('reconnect-storm', title, 'clients/s', results, value, p99, r.thresholds, reconnectStormMetrics);
  const body: StormResults<ReconnectStormPhase> = {
    ...baseBody(date, machineAtStart),
    settings: { scenario: 'reconnect-storm', ...commonSettings(r, ctx), ...storm },
    results, ratios, summary,
  };
  const file = await writeResults(outDir, 'reconnect-storm', date, body);
  return { file, body, exitCode: stormExitCode(results, summary) };
}

// ---------------------------------------------------------------- tables

const n = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : v < 10 ? v.toFixed(2) : v.toFixed(0));
const failedLine = (name: string, p: PhaseFailure): string => `${name.padEnd(20)} FAILED ${p.error.split('\n')[0]!.slice(0, 100)}`;

/** "server/generators" cores during the storm (server: every group but the generators, e.g. gateways + workers). */
function coresCell(cpu: CoresUsed): string {
  const server = Object.entries(cpu.cores).reduce((sum, [group, cores]) => (group === 'generators' ? sum : sum + cores), 0);
  return `${server.toFixed(2)}/${(cpu.cores['generators'] ?? 0).toFixed(2)}`;
}

function gateLines(summary: ScenarioSummary): string[] {
  return summary.thresholds.map((t) => `SLO ${t.expression}: ${t.ok ? 'ok' : 'BREACHED'} (${t.actual ?? 'not measured'})`);
}

export function formatConnectStorm(body: StormResults<ConnectStormPhase>): string {
  const lines = ['phase                connected/asked  failed  retries  total s  conn/s  p50 ms  p90 ms  p99 ms  max ms  ratio  cores srv/gen  listen overflows'];
  const ratioOfRow = new Map(body.summary.rows.map((row) => [row.name, row.ratio]));
  for (const [name, p] of Object.entries(body.results)) {
    if ('error' in p) { lines.push(failedLine(name, p)); continue; }
    const cells = [`${p.connected}/${p.connectionsAsked ?? p.connections}`.padStart(15), String(p.failed).padStart(6), String(p.retries).padStart(7),
      (p.totalMs / 1000).toFixed(1).padStart(7), String(p.connectsPerSec).padStart(6), n(p.p50Ms).padStart(6), n(p.p90Ms).padStart(6), n(p.p99Ms).padStart(6), n(p.maxMs).padStart(6),
      String(ratioOfRow.get(name) ?? '-').padStart(5), coresCell(p.cpu).padStart(13), String(p.listenOverflows ?? '-').padStart(16)];
    lines.push(`${name.padEnd(20)} ${cells.join('  ')}`);
  }
  return [...lines, ...gateLines(body.summary)].join('\n');
}

export function formatReconnectStorm(body: StormResults<ReconnectStormPhase>): string {
  const lines = ['phase                back/dropped  storm s  clients/s  reconnect p50/p99 ms  resync p50/p99/max ms  recovered  sent away  gaps  errors  ratio  cores srv/gen  listen overflows'];
  const ratioOfRow = new Map(body.summary.rows.map((row) => [row.name, row.ratio]));
  for (const [name, p] of Object.entries(body.results)) {
    if ('error' in p) { lines.push(failedLine(name, p)); continue; }
    const raw = p.server === 'raw-uws';
    const cells = [`${p.caughtUp}/${p.dropped}`.padStart(12), (p.stormMs / 1000).toFixed(1).padStart(7), String(raw ? p.reconnectsPerSec : p.resyncedPerSec).padStart(9),
      `${n(p.reconnect.p50Ms)}/${n(p.reconnect.p99Ms)}`.padStart(20), (raw ? '-' : `${n(p.resync.p50Ms)}/${n(p.resync.p99Ms)}/${n(p.resync.maxMs)}`).padStart(21),
      String(raw ? '-' : p.recovered).padStart(9), String(raw ? '-' : p.sentWhileAway).padStart(9), String(raw ? '-' : p.gaps).padStart(4), String(p.errors).padStart(6),
      String(ratioOfRow.get(name) ?? '-').padStart(5), coresCell(p.cpu).padStart(13), String(p.listenOverflows ?? '-').padStart(16)];
    lines.push(`${name.padEnd(20)} ${cells.join('  ')}`);
  }
  return [...lines, ...gateLines(body.summary)].join('\n');
}
