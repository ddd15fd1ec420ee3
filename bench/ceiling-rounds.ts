// What the raw-ceiling measurers (grab-ceiling.ts, reserve-ceiling.ts) share: `concurrency` callers
// working through `tasks` calls at once, each timed into a histogram; and rounds of that, after one
// untimed warm-up round, until enough call time is spent.
import { LatencyHistogram } from './loadgen/histogram.ts';

/**
 * Runs `call(k)` for k in [0, tasks) with `concurrency` in flight, recording each call's latency;
 * resolves the elapsed ms of the whole batch.
 */
export async function timedCalls(tasks: number, concurrency: number, histogram: LatencyHistogram, call: (k: number) => Promise<void>): Promise<number> {
  let next = 0;
  const caller = async (): Promise<void> => {
    for (let k = next++; k < tasks; k = next++) {
      const start = performance.now();
      await call(k);
      histogram.record(performance.now() - start);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, tasks) }, caller));
  return performance.now() - started;
}

export interface RoundsFigures {
  decisionsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Calls timed (the warm-up round is not). */
  ops: number;
  /** Timed rounds. */
  rounds: number;
}

/**
 * One warm-up round (JIT, script load, connection: checked by the round itself, not timed), then
 * rounds until `durationMs` of call time is spent. `round` resolves its timed ms.
 */
export async function timedRounds(round: (histogram: LatencyHistogram) => Promise<number>, opsPerRound: number, durationMs: number): Promise<RoundsFigures> {
  await round(new LatencyHistogram());
  const histogram = new LatencyHistogram();
  let spentMs = 0, rounds = 0;
  while (spentMs < durationMs) {
    spentMs += await round(histogram);
    rounds++;
  }
  const ops = rounds * opsPerRound;
  return { decisionsPerSec: Math.round(ops / (spentMs / 1000)), p50Ms: histogram.percentile(50), p99Ms: histogram.percentile(99), ops, rounds };
}
