// The engine's ports: what it needs from storage, hot state and delivery. Adapters live in
// storage/ (memory, LMDB, later CQL/Redis/NATS) and gateway/; the composition root picks them.
// Each interface states what must be atomic and durable; storage/contract/ checks it for every adapter.
import type {
  ContactState, ConversationType, MemberRole, Message, ServerEvent,
} from '../protocol/frames.ts';

export interface StoredConversation {
  id: string;
  type: ConversationType;
  title: string;
  /** Random per conversation incarnation; changes only if history continuity is lost. */
  epoch: string;
  /** Highest committed seq (0 for none). */
  head: number;
  memberCount: number;
  createdBy: string;
  createdAt: number;
}

export interface Membership {
  conv: string;
  user: string;
  role: MemberRole;
  /** The conversation head when the user joined: messages with seq <= joined are hidden from them. */
  joined: number;
}

/**
 * One atomic change to one conversation: new messages and the membership/metadata changes
 * they announce. Either all of it is durable when commit() resolves, or none of it is.
 */
export interface ConversationCommit {
  conv: string;
  /** The head the writer based this commit on. The store refuses the commit if it differs. */
  expectHead: number;
  /** Creates the conversation; expectHead must be 0 and the conversation must not exist. */
  create?: Omit<StoredConversation, 'head' | 'memberCount'>;
  /** Messages with seqs expectHead+1, expectHead+2, ... in order, no gaps. */
  messages: readonly Message[];
  putMembers?: readonly Membership[];
  removeMembers?: readonly string[];
  /** Seqs whose message is marked recalled: body dropped, `recalled: true` set. */
  recall?: readonly number[];
}

/** The commit's expectHead did not match: another writer got there first. Nothing was written. */
export class HeadConflictError extends Error {
  override readonly name = 'HeadConflictError';
  constructor(readonly conv: string, readonly expected: number, readonly actual: number) {
    super(`conversation ${conv}: expected head ${expected}, store has ${actual}`);
  }
}

/**
 * The store could not be reached or failed to write. Retryable. For a local store nothing was
 * committed; for a distributed one a timed-out commit has an unknown outcome (it may have been
 * applied): a retry on the same head then gets HeadConflictError, and the engine reloads the head
 * and deduplicates resent sends by client id.
 */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) { super(message, options); }
}

/** Conversation timelines, membership and read cursors. */
export interface TimelineStore {
  /** Atomic and durable on resolve (see ConversationCommit). Throws HeadConflictError or StoreUnavailableError. */
  commit(change: ConversationCommit): Promise<void>;
  getConversation(conv: string): Promise<StoredConversation | undefined>;
  getMembership(conv: string, user: string): Promise<Membership | undefined>;
  /** All members, ordered by user id. */
  listMembers(conv: string): Promise<Membership[]>;
  /** The user's memberships, ordered by conversation id. (A distributed store may lag a commit that
   *  was interrupted after its commit point, until the next commit on that conversation.) */
  listUserConversations(user: string): Promise<Membership[]>;
  /** Messages with seq > afterSeq, ascending, at most `limit`. */
  readAfter(conv: string, afterSeq: number, limit: number): Promise<Message[]>;
  /** The `limit` messages just below `beforeSeq`, ascending. */
  readBefore(conv: string, beforeSeq: number, limit: number): Promise<Message[]>;
  getMessage(conv: string, seq: number): Promise<Message | undefined>;
  /** The seq a (conv, from, cid) send was committed at, if any. Indexed by commit(). */
  findByClientId(conv: string, from: string, cid: string): Promise<number | undefined>;
  /** Raise the user's read cursor to `seq` if higher; returns the cursor after the call. Durable on resolve. */
  advanceReadCursor(conv: string, user: string, seq: number): Promise<number>;
  getReadCursor(conv: string, user: string): Promise<number>;
  /** Read cursors of all users who have one in this conversation. */
  getReadCursors(conv: string): Promise<Record<string, number>>;
}

export interface ContactEdge {
  /** The user whose list this edge is in. */
  owner: string;
  other: string;
  state: Exclude<ContactState, 'none'>;
  ts: number;
  note?: string;
}

