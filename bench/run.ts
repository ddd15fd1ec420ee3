// npm run bench -- [--scenario all|echo|chat-1to1|distributed|redenvelope|flashsale|connections] [--clients 200] [--duration 10] [--workers N] ...
// (`npm run bench -- distributed` works too: a bare first argument names the scenario.)
// Runs the phases (servers embedded in this process, load from forked workers), writes
// bench/results/<scenario>-<ISO date>.json and prints a table. See bench/README.md.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { start as startEcho } from './baseline/uws-echo.ts';
import { startBenchLantern } from './lantern-server.ts';
import { runDistributedBench } from './distributed/main.ts';
import { flashSaleBench, formatFlashSales } from './flashsale-bench.ts';
import { connectionsBench, DEFAULT_IDLE_MS, formatConnections } from './connections-bench.ts';
import { CONNECTIONS_PER_GENERATOR } from './loadgen/idle-run.ts';
import { BUYERS_PER_GENERATOR } from './loadgen/flashsale-run.ts';
import { runLoad } from './loadgen/coordinator.ts';
import {
  DEFAULT_ENVELOPE_SETTINGS, DEFAULT_GROUP_SETTINGS, DEFAULT_LOAD_SETTINGS, type EnvelopeSettings, type LoadSettings,
} from './loadgen/messages.ts';
import { AIM_SHARE_OF_CEILING, formatRedEnvelopes, redEnvelopeBench } from './redenvelope-bench.ts';
import {
  figuresOf, formatTable, gitCommit, machine, packageVersion, writeResults,
  type PhaseFailure, type PhaseFigures,
} from './results-file.ts';
import { attempt } from './phase-attempt.ts';

/** The issue's aim: embedded Lantern delivers >= half the raw echo rate, with p99 < 10 ms at half the echo rate. */
const AIM = { minRatio: 0.5, loadFractionOfEcho: 0.5, maxP99Ms: 10 } as const;
/** An open-loop phase that delivers less than this share of its target did not sustain the load. */
const SUSTAINED_SHARE = 0.95;

/** redenvelope defaults (bench/README.md, "Red envelopes"). */
const RED = { members: 500, senders: 4, window: 4, drainMs: 10_000, ceilingConcurrency: 256, ceilingDurationSec: 5 } as const;
/** flashsale defaults (bench/README.md, "Flash sales"). */
const SALE = { buyers: 15_000, stock: 1_000, perUserLimit: 1, storms: 1, leadSec: 2 } as const;
/** connections default (issue 6: 100,000 idle connections on one machine). */
const CONNECTIONS_DEFAULT = 100_000;

