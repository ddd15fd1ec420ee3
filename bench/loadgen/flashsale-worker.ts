// A flash-sale storm generator process (forked by flashsale-run.ts with `--import tsx`): opens one
// authenticated WebSocket per buyer, and for each storm order sends every buyer's `sale.buy` at the
// sale's start, answering try_later (and retryable errors) by resending the same key after the
// advised wait (with `retry: true` once an attempt may have reached a worker unanswered), until
// each buyer has a final answer. Reports over IPC.
// Separate processes so the caller does not hold the client sockets (one fd each).
import { encodeFrame } from '../../protocol/codec.ts';
import type { BuyResult } from '../../protocol/frames.ts';
import { LatencyHistogram } from './histogram.ts';
import { LanternConnection, mintToken, withTimeout } from './lantern-client.ts';
import {
  noFinalOutcomes, type AnswerTuple, type CrowdCommand, type CrowdConfig, type CrowdMessage, type FinalOutcome,
  type StormOrder, type StormReport,
} from './flashsale-messages.ts';
import { SETUP_CONCURRENCY } from './scenarios/scenario.ts';
import { closeSockets, mapLimit } from './socket.ts';

const DEVICE = 'bench-buyer';
const MAX_ERROR_SAMPLES = 10;
/** Resends after err frames (timeout, unavailable, busy, ...) before a buyer's storm ends in 'error'. */
const MAX_ERROR_RESENDS = 20;
/** Wait before resending after an err frame that names no retryAfterMs. */
const ERROR_RETRY_MS = 200;
/**
 * Connection attempts per buyer. A gateway flooded with hellos may close one with 4103 server_error
 * (its engine call timed out), a close code that tells a client to reconnect: buyers do, after
 * CONNECT_BACKOFF_MS x attempt plus jitter.
 */
const CONNECT_ATTEMPTS = 8;
const CONNECT_BACKOFF_MS = 250;

if (process.send === undefined) {
  console.error('bench/loadgen/flashsale-worker.ts runs as a child of runSaleStorm (it needs an IPC channel)');
  process.exit(2);
}

/** Epoch ms with sub-ms precision, comparable across the generator processes of one machine. */
const epochNow = (): number => performance.timeOrigin + performance.now();

/** One storm's counts, shared by this worker's buyers. */
class Tally {
  sent = 0;
  answered = 0;
  tryLater = 0;
  early = 0;
  duplicates = 0;
  errors = 0;
  readonly errorSamples: string[] = [];
  readonly outcomes = noFinalOutcomes();
  readonly latency = new LatencyHistogram();
  firstSendAt: number | null = null;
  lastAnswerAt: number | null = null;
  firstSoldOutAt: number | null = null;
  /** Buyers without a final answer yet. */
  open: number;

  constructor(buyers: number, readonly onAllFinal: () => void) { this.open = buyers; }

  error(description: string): void {
    this.errors++;
    if (this.errorSamples.length < MAX_ERROR_SAMPLES) this.errorSamples.push(description);
  }
}

/** One buyer: its connection and where its attempt stands in the current storm. */
class Buyer {
  private storm: StormOrder | undefined;
  private tally: Tally | undefined;
  /** Request id of the attempt in flight (0: none), its send time (performance.now) and retry flag. */
  private inflight = 0;
  private sentAt = 0;
  private errorResends = 0;
  /** An attempt of this key may have reached a worker unanswered (timeout, unavailable): resends carry `retry`. */
  private uncertain = false;
  private timer: NodeJS.Timeout | undefined;
  /** Why the socket closed, once it has (ws drops sends on a closed socket silently). */
  private closed: string | undefined;
  final: FinalOutcome | undefined;
  order: string | undefined;

  constructor(readonly conn: LanternConnection) {
    conn.onFrame = (frame) => this.onFrame(frame);
    conn.onClose = (description) => this.onClose(description);
  }

  get user(): string { return this.conn.user; }

  begin(storm: StormOrder, tally: Tally): void {
    this.storm = storm;
    this.tally = tally;
    this.final = undefined;
    this.order = undefined;
    this.errorResends = 0;
    this.uncertain = false;
    this.inflight = 0;
  }

