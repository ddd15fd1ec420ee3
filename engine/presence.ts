// Online/offline and last-seen, visible to friends only.
import type { PresenceInfo, RequestParams, RequestResult } from '../protocol/frames.ts';
import type { DeviceSession } from './api.ts';
import type { Contacts } from './contacts.ts';
import type { ChatStore, Clock, Delivery, PresenceRegistry } from './ports.ts';

export class Presence {
  constructor(
    private readonly store: ChatStore,
    private readonly registry: PresenceRegistry,
    private readonly contacts: Contacts,
    private readonly delivery: Delivery,
    private readonly clock: Clock,
  ) {}

  async connected(who: DeviceSession): Promise<void> {
    const first = await this.registry.add(who.user, who.session);
    const ts = this.clock.now();
    await this.store.setLastSeen(who.user, ts);
    if (first) await this.announce(who.user, true, ts);
  }

  async disconnected(who: DeviceSession): Promise<void> {
    const last = await this.registry.remove(who.user, who.session);
    const ts = this.clock.now();
    await this.store.setLastSeen(who.user, ts);
    if (last) await this.announce(who.user, false, ts);
  }

  async refresh(sessions: readonly DeviceSession[]): Promise<void> {
    if (sessions.length === 0) return;
    const revived = await this.registry.refresh(sessions.map(({ user, session }) => ({ user, session })));
    // Users the registry had lost (e.g. Redis restarted empty) were wrongly offline: announce them again.
    const ts = this.clock.now();
    for (const user of revived) await this.announce(user, true, ts);
  }

  /** Announce offline the users whose gateway died (their sessions expired unrefreshed). */
  async sweep(): Promise<number> {
    const expired = await this.registry.takeExpired?.() ?? [];
    for (const { user, lastSeen } of expired) {
      await this.store.setLastSeen(user, lastSeen);
      await this.announce(user, false, lastSeen);
    }
    return expired.length;
  }

  private async announce(user: string, online: boolean, lastSeen: number): Promise<void> {
    const friends = await this.contacts.friends(user);
    if (friends.length) this.delivery.toUsers(friends, { t: 'presence', user, online, lastSeen });
  }

  async query(who: DeviceSession, p: RequestParams<'presence'>): Promise<RequestResult<'presence'>> {
    const unique = [...new Set(p.users)];
    const visible: string[] = [];
    for (const u of unique) if (u === who.user || await this.contacts.areFriends(who.user, u)) visible.push(u);
    const [online, seen] = await Promise.all([this.registry.online(visible), this.store.getLastSeen(visible)]);
    const presence: PresenceInfo[] = visible.map((user) => ({ user, online: online.has(user), lastSeen: seen[user] ?? 0 }));
    return { presence };
  }
}
