// Per-conversation delivery state: the contiguous cursor (highest seq delivered with no gap
// below it), the conversation's epoch, and a buffer of messages that arrived ahead of the
// cursor. Pure bookkeeping, no I/O: the client feeds it live `msg` events and `sync` pages
// and emits what it returns, which makes "exactly once, in seq order" a property of this file.
import type { ConversationInfo, Message, SyncResult } from '../protocol/frames.ts';

/** What a CursorStore persists: enough to resume sync where the last session stopped. */
export interface PersistedSyncState {
  /** welcome.epoch of the data set the cursors refer to. */
  epoch?: string | undefined;
  convs: Record<string, { seq: number; epoch?: string | undefined }>;
}

/**
 * Where cursors survive restarts (localStorage, IndexedDB, a file...). `save` is called with
 * a full snapshot after changes; calls never overlap (the client waits for one to finish).
 */
export interface CursorStore {
  load(): PersistedSyncState | undefined | Promise<PersistedSyncState | undefined>;
  save(state: PersistedSyncState): void | Promise<void>;
}

/** The default store: keeps the snapshot in memory, so state lasts as long as the process. */
export class MemoryCursorStore implements CursorStore {
  private state: PersistedSyncState | undefined;

  load(): PersistedSyncState | undefined {
    return this.state === undefined ? undefined : cloneState(this.state);
  }

  save(state: PersistedSyncState): void {
    this.state = cloneState(state);
  }
}

function cloneState(state: PersistedSyncState): PersistedSyncState {
  const convs: PersistedSyncState['convs'] = {};
  for (const [conv, c] of Object.entries(state.convs)) convs[conv] = { ...c };
  return { epoch: state.epoch, convs };
}

interface ConversationCursor {
  /** Highest contiguously delivered seq; undefined until known (then sync starts at `joined`). */
  cursor: number | undefined;
  /** ConversationInfo.epoch once a sync told us; undefined if only live events were seen. */
  epoch: string | undefined;
  /** Messages above cursor+1, keyed by seq, waiting for the gap below them to fill. */
  ahead: Map<number, Message>;
}

export interface AcceptResult {
  /** Messages that became deliverable, in seq order (possibly none). */
  deliver: Message[];
  /** True when a message is known to be missing below one we hold: sync. */
  gap: boolean;
}

export interface PageOutcome {
  deliver: Message[];
  /** Conversations the user no longer belongs to; their state is gone. */
  removed: string[];
  /** Conversations whose epoch changed; their state was dropped and they reload from `joined`. */
  reset: string[];
  /** True when the page moved any cursor or state; a `more` page without progress is a server bug. */
  progressed: boolean;
}

export class SyncState {
  private serverEpoch: string | undefined;
  private readonly convs = new Map<string, ConversationCursor>();

  static fromPersisted(saved: PersistedSyncState | undefined): SyncState {
    const state = new SyncState();
    if (saved === undefined) return state;
    state.serverEpoch = saved.epoch;
    for (const [conv, c] of Object.entries(saved.convs)) {
      if (Number.isSafeInteger(c.seq) && c.seq >= 0) state.convs.set(conv, { cursor: c.seq, epoch: c.epoch, ahead: new Map() });
    }
    return state;
  }

  /** Snapshot for a CursorStore: only cursors; buffered messages are refetched by sync. */
  toPersisted(): PersistedSyncState {
    const convs: PersistedSyncState['convs'] = {};
    for (const [conv, c] of this.convs) {
      if (c.cursor !== undefined) convs[conv] = c.epoch === undefined ? { seq: c.cursor } : { seq: c.cursor, epoch: c.epoch };
    }
    return { epoch: this.serverEpoch, convs };
  }

  get epoch(): string | undefined {
    return this.serverEpoch;
  }

  /** Record welcome.epoch; returns true when it differs from ours and all state was dropped. */
  setServerEpoch(epoch: string): boolean {
    const changed = this.serverEpoch !== undefined && this.serverEpoch !== epoch;
    if (changed) this.convs.clear();
    this.serverEpoch = epoch;
    return changed;
  }

  cursor(conv: string): number | undefined {
    return this.convs.get(conv)?.cursor;
  }

