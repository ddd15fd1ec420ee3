// The runners of the scenarios whose benches predate the capacity suite's common shape:
// each runs its bench, prints its table and returns the exit code.
import { connectionsBench, formatConnections } from './connections-bench.ts';
import { verdict } from './echo-chat-bench.ts';
import { flashSaleBench, formatFlashSales } from './flashsale-bench.ts';
import { formatLocust, locustBench } from './locust-bench.ts';
import { chatPeersBench, fanoutPeersBench, formatPeers } from './peers-bench.ts';
import { connectStormBench, formatConnectStorm, formatReconnectStorm, reconnectStormBench } from './storms-bench.ts';
import type { LoadSettings } from './loadgen/messages.ts';
import { RED, type Options } from './options.ts';
import { AIM_SHARE_OF_CEILING, formatRedEnvelopes, redEnvelopeBench } from './redenvelope-bench.ts';

export async function runRedEnvelopeBench(o: Options): Promise<number> {
  const r = o.redenvelope;
  const load: LoadSettings = o.rate === undefined
    ? { ...o.load, mode: 'max', window: r.window, drainMs: RED.drainMs }
    : { ...o.load, mode: 'rate', ratePerSec: o.rate, drainMs: RED.drainMs };
  const { file, body } = await redEnvelopeBench({
    modes: r.modes, members: r.members, senders: r.senders, envelope: r.envelope, loadWorkers: o.workers, load, store: o.store,
    gateways: o.distributed.gateways, engineWorkers: o.distributed.engineWorkers,
    ceiling: { concurrency: r.ceilingConcurrency, durationMs: r.ceilingDurationMs }, profile: o.distributed.profile,
    ...(r.redisUrl ? { redisUrl: r.redisUrl } : {}),
  }, o.out);
  console.log(formatRedEnvelopes(body.results));
  for (const [name, p] of Object.entries(body.results)) {
    if ('verification' in p && !p.verification.ok) console.log(`${name} verification (first ${p.verification.problems.length} of ${p.verification.problemCount}): ${p.verification.problems.join(' | ')}`);
    if ('errorSamples' in p && p.errorSamples.length > 0) console.log(`${name} errors (first ${p.errorSamples.length}): ${p.errorSamples.join(' | ')}`);
  }
  for (const [k, v] of Object.entries(body.ratios)) console.log(`${k}: ${v ?? 'not measured'}`);
  for (const mode of r.modes) console.log(`aim (${mode}): grabs/s >= ${AIM_SHARE_OF_CEILING} x ceiling: ${verdict(body.aim[mode]?.met ?? null)}`);
  console.log(`results: ${file}`);
  const failed = Object.values(body.results).some((p) => 'error' in p || ('verification' in p && !p.verification.ok));
  return failed ? 1 : 0;
}

export async function runFlashSaleBench(o: Options): Promise<number> {
  const f = o.flashsale;
  const { file, body } = await flashSaleBench({
    modes: o.redenvelope.modes, buyers: f.buyers, stock: f.stock, perUserLimit: f.perUserLimit, storms: f.storms, leadMs: f.leadMs,
    ...(f.loadWorkers ? { loadWorkers: f.loadWorkers } : {}), store: o.store,
    gateways: o.distributed.gateways, engineWorkers: o.distributed.engineWorkers,
    ceiling: { concurrency: o.redenvelope.ceilingConcurrency, durationMs: o.redenvelope.ceilingDurationMs },
    ...(o.redenvelope.redisUrl ? { redisUrl: o.redenvelope.redisUrl } : {}),
  }, o.out);
  console.log(formatFlashSales(body.results));
  for (const [name, p] of Object.entries(body.results)) {
    if (!('verification' in p)) continue;
    for (const [i, s] of (p.storms ?? [p]).entries()) {
      const v = s.verification;
      if (!v.ok) console.log(`${name} storm ${i} verification (first ${v.problems.length} of ${v.problemCount}): ${v.problems.join(' | ')}`);
      if (s.errorSamples.length > 0) console.log(`${name} storm ${i} errors (first ${s.errorSamples.length} of ${s.errors}): ${s.errorSamples.join(' | ')}`);
    }
  }
  for (const [k, v] of Object.entries(body.ratios)) console.log(`${k}: ${v ?? 'not measured'}`);
  console.log(`results: ${file}`);
  const failed = Object.values(body.results).some((p) => 'error' in p || ('verified' in p && !p.verified));
  return failed ? 1 : 0;
}

