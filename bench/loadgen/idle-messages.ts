// IPC between IdleCrowd (idle-run.ts) and its generator processes (idle-worker.ts): the generator
// says it is ready (so its RSS can be read before it holds anything), connects its share, reports
// on request while holding them idle, then closes.
import type { SerializedHistogram } from './histogram.ts';

/** 'lantern': hello + welcome on each socket; 'raw': the WebSocket upgrade only (the uWS baseline). */
export type IdleProtocol = 'lantern' | 'raw';

export interface IdleConfig {
  workerIndex: number;
  /** Servers: global connection i goes to urls[i % urls.length]. */
  urls: string[];
  /** This generator's connections are global indices first .. first + count - 1 (user `c<i>`). */
  first: number;
  count: number;
  protocol: IdleProtocol;
  /** HS256 secret and audience of the tokens (lantern only). */
  secret?: string;
  audience?: string;
  /** Loopback source addresses this generator binds its sockets to, round-robin. */
  sourceAddresses: string[];
  /** Bound on one connection attempt (upgrade + welcome). */
  attemptTimeoutMs: number;
  /** Bound on connecting the whole share. */
  setupTimeoutMs: number;
}

/** What a generator held after connecting its share. */
export interface ConnectReport {
  workerIndex: number;
  /** Sockets open with a welcome (raw: upgraded). */
  held: number;
  /** Connections given up after every attempt failed. */
  failed: number;
  /** Attempts that failed and were made again. */
  reconnects: number;
  failureSamples: string[];
  /** Per successful connection: socket created -> welcome (raw: -> upgraded), ms. */
  latency: SerializedHistogram;
  /** This generator's first attempt -> its last connection done (epoch ms, comparable across processes). */
  startedAt: number;
  doneAt: number;
}

/** Counts since the connections were made, read while they sit idle. */
export interface IdleStatus {
  workerIndex: number;
  /** Sockets still open. */
  open: number;
  /** Sockets the server (or the network) closed. */
  closed: number;
  closeSamples: string[];
  /** WebSocket pings from the server (ws answers each with a pong by itself). */
  pings: number;
  /** Data frames after the welcome (nobody sends these idle users anything, so normally 0). */
  frames: number;
}

export type IdleCommand =
  | { type: 'connect'; config: IdleConfig }
  | { type: 'status' }
  | { type: 'close' };

export type IdleMessage =
  | { type: 'ready' }
  | { type: 'connected'; report: ConnectReport }
  | { type: 'status'; status: IdleStatus }
  | { type: 'closed' }
  | { type: 'failed'; error: string };
