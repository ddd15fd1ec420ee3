// `npm run bench -- flashsale`: issue 5's flash-sale benchmark. `buyers` buyers, each on its own
// socket (held by generator processes, loadgen/flashsale-run.ts), spread over the gateways, all tap
// `sale.buy` at the start of a sale of `stock` units; attempts answered per second, answer latency,
// time to sold out, and the share of attempts the gateways answered without a worker, next to the
// raw ceiling of the admission step (RedisStockGate.decide driven directly, reserve-ceiling.ts)
// measured in the same run. Each storm is verified: exactly the stock reserved, nobody twice, the
// winners exactly those told `reserved`. Modes: embedded (the server in this process) and
// distributed (N gateways + M workers as processes over NATS, Redis and Cassandra). Writes
// bench/results/flashsale-<ISO date>.json. See bench/README.md, "Flash sales".
import { readFileSync } from 'node:fs';
import { startCluster, type BenchCluster } from './distributed/cluster.ts';
import { acquireInfra, acquireRedis, type Endpoints } from './distributed/infra.ts';
import { coresBetween, perUnit, pidListeningOn, sampleCpu, type CoresUsed, type CpuSample } from './distributed/proc-cpu.ts';
import { startBenchLantern } from './lantern-server.ts';
import { BUYERS_PER_GENERATOR, SaleCrowd, type AnswerList, type FinalOutcome, type SaleStormResult } from './loadgen/flashsale-run.ts';
import {
  countersBetween, createSale, openShop, readSaleOrders, saleAttemptCounters, verifyStorm,
  type SaleAttemptCounters, type StormVerification,
} from './loadgen/flashsale-sale.ts';
import { attempt } from './phase-attempt.ts';
import { measureReserveCeiling, type ReserveCeiling } from './reserve-ceiling.ts';
import { gitCommit, machine, packageVersion, writeResults, type PhaseFailure } from './results-file.ts';

/** Time from creating a sale to its start: the `scheduled` state reaches every gateway, the storm order every generator. */
export const DEFAULT_LEAD_MS = 2_000;
/** Above this many buyers the storm returns only the winners' answers (the counts still cover everyone). */
const ALL_ANSWERS_UP_TO = 20_000;
/** File descriptors a server process keeps for everything but the buyers' sockets (store, NATS, Redis, logs). */
const FD_RESERVE = 1_000;
const PRICE_CENTS = 9_900;
const SALE_HOURS_MS = 3_600_000;
const SETUP_TIMEOUT_MS = 60_000;
/** Bound on connecting the buyers: 5 min, or 10 ms per buyer when more (distributed hellos ran ~160/s on a busy 2-core box). */
const connectTimeoutMs = (buyers: number): number => Math.max(300_000, buyers * 10);
/** Bound on a storm after its start: 2 min, or 3 ms per buyer when more (100,000 buyers took 66 s on a busy 2-core box). */
const stormTimeoutMs = (buyers: number): number => Math.max(120_000, buyers * 3);

export interface FlashSaleBenchOptions {
  modes: Array<'embedded' | 'distributed'>;
  buyers: number;
  stock: number;
  perUserLimit: number;
  /** Storms per mode, each on a fresh sale, the same buyers (connected once). */
  storms: number;
  /** Generator processes (default ceil(buyers / BUYERS_PER_GENERATOR)). */
  loadWorkers?: number;
  store: 'lmdb' | 'memory';
  gateways: number;
  engineWorkers: number;
  /** decide() calls in flight and decide time of the ceiling. */
  ceiling: { concurrency: number; durationMs: number };
  leadMs?: number;
  /** Per-buyer answers kept (default: all up to 20,000 buyers, else the winners'). */
  answers?: AnswerList;
  /** Embedded only: the Redis for the ceiling (default LANTERN_REDIS_URL, else ops/infra.sh's). */
  redisUrl?: string;
  /** Infrastructure for the distributed mode (tests); default LANTERN_* env, else ops/infra.sh. */
  endpoints?: Endpoints;
}

/** One storm's figures. */
export interface StormFigures {
  sale: string;
  /** Attempts answered (any outcome, try_later included) per second, first send -> last answer: the headline. */
  attemptsPerSec: number;
  attemptsSent: number;
  attemptsAnswered: number;
  tryLater: number;
  early: number;
  duplicates: number;
  /** Answer latency: sale.buy sent -> its answer (ms). */
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  meanMs: number | null;
  firstSendLagMs: number | null;
  /** startAt -> the last answer, and -> the first sold_out answer (ms). */
  stormMs: number | null;
  timeToSoldOutMs: number | null;
  outcomes: Record<FinalOutcome, number>;
  errors: number;
  errorSamples: string[];
  /** The gateways' lantern_sale_attempts_total over the storm; localShare = local / all. */
  gateway: SaleAttemptCounters & { localShare: number | null };
  verification: StormVerification;
  /** Cores per process group from startAt to the last answer, and CPU µs per answered attempt. */
  cpu: CoresUsed & { usPerAttempt: Record<string, number> | null };
}

