// Local fan-out: a registry of the authenticated sockets of each user on this gateway. An event
// is encoded once and the same bytes are queued to every device socket; the write batcher sends
// each socket's frames for this event-loop turn under one cork. (uWS topic publish cannot be
// corked across sockets from outside a uWS callback, so it costs a syscall per socket per event,
// and it hides which sockets it skipped; here a dropped event marks exactly that socket lagging.)
import { audienceUsers, type ConversationAudience, type Delivery } from '../engine/ports.ts';
import { encodeFrame } from '../protocol/codec.ts';
import type { ServerEvent } from '../protocol/frames.ts';
import type { Socket } from './connection.ts';
import type { GatewayMetrics } from './metrics.ts';
import { enqueue } from './write-batcher.ts';

/** Told when a user gets their first socket on this gateway and loses their last one
 *  (distributed mode subscribes to the user's event subject; see bus-relay.ts). */
export interface UserInterest {
  /** Resolves once events for the user will reach this gateway. */
  firstSocket(user: string): Promise<void>;
  lastSocket(user: string): void;
}

export class SocketDelivery implements Delivery {
  private readonly byUser = new Map<string, Set<Socket>>();
  private readonly ready = new Map<string, Promise<void>>();
  private interest: UserInterest | undefined;

  constructor(private readonly metrics: GatewayMetrics) {}

  /** Set once by the composition root in distributed mode. */
  setInterest(interest: UserInterest): void {
    this.interest = interest;
  }

  /** Register a device socket; resolves once events for its user reach this gateway (rejects if
   *  they cannot: the caller closes the socket, which removes it). */
  add(user: string, ws: Socket): Promise<void> {
    let set = this.byUser.get(user);
    if (!set) {
      set = new Set();
      this.byUser.set(user, set);
      // Later sockets of the user wait for the same subscription as the first.
      this.ready.set(user, this.interest ? this.interest.firstSocket(user) : Promise.resolve());
    }
    set.add(ws);
    return this.ready.get(user)!;
  }

  remove(user: string, ws: Socket): void {
    const set = this.byUser.get(user);
    if (!set) return;
    set.delete(ws);
    if (set.size === 0) {
      this.byUser.delete(user);
      this.ready.delete(user);
      this.interest?.lastSocket(user);
    }
  }

  /** Whether the user has a socket here. */
  has(user: string): boolean {
    return this.byUser.has(user);
  }

  /** Queue an already encoded event (relayed from a worker) to every socket of a user here. */
  relay(user: string, bytes: Uint8Array): void {
    const sockets = this.byUser.get(user);
    if (!sockets) return;
    for (const ws of sockets) {
      if (!ws.getUserData().closed) enqueue(ws, bytes, false, this.metrics);
    }
    this.metrics.eventsPublished++;
  }

  toConversation(_conv: string, event: ServerEvent, audience: ConversationAudience): void {
    this.toUsers(audienceUsers(audience), event);
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
