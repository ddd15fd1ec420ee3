// The results file: what ran, where, on which commit, and the figures of every phase.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { arch, cpus, loadavg, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { LoadRunResult } from './loadgen/coordinator.ts';

export interface PhaseFigures {
  scenario: string;
  mode: 'max' | 'rate';
  targetRatePerSec: number;
  clients: number;
  workers: number;
  msgsPerSec: number;
  arrivedPerSec: number;
  /** chat-group only: copies reaching other members per second (msgsPerSec counts messages; latency is per copy). */
  deliveriesPerSec?: number;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  meanMs: number | null;
  sent: number;
  delivered: number;
  errors: number;
  skipped: number;
  undelivered: number;
  errorSamples: string[];
  /** Average cores busy during the phase (warm-up and drain included): the server's process and the generator's. */
  cores: { server: number; generator: number };
}

/** A phase that could not run (server failed to start, setup failed, ...). */
export interface PhaseFailure { error: string }

export const REPO_ROOT = new URL('..', import.meta.url);

export function figuresOf(r: LoadRunResult): PhaseFigures {
  const ms = (v: number): number | null => (Number.isFinite(v) ? Math.round(v * 1000) / 1000 : null);
  return {
    scenario: r.scenario, mode: r.mode, targetRatePerSec: Math.round(r.targetRatePerSec), clients: r.clients, workers: r.workers,
    // Groups: a message counts once (its send completed); its copies are deliveries.
    msgsPerSec: Math.round(r.scenario === 'chat-group' ? r.completedPerSec : r.msgsPerSec),
    arrivedPerSec: Math.round(r.arrivedPerSec),
    ...(r.scenario === 'chat-group' ? { deliveriesPerSec: Math.round(r.msgsPerSec) } : {}),
    p50Ms: ms(r.p50Ms), p90Ms: ms(r.p90Ms), p99Ms: ms(r.p99Ms), maxMs: ms(r.maxMs), meanMs: ms(r.meanMs),
    sent: r.sent, delivered: r.delivered, errors: r.errors, skipped: r.skipped, undelivered: r.undelivered,
    errorSamples: r.errorSamples,
    cores: {
      server: Math.round((r.cpu.coordinatorMs / r.cpu.wallMs) * 100) / 100,
      generator: Math.round((r.cpu.workersMs / r.cpu.wallMs) * 100) / 100,
    },
  };
}

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('package.json', REPO_ROOT), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

/** HEAD's commit, or 'unknown' outside a git checkout (the reason goes to stderr). */
export function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    console.error(`bench: commit unknown (${(err as Error).message.split('\n')[0]})`);
    return 'unknown';
  }
}

export function machine(): Record<string, unknown> {
  const list = cpus();
  return {
    cpus: { model: list[0]?.model ?? 'unknown', count: list.length },
    memBytes: totalmem(),
    node: process.version,
    os: `${platform()} ${release()} ${arch()}`,
    // Other work on the machine skews every figure; a load average well above 0 at the start says so.
    loadAvg1m: Math.round(loadavg()[0]! * 100) / 100,
  };
}

/** Writes `<dir>/<scenario>-<ISO date>.json` (colons and dots made file-name safe). */
export async function writeResults(dir: string, scenario: string, date: Date, body: object): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${scenario}-${date.toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, JSON.stringify(body, null, 2) + '\n');
  return file;
}

/** A short fixed-width table of the phases. */
export function formatTable(phases: Record<string, PhaseFigures | PhaseFailure>): string {
  const head = ['phase', 'mode', 'target/s', 'msgs/s', 'arrived/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors', 'undeliv.', 'cores srv/gen'];
  const rows = Object.entries(phases).map(([name, p]) => {
    if ('error' in p) return [name, 'FAILED', p.error.split('\n')[0]!.slice(0, 80)];
    const n = (v: number | null): string => (v === null ? '-' : v < 10 ? v.toFixed(2) : v.toFixed(1));
    return [name, p.mode, p.mode === 'rate' ? String(p.targetRatePerSec) : '-', String(p.msgsPerSec), String(p.arrivedPerSec),
      n(p.p50Ms), n(p.p90Ms), n(p.p99Ms), n(p.maxMs), String(p.errors), String(p.undelivered),
      `${p.cores.server.toFixed(2)}/${p.cores.generator.toFixed(2)}`];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r.length === head.length ? (r[i] ?? '').length : 0))));
  const line = (cells: string[]): string => cells.map((c, i) => (cells.length === head.length ? c.padEnd(widths[i]!) : c)).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}
