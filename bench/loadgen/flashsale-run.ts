// The flash-sale storm (issue 5) from the caller's side: forks generator processes
// (flashsale-worker.ts), each opening its share of the buyers' authenticated WebSockets (one buyer
// per socket, round-robin over the gateways), and fires every buyer's `sale.buy` at the sale's
// start. try_later is answered as the protocol says (wait retryAfterMs, same key; `retry` only once an
// attempt's outcome is unknown).
// The caller holds no client socket: a storm of 100,000 buyers needs more file descriptors than
// one process may open (20,000 here), so the generators hold them, BUYERS_PER_GENERATOR each.
//
//   runSaleStorm({ urls, secret, users, sale, startAt, workers })  one storm, connect to close
//   SaleCrowd.open(...) then crowd.storm(...) ... crowd.close()    several storms on one crowd
import { ChildInbox, killChild } from './child-inbox.ts';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { splitEvenly } from './coordinator.ts';
import { LatencyHistogram } from './histogram.ts';
import {
  noFinalOutcomes, type AnswerList, type CrowdCommand, type CrowdConfig, type CrowdMessage, type FinalOutcome,
  type StormOrder, type StormReport,
} from './flashsale-messages.ts';

export { FINAL_OUTCOMES, type AnswerList, type FinalOutcome } from './flashsale-messages.ts';

/** Sockets one generator process opens by default: well under its open-file limit (20,000 here). */
export const BUYERS_PER_GENERATOR = 15_000;
const DEFAULT_AUDIENCE = 'lantern';
const DEFAULT_SETUP_TIMEOUT_MS = 300_000;
const DEFAULT_STORM_TIMEOUT_MS = 120_000;
/** Slack on top of a storm's own timeout before a silent generator is declared stuck. */
const REPORT_SLACK_MS = 15_000;
const CLOSE_TIMEOUT_MS = 30_000;
const WORKER_PATH = fileURLToPath(new URL('./flashsale-worker.ts', import.meta.url));
// Absolute, so the generators find tsx whatever the current directory is.
const TSX_LOADER = import.meta.resolve('tsx');

export interface SaleCrowdOptions {
  /** Gateway WebSocket URLs: buyer i connects to urls[i % urls.length]. */
  urls: readonly string[];
  /** The deployment's HS256 JWT secret (tokens are minted per buyer, `sub` = the user id). */
  secret: string;
  /** The tokens' audience (default 'lantern'). */
  audience?: string;
  /** One buyer per user id, each on its own socket. */
  users: readonly string[];
  /** Generator processes (default ceil(users / BUYERS_PER_GENERATOR)). */
  workers?: number;
  /** Bound on connecting every buyer (default 5 min). */
  setupTimeoutMs?: number;
}

export interface StormSettings {
  sale: string;
  /** Epoch ms of the sale's start: every buyer's first attempt goes then (at once if it has passed). */
  startAt: number;
  /** Units per attempt (default 1). */
  quantity?: number;
  /** Every buyer's idempotency key for this sale (default 'tap'; order ids differ per buyer anyway). */
  key?: string;
  /** 'all' (default): every buyer's answer; 'reserved': only the winners' (huge runs). */
  answers?: AnswerList;
  /** After startAt: buyers still without a final answer then count as 'unanswered' (default 2 min). */
  timeoutMs?: number;
}

export type SaleStormOptions = SaleCrowdOptions & StormSettings;

export interface StormAnswer { user: string; outcome: FinalOutcome; order?: string }

