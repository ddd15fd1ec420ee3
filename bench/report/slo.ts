// SLO gates, as capacity engineers write them for k6-style runs: a comma-separated list of
// `<metric><op><number>` (ops: < <= > >=), e.g. "p99_ms<250,error_rate<0.01,connected>=0.99".
// The same syntax is parsed by the Locust scenarios (bench/locust/lantern_slo.py); a breach
// makes the run exit non-zero.
import type { ThresholdResult } from './summary.ts';

const EXPRESSION = /^\s*([a-z][a-z0-9_]*)\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$/;

export interface Threshold { expression: string; metric: string; op: '<' | '<=' | '>' | '>='; limit: number }

export function parseThresholds(spec: string | undefined): Threshold[] {
  if (spec === undefined || spec.trim() === '') return [];
  return spec.split(',').map((part) => {
    const m = EXPRESSION.exec(part);
    if (!m) throw new Error(`SLO "${part.trim()}" is not <metric><op><number> with op one of < <= > >= (e.g. p99_ms<250)`);
    return { expression: `${m[1]}${m[2]}${m[3]}`, metric: m[1]!, op: m[2] as Threshold['op'], limit: Number(m[3]) };
  });
}

/** A metric the run did not produce is a breach: a gate that cannot be checked must not pass. */
export function evaluateThresholds(thresholds: Threshold[], figures: Record<string, number | null | undefined>): ThresholdResult[] {
  return thresholds.map((t) => {
    const v = figures[t.metric];
    const actual = typeof v === 'number' && Number.isFinite(v) ? v : null;
    const ok = actual !== null && (t.op === '<' ? actual < t.limit : t.op === '<=' ? actual <= t.limit : t.op === '>' ? actual > t.limit : actual >= t.limit);
    return { expression: t.expression, metric: t.metric, actual, ok };
  });
}
