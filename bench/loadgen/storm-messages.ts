// IPC between the storm generators' parent (storm-run.ts) and each generator process
// (storm-worker.ts). Connection storm: `connect-storm` (tokens minted, answered `prepared`), then
// `go` at a shared start time, answered `stormed` once every connection is welcomed or given up.
// Reconnect storm: `setup` (clients connected, conversations made, feeders open: `set-up`), `feed`,
// `drop` (`dropped`), `reconnect` (`resynced` once every dropped client is caught up or given up),
// `verify` (feeders stopped, every client checked against the heads: `verified`). Then `close`.
import type { ConnectReport } from './idle-messages.ts';
import type { SerializedHistogram } from './histogram.ts';

/** 'lantern': hello + welcome (and the conversations); 'raw': the WebSocket upgrade only (the uWS ceiling). */
export type StormProtocol = 'lantern' | 'raw';

/** This generator's share of the clients and where they go. */
export interface StormShare {
  workerIndex: number;
  /** Servers: global client i goes to urls[i % urls.length]. */
  urls: string[];
  /** Global client indices first .. first + count - 1; client i is user `${userPrefix}${i}`. */
  first: number;
  count: number;
  userPrefix: string;
  protocol: StormProtocol;
  /** HS256 secret and audience of the tokens (lantern only). */
  secret?: string;
  audience?: string;
  /** Loopback source addresses this generator binds its sockets to, round-robin. */
  sourceAddresses: string[];
  /** Bound on one connection attempt (upgrade + welcome). */
  attemptTimeoutMs: number;
}

export interface ConnectStormConfig extends StormShare {
  /** This generator's share of the ramp, connections per second; 0: all at once. */
  ratePerSec: number;
  /** Bound on the whole storm. */
  timeoutMs: number;
}

export interface ReconnectSetupConfig extends StormShare {
  /** Members per conversation: 2 = direct conversations (pairs), more = groups. count is a multiple. */
  groupSize: number;
  /** Messages per second into this generator's conversations, all together, once `feed` comes. */
  messagesPerSec: number;
  /** Fraction of the clients that drop (spread evenly over them). */
  dropFraction: number;
  /** Bound on connecting and preparing the share. */
  setupTimeoutMs: number;
  /** Bound on the reconnect and resync of every dropped client. */
  resyncTimeoutMs: number;
}

/** A generator's reconnect storm, from the moment `reconnect` came. */
export interface ResyncReport {
  workerIndex: number;
  dropped: number;
  /** Welcomed (raw: upgraded) again. */
  reconnected: number;
  /** Synced until caught up (lantern; raw: = reconnected). */
  caughtUp: number;
  /** Attempts that failed and were made again. */
  retries: number;
  /** Reconnect start -> welcome (raw: upgraded), per client. */
  reconnect: SerializedHistogram;
  /** Reconnect start -> caught up, per client (lantern). */
  resync: SerializedHistogram;
  /** Drop -> caught up, per client (the time away included). */
  dropToCaughtUp: SerializedHistogram;
  /** Epoch ms (comparable across processes): reconnects started, last welcome, last caught up. */
  startedAt: number;
  reconnectedAt: number;
  caughtUpAt: number;
  /** Messages the clients got from sync that they did not hold yet. */
  recovered: number;
  syncRequests: number;
  /** Syncs run again because a live message showed a gap the sync had left. */
  gapResyncs: number;
  /** Feeder acks between `drop` and `reconnect`: messages committed while the clients were away. */
  sentWhileAway: number;
  errors: number;
  errorSamples: string[];
}

/** After the storm: every client's copy of its conversation against the conversation's head. */
export interface VerifyReport {
  workerIndex: number;
  clients: number;
  conversations: number;
  /** Messages the feeders had acked in all. */
  sent: number;
  /** Seqs at or below the head some client does not hold. */
  missing: number;
  /** Seqs a client got twice on one connection, or in a sync reply at or below the cursor it asked from. */
  duplicates: number;
  /** Seqs a sync reply jumped over. */
  skipped: number;
  /** Clients without every message up to the head when the wait ended. */
  clientsBehind: number;
  /** Syncs run again for a gap, from setup to the check. */
  gapResyncs: number;
  feederErrors: number;
  /** Feeder sends not made because the feeder had too many unanswered (open loop held back). */
  feederSkipped: number;
  errors: number;
  errorSamples: string[];
}

export type StormCommand =
  | { type: 'connect-storm'; config: ConnectStormConfig }
  /** Epoch ms at which the first connection starts (the same for every generator). */
  | { type: 'go'; startAt: number }
  | { type: 'setup'; config: ReconnectSetupConfig }
  | { type: 'feed' }
  | { type: 'drop' }
  | { type: 'reconnect' }
  | { type: 'verify'; waitMs: number }
  | { type: 'close' };

export type StormMessage =
  | { type: 'ready' }
  | { type: 'prepared' }
  | { type: 'stormed'; report: ConnectReport & { closedAfterWelcome: number } }
  | { type: 'set-up'; clients: number; conversations: number; feeders: number }
  | { type: 'dropped'; dropped: number }
  | { type: 'resynced'; report: ResyncReport }
  | { type: 'verified'; report: VerifyReport }
  | { type: 'closed' }
  | { type: 'failed'; error: string };
