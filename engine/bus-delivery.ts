// Delivery across the Bus (distributed mode): a worker publishes each event once per recipient
// user on that user's subject; the gateways holding the user's devices subscribe to it and
// relay the bytes to their sockets without decoding them. Frames are encoded once per event.
import { encodeFrame } from '../protocol/codec.ts';
import type { ServerEvent } from '../protocol/frames.ts';
import type { Bus, Delivery } from './ports.ts';

/** A subject-safe token for an id: base64url has no '.', '*', '>' or whitespace. */
export function subjectToken(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

export function userEventSubject(user: string): string {
  return `lantern.u.${subjectToken(user)}`;
}

export class BusDelivery implements Delivery {
  constructor(private readonly bus: Bus) {}

  toUsers(users: readonly string[], event: ServerEvent): void {
    if (users.length === 0) return;
    const bytes = encodeFrame(event);
    for (const user of users) this.bus.publish(userEventSubject(user), bytes);
  }
}
