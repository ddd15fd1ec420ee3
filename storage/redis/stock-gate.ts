// The distributed StockGate (engine/sales/ports.ts): any worker may take any attempt, and Redis
// admits it or turns it away, one script per decision, so a storm's losers never reach the store.
//
// Key layout, all in the sale's hash tag so each script runs in one slot (Redis Cluster):
//   `${keyPrefix}{sale:<id>}:meta`     HASH  stock, remaining, perUserLimit, startAt, endAt, dropAt
//                                             (unix ms); present = installed
//   `${keyPrefix}{sale:<id>}:users`    HASH  user -> units held (admitted, reserved, paid)
//   `${keyPrefix}{sale:<id>}:orders`   HASH  order id -> its decision: 's' sold_out, 'l' limit_reached,
//                                             'a:<units>:<user>' admitted (what release gives back)
//   `${keyPrefix}{sale:<id>}:pending`  ZSET  admitted orders awaiting payment, scored by payBy
// Every key PEXPIREATs at dropAt = max(retainUntil, load time on Redis' clock +
// GATE_HOLD_AFTER_LOAD_MS), so nothing outlives the sale's retention, with no sweeper. The keys a
// decision creates later (users, orders, pending are absent until used, and Redis deletes an
// emptied hash or set) get the same expiry when written.
//
// load, decide and release are Lua scripts (defineCommand: EVALSHA, EVAL after a NOSCRIPT), so a
// decision is one round trip and atomic. settle, due, remaining and drop are single commands,
// atomic by themselves. Redis 7 fixes the clock of key expiry for the length of a script, so a
// script sees the four keys, which share one expiry, all present or all gone.
//
// Redis restarted empty (or the keys expired): decide answers 'unknown' and the caller loads the
// sale again from the store's holdings. Admissions not yet stored are lost with it; the store
// decides reservations itself, so the gate can never oversell.
// Needs maxmemory-policy noeviction (the ops/infra.sh default): evicting `:users` alone would lift
// every buyer's limit, `:orders` alone would make release give nothing back.
import type { Cluster, Redis } from 'ioredis';
import type { GateDecision, GateHoldings, GateSale, StockGate } from '../../engine/sales/ports.ts';
import { checkDueLimit, checkGateAttempt, checkGateLoad, GATE_HOLD_AFTER_LOAD_MS, type GateAttempt } from '../memory/stock-gate.ts';

// decide's replies.
const ADMIT = 1;
const SOLD_OUT = 2;
const LIMIT_REACHED = 3;
const NOT_OPEN = 4;
const CLOSED = 5;
const UNKNOWN = 6;
const DUPLICATE_ADMIT = 7;
const DUPLICATE_SOLD_OUT = 8;
const DUPLICATE_LIMIT_REACHED = 9;

const REPLIES: Record<number, GateDecision> = {
  [ADMIT]: { outcome: 'admit' },
  [SOLD_OUT]: { outcome: 'sold_out' },
  [LIMIT_REACHED]: { outcome: 'limit_reached' },
  [NOT_OPEN]: { outcome: 'not_open' },
  [CLOSED]: { outcome: 'closed' },
  [UNKNOWN]: { outcome: 'unknown' },
  [DUPLICATE_ADMIT]: { outcome: 'duplicate', earlier: 'admit' },
  [DUPLICATE_SOLD_OUT]: { outcome: 'duplicate', earlier: 'sold_out' },
  [DUPLICATE_LIMIT_REACHED]: { outcome: 'duplicate', earlier: 'limit_reached' },
};

// KEYS meta, users, orders, pending; ARGV[1] stock, [2] perUserLimit, [3] startAt, [4] endAt,
// [5] retainUntil, [6] taken, [7] hold after load (ms), [8] n users, then n (user, units) pairs,
// then (order, user, units, payBy) quadruples to the end. Returns 1 if installed, 0 if it was installed already.
const LOAD = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dropAt = string.format('%d', math.max(tonumber(ARGV[5]), now + tonumber(ARGV[7])))
-- Without meta the sale is not installed: leftovers of a half-gone one must not mix in.
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
local users = tonumber(ARGV[8])
local i = 9
for _ = 1, users do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  redis.call('HSET', KEYS[3], ARGV[i], 'a:' .. ARGV[i + 2] .. ':' .. ARGV[i + 1])
  redis.call('ZADD', KEYS[4], ARGV[i + 3], ARGV[i])
  i = i + 4
end
redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'remaining', tonumber(ARGV[1]) - tonumber(ARGV[6]),
  'perUserLimit', ARGV[2], 'startAt', ARGV[3], 'endAt', ARGV[4], 'dropAt', dropAt)
for k = 1, 4 do redis.call('PEXPIREAT', KEYS[k], dropAt) end
return 1`;

// KEYS meta, users, orders, pending; ARGV[1] order, [2] user, [3] units, [4] now (caller's clock, ms), [5] payBy.
const DECIDE = `
local meta = redis.call('HMGET', KEYS[1], 'remaining', 'perUserLimit', 'startAt', 'endAt', 'dropAt')
if not meta[1] then return ${UNKNOWN} end
local earlier = redis.call('HGET', KEYS[3], ARGV[1])
if earlier then
  local kind = string.sub(earlier, 1, 1)
  if kind == 'a' then return ${DUPLICATE_ADMIT} end
  if kind == 's' then return ${DUPLICATE_SOLD_OUT} end
  return ${DUPLICATE_LIMIT_REACHED}
