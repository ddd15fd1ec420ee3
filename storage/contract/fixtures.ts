// Builders shared by the storage contract suites. Every id embeds a random run id so a suite
// can share one backend (e.g. one Cassandra keyspace) across tests and runs without collisions.
import { randomUUID } from 'node:crypto';
import type { Message } from '../../protocol/frames.ts';
import { HeadConflictError, StoreUnavailableError, type ConversationCommit, type Membership } from '../../engine/ports.ts';

/** A fresh id with a readable prefix, unique across tests and runs. */
export const uid = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 12)}`;

export function textMessage(conv: string, seq: number, from: string, cid = uid('cid'), text = `m${seq}`): Message {
  return { conv, seq, from, dev: 'phone', cid, kind: 'text', body: { text }, ts: 1_700_000_000_000 + seq };
}

export function systemMessage(conv: string, seq: number, by: string, event: 'created' | 'recalled', extra: { seq?: number } = {}): Message {
  return { conv, seq, from: by, dev: '', cid: '', kind: 'system', body: { event, by, ...extra }, ts: 1_700_000_000_000 + seq };
}

export function member(conv: string, user: string, role: Membership['role'] = 'member', joined = 0): Membership {
  return { conv, user, role, joined };
}

/** A commit that creates `conv` as a group owned by `owner`, with `count` text messages from the owner. */
export function createCommit(conv: string, owner: string, count: number, members: string[] = []): ConversationCommit {
  return {
    conv,
    expectHead: 0,
    create: { id: conv, type: 'group', title: `title of ${conv}`, epoch: uid('ep'), createdBy: owner, createdAt: 1_700_000_000_000 },
    messages: Array.from({ length: count }, (_, i) => textMessage(conv, i + 1, owner)),
    putMembers: [member(conv, owner, 'owner'), ...members.map((u) => member(conv, u))],
  };
}

/** `count` text messages continuing after `head`. */
export function appendCommit(conv: string, head: number, from: string, count: number): ConversationCommit {
  return { conv, expectHead: head, messages: Array.from({ length: count }, (_, i) => textMessage(conv, head + 1 + i, from)) };
}

/** The error a malformed commit must fail with: a plain rejection, neither a conflict nor "retry later". */
export function isPlainRejection(error: unknown): boolean {
  return error instanceof Error && !(error instanceof HeadConflictError) && !(error instanceof StoreUnavailableError);
}

/** The rejection reason of `promise`, or undefined if it resolved. */
export const failure = (promise: Promise<unknown>): Promise<unknown> => promise.then(() => undefined, (e: unknown) => e);

export const seqs = (messages: readonly Message[]): number[] => messages.map((m) => m.seq);
