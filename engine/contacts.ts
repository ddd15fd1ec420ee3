// Contact relations: request, accept, remove/decline, block, unblock. Each side keeps its own
// edge; changes that touch both sides are written atomically.
import { LanternError } from '../protocol/errors.ts';
import type { ContactInfo, ContactState, RequestParams, RequestResult } from '../protocol/frames.ts';
import type { DeviceSession, EngineSettings } from './api.ts';
import { KeyedSerializer } from './keyed-serializer.ts';
import type { ChatStore, Clock, ContactEdge, Delivery } from './ports.ts';

type EdgeWrite = ContactEdge | { owner: string; other: string; state: 'none' };

/** One key per unordered pair: A→B and B→A touch the same two edges. */
const pairKey = (a: string, b: string): string => JSON.stringify(a < b ? [a, b] : [b, a]);

/**
 * Every change reads both edges and then writes them: two crossed requests interleaving at their
 * awaits would each see no edge and leave the pair requested/incoming with no friendship. Changes
 * of one pair run one at a time here, and the bus routes every contact change of a pair to one
 * owner (the pair's direct conversation partition, engine/bus-engine.ts), so this holds across
 * gateways and workers too.
 */
export class Contacts {
  private readonly serial = new KeyedSerializer();

  constructor(
    private readonly store: ChatStore,
    private readonly delivery: Delivery,
    private readonly settings: EngineSettings,
    private readonly clock: Clock,
    /** Called after a block or unblock between two users (the engine drops its cached block state). */
    private readonly onBlockChange: (a: string, b: string) => void = () => {},
  ) {}

  request(who: DeviceSession, p: RequestParams<'contact.request'>): Promise<ContactInfo> {
    return this.serial.run(pairKey(who.user, p.user), () => this.requestNow(who, p));
  }

  accept(who: DeviceSession, p: RequestParams<'contact.accept'>): Promise<ContactInfo> {
    return this.serial.run(pairKey(who.user, p.user), () => this.acceptNow(who, p));
  }

  remove(who: DeviceSession, p: RequestParams<'contact.remove'>): Promise<ContactInfo> {
    return this.serial.run(pairKey(who.user, p.user), () => this.removeNow(who, p));
  }

  block(who: DeviceSession, p: RequestParams<'contact.block'>): Promise<ContactInfo> {
    return this.serial.run(pairKey(who.user, p.user), () => this.blockNow(who, p));
  }

  unblock(who: DeviceSession, p: RequestParams<'contact.unblock'>): Promise<ContactInfo> {
    return this.serial.run(pairKey(who.user, p.user), () => this.unblockNow(who, p));
  }

  private async pair(me: string, other: string): Promise<[ContactEdge | undefined, ContactEdge | undefined]> {
    if (me === other) throw new LanternError('invalid_field', 'a user cannot be their own contact', { field: 'user' });
    return Promise.all([this.store.getContact(me, other), this.store.getContact(other, me)]);
  }

  private info(user: string, state: ContactState, ts: number): ContactInfo {
    return { user, state, ts };
  }

  private async requestNow(who: DeviceSession, p: RequestParams<'contact.request'>): Promise<ContactInfo> {
    const note = p.note ?? '';
    if (note.length > this.settings.maxTitleLength) throw new LanternError('too_large', `note is longer than ${this.settings.maxTitleLength}`, { field: 'note' });
    const [mine, theirs] = await this.pair(who.user, p.user);
    const ts = this.clock.now();
    if (mine?.state === 'friend') return this.info(p.user, 'friend', mine.ts);
    if (mine?.state === 'blocked') throw new LanternError('blocked', 'unblock this user first', { field: 'user' });
    if (theirs?.state === 'blocked') throw new LanternError('blocked', 'this user does not accept requests from you', { field: 'user' });
    if (mine?.state === 'incoming') return this.befriend(who.user, p.user, ts);
    if (mine?.state === 'requested') return this.info(p.user, 'requested', mine.ts);
    const edges: EdgeWrite[] = [
      { owner: who.user, other: p.user, state: 'requested', ts },
      { owner: p.user, other: who.user, state: 'incoming', ts, ...(note ? { note } : {}) },
    ];
    await this.store.setContacts(edges);
    this.delivery.toUsers([p.user], { t: 'contact', user: who.user, state: 'incoming', ...(note ? { note } : {}) });
    return this.info(p.user, 'requested', ts);
  }

