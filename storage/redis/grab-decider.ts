// The distributed GrabDecider (docs/decisions/0007 "The grab path"): any worker may take any grab,
// and Redis decides who gets which share, one script per decision.
//
// Key layout, all in the envelope's hash tag so each script runs in one slot (Redis Cluster):
//   `${keyPrefix}{env:<id>}:meta`     HASH  expiresAt, dropAt (unix ms); present = installed
//   `${keyPrefix}{env:<id>}:shares`   LIST  free share indices, in hand-out order
//   `${keyPrefix}{env:<id>}:grabbed`  HASH  user -> decided index
// Every key PEXPIREATs at dropAt = max(expiresAt, load time on Redis' clock) + retentionMs, so
// nothing outlives the envelope by more than the retention, with no sweeper. The retention exists
// because decisions still count after expiry: the expiry sweep claims them before the refund.
//
// load, decide and reassign are Lua scripts (defineCommand: EVALSHA, EVAL after a NOSCRIPT), so
// decide is one round trip and atomic. forget and drop are single commands, atomic by themselves.
// Redis 7 fixes the clock of key expiry for the length of a script, so a script sees the three
// keys, which share one expiry, all present or all gone.
//
// Redis restarted empty (or the keys expired): decide answers 'unknown' and the caller loads the
// envelope again from the store's claims. Decisions not yet claimed are lost with it; the store
// refuses a colliding claim and the caller forgets and re-decides (ports.ts).
// Needs maxmemory-policy noeviction (the ops/infra.sh default): evicting one key of an envelope
// but not the others, e.g. `:shares` alone, would read as 'empty'.
import type { Cluster, Redis } from 'ioredis';
import type { GrabDecider, GrabDecision } from '../../engine/wallet/ports.ts';
import { checkGrabLoad, checkRetention, DEFAULT_GRAB_RETENTION_MS, type GrabClaim, type GrabEnvelope } from '../memory/grab-decider.ts';

// decide's replies below 0; an index otherwise.
const EMPTY = -1;
const EXPIRED = -2;
const UNKNOWN = -3;
const EMPTY_REBUILT = -4;
const EXPIRED_REBUILT = -5;

/** Indices per RPUSH: Lua's unpack() has a stack limit (~8000). */
const PUSH_BATCH = 1000;

