// Load worker process (forked by the coordinator with `--import tsx`): opens its share of
// the clients, waits for 'go', drives the load, reports over IPC and exits.
import { LoadDriver } from './driver.ts';
import { withTimeout } from './lantern-client.ts';
import type { CoordinatorMessage, WorkerConfig, WorkerMessage } from './messages.ts';
import { setupChat1to1 } from './scenarios/chat-1to1.ts';
import { groupSenderCount, setupChatGroup } from './scenarios/chat-group.ts';
import { setupEcho } from './scenarios/echo.ts';
import { setupPeerChat, setupPeerFanout } from './scenarios/peer.ts';
import { localSenders, setupRedEnvelope } from './scenarios/redenvelope.ts';
import type { ScenarioInstance, ScenarioSetup } from './scenarios/scenario.ts';

const SCENARIOS: Record<WorkerConfig['scenario'], ScenarioSetup> = {
  echo: setupEcho,
  'chat-1to1': setupChat1to1,
  'chat-group': setupChatGroup,
  redenvelope: setupRedEnvelope,
  'peer-chat': setupPeerChat,
  'peer-fanout': setupPeerFanout,
};

if (process.send === undefined) {
  console.error('bench/loadgen/worker.ts runs as a child of the coordinator (it needs an IPC channel)');
  process.exit(2);
}

let config: WorkerConfig | undefined;
let driver: LoadDriver | undefined;
let scenario: ScenarioInstance | undefined;

function tell(message: WorkerMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    process.send!(message, undefined, {}, (err) => (err ? reject(err) : resolve()));
  });
}

async function fail(err: unknown): Promise<never> {
  const error = err instanceof Error ? err.stack ?? err.message : String(err);
  await tell({ type: 'failed', workerIndex: config?.workerIndex ?? -1, error }).catch((sendErr: unknown) => {
    console.error('worker could not report its failure', sendErr, error);
  });
  process.exit(1);
}

async function setup(c: WorkerConfig): Promise<void> {
  config = c;
  // In groups only a few members send; everyone else only receives (or grabs).
  const senders = c.scenario === 'chat-group' || c.scenario === 'peer-fanout' ? groupSenderCount(c) : c.scenario === 'redenvelope' ? localSenders(c).length : c.clients;
  driver = new LoadDriver(c.load, c.workerRatePerSec, senders);
  scenario = await withTimeout(SCENARIOS[c.scenario](c, driver), c.setupTimeoutMs, `worker ${c.workerIndex} setup`);
  await tell({ type: 'ready', workerIndex: c.workerIndex, clients: scenario.senders.length });
}

async function go(): Promise<void> {
  if (config === undefined || driver === undefined || scenario === undefined) throw new Error('go before setup');
  const cpuBefore = process.cpuUsage();
  const counts = await driver.run(scenario.senders);
  const cpu = process.cpuUsage(cpuBefore);
  await scenario.close();
  const grabs = scenario.grabReport?.();
  await tell({ type: 'report', report: { workerIndex: config.workerIndex, ...counts, cpuMs: (cpu.user + cpu.system) / 1000, ...(grabs ? { grabs } : {}) } });
  process.exit(0);
}

process.on('message', (message: CoordinatorMessage) => {
  switch (message.type) {
    case 'setup': setup(message.config).catch(fail); return;
    case 'go': go().catch(fail); return;
    case 'abort': process.exit(1);
  }
});
// The coordinator went away: nobody will read our report.
process.on('disconnect', () => process.exit(1));
