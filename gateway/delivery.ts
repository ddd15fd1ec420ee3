// Local fan-out through uWS topics: every device socket of user U subscribes to 'u:' + U, so
// one publish reaches all of a user's devices on this gateway. The event is encoded once and
// the same bytes go to every socket; uWS skips sockets over their backpressure bound (see
// backpressure.ts for how those clients learn to sync).
import type uWS from 'uWebSockets.js';
import type { Delivery } from '../engine/ports.ts';
import { encodeFrame } from '../protocol/codec.ts';
import type { ServerEvent } from '../protocol/frames.ts';
import type { GatewayMetrics } from './metrics.ts';

export function userTopic(user: string): string {
  return 'u:' + user;
}

export class UwsDelivery implements Delivery {
  constructor(private readonly app: uWS.TemplatedApp, private readonly metrics: GatewayMetrics) {}

  toUsers(users: readonly string[], event: ServerEvent): void {
    if (users.length === 0) return;
    const bytes = encodeFrame(event);
    for (const user of users) this.app.publish(userTopic(user), bytes, true, false);
    this.metrics.eventsPublished += users.length;
  }
}
