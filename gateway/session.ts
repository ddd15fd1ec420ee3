// The WebSocket handlers of one connection: open (hello timer), message (rate limit, decode,
// validate, hello or request), drain (slow-consumer check) and close (engine.disconnected).
import type { Engine } from '../engine/api.ts';
import { decodeFrame } from '../protocol/codec.ts';
import { CloseCodes, LanternError } from '../protocol/errors.ts';
import type { ClientFrame, HelloFrame, RequestFrame, RequestType } from '../protocol/frames.ts';
import { frameId, parseClientFrame } from '../protocol/schema.ts';
import { assessLag } from './backpressure.ts';
import { discard } from './write-batcher.ts';
import { closeSocket, newConnection, sendError, sendFrame, type Connection, type Socket } from './connection.ts';
import type { GatewayContext } from './context.ts';
import { handleHello } from './handshake.ts';
import { peekFrameId } from './peek-id.ts';

/** Error names that count toward maxProtocolErrors: the client is sending garbage. */
const PROTOCOL_ERRORS: ReadonlySet<string> = new Set(['bad_frame', 'unknown_type', 'invalid_field']);

/** What a `busy` answer suggests: long enough for in-flight work to finish, short enough not to idle. */
const SHED_RETRY_AFTER_MS = 50;

export function createConnection(ctx: GatewayContext): Connection {
  return newConnection(ctx.settings.ratePerSec, ctx.settings.rateBurst, ctx.now());
}

export function onOpen(ctx: GatewayContext, ws: Socket): void {
  const conn = ws.getUserData();
  ctx.sockets.add(ws);
  ctx.metrics.openConnections++;
  conn.helloTimer = setTimeout(() => {
    if (conn.stage !== 'ready') closeSocket(ws, CloseCodes.hello_timeout.code, 'hello_timeout');
  }, ctx.settings.helloTimeoutMs);
}

export function onMessage(ctx: GatewayContext, ws: Socket, message: ArrayBuffer, isBinary: boolean): void {
  const conn = ws.getUserData();
  ctx.metrics.framesIn++;
  if (conn.closed) return;
  if (message.byteLength > ctx.settings.maxFrameBytes) {
    closeSocket(ws, CloseCodes.message_too_big.code, 'message_too_big');
    return;
  }

  // Rate limit first: a refused frame costs no decoding.
  const retryAfterMs = conn.bucket.take(ctx.now());
  if (retryAfterMs > 0) {
    ctx.metrics.rateLimitedFrames++;
    if (++conn.rejectedInRow >= ctx.settings.floodCloseAfter) {
      closeSocket(ws, CloseCodes.flood.code, 'flood');
      return;
    }
    const id = isBinary ? peekFrameId(new Uint8Array(message)) : 0;
    sendError(ws, id, new LanternError('rate_limited', `more than ${ctx.settings.ratePerSec} frames/s`, { retryAfterMs }), ctx.metrics);
    return;
  }
  conn.rejectedInRow = 0;

  // Admission: shed before decoding when this connection or the whole gateway is saturated, so
  // overload gets fast retryable answers instead of queues that grow until everything times out.
  if (conn.stage === 'ready' && (conn.inflight >= ctx.settings.maxInflightPerConnection || ctx.metrics.inflightRequests >= ctx.settings.maxInflightRequests)) {
    ctx.metrics.shedRequests++;
    const id = isBinary ? peekFrameId(new Uint8Array(message)) : 0;
    sendError(ws, id, new LanternError('busy', 'too many requests in flight; retry shortly', { retryAfterMs: SHED_RETRY_AFTER_MS }), ctx.metrics);
    return;
  }

  if (!isBinary) {
    protocolError(ctx, ws, 0, new LanternError('bad_frame', 'text messages are not accepted: send binary msgpack frames'));
    return;
  }
  let decoded: Record<string, unknown>;
  let frame: ClientFrame;
  try {
    // No copy needed: decodeFrame copies binary values out, and uWS neuters `message` after this callback.
    decoded = decodeFrame(new Uint8Array(message), ctx.limits);
  } catch (err) {
    rejectFrame(ctx, ws, 0, err);
    return;
  }
  try {
    frame = parseClientFrame(decoded);
  } catch (err) {
    rejectFrame(ctx, ws, frameId(decoded), err);
    return;
  }

  if (frame.t === 'hello') {
    if (conn.stage !== 'waiting') {
      sendError(ws, frame.id, new LanternError('duplicate_hello', 'this connection already sent hello'), ctx.metrics);
      return;
    }
    const hello = frame as HelloFrame;
    const work = handleHello(ctx, ws, hello).catch((err: unknown) => {
      ctx.log.error({ err, session: conn.session, device: hello.device }, 'hello failed');
      closeSocket(ws, CloseCodes.server_error.code, 'server_error');
    });
    ctx.track(work);
    return;
  }
  if (conn.stage !== 'ready' || conn.who === undefined) {
    sendError(ws, frame.id, new LanternError('not_ready', 'send hello and wait for welcome first'), ctx.metrics);
    return;
  }
  ctx.track(serveRequest(ctx, ws, frame as RequestFrame));
}

