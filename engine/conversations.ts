// Creating and describing conversations: direct chats, groups and their membership.
import { randomUUID } from 'node:crypto';
import { LanternError } from '../protocol/errors.ts';
import type { ConversationInfo, MemberRole, RequestParams, RequestResult } from '../protocol/frames.ts';
import type { DeviceSession, EngineSettings } from './api.ts';
import { ConversationState, type ConversationCache } from './conversation-state.ts';
import type { ConversationWriter } from './conversation-writer.ts';
import { systemMessage } from './messaging.ts';
import { HeadConflictError, type ChatStore, type Clock, type Delivery, type Membership, type StoredConversation } from './ports.ts';

/** Deterministic, unambiguous id of the direct conversation of two users (ids may contain ':'). */
export function directConversationId(a: string, b: string): string {
  const [x, y] = a < b ? [a, b] : [b, a];
  return `d:${x.length}:${x}:${y}`;
}

const GROUP_PREFIX = 'g:';

/** Group ids are `g:<uuid>`; direct ids `d:...` (directConversationId). */
export function isGroupConversation(conv: string): boolean {
  return conv.startsWith(GROUP_PREFIX);
}

/** The other user of a direct conversation id, seen from `user`. */
export function directPeer(conv: string, user: string): string | undefined {
  const m = /^d:(\d+):/.exec(conv);
  if (!m) return undefined;
  const start = m[0].length;
  const x = conv.slice(start, start + Number(m[1]));
  const y = conv.slice(start + x.length + 1);
  return user === x ? y : user === y ? x : undefined;
}

type SeqResult = { conv: string; seq: number };

export class Conversations {
  private readonly creating = new Map<string, Promise<ConversationState>>();

  constructor(
    private readonly store: ChatStore,
    private readonly cache: ConversationCache,
    private readonly writer: ConversationWriter,
    private readonly delivery: Delivery,
    private readonly settings: EngineSettings,
    private readonly clock: Clock,
  ) {}

  async info(state: ConversationState, user: string): Promise<ConversationInfo> {
    return this.describeFor(state.meta, state.requireMember(user));
  }

  /** ConversationInfo from metadata and a membership alone: sync and conv.list use it so that
   *  listing a user's conversations never loads their member lists. */
  async describeFor(meta: StoredConversation, m: Membership): Promise<ConversationInfo> {
    const read = await this.store.getReadCursor(meta.id, m.user);
    const info: ConversationInfo = {
      conv: meta.id, type: meta.type, title: meta.title, epoch: meta.epoch,
      head: meta.head, role: m.role, joined: m.joined, read, members: meta.memberCount,
    };
    if (meta.type === 'direct') {
      const peer = directPeer(meta.id, m.user);
      if (peer !== undefined) info.peer = peer;
    }
    return info;
  }

  /** Metadata of a conversation: the writer's view when cached (never behind the store), else the store's. */
  async meta(conv: string): Promise<StoredConversation | undefined> {
    return this.cache.peek(conv)?.meta ?? this.store.getConversation(conv);
  }

  async direct(who: DeviceSession, p: RequestParams<'conv.direct'>): Promise<ConversationInfo> {
    if (p.user === who.user) throw new LanternError('invalid_field', 'a direct conversation needs another user', { field: 'user' });
    const [mine, theirs] = await Promise.all([this.store.getContact(who.user, p.user), this.store.getContact(p.user, who.user)]);
    if (mine?.state === 'blocked' || theirs?.state === 'blocked') throw new LanternError('blocked', 'one side has blocked the other', { field: 'user' });
    if (mine?.state !== 'friend') throw new LanternError('not_contact', `${p.user} is not a contact`, { field: 'user' });
    const id = directConversationId(who.user, p.user);
    const state = (await this.cache.get(id)) ?? await this.create(id, {
      id, type: 'direct', title: '', epoch: randomUUID(), createdBy: who.user, createdAt: this.clock.now(),
    }, [who.user, p.user].map((user) => ({ conv: id, user, role: 'member' as MemberRole, joined: 0 })));
    return this.info(state, who.user);
  }

