// Distributed mode: what this gateway listens to on the bus, and the local fan-out of it
// (docs/decisions/0006, delivery). For every user with a device here it subscribes to the user's
// subject; for every group one of them is in, to the group's subject, once however many local
// members it has. A group event thus crosses NATS once per interested gateway and is relayed as
// bytes to the sockets of the local members.
//
// Membership is learned from the user's groups at their first socket and kept current by the
// join/leave notices workers publish on the user's subject. The user subject is subscribed (and
// flushed) before the groups are read, so a change committed after the read arrives as a notice;
// notices that arrive while the read is in flight are applied to its result. A worker that loaded
// a group afresh re-announces its members on the next event (covers a crash between commit and
// publish). While the bus connection is down notices may be lost: group events are dropped until
// every local user's groups are read again (clients heal the gap by sync), never delivered to a
// user this gateway might wrongly think a member.
import { groupEventSubject, userEventSubject } from '../engine/bus-delivery.ts';
import { decodeEnvelope } from '../engine/delivery-envelope.ts';
import type { Bus, BusSubscription, Logger } from '../engine/ports.ts';
import type { SocketDelivery, UserInterest } from './delivery.ts';

/** Where relayed frames go: the gateway's sockets of a user. */
export type LocalFanOut = Pick<SocketDelivery, 'relay'>;

/** Reads a user's group ids from the engine (any worker). */
export type GroupLoader = (user: string) => Promise<readonly string[]>;

interface LocalUser {
  sub: BusSubscription;
  groups: Set<string>;
  /** Notices seen while the latest read of the groups is in flight, applied to its result. */
  pending: { joined: Set<string>; left: Set<string> } | undefined;
  /** Reads started; only the latest one's result is applied (an older one may predate a notice). */
  reads: number;
}

interface ListenedGroup {
  sub: BusSubscription;
  /** Local users who are members. */
  members: Set<string>;
}

export interface RelayStats {
  users: number;
  groups: number;
  /** Group events dropped because membership was being re-read after a bus disconnect. */
  droppedWhileStale: number;
}

export class BusRelay implements UserInterest {
  private readonly users = new Map<string, LocalUser>();
  private readonly groups = new Map<string, ListenedGroup>();
  private stale = false;
  private reloadGeneration = 0;
  private droppedWhileStale = 0;
  private closed = false;

  constructor(
    private readonly bus: Bus,
    private readonly delivery: LocalFanOut,
    private readonly loadGroups: GroupLoader,
    private readonly log: Logger,
    private readonly retryMs = 500,
  ) {}

  async firstSocket(user: string): Promise<void> {
    if (this.users.has(user)) return;
    const local: LocalUser = {
      sub: this.bus.subscribe(userEventSubject(user), (bytes) => this.onUserEvent(user, bytes)),
      groups: new Set(),
      pending: undefined,
      reads: 0,
    };
    this.users.set(user, local);
    try {
      // Our interest must reach the server before the groups are read (see the header comment),
      // and before the welcome, after which the client syncs.
      await this.bus.flush();
      await this.readGroups(user, local);
    } catch (err) {
      if (this.users.get(user) === local) this.drop(user, local);
      throw err;
    }
  }

  lastSocket(user: string): void {
    const local = this.users.get(user);
    if (local) this.drop(user, local);
  }

  /** The bus connection dropped: notices may be lost from now on. */
  connectionLost(): void {
    if (this.closed) return;
    this.stale = true;
    this.reloadGeneration++;
  }

  /** The bus connection is back (subscriptions restored by the client): re-read every local user's groups. */
  connectionRestored(): void {
    if (this.closed) return;
    this.stale = true;
    const generation = ++this.reloadGeneration;
    void this.reloadAll(generation);
  }

  stats(): RelayStats {
    return { users: this.users.size, groups: this.groups.size, droppedWhileStale: this.droppedWhileStale };
  }

  close(): void {
    this.closed = true;
    for (const local of this.users.values()) local.sub.unsubscribe();
    for (const group of this.groups.values()) group.sub.unsubscribe();
    this.users.clear();
    this.groups.clear();
  }