const USAGE = `usage: npm run bench -- [options]
  --scenario all|echo|chat-1to1|distributed|redenvelope|flashsale|connections   phases to run (default all; or name it as the first argument)
  --clients N        connections (default 200; chat-1to1 uses whole pairs)
  --duration S       measured seconds per phase (default 10)
  --warmup S         unmeasured seconds before each phase (default 1)
  --workers N        load generator processes (default one per core: ${availableParallelism()})
  --window N         outstanding messages per client in max-rate phases (default ${DEFAULT_LOAD_SETTINGS.window})
  --payload N        filler bytes per message after the timestamp (default ${DEFAULT_LOAD_SETTINGS.payloadBytes})
  --rate N           open-loop msgs/s (default: half the echo rate; chat-1to1 alone: half its own max)
  --store lmdb|memory  Lantern store (default lmdb)
  --out DIR          results directory (default bench/results)
 distributed only (bench/README.md, "Distributed"):
  --gateways N       gateway shard processes (default 2)
  --engine-workers N engine worker processes (default 2)
  --group-clients N  clients of the group phase, whole groups (default 200)
  --group-size N     members per group (default ${DEFAULT_GROUP_SETTINGS.size})
  --group-senders N  senders per group (default ${DEFAULT_GROUP_SETTINGS.senders})
  --cql-concurrency N  cassandra-driver requests in flight in the raw phases (default 64)
  --no-profile       skip the CPU profiles of gateway 0 and worker 0 (redenvelope: and of the embedded server)
 redenvelope only (bench/README.md, "Red envelopes"; --gateways, --engine-workers, --store apply too):
  --mode embedded|distributed|both   which Lantern to run (default both); the grab ceiling runs either way
  --members N        members of the one group (default ${RED.members})
  --senders N        members sending envelopes (default ${RED.senders})
  --window N         envelopes each sender keeps open (default ${RED.window}); --rate N: envelopes/s in all instead
  --shares N         shares per envelope (default ${DEFAULT_ENVELOPE_SETTINGS.count})
  --total N          cents per envelope (default ${DEFAULT_ENVELOPE_SETTINGS.total})
  --split lucky|equal  (default ${DEFAULT_ENVELOPE_SETTINGS.mode})
  --ceiling-concurrency N  decide() calls in flight in the ceiling (default ${RED.ceilingConcurrency})
  --ceiling-duration S     decide time of the ceiling (default ${RED.ceilingDurationSec})
  --redis-url URL    Redis of the ceiling in embedded-only runs (default LANTERN_REDIS_URL, else ops/infra.sh)
 flashsale only (bench/README.md, "Flash sales"; --mode, --gateways, --engine-workers, --store, --redis-url,
 --ceiling-concurrency, --ceiling-duration apply too):
  --buyers N         buyers, one socket each, all tapping at the sale's start (default ${SALE.buyers})
  --stock N          units of the sale (default ${SALE.stock})
  --per-user-limit N the sale's per-buyer limit (default ${SALE.perUserLimit}; each buyer taps once for 1 unit)
  --storms N         storms per mode, each on a fresh sale with the same buyers (default ${SALE.storms})
  --lead S           seconds from creating the sale to its start (default ${SALE.leadSec})
  --workers N        generator processes (default ceil(buyers / ${BUYERS_PER_GENERATOR}))
 connections only (bench/README.md, "Connection scale"; --store, --gateways, --engine-workers apply too):
  --connections N    idle authenticated connections (default ${CONNECTIONS_DEFAULT}; embedded: capped by the open-file limit)
  --idle S           seconds the connections sit idle while CPU is measured (default ${DEFAULT_IDLE_MS / 1000})
  --mode embedded|distributed|both   (default embedded, or distributed when --gateways is given)
  --workers N        generator processes (default ceil(connections / ${CONNECTIONS_PER_GENERATOR}))`;

const SCENARIOS = ['all', 'echo', 'chat-1to1', 'distributed', 'redenvelope', 'flashsale', 'connections'] as const;

export interface Options {
  scenario: (typeof SCENARIOS)[number];
  clients: number;
  workers: number;
  rate: number | undefined;
  store: 'lmdb' | 'memory';
  out: string;
  load: LoadSettings;
  distributed: {
    gateways: number; engineWorkers: number; groupClients: number; groupSize: number; groupSenders: number;
    cqlConcurrency: number; profile: boolean;
  };
  redenvelope: {
    modes: Array<'embedded' | 'distributed'>; members: number; senders: number; envelope: EnvelopeSettings;
    /** Envelopes each sender keeps open (max mode). */
    window: number;
    ceilingConcurrency: number; ceilingDurationMs: number; redisUrl: string | undefined;
  };
  flashsale: {
    buyers: number; stock: number; perUserLimit: number; storms: number; leadMs: number;
    /** --workers when given, else derived from the buyers. */
    loadWorkers: number | undefined;
  };
  connections: { count: number; idleMs: number; modes: Array<'embedded' | 'distributed'>; loadWorkers: number | undefined };
}

