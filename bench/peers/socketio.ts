// Socket.IO (npm `socket.io` / `socket.io-client`) as a peer baseline: the chat a team would
// write with it, doing what Lantern's bench does. 1:1: every socket joins its user's room on
// connect and a `direct` event goes to the peer's room. Fan-out: `join` puts the socket in a
// group's room and a `publish` event goes to everyone in it, the sender included (as in a
// Lantern group). Payloads are binary (Socket.IO sends them as a binary attachment frame); the
// server adds the sender's name and never looks inside them.
//
// Settings that keep it comparable: WebSocket transport only (no long-polling handshake or
// upgrade), no compression, Lantern's frame limit as maxHttpBufferSize, the stock Node HTTP
// server and `ws` engine that `npm install socket.io` gives.
// Standalone: node --import tsx bench/peers/socketio.ts [--port 9003] [--host 127.0.0.1]
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Server } from 'socket.io';
import { io as connect, type Socket } from 'socket.io-client';
import { DEFAULT_FRAME_LIMITS } from '../../protocol/limits.ts';
import type { PeerClient, PeerDelivery } from './peer-client.ts';

export interface SocketIoServerOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
}

export interface SocketIoServer {
  port: number;
  host: string;
  /** The base URL socket.io-client connects to (path /socket.io/). */
  url: string;
  close(): Promise<void>;
}

const inboxRoom = (user: string): string => `u/${user}`;
const groupRoom = (group: string): string => `g/${group}`;

const isName = (value: unknown): value is string => typeof value === 'string' && value.length > 0;

export async function start(options: SocketIoServerOptions = {}): Promise<SocketIoServer> {
  const host = options.host ?? '127.0.0.1';
  const http = createServer();
  const io = new Server(http, {
    serveClient: false,
    transports: ['websocket'],
    perMessageDeflate: false,
    httpCompression: false,
    maxHttpBufferSize: DEFAULT_FRAME_LIMITS.maxFrameBytes,
  });

  // The user names itself in the handshake: like the raw uWS ceiling, and unlike Lantern and
  // Centrifugo, no token is checked (a JWT check per connect would not change the message rate).
  io.use((socket, next) => {
    const user: unknown = socket.handshake.auth['user'];
    if (!isName(user)) { next(new Error('auth.user (a non-empty string) is required')); return; }
    socket.data.user = user;
    next();
  });

  io.on('connection', (socket) => {
    const user = socket.data.user as string;
    void socket.join(inboxRoom(user));
    socket.on('join', (group: unknown, ack: unknown) => {
      if (!isName(group)) { socket.disconnect(true); return; }
      void socket.join(groupRoom(group));
      if (typeof ack === 'function') ack();
    });
    socket.on('direct', (to: unknown, payload: unknown) => {
      if (!isName(to)) { socket.disconnect(true); return; }
      io.to(inboxRoom(to)).emit('msg', user, null, payload);
    });
    socket.on('publish', (group: unknown, payload: unknown) => {
      if (!isName(group)) { socket.disconnect(true); return; }
      io.to(groupRoom(group)).emit('msg', user, group, payload);
    });
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 0, host, () => { http.off('error', reject); resolve(); });
  });
  const port = (http.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port,
    host,
    url: `http://${host}:${port}`,
    // io.close() disconnects every socket and closes the HTTP server.
    close: () => (closing ??= new Promise<void>((resolve) => { void io.close(() => resolve()); })),
  };
}

/** A socket.io-client connection (WebSocket only, no reconnection: a drop is an error, as for the other peers). */
export class SocketIoClient implements PeerClient {
  onDelivery: (delivery: PeerDelivery) => void = () => {};
  onError: (description: string) => void = () => {};
  private closing = false;

  private constructor(readonly user: string, private readonly socket: Socket) {
    socket.on('msg', (from: unknown, group: unknown, payload: unknown) => {
      const bytes = asBuffer(payload);
      if (!isName(from) || (group !== null && !isName(group)) || bytes === null) {
        this.onError(`${user}: malformed msg event`);
        return;
      }
      this.onDelivery({ from, group, payload: bytes });
    });
    socket.on('disconnect', (reason) => { if (!this.closing) this.onError(`${user}: disconnected (${reason})`); });
  }

  static open(url: string, user: string, timeoutMs: number): Promise<SocketIoClient> {
    const socket = connect(url, {
      transports: ['websocket'],
      auth: { user },
      reconnection: false,
      forceNew: true,
      timeout: timeoutMs,
    });
    return new Promise((resolve, reject) => {
      socket.once('connect', () => {
        socket.off('connect_error');
        resolve(new SocketIoClient(user, socket));
      });
      socket.once('connect_error', (err) => {
        socket.disconnect();
        reject(new Error(`${user}: connecting to ${url} failed: ${err.message}`, { cause: err }));
      });
    });
  }

  async join(group: string, timeoutMs = 10_000): Promise<void> {
    await this.socket.timeout(timeoutMs).emitWithAck('join', group);
  }

  sendDirect(to: string, payload: Uint8Array): void {
    this.socket.emit('direct', to, payload);
  }

  publish(group: string, payload: Uint8Array): void {
    this.socket.emit('publish', group, payload);
  }

  bufferedAmount(): number {
    // The engine's WebSocket is internal to socket.io-client; its queue is what backs up under load.
    const transport = this.socket.io.engine?.transport as unknown as { ws?: { bufferedAmount?: number } } | undefined;
    return transport?.ws?.bufferedAmount ?? 0;
  }

  async close(): Promise<void> {
    this.closing = true;
    this.socket.disconnect();
  }
}

/** Socket.IO hands binary to Node as a Buffer (an ArrayBuffer in some transports). */
function asBuffer(payload: unknown): Buffer | null {
  if (Buffer.isBuffer(payload)) return payload;
  if (payload instanceof ArrayBuffer) return Buffer.from(payload);
  if (ArrayBuffer.isView(payload)) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return null;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '9003' }, host: { type: 'string', default: '127.0.0.1' } } });
  const server = await start({ port: Number(values.port), host: values.host });
  console.log(`socket.io listening on ${server.url}`);
  const stop = (): void => { void server.close().then(() => process.exit(0)); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => { console.error(err); process.exit(1); });
}
