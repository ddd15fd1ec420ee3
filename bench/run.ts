// npm run bench -- <scenario> [options]   (npm run bench -- --help lists them)
// Runs one scenario, or `all` of them in turn; every results file it writes gets its summary,
// the command that produced it, SLO gates (--slo) and an SVG chart beside it, and BENCHMARKS.md
// is regenerated from the newest file of each scenario. See bench/README.md.
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { runDistributedBench } from './distributed/main.ts';
import { runEchoChat } from './echo-chat-bench.ts';
import { ALL_SET, flagsOf, parseOptions, SMOKE_ARGS, USAGE, type Options, type Scenario } from './options.ts';
import { publishResults, writeBenchmarksMd } from './report/publish.ts';
import { evaluateThresholds, parseThresholds } from './report/slo.ts';
import type { ScenarioSummary } from './report/summary.ts';
import { REPO_ROOT } from './results-file.ts';
import { runConnectionsBench, runFlashSaleBench, runLocustBench, runPeersBench, runRedEnvelopeBench, runStormBench } from './runners.ts';

const DEFAULT_RESULTS = resolve(new URL('./results', import.meta.url).pathname);

async function runOne(o: Options, scenario: Exclude<Scenario, 'all' | 'report'>): Promise<number> {
  switch (scenario) {
    case 'echo-chat': case 'echo': case 'chat-1to1': return runEchoChat({ ...o, scenario });
    case 'distributed': return runDistributedBench(o);
    case 'redenvelope': return runRedEnvelopeBench(o);
    case 'flashsale': return runFlashSaleBench(o);
    case 'connections': return runConnectionsBench(o);
    case 'locust': return runLocustBench(o);
    case 'chat': case 'fanout': return runPeersBench(o, scenario);
    case 'connect-storm': case 'reconnect-storm': return runStormBench(o, scenario);
  }
}

async function resultsFiles(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => n.endsWith('.json')).map((n) => join(dir, n));
  } catch {
    return [];
  }
}

/**
 * Scenarios that evaluate --slo themselves (with their own metric names) fill summary.thresholds;
 * for the others the gates read the summary's primary row (else its first Lantern row): rate (its
 * value), p99_ms, ratio.
 */
function gate(summary: ScenarioSummary, slo: string | undefined): boolean {
  const thresholds = parseThresholds(slo);
  if (summary.thresholds.length === 0 && thresholds.length > 0) {
    const row = summary.rows.find((r) => r.name === summary.primary)
      ?? summary.rows.find((r) => r.name.includes('lantern')) ?? summary.rows.find((r) => r.name !== summary.ceiling);
    summary.thresholds = evaluateThresholds(thresholds, { rate: row?.value, p99_ms: row?.p99Ms, ratio: row?.ratio });
  }
  for (const t of summary.thresholds) console.log(`SLO ${t.expression}: ${t.ok ? 'ok' : `BREACHED (measured ${t.actual ?? 'nothing'})`}`);
  return summary.thresholds.every((t) => t.ok);
}

/** The command as it can be pasted back into a shell. */
function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

async function main(argv: string[]): Promise<number> {
  const o = parseOptions(argv);
  const benchmarksMd = o.out === DEFAULT_RESULTS ? new URL('BENCHMARKS.md', REPO_ROOT).pathname : join(o.out, 'BENCHMARKS.md');
  if (o.scenario === 'report') {
    await writeBenchmarksMd(o.out, benchmarksMd);
    return 0;
  }
  parseThresholds(o.slo); // a malformed gate fails before any load is generated
  const command = `npm run bench -- ${argv.map(shellQuote).join(' ')}`.trim();
  let code = 0;
  for (const scenario of o.scenario === 'all' ? ALL_SET : [o.scenario]) {
    if (o.scenario === 'all') console.log(`\n=== ${scenario} ===`);
    const before = new Set(await resultsFiles(o.out));
    let scenarioCode: number;
    try {
      // Each scenario parses the flags again behind its smoke presets, so the given flags win.
      const smokeArgs = o.smoke ? SMOKE_ARGS[scenario as keyof typeof SMOKE_ARGS] ?? [] : [];
      const so = o.scenario === 'all' ? parseOptions([scenario, ...smokeArgs, ...flagsOf(argv)]) : o.smoke ? parseOptions([...smokeArgs, ...argv]) : o;
      scenarioCode = await runOne(so, scenario);
    } catch (err) {
      console.error(`${scenario}: ${err instanceof Error ? err.message : String(err)}`);
      scenarioCode = 1;
    }
    for (const file of (await resultsFiles(o.out)).filter((f) => !before.has(f))) {
      const published = await publishResults(file, command, (s) => gate(s, o.slo));
      if (published.svg) console.log(`chart: ${published.svg}`);
      if (published.summary && !published.summary.thresholds.every((t) => t.ok)) scenarioCode = Math.max(scenarioCode, 1);
    }
    code = Math.max(code, scenarioCode);
  }
  await writeBenchmarksMd(o.out, benchmarksMd);
  return code;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  console.error(USAGE);
  process.exitCode = 2;
});
