// Coalesces the frames written to each socket during one event-loop turn and writes them under
// one cork. Replies and events mostly arrive from promise continuations after a storage commit,
// outside any uWS callback, where every ws.send would otherwise be its own write syscall: a chat
// message costs its sender an ack and an own-copy and its peer a copy, all in the same turn.
// Order per socket is kept (an ack never overtakes the events before it).
import type uWS from 'uWebSockets.js';
import type { GatewayMetrics } from './metrics.ts';

/** uWS ws.send results. */
export const SEND_DROPPED = 2;

export interface BatchedSocketState {
  closed: boolean;
  /** When the socket first dropped an event or went over the lag mark; see backpressure.ts. */
  laggingSince: number | undefined;
}

type Socket = uWS.WebSocket<BatchedSocketState>;

interface Pending {
  frames: Uint8Array[];
  /** Bit i set: frames[i] is a reply (res/err/welcome), which must never be dropped silently. */
  replies: boolean[];
  bytes: number;
  metrics: GatewayMetrics;
}

/** A socket's queue is written at once when it reaches this size, so a burst within one turn
 *  cannot pile up memory: beyond it, uWS's own bound (slowConsumerBytes) decides what is dropped. */
export const MAX_BATCH_BYTES = 64 * 1024;

const pending = new Map<Socket, Pending>();
let scheduled = false;

/** What to do with a socket whose reply was dropped: set by connection.ts (closes it with 4101). */
let onReplyDropped: (ws: Socket) => void = () => {};
export function setReplyDroppedHandler(handler: (ws: Socket) => void): void {
  onReplyDropped = handler;
}

export function enqueue(ws: Socket, bytes: Uint8Array, reply: boolean, metrics: GatewayMetrics): void {
  let p = pending.get(ws);
  if (!p) {
    p = { frames: [], replies: [], bytes: 0, metrics };
    pending.set(ws, p);
  }
  p.frames.push(bytes);
  p.replies.push(reply);
  p.bytes += bytes.byteLength;
  if (p.bytes >= MAX_BATCH_BYTES) {
    pending.delete(ws);
    write(ws, p);
    return;
  }
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushAll);
  }
}

function flushAll(): void {
  scheduled = false;
  for (const [ws, p] of pending) {
    pending.delete(ws);
    write(ws, p);
  }
}

/** Write what is queued for one socket now (before it is closed, so a final error frame goes out). */
export function flushSocket(ws: Socket): void {
  const p = pending.get(ws);
  if (!p) return;
  pending.delete(ws);
  write(ws, p);
}

/** Forget what is queued for a socket that closed. */
export function discard(ws: Socket): void {
  pending.delete(ws);
}

function write(ws: Socket, p: Pending): void {
  const state = ws.getUserData();
  if (state.closed) return;
  let replyDropped = false;
  ws.cork(() => {
    for (let i = 0; i < p.frames.length; i++) {
      if (ws.send(p.frames[i]!, true, false) !== SEND_DROPPED) continue;
      if (p.replies[i]) replyDropped = true;
      else if (state.laggingSince === undefined) {
        // An event was lost to backpressure: the client must sync once the buffer drains.
        state.laggingSince = Date.now();
        p.metrics.laggingConnections++;
      }
    }
  });
  p.metrics.framesOut += p.frames.length;
  if (replyDropped) onReplyDropped(ws);
}