/** One mode: the median storm's figures (by attempts/s), and every storm when there are several. */
export type FlashSalePhase = StormFigures & {
  buyers: number;
  /** When the server's open-file limit capped the buyers: how many were asked for. */
  buyersAsked?: number;
  stock: number;
  perUserLimit: number;
  gateways: number;
  generators: number;
  /** Connecting every buyer (ms), and the connection attempts that failed and were made again. */
  connectMs: number;
  reconnects: number;
  /** Every storm verified. */
  verified: boolean;
  storms?: StormFigures[];
};

type CeilingPhase = ReserveCeiling & { redisUrl: string; stockPerSale: number; buyersPerSale: number; concurrency: number };
type Phase = FlashSalePhase | CeilingPhase | PhaseFailure;

const PHASE = { ceiling: 'reserve-ceiling', embedded: 'embedded-flashsale', distributed: 'distributed-flashsale' } as const;

interface Target {
  urls: string[];
  auth: { secret: string; audience: string };
  adminToken: string;
  /** Processes whose CPU is sampled (the generators are added). */
  groups: Record<string, number[]>;
  /** Buyers the server side can hold (open files of its processes). */
  capacity: number;
}

/** The soft open-file limit of this process (children inherit it); Infinity when unknown. */
export function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : Infinity;
  } catch {
    return Infinity; // not Linux: no way to ask from Node, so no cap
  }
}

/** Buyers one server process can hold: its open-file limit less what it needs besides. */
export function buyersPerServerProcess(limit = openFileLimit()): number {
  return Number.isFinite(limit) ? Math.max(1, limit - FD_RESERVE) : Number.MAX_SAFE_INTEGER;
}

async function stormPhase(o: FlashSaleBenchOptions, target: Target): Promise<FlashSalePhase> {
  const buyers = Math.min(o.buyers, target.capacity);
  if (buyers < o.buyers) console.error(`bench: ${o.buyers} buyers do not fit the server's open-file limit: ${buyers} (see bench/README.md, "Flash sales")`);
  const users = Array.from({ length: buyers }, (_, i) => `b${i}`);
  const answers = o.answers ?? (buyers <= ALL_ANSWERS_UP_TO ? 'all' : 'reserved');
  const connectStarted = performance.now();
  const crowd = await SaleCrowd.open({
    urls: target.urls, secret: target.auth.secret, audience: target.auth.audience, users, setupTimeoutMs: connectTimeoutMs(buyers),
    ...(o.loadWorkers ? { workers: o.loadWorkers } : {}),
  });
  try {
    const connectMs = Math.round(performance.now() - connectStarted);
    console.error(`bench: ${buyers} buyers connected in ${connectMs} ms by ${crowd.workers} generators (${crowd.reconnects} reconnects)`);
    const shop = await openShop(target.urls[0]!, target.auth, 'merchant', 'follower', SETUP_TIMEOUT_MS);
    const groups = { ...target.groups, generator: crowd.pids };
    const storms: StormFigures[] = [];
    try {
      for (let k = 0; k < o.storms; k++) storms.push(await oneStorm(o, target, crowd, shop, groups, k, answers));
    } finally {
      await shop.close();
    }
    const ranked = [...storms].sort((a, b) => a.attemptsPerSec - b.attemptsPerSec);
    const median = ranked[Math.floor((ranked.length - 1) / 2)]!;
    return {
      ...median, buyers, ...(buyers < o.buyers ? { buyersAsked: o.buyers } : {}), stock: o.stock, perUserLimit: o.perUserLimit,
      gateways: target.urls.length, generators: crowd.workers, connectMs, reconnects: crowd.reconnects, verified: storms.every((s) => s.verification.ok),
      ...(storms.length > 1 ? { storms } : {}),
    };
  } finally {
    await crowd.close();
  }
}

