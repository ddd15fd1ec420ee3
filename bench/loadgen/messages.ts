// Settings of a load run and the IPC messages between the coordinator and its workers.
import type { EnvelopeMode, GrabOutcome } from '../../protocol/frames.ts';
import type { SerializedHistogram } from './histogram.ts';

export type ScenarioName = 'echo' | 'chat-1to1' | 'chat-group' | 'redenvelope' | 'peer-chat' | 'peer-fanout';

export interface LoadSettings {
  /**
   * 'max': closed loop, each client keeps `window` messages outstanding and sends the next
   * when one is delivered. 'rate': open loop at `ratePerSec` aggregate, paced per tick,
   * whatever the server's replies do.
   */
  mode: 'max' | 'rate';
  /** Aggregate target of all workers, msgs/s (mode 'rate'). */
  ratePerSec: number;
  /** Outstanding messages per client (mode 'max'). */
  window: number;
  /** Sending before the measurement starts (connections and JIT settle). */
  warmupMs: number;
  /** Length of the measured window. */
  durationMs: number;
  /** After sending stops: how long to wait for outstanding messages before giving up on them. */
  drainMs: number;
  /** Pacing period of the open loop. */
  tickMs: number;
  /** Extra bytes of text in each message on top of the timestamp. */
  payloadBytes: number;
  /** A client whose socket buffers more than this skips a paced send (open loop stays bounded). */
  maxBufferedBytes: number;
}

export const DEFAULT_LOAD_SETTINGS: Readonly<LoadSettings> = Object.freeze({
  mode: 'max',
  ratePerSec: 0,
  window: 8,
  warmupMs: 1000,
  durationMs: 10_000,
  drainMs: 3000,
  tickMs: 1,
  payloadBytes: 32,
  maxBufferedBytes: 1024 * 1024,
});

/** What a chat scenario needs to log users in. */
export interface ChatAuth {
  jwtSecret: string;
  audience: string;
  /** User ids are `${userPrefix}${globalClientIndex}`. */
  userPrefix: string;
}

/** chat-group: clients form groups of `size` members; the first `senders` members of each group send. */
export interface GroupSettings {
  size: number;
  senders: number;
}

export const DEFAULT_GROUP_SETTINGS: Readonly<GroupSettings> = Object.freeze({ size: 100, senders: 4 });

/**
 * peer-chat / peer-fanout: the server the clients talk to, through its PeerClient (bench/peers/).
 * Centrifugo and Lantern check a token per connection, minted in the worker with this secret.
 */
export type PeerTarget =
  | { kind: 'raw-uws' }
  | { kind: 'socketio' }
  | { kind: 'centrifugo'; secret: string }
  | { kind: 'lantern'; jwtSecret: string; audience: string };

export interface PeerConfig {
  target: PeerTarget;
  /** User names are `${userPrefix}${globalClientIndex}`, group names `${userPrefix}g${globalGroupIndex}`. */
  userPrefix: string;
}

/** redenvelope: the red envelopes each sender keeps sending into the one group. */
export interface EnvelopeSettings {
  /** Shares per envelope (`count`). */
  count: number;
  /** Cents per envelope. */
  total: number;
  mode: EnvelopeMode;
}

export const DEFAULT_ENVELOPE_SETTINGS: Readonly<EnvelopeSettings> = Object.freeze({ count: 100, total: 2000, mode: 'lucky' });

/** redenvelope: what the workers need of the group set up before they start (scenarios/redenvelope.ts). */
export interface RedEnvelopeConfig {
  /** The group every client is a member of. */
  conv: string;
  /** Global client indices of the senders (topped up); everyone else only grabs. */
  senders: number[];
  envelope: EnvelopeSettings;
}

/** redenvelope: one worker's grab answers, and what the end-of-run verification needs. */
export interface GrabReport {
  /** Answers to grabs sent inside the measured window, by outcome. */
  window: Record<GrabOutcome, number>;
  /** Answers to every grab of the run (warm-up and drain included), by outcome. */
  all: Record<GrabOutcome, number>;
  /** Envelopes this worker knows of: sent by its senders, or carded to its members. */
  envelopes: string[];
  /** Every `grabbed` or `already` answer: [envelope, user, amount, outcome]. */
  grabs: Array<[string, string, number, 'grabbed' | 'already']>;
}
/** The URL global client `index` connects to. */
export function urlOf(config: Pick<WorkerConfig, 'url' | 'urls'>, index: number): string {
  const urls = config.urls;
  return urls !== undefined && urls.length > 0 ? urls[index % urls.length]! : config.url;
}

export interface WorkerConfig {
  workerIndex: number;
  scenario: ScenarioName;
  /** WebSocket URL of the server under test. */
  url: string;
  /** Several gateways of one deployment: global client i connects to urls[i % urls.length] (overrides url). */
  urls?: string[];
  /** Clients this worker opens; chat scenarios get an even number (whole pairs). */
  clients: number;
  /** Global index of this worker's first client (unique user ids across workers). */
  firstClient: number;
  load: LoadSettings;
  /** This worker's share of load.ratePerSec. */
  workerRatePerSec: number;
  chat?: ChatAuth;
  /** chat-group and peer-fanout. */
  group?: GroupSettings;
  /** peer-chat and peer-fanout only. */
  peer?: PeerConfig;
  /** redenvelope only. */
  redenvelope?: RedEnvelopeConfig;
  /** Bound on connecting and scenario setup. */
  setupTimeoutMs: number;
}

/** One worker's counts; the coordinator sums them. */
export interface WorkerReport {
  workerIndex: number;
  /** Sends issued inside the measured window. */
  sent: number;
  /** Deliveries of messages sent inside the measured window, arriving before the drain ends (latency samples). */
  delivered: number;
  /**
   * Sends issued inside the measured window that completed: delivered to the peer (1:1, echo),
   * or for groups, the sender's own copy came back through the fan-out.
   */
  completed: number;
  /**
   * Deliveries arriving inside the measured window, whenever sent: under overload the
   * backlog of earlier sends arrives here, so this is what the server actually delivered.
   */
  arrived: number;
  /** Paced sends inside the window that were skipped because the socket was over maxBufferedBytes. */
  skipped: number;
  /** Paced sends due inside the window (open loop only): sent + skipped. */
  scheduled: number;
  errors: number;
  /** Up to a few error descriptions, for the report. */
  errorSamples: string[];
  /**
   * All sends, warm-up and drain included, minus those delivered or answered with an error; for
   * groups plus the copies to other members still missing. An error answer with an unknown outcome
   * (`timeout`) whose message arrives after all is counted twice, so this can go below 0.
   */
  undelivered: number;
  /** Length of the measured window. */
  measuredMs: number;
  /** CPU time (user + system) this worker process spent from 'go' to its report. */
  cpuMs: number;
  latency: SerializedHistogram;
  /** redenvelope only. */
  grabs?: GrabReport;
}

export type CoordinatorMessage =
  | { type: 'setup'; config: WorkerConfig }
  | { type: 'go' }
  | { type: 'abort' };

export type WorkerMessage =
  | { type: 'ready'; workerIndex: number; clients: number }
  | { type: 'report'; report: WorkerReport }
  | { type: 'failed'; workerIndex: number; error: string };
