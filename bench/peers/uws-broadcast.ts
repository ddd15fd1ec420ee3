// The raw uWebSockets.js fan-out ceiling: topic pub/sub with the WebSocket settings of
// bench/baseline/uws-echo.ts (and so Lantern's), and no work per message beyond what uWS does to
// route it. A 1:1 message is a publish to the peer's own topic, a group message a publish to the
// group's topic; either way the server forwards the frame as it came, to every subscriber (the
// sender included when subscribed, as in a Lantern group), and never looks inside the payload.
// Standalone: node --import tsx bench/peers/uws-broadcast.ts [--port 9002] [--host 127.0.0.1]
//
// Wire format (binary frames, lengths in bytes, names UTF-8):
//   join     client → server   [1][topic]                              ack: the same frame back
//   publish  client → server   [2][topic len][topic][from len][from][payload]
//            server → members  the publish frame, unchanged
// A client's own topic is `u/<user>`, a group's `g/<group>`. `from` is whatever the sender
// writes: the ceiling authenticates nobody.
import uWS from 'uWebSockets.js';
import WebSocket from 'ws';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ECHO_DEFAULTS, listenRaw, type EchoServer } from '../baseline/uws-echo.ts';
import { closeSockets, openSocket } from '../loadgen/socket.ts';
import type { PeerClient, PeerDelivery } from './peer-client.ts';

const JOIN = 1;
const PUBLISH = 2;
const MAX_NAME_BYTES = 255;

export interface BroadcastServerOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
}

export type BroadcastServer = EchoServer;

export function start(options: BroadcastServerOptions = {}): Promise<BroadcastServer> {
  const host = options.host ?? ECHO_DEFAULTS.host;
  const sockets = new Set<uWS.WebSocket<unknown>>();
  const app = uWS.App();
  app.ws('/*', {
    compression: uWS.DISABLED,
    maxPayloadLength: ECHO_DEFAULTS.maxPayloadLength,
    // A subscriber over this bound is skipped by publish (uWS drops the copy), like an event
    // Lantern drops for a slow consumer; the load generator counts it as undelivered.
    maxBackpressure: ECHO_DEFAULTS.maxBackpressure,
    idleTimeout: ECHO_DEFAULTS.idleTimeoutSec,
    open: (ws) => { sockets.add(ws); },
    message: (ws, message, isBinary) => {
      const bytes = new Uint8Array(message);
      const topic = isBinary ? topicOf(bytes) : null;
      if (topic === null) { ws.end(1007, 'malformed frame'); return; }
      if (bytes[0] === JOIN) {
        ws.subscribe(topic);
        ws.send(message, true);
      } else {
        app.publish(topic, message, true);
      }
    },
    close: (ws) => { sockets.delete(ws); },
  });
  return listenRaw(app, host, options.port ?? 0, sockets, 'uws-broadcast');
}

/**
 * The topic a join or publish frame names, or null if malformed: a view, not a copy (uWS reads
 * it during the call, while the message buffer is still valid).
 */
function topicOf(bytes: Uint8Array): Uint8Array | null {
  if (bytes[0] === JOIN) return bytes.length > 1 ? bytes.subarray(1) : null;
  if (bytes[0] !== PUBLISH || bytes.length < 2) return null;
  const end = 2 + bytes[1]!;
  return bytes[1]! > 0 && end <= bytes.length ? bytes.subarray(2, end) : null;
}

export const inboxTopic = (user: string): string => `u/${user}`;
export const groupTopic = (group: string): string => `g/${group}`;

function nameBytes(name: string, what: string): Buffer {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length === 0 || bytes.length > MAX_NAME_BYTES) throw new RangeError(`uws-broadcast: ${what} must be 1..${MAX_NAME_BYTES} bytes, got ${bytes.length}`);
  return bytes;
}

export function encodeJoin(topic: string): Buffer {
  return Buffer.concat([Buffer.of(JOIN), nameBytes(topic, 'topic')]);
}

export function encodePublish(topic: string, from: string, payload: Uint8Array): Buffer {
  const t = nameBytes(topic, 'topic');
  const f = nameBytes(from, 'user');
  return Buffer.concat([Buffer.of(PUBLISH, t.length), t, Buffer.of(f.length), f, payload]);
}

/** A publish frame as a delivery, or null when the frame is none (a join ack) or malformed. */
export function decodePublish(frame: Buffer): PeerDelivery | null {
  if (frame[0] !== PUBLISH || frame.length < 2) return null;
  const topicEnd = 2 + frame[1]!;
  if (topicEnd >= frame.length) return null;
  const fromEnd = topicEnd + 1 + frame[topicEnd]!;
  if (fromEnd > frame.length) return null;
  const topic = frame.toString('utf8', 2, topicEnd);
  return {
    from: frame.toString('utf8', topicEnd + 1, fromEnd),
    group: topic.startsWith('g/') ? topic.slice(2) : null,
    payload: frame.subarray(fromEnd),
  };
}

/** A client of the broadcast server: joins its own topic on connect, so 1:1 messages reach it. */
export class BroadcastClient implements PeerClient {
  onDelivery: (delivery: PeerDelivery) => void = () => {};
  onError: (description: string) => void = () => {};
  private readonly joining = new Map<string, () => void>();
  private closing = false;

  private constructor(readonly user: string, private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.receive(data));
    let lastError = '';
    ws.on('error', (err) => { lastError = ` after error: ${err.message}`; });
    ws.on('close', (code) => { if (!this.closing) this.onError(`${user}: closed ${code}${lastError}`); });
  }

  static async open(url: string, user: string, timeoutMs: number): Promise<BroadcastClient> {
    const client = new BroadcastClient(user, await openSocket(url, timeoutMs));
    await client.subscribe(inboxTopic(user));
    return client;
  }

  join(group: string): Promise<void> {
    return this.subscribe(groupTopic(group));
  }

  sendDirect(to: string, payload: Uint8Array): void {
    this.ws.send(encodePublish(inboxTopic(to), this.user, payload));
  }

  publish(group: string, payload: Uint8Array): void {
    this.ws.send(encodePublish(groupTopic(group), this.user, payload));
  }

  bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  async close(): Promise<void> {
    this.closing = true;
    await closeSockets([this.ws]);
  }

  private subscribe(topic: string): Promise<void> {
    return new Promise((resolve) => {
      this.joining.set(topic, resolve);
      this.ws.send(encodeJoin(topic));
    });
  }

  private receive(frame: Buffer): void {
    if (frame[0] === JOIN) {
      const topic = frame.toString('utf8', 1);
      this.joining.get(topic)?.();
      this.joining.delete(topic);
      return;
    }
    const delivery = decodePublish(frame);
    if (delivery === null) this.onError(`${this.user}: malformed frame of ${frame.length} bytes`);
    else this.onDelivery(delivery);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '9002' }, host: { type: 'string', default: ECHO_DEFAULTS.host } } });
  const server = await start({ port: Number(values.port), host: values.host });
  console.log(`uws-broadcast listening on ${server.url}`);
  const stop = (): void => { void server.close().then(() => process.exit(0)); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => { console.error(err); process.exit(1); });
}
