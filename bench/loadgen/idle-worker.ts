// An idle-connection generator process (forked by idle-run.ts with `--import tsx`): opens its share of
// connections, each bound to one of its own loopback source addresses (one address has only ~28k
// ephemeral ports), completes hello/welcome on each (or only the upgrade, for the raw baseline),
// and then holds them without sending anything. ws answers the server's pings by itself.
// Separate processes because each socket is a file descriptor (20,000 per process here).
import WebSocket from 'ws';
import { decodeFrame, encodeFrame } from '../../protocol/codec.ts';
import { LatencyHistogram } from './histogram.ts';
import type { ConnectReport, IdleCommand, IdleConfig, IdleMessage, IdleStatus } from './idle-messages.ts';
import { mintToken, withTimeout } from './lantern-client.ts';
import { SETUP_CONCURRENCY } from './scenarios/scenario.ts';
import { closeSockets, mapLimit } from './socket.ts';

const DEVICE = 'bench-idle';
const MAX_SAMPLES = 10;
/** Attempts per connection: a server flooded with hellos may close some (4103), a client would reconnect. */
const CONNECT_ATTEMPTS = 8;
const CONNECT_BACKOFF_MS = 250;

if (process.send === undefined) {
  console.error('bench/loadgen/idle-worker.ts runs as a child of IdleCrowd (it needs an IPC channel)');
  process.exit(2);
}

const epochNow = (): number => performance.timeOrigin + performance.now();

let config: IdleConfig | undefined;
const sockets: WebSocket[] = [];
const counts = { closed: 0, pings: 0, frames: 0 };
const closeSamples: string[] = [];
let closing = false;

function tell(message: IdleMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    process.send!(message, undefined, {}, (err) => (err ? reject(err) : resolve()));
  });
}

async function fail(err: unknown): Promise<never> {
  const error = err instanceof Error ? err.stack ?? err.message : String(err);
  await tell({ type: 'failed', error }).catch(() => console.error('idle generator could not report its failure:', error));
  process.exit(1);
}

/** One attempt: the socket once it is welcomed (raw: upgraded), or the reason it was not. */
function attemptOnce(c: IdleConfig, url: string, localAddress: string, token: string | undefined): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, localAddress });
    let settled = false;
    const settle = (err: Error | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.removeAllListeners('message');
      if (err) { ws.removeAllListeners(); ws.on('error', () => {}); ws.terminate(); reject(err); } else resolve(ws);
    };
    const timer = setTimeout(() => settle(new Error(`no ${token ? 'welcome' : 'upgrade'} within ${c.attemptTimeoutMs} ms`)), c.attemptTimeoutMs);
    ws.once('error', (err) => settle(err));
    ws.once('close', (code, reason) => settle(new Error(`closed ${code} ${reason.toString()} while connecting`)));
    ws.once('open', () => {
      if (token === undefined) { settle(undefined); return; }
      ws.once('message', (data: Buffer) => {
        let frame: Record<string, unknown>;
        try { frame = decodeFrame(data); } catch (err) { settle(err as Error); return; }
        settle(frame['t'] === 'welcome' ? undefined : new Error(`hello answered ${String(frame['t'])} ${String(frame['error'] ?? '')}`));
      });
      ws.send(encodeFrame({ t: 'hello', id: 1, v: [1], token, device: DEVICE, client: 'lantern-bench' }));
    });
  });
}

/** From here on the socket only counts what happens to it. */
function hold(ws: WebSocket, what: string): void {
  ws.removeAllListeners('error');
  ws.removeAllListeners('close');
  ws.on('error', () => {}); // 'close' follows with the code
  ws.on('ping', () => { counts.pings++; });
  ws.on('message', () => { counts.frames++; });
  ws.on('close', (code, reason) => {
    if (closing) return;
    counts.closed++;
    if (closeSamples.length < MAX_SAMPLES) closeSamples.push(`${what}: closed ${code} ${reason.toString()}`);
  });
  sockets.push(ws);
}

async function connect(c: IdleConfig): Promise<void> {
  config = c;
  const latency = new LatencyHistogram();
  const failureSamples: string[] = [];
  let reconnects = 0, failed = 0;
  const startedAt = epochNow();
  const indices = Array.from({ length: c.count }, (_, k) => c.first + k);
  const run = mapLimit(indices, SETUP_CONCURRENCY, async (i, k) => {
    const user = `c${i}`;
    const url = c.urls[i % c.urls.length]!;
    const localAddress = c.sourceAddresses[k % c.sourceAddresses.length]!;
    const token = c.protocol === 'lantern' ? await mintToken(c.secret!, c.audience!, user) : undefined;
    for (let attempt = 1; ; attempt++) {
      const began = performance.now();
      try {
        const ws = await attemptOnce(c, url, localAddress, token);
        latency.record(performance.now() - began);
        hold(ws, `${user} from ${localAddress}`);
        return;
      } catch (err) {
        const why = `${user} from ${localAddress}: ${(err as Error).message}`;
        if (attempt >= CONNECT_ATTEMPTS) {
          failed++;
          if (failureSamples.length < MAX_SAMPLES) failureSamples.push(`${why} (gave up after ${attempt} attempts)`);
          return;
        }
        reconnects++;
        await new Promise((resolve) => setTimeout(resolve, CONNECT_BACKOFF_MS * attempt + Math.random() * CONNECT_BACKOFF_MS));
      }
    }
  });
  await withTimeout(run, c.setupTimeoutMs, `idle generator ${c.workerIndex}: connecting ${c.count}`);
  const report: ConnectReport = {
    workerIndex: c.workerIndex, held: sockets.length, failed, reconnects, failureSamples,
    latency: latency.toJSON(), startedAt, doneAt: epochNow(),
  };
  await tell({ type: 'connected', report });
}

async function status(): Promise<void> {
  const s: IdleStatus = {
    workerIndex: config?.workerIndex ?? -1,
    open: sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length,
    closed: counts.closed, closeSamples, pings: counts.pings, frames: counts.frames,
  };
  await tell({ type: 'status', status: s });
}

async function close(): Promise<void> {
  closing = true;
  await closeSockets(sockets);
  await tell({ type: 'closed' });
  process.exit(0);
}

process.on('message', (command: IdleCommand) => {
  switch (command.type) {
    case 'connect': connect(command.config).catch(fail); return;
    case 'status': status().catch(fail); return;
    case 'close': close().catch(fail);
  }
});
// The caller went away: nobody holds the results.
process.on('disconnect', () => process.exit(1));
tell({ type: 'ready' }).catch(fail);
