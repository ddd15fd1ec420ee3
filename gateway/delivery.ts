// Local fan-out: a registry of the authenticated sockets of each user on this gateway. An event
// is encoded once and the same bytes are queued to every device socket; the write batcher sends
// each socket's frames for this event-loop turn under one cork. (uWS topic publish cannot be
// corked across sockets from outside a uWS callback, so it costs a syscall per socket per event,
// and it hides which sockets it skipped; here a dropped event marks exactly that socket lagging.)
import type { Delivery } from '../engine/ports.ts';
import { encodeFrame } from '../protocol/codec.ts';
import type { ServerEvent } from '../protocol/frames.ts';
import type { Socket } from './connection.ts';
import type { GatewayMetrics } from './metrics.ts';
import { enqueue } from './write-batcher.ts';

export class SocketDelivery implements Delivery {
  private readonly byUser = new Map<string, Set<Socket>>();

  constructor(private readonly metrics: GatewayMetrics) {}

  add(user: string, ws: Socket): void {
    let set = this.byUser.get(user);
    if (!set) {
      set = new Set();
      this.byUser.set(user, set);
    }
    set.add(ws);
  }

  remove(user: string, ws: Socket): void {
    const set = this.byUser.get(user);
    if (!set) return;
    set.delete(ws);
    if (set.size === 0) this.byUser.delete(user);
  }

  toUsers(users: readonly string[], event: ServerEvent): void {
    let bytes: Uint8Array | undefined;
    for (const user of users) {
      const sockets = this.byUser.get(user);
      if (!sockets) continue;
      bytes ??= encodeFrame(event);
      for (const ws of sockets) {
        if (!ws.getUserData().closed) enqueue(ws, bytes, false, this.metrics);
      }
    }
    this.metrics.eventsPublished += users.length;
  }
}
