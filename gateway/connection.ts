// Per-connection state (the uWS user data) and the only ways the gateway writes to a socket.
// uWS throws when a closed socket is used, and a socket may close during any await, so every
// write goes through sendFrame/closeSocket, which check `closed` first.
import { randomUUID } from 'node:crypto';
import type uWS from 'uWebSockets.js';
import type { DeviceSession } from '../engine/api.ts';
import { encodeFrame } from '../protocol/codec.ts';
import type { LanternError } from '../protocol/errors.ts';
import type { ErrorFrame, ServerFrame } from '../protocol/frames.ts';
import type { GatewayMetrics } from './metrics.ts';
import { TokenBucket } from './rate-limit.ts';
import { enqueue, flushSocket, setReplyDroppedHandler } from './write-batcher.ts';

export interface Connection {
  /** Set by closeSocket and by the close handler; nothing may touch the socket after. */
  closed: boolean;
  readonly session: string;
  /** 'waiting' for hello, hello being 'checked', or 'ready' after welcome. */
  stage: 'waiting' | 'checked' | 'ready';
  /** Set when engine.connected was called for this device. */
  who: DeviceSession | undefined;
  /** Outcome of engine.connected: the close handler waits on it before disconnected. */
  joined: Promise<boolean> | undefined;
  helloTimer: NodeJS.Timeout | undefined;
  readonly bucket: TokenBucket;
  rejectedInRow: number;
  /** Requests of this connection being served now (admission control). */
  inflight: number;
  protocolErrors: number;
  /** When the send buffer first went over the lag threshold; undefined when not lagging. */
  laggingSince: number | undefined;
}

export type Socket = uWS.WebSocket<Connection>;

export function newConnection(ratePerSec: number, rateBurst: number, now: number): Connection {
  return {
    closed: false,
    session: randomUUID(),
    stage: 'waiting',
    who: undefined,
    joined: undefined,
    helloTimer: undefined,
    bucket: new TokenBucket(ratePerSec, rateBurst, now),
    rejectedInRow: 0,
    inflight: 0,
    protocolErrors: 0,
    laggingSince: undefined,
  };
}

export { SEND_DROPPED } from './write-batcher.ts';

/** Close with a code; a no-op on a socket that is already closed. Frames queued before it go out first. */
export function closeSocket(ws: Socket, code: number, reason: string): void {
  const conn = ws.getUserData();
  if (conn.closed) return;
  flushSocket(ws);
  conn.closed = true;
  ws.end(code, reason);
}

// A reply dropped because the socket is over its backpressure bound closes the socket with
// 4101: replies are never silently lost on an open connection, and the client's retry
// (idempotent by cid) recovers it after reconnecting.
setReplyDroppedHandler((ws) => closeSocket(ws as Socket, 4101, 'slow_consumer'));

/** Queue one reply frame for a socket (written at the end of this event-loop turn, corked). */
export function sendFrame(ws: Socket, frame: ServerFrame, metrics: GatewayMetrics): boolean {
  if (ws.getUserData().closed) return false;
  enqueue(ws, encodeFrame(frame), true, metrics);
  return true;
}

export function errorFrame(id: number, err: LanternError): ErrorFrame {
  const frame: ErrorFrame = { t: 'err', id, code: err.code, error: err.error, msg: err.message, retry: err.retry };
  if (err.field !== undefined) frame.field = err.field;
  if (err.retryAfterMs !== undefined) frame.retryAfterMs = err.retryAfterMs;
  return frame;
}

export function sendError(ws: Socket, id: number, err: LanternError, metrics: GatewayMetrics): void {
  metrics.countError(err.error);
  sendFrame(ws, errorFrame(id, err), metrics);
}