async function oneStorm(
  o: FlashSaleBenchOptions, target: Target, crowd: SaleCrowd, shop: Awaited<ReturnType<typeof openShop>>,
  groups: Record<string, number[]>, k: number, answers: AnswerList,
): Promise<StormFigures> {
  const countersBefore = await saleAttemptCounters(target.urls);
  const startAt = Date.now() + (o.leadMs ?? DEFAULT_LEAD_MS);
  const sale = await createSale(target.urls[k % target.urls.length]!, target.adminToken, shop, {
    stock: o.stock, perUserLimit: o.perUserLimit, price: PRICE_CENTS, startAt, endAt: startAt + SALE_HOURS_MS, key: `bench-storm-${k}`,
  });
  let before: CpuSample | undefined;
  const timer = setTimeout(() => { before = sampleCpu(groups); }, Math.max(0, startAt - Date.now()));
  let result: SaleStormResult;
  try {
    result = await crowd.storm({ sale: sale.sale, startAt, answers, timeoutMs: stormTimeoutMs(crowd.buyers) });
  } finally {
    clearTimeout(timer);
  }
  const after = sampleCpu(groups);
  if (before === undefined) throw new Error('the storm ended before its start: no CPU sample');
  const gateway = countersBetween(countersBefore, await saleAttemptCounters(target.urls));
  const info = await shop.conn.request('sale.info', { sale: sale.sale });
  const orders = await readSaleOrders(target.urls[0]!, target.adminToken, sale.sale);
  const verification = verifyStorm(info, orders, result);
  const cpu = coresBetween(before, after);
  const { answers: _answers, sale: _sale, startAt: _startAt, buyers: _buyers, workers: _workers, generatorCpuMs: _g, ...figures } = result;
  return { sale: sale.sale, ...figures, gateway, verification, cpu: { ...cpu, usPerAttempt: perUnit(cpu, result.attemptsPerSec) } };
}

export interface FlashSaleResults {
  infra: string;
  phases: Record<string, Phase>;
  ratios: Record<string, number | null>;
  cluster: { gateways: number; workers: number; settings: Record<string, string> } | null;
  embeddedSettings: Record<string, unknown> | null;
}

export async function runFlashSales(o: FlashSaleBenchOptions): Promise<FlashSaleResults> {
  const phases: Record<string, Phase> = {};
  const distributed = o.modes.includes('distributed');
  const infra = distributed ? await acquireInfra(o.endpoints) : undefined;
  const redis = infra ? { redisUrl: infra.endpoints.redisUrl, source: infra.source, release: () => infra.release() } : await acquireRedis(o.redisUrl);
  const port = (url: string): number => Number(new URL(url).port);
  const redisPids = (): number[] => [pidListeningOn(port(redis.redisUrl))].filter((p): p is number => p !== undefined);
  const perServer = buyersPerServerProcess();
  let cluster: FlashSaleResults['cluster'] = null;
  let embeddedSettings: FlashSaleResults['embeddedSettings'] = null;
  try {
    // 1. The ceiling, while Redis has nothing else to do: one sale of the same stock, every buyer once.
    await attempt(phases, PHASE.ceiling, async (): Promise<CeilingPhase> => {
      const settings = { stockPerSale: o.stock, buyersPerSale: o.buyers, concurrency: o.ceiling.concurrency };
      const figures = await measureReserveCeiling({ redisUrl: redis.redisUrl, sales: 1, ...settings, durationMs: o.ceiling.durationMs });
      return { ...figures, redisUrl: redis.redisUrl, ...settings };
    });

    // 2. Embedded: the server in this process, fresh data dir.
    if (o.modes.includes('embedded')) {
      await attempt(phases, PHASE.embedded, async () => {
        const lantern = await startBenchLantern(o.store);
        embeddedSettings = lantern.settings;
        try {
          return await stormPhase(o, {
            urls: [lantern.url], auth: { secret: lantern.chat.jwtSecret, audience: lantern.chat.audience }, adminToken: lantern.adminToken,
            groups: { server: [process.pid], redis: redisPids() }, capacity: perServer,
          });
        } finally {
          await lantern.close();
        }
      });
    }

    // 3. Distributed: gateways + workers as processes, on the Redis the ceiling used.
    if (infra) {
      const { endpoints } = infra;
      let c: BenchCluster | undefined;
      try {
        await attempt(phases, PHASE.distributed, async () => {
          console.error(`bench: starting ${o.gateways} gateways + ${o.engineWorkers} workers ...`);
          c = await startCluster({ endpoints, gateways: o.gateways, workers: o.engineWorkers });
          const running = c;
          cluster = { gateways: o.gateways, workers: o.engineWorkers, settings: running.settings };
          const cassandraPid = pidListeningOn(Number(endpoints.cassandra.contactPoints[0]!.split(':')[1] ?? 9042));
          return await stormPhase(o, {
            urls: running.urls, auth: { secret: running.jwtSecret, audience: running.audience }, adminToken: running.adminToken,
            groups: {
              gateways: running.processes.filter((p) => p.kind === 'gateway').map((p) => p.pid),
              workers: running.processes.filter((p) => p.kind === 'worker').map((p) => p.pid),
              cassandra: cassandraPid === undefined ? [] : [cassandraPid],
              nats: [pidListeningOn(port(endpoints.natsUrl))].filter((p): p is number => p !== undefined),
              redis: redisPids(),
              bench: [process.pid],
            },
            capacity: perServer * o.gateways,
          });
        });
      } finally {
        await (c as BenchCluster | undefined)?.close().catch((err: unknown) => console.error('bench: stopping the cluster failed:', err));
      }
    }
  } finally {
    await redis.release();
  }

  const ceiling = phases[PHASE.ceiling];
  const decisions = ceiling && 'decisionsPerSec' in ceiling ? ceiling.decisionsPerSec : undefined;
  const ratios: Record<string, number | null> = {};
  for (const mode of o.modes) {
    const p = phases[PHASE[mode]];
    const rate = p && 'attemptsPerSec' in p ? p.attemptsPerSec : undefined;
    ratios[`${mode} attempts answered/s / ceiling decisions/s`] = rate !== undefined && decisions !== undefined && decisions > 0 ? Math.round((rate / decisions) * 1000) / 1000 : null;
  }
  return { infra: redis.source, phases, ratios, cluster, embeddedSettings };
}