  private async reloadAll(generation: number): Promise<void> {
    while (!this.closed && generation === this.reloadGeneration) {
      try {
        await Promise.all([...this.users].map(([user, local]) => this.readGroups(user, local)));
        if (generation !== this.reloadGeneration) return;
        this.stale = false;
        this.log.info({ users: this.users.size, groups: this.groups.size }, 'group membership re-read after bus reconnect');
        return;
      } catch (err) {
        this.log.warn({ err }, 'could not re-read group membership after bus reconnect; retrying');
        await new Promise((resolve) => setTimeout(resolve, this.retryMs));
      }
    }
  }

  /** Read the user's groups and make them the local view, merged with notices seen meanwhile. */
  private async readGroups(user: string, local: LocalUser): Promise<void> {
    const pending = { joined: new Set<string>(), left: new Set<string>() };
    const ticket = ++local.reads;
    local.pending = pending;
    let groups: readonly string[];
    try {
      groups = await this.loadGroups(user);
    } finally {
      if (local.pending === pending) local.pending = undefined;
    }
    if (this.users.get(user) !== local || ticket !== local.reads) return;
    const next = new Set(groups);
    for (const conv of pending.joined) next.add(conv);
    for (const conv of pending.left) next.delete(conv);
    for (const conv of [...local.groups]) if (!next.has(conv)) this.leave(user, local, conv);
    for (const conv of next) this.join(user, local, conv);
  }

  private onUserEvent(user: string, bytes: Uint8Array): void {
    const local = this.users.get(user);
    if (!local) return;
    const { header, frame } = this.decode(bytes);
    if (!frame) return;
    if (header?.j !== undefined) {
      local.pending?.joined.add(header.j);
      local.pending?.left.delete(header.j);
      this.join(user, local, header.j);
    }
    if (header?.l !== undefined) {
      local.pending?.left.add(header.l);
      local.pending?.joined.delete(header.l);
      this.leave(user, local, header.l);
    }
    this.delivery.relay(user, frame);
  }

  private onGroupEvent(conv: string, bytes: Uint8Array): void {
    const group = this.groups.get(conv);
    if (!group) return;
    if (this.stale) {
      this.droppedWhileStale++;
      return;
    }
    const { header, frame } = this.decode(bytes);
    if (!frame) return;
    if (header?.m) this.reconcile(conv, new Set(header.m));
    const skip = header?.x;
    for (const user of group.members) {
      if (skip?.includes(user)) continue;
      this.delivery.relay(user, frame);
    }
  }

  /** A worker re-announced the full member list: correct our view of the local members. */
  private reconcile(conv: string, members: ReadonlySet<string>): void {
    const group = this.groups.get(conv);
    for (const user of [...group?.members ?? []]) {
      const local = this.users.get(user);
      if (local && !members.has(user)) this.leave(user, local, conv);
    }
    for (const user of members) {
      const local = this.users.get(user);
      if (local && !local.groups.has(conv)) this.join(user, local, conv);
    }
  }

  private join(user: string, local: LocalUser, conv: string): void {
    local.groups.add(conv);
    let group = this.groups.get(conv);
    if (!group) {
      group = { sub: this.bus.subscribe(groupEventSubject(conv), (bytes) => this.onGroupEvent(conv, bytes)), members: new Set() };
      this.groups.set(conv, group);
    }
    group.members.add(user);
  }

  private leave(user: string, local: LocalUser, conv: string): void {
    local.groups.delete(conv);
    const group = this.groups.get(conv);
    if (!group) return;
    group.members.delete(user);
    if (group.members.size === 0) {
      group.sub.unsubscribe();
      this.groups.delete(conv);
    }
  }

  private drop(user: string, local: LocalUser): void {
    for (const conv of [...local.groups]) this.leave(user, local, conv);
    local.sub.unsubscribe();
    this.users.delete(user);
  }

  private decode(bytes: Uint8Array): ReturnType<typeof decodeEnvelope> | { header: undefined; frame: undefined } {
    try {
      return decodeEnvelope(bytes);
    } catch (err) {
      this.log.error({ err }, 'malformed delivery envelope dropped');
      return { header: undefined, frame: undefined };
    }
  }
}