  /** Create a conversation once, even when two requests race to create it. */
  private create(id: string, meta: Omit<StoredConversation, 'head' | 'memberCount'>, members: Membership[], firstNotice?: Parameters<typeof systemMessage>[3]): Promise<ConversationState> {
    let p = this.creating.get(id);
    if (!p) {
      p = this.createOnce(id, meta, members, firstNotice).finally(() => this.creating.delete(id));
      this.creating.set(id, p);
    }
    return p;
  }

  private async createOnce(id: string, meta: Omit<StoredConversation, 'head' | 'memberCount'>, members: Membership[], firstNotice?: Parameters<typeof systemMessage>[3]): Promise<ConversationState> {
    const messages = firstNotice ? [systemMessage(id, 1, meta.createdAt, firstNotice)] : [];
    try {
      await this.store.commit({ conv: id, expectHead: 0, create: meta, messages, putMembers: members });
    } catch (err) {
      // Another writer created it first: use theirs.
      if (err instanceof HeadConflictError || (await this.store.getConversation(id))) {
        return this.cache.require(id);
      }
      throw new LanternError('unavailable', `could not create ${id}`, { cause: err });
    }
    const state = new ConversationState({ ...meta, head: messages.length, memberCount: members.length }, members);
    this.cache.put(state);
    for (const m of messages) this.delivery.toConversation(id, { t: 'msg', m }, state.audience({ added: state.memberIds }));
    return state;
  }

  async createGroup(who: DeviceSession, p: RequestParams<'group.create'>): Promise<ConversationInfo> {
    this.checkTitle(p.title);
    const invited = this.uniqueUsers(p.members).filter((u) => u !== who.user);
    if (invited.length + 1 > this.settings.maxGroupMembers) {
      throw new LanternError('group_full', `a group holds at most ${this.settings.maxGroupMembers} members`, { field: 'members' });
    }
    const id = `${GROUP_PREFIX}${randomUUID()}`;
    const members: Membership[] = [
      { conv: id, user: who.user, role: 'owner', joined: 0 },
      ...invited.map((user) => ({ conv: id, user, role: 'member' as MemberRole, joined: 0 })),
    ];
    const now = this.clock.now();
    const state = await this.create(id, { id, type: 'group', title: p.title, epoch: randomUUID(), createdBy: who.user, createdAt: now },
      members, { event: 'created', by: who.user, users: invited, title: p.title });
    return this.info(state, who.user);
  }

  async add(who: DeviceSession, p: RequestParams<'group.add'>): Promise<SeqResult> {
    const users = this.uniqueUsers(p.users);
    const state = await this.group(p.conv);
    const change = await this.writer.submit(state, {
      changesMembers: true,
      build: (s, seq, ts) => {
        this.requireRole(s, who.user, ['owner', 'admin']);
        const fresh = users.filter((u) => !s.members.has(u));
        if (fresh.length === 0) throw new LanternError('conflict', 'every user named is already a member', { field: 'users' });
        if (s.members.size + fresh.length > this.settings.maxGroupMembers) {
          throw new LanternError('group_full', `a group holds at most ${this.settings.maxGroupMembers} members`, { field: 'users' });
        }
        // joined = seq - 1: new members see the notice that added them, nothing before it.
        return {
          messages: [systemMessage(p.conv, seq, ts, { event: 'joined', by: who.user, users: fresh })],
          putMembers: fresh.map((user) => ({ conv: p.conv, user, role: 'member' as MemberRole, joined: seq - 1 })),
        };
      },
    });
    return { conv: p.conv, seq: change.messages[0]!.seq };
  }

  async remove(who: DeviceSession, p: RequestParams<'group.remove'>): Promise<SeqResult> {
    const users = this.uniqueUsers(p.users);
    const state = await this.group(p.conv);
    const change = await this.writer.submit(state, {
      changesMembers: true,
      build: (s, seq, ts) => {
        const actor = this.requireRole(s, who.user, ['owner', 'admin']);
        for (const u of users) {
          const target = s.members.get(u);
          if (!target) throw new LanternError('not_member', `${u} is not a member`, { field: 'users' });
          if (u === who.user) throw new LanternError('conflict', 'use group.leave to leave', { field: 'users' });
          if (target.role === 'owner' || (target.role === 'admin' && actor.role !== 'owner')) {
            throw new LanternError('forbidden', `only the owner may remove ${target.role === 'owner' ? 'the owner' : 'an admin'}`, { field: 'users' });
          }
        }
        return { messages: [systemMessage(p.conv, seq, ts, { event: 'removed', by: who.user, users })], removeMembers: users };
      },
    });
    return { conv: p.conv, seq: change.messages[0]!.seq };
  }