/** Runs the modes and writes the results file into `out`. */
export async function flashSaleBench(o: FlashSaleBenchOptions, out: string): Promise<{ file: string; body: ReturnType<typeof resultsBody> }> {
  const date = new Date();
  const machineAtStart = machine(); // before our own load lifts the load average
  const r = await runFlashSales(o);
  const body = resultsBody(o, date, machineAtStart, r);
  return { file: await writeResults(out, 'flashsale', date, body), body };
}

function resultsBody(o: FlashSaleBenchOptions, date: Date, machineAtStart: Record<string, unknown>, r: FlashSaleResults) {
  const { endpoints: _endpoints, redisUrl: _redisUrl, ...settings } = o;
  return {
    version: packageVersion(),
    commit: gitCommit(),
    date: date.toISOString(),
    machine: machineAtStart,
    settings: {
      scenario: 'flashsale', ...settings, leadMs: o.leadMs ?? DEFAULT_LEAD_MS, buyersPerGenerator: BUYERS_PER_GENERATOR,
      buyersPerServerProcess: buyersPerServerProcess(), infra: r.infra, lantern: r.embeddedSettings, cluster: r.cluster,
    },
    results: r.phases,
    ratios: r.ratios,
  };
}

export function formatFlashSales(phases: Record<string, Phase>): string {
  const n = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : v < 10 ? v.toFixed(2) : v.toFixed(0));
  const lines = ['phase                  buyers  attempts/s  p50 ms  p99 ms  max ms  sold out ms  storm ms  local  try_later  errors  verified  cores'];
  for (const [name, p] of Object.entries(phases)) {
    if ('error' in p) { lines.push(`${name.padEnd(22)} FAILED ${p.error.split('\n')[0]!.slice(0, 80)}`); continue; }
    if ('decisionsPerSec' in p) {
      lines.push(`${name.padEnd(22)} ${String(p.decisionsPerSec).padStart(18)} decisions/s (${p.concurrency} in flight)  p50 ${n(p.p50Ms)}  p99 ${n(p.p99Ms)}  oversold ${p.oversold}  underfilled ${p.underfilled}`);
      continue;
    }
    const cores = Object.entries(p.cpu.cores).filter(([, v]) => v >= 0.01).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
    const verified = p.verified ? `ok ${p.verification.units}` : `FAILED`;
    const local = p.gateway.localShare === null ? '-' : `${Math.round(p.gateway.localShare * 100)}%`;
    lines.push(`${name.padEnd(22)} ${String(p.buyers).padStart(6)}  ${String(p.attemptsPerSec).padStart(10)}  ${n(p.p50Ms).padStart(6)}  ${n(p.p99Ms).padStart(6)}  ${n(p.maxMs).padStart(6)}  ${n(p.timeToSoldOutMs).padStart(11)}  ${n(p.stormMs).padStart(8)}  ${local.padStart(5)}  ${String(p.tryLater).padStart(9)}  ${String(p.errors).padStart(6)}  ${verified.padStart(8)}  ${cores}; machine ${n(p.cpu.machineCores)}`);
  }
  return lines.join('\n');
}
