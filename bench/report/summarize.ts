// The summary of a results file. Scenarios written since the capacity suite carry their own
// `summary`; the older benches (echo/chat-1to1/all, distributed, redenvelope, flashsale,
// connections) have their figures under `results`, and their summary is derived here from
// those, so every results file gets a chart and a BENCHMARKS.md table the same way.
import { withRatios, type ScenarioSummary, type SummaryRow } from './summary.ts';

type Phase = Record<string, unknown>;
interface ResultsBody { settings?: { scenario?: string }; results?: Record<string, Phase>; summary?: ScenarioSummary }

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const failed = (name: string, p: Phase): SummaryRow => ({ name, value: null, note: String(p['error']).split('\n')[0]!.slice(0, 120) });

function row(name: string, p: Phase, value: unknown, p99: unknown, note?: string): SummaryRow {
  if ('error' in p) return failed(name, p);
  return { name, value: num(value), p99Ms: num(p99), ...(note ? { note } : {}) };
}

function chatPhases(scenario: string, results: Record<string, Phase>): ScenarioSummary {
  const rows = Object.entries(results).map(([name, p]) => row(name, p, p['deliveriesPerSec'] ?? p['msgsPerSec'], p['p99Ms']));
  const ceiling = 'echo-max' in results ? 'echo-max' : null;
  return {
    scenario, title: `${scenario}: embedded Lantern chat next to raw uWebSockets.js echo`, metric: 'msgs/s',
    ceiling, rows: withRatios(rows, ceiling), thresholds: [], ...primaryOf(rows, ['chat-1to1-max', 'echo-max']),
  };
}

/** The first of `names` that ran, as the summary's primary row. */
function primaryOf(rows: SummaryRow[], names: string[]): { primary?: string } {
  const found = names.find((n) => rows.some((r) => r.name === n));
  return found ? { primary: found } : {};
}

function distributed(results: Record<string, Phase>): ScenarioSummary {
  const rows = Object.entries(results).map(([name, p]) => row(name, p, p['deliveriesPerSec'] ?? p['msgsPerSec'] ?? p['opsPerSec'], p['p99Ms']));
  // Mixed units (messages, group copies, raw CQL operations): no single ceiling to divide by;
  // the file's `ratios` hold the meaningful ones.
  return { scenario: 'distributed', title: 'distributed Lantern next to embedded and the raw Cassandra driver', metric: 'msgs/s · copies/s · CQL ops/s', ceiling: null, rows, thresholds: [], ...primaryOf(rows, ['distributed-1to1-max']) };
}

function burst(scenario: 'redenvelope' | 'flashsale', results: Record<string, Phase>): ScenarioSummary {
  const ceiling = scenario === 'redenvelope' ? 'grab-ceiling' : 'reserve-ceiling';
  const rows = Object.entries(results).map(([name, p]) =>
    name === ceiling ? row(name, p, p['decisionsPerSec'], p['p99Ms'], 'Redis decisions alone')
      : row(name, p, scenario === 'redenvelope' ? p['grabsPerSec'] : p['attemptsPerSec'], p['p99Ms']));
  return {
    scenario,
    title: scenario === 'redenvelope' ? 'red envelopes: grabs/s next to the Redis grab-decision ceiling' : 'flash sale: buy attempts answered/s next to the Redis reserve ceiling',
    metric: scenario === 'redenvelope' ? 'grabs/s' : 'attempts/s', ceiling, rows: withRatios(rows, ceiling), thresholds: [],
    ...primaryOf(rows, [`embedded-${scenario}`, `distributed-${scenario}`]),
  };
}

function connections(results: Record<string, Phase>): ScenarioSummary {
  const rows = Object.entries(results).map(([name, p]) => {
    if ('error' in p) return failed(name, p);
    const connect = (p['connect'] ?? {}) as Phase;
    const perConn = num(((p['serverMemory'] ?? {}) as Phase)['rssPerConnectionBytes']);
    const note = `${p['held']} held${perConn !== null && perConn > 0 ? `, ${(perConn / 1024).toFixed(1)} KiB RSS each` : ''}`;
    return row(name, p, connect['perSec'], connect['p99Ms'], note);
  });
  // Each mode's raw run holds as many sockets as its Lantern run: the embedded raw one is the ceiling.
  const ceiling = 'embedded-raw' in results ? 'embedded-raw' : 'distributed-raw' in results ? 'distributed-raw' : null;
  return { scenario: 'connections', title: 'connection scale: authenticated connects/s and memory per held connection', metric: 'connects/s', ceiling, rows: withRatios(rows, ceiling), thresholds: [], ...primaryOf(rows, ['embedded-lantern', 'distributed-lantern']) };
}

/** The file's own summary, or one derived from an older bench's results; null for an unknown shape. */
export function summaryOf(body: ResultsBody): ScenarioSummary | null {
  if (body.summary) return body.summary;
  const scenario = body.settings?.scenario;
  const results = body.results;
  if (!scenario || !results) return null;
  // 'all' was echo-chat's name before the capacity suite made 'all' the whole set.
  if (scenario === 'all' || scenario === 'echo-chat') return chatPhases('echo-chat', results);
  if (scenario === 'echo' || scenario === 'chat-1to1') return chatPhases(scenario, results);
  if (scenario === 'distributed') return distributed(results);
  if (scenario === 'redenvelope' || scenario === 'flashsale') return burst(scenario, results);
  if (scenario === 'connections') return connections(results);
  return null;
}
