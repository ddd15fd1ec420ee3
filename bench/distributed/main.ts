// `npm run bench -- distributed`: runs the distributed benchmark, writes
// bench/results/distributed-<ISO date>.json (version, commit, machine, settings, figures) and
// prints a summary. The run's phases and figures: scenario.ts and bench/README.md.
import type { Options } from '../options.ts';
import { gitCommit, machine, packageVersion, writeResults } from '../results-file.ts';
import { runDistributed, type DistributedOptions, type DistributedResults, type Phase } from './scenario.ts';

export interface DistributedBench {
  file: string;
  body: ReturnType<typeof resultsBody>;
}

function resultsBody(o: DistributedOptions, date: Date, machineAtStart: Record<string, unknown>, r: DistributedResults) {
  const { endpoints: _endpoints, ...settings } = o;
  return {
    version: packageVersion(),
    commit: gitCommit(),
    date: date.toISOString(),
    machine: machineAtStart,
    settings: { scenario: 'distributed', ...settings, infra: r.infra, cluster: r.cluster },
    results: r.phases,
    ratios: r.ratios,
    profile: r.profile,
  };
}

/** Runs everything and writes the results file into `out`. */
export async function distributedBench(o: DistributedOptions, out: string): Promise<DistributedBench> {
  const date = new Date();
  const machineAtStart = machine(); // before our own load lifts the load average
  const r = await runDistributed(o);
  const body = resultsBody(o, date, machineAtStart, r);
  return { file: await writeResults(out, 'distributed', date, body), body };
}

export function formatDistributed(phases: Record<string, Phase>): string {
  const n = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : v < 10 ? v.toFixed(2) : v.toFixed(1));
  const lines = ['phase                      rate/s      deliv/s   p50 ms  p99 ms  errors  cores'];
  for (const [name, p] of Object.entries(phases)) {
    if ('error' in p) { lines.push(`${name.padEnd(26)} FAILED ${p.error.split('\n')[0]!.slice(0, 80)}`); continue; }
    const rate = 'opsPerSec' in p ? p.opsPerSec : p.msgsPerSec;
    const deliveries = 'deliveriesPerSec' in p ? p.deliveriesPerSec : undefined;
    const cores = Object.entries(p.cpu.cores).filter(([, v]) => v >= 0.01).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
    lines.push(`${name.padEnd(26)} ${String(rate).padStart(7)}  ${(deliveries === undefined ? '-' : String(deliveries)).padStart(10)}  ${n(p.p50Ms).padStart(7)} ${n(p.p99Ms).padStart(7)}  ${String(p.errors).padStart(6)}  ${cores}; other ${n(p.cpu.otherCores)}; machine ${n(p.cpu.machineCores)}`);
  }
  return lines.join('\n');
}

export async function runDistributedBench(o: Options): Promise<number> {
  const d = o.distributed;
  const { file, body } = await distributedBench({
    clients: o.clients, groupClients: d.groupClients, group: { size: d.groupSize, senders: d.groupSenders },
    gateways: d.gateways, engineWorkers: d.engineWorkers, loadWorkers: o.workers, load: o.load, rate: o.rate,
    cqlConcurrency: d.cqlConcurrency, profile: d.profile,
  }, o.out);
  console.log(formatDistributed(body.results));
  for (const [k, v] of Object.entries(body.ratios)) console.log(`${k}: ${v ?? 'not measured'}`);
  for (const [kind, s] of Object.entries(body.profile ?? {})) {
    if (typeof s === 'string') continue;
    console.log(`${kind} profile (${s.busyMs} ms busy of ${s.windowMs} ms), by owner: ${s.byOwner.slice(0, 8).map((c) => `${c.category} ${c.percent}%`).join(', ')}`);
  }
  console.log(`results: ${file}`);
  return Object.values(body.results).some((p) => 'error' in p) ? 1 : 0;
}
