// In-process ChatStore for engine unit tests. Same contract as the LMDB adapter (the shared
// suite in storage/contract/ runs against both): values are cloned in and out so callers can
// never alias stored state, and commit() applies all of a change or none of it.
import { randomUUID } from 'node:crypto';
import type { Message } from '../../protocol/frames.ts';
import {
  HeadConflictError,
  type ChatStore, type ContactEdge, type ConversationCommit, type Membership, type StoredConversation,
} from '../../engine/ports.ts';
import { compareIds, validateCommit, validateCursor } from '../commit-rules.ts';

interface ConversationState {
  meta: StoredConversation;
  /** messages[seq - 1]; seqs are contiguous from 1. */
  messages: Message[];
  members: Map<string, Membership>;
  /** `${from}\n${cid}` -> seq */
  clientIds: Map<string, number>;
}

const clone = <T>(value: T): T => structuredClone(value);

export class MemoryChatStore implements ChatStore {
  readonly epoch: string;
  private readonly convs = new Map<string, ConversationState>();
  /** user -> conv -> membership (the same objects as in ConversationState.members). */
  private readonly userConvs = new Map<string, Map<string, Membership>>();
  /** conv -> user -> seq. Separate from ConversationState: a cursor does not require the conversation. */
  private readonly readCursors = new Map<string, Map<string, number>>();
  private readonly contacts = new Map<string, Map<string, ContactEdge>>();
  private readonly lastSeen = new Map<string, number>();
  private closed = false;

  constructor(options: { epoch?: string } = {}) {
    this.epoch = options.epoch ?? randomUUID();
  }

  async commit(change: ConversationCommit): Promise<void> {
    this.assertOpen();
    validateCommit(change);
    const { conv, expectHead } = change;
    let state = this.convs.get(conv);
    // Every check happens before the first mutation: that is what makes this commit atomic.
    if (change.create) {
      if (state) throw new HeadConflictError(conv, expectHead, state.meta.head);
    } else {
      if (!state) throw new Error(`commit ${conv}: conversation does not exist`);
      if (state.meta.head !== expectHead) throw new HeadConflictError(conv, expectHead, state.meta.head);
    }
    const messages = change.messages.map(clone);
    const putMembers = (change.putMembers ?? []).map(clone);

    if (!state) {
      state = {
        meta: { ...clone(change.create!), head: 0, memberCount: 0 },
        messages: [], members: new Map(), clientIds: new Map(),
      };
      this.convs.set(conv, state);
    }
    for (const m of messages) {
      state.messages.push(m);
      const key = `${m.from}\n${m.cid}`;
      // The first commit of a client id wins: it is the seq the sender was acknowledged with.
      if (m.cid !== '' && !state.clientIds.has(key)) state.clientIds.set(key, m.seq);
    }
    state.meta.head = expectHead + messages.length;
    for (const member of putMembers) {
      if (!state.members.has(member.user)) state.meta.memberCount++;
      state.members.set(member.user, member);
      this.userIndex(member.user).set(conv, member);
    }
    for (const user of change.removeMembers ?? []) {
      if (!state.members.delete(user)) continue;
      state.meta.memberCount--;
      this.userConvs.get(user)?.delete(conv);
    }
    for (const seq of change.recall ?? []) {
      const original = state.messages[seq - 1]!;
      delete original.body;
      original.recalled = true;
    }
  }

  async getConversation(conv: string): Promise<StoredConversation | undefined> {
    this.assertOpen();
    const state = this.convs.get(conv);
    return state && clone(state.meta);
  }

  async getMembership(conv: string, user: string): Promise<Membership | undefined> {
    this.assertOpen();
    const member = this.convs.get(conv)?.members.get(user);
    return member && clone(member);
  }

  async listMembers(conv: string): Promise<Membership[]> {
    this.assertOpen();
    const members = [...(this.convs.get(conv)?.members.values() ?? [])];
    return members.sort((a, b) => compareIds(a.user, b.user)).map(clone);
  }