export async function runConnectionsBench(o: Options): Promise<number> {
  const c = o.connections;
  const { file, body } = await connectionsBench({
    modes: c.modes, connections: c.count, idleMs: c.idleMs, store: o.store,
    gateways: o.distributed.gateways, engineWorkers: o.distributed.engineWorkers, ...(c.loadWorkers ? { loadWorkers: c.loadWorkers } : {}),
  }, o.out);
  console.log(formatConnections(body.results));
  for (const [name, p] of Object.entries(body.results)) {
    if ('error' in p) continue;
    const samples = [...p.connect.failureSamples, ...p.idle.closeSamples];
    if (samples.length > 0) console.log(`${name} failures/closes (first ${samples.length}): ${samples.join(' | ')}`);
  }
  for (const [k, v] of Object.entries(body.ratios)) console.log(`${k}: ${v ?? 'not measured'}`);
  console.log(`results: ${file}`);
  const failed = Object.values(body.results).some((p) => 'error' in p || p.connect.failed > 0 || p.held < p.connections);
  return failed ? 1 : 0;
}

/** Each named Locust scenario in turn; 1 when any breached a gate or failed. */
export async function runLocustBench(o: Options): Promise<number> {
  const l = o.locust;
  let code = 0;
  for (const scenario of l.scenarios) {
    console.log(`locust ${scenario} ...`);
    const { file, body, exitCode } = await locustBench({
      scenario, users: l.users, spawnRate: l.spawnRate, durationSec: l.durationSec, store: o.store,
      ...(l.groupSize ? { groupSize: l.groupSize } : {}), ...(o.slo ? { slo: o.slo } : {}), ...(l.url ? { url: l.url } : {}),
      // A storm oversubscribes: a tenth of the buyers can win, the rest must hear sold_out.
      ...(scenario === 'flash-sale' ? { extraEnv: { LANTERN_SALE_STOCK: String(Math.max(1, Math.floor(l.users / 10))) } } : {}),
    }, o.out);
    console.log(formatLocust(body));
    console.log(`results: ${file}`);
    code = Math.max(code, exitCode === 0 ? 0 : 1);
  }
  return code;
}

/** `chat` or `fanout`: every peer target under the same generator, ratios to raw uWS. */
export async function runPeersBench(o: Options, which: 'chat' | 'fanout'): Promise<number> {
  const p = o.peers;
  const run = which === 'chat' ? chatPeersBench : fanoutPeersBench;
  const { file, body, exitCode } = await run({
    clients: o.clients, workers: o.workers, load: o.load, store: o.store, modes: p.modes,
    gateways: o.distributed.gateways, engineWorkers: o.distributed.engineWorkers,
    ...(p.targets ? { targets: p.targets } : {}), ...(p.groupSizes ? { groupSizes: p.groupSizes } : {}),
    ...(p.groupSenders ? { groupSenders: p.groupSenders } : {}), ...(o.rate !== undefined ? { rate: o.rate } : {}),
    ...(o.slo ? { slo: o.slo } : {}),
  }, o.out);
  console.log(formatPeers(body));
  console.log(`results: ${file}`);
  return exitCode;
}

/** Defaults of the storms (bench/README.md, "Connection storm", "Reconnect storm"). */
const STORMS = { connectStormConnections: 5_000, reconnectStormClients: 2_000 } as const;

/** `connect-storm` or `reconnect-storm`: raw uWS first (the ceiling), then Lantern per mode. */
export async function runStormBench(o: Options, which: 'connect-storm' | 'reconnect-storm'): Promise<number> {
  const s = o.storms;
  const common = {
    modes: s.modes, store: o.store, gateways: o.distributed.gateways, engineWorkers: o.distributed.engineWorkers,
    ...(s.loadWorkers ? { loadWorkers: s.loadWorkers } : {}), ...(o.slo ? { slo: o.slo } : {}),
  };
  if (which === 'connect-storm') {
    const { file, body, exitCode } = await connectStormBench({ ...common, connections: s.connections ?? STORMS.connectStormConnections, rampPerSec: s.rampPerSec }, o.out);
    console.log(formatConnectStorm(body));
    console.log(`results: ${file}`);
    return exitCode;
  }
  const { file, body, exitCode } = await reconnectStormBench({
    ...common, connections: s.connections ?? STORMS.reconnectStormClients, dropFraction: s.dropFraction,
    ...(s.groupSize ? { groupSize: s.groupSize } : {}), ...(s.awayMs ? { awayMs: s.awayMs } : {}), ...(s.messageRate ? { messageRate: s.messageRate } : {}),
  }, o.out);
  console.log(formatReconnectStorm(body));
  console.log(`results: ${file}`);
  return exitCode;
}