  private async acceptNow(who: DeviceSession, p: RequestParams<'contact.accept'>): Promise<ContactInfo> {
    const [mine] = await this.pair(who.user, p.user);
    if (mine?.state === 'friend') return this.info(p.user, 'friend', mine.ts);
    if (mine?.state !== 'incoming') throw new LanternError('conflict', `no pending request from ${p.user}`, { field: 'user' });
    return this.befriend(who.user, p.user, this.clock.now());
  }

  private async befriend(me: string, other: string, ts: number): Promise<ContactInfo> {
    await this.store.setContacts([
      { owner: me, other, state: 'friend', ts },
      { owner: other, other: me, state: 'friend', ts },
    ]);
    this.delivery.toUsers([other], { t: 'contact', user: me, state: 'friend' });
    this.delivery.toUsers([me], { t: 'contact', user: other, state: 'friend' });
    return this.info(other, 'friend', ts);
  }

  /** Unfriend, decline an incoming request or cancel an outgoing one. Keeps the other side's block. */
  private async removeNow(who: DeviceSession, p: RequestParams<'contact.remove'>): Promise<ContactInfo> {
    const [mine, theirs] = await this.pair(who.user, p.user);
    const ts = this.clock.now();
    if (mine?.state === 'blocked') throw new LanternError('conflict', 'use contact.unblock for a blocked user', { field: 'user' });
    const edges: EdgeWrite[] = [{ owner: who.user, other: p.user, state: 'none' }];
    const touchTheirs = theirs !== undefined && theirs.state !== 'blocked';
    if (touchTheirs) edges.push({ owner: p.user, other: who.user, state: 'none' });
    await this.store.setContacts(edges);
    if (touchTheirs) this.delivery.toUsers([p.user], { t: 'contact', user: who.user, state: 'none' });
    return this.info(p.user, 'none', ts);
  }

  private async blockNow(who: DeviceSession, p: RequestParams<'contact.block'>): Promise<ContactInfo> {
    const [, theirs] = await this.pair(who.user, p.user);
    const ts = this.clock.now();
    const edges: EdgeWrite[] = [{ owner: who.user, other: p.user, state: 'blocked', ts }];
    const touchTheirs = theirs !== undefined && theirs.state !== 'blocked';
    if (touchTheirs) edges.push({ owner: p.user, other: who.user, state: 'none' });
    await this.store.setContacts(edges);
    this.onBlockChange(who.user, p.user);
    // The blocked user learns only that the relation is gone, not that they were blocked.
    if (touchTheirs) this.delivery.toUsers([p.user], { t: 'contact', user: who.user, state: 'none' });
    return this.info(p.user, 'blocked', ts);
  }

  private async unblockNow(who: DeviceSession, p: RequestParams<'contact.unblock'>): Promise<ContactInfo> {
    const [mine] = await this.pair(who.user, p.user);
    if (mine?.state !== 'blocked') throw new LanternError('conflict', `${p.user} is not blocked`, { field: 'user' });
    await this.store.setContacts([{ owner: who.user, other: p.user, state: 'none' }]);
    this.onBlockChange(who.user, p.user);
    return this.info(p.user, 'none', this.clock.now());
  }

  async list(who: DeviceSession): Promise<RequestResult<'contact.list'>> {
    const edges = await this.store.listContacts(who.user);
    return { contacts: edges.map((e) => this.info(e.other, e.state, e.ts)) };
  }

  async friends(user: string): Promise<string[]> {
    const edges = await this.store.listContacts(user);
    return edges.filter((e) => e.state === 'friend').map((e) => e.other);
  }

  async areFriends(a: string, b: string): Promise<boolean> {
    return (await this.store.getContact(a, b))?.state === 'friend';
  }
}
