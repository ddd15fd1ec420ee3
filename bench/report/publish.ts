// After a bench writes its results file: the summary and the command that produced it go into
// the file, the chart is written beside it (<same name>.svg), and BENCHMARKS.md is regenerated
// from the newest file of each scenario in that folder.
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { newestPerScenario, renderBenchmarksMd, type ResultsFile } from './benchmarks-md.ts';
import { summaryOf } from './summarize.ts';
import { renderChart } from './svg-chart.ts';
import type { ScenarioSummary } from './summary.ts';

export interface Published { file: string; svg: string | null; summary: ScenarioSummary | null }

function subtitleOf(body: Record<string, unknown>): string {
  const m = (body['machine'] ?? {}) as { cpus?: { model?: string; count?: number } };
  const commit = typeof body['commit'] === 'string' ? body['commit'].slice(0, 7) : '?';
  return `${String(body['date'] ?? '').slice(0, 19).replace('T', ' ')} UTC · commit ${commit} · ${m.cpus?.count ?? '?'} × ${m.cpus?.model ?? 'unknown CPU'}`;
}

/**
 * Adds summary and command to the file (when missing) and writes its chart. `gate` may fill the
 * summary's thresholds (SLO gates) before it is written.
 */
export async function publishResults(file: string, command: string | null, gate?: (summary: ScenarioSummary) => void): Promise<Published> {
  const body = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  const summary = summaryOf(body);
  if (summary) gate?.(summary);
  if (summary) body['summary'] = summary;
  if (command && !body['command']) body['command'] = command;
  await writeFile(file, JSON.stringify(body, null, 2) + '\n');
  if (!summary) return { file, svg: null, summary: null };
  const svg = file.replace(/\.json$/, '.svg');
  await writeFile(svg, renderChart(summary, subtitleOf(body)));
  return { file, svg, summary };
}

export async function readResultsDir(dir: string): Promise<ResultsFile[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  const files: ResultsFile[] = [];
  for (const name of names) {
    try {
      files.push({ name, body: JSON.parse(await readFile(join(dir, name), 'utf8')) as Record<string, unknown> });
    } catch (err) {
      console.error(`bench report: skipping ${name}: ${(err as Error).message}`);
    }
  }
  return files;
}

/** Regenerates `mdPath` from the newest results of each scenario in `dir`, charts included. */
export async function writeBenchmarksMd(dir: string, mdPath: string): Promise<void> {
  const files = await readResultsDir(dir);
  // Charts for the files the page shows; older files keep whatever chart their own run wrote.
  for (const { file, summary } of newestPerScenario(files)) {
    await writeFile(join(dir, file.name.replace(/\.json$/, '.svg')), renderChart(summary, subtitleOf(file.body)));
  }
  const linkDir = relative(join(mdPath, '..'), dir) || '.';
  await writeFile(mdPath, renderBenchmarksMd(files, linkDir));
  console.log(`bench report: ${basename(mdPath)} from ${files.length} results files in ${linkDir}`);
}
