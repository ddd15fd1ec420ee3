// The engine as the gateway sees it: one request entry point plus connection lifecycle.
// Requests are plain data so the same call can cross NATS in distributed mode.
import type { AdminRequestMap, RequestParams, RequestResult, RequestType } from '../protocol/frames.ts';

/** An authenticated device connection. */
export interface DeviceSession {
  readonly user: string;
  readonly device: string;
  /** Unique per connection. */
  readonly session: string;
}

export interface Engine {
  /** Serve one request; throws LanternError for anything the client should see as an `err` frame. */
  request<T extends RequestType>(who: DeviceSession, type: T, params: RequestParams<T>): Promise<RequestResult<T>>;
  connected(who: DeviceSession): Promise<void>;
  disconnected(who: DeviceSession): Promise<void>;
  /** Keep these connected devices registered as present (a gateway calls it every few seconds;
   *  a shared presence registry forgets sessions whose gateway stops refreshing them). */
  refresh?(sessions: readonly DeviceSession[]): Promise<void>;
  /** Announce offline the users whose sessions expired because their gateway died; resolves how many. */
  sweep?(): Promise<number>;
  /** Drop cached conversation state matching `matches` (a worker that acquires a partition calls it). */
  forget?(matches: (conv: string) => boolean): void;
  /** Ids of the groups `user` is a member of (a distributed gateway subscribes to their events). */
  groups?(user: string): Promise<string[]>;
  /** An operator request (the admin HTTP API; never a client connection). */
  admin?<T extends keyof AdminRequestMap>(type: T, params: AdminRequestMap[T]['params']): Promise<AdminRequestMap[T]['result']>;
  /** Refund expired red envelopes and return expired transfers; resolves how many of each. */
  sweepWallet?(): Promise<{ envelopes: number; transfers: number; orders: number }>;
  /** The store epoch sent in `welcome`. */
  readonly epoch: string;
  close(): Promise<void>;
}

export interface EngineSettings {
  /** Most members in a group, owner included. */
  readonly maxGroupMembers: number;
  /** How long after sending a message its sender may recall it. */
  readonly recallWindowMs: number;
  /** Longest text message body, in characters. */
  readonly maxTextLength: number;
  /** Longest group title / contact note, in characters. */
  readonly maxTitleLength: number;
  /** Most users named in one group.add / group.create / presence call. */
  readonly maxUsersPerCall: number;
  readonly historyPageDefault: number;
  readonly historyPageMax: number;
  readonly syncPageDefault: number;
  readonly syncPageMax: number;
  /** Conversations whose membership and head the engine keeps in memory (LRU). */
  readonly conversationCacheSize: number;
  /** Currencies wallets hold, comma-separated ISO 4217 codes; the first is the default. */
  readonly currencies: string;
  /** Largest red envelope, in cents. */
  readonly envelopeMaxTotal: number;
  /** Most shares in one red envelope (never more than the conversation has members). */
  readonly envelopeMaxShares: number;
  /** Longest red envelope greeting, in characters. */
  readonly envelopeMaxGreeting: number;
  /** How long an envelope stays open before what is left returns to its sender. */
  readonly envelopeExpiryMs: number;
  /** Largest transfer, in cents. */
  readonly transferMaxAmount: number;
  /** How long a transfer waits for its recipient before it returns to the sender. */
  readonly transferExpiryMs: number;
  /** Largest top-up, in cents. */
  readonly topupMaxAmount: number;
  readonly statementPageDefault: number;
  readonly statementPageMax: number;
  /** How long a worker that does not own a conversation trusts its member list when checking who
   *  may grab an envelope (distributed mode; the owner's view is always current). */
  readonly grabMembershipCacheMs: number;
  /** Grabs of one envelope within this many ms reach the members as one `envelope` event (0: one event per grab). */
  readonly envelopeEventCoalesceMs: number;
  /** Highest unit price of a flash sale, in cents. */
  readonly saleMaxPrice: number;
  /** Most units one sale may offer. */
  readonly saleMaxStock: number;
  /** Highest per-buyer limit a sale may set (and so the most units in one attempt). */
  readonly saleMaxPerUserLimit: number;
  /** Longest item description of a sale, in characters. */
  readonly saleMaxItemLength: number;
  /** Longest a sale may stay open (endAt - startAt). */
  readonly saleMaxDurationMs: number;
  /** How long a reservation waits for payment when the sale does not say (its stock then returns). */
  readonly salePayWindowMs: number;
  /** Longest payment window a sale may set. */
  readonly saleMaxPayWindowMs: number;
  /** How long past its deadline an order may stay in `paying` (a payment in flight) before the sweeper finishes it from the ledger. */
  readonly saleStuckPaymentMs: number;
  /** At most one `sale` event with the remaining stock per sale per this many ms (state changes go at once). */
  readonly saleStateThrottleMs: number;
  readonly saleOrdersPageDefault: number;
  readonly saleOrdersPageMax: number;
}

export const DEFAULT_ENGINE_SETTINGS: EngineSettings = Object.freeze({
  maxGroupMembers: 500,
  recallWindowMs: 2 * 60_000,
  maxTextLength: 4000,
  maxTitleLength: 64,
  maxUsersPerCall: 100,
  historyPageDefault: 50,
  historyPageMax: 200,
  syncPageDefault: 200,
  syncPageMax: 1000,
  conversationCacheSize: 10_000,
  currencies: 'CNY',
  envelopeMaxTotal: 20_000,
  envelopeMaxShares: 100,
  envelopeMaxGreeting: 64,
  envelopeExpiryMs: 24 * 3600_000,
  transferMaxAmount: 5_000_000,
  transferExpiryMs: 24 * 3600_000,
  topupMaxAmount: 100_000_000,
  statementPageDefault: 50,
  statementPageMax: 200,
  grabMembershipCacheMs: 2_000,
  envelopeEventCoalesceMs: 100,
  saleMaxPrice: 100_000_000,
  saleMaxStock: 10_000_000,
  saleMaxPerUserLimit: 100,
  saleMaxItemLength: 200,
  saleMaxDurationMs: 30 * 24 * 3600_000,
  salePayWindowMs: 15 * 60_000,
  saleMaxPayWindowMs: 24 * 3600_000,
  saleStuckPaymentMs: 30_000,
  saleStateThrottleMs: 1_000,
  saleOrdersPageDefault: 50,
  saleOrdersPageMax: 200,
});