  /** Sends the attempt: the first (retry false) or a resend of the same key (retry true). */
  send(retry: boolean): void {
    const storm = this.storm!, tally = this.tally!;
    this.timer = undefined;
    if (this.final !== undefined) return;
    if (this.closed !== undefined) {
      tally.error(`${this.closed} (before its attempt)`);
      this.finish('error');
      return;
    }
    this.conn.fire((id) => {
      this.inflight = id;
      return { t: 'sale.buy', id, sale: storm.sale, quantity: storm.quantity, key: storm.key, ...(retry ? { retry: true } : {}) };
    });
    this.sentAt = performance.now();
    tally.sent++;
    tally.firstSendAt ??= epochNow();
  }

  /** Ends the storm for this buyer without an answer (timeout); false if it already had one. */
  abandon(): boolean {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.final !== undefined) return false;
    this.finish('unanswered');
    return true;
  }

  private later(ms: number, retry: boolean): void {
    this.timer = setTimeout(() => this.send(retry), Math.max(0, ms));
  }

  private onFrame(frame: Record<string, unknown>): void {
    const t = frame['t'];
    if (t !== 'res' && t !== 'err') return; // buyers are in no group: nothing else is load
    const tally = this.tally;
    if (tally === undefined || frame['id'] !== this.inflight || this.final !== undefined) {
      tally?.error(`${this.user}: ${String(t)} to a request not in flight (${String(frame['id'])})`);
      return;
    }
    this.inflight = 0;
    const at = epochNow();
    tally.latency.record(performance.now() - this.sentAt);
    tally.lastAnswerAt = at;
    if (t === 'err') {
      const what = `${this.user}: sale.buy: ${String(frame['error'])} (${String(frame['code'])}) ${String(frame['msg'])}`;
      tally.error(what);
      // Retryable errors: ask again, same key. After timeout or unavailable the outcome is unknown,
      // so resends carry `retry` (a worker answers from what it decided); busy and rate_limited
      // mean the attempt was not processed.
      if (frame['error'] === 'timeout' || frame['error'] === 'unavailable') this.uncertain = true;
      if (frame['retry'] === true && this.errorResends++ < MAX_ERROR_RESENDS) {
        this.later(typeof frame['retryAfterMs'] === 'number' ? frame['retryAfterMs'] : ERROR_RETRY_MS, this.uncertain);
      } else {
        this.finish('error');
      }
      return;
    }
    tally.answered++;
    const result = frame['data'] as BuyResult;
    switch (result.outcome) {
      case 'try_later':
        tally.tryLater++;
        // Shed before any worker saw it: nothing was decided, so the gateway may answer the resend.
        this.later(result.retryAfterMs ?? ERROR_RETRY_MS, this.uncertain);
        return;
      case 'not_open': {
        // A timer that fired a hair early: nothing was decided, so the same key goes again at the start.
        tally.early++;
        this.later((result.startAt ?? this.storm!.startAt) - Date.now() + 1, false);
        return;
      }
      case 'reserved':
        if (result.duplicate) tally.duplicates++;
        this.order = result.order?.order;
        this.finish('reserved');
        return;
      case 'sold_out':
        tally.firstSoldOutAt ??= at;
        this.finish('sold_out');
        return;
      case 'limit_reached':
      case 'closed':
        this.finish(result.outcome);
        return;
      default:
        tally.error(`${this.user}: sale.buy answered outcome ${String(result.outcome)}`);
        this.finish('error');
    }
  }

  private onClose(description: string): void {
    this.closed = description;
    this.tally?.error(description);
    if (this.tally && this.final === undefined) {
      if (this.timer) clearTimeout(this.timer);
      this.finish('error');
    }
  }

  private finish(outcome: FinalOutcome): void {
    const tally = this.tally!;
    this.final = outcome;
    tally.outcomes[outcome]++;
    if (--tally.open === 0) tally.onAllFinal();
  }
}

let config: CrowdConfig | undefined;
let buyers: Buyer[] = [];

function tell(message: CrowdMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    process.send!(message, undefined, {}, (err) => (err ? reject(err) : resolve()));
  });
}

