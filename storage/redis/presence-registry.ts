// PresenceRegistry on Redis for distributed mode: every gateway registers the device sessions
// connected to it, and any process can ask who is online.
//
// Key layout (one key per user, Redis Cluster ready):
//   `${keyPrefix}{u:${user}}:sessions`  ZSET  session id -> expiry (Redis server time, unix ms)
// The `{u:<user>}` hash tag pins everything about a user to one slot, so later per-user keys
// (devices, rate limits) can share a script or MULTI with this one. No script touches two keys;
// batch calls (online, refresh) send one single-key script per user, pipelined on a standalone
// client and sent concurrently on a Cluster (ioredis refuses a pipeline that spans nodes).
//
// TTLs: a session lives sessionTtlMs (default 60 s) after its last add/refresh; the gateway
// refreshes its live sessions every sessionTtlMs/3, so two missed refreshes are tolerated. The
// key itself PEXPIREATs at its latest session's expiry, so an abandoned user disappears from
// Redis with no sweeper. Expiries come from Redis' TIME, never the caller's clock, so gateways
// with skewed clocks agree.
//
// Atomicity: add/remove/online/refresh are Lua scripts (ioredis defineCommand: EVALSHA, falling
// back to EVAL after NOSCRIPT, e.g. after a restart). Each first drops the sessions that have
// expired, then answers, in one step: "first device" and "last device" cannot race.
//
// A gateway dies (kill -9, no remove()): its sessions are not refreshed and expire after at most
// sessionTtlMs; online() stops counting them at once. remove() of the user's last live session
// reports true even when dead sessions were still in the set, and add() after everything expired
// reports a first device. A user whose only sessions died is found by takeExpired():
//   `${keyPrefix}{due:<n>}`  ZSET  user -> latest expiry (caller's clock), n = one of DUE_SHARDS
// add() and refresh() raise the user's entry (ZADD GT), remove() of the last device deletes it.
// takeExpired() claims entries that are past due with ZREM (one caller wins each), then checks the
// user's sessions atomically: still online (a refresh raced) puts the entry back; otherwise the
// user is reported once, to be announced offline. The shards spread the index over slots; the
// index is a hint checked against the sessions key, so the two need not change atomically.
// online() is read-only and never consumes a transition.
//
// Redis restarts: with AOF (ops/infra.sh) the sessions survive a clean restart. Without
// persistence, or after failing over to a replica that had not caught up, the registry starts
// empty: online() reads 'offline' for users who are connected, for up to one refresh interval
// (sessionTtlMs/3). That is the degraded mode, and it is explicit: refresh() ZADDs (it does not
// only extend) and returns the users it brought back, so the caller can announce them online
// again. While Redis is unreachable every call rejects; no call returns a guess.
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type { PresenceRegistry } from '../../engine/ports.ts';

export const DEFAULT_SESSION_TTL_MS = 60_000;
/** Shards of the due index: keys in different slots, so no one node holds every user's entry. */
export const DUE_SHARDS = 16;
/** The due index outlives every session by far; it expires only if no worker sweeps for this long. */
const DUE_INDEX_TTL_MS = 24 * 3600_000;
/** Below this a refresh interval (ttl/3) approaches a round trip; tests use a few hundred ms. */
export const MIN_SESSION_TTL_MS = 100;

export interface RedisPresenceRegistryOptions {
  /** Prepended to every key, e.g. 'lantern:'. Must not contain '{' or '}' (they would move the hash tag). */
  keyPrefix: string;
  /** How long a session lives without add/refresh (ms). Default DEFAULT_SESSION_TTL_MS. */
  sessionTtlMs?: number;
}

/** A connected device to keep alive: what the gateway passes to refresh(). */
export interface PresenceSession {
  user: string;
  session: string;
}

// Shared prelude: the server clock in ms, and the purge every script starts with. Scores are
// expiry times; a session is live while its score is > now.
const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function ms(x) return string.format('%d', x) end
local function purge() redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms(now)) end
local function expireWithLatest()
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if last[2] then redis.call('PEXPIREAT', KEYS[1], last[2]) end
end
`;

// KEYS[1] sessions key; ARGV[1] session; ARGV[2] ttl ms. Returns 1 if this is the user's first live session.
const ADD = `${PRELUDE}
purge()
local first = redis.call('ZCARD', KEYS[1]) == 0
redis.call('ZADD', KEYS[1], ms(now + tonumber(ARGV[2])), ARGV[1])
expireWithLatest()
if first then return 1 end
return 0`;

// KEYS[1] sessions key; ARGV[1] session. Returns 1 if the user had a live session and now has
// none: the last device is gone, observed by this call even if dead sessions were still listed.
const REMOVE = `${PRELUDE}
purge()
local had = redis.call('ZCARD', KEYS[1]) > 0
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('ZCARD', KEYS[1]) > 0 then
  expireWithLatest()
  return 0
