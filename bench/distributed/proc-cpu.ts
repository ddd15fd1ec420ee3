// Where the cores went: CPU time of named processes (from /proc/<pid>/stat) and of the whole
// machine (/proc/stat) between two samples. Linux only; elsewhere the figures are null.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** Processes come and go while /proc is read: a vanished or forbidden entry is expected, anything else is not. */
function expectedProcError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ESRCH' || code === 'EACCES' || code === 'EPERM') return true;
  throw err;
}

/** Clock ticks per second of /proc times (USER_HZ, almost always 100). */
const TICKS_PER_SEC = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100; // getconf missing: Linux's USER_HZ is 100 on every mainstream architecture
  }
})();

/** utime + stime of a process in seconds, or undefined when it is gone (or not Linux). */
export function processCpuSec(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    if (expectedProcError(err)) return undefined;
    throw err;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SEC;
}

/** Busy and total CPU seconds of the machine (all cores) from /proc/stat. */
export function machineCpuSec(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (v[3] ?? 0) + (v[4] ?? 0); // idle + iowait
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0); // up to steal; guest is already in user
    return { busy: (total - idle) / TICKS_PER_SEC, total: total / TICKS_PER_SEC };
  } catch (err) {
    if (expectedProcError(err)) return undefined; // not Linux
    throw err;
  }
}

/** The pid of the process listening on a loopback/any TCP `port`, found through socket inodes; undefined if none is visible. */
export function pidListeningOn(port: number): number | undefined {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try { text = readFileSync(table, 'utf8'); } catch (err) { if (expectedProcError(err)) continue; throw err; }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // f[1] local address "HEXIP:HEXPORT", f[3] state (0A = LISTEN), f[9] inode
      if (f.length > 9 && f[3] === '0A' && parseInt(f[1]!.split(':')[1]!, 16) === port) inodes.add(f[9]!);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try { fds = readdirSync(`/proc/${entry}/fd`); } catch (err) { if (expectedProcError(err)) continue; throw err; }
    for (const fd of fds) {
      let target: string;
      try { target = readlinkSync(`/proc/${entry}/fd/${fd}`); } catch (err) { if (expectedProcError(err)) continue; throw err; }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m && inodes.has(m[1]!)) return Number(entry);
    }
  }
  return undefined;
}

/** Named groups of pids, e.g. { gateways: [..], workers: [..], cassandra: [..] }. */
export type ProcessGroups = Record<string, readonly number[]>;

export interface CpuSample { atMs: number; groups: Record<string, number>; machine: { busy: number; total: number } | undefined }

export function sampleCpu(groups: ProcessGroups): CpuSample {
  const out: Record<string, number> = {};
  for (const [name, pids] of Object.entries(groups)) out[name] = pids.reduce((sum, pid) => sum + (processCpuSec(pid) ?? 0), 0);
  return { atMs: performance.now(), groups: out, machine: machineCpuSec() };
}

export interface CoresUsed {
  wallSec: number;
  /** Average cores each group used between the samples. */
  cores: Record<string, number>;
  /** All processes of the machine together (our groups, the generator, and anything else running). */
  machineCores: number | null;
  /** Cores on the machine not explained by the named groups (other tests, the kernel, ...); null without /proc/stat. */
  otherCores: number | null;
}

/** Average cores per group between two samples. */
export function coresBetween(a: CpuSample, b: CpuSample): CoresUsed {
  const wallSec = (b.atMs - a.atMs) / 1000;
  const round = (v: number): number => Math.round(v * 100) / 100;
  const cores: Record<string, number> = {};
  for (const name of Object.keys(b.groups)) cores[name] = round((b.groups[name]! - (a.groups[name] ?? 0)) / wallSec);
  const machineCores = a.machine && b.machine ? round((b.machine.busy - a.machine.busy) / wallSec) : null;
  const named = Object.values(cores).reduce((s, v) => s + v, 0);
  return { wallSec: round(wallSec), cores, machineCores, otherCores: machineCores === null ? null : round(Math.max(0, machineCores - named)) };
}

/** CPU microseconds per message (or operation) of each group: cores / rate. */
export function perUnit(cpu: CoresUsed, ratePerSec: number): Record<string, number> | null {
  if (!(ratePerSec > 0)) return null;
  const out: Record<string, number> = {};
  for (const [name, cores] of Object.entries(cpu.cores)) out[name] = Math.round((cores * 1e6) / ratePerSec);
  return out;
}
