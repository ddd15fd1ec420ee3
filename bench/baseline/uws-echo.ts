// The raw uWebSockets.js baseline: a binary echo server with the WebSocket settings Lantern
// uses (no compression, same payload and backpressure bounds), so "Lantern / echo" measures
// what the messaging engine costs on top of the socket layer.
// Standalone: node --import tsx bench/baseline/uws-echo.ts [--port 9001] [--host 127.0.0.1]
import uWS from 'uWebSockets.js';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_FRAME_LIMITS } from '../../protocol/limits.ts';

export interface EchoServerOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Same default as Lantern's maxFrameBytes. */
  maxPayloadLength?: number;
  /** Same default as Lantern's slowConsumerBytes. */
  maxBackpressure?: number;
}

export interface EchoServer {
  port: number;
  host: string;
  url: string;
  close(): Promise<void>;
}

export const ECHO_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  maxPayloadLength: DEFAULT_FRAME_LIMITS.maxFrameBytes,
  maxBackpressure: 1024 * 1024,
  idleTimeoutSec: 120,
});

export function start(options: EchoServerOptions = {}): Promise<EchoServer> {
  const host = options.host ?? ECHO_DEFAULTS.host;
  const sockets = new Set<uWS.WebSocket<unknown>>();
  const app = uWS.App().ws('/*', {
    compression: uWS.DISABLED,
    maxPayloadLength: options.maxPayloadLength ?? ECHO_DEFAULTS.maxPayloadLength,
    maxBackpressure: options.maxBackpressure ?? ECHO_DEFAULTS.maxBackpressure,
    idleTimeout: ECHO_DEFAULTS.idleTimeoutSec,
    open: (ws) => { sockets.add(ws); },
    // A send over maxBackpressure is dropped by uWS (returns 2); the load generator counts
    // it as undelivered, exactly like an event Lantern drops for a slow consumer.
    message: (ws, message, isBinary) => { ws.send(message, isBinary); },
    close: (ws) => { sockets.delete(ws); },
  });
  return listenRaw(app, host, options.port ?? 0, sockets, 'uws-echo');
}

/**
 * Listens and resolves with the server's address and a close() that stops listening and closes
 * every open socket (`sockets` is kept by the app's open/close handlers). Shared by the raw
 * baselines (this echo server, peers/uws-broadcast.ts).
 */
export function listenRaw(app: uWS.TemplatedApp, host: string, port: number, sockets: Set<uWS.WebSocket<unknown>>, label: string): Promise<EchoServer> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (listenSocket) => {
      if (listenSocket === false) {
        reject(new Error(`${label}: cannot listen on ${host}:${port}`));
        return;
      }
      const bound = uWS.us_socket_local_port(listenSocket);
      let closed = false;
      resolve({
        port: bound,
        host,
        url: `ws://${host}:${bound}/`,
        close: async () => {
          if (closed) return;
          closed = true;
          uWS.us_listen_socket_close(listenSocket);
          // Copy: each close() fires the close handler, which edits the set.
          for (const ws of [...sockets]) ws.close();
        },
      });
    });
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '9001' }, host: { type: 'string', default: ECHO_DEFAULTS.host } } });
  const server = await start({ port: Number(values.port), host: values.host });
  console.log(`uws-echo listening on ${server.url}`);
  const stop = (): void => { void server.close().then(() => process.exit(0)); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => { console.error(err); process.exit(1); });
}
