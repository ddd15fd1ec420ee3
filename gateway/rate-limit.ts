// Per-connection token bucket: `ratePerSec` tokens refill continuously up to `burst`; each
// frame takes one. Checked before a frame is decoded so a flood costs almost nothing.

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(private readonly ratePerSec: number, private readonly burst: number, now: number) {
    this.tokens = burst;
    this.last = now;
  }

  /** Take one token: 0 when allowed, otherwise the ms until a token is available (>= 1). */
  take(now: number): number {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.ratePerSec) / 1000);
      this.last = now;
    }
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.ratePerSec));
  }
}
