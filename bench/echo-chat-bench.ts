// `npm run bench -- echo-chat` (and its parts `echo`, `chat-1to1`): issue 1's aim. Embedded
// Lantern 1:1 chat next to a raw uWebSockets.js echo server driven by the same generator:
// echo-max (the ceiling), chat-1to1-max, and an open-loop chat phase at half the echo rate for
// the latency. See bench/README.md, "Echo and chat".
import { start as startEcho } from './baseline/uws-echo.ts';
import { startBenchLantern } from './lantern-server.ts';
import { runLoad } from './loadgen/coordinator.ts';
import type { LoadSettings } from './loadgen/messages.ts';
import type { Options } from './options.ts';
import { attempt } from './phase-attempt.ts';
import {
  figuresOf, formatTable, gitCommit, machine, packageVersion, writeResults,
  type PhaseFailure, type PhaseFigures,
} from './results-file.ts';

/** The issue's aim: embedded Lantern delivers >= half the raw echo rate, with p99 < 10 ms at half the echo rate. */
const AIM = { minRatio: 0.5, loadFractionOfEcho: 0.5, maxP99Ms: 10 } as const;
/** An open-loop phase that delivers less than this share of its target did not sustain the load. */
const SUSTAINED_SHARE = 0.95;

async function echoPhase(o: Options, load: LoadSettings): Promise<PhaseFigures> {
  const server = await startEcho();
  try {
    return figuresOf(await runLoad({ scenario: 'echo', url: server.url, clients: o.clients, workers: o.workers, load }));
  } finally {
    await server.close();
  }
}

/** Each chat phase gets a fresh server and data dir, so phases do not inherit each other's data. */
async function chatPhase(o: Options, load: LoadSettings, serverSettings: { value?: Record<string, unknown> }): Promise<PhaseFigures> {
  const lantern = await startBenchLantern(o.store);
  serverSettings.value ??= lantern.settings;
  try {
    return figuresOf(await runLoad({ scenario: 'chat-1to1', url: lantern.url, clients: o.clients, workers: o.workers, load, chat: lantern.chat }));
  } finally {
    await lantern.close();
  }
}


/** Runs the phases of `o.scenario` (echo-chat, echo or chat-1to1) and writes their results file. */
export async function runEchoChat(o: Options & { scenario: 'echo-chat' | 'echo' | 'chat-1to1' }): Promise<number> {
  const date = new Date();
  const machineAtStart = machine(); // before our own load lifts the load average
  const phases: Record<string, PhaseFigures | PhaseFailure> = {};
  const lanternSettings: { value?: Record<string, unknown> } = {};
  const max: LoadSettings = { ...o.load, mode: 'max' };
  const paced = (ratePerSec: number): LoadSettings => ({ ...o.load, mode: 'rate', ratePerSec });

  let echo: PhaseFigures | undefined;
  let chatMax: PhaseFigures | undefined;
  let latencyPhase: { name: string; figures: PhaseFigures | undefined; target: number } | undefined;
  if (o.scenario !== 'chat-1to1') {
    echo = await attempt(phases, 'echo-max', () => echoPhase(o, max));
    if (o.scenario === 'echo' && o.rate !== undefined) {
      const rate = o.rate;
      await attempt(phases, 'echo-rate', () => echoPhase(o, paced(rate)));
    }
  }
  if (o.scenario !== 'echo') {
    chatMax = await attempt(phases, 'chat-1to1-max', () => chatPhase(o, max, lanternSettings));
    const base = o.rate ?? (o.scenario === 'echo-chat' ? echo?.msgsPerSec : chatMax?.msgsPerSec);
    const rate = o.rate ?? (base === undefined ? undefined : Math.round(base * AIM.loadFractionOfEcho));
    const name = o.rate !== undefined ? 'chat-1to1-rate' : o.scenario === 'echo-chat' ? 'chat-1to1-half-echo-rate' : 'chat-1to1-half-max-rate';
    if (rate !== undefined && rate > 0) {
      latencyPhase = { name, target: rate, figures: await attempt(phases, name, () => chatPhase(o, paced(rate), lanternSettings)) };
    } else {
      phases[name] = { error: 'skipped: no rate to pace at (the phase it derives from failed)' };
    }
  }

  const ratio = echo && chatMax && echo.msgsPerSec > 0 ? Math.round((chatMax.msgsPerSec / echo.msgsPerSec) * 1000) / 1000 : null;
  const aim = o.scenario === 'echo-chat' ? judgeAim(ratio, latencyPhase) : undefined;
  const body = {
    version: packageVersion(),
    commit: gitCommit(),
    date: date.toISOString(),
    machine: machineAtStart,
    settings: {
      scenario: o.scenario, clients: o.clients, workers: o.workers, store: o.store,
      durationMs: o.load.durationMs, warmupMs: o.load.warmupMs, drainMs: o.load.drainMs, window: o.load.window,
      payloadBytes: o.load.payloadBytes, tickMs: o.load.tickMs, rate: o.rate ?? null,
      lantern: lanternSettings.value ?? null,
    },
    results: phases,
    ratio,
    ...(aim ? { aim } : {}),
  };
  const file = await writeResults(o.out, o.scenario, date, body);

  console.log(formatTable(phases));
  for (const [name, p] of Object.entries(phases)) {
    if (!('error' in p) && p.errorSamples.length > 0) console.log(`${name} errors (first ${p.errorSamples.length}): ${p.errorSamples.join(' | ')}`);
  }
  if (ratio !== null) console.log(`ratio lantern/echo (max rate): ${ratio}`);
  if (aim) console.log(`aim: ratio >= ${AIM.minRatio}: ${verdict(aim.throughput.met)}; p99 < ${AIM.maxP99Ms} ms at half the echo rate: ${verdict(aim.latency.met)}${aim.latency.note ? ` (${aim.latency.note})` : ''}`);
  console.log(`results: ${file}`);
  return Object.values(phases).some((p) => 'error' in p) ? 1 : 0;
}

export function verdict(met: boolean | null): string {
  return met === null ? 'not measured' : met ? 'met' : 'NOT met';
}

function judgeAim(ratio: number | null, latency: { figures: PhaseFigures | undefined; target: number } | undefined) {
  const f = latency?.figures;
  const sustained = f ? f.msgsPerSec >= latency!.target * SUSTAINED_SHARE : null;
  // Not sustaining the load fails the aim even when nothing arrived to take a p99 of.
  const latencyMet = sustained === null ? null : sustained && f!.p99Ms !== null && f!.p99Ms < AIM.maxP99Ms;
  return {
    throughput: { target: `lantern/echo >= ${AIM.minRatio}`, ratio, met: ratio === null ? null : ratio >= AIM.minRatio },
    latency: {
      target: `p99 < ${AIM.maxP99Ms} ms at ${AIM.loadFractionOfEcho} x echo rate`,
      targetRatePerSec: latency?.target ?? null,
      deliveredPerSec: f?.msgsPerSec ?? null,
      p99Ms: f?.p99Ms ?? null,
      sustained,
      met: latencyMet,
      note: sustained === false ? `delivered ${f!.msgsPerSec}/s of ${latency!.target}/s targeted: load not sustained` : undefined,
    },
  };
}