end
if had then return 1 end
return 0`;

// KEYS[1] sessions key. Read-only: 1 if the user has a live session.
const ONLINE = `${PRELUDE}
if redis.call('ZCOUNT', KEYS[1], '(' .. ms(now), '+inf') > 0 then return 1 end
return 0`;

// KEYS[1] sessions key; ARGV[1] ttl ms; ARGV[2..] sessions. Re-adds (ZADD, not XX) so sessions
// lost with Redis' data come back. Returns 1 if the user had no live session before: restored.
const REFRESH = `${PRELUDE}
purge()
local restored = redis.call('ZCARD', KEYS[1]) == 0
local expiry = ms(now + tonumber(ARGV[1]))
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], expiry, ARGV[i]) end
expireWithLatest()
if restored then return 1 end
return 0`;

// Names are Lantern-specific because defineCommand installs them on the shared, injected client.
const SCRIPTS = {
  lanternPresenceAdd: { lua: ADD, numberOfKeys: 1 },
  lanternPresenceRemove: { lua: REMOVE, numberOfKeys: 1 },
  lanternPresenceOnline: { lua: ONLINE, numberOfKeys: 1, readOnly: true },
  lanternPresenceRefresh: { lua: REFRESH, numberOfKeys: 1 },
} as const;
type ScriptName = keyof typeof SCRIPTS;
type Arg = string | number;
/** The client after defineCommand: each script is a method taking its key then its ARGV. */
type ScriptCaller = { [K in ScriptName]: (...args: Arg[]) => Promise<unknown> };
type ScriptQueuer = { [K in ScriptName]: (...args: Arg[]) => unknown };

function validate(options: RedisPresenceRegistryOptions): Readonly<Required<RedisPresenceRegistryOptions>> {
  const { keyPrefix, sessionTtlMs = DEFAULT_SESSION_TTL_MS } = options;
  if (typeof keyPrefix !== 'string' || keyPrefix === '') {
    throw new TypeError('RedisPresenceRegistry option keyPrefix: a non-empty string is required (e.g. "lantern:")');
  }
  if (/[{}]/.test(keyPrefix)) {
    throw new TypeError(`RedisPresenceRegistry option keyPrefix: must not contain '{' or '}' (got ${JSON.stringify(keyPrefix)})`);
  }
  if (!Number.isSafeInteger(sessionTtlMs) || sessionTtlMs < MIN_SESSION_TTL_MS) {
    throw new RangeError(`RedisPresenceRegistry option sessionTtlMs: an integer >= ${MIN_SESSION_TTL_MS} ms is required (got ${sessionTtlMs})`);
  }
  return Object.freeze({ keyPrefix, sessionTtlMs });
}

export class RedisPresenceRegistry implements PresenceRegistry {
  readonly options: Readonly<Required<RedisPresenceRegistryOptions>>;
  private readonly scripts: ScriptCaller;

  constructor(private readonly client: Redis | Cluster, options: RedisPresenceRegistryOptions) {
    this.options = validate(options);
    for (const [name, definition] of Object.entries(SCRIPTS)) client.defineCommand(name, definition);
    this.scripts = client as unknown as ScriptCaller;
  }

  /** The key holding `user`'s sessions (exposed for tests and operators). */
  sessionsKey(user: string): string {
    return `${this.options.keyPrefix}{u:${user}}:sessions`;
  }

  /** The due-index shard that holds `user`'s entry. */
  dueKey(user: string): string {
    return `${this.options.keyPrefix}{due:${dueShard(user)}}`;
  }

  async add(user: string, session: string): Promise<boolean> {
    const [first] = await Promise.all([
      this.scripts.lanternPresenceAdd(this.sessionsKey(user), session, this.options.sessionTtlMs),
      this.markDue([user]),
    ]);
    return first === 1;
  }

  async remove(user: string, session: string): Promise<boolean> {
    const last = (await this.scripts.lanternPresenceRemove(this.sessionsKey(user), session)) === 1;
    // Announced by the caller now; the sweeper must not announce it again.
    if (last) await this.client.zrem(this.dueKey(user), user);
    return last;
  }

  /**
   * Users whose sessions all expired without a remove() (their gateway died or stalled), each
   * reported to exactly one caller, with when they were last seen (their last refresh). At most
   * about `limit` per shard per call.
   */
  async takeExpired(limit = 500): Promise<Array<{ user: string; lastSeen: number }>> {
    const now = Date.now();
    const found: Array<{ user: string; lastSeen: number }> = [];
    for (let shard = 0; shard < DUE_SHARDS; shard++) {
      const key = `${this.options.keyPrefix}{due:${shard}}`;
      const due = await this.client.zrangebyscore(key, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit);
      for (let i = 0; i < due.length; i += 2) {
        const user = due[i]!;
        const expiry = Number(due[i + 1]);
        if (await this.client.zrem(key, user) !== 1) continue; // another sweeper claimed it
        const [online] = await this.perKey('lanternPresenceOnline', [[this.sessionsKey(user)]]);
        if (online === 1) await this.markDue([user]); // refreshed meanwhile: watch it again
        else found.push({ user, lastSeen: expiry - this.options.sessionTtlMs });
      }
    }
    return found;
  }

  /** Raise the users' due entries to now + ttl (never lower them). */
  private async markDue(users: readonly string[]): Promise<void> {
    const expiry = Date.now() + this.options.sessionTtlMs;
    const byKey = new Map<string, string[]>();
    for (const user of users) {
      const key = this.dueKey(user);
      const list = byKey.get(key);
      if (list) list.push(user); else byKey.set(key, [user]);
    }
    await Promise.all([...byKey].map(async ([key, members]) => {
      await this.client.zadd(key, 'GT', ...members.flatMap((u) => [expiry, u]));
      await this.client.pexpire(key, DUE_INDEX_TTL_MS);
    }));
  }

  /** One round trip for any number of users. */
  async online(users: readonly string[]): Promise<Set<string>> {
    const unique = [...new Set(users)];
    const replies = await this.perKey('lanternPresenceOnline', unique.map((user) => [this.sessionsKey(user)]));
    return new Set(unique.filter((_, i) => replies[i] === 1));
  }

  /**
   * Extend the given sessions to a full sessionTtlMs from now, re-adding any that Redis lost.
   * The gateway calls it every sessionTtlMs/3 with a snapshot of its live sessions, taken in the
   * same tick as the call (a stale snapshot could revive a removed session for one TTL).
   * Resolves to the users that had no live session before: after a Redis data loss or a missed
   * refresh they were reported offline, and the caller may announce them online again.
   */
  async refresh(sessions: readonly PresenceSession[]): Promise<string[]> {
    const byUser = new Map<string, string[]>();
    for (const { user, session } of sessions) {
      const list = byUser.get(user);
      if (list) list.push(session); else byUser.set(user, [session]);
    }
    const users = [...byUser.keys()];
    const [replies] = await Promise.all([
      this.perKey('lanternPresenceRefresh', users.map((user) => [this.sessionsKey(user), this.options.sessionTtlMs, ...byUser.get(user)!])),
      this.markDue(users),
    ]);
    return users.filter((_, i) => replies[i] === 1);
  }

  /** Runs one single-key script per argument list in one round trip; the first error rejects. */
  private async perKey(name: ScriptName, calls: readonly Arg[][]): Promise<unknown[]> {
    if (calls.length === 0) return [];
    if (this.client.isCluster) {
      // Concurrent sends: each goes to its slot's node (batched per node with enableAutoPipelining).
      return Promise.all(calls.map((args) => this.scripts[name](...args)));
    }
    const pipeline = this.client.pipeline();
    const queue = pipeline as unknown as ScriptQueuer;
    for (const args of calls) queue[name](...args);
    const replies = await pipeline.exec();
    if (!replies) throw new Error(`redis presence ${name}: pipeline was discarded`);
    return replies.map(([err, reply]) => {
      if (err) throw err;
      return reply;
    });
  }
}

function dueShard(user: string): number {
  return createHash('sha1').update(user).digest().readUInt32BE(0) % DUE_SHARDS;
}
