// Shared pieces of the SDK unit tests: a client wired to the fake server and event recorders.
import { WebSocket } from 'ws';
import { LanternClient } from '../client.ts';
import type { ClientErrorEvent, Disconnected, Synced, Welcome } from '../events.ts';
import type { LanternClientOptions } from '../options.ts';
import type { Message } from '../../protocol/frames.ts';
import type { FakeServer } from './fake-server.ts';

export function makeClient(server: FakeServer, overrides: Partial<LanternClientOptions> = {}): LanternClient {
  return new LanternClient({
    url: server.url,
    token: 'tok',
    device: 'dev',
    WebSocket,
    backoff: { initialMs: 5, maxMs: 20 },
    requestTimeoutMs: 2000,
    ...overrides,
  });
}

export interface Recorded {
  messages: Message[];
  connected: Welcome[];
  disconnected: Disconnected[];
  synced: Synced[];
  errors: ClientErrorEvent[];
  /** "conv#seq" of every delivered message. */
  keys(): string[];
}

export function record(client: LanternClient): Recorded {
  const r: Recorded = {
    messages: [], connected: [], disconnected: [], synced: [], errors: [],
    keys: () => r.messages.map((m) => `${m.conv}#${m.seq}`),
  };
  client.on('message', (m) => r.messages.push(m));
  client.on('connected', (w) => r.connected.push(w));
  client.on('disconnected', (d) => r.disconnected.push(d));
  client.on('synced', (s) => r.synced.push(s));
  client.on('error', (e) => r.errors.push(e));
  return r;
}

/** Wait until `cond` holds, checking every few ms, failing after `timeoutMs` with `what`. */
export async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
