// GCRA rate limiting in process (embedded mode, unit tests). Each key keeps its theoretical
// arrival time (TAT): the bucket is full when TAT <= now, and each token pushes TAT one emission
// interval further. A take is allowed while TAT stays within `burst` intervals of now.
import type { Clock, RateLimiter } from '../../engine/ports.ts';
import { systemClock } from '../../engine/ports.ts';

export interface RateLimiterOptions {
  ratePerSec: number;
  burst: number;
}

export function checkRateLimiterOptions({ ratePerSec, burst }: RateLimiterOptions): void {
  if (!(ratePerSec > 0) || !Number.isFinite(ratePerSec)) throw new RangeError(`rate limiter ratePerSec must be a positive number (got ${ratePerSec})`);
  if (!Number.isSafeInteger(burst) || burst < 1) throw new RangeError(`rate limiter burst must be an integer >= 1 (got ${burst})`);
}

export class MemoryRateLimiter implements RateLimiter {
  readonly ratePerSec: number;
  readonly burst: number;
  private readonly tat = new Map<string, number>();
  private readonly intervalMs: number;

  constructor(options: RateLimiterOptions, private readonly clock: Clock = systemClock) {
    checkRateLimiterOptions(options);
    ({ ratePerSec: this.ratePerSec, burst: this.burst } = options);
    this.intervalMs = 1000 / options.ratePerSec;
  }

  async take(key: string, cost = 1): Promise<number> {
    const now = this.clock.now();
    const tat = Math.max(this.tat.get(key) ?? now, now);
    const next = tat + cost * this.intervalMs;
    const over = next - now - this.burst * this.intervalMs;
    if (over > 0) return Math.ceil(over);
    this.tat.set(key, next);
    if (this.tat.size > 10_000) this.prune(now);
    return 0;
  }

  /** Full buckets carry no information. */
  private prune(now: number): void {
    for (const [key, tat] of this.tat) if (tat <= now) this.tat.delete(key);
  }
}
