// The uWebSockets.js gateway: one App serving the WebSocket at /ws plus health/metrics HTTP
// routes. Built before the engine (the engine needs the gateway's Delivery), then the engine
// is attached, then it listens. close() drains: stop listening, readyz 503, close every
// socket with 1001, wait for in-flight work, close the engine.
import uWS from 'uWebSockets.js';
import type { Engine } from '../engine/api.ts';
import type { Logger } from '../engine/ports.ts';
import { CloseCodes } from '../protocol/errors.ts';
import type { TokenVerifier } from './auth.ts';
import { frameLimitsOf, type Settings } from './config.ts';
import { closeSocket, type Connection, type Socket } from './connection.ts';
import type { GatewayContext } from './context.ts';
import { SocketDelivery } from './delivery.ts';
import { registerAdminRoutes } from './admin-http.ts';
import { registerHttpRoutes } from './http.ts';
import { GatewayMetrics } from './metrics.ts';
import { checkBackpressure, createConnection, onClose, onMessage, onOpen } from './session.ts';

/** How often open sockets are checked for lag (the drain handler also checks). */
export const BACKPRESSURE_SWEEP_MS = 250;
/** uWS maxPayloadLength = maxFrameBytes × this (see the ws options below). */
export const OVERSIZE_HEADROOM = 2;

export interface GatewayOptions {
  settings: Settings;
  verifier: TokenVerifier;
  log: Logger;
  now?: () => number;
}

export interface Gateway {
  readonly delivery: SocketDelivery;
  readonly metrics: GatewayMetrics;
  /** Hand the engine over; /readyz turns 200 and waiting hellos proceed. */
  attachEngine(engine: Engine): void;
  /** Listen on settings.host/port; resolves with the real port (port 0 = ephemeral). */
  listen(): Promise<number>;
  /** Send buffer sizes of open sockets, in bytes (for metrics and tests). */
  bufferedAmounts(): number[];
  /** Graceful shutdown; closes the attached engine last. Idempotent. */
  close(): Promise<void>;
}

export function createGateway({ settings, verifier, log, now = Date.now }: GatewayOptions): Gateway {
  const app = uWS.App();
  const metrics = new GatewayMetrics();
  const delivery = new SocketDelivery(metrics);
  const sockets = new Set<Socket>();
  const inFlight = new Set<Promise<unknown>>();
  let attached: Engine | undefined;
  let resolveEngine!: (engine: Engine) => void;
  const enginePromise = new Promise<Engine>((resolve) => { resolveEngine = resolve; });
  let draining = false;
  let listenSocket: uWS.us_listen_socket | undefined;
  let closing: Promise<void> | undefined;

  const ctx: GatewayContext = {
    settings,
    limits: frameLimitsOf(settings),
    verifier,
    metrics,
    delivery,
    log,
    engine: () => enginePromise,
    sockets,
    track(work) {
      inFlight.add(work);
      void work.finally(() => inFlight.delete(work));
    },
    now,
  };

  app.ws<Connection>('/ws', {
    compression: uWS.DISABLED,
    // This uWS build drops a socket whose frame exceeds maxPayloadLength without a close frame
    // (the client sees 1006). Headroom lets session.ts answer the protocol's 1009 for frames up
    // to twice the limit; only grossly oversized ones are cut at the TCP level.
    maxPayloadLength: settings.maxFrameBytes * OVERSIZE_HEADROOM,
    maxBackpressure: settings.slowConsumerBytes,
    // Typed as number in this uWS build; 0 = false: we decide ourselves (lag, then 4101).
    closeOnBackpressureLimit: 0,
    idleTimeout: settings.idleTimeoutSec,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      if (draining) {
        res.writeStatus('503 Service Unavailable').end('draining', true);
        return;
      }
      // Headers must be read synchronously: req is only valid during this call.
      res.upgrade<Connection>(
        createConnection(ctx),
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws) => onOpen(ctx, ws),
    message: (ws, message, isBinary) => onMessage(ctx, ws, message, isBinary),
    drain: (ws) => checkBackpressure(ctx, ws),
    close: (ws, code) => onClose(ctx, ws, code),
  });

  registerHttpRoutes(app, {
    readiness: () => (draining ? 'draining' : attached ? 'ready' : 'starting'),
    metrics,
    more: (a) => registerAdminRoutes(a, { adminToken: settings.adminToken, engine: () => (draining ? undefined : attached), log }),
  });

  const sweep = setInterval(() => {
    for (const ws of sockets) checkBackpressure(ctx, ws);
  }, BACKPRESSURE_SWEEP_MS);
  sweep.unref();

  // Keep this gateway's devices present in a shared registry: sessions not refreshed within
  // presenceSessionTtlMs are taken for a dead gateway's and expire.
  const presenceTimer = setInterval(() => {
    const engine = attached;
    if (!engine?.refresh) return;
    const live = [...sockets].map((ws) => ws.getUserData()).filter((c) => !c.closed && c.stage === 'ready' && c.who).map((c) => c.who!);
    if (live.length === 0) return;
    ctx.track(engine.refresh(live).catch((err: unknown) => log.warn({ err, sessions: live.length }, 'presence refresh failed')));
  }, Math.max(250, Math.floor(settings.presenceSessionTtlMs / 3)));
  presenceTimer.unref();

  return {
    delivery,
    metrics,
    attachEngine(engine) {
      if (attached) throw new Error('attachEngine: an engine is already attached');
      attached = engine;
      resolveEngine(engine);
    },
    listen() {
      const deadline = Date.now() + settings.listenRetryMs;
      let warned = false;
      return new Promise<number>((resolve, reject) => {
        const attempt = (): void => void app.listen(settings.host, settings.port, (socket) => {
          if (socket) {
            listenSocket = socket;
            resolve(uWS.us_socket_local_port(socket as unknown as uWS.us_socket));
            return;
          }
          // A fixed port can be busy for up to a minute after a restart (TIME_WAIT; see listenRetryMs).
          if (settings.port !== 0 && Date.now() < deadline) {
            if (!warned) log.warn({ host: settings.host, port: settings.port, retryMs: settings.listenRetryMs }, 'port busy (TIME_WAIT after a restart?), retrying');
            warned = true;
            setTimeout(attempt, 250);
            return;
          }
          reject(new Error(`cannot listen on ${settings.host}:${settings.port} (port in use or address not available)`));
        });
        attempt();
      });
    },
    bufferedAmounts() {
      return [...sockets].filter((ws) => !ws.getUserData().closed).map((ws) => ws.getBufferedAmount());
    },
    close() {
      closing ??= (async () => {
        draining = true;
        clearInterval(sweep);
        clearInterval(presenceTimer);
        if (listenSocket) uWS.us_listen_socket_close(listenSocket);
        listenSocket = undefined;
        for (const ws of [...sockets]) closeSocket(ws, CloseCodes.going_away.code, 'going_away');
        // Requests and disconnected() calls still running must finish before the engine closes.
        while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
        if (attached) await attached.close();
      })();
      return closing;
    },
  };
}