export interface SaleStormResult {
  sale: string;
  startAt: number;
  buyers: number;
  workers: number;
  /** sale.buy frames sent: first attempts plus resends after try_later, not_open or errors. */
  attemptsSent: number;
  /** Of those, answered (any outcome, try_later included): the latency samples. */
  attemptsAnswered: number;
  tryLater: number;
  /** not_open answers to attempts a timer fired a hair before the start (resent at the start). */
  early: number;
  /** reserved answers marked duplicate (a resent key whose first attempt had already won). */
  duplicates: number;
  /** Attempts answered per second from the first send to the last answer (all generators). */
  attemptsPerSec: number;
  /** Answer latency of each attempt: sale.buy sent -> its answer, ms. null when none. */
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  meanMs: number | null;
  /** First send after startAt (timers, generators busy), ms. */
  firstSendLagMs: number | null;
  /** startAt -> the last answer, ms. */
  stormMs: number | null;
  /** startAt -> the first sold_out answer, ms (null: nobody heard sold_out). */
  timeToSoldOutMs: number | null;
  /** Final outcome per buyer, counted. */
  outcomes: Record<FinalOutcome, number>;
  errors: number;
  errorSamples: string[];
  /** Every buyer's final answer, or only the reserved ones (settings.answers). */
  answers: StormAnswer[];
  /** CPU of all generator processes during the storm, ms. */
  generatorCpuMs: number;
}

/** Buyers connected in generator processes, ready for storms. */
export class SaleCrowd {
  private closed = false;

  private constructor(
    private readonly children: readonly ChildProcess[],
    private readonly inboxes: readonly ChildInbox<CrowdMessage>[],
    readonly buyers: number,
    /** Buyer connections that failed and were made again while connecting (a server flooded with hellos). */
    readonly reconnects: number,
  ) {}

  /** The generator processes (for CPU sampling). */
  get pids(): number[] { return this.children.map((c) => c.pid!); }
  get workers(): number { return this.children.length; }