async function serveRequest(ctx: GatewayContext, ws: Socket, frame: RequestFrame): Promise<void> {
  const conn = ws.getUserData();
  const who = conn.who!;
  const { t, id, ...params } = frame as RequestFrame & Record<string, unknown>;
  let engine: Engine;
  conn.inflight++;
  ctx.metrics.inflightRequests++;
  try {
    engine = await ctx.engine();
    const data = await engine.request(who, t as RequestType, params as never);
    sendFrame(ws, { t: 'res', id, data }, ctx.metrics);
  } catch (err) {
    if (err instanceof LanternError) {
      sendError(ws, id, err, ctx.metrics);
      return;
    }
    ctx.log.error({ err, user: who.user, device: who.device, session: who.session, t, id }, 'request failed');
    sendError(ws, id, new LanternError('internal', 'internal server error; the request may be retried'), ctx.metrics);
  } finally {
    conn.inflight--;
    ctx.metrics.inflightRequests--;
  }
}

function protocolError(ctx: GatewayContext, ws: Socket, id: number, err: LanternError): void {
  const conn = ws.getUserData();
  sendError(ws, id, err, ctx.metrics);
  if (PROTOCOL_ERRORS.has(err.error) && ++conn.protocolErrors >= ctx.settings.maxProtocolErrors) {
    ctx.log.info({ session: conn.session, user: conn.who?.user, errors: conn.protocolErrors }, 'too many invalid frames');
    closeSocket(ws, CloseCodes.protocol_violation.code, 'protocol_violation');
  }
}

/** decodeFrame/parseClientFrame throw LanternError; anything else is a bug: log it, answer internal. */
function rejectFrame(ctx: GatewayContext, ws: Socket, id: number, err: unknown): void {
  if (err instanceof LanternError) {
    protocolError(ctx, ws, id, err);
    return;
  }
  ctx.log.error({ err, session: ws.getUserData().session }, 'frame validation crashed');
  sendError(ws, id, new LanternError('internal', 'internal server error'), ctx.metrics);
}

export function checkBackpressure(ctx: GatewayContext, ws: Socket): void {
  const conn = ws.getUserData();
  if (conn.closed) return;
  const s = ctx.settings;
  const wasLagging = conn.laggingSince !== undefined;
  const action = assessLag(conn, ws.getBufferedAmount(), ctx.now(), s.slowConsumerBytes, s.slowConsumerCloseMs);
  if (!wasLagging && conn.laggingSince !== undefined) ctx.metrics.laggingConnections++;
  if (action === 'lag') {
    ctx.metrics.laggingConnections--;
    ctx.metrics.lagEvents++;
    sendFrame(ws, { t: 'lag' }, ctx.metrics);
  } else if (action === 'close') {
    ctx.log.info({ session: conn.session, user: conn.who?.user, buffered: ws.getBufferedAmount() }, 'slow consumer closed');
    closeSocket(ws, CloseCodes.slow_consumer.code, 'slow_consumer');
  }
}

export function onClose(ctx: GatewayContext, ws: Socket, code: number): void {
  const conn = ws.getUserData();
  conn.closed = true;
  clearTimeout(conn.helloTimer);
  ctx.sockets.delete(ws);
  discard(ws);
  if (conn.who) ctx.delivery.remove(conn.who.user, ws);
  ctx.metrics.openConnections--;
  ctx.metrics.countClose(code);
  if (conn.stage === 'ready') ctx.metrics.authenticatedConnections--;
  if (conn.laggingSince !== undefined) ctx.metrics.laggingConnections--;
  const { who, joined } = conn;
  if (who === undefined || joined === undefined) return;
  ctx.track(
    joined
      .then(async (ok) => {
        if (!ok) return;
        const engine = await ctx.engine();
        await engine.disconnected(who);
      })
      .catch((err: unknown) => ctx.log.error({ err, ...who }, 'engine.disconnected failed')),
  );
}
