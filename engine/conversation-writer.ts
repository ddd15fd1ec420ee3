// Group commit per conversation. Sends arriving while a commit is in flight are gathered into
// the next commit, so a hot conversation pays one storage round trip per batch, not per message.
// Seqs are assigned only when a batch is built from the committed head, and a batch is atomic,
// so a failed write leaves no gap: its sends are rejected (retryable) and the seqs are reused.
import { LanternError } from '../protocol/errors.ts';
import type { Message } from '../protocol/frames.ts';
import type { ConversationCache, ConversationState } from './conversation-state.ts';
import {
  HeadConflictError, StoreUnavailableError,
  type Clock, type ConversationCommit, type Delivery, type Logger, type Membership, type TimelineStore,
} from './ports.ts';

/** What one queued operation contributes to a commit. */
export interface Change {
  messages: Message[];
  putMembers?: Membership[];
  removeMembers?: string[];
  recall?: number[];
}

/**
 * One queued operation. `build` runs inside the serialized step with the state as committed so
 * far and the seq its first message will get; it may throw LanternError to reject only itself.
 * Operations that change membership are committed alone, so every build sees the committed
 * member set.
 */
export interface Operation {
  readonly changesMembers: boolean;
  build(state: ConversationState, nextSeq: number, ts: number): Change;
}

interface Queued {
  op: Operation;
  resolve(change: Change): void;
  reject(err: unknown): void;
}

const MAX_BATCH = 256;

export class ConversationWriter {
  private readonly queues = new Map<string, Queued[]>();
  private readonly active = new Set<string>();

  constructor(
    private readonly store: TimelineStore,
    private readonly cache: ConversationCache,
    private readonly delivery: Delivery,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    cache.isBusy = (conv) => this.active.has(conv);
  }

  /** Queue an operation on a conversation; resolves with what was committed, after delivery was handed off. */
  submit(state: ConversationState, op: Operation): Promise<Change> {
    return new Promise<Change>((resolve, reject) => {
      let q = this.queues.get(state.id);
      if (!q) { q = []; this.queues.set(state.id, q); }
      q.push({ op, resolve, reject });
      if (!this.active.has(state.id)) {
        this.active.add(state.id);
        void this.drain(state.id);
      }
    });
  }

  private async drain(conv: string): Promise<void> {
    try {
      for (;;) {
        const q = this.queues.get(conv);
        if (!q || q.length === 0) { this.queues.delete(conv); return; }
        const batch = takeBatch(q);
        await this.commitBatch(conv, batch);
      }
    } finally {
      this.active.delete(conv);
    }
  }

  private async commitBatch(conv: string, batch: Queued[]): Promise<void> {
    let state: ConversationState;
    try {
      state = await this.cache.require(conv);
    } catch (err) {
      for (const item of batch) item.reject(err);
      return;
    }
    const ts = this.clock.now();
    let next = state.head + 1;
    const accepted: Array<{ item: Queued; change: Change }> = [];
    const commit: { messages: Message[]; putMembers: Membership[]; removeMembers: string[]; recall: number[] } = {
      messages: [], putMembers: [], removeMembers: [], recall: [],
    };
    for (const item of batch) {
      let change: Change;
      try {
        change = item.op.build(state, next, ts);
      } catch (err) {
        item.reject(err);
        continue;
      }
      next += change.messages.length;
      commit.messages.push(...change.messages);
      if (change.putMembers) commit.putMembers.push(...change.putMembers);
      if (change.removeMembers) commit.removeMembers.push(...change.removeMembers);
      if (change.recall) commit.recall.push(...change.recall);
      accepted.push({ item, change });
    }
    if (accepted.length === 0) return;

    const expectHead = state.head;
    const request: ConversationCommit = { conv, expectHead, messages: commit.messages };
    if (commit.putMembers.length) request.putMembers = commit.putMembers;
    if (commit.removeMembers.length) request.removeMembers = commit.removeMembers;
    if (commit.recall.length) request.recall = commit.recall;

    try {
      await this.store.commit(request);
    } catch (err) {
      // Our view may be stale (another writer, or a partial failure we cannot see): reload next time.
      this.cache.invalidate(conv);
      const fail = toClientError(err, conv);
      this.log.warn({ err, conv, expectHead, ops: accepted.length }, 'conversation commit failed');
      for (const { item } of accepted) item.reject(fail);
      return;
    }

    const last = commit.messages.at(-1);
    if (last) state.meta = { ...state.meta, head: last.seq };
    const before = state.memberIds;
    const wasMember = new Set(before);
    state.applyMembers(request.putMembers, request.removeMembers);
    // A membership batch only adds or only removes, so the larger set is everyone concerned:
    // added users see their invitation, removed users see their removal.
    const members = state.memberIds.length >= before.length ? state.memberIds : before;
    const added = request.putMembers?.map((m) => m.user).filter((u) => !wasMember.has(u));
    const removed = request.removeMembers?.filter((u) => wasMember.has(u));
    for (const m of commit.messages) {
      this.delivery.toConversation(conv, { t: 'msg', m }, state.audience({
        members, ...(added?.length ? { added } : {}), ...(removed?.length ? { removed } : {}),
      }));
    }
    for (const { item, change } of accepted) item.resolve(change);
  }
}

function takeBatch(q: Queued[]): Queued[] {
  // A membership change is committed alone so the next build sees the new member set.
  if (q[0]!.op.changesMembers) return q.splice(0, 1);
  let n = 0;
  while (n < q.length && n < MAX_BATCH && !q[n]!.op.changesMembers) n++;
  return q.splice(0, n);
}

function toClientError(err: unknown, conv: string): LanternError {
  if (err instanceof LanternError) return err;
  if (err instanceof HeadConflictError) {
    return new LanternError('unavailable', `conversation ${conv} changed concurrently; retry`, { cause: err });
  }
  if (err instanceof StoreUnavailableError) {
    return new LanternError('unavailable', `storage unavailable: ${err.message}`, { cause: err });
  }
  return new LanternError('internal', `commit failed for ${conv}`, { cause: err });
}
