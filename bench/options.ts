// The command line of `npm run bench`: which scenario, and the settings of each. Usage text and
// defaults live here; bench/run.ts dispatches. See bench/README.md.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_IDLE_MS } from './connections-bench.ts';
import { CONNECTIONS_PER_GENERATOR } from './loadgen/idle-run.ts';
import { LOCUST_SCENARIOS, type LocustScenario } from './locust-bench.ts';
import { DEFAULT_GROUP_SIZES, PEER_TARGETS, type PeerTargetName } from './peers-bench.ts';
import { BUYERS_PER_GENERATOR } from './loadgen/flashsale-run.ts';
import {
  DEFAULT_ENVELOPE_SETTINGS, DEFAULT_GROUP_SETTINGS, DEFAULT_LOAD_SETTINGS, type EnvelopeSettings, type LoadSettings,
} from './loadgen/messages.ts';

/** redenvelope defaults (bench/README.md, "Red envelopes"). */
export const RED = { members: 500, senders: 4, window: 4, drainMs: 10_000, ceilingConcurrency: 256, ceilingDurationSec: 5 } as const;
/** flashsale defaults (bench/README.md, "Flash sales"). */
const SALE = { buyers: 15_000, stock: 1_000, perUserLimit: 1, storms: 1, leadSec: 2 } as const;
/** connections default (issue 6: 100,000 idle connections on one machine). */
const CONNECTIONS_DEFAULT = 100_000;

export const USAGE = `usage: npm run bench -- [options]
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
  --workers N        generator processes (default ceil(connections / ${CONNECTIONS_PER_GENERATOR}))
 connect-storm, reconnect-storm (bench/README.md, "Connection storm", "Reconnect storm"; --mode (default embedded),
 --gateways, --engine-workers, --store, --workers, --slo apply):
  --connections N    connect-storm: connections to ramp to (default 5000); reconnect-storm: clients (default 2000)
  --ramp N           connect-storm: new connections per second, 0 = all at once (default 0)
  --group-size N     reconnect-storm: members per conversation, 2 = direct pairs (default 10)
  --drop F           reconnect-storm: fraction of clients that drop (default 1)
  --away S           reconnect-storm: seconds the dropped clients stay away while messages flow (default 3)
  --msg-rate N       reconnect-storm: messages/s into the conversations (default 200)
  SLO metrics: connect_p99_ms, connect_p50_ms, connects_per_sec, failed, error_rate; resync_p99_ms,
  reconnect_p99_ms, gaps, error_rate; p99_ms is the headline p99 of either
 chat, fanout (bench/README.md, "Chat and fan-out on every peer"; --clients, --duration, --warmup, --window, --rate,
 --payload, --workers, --store, --gateways, --engine-workers, --slo apply):
  --targets LIST     comma-separated of ${PEER_TARGETS.join(', ')} (default: all but
                     lantern-distributed, which --mode distributed|both adds; raw-uws always runs first, it is the ceiling)
  --mode embedded|distributed|both   which Lantern rows (default embedded)
  --group-sizes LIST fanout: members per group, each size its own phases (default ${DEFAULT_GROUP_SIZES.join(',')})
  --group-senders N  fanout: members of each group that publish (default 4)
  SLO metrics: p99_ms, p50_ms, deliveries_per_sec, error_rate, ratio (of lantern-embedded; fanout: at the largest size)
 locust [${LOCUST_SCENARIOS.join('|')}] (bench/locust/README.md; all six when none is named; --duration, --slo, --store apply):
  --users N          Locust users (default 50)
  --spawn-rate N     users started per second (default 10)
  --group-size N     members per group (group-fanout, red-envelope, reconnect-storm; default 10)
  --url URLS         a running fleet's ws URLs, comma-separated, instead of a local embedded server
                     (its secrets from LANTERN_JWT_SECRET, LANTERN_JWT_AUDIENCE, LANTERN_ADMIN_URL, LANTERN_ADMIN_TOKEN)`;

