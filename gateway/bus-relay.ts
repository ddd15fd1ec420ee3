// Distributed mode: the gateway subscribes to the event subject of every user with a device
// connected here (subscribed on the first socket, dropped with the last), so an event crosses
// NATS once per interested gateway and is relayed as bytes to the user's sockets.
import { userEventSubject } from '../engine/bus-delivery.ts';
import type { Bus, BusSubscription } from '../engine/ports.ts';
import type { SocketDelivery, UserInterest } from './delivery.ts';

export class BusRelay implements UserInterest {
  private readonly subs = new Map<string, BusSubscription>();

  constructor(private readonly bus: Bus, private readonly delivery: SocketDelivery) {}

  async firstSocket(user: string): Promise<void> {
    if (this.subs.has(user)) return;
    this.subs.set(user, this.bus.subscribe(userEventSubject(user), (bytes) => this.delivery.relay(user, bytes)));
    // The welcome (and the client's sync) must not precede our interest reaching the server.
    await this.bus.flush();
  }

  lastSocket(user: string): void {
    this.subs.get(user)?.unsubscribe();
    this.subs.delete(user);
  }

  close(): void {
    for (const sub of this.subs.values()) sub.unsubscribe();
    this.subs.clear();
  }
}