async function fail(err: unknown): Promise<never> {
  const error = err instanceof Error ? err.stack ?? err.message : String(err);
  await tell({ type: 'failed', workerIndex: config?.workerIndex ?? -1, error }).catch((sendErr: unknown) => {
    console.error('flash-sale generator could not report its failure', sendErr, error);
  });
  process.exit(1);
}

async function connect(c: CrowdConfig): Promise<void> {
  config = c;
  let reconnects = 0;
  const open = mapLimit(c.users, SETUP_CONCURRENCY, async (user, i) => {
    const token = await mintToken(c.secret, c.audience, user);
    const url = c.urls[(c.firstBuyer + i) % c.urls.length]!;
    for (let attempt = 1; ; attempt++) {
      try {
        return new Buyer(await LanternConnection.open(url, token, user, DEVICE, c.setupTimeoutMs));
      } catch (err) {
        if (attempt >= CONNECT_ATTEMPTS) throw new Error(`${user}: ${CONNECT_ATTEMPTS} connection attempts failed, the last: ${(err as Error).message}`, { cause: err });
        reconnects++;
        await new Promise((resolve) => setTimeout(resolve, CONNECT_BACKOFF_MS * attempt + Math.random() * CONNECT_BACKOFF_MS));
      }
    }
  });
  buyers = await withTimeout(open, c.setupTimeoutMs, `generator ${c.workerIndex}: connecting ${c.users.length} buyers`);
  await tell({ type: 'connected', workerIndex: c.workerIndex, buyers: buyers.length, reconnects });
}

async function storm(order: StormOrder): Promise<void> {
  const cpuBefore = process.cpuUsage();
  let timeout: NodeJS.Timeout | undefined;
  let done!: () => void;
  const allFinal = new Promise<void>((resolve) => { done = resolve; });
  const tally = new Tally(buyers.length, () => done());
  for (const b of buyers) b.begin(order, tally);
  if (buyers.length === 0) done();

  // setTimeout may fire a little before the wall clock reaches startAt; wait out the rest.
  const fire = (): void => {
    const wait = order.startAt - Date.now();
    if (wait > 0) { setTimeout(fire, wait); return; }
    for (const b of buyers) b.send(false);
  };
  fire();
  const timedOut = new Promise<void>((resolve) => {
    timeout = setTimeout(resolve, Math.max(0, order.startAt - Date.now()) + order.timeoutMs);
  });
  await Promise.race([allFinal, timedOut]);
  clearTimeout(timeout);
  for (const b of buyers) b.abandon();

  const answers: AnswerTuple[] = [];
  for (const b of buyers) {
    if (order.answers === 'reserved' && b.final !== 'reserved') continue;
    answers.push(b.order === undefined ? [b.user, b.final!] : [b.user, b.final!, b.order]);
  }
  const cpu = process.cpuUsage(cpuBefore);
  const report: StormReport = {
    workerIndex: config!.workerIndex, buyers: buyers.length,
    sent: tally.sent, answered: tally.answered, tryLater: tally.tryLater, early: tally.early, duplicates: tally.duplicates,
    errors: tally.errors, errorSamples: tally.errorSamples, outcomes: tally.outcomes, latency: tally.latency.toJSON(),
    firstSendAt: tally.firstSendAt, lastAnswerAt: tally.lastAnswerAt, firstSoldOutAt: tally.firstSoldOutAt,
    answers, cpuMs: (cpu.user + cpu.system) / 1000,
  };
  await tell({ type: 'report', report });
}

async function close(): Promise<void> {
  for (const b of buyers) b.conn.markClosing();
  await closeSockets(buyers.map((b) => b.conn.ws));
  await tell({ type: 'closed', workerIndex: config?.workerIndex ?? -1 });
  process.exit(0);
}

process.on('message', (command: CrowdCommand) => {
  switch (command.type) {
    case 'connect': connect(command.config).catch(fail); return;
    case 'storm': storm(command.storm).catch(fail); return;
    case 'close': close().catch(fail);
  }
});
// The caller went away: nobody will read the report.
process.on('disconnect', () => process.exit(1));