// KEYS meta, shares, grabbed; ARGV[1] count, ARGV[2] expiresAt, ARGV[3] retention ms,
// ARGV[4] 1 for a rebuild after a loss, else 0, ARGV[5..] user, index pairs. Returns 1 if installed, 0 if it was installed already.
const LOAD = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dropAt = string.format('%d', math.max(tonumber(ARGV[2]), now) + tonumber(ARGV[3]))
-- Without meta the envelope is not installed: leftovers of a half-gone one must not mix in.
redis.call('DEL', KEYS[2], KEYS[3])
local taken = {}
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  taken[tonumber(ARGV[i + 1])] = true
end
local batch = {}
for index = 0, tonumber(ARGV[1]) - 1 do
  if not taken[index] then
    batch[#batch + 1] = index
    if #batch == ${PUSH_BATCH} then
      redis.call('RPUSH', KEYS[2], unpack(batch))
      batch = {}
    end
  end
end
if #batch > 0 then redis.call('RPUSH', KEYS[2], unpack(batch)) end
redis.call('HSET', KEYS[1], 'expiresAt', ARGV[2], 'dropAt', dropAt, 'rebuilt', ARGV[4])
for i = 1, 3 do redis.call('PEXPIREAT', KEYS[i], dropAt) end
return 1`;

// KEYS meta, shares, grabbed; ARGV[1] user, ARGV[2] now (caller's clock, ms).
// Returns the user's index, or EMPTY / EXPIRED / UNKNOWN.
const DECIDE = `
local meta = redis.call('HMGET', KEYS[1], 'expiresAt', 'dropAt', 'rebuilt')
if not meta[1] then return ${UNKNOWN} end
local earlier = redis.call('HGET', KEYS[3], ARGV[1])
if earlier then return tonumber(earlier) end
local rebuilt = meta[3] == '1'
if tonumber(ARGV[2]) >= tonumber(meta[1]) then return rebuilt and ${EXPIRED_REBUILT} or ${EXPIRED} end
local index = redis.call('LPOP', KEYS[2])
if not index then return rebuilt and ${EMPTY_REBUILT} or ${EMPTY} end
redis.call('HSET', KEYS[3], ARGV[1], index)
-- The hash is created by the first decision when load had no claims.
redis.call('PEXPIREAT', KEYS[3], meta[2])
return tonumber(index)`;

// KEYS meta, shares, grabbed; ARGV[1] user, ARGV[2] decided index, ARGV[3] held index (GrabDecider.reassign).
// The list is gone when its last index was handed out (Redis deletes empty lists): LPUSH makes it
// again, so it gets the envelope's expiry again.
const REASSIGN = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('LREM', KEYS[2], 0, ARGV[3])
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('PEXPIREAT', KEYS[2], redis.call('HGET', KEYS[1], 'dropAt'))
return 1`;

type Arg = string | number;
type ScriptCaller = {
  lanternGrabLoad(...args: Arg[]): Promise<number>;
  lanternGrabDecide(...args: Arg[]): Promise<number>;
  lanternGrabReassign(...args: Arg[]): Promise<number>;
};

export interface RedisGrabDeciderOptions {
  /** Prepended to every key, e.g. 'lantern:'. Must not contain '{' or '}' (they would move the hash tag). */
  keyPrefix: string;
  /** How long an envelope's keys outlive its expiry (ms). Default DEFAULT_GRAB_RETENTION_MS (1 hour). */
  retentionMs?: number;
}

export class RedisGrabDecider implements GrabDecider {
  readonly keyPrefix: string;
  readonly retentionMs: number;
  private readonly scripts: ScriptCaller;

  constructor(private readonly client: Redis | Cluster, options: RedisGrabDeciderOptions) {
    const { keyPrefix, retentionMs = DEFAULT_GRAB_RETENTION_MS } = options;
    if (typeof keyPrefix !== 'string' || keyPrefix === '') throw new TypeError('RedisGrabDecider option keyPrefix: a non-empty string is required (e.g. "lantern:")');
    if (/[{}]/.test(keyPrefix)) throw new TypeError(`RedisGrabDecider option keyPrefix: must not contain '{' or '}' (got ${JSON.stringify(keyPrefix)})`);
    checkRetention('RedisGrabDecider option retentionMs', retentionMs);
    if (retentionMs < 1) throw new RangeError('RedisGrabDecider option retentionMs must be >= 1 (a PEXPIREAT of now deletes at once)');
    this.keyPrefix = keyPrefix;
    this.retentionMs = retentionMs;
    // Names are Lantern-specific because defineCommand installs them on the shared, injected client.
    client.defineCommand('lanternGrabLoad', { lua: LOAD, numberOfKeys: 3 });
    client.defineCommand('lanternGrabDecide', { lua: DECIDE, numberOfKeys: 3 });
    client.defineCommand('lanternGrabReassign', { lua: REASSIGN, numberOfKeys: 3 });
    this.scripts = client as unknown as ScriptCaller;
  }

  /** The envelope's keys: meta, shares, grabbed (exposed for tests and operators). */
  keys(envelopeId: string): [meta: string, shares: string, grabbed: string] {
    const base = `${this.keyPrefix}{env:${envelopeId}}`;
    return [`${base}:meta`, `${base}:shares`, `${base}:grabbed`];
  }

  async load(envelope: GrabEnvelope, claimed: ReadonlyArray<GrabClaim>, options: { rebuild?: boolean } = {}): Promise<void> {
    checkGrabLoad(envelope, claimed);
    const pairs = claimed.flatMap(({ user, index }) => [user, index]);
    await this.scripts.lanternGrabLoad(...this.keys(envelope.id), envelope.count, envelope.expiresAt, this.retentionMs, options.rebuild ? 1 : 0, ...pairs);
  }

  async decide(envelopeId: string, user: string, now: number): Promise<GrabDecision> {
    const reply = Number(await this.scripts.lanternGrabDecide(...this.keys(envelopeId), user, Math.floor(now)));
    if (reply >= 0) return { outcome: 'share', index: reply };
    if (reply === EMPTY) return { outcome: 'empty' };
    if (reply === EXPIRED) return { outcome: 'expired' };
    if (reply === UNKNOWN) return { outcome: 'unknown' };
    if (reply === EMPTY_REBUILT) return { outcome: 'empty', rebuilt: true };
    if (reply === EXPIRED_REBUILT) return { outcome: 'expired', rebuilt: true };
    throw new Error(`redis grab decide ${envelopeId}: unexpected reply ${reply}`);
  }

  async forget(envelopeId: string, user: string): Promise<void> {
    await this.client.hdel(this.keys(envelopeId)[2], user);
  }

  async reassign(envelopeId: string, user: string, decided: number, held: number): Promise<void> {
    if (decided === held) return;
    await this.scripts.lanternGrabReassign(...this.keys(envelopeId), user, decided, held);
  }

  async drop(envelopeId: string): Promise<void> {
    await this.client.del(...this.keys(envelopeId));
  }
}