  async listUserConversations(user: string): Promise<Membership[]> {
    this.assertOpen();
    const memberships = [...(this.userConvs.get(user)?.values() ?? [])];
    return memberships.sort((a, b) => compareIds(a.conv, b.conv)).map(clone);
  }

  async readAfter(conv: string, afterSeq: number, limit: number): Promise<Message[]> {
    this.assertOpen();
    const messages = this.convs.get(conv)?.messages ?? [];
    if (limit <= 0) return [];
    const from = Math.max(0, afterSeq);
    return messages.slice(from, from + limit).map(clone);
  }

  async readBefore(conv: string, beforeSeq: number, limit: number): Promise<Message[]> {
    this.assertOpen();
    const messages = this.convs.get(conv)?.messages ?? [];
    if (limit <= 0) return [];
    const end = Math.min(messages.length, Math.max(0, beforeSeq - 1));
    return messages.slice(Math.max(0, end - limit), end).map(clone);
  }

  async getMessage(conv: string, seq: number): Promise<Message | undefined> {
    this.assertOpen();
    if (!Number.isSafeInteger(seq) || seq < 1) return undefined;
    const message = this.convs.get(conv)?.messages[seq - 1];
    return message && clone(message);
  }

  async findByClientId(conv: string, from: string, cid: string): Promise<number | undefined> {
    this.assertOpen();
    return this.convs.get(conv)?.clientIds.get(`${from}\n${cid}`);
  }

  async advanceReadCursor(conv: string, user: string, seq: number): Promise<number> {
    this.assertOpen();
    validateCursor(conv, user, seq);
    let cursors = this.readCursors.get(conv);
    if (!cursors) this.readCursors.set(conv, cursors = new Map());
    const next = Math.max(cursors.get(user) ?? 0, seq);
    cursors.set(user, next);
    return next;
  }

  async getReadCursor(conv: string, user: string): Promise<number> {
    this.assertOpen();
    return this.readCursors.get(conv)?.get(user) ?? 0;
  }

  async getReadCursors(conv: string): Promise<Record<string, number>> {
    this.assertOpen();
    const result: Record<string, number> = {};
    const users = [...(this.readCursors.get(conv)?.entries() ?? [])].sort((a, b) => compareIds(a[0], b[0]));
    for (const [user, seq] of users) result[user] = seq;
    return result;
  }

  async setContacts(edges: ReadonlyArray<ContactEdge | { owner: string; other: string; state: 'none' }>): Promise<void> {
    this.assertOpen();
    const copies = edges.map(clone);
    for (const edge of copies) {
      if (edge.state === 'none') this.contacts.get(edge.owner)?.delete(edge.other);
      else this.contactIndex(edge.owner).set(edge.other, edge);
    }
  }

  async getContact(owner: string, other: string): Promise<ContactEdge | undefined> {
    this.assertOpen();
    const edge = this.contacts.get(owner)?.get(other);
    return edge && clone(edge);
  }

  async listContacts(owner: string): Promise<ContactEdge[]> {
    this.assertOpen();
    const edges = [...(this.contacts.get(owner)?.values() ?? [])];
    return edges.sort((a, b) => compareIds(a.other, b.other)).map(clone);
  }

  async setLastSeen(user: string, ts: number): Promise<void> {
    this.assertOpen();
    this.lastSeen.set(user, ts);
  }

  async getLastSeen(users: readonly string[]): Promise<Record<string, number>> {
    this.assertOpen();
    const result: Record<string, number> = {};
    for (const user of users) {
      const ts = this.lastSeen.get(user);
      if (ts !== undefined) result[user] = ts;
    }
    return result;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('MemoryChatStore is closed');
  }

  private userIndex(user: string): Map<string, Membership> {
    let index = this.userConvs.get(user);
    if (!index) this.userConvs.set(user, index = new Map());
    return index;
  }

  private contactIndex(owner: string): Map<string, ContactEdge> {
    let index = this.contacts.get(owner);
    if (!index) this.contacts.set(owner, index = new Map());
    return index;
  }
}
