// Summarises a V8 .cpuprofile (node --cpu-prof): self time by category (our folders, each
// package, Node internals, GC, V8's unattributed "(program)"), and the top functions, counting
// only samples inside a time window (the measured phase), so start-up and other phases are out.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterProcess } from './cluster.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

export interface ProfileSummary {
  file: string;
  /** Sampled time inside the window (ms), idle included, and how much of it was busy. */
  windowMs: number;
  busyMs: number;
  /** Whether samples were limited to the window (false: the clocks did not line up, whole profile used). */
  windowed: boolean;
  /** Share of busy time per category of the sampled (leaf) function, largest first (percent, one decimal). */
  categories: Array<{ category: string; ms: number; percent: number }>;
  /**
   * The same time charged to the nearest caller that is our code or a package: Node internals and
   * native builtins (socket writes, Buffer copies, microtask runs) count for whoever called them.
   */
  byOwner: Array<{ category: string; ms: number; percent: number }>;
  /** Top functions by self time. */
  topFunctions: Array<{ fn: string; category: string; ms: number; percent: number }>;
}

/** Which part of the system a frame belongs to. */
export function categoryOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'V8/native (unattributed)';
    if (functionName === '(root)') return 'V8/native (unattributed)';
    return 'native builtins';
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm) {
    const pkg = nm[1]!;
    if (pkg.startsWith('@nats-io/')) return 'nats';
    if (pkg === 'uWebSockets.js' || pkg.startsWith('@trufflesuite/')) return 'uWS';
    return pkg;
  }
  if (url.startsWith('node:')) return 'node core';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  if (path.startsWith(REPO)) return `lantern ${path.slice(REPO.length).split('/')[0]}/`;
  return 'other';
}

function shortName(frame: CallFrame): string {
  const where = frame.url === '' ? '' : ` ${frame.url.replace(/^file:\/\//, '').replace(REPO, '').replace(/^.*node_modules\//, '')}:${frame.lineNumber + 1}`;
  return `${frame.functionName || '(anonymous)'}${where}`;
}

/**
 * `windowUs`: [start, end] in microseconds of CLOCK_MONOTONIC (process.hrtime.bigint() / 1000),
 * the clock V8 stamps profiles with on Linux.
 */
export async function summariseProfile(file: string, windowUs?: [number, number], top = 15): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Owner: the first frame up the stack that belongs to our code or a package.
  const INHERITS = new Set(['node core', 'native builtins', 'other']);
  const ownerOf = (id: number): string => {
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const c = categoryOf(byId.get(cur)!.callFrame);
      if (!INHERITS.has(c) && !(c === 'V8/native (unattributed)' && cur !== id)) return c;
    }
    return categoryOf(byId.get(id)!.callFrame);
  };
  const inWindow = (t: number): boolean => windowUs === undefined || (t >= windowUs[0] && t < windowUs[1]);
  // A sample's weight is the time until the next sample.
  const weights = (filter: (t: number) => boolean): Map<number, number> => {
    const self = new Map<number, number>();
    let t = profile.startTime;
    for (let i = 0; i < profile.samples.length; i++) {
      t += profile.timeDeltas[i] ?? 0;
      const dt = profile.timeDeltas[i + 1] ?? 0;
      if (!filter(t)) continue;
      const id = profile.samples[i]!;
      self.set(id, (self.get(id) ?? 0) + dt);
    }
    return self;
  };
  let self = weights(inWindow);
  let windowed = windowUs !== undefined;
  if (self.size === 0) { self = weights(() => true); windowed = false; }

  const categories = new Map<string, number>();
  const owners = new Map<string, number>();
  const functions = new Map<string, { category: string; us: number }>();
  let totalUs = 0, idleUs = 0;
  for (const [id, us] of self) {
    const frame = byId.get(id)!.callFrame;
    const category = categoryOf(frame);
    totalUs += us;
    if (category === 'idle') { idleUs += us; continue; }
    categories.set(category, (categories.get(category) ?? 0) + us);
    const owner = ownerOf(id);
    owners.set(owner, (owners.get(owner) ?? 0) + us);
    const name = shortName(frame);
    const f = functions.get(name) ?? { category, us: 0 };
    f.us += us;
    functions.set(name, f);
  }
  const busyUs = totalUs - idleUs;
  const pct = (us: number): number => (busyUs > 0 ? Math.round((us / busyUs) * 1000) / 10 : 0);
  const ms = (us: number): number => Math.round(us / 100) / 10;
  return {
    file,
    windowMs: ms(totalUs),
    busyMs: ms(busyUs),
    windowed,
    categories: [...categories].sort((a, b) => b[1] - a[1]).map(([category, us]) => ({ category, ms: ms(us), percent: pct(us) })),
    byOwner: [...owners].sort((a, b) => b[1] - a[1]).map(([category, us]) => ({ category, ms: ms(us), percent: pct(us) })),
    topFunctions: [...functions].sort((a, b) => b[1].us - a[1].us).slice(0, top)
      .map(([fn, f]) => ({ fn, category: f.category, ms: ms(f.us), percent: pct(f.us) })),
  };
}

/** Profiles of the profiled processes of a cluster (gateway 0, worker 0), by kind. */
export type ClusterProfiles = { gateway?: ProfileSummary; worker?: ProfileSummary; note: string };

/** Summarises each profiled process's main-thread profile over `windowUs`; a missing one is named in the note. */
export async function summariseClusterProfiles(
  processes: readonly ClusterProcess[], windowUs: [number, number] | undefined, phase?: string,
): Promise<ClusterProfiles> {
  const out: ClusterProfiles = {
    note: `self time of gateway-0 and worker-0 (node --cpu-prof, 1 ms sampling) inside the measured window${phase ? ` of ${phase}` : ''}; percent of busy (non-idle) time`,
  };
  for (const p of processes) {
    if (p.profileDir === undefined) continue;
    try {
      // Node names profiles CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the main thread is 0.
      const main = (await readdir(p.profileDir)).find((f) => f.split('.')[4] === '0');
      if (main === undefined) throw new Error(`no main-thread profile in ${p.profileDir}`);
      out[p.kind] = await summariseProfile(join(p.profileDir, main), windowUs);
    } catch (err) {
      out.note += `; ${p.name}: no profile (${(err as Error).message})`;
    }
  }
  return out;
}
