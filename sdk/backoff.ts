// Jittered exponential backoff. "Full jitter": each delay is uniform in [0, ceiling], where the
// ceiling grows by `factor` per attempt up to `maxMs`. Spreading delays over the whole range
// keeps a fleet of clients that lost the same server from reconnecting in lockstep.

export interface BackoffOptions {
  /** Ceiling of the first delay. */
  readonly initialMs: number;
  /** Largest ceiling. */
  readonly maxMs: number;
  /** Growth of the ceiling per attempt. */
  readonly factor: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = Object.freeze({ initialMs: 250, maxMs: 30_000, factor: 2 });

/** Merge user options over the defaults and check them once; messages name the option. */
export function resolveBackoffOptions(opts: Partial<BackoffOptions> = {}): BackoffOptions {
  const merged: BackoffOptions = { ...DEFAULT_BACKOFF, ...opts };
  if (!(Number.isFinite(merged.initialMs) && merged.initialMs > 0)) {
    throw new TypeError(`backoff.initialMs must be a positive number, got ${String(merged.initialMs)}`);
  }
  if (!(Number.isFinite(merged.maxMs) && merged.maxMs >= merged.initialMs)) {
    throw new TypeError(`backoff.maxMs must be a number >= backoff.initialMs (${merged.initialMs}), got ${String(merged.maxMs)}`);
  }
  if (!(Number.isFinite(merged.factor) && merged.factor >= 1)) {
    throw new TypeError(`backoff.factor must be a number >= 1, got ${String(merged.factor)}`);
  }
  return Object.freeze(merged);
}

/** Upper bound of the delay before retry number `attempt` (0-based). */
export function backoffCeiling(attempt: number, opts: BackoffOptions): number {
  // factor ** attempt overflows to Infinity for large attempts; min() then yields maxMs.
  return Math.min(opts.maxMs, opts.initialMs * opts.factor ** attempt);
}

/** A full-jitter delay for retry number `attempt` (0-based), in whole milliseconds. */
export function jitteredDelay(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  return Math.floor(random() * backoffCeiling(attempt, opts));
}

/** Attempt counter over jitteredDelay; reset it after a success. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly opts: BackoffOptions = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next retry; advances the attempt counter. */
  next(): number {
    const delay = jitteredDelay(this.attempt, this.opts, this.random);
    this.attempt++;
    return delay;
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
