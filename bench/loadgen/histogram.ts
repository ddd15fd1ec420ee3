// Latency histogram with logarithmic buckets (HDR-style): constant memory whatever the
// sample count, a bounded relative error, and cheap merging across worker processes.

/** Plain-data form sent over IPC: only the non-empty buckets, as [index, count] pairs. */
export interface SerializedHistogram {
  lowestMs: number;
  highestMs: number;
  precision: number;
  buckets: Array<[number, number]>;
  count: number;
  minMs: number;
  maxMs: number;
  sumMs: number;
}

export interface HistogramOptions {
  /** Values at or below this land in the first bucket (default 1 µs). */
  lowestMs?: number;
  /** Values above this are clamped into the last bucket; max still records them exactly (default 10 min). */
  highestMs?: number;
  /** Relative width of a bucket: a reported percentile is within this fraction of the true sample (default 1%). */
  precision?: number;
}

const DEFAULT_LOWEST_MS = 0.001;
const DEFAULT_HIGHEST_MS = 600_000;
const DEFAULT_PRECISION = 0.01;

export class LatencyHistogram {
  readonly lowestMs: number;
  readonly highestMs: number;
  readonly precision: number;
  private readonly counts: Float64Array;
  private readonly logBase: number;
  private total = 0;
  private min = Infinity;
  private max = -Infinity;
  private sum = 0;

  constructor(options: HistogramOptions = {}) {
    this.lowestMs = options.lowestMs ?? DEFAULT_LOWEST_MS;
    this.highestMs = options.highestMs ?? DEFAULT_HIGHEST_MS;
    this.precision = options.precision ?? DEFAULT_PRECISION;
    if (!(this.lowestMs > 0) || !(this.highestMs > this.lowestMs)) throw new RangeError('histogram needs 0 < lowestMs < highestMs');
    if (!(this.precision > 0 && this.precision < 1)) throw new RangeError('histogram precision must be in (0, 1)');
    this.logBase = Math.log1p(this.precision);
    this.counts = new Float64Array(Math.ceil(Math.log(this.highestMs / this.lowestMs) / this.logBase) + 1);
  }

  get count(): number { return this.total; }
  get minMs(): number { return this.total === 0 ? NaN : this.min; }
  get maxMs(): number { return this.total === 0 ? NaN : this.max; }
  get meanMs(): number { return this.total === 0 ? NaN : this.sum / this.total; }

  /** Bucket i holds values in (lowest·(1+p)^(i-1), lowest·(1+p)^i]. */
  private indexOf(ms: number): number {
    if (ms <= this.lowestMs) return 0;
    const i = Math.ceil(Math.log(ms / this.lowestMs) / this.logBase);
    return Math.min(i, this.counts.length - 1);
  }

  private upperBoundOf(index: number): number {
    return this.lowestMs * Math.exp(index * this.logBase);
  }

  record(ms: number): void {
    // Clock steps can make a cross-process latency slightly negative; count it as ~0
    // rather than losing the sample.
    const v = Number.isFinite(ms) && ms > 0 ? ms : 0;
    this.counts[this.indexOf(v)]! += 1;
    this.total += 1;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  /**
   * The smallest recorded value such that at least p% of samples are <= it, reported as
   * its bucket's upper bound clamped to [min, max] (so p=0 is min and p=100 is max).
   * NaN when empty.
   */
  percentile(p: number): number {
    if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be in [0, 100], got ${p}`);
    if (this.total === 0) return NaN;
    // The extremes are known exactly; no need to report a bucket bound for them.
    if (p === 0) return this.min;
    const rank = Math.ceil((p / 100) * this.total);
    if (rank >= this.total) return this.max;
    const last = this.counts.length - 1;
    let seen = 0;
    for (let i = 0; i < last; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(Math.max(this.upperBoundOf(i), this.min), this.max);
    }
    return this.max; // the overflow bucket has no meaningful bound
  }

  merge(other: LatencyHistogram | SerializedHistogram): void {
    const data = other instanceof LatencyHistogram ? other.toJSON() : other;
    if (data.lowestMs !== this.lowestMs || data.highestMs !== this.highestMs || data.precision !== this.precision) {
      throw new RangeError('cannot merge histograms with different bucket layouts');
    }
    for (const [index, n] of data.buckets) this.counts[index]! += n;
    this.total += data.count;
    this.sum += data.sumMs;
    if (data.count > 0) {
      if (data.minMs < this.min) this.min = data.minMs;
      if (data.maxMs > this.max) this.max = data.maxMs;
    }
  }

  toJSON(): SerializedHistogram {
    const buckets: Array<[number, number]> = [];
    for (let i = 0; i < this.counts.length; i++) {
      const n = this.counts[i]!;
      if (n > 0) buckets.push([i, n]);
    }
    return {
      lowestMs: this.lowestMs, highestMs: this.highestMs, precision: this.precision,
      buckets, count: this.total,
      // JSON has no Infinity: an empty histogram sends 0s, and count 0 tells merge to ignore them.
      minMs: this.total === 0 ? 0 : this.min, maxMs: this.total === 0 ? 0 : this.max, sumMs: this.sum,
    };
  }

  static fromJSON(data: SerializedHistogram): LatencyHistogram {
    const h = new LatencyHistogram({ lowestMs: data.lowestMs, highestMs: data.highestMs, precision: data.precision });
    h.merge(data);
    return h;
  }
}
