// The report layer: SLO gates parse and judge like k6 thresholds, summaries of the older benches'
// files carry same-run ratios, the chart is well-formed SVG with one bar per row, and BENCHMARKS.md
// shows the newest file of each scenario.
import t from 'tap';
import { renderBenchmarksMd } from './benchmarks-md.ts';
import { evaluateThresholds, parseThresholds } from './slo.ts';
import { summaryOf } from './summarize.ts';
import { renderChart } from './svg-chart.ts';
import type { ScenarioSummary } from './summary.ts';

t.test('SLO gates', async (t) => {
  const gates = parseThresholds('p99_ms<250, error_rate<=0.01,connected>=0.99');
  t.same(gates.map((g) => g.expression), ['p99_ms<250', 'error_rate<=0.01', 'connected>=0.99']);
  const judged = evaluateThresholds(gates, { p99_ms: 250, error_rate: 0.01, connected: 1 });
  t.same(judged.map((j) => j.ok), [false, true, true], 'p99 of exactly 250 breaks "<250"');
  const missing = evaluateThresholds(parseThresholds('gaps<1'), { p99_ms: 3 });
  t.same(missing, [{ expression: 'gaps<1', metric: 'gaps', actual: null, ok: false }], 'a figure the run did not produce is a breach');
  t.same(evaluateThresholds(parseThresholds('rate>0'), { rate: Number.NaN })[0]!.ok, false);
  t.same(parseThresholds(undefined), []);
  t.same(parseThresholds('  '), []);
  t.throws(() => parseThresholds('p99_ms=3'), /not <metric><op><number>/);
  t.throws(() => parseThresholds('p99_ms<fast'), /p99_ms<fast/);
});

const phase = (msgsPerSec: number, p99Ms: number) => ({ msgsPerSec, p99Ms });

t.test('summaries of the older benches divide by their same-run ceiling', async (t) => {
  const echoChat = summaryOf({ settings: { scenario: 'all' }, results: { 'echo-max': phase(80_000, 5), 'chat-1to1-max': phase(20_000, 40) } })!;
  t.equal(echoChat.scenario, 'echo-chat', "the old 'all' files are echo-chat");
  t.equal(echoChat.ceiling, 'echo-max');
  t.equal(echoChat.primary, 'chat-1to1-max', 'generic SLO gates read the Lantern phase, not the ceiling');
  t.same(echoChat.rows.map((r) => [r.name, r.value, r.ratio, r.p99Ms]), [['echo-max', 80_000, 1, 5], ['chat-1to1-max', 20_000, 0.25, 40]]);

  const red = summaryOf({
    settings: { scenario: 'redenvelope' },
    results: { 'grab-ceiling': { decisionsPerSec: 80_000, p99Ms: 9 }, 'embedded-redenvelope': { grabsPerSec: 24_000, p99Ms: 250 }, 'distributed-redenvelope': { error: 'cassandra did not start\nstack' } },
  })!;
  t.same(red.rows.map((r) => [r.name, r.value, r.ratio ?? null]), [['grab-ceiling', 80_000, 1], ['embedded-redenvelope', 24_000, 0.3], ['distributed-redenvelope', null, null]]);
  t.equal(red.primary, 'embedded-redenvelope');
  t.equal(red.rows[2]!.note, 'cassandra did not start', 'a failed phase keeps the first line of its error');

  const conn = summaryOf({
    settings: { scenario: 'connections' },
    results: {
      'embedded-lantern': { held: 100, connect: { perSec: 2_000, p99Ms: 80 }, serverMemory: { rssPerConnectionBytes: 5_120 } },
      'embedded-raw': { held: 100, connect: { perSec: 8_000, p99Ms: 40 }, serverMemory: { rssPerConnectionBytes: -3 } },
    },
  })!;
  t.equal(conn.ceiling, 'embedded-raw');
  t.same(conn.rows.map((r) => [r.value, r.ratio, r.note]), [[2_000, 0.25, '100 held, 5.0 KiB RSS each'], [8_000, 1, '100 held']]);

  const own: ScenarioSummary = { scenario: 'fanout', title: 't', metric: 'deliveries/s', ceiling: null, rows: [], thresholds: [] };
  t.equal(summaryOf({ summary: own, settings: { scenario: 'x' } }), own, "a file's own summary wins");
  t.equal(summaryOf({ settings: { scenario: 'unknown' }, results: {} }), null);
});

