// The flash-sale storm's IPC between runSaleStorm (flashsale-run.ts) and its generator processes
// (flashsale-worker.ts): connect the buyers, then one storm per sale, then close.
import type { BuyOutcome } from '../../protocol/frames.ts';
import type { SerializedHistogram } from './histogram.ts';

/** How a buyer's storm ended: the answer that was not try_later, or no answer at all. */
export type FinalOutcome = Exclude<BuyOutcome, 'try_later'> | 'error' | 'unanswered';

export const FINAL_OUTCOMES: readonly FinalOutcome[] = ['reserved', 'sold_out', 'limit_reached', 'not_open', 'closed', 'error', 'unanswered'];

export function noFinalOutcomes(): Record<FinalOutcome, number> {
  return { reserved: 0, sold_out: 0, limit_reached: 0, not_open: 0, closed: 0, error: 0, unanswered: 0 };
}

/** Which per-buyer answers a worker sends back: every buyer's, or only those told `reserved` (huge runs). */
export type AnswerList = 'all' | 'reserved';

/** One buyer's end of the storm, compact for IPC: [user, outcome, order id if reserved]. */
export type AnswerTuple = [user: string, outcome: FinalOutcome, order?: string];

export interface CrowdConfig {
  workerIndex: number;
  /** Gateways: global buyer i connects to urls[i % urls.length]. */
  urls: string[];
  /** This worker's buyers (user ids), global indices firstBuyer, firstBuyer + 1, ... */
  users: string[];
  firstBuyer: number;
  /** HS256 secret and audience of the tokens the buyers log in with. */
  secret: string;
  audience: string;
  /** Bound on connecting every buyer of this worker. */
  setupTimeoutMs: number;
}

export interface StormOrder {
  sale: string;
  /** Epoch ms: every buyer sends its first attempt at this instant (at once if it has passed). */
  startAt: number;
  quantity: number;
  /** Each buyer's idempotency key (one tap per buyer, so the same string for all). */
  key: string;
  answers: AnswerList;
  /** After startAt: buyers still without a final answer by then count as 'unanswered'. */
  timeoutMs: number;
}

export interface StormReport {
  workerIndex: number;
  buyers: number;
  /** sale.buy frames sent (first attempts, try_later and error resends). */
  sent: number;
  /** Of those, answered with a res (any outcome, try_later included): the latency samples. */
  answered: number;
  /** Answers that were try_later (the gateway's admission limit), each resent with retry: true. */
  tryLater: number;
  /** Answers that were not_open (sent a hair before startAt), resent at startAt. */
  early: number;
  /** reserved answers marked duplicate (a retried key whose first attempt had already won). */
  duplicates: number;
  /** err frames and closed sockets. */
  errors: number;
  errorSamples: string[];
  outcomes: Record<FinalOutcome, number>;
  latency: SerializedHistogram;
  /** Epoch ms of this worker's first send, last answer and first sold_out answer (null: none). */
  firstSendAt: number | null;
  lastAnswerAt: number | null;
  firstSoldOutAt: number | null;
  answers: AnswerTuple[];
  /** CPU time (user + system) from the storm order to the report. */
  cpuMs: number;
}

export type CrowdCommand =
  | { type: 'connect'; config: CrowdConfig }
  | { type: 'storm'; storm: StormOrder }
  | { type: 'close' };

export type CrowdMessage =
  /** reconnects: connection attempts that failed and were made again (4103 during a hello flood). */
  | { type: 'connected'; workerIndex: number; buyers: number; reconnects: number }
  | { type: 'report'; report: StormReport }
  | { type: 'closed'; workerIndex: number }
  | { type: 'failed'; workerIndex: number; error: string };
