// GCRA rate limiting on Redis: one key per (user, limit), so a user's devices on every gateway
// draw from the same bucket. Key: `${keyPrefix}{u:<id>}:rl:<name>` (the `{u:<id>}` hash tag puts
// it in the user's slot, next to their presence key). The value is the theoretical arrival time;
// the key PEXPIREs when the bucket would be full again, so idle users cost nothing. One Lua
// script per take, on Redis' clock (TIME), so gateways and workers with skewed clocks agree.
import type { Cluster, Redis } from 'ioredis';
import type { RateLimiter } from '../../engine/ports.ts';
import { checkRateLimiterOptions, type RateLimiterOptions } from '../memory/rate-limiter.ts';

// KEYS[1] bucket; ARGV[1] interval ms (float); ARGV[2] burst; ARGV[3] cost. Returns 0 or ms to wait.
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local nextTat = tat + tonumber(ARGV[3]) * interval
local over = nextTat - now - tonumber(ARGV[2]) * interval
if over > 0 then return math.ceil(over) end
redis.call('SET', KEYS[1], string.format('%.3f', nextTat), 'PX', math.max(1, math.ceil(nextTat - now)))
return 0`;

export interface RedisRateLimiterOptions extends RateLimiterOptions {
  /** Prepended to every key, e.g. 'lantern:'. Must not contain '{' or '}'. */
  keyPrefix: string;
  /** Names the limit in the key (e.g. 'send'). */
  name: string;
}

type TakeCaller = { lanternRateTake(key: string, interval: number, burst: number, cost: number): Promise<number> };

export class RedisRateLimiter implements RateLimiter {
  readonly ratePerSec: number;
  readonly burst: number;
  private readonly intervalMs: number;

  constructor(private readonly client: Redis | Cluster, private readonly options: RedisRateLimiterOptions) {
    checkRateLimiterOptions(options);
    if (/[{}]/.test(options.keyPrefix) || /[{}]/.test(options.name)) throw new TypeError('RedisRateLimiter keyPrefix and name must not contain { or }');
    ({ ratePerSec: this.ratePerSec, burst: this.burst } = options);
    this.intervalMs = 1000 / options.ratePerSec;
    client.defineCommand('lanternRateTake', { lua: TAKE, numberOfKeys: 1 });
  }

  key(id: string): string {
    return `${this.options.keyPrefix}{u:${id}}:rl:${this.options.name}`;
  }

  async take(id: string, cost = 1): Promise<number> {
    return Number(await (this.client as unknown as TakeCaller).lanternRateTake(this.key(id), this.intervalMs, this.burst, cost));
  }
}