/** Contact relations, stored as one directed edge per side. */
export interface ContactStore {
  /** Write (or delete, with state 'none') several edges atomically. Durable on resolve. */
  setContacts(edges: ReadonlyArray<ContactEdge | { owner: string; other: string; state: 'none' }>): Promise<void>;
  getContact(owner: string, other: string): Promise<ContactEdge | undefined>;
  /** The owner's edges, ordered by other user id. */
  listContacts(owner: string): Promise<ContactEdge[]>;
}

/** Durable per-user state that outlives connections. */
export interface UserStore {
  setLastSeen(user: string, ts: number): Promise<void>;
  /** Users never seen are absent from the result. */
  getLastSeen(users: readonly string[]): Promise<Record<string, number>>;
}

/** Everything the chat engine persists, as one adapter instance per backend. */
export interface ChatStore extends TimelineStore, ContactStore, UserStore {
  /** Random id of this store's data set, made when it was first created; clients reload when it changes. */
  readonly epoch: string;
  /** Release what the store opened itself; an injected driver client stays open for its owner to close. */
  close(): Promise<void>;
}

/** Where devices are connected right now. In-process in embedded mode; Redis when distributed. */
export interface PresenceRegistry {
  /** Record a connected device; resolves true if it is the user's first. */
  add(user: string, session: string): Promise<boolean>;
  /** Forget a device; resolves true if the user has no device left. */
  remove(user: string, session: string): Promise<boolean>;
  /** The subset of users with at least one device connected. */
  online(users: readonly string[]): Promise<Set<string>>;
  /**
   * Keep these live sessions registered (a gateway calls it periodically for its sockets; shared
   * registries expire sessions of gateways that died). Re-adds sessions the registry lost and
   * resolves to the users that had no live session before, so they can be announced online again.
   */
  refresh(sessions: ReadonlyArray<{ user: string; session: string }>): Promise<string[]>;
  /**
   * Users whose sessions all expired without remove() (their gateway died), each reported to
   * exactly one caller, with an estimate of when they were last seen. Only registries whose
   * sessions expire have it (a shared registry in distributed mode).
   */
  takeExpired?(limit?: number): Promise<Array<{ user: string; lastSeen: number }>>;
}

/**
 * Delivers events to users' connected devices. An implementation encodes the event once and
 * writes the same bytes to every device; it never blocks on a slow device (see PROTOCOL.md,
 * slow consumers). Delivery is best effort: clients heal gaps with sync.
 */
export interface Delivery {
  /** An event for these users (contacts, presence: addressed to people, not to a conversation). */
  toUsers(users: readonly string[], event: ServerEvent): void;
  /**
   * An event for the members of a conversation. Distributed delivery publishes a group's events
   * once on the conversation's subject and lets each gateway fan out to its local members, so the
   * audience also says how membership changes with this event (docs/decisions/0006, delivery).
   */
  toConversation(conv: string, event: ServerEvent, audience: ConversationAudience): void;
}

export interface ConversationAudience {
  /** Everyone who gets the event: the members after it, plus the users it removes. */
  readonly members: readonly string[];
  /** Users this event makes members: they learn of the conversation through it. */
  readonly added?: readonly string[];
  /** Users this event removes: they get this event and none after it. */
  readonly removed?: readonly string[];
  /** A member who does not get the event (the typist, for typing). */
  readonly except?: string;
  /** Set on the first event after the engine loaded the conversation's state: delivery that caches
   *  membership elsewhere re-announces the full member list, in case a change was committed and
   *  never published (a worker crashed in between). */
  readonly reannounce?: boolean;
}

/** The users an audience reaches (what an in-process delivery sends to). */
export function audienceUsers(audience: ConversationAudience): readonly string[] {
  const { members, except } = audience;
  return except === undefined ? members : members.filter((u) => u !== except);
}

/**
 * A rate limit shared by every process that enforces it (GCRA: a bucket of `burst` tokens refilled
 * at `ratePerSec`). In-process for embedded mode; Redis when distributed, so a user's devices on
 * different gateways draw from one bucket. A rejected promise means the limiter could not be
 * reached: the caller decides whether to fail open.
 */
export interface RateLimiter {
  readonly ratePerSec: number;
  readonly burst: number;
  /** Take `cost` tokens (default 1) from `key`'s bucket: resolves 0 if taken, else the ms until they would be (nothing taken). */
  take(key: string, cost?: number): Promise<number>;
}