  /** The `since` map for a sync request. Conversations with unknown cursors are left out on
   *  purpose: the server then answers them from the member's `joined` seq. */
  since(): Record<string, number> {
    const since: Record<string, number> = {};
    for (const [conv, c] of this.convs) if (c.cursor !== undefined) since[conv] = c.cursor;
    return since;
  }

  /** Conversations holding messages above a gap. */
  gaps(): Array<{ conv: string; cursor: number | undefined; nextHeld: number }> {
    const out: Array<{ conv: string; cursor: number | undefined; nextHeld: number }> = [];
    for (const [conv, c] of this.convs) {
      if (c.ahead.size > 0) out.push({ conv, cursor: c.cursor, nextHeld: Math.min(...c.ahead.keys()) });
    }
    return out;
  }

  /** Take one message (live or from sync): deliver it if it is next, hold it if early, drop it if seen. */
  accept(m: Message): AcceptResult {
    let c = this.convs.get(m.conv);
    if (c === undefined) {
      c = { cursor: undefined, epoch: undefined, ahead: new Map() };
      this.convs.set(m.conv, c);
    }
    // A conversation we know nothing about: seq 1 has nothing below it, anything else may
    // have visible messages below it that only a sync (which knows `joined`) can tell.
    const cursor = c.cursor ?? (m.seq === 1 ? 0 : undefined);
    if (cursor === undefined) {
      if (!c.ahead.has(m.seq)) c.ahead.set(m.seq, m);
      return { deliver: [], gap: true };
    }
    if (m.seq <= cursor || c.ahead.has(m.seq)) return { deliver: [], gap: false };
    if (m.seq > cursor + 1) {
      c.ahead.set(m.seq, m);
      return { deliver: [], gap: true };
    }
    c.cursor = m.seq;
    const deliver = [m];
    drain(c, deliver);
    return { deliver, gap: false };
  }

  /** Apply one `sync` result page. */
  applyPage(page: SyncResult): PageOutcome {
    const out: PageOutcome = { deliver: [], removed: [], reset: [], progressed: false };
    for (const conv of page.removed) {
      this.convs.delete(conv);
      out.removed.push(conv);
      out.progressed = true;
    }
    // Messages of a conversation whose epoch changed were computed against the cursor we
    // just dropped; skip them and let the next page reload the conversation from `joined`.
    const skip = new Set<string>();
    for (const info of page.convs) {
      if (this.applyInfo(info, out)) skip.add(info.conv);
    }
    for (const m of page.msgs) {
      if (skip.has(m.conv)) continue;
      const r = this.accept(m);
      if (r.deliver.length > 0) {
        out.deliver.push(...r.deliver);
        out.progressed = true;
      }
    }
    return out;
  }

  /** Returns true when the conversation was reset because its epoch changed. */
  private applyInfo(info: ConversationInfo, out: PageOutcome): boolean {
    const c = this.convs.get(info.conv);
    if (c !== undefined && c.epoch !== undefined && c.epoch !== info.epoch) {
      this.convs.set(info.conv, { cursor: undefined, epoch: info.epoch, ahead: new Map() });
      out.reset.push(info.conv);
      out.progressed = true;
      return true;
    }
    const state = c ?? { cursor: undefined, epoch: undefined, ahead: new Map<number, Message>() };
    if (c === undefined) this.convs.set(info.conv, state);
    state.epoch = info.epoch;
    // Nothing at or below `joined` is visible to this member, so the cursor starts there.
    if (state.cursor === undefined || state.cursor < info.joined) {
      state.cursor = info.joined;
      for (const seq of state.ahead.keys()) if (seq <= info.joined) state.ahead.delete(seq);
      drain(state, out.deliver);
      out.progressed = true;
    }
    return false;
  }
}

/** Move held messages that became contiguous into `deliver`. */
function drain(c: ConversationCursor, deliver: Message[]): void {
  if (c.cursor === undefined) return;
  for (let next = c.ahead.get(c.cursor + 1); next !== undefined; next = c.ahead.get(c.cursor + 1)) {
    c.ahead.delete(next.seq);
    c.cursor = next.seq;
    deliver.push(next);
  }
}