end
local now = tonumber(ARGV[4])
if now < tonumber(meta[3]) then return ${NOT_OPEN} end
if now >= tonumber(meta[4]) then return ${CLOSED} end
local units = tonumber(ARGV[3])
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
local refusal = nil
if held + units > tonumber(meta[2]) then refusal = 'l'
elseif tonumber(meta[1]) < units then refusal = 's' end
if refusal then
  redis.call('HSET', KEYS[3], ARGV[1], refusal)
  redis.call('PEXPIREAT', KEYS[3], meta[5])
  return refusal == 'l' and ${LIMIT_REACHED} or ${SOLD_OUT}
end
redis.call('HINCRBY', KEYS[1], 'remaining', -units)
redis.call('HINCRBY', KEYS[2], ARGV[2], units)
redis.call('HSET', KEYS[3], ARGV[1], 'a:' .. ARGV[3] .. ':' .. ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
for k = 2, 4 do redis.call('PEXPIREAT', KEYS[k], meta[5]) end
return ${ADMIT}`;

// KEYS meta, users, orders, pending; ARGV[1] order. Returns 1 if the units came back, 0 if the order
// was not pending (released or settled already, refused, unknown).
const RELEASE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if not redis.call('ZSCORE', KEYS[4], ARGV[1]) then return 0 end
local record = redis.call('HGET', KEYS[3], ARGV[1])
local units, user = string.match(record or '', '^a:(%d+):(.*)$')
if not units then return redis.error_reply('stock gate: pending order ' .. ARGV[1] .. ' has no admitted record') end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
local meta = redis.call('HMGET', KEYS[1], 'remaining', 'stock')
-- Capped at the stock: holdings that listed a pending order outside taken must not mint units.
redis.call('HSET', KEYS[1], 'remaining', math.min(tonumber(meta[2]), tonumber(meta[1]) + tonumber(units)))
if redis.call('HINCRBY', KEYS[2], user, -tonumber(units)) <= 0 then redis.call('HDEL', KEYS[2], user) end
return 1`;

type Arg = string | number;
type ScriptCaller = {
  lanternGateLoad(...args: Arg[]): Promise<number>;
  lanternGateDecide(...args: Arg[]): Promise<number>;
  lanternGateRelease(...args: Arg[]): Promise<number>;
};

export interface RedisStockGateOptions {
  /** Prepended to every key, e.g. 'lantern:'. Must not contain '{' or '}' (they would move the hash tag). */
  keyPrefix: string;
}

export class RedisStockGate implements StockGate {
  readonly keyPrefix: string;
  private readonly scripts: ScriptCaller;

  constructor(private readonly client: Redis | Cluster, options: RedisStockGateOptions) {
    const { keyPrefix } = options;
    if (typeof keyPrefix !== 'string' || keyPrefix === '') throw new TypeError('RedisStockGate option keyPrefix: a non-empty string is required (e.g. "lantern:")');
    if (/[{}]/.test(keyPrefix)) throw new TypeError(`RedisStockGate option keyPrefix: must not contain '{' or '}' (got ${JSON.stringify(keyPrefix)})`);
    this.keyPrefix = keyPrefix;
    // Names are Lantern-specific because defineCommand installs them on the shared, injected client.
    client.defineCommand('lanternGateLoad', { lua: LOAD, numberOfKeys: 4 });
    client.defineCommand('lanternGateDecide', { lua: DECIDE, numberOfKeys: 4 });
    client.defineCommand('lanternGateRelease', { lua: RELEASE, numberOfKeys: 4 });
    this.scripts = client as unknown as ScriptCaller;
  }

  /** The sale's keys: meta, users, orders, pending (exposed for tests and operators). */
  keys(saleId: string): [meta: string, users: string, orders: string, pending: string] {
    const base = `${this.keyPrefix}{sale:${saleId}}`;
    return [`${base}:meta`, `${base}:users`, `${base}:orders`, `${base}:pending`];
  }

  async load(sale: GateSale, holdings: GateHoldings): Promise<void> {
    checkGateLoad(sale, holdings);
    const users = holdings.users.flatMap(({ user, units }) => [user, units]);
    const pending = holdings.pending.flatMap(({ order, user, units, payBy }) => [order, user, units, payBy]);
    await this.scripts.lanternGateLoad(...this.keys(sale.id), sale.stock, sale.perUserLimit, sale.startAt, sale.endAt,
      sale.retainUntil, holdings.taken, GATE_HOLD_AFTER_LOAD_MS, holdings.users.length, ...users, ...pending);
  }

  async decide(saleId: string, attempt: GateAttempt): Promise<GateDecision> {
    checkGateAttempt(saleId, attempt);
    const { order, user, units, now, payBy } = attempt;
    const reply = Number(await this.scripts.lanternGateDecide(...this.keys(saleId), order, user, units, now, payBy));
    const decision = REPLIES[reply];
    if (!decision) throw new Error(`redis stock gate decide ${saleId}: unexpected reply ${reply}`);
    return { ...decision }; // a copy: callers may keep or change what they are given
  }

  async release(saleId: string, order: string): Promise<void> {
    await this.scripts.lanternGateRelease(...this.keys(saleId), order);
  }

  async settle(saleId: string, order: string): Promise<void> {
    await this.client.zrem(this.keys(saleId)[3], order);
  }

  async due(saleId: string, now: number, limit: number): Promise<string[]> {
    checkDueLimit(limit);
    if (limit === 0) return [];
    return this.client.zrangebyscore(this.keys(saleId)[3], '-inf', now, 'LIMIT', 0, limit);
  }

  async remaining(saleId: string): Promise<number | undefined> {
    const remaining = await this.client.hget(this.keys(saleId)[0], 'remaining');
    return remaining === null ? undefined : Number(remaining);
  }

  async drop(saleId: string): Promise<void> {
    await this.client.del(...this.keys(saleId));
  }
}
