// Delivery across the Bus (distributed mode). Group events are published once on the group's
// subject: every gateway with a member connected subscribes to it and fans out to its local
// sockets, so an event crosses NATS once per interested gateway. Direct conversations and
// user-addressed events (contacts, presence) go to the recipients' user subjects: two users at
// most, and a gateway would otherwise subscribe to every friend's conversation. Frames are encoded
// once per event; gateways relay the bytes (engine/delivery-envelope.ts).
import { encodeFrame } from '../protocol/codec.ts';
import type { ServerEvent } from '../protocol/frames.ts';
import { isGroupConversation } from './conversations.ts';
import { encodeEnvelope, type DeliveryHeader } from './delivery-envelope.ts';
import { audienceUsers, type Bus, type ConversationAudience, type Delivery } from './ports.ts';

/** A subject-safe token for an id: base64url has no '.', '*', '>' or whitespace. */
export function subjectToken(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

export function userEventSubject(user: string): string {
  return `lantern.u.${subjectToken(user)}`;
}

export function groupEventSubject(conv: string): string {
  return `lantern.c.${subjectToken(conv)}`;
}

export class BusDelivery implements Delivery {
  constructor(private readonly bus: Bus) {}

  toUsers(users: readonly string[], event: ServerEvent): void {
    if (users.length === 0) return;
    const bytes = encodeEnvelope(encodeFrame(event));
    for (const user of users) this.bus.publish(userEventSubject(user), bytes);
  }

  toConversation(conv: string, event: ServerEvent, audience: ConversationAudience): void {
    if (!isGroupConversation(conv)) {
      this.toUsers(audienceUsers(audience), event);
      return;
    }
    const frame = encodeFrame(event);
    const { added = [], removed = [], except, reannounce } = audience;
    // Gateways learn membership changes on the user's own subject, with the event itself.
    if (added.length) {
      const joined = encodeEnvelope(frame, { j: conv });
      for (const user of added) this.bus.publish(userEventSubject(user), joined);
    }
    if (removed.length) {
      const left = encodeEnvelope(frame, { l: conv });
      for (const user of removed) this.bus.publish(userEventSubject(user), left);
    }
    // Creation: everyone is new and got it above; nobody listens on the group subject yet.
    if (added.length === audience.members.length) return;
    const header: DeliveryHeader = {};
    const skip = except === undefined ? [...added, ...removed] : [...added, ...removed, except];
    if (skip.length) header.x = skip;
    // The members after this event (the audience still includes users it removes).
    if (reannounce) header.m = removed.length ? audience.members.filter((u) => !removed.includes(u)) : [...audience.members];
    this.bus.publish(groupEventSubject(conv), encodeEnvelope(frame, header));
  }
}
