// Row <-> domain conversions for the CQL chat store, and the commit "intent": the part of a
// commit that is stored in the conversation row by the LWT and applied to the other tables after
// it (see chat-store.ts). Pure functions, no I/O.
import type { types } from 'cassandra-driver';
import type { Message, MessageBody } from '../../protocol/frames.ts';
import type { ContactEdge, Membership, StoredConversation } from '../../engine/ports.ts';
import { compareIds } from '../commit-rules.ts';

type Row = types.Row;

/** What a committed change still has to write outside the conversation row. Stored as JSON in conversations.pending. */
export interface Intent {
  /** The conversation version this commit produced (1 for the create). */
  version: number;
  /** USING TIMESTAMP of every write the intent makes: later commits of the conversation write with larger ones. */
  writeTs: number;
  /** New messages, recall already applied to the ones recalled in the same commit. */
  messages: Message[];
  putMembers: Membership[];
  /** Only users that were members: removing a stranger writes nothing. */
  removeMembers: string[];
  /** Recalled seqs of earlier commits (at or below the previous head). */
  recall: number[];
}

/** The conversations row as the store uses it. */
export interface ConversationRow {
  meta: StoredConversation;
  version: number;
  /** The last commit's intent (possibly not yet applied). */
  pending: Intent | undefined;
}

/** bigint columns arrive as driver Longs. */
export function num(value: unknown): number {
  if (value === null || value === undefined) return 0;
  if (typeof value === 'number') return value;
  return (value as types.Long).toNumber();
}

/**
 * Write timestamps (microseconds) of a conversation's derived rows: created_at in µs plus the
 * version. Strictly increasing per conversation, identical for every replay of the same intent,
 * and close to the real time of creation (so a later real-time DELETE still shadows them).
 */
export function writeTimestamp(createdAtMs: number, version: number): number {
  return createdAtMs * 1000 + version;
}

export function toConversationRow(row: Row): ConversationRow {
  const pendingText = row['pending'] as string | null;
  return {
    meta: {
      id: row['conv'] as string,
      type: row['type'] as StoredConversation['type'],
      title: row['title'] as string,
      epoch: row['epoch'] as string,
      head: num(row['head']),
      memberCount: num(row['member_count']),
      createdBy: row['created_by'] as string,
      createdAt: num(row['created_at']),
    },
    version: num(row['version']),
    pending: pendingText ? JSON.parse(pendingText) as Intent : undefined,
  };
}

export function toMessage(conv: string, row: Row): Message {
  const message: Message = {
    conv,
    seq: num(row['seq']),
    from: row['sender'] as string,
    dev: row['dev'] as string,
    cid: row['cid'] as string,
    kind: row['kind'] as Message['kind'],
    ts: num(row['ts']),
  };
  const body = row['body'] as string | null;
  if (body !== null && body !== undefined) message.body = JSON.parse(body) as MessageBody;
  if (row['recalled'] === true) message.recalled = true;
  return message;
}

export function recalledCopy(message: Message): Message {
  const { body: _dropped, ...rest } = message;
  return { ...rest, recalled: true };
}

export function toMembership(row: Row): Membership {
  return { conv: row['conv'] as string, user: row['user'] as string, role: row['role'] as Membership['role'], joined: num(row['joined']) };
}

export function toContact(row: Row): ContactEdge {
  const edge: ContactEdge = { owner: row['owner'] as string, other: row['other'] as string, state: row['state'] as ContactEdge['state'], ts: num(row['ts']) };
  const note = row['note'] as string | null;
  if (note !== null && note !== undefined) edge.note = note;
  return edge;
}

/**
 * Messages [from..to] of a conversation as of the row's version: the stored rows, overridden by
 * the pending intent (its messages and recalls may not be written yet). Every seq up to the head
 * exists, so a hole means lost data and is reported, never skipped.
 */
export function overlayMessages(conv: string, from: number, to: number, stored: readonly Message[], pending: Intent | undefined): Message[] {
  const bySeq = new Map<number, Message>();
  for (const m of stored) bySeq.set(m.seq, m);
  if (pending) {
    for (const m of pending.messages) if (m.seq >= from && m.seq <= to) bySeq.set(m.seq, structuredClone(m));
    for (const seq of pending.recall) {
      const m = bySeq.get(seq);
      if (m && !m.recalled) bySeq.set(seq, recalledCopy(m));
    }
  }
  const out: Message[] = [];
  for (let seq = from; seq <= to; seq++) {
    const m = bySeq.get(seq);
    if (!m) throw new Error(`cql: conversation ${conv} has no message at seq ${seq} below its head ${to}: data lost`);
    out.push(m);
  }
  return out;
}

/** A conversation's members as of the row's version (stored rows overridden by the pending intent), ordered by user id. */
export function overlayMembers(stored: readonly Membership[], pending: Intent | undefined): Membership[] {
  if (!pending || (pending.putMembers.length === 0 && pending.removeMembers.length === 0)) return [...stored];
  const byUser = new Map(stored.map((m) => [m.user, m]));
  for (const m of pending.putMembers) byUser.set(m.user, { ...m });
  for (const user of pending.removeMembers) byUser.delete(user);
  return [...byUser.values()].sort((a, b) => compareIds(a.user, b.user));
}
