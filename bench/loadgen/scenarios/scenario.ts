// What a scenario gives the worker: connected clients able to send, and a way to close them.
import type { DeliverySink, Sender } from '../driver.ts';
import type { GrabReport, WorkerConfig } from '../messages.ts';

export interface ScenarioInstance {
  /** One per client, in the order of the driver's sender indices. */
  readonly senders: readonly Sender[];
  close(): Promise<void>;
  /** redenvelope: the grab answers and envelopes for the report (after the run). */
  grabReport?(): GrabReport;
}

/** Connects and prepares config.clients clients; deliveries and errors go to `sink`. */
export type ScenarioSetup = (config: WorkerConfig, sink: DeliverySink) => Promise<ScenarioInstance>;

/** Parallel connects/requests during setup: enough to be quick, few enough not to stampede the server. */
export const SETUP_CONCURRENCY = 50;