const summary: ScenarioSummary = {
  scenario: 'fanout', title: 'fan-out <groups> & peers', metric: 'deliveries/s', ceiling: 'raw-uws',
  rows: [
    { name: 'raw-uws', value: 100_000, ratio: 1, p99Ms: 3 },
    { name: 'lantern-embedded', value: 25_000, ratio: 0.25, p99Ms: 40 },
    { name: 'centrifugo', value: null, note: 'build failed' },
  ],
  thresholds: [{ expression: 'p99_ms<10', metric: 'p99_ms', actual: 40, ok: false }],
};

t.test('chart', async (t) => {
  const svg = renderChart(summary, 'today');
  t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  t.match(svg, /fan-out &lt;groups&gt; &amp; peers/, 'text is escaped');
  const bars = [...svg.matchAll(/<rect x="210" y="\d+" width="(\d+)"/g)].map((m) => Number(m[1]));
  t.equal(bars.length, 3, 'one bar per row');
  t.ok(bars[0]! > bars[1]! * 3.9 && bars[0]! < bars[1]! * 4.1, 'bars are proportional to the figures');
  t.equal(bars[2], 0, 'no bar for a row without a figure');
  t.match(svg, /25,000 deliveries\/s · ×0.25 · p99 40.0 ms/);
  t.match(svg, /no figure: build failed/);
  t.match(svg, /p99_ms&lt;10 BREACHED \(40\)/);
  t.equal((svg.match(/<text/g) ?? []).length, (svg.match(/<\/text>/g) ?? []).length, 'tags are closed');
});

t.test('BENCHMARKS.md shows the newest file of each scenario', async (t) => {
  const older = { name: 'fanout-1.json', body: { date: '2026-12-01T00:00:00Z', commit: 'aaaaaaa1', summary: { ...summary, rows: [{ name: 'raw-uws', value: 1 }] } } };
  const newer = { name: 'fanout-2.json', body: { date: '2026-12-02T00:00:00Z', commit: 'bbbbbbb2', command: 'npm run bench -- fanout', summary } };
  const echo = { name: 'all-0.json', body: { date: '2026-11-01T00:00:00Z', settings: { scenario: 'all' }, results: { 'echo-max': phase(10, 1) } } };
  const md = renderBenchmarksMd([newer, older, echo, { name: 'junk.json', body: {} }], 'bench/results');
  t.match(md, /## echo-chat[\s\S]*## fanout/, 'echo-chat comes first');
  t.match(md, /npm run bench -- fanout/);
  t.match(md, /\| lantern-embedded \| 25,000 \| 0.25 \| 40.0 \|/);
  t.match(md, /`p99_ms<10` \*\*breached\*\* \(40\)/);
  t.match(md, /!\[fanout\]\(bench\/results\/fanout-2.svg\)/);
  t.notMatch(md, /fanout-1/, 'the older file is not shown');
  t.match(md, /command was not recorded/, 'an old file says its command is unknown');

  const sizes = { name: 'fanout-3.json', body: { date: '2026-12-03T00:00:00Z', summary: { ...summary, ceiling: 'raw-uws@500', rows: [
    { name: 'raw-uws@10', value: 10, ratio: 1 }, { name: 'lantern-embedded@10', value: 5, ratio: 0.5 }, { name: 'raw-uws@500', value: 20, ratio: 1 },
  ] } } };
  const perSize = renderBenchmarksMd([sizes], '.');
  t.match(perSize, /\| ratio to raw-uws at the same size \|/, 'per-size ratios say so');
  t.match(perSize, /\| raw-uws@10 \(ceiling\) \|[\s\S]*\| raw-uws@500 \(ceiling\) \|/, 'each size has its ceiling row');
  t.notMatch(perSize, /lantern-embedded@10 \(ceiling\)/);
});
