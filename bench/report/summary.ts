// The part of every results file that the chart, BENCHMARKS.md and the CI smoke test read,
// whoever generated the load (the Node generator or Locust): one headline figure per row,
// the row that is this machine's ceiling, each row's ratio to it, and the SLO gates evaluated.
export interface SummaryRow {
  /** What ran: 'raw-uws', 'socketio', 'centrifugo', 'lantern-embedded', 'lantern-distributed', or a phase name. */
  name: string;
  /** The headline figure in `ScenarioSummary.metric` units; null when the phase failed. */
  value: number | null;
  p99Ms?: number | null;
  /** value / the ceiling row's value, measured in the same run; null when either is missing. */
  ratio?: number | null;
  /** Why value is null, or what limits it. */
  note?: string;
}

export interface ThresholdResult {
  /** As written, e.g. "p99_ms<250". */
  expression: string;
  metric: string;
  /** The measured figure; null when the run produced none (counts as a breach). */
  actual: number | null;
  ok: boolean;
}

export interface ScenarioSummary {
  scenario: string;
  /** A line for the chart's title. */
  title: string;
  /** Unit of every row's value, e.g. 'deliveries/s', 'connects/s'. */
  metric: string;
  /** Name of the row every ratio divides by (the raw uWebSockets.js ceiling), or null if none ran. */
  ceiling: string | null;
  rows: SummaryRow[];
  /** The row generic SLO gates (rate, p99_ms, ratio) read: the Lantern figure the scenario is about. */
  primary?: string;
  /** Empty when no SLO gate was asked for. */
  thresholds: ThresholdResult[];
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;

/** Fills each row's ratio against the ceiling row (which gets 1). */
export function withRatios(rows: SummaryRow[], ceiling: string | null): SummaryRow[] {
  const base = rows.find((r) => r.name === ceiling)?.value ?? null;
  return rows.map((r) => ({ ...r, ratio: base !== null && base > 0 && r.value !== null ? round3(r.value / base) : null }));
}