  static async open(o: SaleCrowdOptions): Promise<SaleCrowd> {
    if (o.urls.length === 0) throw new RangeError('a sale storm needs at least one gateway URL');
    if (o.users.length === 0) throw new RangeError('a sale storm needs at least one buyer');
    if (new Set(o.users).size !== o.users.length) throw new RangeError('each buyer must be a different user');
    const workers = Math.max(1, Math.min(o.workers ?? Math.ceil(o.users.length / BUYERS_PER_GENERATOR), o.users.length));
    const setupTimeoutMs = o.setupTimeoutMs ?? DEFAULT_SETUP_TIMEOUT_MS;
    const children: ChildProcess[] = [];
    const inboxes: ChildInbox<CrowdMessage>[] = [];
    try {
      let first = 0;
      for (const [workerIndex, share] of splitEvenly(o.users.length, workers).entries()) {
        const config: CrowdConfig = {
          workerIndex, urls: [...o.urls], users: o.users.slice(first, first + share), firstBuyer: first,
          secret: o.secret, audience: o.audience ?? DEFAULT_AUDIENCE, setupTimeoutMs,
        };
        first += share;
        const child = fork(WORKER_PATH, [], { execArgv: ['--import', TSX_LOADER], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        children.push(child);
        inboxes.push(new ChildInbox<CrowdMessage>(child, `flash-sale generator ${workerIndex}`));
        send(child, { type: 'connect', config });
      }
      const connected = await Promise.all(inboxes.map((inbox) => inbox.next('connected', setupTimeoutMs + 5_000)));
      const reconnects = connected.reduce((n, m) => n + (m as Extract<CrowdMessage, { type: 'connected' }>).reconnects, 0);
      return new SaleCrowd(children, inboxes, o.users.length, reconnects);
    } catch (err) {
      for (const child of children) killChild(child);
      throw err;
    }
  }

  /** One storm on one sale; resolves once every buyer has a final answer (or the timeout). */
  async storm(s: StormSettings): Promise<SaleStormResult> {
    if (this.closed) throw new Error('the crowd is closed');
    const order: StormOrder = {
      sale: s.sale, startAt: s.startAt, quantity: s.quantity ?? 1, key: s.key ?? 'tap',
      answers: s.answers ?? 'all', timeoutMs: s.timeoutMs ?? DEFAULT_STORM_TIMEOUT_MS,
    };
    for (const child of this.children) send(child, { type: 'storm', storm: order });
    const wait = Math.max(0, order.startAt - Date.now()) + order.timeoutMs + REPORT_SLACK_MS;
    const reports = await Promise.all(this.inboxes.map(async (inbox) => {
      const m = await inbox.next('report', wait);
      return (m as Extract<CrowdMessage, { type: 'report' }>).report;
    }));
    return mergeStormReports(order, this.children.length, reports);
  }

  /** Closes every socket and ends the generators. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      for (const child of this.children) if (child.connected) send(child, { type: 'close' });
      await Promise.all(this.inboxes.map((inbox) => inbox.next('closed', CLOSE_TIMEOUT_MS).catch((err: unknown) => {
        // A generator that exits right after 'closed' may beat its message; only a live one is a problem.
        if (!inbox.exitedCleanly) throw err;
      })));
    } finally {
      for (const child of this.children) killChild(child);
    }
  }
}

/** Connects the buyers, runs one storm on `sale`, closes them. */
export async function runSaleStorm(o: SaleStormOptions): Promise<SaleStormResult> {
  const crowd = await SaleCrowd.open(o);
  try {
    return await crowd.storm(o);
  } finally {
    await crowd.close();
  }
}

export function mergeStormReports(order: StormOrder, workers: number, reports: readonly StormReport[]): SaleStormResult {
  const latency = new LatencyHistogram();
  const outcomes = noFinalOutcomes();
  const sum = { buyers: 0, sent: 0, answered: 0, tryLater: 0, early: 0, duplicates: 0, errors: 0, cpuMs: 0 };
  const errorSamples: string[] = [];
  const answers: StormAnswer[] = [];
  let firstSendAt = Infinity, lastAnswerAt = -Infinity, firstSoldOutAt = Infinity;
  for (const r of reports) {
    latency.merge(r.latency);
    for (const k of Object.keys(outcomes) as FinalOutcome[]) outcomes[k] += r.outcomes[k];
    sum.buyers += r.buyers; sum.sent += r.sent; sum.answered += r.answered; sum.tryLater += r.tryLater;
    sum.early += r.early; sum.duplicates += r.duplicates; sum.errors += r.errors; sum.cpuMs += r.cpuMs;
    errorSamples.push(...r.errorSamples.map((e) => `generator ${r.workerIndex}: ${e}`));
    if (r.firstSendAt !== null) firstSendAt = Math.min(firstSendAt, r.firstSendAt);
    if (r.lastAnswerAt !== null) lastAnswerAt = Math.max(lastAnswerAt, r.lastAnswerAt);
    if (r.firstSoldOutAt !== null) firstSoldOutAt = Math.min(firstSoldOutAt, r.firstSoldOutAt);
    for (const [user, outcome, id] of r.answers) answers.push(id === undefined ? { user, outcome } : { user, outcome, order: id });
  }
  const ms = (v: number): number | null => (Number.isFinite(v) ? Math.round(v * 1000) / 1000 : null);
  const spanMs = lastAnswerAt - firstSendAt;
  return {
    sale: order.sale, startAt: order.startAt, buyers: sum.buyers, workers,
    attemptsSent: sum.sent, attemptsAnswered: sum.answered, tryLater: sum.tryLater, early: sum.early, duplicates: sum.duplicates,
    attemptsPerSec: spanMs > 0 ? Math.round((sum.answered * 1000) / spanMs) : 0,
    p50Ms: ms(latency.percentile(50)), p90Ms: ms(latency.percentile(90)), p99Ms: ms(latency.percentile(99)),
    maxMs: ms(latency.maxMs), meanMs: ms(latency.meanMs),
    firstSendLagMs: ms(firstSendAt - order.startAt),
    stormMs: ms(lastAnswerAt - order.startAt),
    timeToSoldOutMs: ms(firstSoldOutAt - order.startAt),
    outcomes, errors: sum.errors, errorSamples, answers,
    generatorCpuMs: Math.round(sum.cpuMs),
  };
}

function send(child: ChildProcess, command: CrowdCommand): void {
  child.send(command);
}