export const SCENARIOS = [
  'all', 'report', 'echo-chat', 'echo', 'chat-1to1', 'chat', 'fanout', 'connect-storm', 'reconnect-storm', 'distributed', 'redenvelope', 'flashsale', 'connections', 'locust',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** What `all` runs, in this order (`echo` and `chat-1to1` are parts of echo-chat). */
export const ALL_SET = ['echo-chat', 'chat', 'fanout', 'connect-storm', 'reconnect-storm', 'connections', 'redenvelope', 'flashsale', 'distributed', 'locust'] as const satisfies readonly Scenario[];

/**
 * --smoke: each scenario at a tiny scale (seconds), for CI: the JSON, the chart and the SLO gates
 * are produced, the figures mean nothing. Given flags come after these, so they still win.
 */
export const SMOKE_ARGS: Record<(typeof ALL_SET)[number], string[]> = {
  'echo-chat': ['--clients', '20', '--duration', '1', '--warmup', '0', '--workers', '1'],
  chat: ['--clients', '20', '--duration', '1', '--warmup', '0', '--workers', '1'],
  fanout: ['--clients', '20', '--duration', '1', '--warmup', '0', '--workers', '1', '--group-sizes', '10'],
  'connect-storm': ['--connections', '200', '--mode', 'embedded'],
  'reconnect-storm': ['--connections', '40', '--group-size', '10', '--away', '1', '--mode', 'embedded'],
  connections: ['--connections', '200', '--idle', '1', '--mode', 'embedded'],
  redenvelope: ['--mode', 'embedded', '--members', '20', '--shares', '10', '--senders', '2', '--duration', '1', '--warmup', '0', '--workers', '1', '--ceiling-duration', '1', '--no-profile'],
  flashsale: ['--mode', 'embedded', '--buyers', '200', '--stock', '20', '--ceiling-duration', '1', '--lead', '1'],
  // Locust pairs users per process and groups them by --group-size: 6 users make whole pairs and a group.
  locust: ['--users', '6', '--spawn-rate', '6', '--duration', '4', '--group-size', '3', '--store', 'memory'],
  distributed: ['--clients', '20', '--group-clients', '20', '--group-size', '10', '--duration', '1', '--warmup', '0', '--workers', '1', '--cql-concurrency', '8', '--no-profile'],
};

export interface Options {
  scenario: Scenario;
  /** SLO gates, bench/report/slo.ts syntax (--slo). */
  slo: string | undefined;
  smoke: boolean;
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
  storms: {
    connections: number | undefined; rampPerSec: number; groupSize: number | undefined; dropFraction: number;
    awayMs: number | undefined; messageRate: number | undefined; modes: Array<'embedded' | 'distributed'>; loadWorkers: number | undefined;
  };
  peers: { targets: PeerTargetName[] | undefined; modes: Array<'embedded' | 'distributed'>; groupSizes: number[] | undefined; groupSenders: number | undefined };
  locust: { scenarios: LocustScenario[]; users: number; spawnRate: number; durationSec: number; groupSize: number | undefined; url: string | undefined };
}

function positive(name: string, raw: string | undefined, fallback: number, integer = true): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got "${raw}"`);
  return n;
}

const OPTION_SPEC = {
  scenario: { type: 'string', default: 'echo-chat' }, clients: { type: 'string' }, duration: { type: 'string' },
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
  slo: { type: 'string' }, smoke: { type: 'boolean' },
  users: { type: 'string' }, 'spawn-rate': { type: 'string' }, url: { type: 'string' },
  targets: { type: 'string' }, 'group-sizes': { type: 'string' },
  ramp: { type: 'string' }, drop: { type: 'string' }, away: { type: 'string' }, 'msg-rate': { type: 'string' },
} as const;

/** The flags of a command line without its scenario (positional or --scenario X). */
export function flagsOf(argv: string[]): string[] {
  const { tokens } = parseArgs({ args: argv, options: OPTION_SPEC, allowPositionals: true, tokens: true });
  const drop = new Set<number>();
  for (const t of tokens) {
    if (t.kind === 'positional') drop.add(t.index);
    if (t.kind === 'option' && t.name === 'scenario') { drop.add(t.index); if (!t.inlineValue) drop.add(t.index + 1); }
  }
  return argv.filter((_, i) => !drop.has(i));
}

function fraction(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!(n > 0 && n <= 1)) throw new Error(`--${name} must be a fraction in (0, 1], got "${raw}"`);
  return n;
}

function listOf<T extends string>(name: string, raw: string, allowed: readonly T[]): T[] {
  return raw.split(',').map((v) => {
    if (!(allowed as readonly string[]).includes(v)) throw new Error(`--${name}: "${v}" is not one of ${allowed.join(', ')}`);
    return v as T;
  });
}

export function parseOptions(argv: string[]): Options {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: OPTION_SPEC,
  });
  if (values.help) { console.log(USAGE); process.exit(0); }
  const scenario = (positionals[0] ?? values.scenario) as Options['scenario'];
  // `locust <name>` names one Locust scenario; `locust` alone runs them all.
  if (positionals.length > (scenario === 'locust' ? 2 : 1)) throw new Error(`one scenario at most, got "${positionals.join(' ')}"`);
  const locustScenario = positionals[1];
  if (locustScenario !== undefined && !(LOCUST_SCENARIOS as readonly string[]).includes(locustScenario)) {
    throw new Error(`the Locust scenario must be one of ${LOCUST_SCENARIOS.join(', ')}, got "${locustScenario}"`);
  }
  if (!SCENARIOS.includes(scenario)) throw new Error(`the scenario must be one of ${SCENARIOS.join(', ')}, got "${scenario}"`);
  const mode = values.mode ?? 'both';
  if (mode !== 'embedded' && mode !== 'distributed' && mode !== 'both') throw new Error(`--mode must be embedded, distributed or both, got "${values.mode}"`);
  if (values.split !== undefined && values.split !== 'lucky' && values.split !== 'equal') throw new Error(`--split must be lucky or equal, got "${values.split}"`);
  if (values.store !== 'lmdb' && values.store !== 'memory') throw new Error(`--store must be lmdb or memory, got "${values.store}"`);
  const warmupSec = values.warmup === '0' ? 0 : positive('warmup', values.warmup, DEFAULT_LOAD_SETTINGS.warmupMs / 1000, false);
  return {
    scenario,
    slo: values.slo,
    smoke: values.smoke === true,
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
    storms: {
      connections: values.connections === undefined ? undefined : positive('connections', values.connections, 1),
      rampPerSec: values.ramp === undefined || values.ramp === '0' ? 0 : positive('ramp', values.ramp, 0, false),
      groupSize: values['group-size'] === undefined ? undefined : positive('group-size', values['group-size'], 10),
      dropFraction: fraction('drop', values.drop, 1),
      awayMs: values.away === undefined ? undefined : positive('away', values.away, 3, false) * 1000,
      messageRate: values['msg-rate'] === undefined ? undefined : positive('msg-rate', values['msg-rate'], 200, false),
      modes: values.mode === undefined ? ['embedded'] : mode === 'both' ? ['embedded', 'distributed'] : [mode],
      loadWorkers: values.workers === undefined ? undefined : positive('workers', values.workers, 1),
    },
    peers: {
      targets: values.targets === undefined ? undefined : listOf('targets', values.targets, PEER_TARGETS),
      modes: values.mode === undefined ? ['embedded'] : mode === 'both' ? ['embedded', 'distributed'] : [mode],
      groupSizes: values['group-sizes'] === undefined ? undefined : values['group-sizes'].split(',').map((v) => positive('group-sizes', v, 10)),
      groupSenders: values['group-senders'] === undefined ? undefined : positive('group-senders', values['group-senders'], 4),
    },
    locust: {
      scenarios: locustScenario === undefined ? [...LOCUST_SCENARIOS] : [locustScenario as LocustScenario],
      users: positive('users', values.users, 50),
      spawnRate: positive('spawn-rate', values['spawn-rate'], 10, false),
      durationSec: positive('duration', values.duration, 10, false),
      groupSize: values['group-size'] === undefined ? undefined : positive('group-size', values['group-size'], 10),
      url: values.url,
    },
  };
}