  async leave(who: DeviceSession, p: RequestParams<'group.leave'>): Promise<SeqResult> {
    const state = await this.group(p.conv);
    const change = await this.writer.submit(state, {
      changesMembers: true,
      build: (s, seq, ts) => {
        const me = s.requireMember(who.user);
        const messages = [systemMessage(p.conv, seq, ts, { event: 'left', by: who.user })];
        const putMembers: Membership[] = [];
        if (me.role === 'owner') {
          // Ownership passes to the longest-standing admin, else the longest-standing member.
          const heir = [...s.members.values()].filter((m) => m.user !== who.user)
            .sort((a, b) => rank(a.role) - rank(b.role) || a.joined - b.joined || (a.user < b.user ? -1 : 1))[0];
          if (heir) {
            putMembers.push({ ...heir, role: 'owner' });
            messages.push(systemMessage(p.conv, seq + 1, ts, { event: 'role', by: who.user, users: [heir.user], role: 'owner' }));
          }
        }
        return { messages, putMembers, removeMembers: [who.user] };
      },
    });
    return { conv: p.conv, seq: change.messages[0]!.seq };
  }

  async setRole(who: DeviceSession, p: RequestParams<'group.role'>): Promise<SeqResult> {
    const state = await this.group(p.conv);
    const change = await this.writer.submit(state, {
      changesMembers: true,
      build: (s, seq, ts) => {
        this.requireRole(s, who.user, ['owner']);
        const target = s.members.get(p.user);
        if (!target) throw new LanternError('not_member', `${p.user} is not a member`, { field: 'user' });
        if (target.role === 'owner') throw new LanternError('conflict', 'the owner keeps the owner role', { field: 'user' });
        return {
          messages: [systemMessage(p.conv, seq, ts, { event: 'role', by: who.user, users: [p.user], role: p.role })],
          putMembers: [{ ...target, role: p.role }],
        };
      },
    });
    return { conv: p.conv, seq: change.messages[0]!.seq };
  }

  async list(who: DeviceSession): Promise<RequestResult<'conv.list'>> {
    const memberships = await this.store.listUserConversations(who.user);
    const convs: ConversationInfo[] = [];
    for (const m of memberships) {
      const meta = await this.meta(m.conv);
      if (meta) convs.push(await this.describeFor(meta, m));
    }
    return { convs };
  }

  async describe(who: DeviceSession, p: RequestParams<'conv.info'>): Promise<RequestResult<'conv.info'>> {
    const state = await this.cache.require(p.conv);
    const conv = await this.info(state, who.user);
    const members = [...state.members.values()].sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0))
      .map(({ user, role, joined }) => ({ user, role, joined }));
    return { conv, members };
  }

  private async group(conv: string): Promise<ConversationState> {
    const state = await this.cache.require(conv);
    if (state.meta.type !== 'group') throw new LanternError('conflict', `${conv} is not a group`, { field: 'conv' });
    return state;
  }

  private requireRole(s: ConversationState, user: string, roles: MemberRole[]): Membership {
    const m = s.requireMember(user);
    if (!roles.includes(m.role)) throw new LanternError('forbidden', `needs role ${roles.join(' or ')}`);
    return m;
  }

  private uniqueUsers(users: string[]): string[] {
    if (users.length > this.settings.maxUsersPerCall) {
      throw new LanternError('too_large', `at most ${this.settings.maxUsersPerCall} users per call`, { field: 'users' });
    }
    return [...new Set(users)];
  }

  private checkTitle(title: string): void {
    if (title.length > this.settings.maxTitleLength) {
      throw new LanternError('too_large', `title is longer than ${this.settings.maxTitleLength}`, { field: 'title' });
    }
  }
}

function rank(role: MemberRole): number {
  return role === 'owner' ? 0 : role === 'admin' ? 1 : 2;
}