export interface Clock { now(): number }
export const systemClock: Clock = { now: () => Date.now() };

/** Structured logger (pino-compatible subset). */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** A bus subscription; unsubscribe() stops delivery at once (messages already queued may still run). */
export interface BusSubscription {
  unsubscribe(): void;
}

/** A request sent over the bus found no subscriber for its subject. Fail fast: nothing was done. */
export class BusNoRespondersError extends Error {
  override readonly name = 'BusNoRespondersError';
  constructor(readonly subject: string) { super(`no responders for ${subject}`); }
}

/** A request got no reply in time: the outcome is unknown (the handler may have run). */
export class BusTimeoutError extends Error {
  override readonly name = 'BusTimeoutError';
  constructor(readonly subject: string, readonly timeoutMs: number) { super(`no reply on ${subject} within ${timeoutMs} ms`); }
}

/**
 * Messages between processes (in-process in embedded mode, NATS when distributed). Subjects are
 * dot-separated tokens; `*` matches one token and `>` the rest, as in NATS. Delivery is at most
 * once: whatever must survive a crash is stored before it is published. Messages from one
 * publisher on one subject arrive in publish order.
 */
export interface Bus {
  publish(subject: string, data: Uint8Array): void;
  /** Every subscriber gets each message, except that within one queue group only one member does. */
  subscribe(subject: string, handler: (data: Uint8Array, subject: string) => void, options?: { queue?: string }): BusSubscription;
  /** Answer requests on a subject; the handler's bytes are the reply, a thrown error is logged by the adapter and not answered. */
  serve(subject: string, handler: (data: Uint8Array, subject: string) => Promise<Uint8Array>, options?: { queue?: string }): BusSubscription;
  /** Send a request and wait for one reply. Throws BusNoRespondersError or BusTimeoutError. */
  request(subject: string, data: Uint8Array, options: { timeoutMs: number }): Promise<Uint8Array>;
  /** Resolves when everything published so far has reached the server (no-op in process). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A small shared key/value of leases with compare-and-set and expiry: who owns a partition, which
 * workers are alive. In-process for tests and embedded mode; a NATS JetStream KV bucket when
 * distributed (docs/decisions/0006, partition ownership).
 *
 * - Keys are dot-separated tokens of `A-Z a-z 0-9 - _ = /` (what a NATS KV key allows), e.g.
 *   `p.12`, `w.worker-1`. The value of an entry is its owner, an opaque non-empty string.
 * - Every successful write (claim, renew) gives the entry a new revision, larger than any revision
 *   the store handed out before, and restarts its life: an entry expires `ttlMs` after its last
 *   write at the store and is then absent (claimable by anyone, missing from holders()).
 * - renew() and release() are compare-and-set on the revision: they succeed only if the entry's
 *   current revision is the one given, so a caller whose lease expired (and was maybe claimed by
 *   someone else) can neither extend nor delete it.
 * - What a caller may assume: when claim()/renew() resolves a revision, it held the lease at the
 *   store at that moment, and the store will not let anyone else claim it for ttlMs after the
 *   write. The write happens after the caller SENT the call, so the caller must stop acting as
 *   owner before `ttlMs` has passed since it SENT its last successful claim/renew (minus a margin
 *   for clock-rate drift and for telling others it stopped), whether or not later renews fail or
 *   hang.
 * - A rejected promise means the store could not be reached or failed: the outcome is unknown
 *   (the write may have been applied). Nothing is swallowed; the caller decides.
 */
export interface LeaseStore {
  /** How long an entry lives after its last write. The same for every entry of the store. */
  readonly ttlMs: number;
  /** Create the entry if absent (or expired, or released). Resolves its revision, or undefined if someone holds it. */
  claim(key: string, owner: string): Promise<number | undefined>;
  /** Rewrite the entry if its revision is still `revision`: resolves the new revision, or undefined if the lease was lost. */
  renew(key: string, owner: string, revision: number): Promise<number | undefined>;
  /** Delete the entry if its revision is still `revision`. Resolves false if it was not (already lost: nothing done). */
  release(key: string, owner: string, revision: number): Promise<boolean>;
  /** Live entries whose key starts with `prefix` (which must end with a dot, e.g. `p.`): key to owner. */
  holders(prefix: string): Promise<Map<string, string>>;
}