function positive(name: string, raw: string | undefined, fallback: number, integer = true): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got "${raw}"`);
  return n;
}

function parseOptions(argv: string[]): Options {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      scenario: { type: 'string', default: 'all' }, clients: { type: 'string' }, duration: { type: 'string' },
      warmup: { type: 'string' }, workers: { type: 'string' }, window: { type: 'string' }, payload: { type: 'string' },
      rate: { type: 'string' }, store: { type: 'string', default: 'lmdb' }, out: { type: 'string' }, help: { type: 'boolean' },
      gateways: { type: 'string' }, 'engine-workers': { type: 'string' }, 'group-clients': { type: 'string' },
      'group-size': { type: 'string' }, 'group-senders': { type: 'string' }, 'cql-concurrency': { type: 'string' },
      'no-profile': { type: 'boolean' },
      mode: { type: 'string' }, members: { type: 'string' }, senders: { type: 'string' }, shares: { type: 'string' },
      total: { type: 'string' }, split: { type: 'string' }, 'ceiling-concurrency': { type: 'string' }, 'ceiling-duration': { type: 'string' },
      'redis-url': { type: 'string' },
      buyers: { type: 'string' }, stock: { type: 'string' }, 'per-user-limit': { type: 'string' }, storms: { type: 'string' },
      lead: { type: 'string' }, connections: { type: 'string' }, idle: { type: 'string' },
    },
  });
  if (values.help) { console.log(USAGE); process.exit(0); }
  if (positionals.length > 1) throw new Error(`one scenario at most, got "${positionals.join(' ')}"`);
  const scenario = (positionals[0] ?? values.scenario) as Options['scenario'];
  if (!SCENARIOS.includes(scenario)) throw new Error(`the scenario must be one of ${SCENARIOS.join(', ')}, got "${scenario}"`);
  const mode = values.mode ?? 'both';
  if (mode !== 'embedded' && mode !== 'distributed' && mode !== 'both') throw new Error(`--mode must be embedded, distributed or both, got "${values.mode}"`);
  if (values.split !== undefined && values.split !== 'lucky' && values.split !== 'equal') throw new Error(`--split must be lucky or equal, got "${values.split}"`);
  if (values.store !== 'lmdb' && values.store !== 'memory') throw new Error(`--store must be lmdb or memory, got "${values.store}"`);
  const warmupSec = values.warmup === '0' ? 0 : positive('warmup', values.warmup, DEFAULT_LOAD_SETTINGS.warmupMs / 1000, false);
  return {
    scenario,
    clients: positive('clients', values.clients, 200),
    workers: positive('workers', values.workers, availableParallelism()),
    rate: values.rate === undefined ? undefined : positive('rate', values.rate, 0, false),
    store: values.store,
    out: values.out ?? fileURLToPath(new URL('./results', import.meta.url)),
    load: {
      ...DEFAULT_LOAD_SETTINGS,
      durationMs: positive('duration', values.duration, 10, false) * 1000,
      warmupMs: warmupSec * 1000,
      window: positive('window', values.window, DEFAULT_LOAD_SETTINGS.window),
      payloadBytes: values.payload === '0' ? 0 : positive('payload', values.payload, DEFAULT_LOAD_SETTINGS.payloadBytes),
    },
    distributed: {
      gateways: positive('gateways', values.gateways, 2),
      engineWorkers: positive('engine-workers', values['engine-workers'], 2),
      groupClients: positive('group-clients', values['group-clients'], 200),
      groupSize: positive('group-size', values['group-size'], DEFAULT_GROUP_SETTINGS.size),
      groupSenders: positive('group-senders', values['group-senders'], DEFAULT_GROUP_SETTINGS.senders),
      cqlConcurrency: positive('cql-concurrency', values['cql-concurrency'], 64),
      profile: values['no-profile'] !== true,
    },
    redenvelope: {
      modes: mode === 'both' ? ['embedded', 'distributed'] : [mode],
      members: positive('members', values.members, RED.members),
      senders: positive('senders', values.senders, RED.senders),
      envelope: {
        count: positive('shares', values.shares, DEFAULT_ENVELOPE_SETTINGS.count),
        total: positive('total', values.total, DEFAULT_ENVELOPE_SETTINGS.total),
        mode: values.split ?? DEFAULT_ENVELOPE_SETTINGS.mode,
      },
      window: positive('window', values.window, RED.window),
      ceilingConcurrency: positive('ceiling-concurrency', values['ceiling-concurrency'], RED.ceilingConcurrency),
      ceilingDurationMs: positive('ceiling-duration', values['ceiling-duration'], RED.ceilingDurationSec, false) * 1000,
      redisUrl: values['redis-url'],
    },
    flashsale: {
      buyers: positive('buyers', values.buyers, SALE.buyers),
      stock: positive('stock', values.stock, SALE.stock),
      perUserLimit: positive('per-user-limit', values['per-user-limit'], SALE.perUserLimit),
      storms: positive('storms', values.storms, SALE.storms),
      leadMs: positive('lead', values.lead, SALE.leadSec, false) * 1000,
      loadWorkers: values.workers === undefined ? undefined : positive('workers', values.workers, 1),
    },
    connections: {
      count: positive('connections', values.connections, CONNECTIONS_DEFAULT),
      idleMs: positive('idle', values.idle, DEFAULT_IDLE_MS / 1000, false) * 1000,
      // Embedded unless asked otherwise: the distributed mode needs nats, redis and Cassandra.
      modes: values.mode === undefined ? (values.gateways === undefined ? ['embedded'] : ['distributed']) : mode === 'both' ? ['embedded', 'distributed'] : [mode],
      loadWorkers: values.workers === undefined ? undefined : positive('workers', values.workers, 1),
    },
  };
}

async function runRedEnvelopeBench(o: Options): Promise<number> {
  const r = o.redenvelope;
  const load: LoadSettings = o.rate === undefined
    ? { ...o.load, mode: 'max', window: r.window, drainMs: RED.drainMs }
    : { ...o.load, mode: 'rate', ratePerSec: o.rate, drainMs: RED.drainMs };
  const { file, body } = await redEnvelopeBench({
    modes: r.modes, members: r.members, senders: r.senders, envelope: r.envelope, loadWorkers: o.workers, load, store: o.store,
    gateways: o.distributed.gateways, engineWorkers: o.distributed.engineWorkers,
    ceiling: { concurrency: r.ceilingConcurrency, durationMs: r.ceilingDurationMs }, profile: o.distributed.profile,
    ...(r.redisUrl ? { redisUrl: r.redisUrl } : {}),
  }, o.out);
  console.log(formatRedEnvelopes(body.results));
  for (const [name, p] of Object.entries(body.results)) {
    if ('verification' in p && !p.verification.ok) console.log(`${name} verification (first ${p.verification.problems.length} of ${p.verification.problemCount}): ${p.verification.problems.join(' | ')}`);
    if ('errorSamples' in p && p.errorSamples.length > 0) console.log(`${name} errors (first ${p.errorSamples.length}): ${p.errorSamples.join(' | ')}`);
  }
  for (const [k, v] of Object.entries(body.ratios)) console.log(`${k}: ${v ?? 'not measured'}`);
  for (const mode of r.modes) console.log(`aim (${mode}): grabs/s >= ${AIM_SHARE_OF_CEILING} x ceiling: ${verdict(body.aim[mode]?.met ?? null)}`);
  console.log(`results: ${file}`);
  const failed = Object.values(body.results).some((p) => 'error' in p || ('verification' in p && !p.verification.ok));
  return failed ? 1 : 0;
}

async function runFlashSaleBench(o: Options): Promise<number> {
  const f = o.flashsale;
  const { file, body } = await flashSaleBench({
    modes: o.redenvelope.modes, buyers: f.buyers, stock: f.stock, perUserLimit: f.perUserLimit, storms: f.storms, leadMs: f.leadMs,
    ...(f.loadWorkers ? { loadWorkers: f.loadWorkers } : {}), store: o.store,
    gateways: o.distributed.gateways, engineWorkers: o.distributed.engineWorkers,
    ceiling: { concurrency: o.redenvelope.ceilingConcurrency, durationMs: o.redenvelope.ceilingDurationMs },
    ...(o.redenvelope.redisUrl ? { redisUrl: o.redenvelope.redisUrl } : {}),
  }, o.out);
  console.log(formatFlashSales(body.results));
  for (const [name, p] of Object.entries(body.results)) {
    if (!('verification' in p)) continue;
    for (const [i, s] of (p.storms ?? [p]).entries()) {
      const v = s.verification;
      if (!v.ok) console.log(`${name} storm ${i} verification (first ${v.problems.length} of ${v.problemCount}): ${v.problems.join(' | ')}`);
      if (s.errorSamples.length > 0) console.log(`${name} storm ${i} errors (first ${s.errorSamples.length} of ${s.errors}): ${s.errorSamples.join(' | ')}`);
    }
  }
  for (const [k, v] of Object.entries(body.ratios)) console.log(`${k}: ${v ?? 'not measured'}`);
  console.log(`results: ${file}`);
  const failed = Object.values(body.results).some((p) => 'error' in p || ('verified' in p && !p.verified));
  return failed ? 1 : 0;
}

async function runConnectionsBench(o: Options): Promise<number> {
  const c = o.connections;
  const { file, body } = await connectionsBench({
    modes: c.modes, connections: c.count, idleMs: c.idleMs, store: o.store,
    gateways: o.distributed.gateways, engineWorkers: o.distributed.engineWorkers, ...(c.loadWorkers ? { loadWorkers: c.loadWorkers } : {}),
  }, o.out);
  console.log(formatConnections(body.results));
  for (const [name, p] of Object.entries(body.results)) {
    if ('error' in p) continue;
    const samples = [...p.connect.failureSamples, ...p.idle.closeSamples];
    if (samples.length > 0) console.log(`${name} failures/closes (first ${samples.length}): ${samples.join(' | ')}`);
  }
  for (const [k, v] of Object.entries(body.ratios)) console.log(`${k}: ${v ?? 'not measured'}`);
  console.log(`results: ${file}`);
  const failed = Object.values(body.results).some((p) => 'error' in p || p.connect.failed > 0 || p.held < p.connections);
  return failed ? 1 : 0;
}

async function echoPhase(o: Options, load: LoadSettings): Promise<PhaseFigures> {
  const server = await startEcho();
  try {
    return figuresOf(await runLoad({ scenario: 'echo', url: server.url, clients: o.clients, workers: o.workers, load }));
  } finally {
    await server.close();
  }
}

/** Each chat phase gets a fresh server and data dir, so phases do not inherit each other's data. */
async function chatPhase(o: Options, load: LoadSettings, serverSettings: { value?: Record<string, unknown> }): Promise<PhaseFigures> {
  const lantern = await startBenchLantern(o.store);
  serverSettings.value ??= lantern.settings;
  try {
    return figuresOf(await runLoad({ scenario: 'chat-1to1', url: lantern.url, clients: o.clients, workers: o.workers, load, chat: lantern.chat }));
  } finally {
    await lantern.close();
  }
}


async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  if (o.scenario === 'distributed') return runDistributedBench(o);
  if (o.scenario === 'redenvelope') return runRedEnvelopeBench(o);
  if (o.scenario === 'flashsale') return runFlashSaleBench(o);
  if (o.scenario === 'connections') return runConnectionsBench(o);
  const date = new Date();
  const machineAtStart = machine(); // before our own load lifts the load average
  const phases: Record<string, PhaseFigures | PhaseFailure> = {};
  const lanternSettings: { value?: Record<string, unknown> } = {};
  const max: LoadSettings = { ...o.load, mode: 'max' };
  const paced = (ratePerSec: number): LoadSettings => ({ ...o.load, mode: 'rate', ratePerSec });

  let echo: PhaseFigures | undefined;
  let chatMax: PhaseFigures | undefined;
  let latencyPhase: { name: string; figures: PhaseFigures | undefined; target: number } | undefined;
  if (o.scenario !== 'chat-1to1') {
    echo = await attempt(phases, 'echo-max', () => echoPhase(o, max));
    if (o.scenario === 'echo' && o.rate !== undefined) {
      const rate = o.rate;
      await attempt(phases, 'echo-rate', () => echoPhase(o, paced(rate)));
    }
  }
  if (o.scenario !== 'echo') {
    chatMax = await attempt(phases, 'chat-1to1-max', () => chatPhase(o, max, lanternSettings));
    const base = o.rate ?? (o.scenario === 'all' ? echo?.msgsPerSec : chatMax?.msgsPerSec);
    const rate = o.rate ?? (base === undefined ? undefined : Math.round(base * AIM.loadFractionOfEcho));
    const name = o.rate !== undefined ? 'chat-1to1-rate' : o.scenario === 'all' ? 'chat-1to1-half-echo-rate' : 'chat-1to1-half-max-rate';
    if (rate !== undefined && rate > 0) {
      latencyPhase = { name, target: rate, figures: await attempt(phases, name, () => chatPhase(o, paced(rate), lanternSettings)) };
    } else {
      phases[name] = { error: 'skipped: no rate to pace at (the phase it derives from failed)' };
    }
  }

  const ratio = echo && chatMax && echo.msgsPerSec > 0 ? Math.round((chatMax.msgsPerSec / echo.msgsPerSec) * 1000) / 1000 : null;
  const aim = o.scenario === 'all' ? judgeAim(ratio, latencyPhase) : undefined;
  const body = {
    version: packageVersion(),
    commit: gitCommit(),
    date: date.toISOString(),
    machine: machineAtStart,
    settings: {
      scenario: o.scenario, clients: o.clients, workers: o.workers, store: o.store,
      durationMs: o.load.durationMs, warmupMs: o.load.warmupMs, drainMs: o.load.drainMs, window: o.load.window,
      payloadBytes: o.load.payloadBytes, tickMs: o.load.tickMs, rate: o.rate ?? null,
      lantern: lanternSettings.value ?? null,
    },
    results: phases,
    ratio,
    ...(aim ? { aim } : {}),
  };
  const file = await writeResults(o.out, o.scenario, date, body);

  console.log(formatTable(phases));
  for (const [name, p] of Object.entries(phases)) {
    if (!('error' in p) && p.errorSamples.length > 0) console.log(`${name} errors (first ${p.errorSamples.length}): ${p.errorSamples.join(' | ')}`);
  }
  if (ratio !== null) console.log(`ratio lantern/echo (max rate): ${ratio}`);
  if (aim) console.log(`aim: ratio >= ${AIM.minRatio}: ${verdict(aim.throughput.met)}; p99 < ${AIM.maxP99Ms} ms at half the echo rate: ${verdict(aim.latency.met)}${aim.latency.note ? ` (${aim.latency.note})` : ''}`);
  console.log(`results: ${file}`);
  return Object.values(phases).some((p) => 'error' in p) ? 1 : 0;
}

function verdict(met: boolean | null): string {
  return met === null ? 'not measured' : met ? 'met' : 'NOT met';
}

function judgeAim(ratio: number | null, latency: { figures: PhaseFigures | undefined; target: number } | undefined) {
  const f = latency?.figures;
  const sustained = f ? f.msgsPerSec >= latency!.target * SUSTAINED_SHARE : null;
  // Not sustaining the load fails the aim even when nothing arrived to take a p99 of.
  const latencyMet = sustained === null ? null : sustained && f!.p99Ms !== null && f!.p99Ms < AIM.maxP99Ms;
  return {
    throughput: { target: `lantern/echo >= ${AIM.minRatio}`, ratio, met: ratio === null ? null : ratio >= AIM.minRatio },
    latency: {
      target: `p99 < ${AIM.maxP99Ms} ms at ${AIM.loadFractionOfEcho} x echo rate`,
      targetRatePerSec: latency?.target ?? null,
      deliveredPerSec: f?.msgsPerSec ?? null,
      p99Ms: f?.p99Ms ?? null,
      sustained,
      met: latencyMet,
      note: sustained === false ? `delivered ${f!.msgsPerSec}/s of ${latency!.target}/s targeted: load not sustained` : undefined,
    },
  };
}

main().then((code) => { process.exitCode = code; }, (err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  console.error(USAGE);
  process.exitCode = 2;
});
