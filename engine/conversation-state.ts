// In-memory view of hot conversations: metadata, head and members. The engine is the only
// writer of a conversation (embedded mode: one process; distributed mode: the worker that owns
// it), so membership checks against this view happen in the same serialized step as the commit
// and cannot race with a concurrent remove.
import { LanternError } from '../protocol/errors.ts';
import type { ConversationAudience, Membership, StoredConversation, TimelineStore } from './ports.ts';

export class ConversationState {
  readonly members = new Map<string, Membership>();
  /** Member ids as an array, rebuilt on membership change: fan-out reuses it for every message. */
  memberIds: readonly string[] = [];
  /** Direct conversations: whether either side blocks the other; undefined until checked.
   *  Contacts resets it on block/unblock, so sends skip two contact reads. */
  blocked: boolean | undefined;
  /** Bumped by every reset of `blocked`, so a check that raced with a block does not cache a stale answer. */
  blockGeneration = 0;

  /** False until the first event after this state was loaded is published (see ConversationAudience.reannounce). */
  private announced = false;

  /** The audience of an event now: everyone in `memberIds`, with the membership change it makes. */
  audience(change: Omit<ConversationAudience, 'members' | 'reannounce'> & { members?: readonly string[] } = {}): ConversationAudience {
    const reannounce = !this.announced;
    this.announced = true;
    return { ...change, members: change.members ?? this.memberIds, ...(reannounce ? { reannounce } : {}) };
  }

  resetBlocked(): void {
    this.blocked = undefined;
    this.blockGeneration++;
  }

  constructor(public meta: StoredConversation, members: Iterable<Membership>) {
    for (const m of members) this.members.set(m.user, m);
    this.refreshIds();
  }

  get id(): string { return this.meta.id; }
  get head(): number { return this.meta.head; }

  /** The membership of `user`, or a not_member error. */
  requireMember(user: string): Membership {
    const m = this.members.get(user);
    if (!m) throw new LanternError('not_member', `not a member of ${this.meta.id}`, { field: 'conv' });
    return m;
  }

  applyMembers(put: readonly Membership[] | undefined, remove: readonly string[] | undefined): void {
    if (!put?.length && !remove?.length) return;
    for (const m of put ?? []) this.members.set(m.user, m);
    for (const u of remove ?? []) this.members.delete(u);
    this.meta = { ...this.meta, memberCount: this.members.size };
    this.refreshIds();
  }

  private refreshIds(): void {
    this.memberIds = [...this.members.keys()];
  }
}

/** LRU cache of ConversationState with de-duplicated concurrent loads. */
export class ConversationCache {
  private readonly states = new Map<string, ConversationState>();
  private readonly loading = new Map<string, Promise<ConversationState | undefined>>();

  /** Conversations with writes queued or in flight (set by the writer); never evicted, so the
   *  writer's view of the head is the only one. */
  isBusy: (conv: string) => boolean = () => false;

  /**
   * Whether this engine is the conversation's single writer (set by the composition root; always
   * true in embedded mode). Another worker may be writing to a conversation this one does not own,
   * so its state is read from the store each time and never cached here.
   */
  owns: (conv: string) => boolean = () => true;

  constructor(private readonly store: TimelineStore, private readonly capacity: number) {}

  /** The state of `conv`, loading it on a miss; undefined when the conversation does not exist. */
  async get(conv: string): Promise<ConversationState | undefined> {
    if (!this.owns(conv)) return this.load(conv, false);
    const hit = this.states.get(conv);
    if (hit) {
      // Map iteration order is insertion order: re-insert to mark as most recently used.
      this.states.delete(conv);
      this.states.set(conv, hit);
      return hit;
    }
    let p = this.loading.get(conv);
    if (!p) {
      p = this.load(conv).finally(() => this.loading.delete(conv));
      this.loading.set(conv, p);
    }
    return p;
  }

  async require(conv: string): Promise<ConversationState> {
    const s = await this.get(conv);
    if (!s) throw new LanternError('not_found', `no conversation ${conv}`, { field: 'conv' });
    return s;
  }

  /** Install the state of a conversation this engine just created. */
  put(state: ConversationState): void {
    if (!this.owns(state.id)) return;
    this.states.set(state.id, state);
    this.evict();
  }

  /** The cached state, without loading it. */
  peek(conv: string): ConversationState | undefined {
    return this.owns(conv) ? this.states.get(conv) : undefined;
  }

  /** Forget every idle cached conversation matching `matches` (e.g. a partition this worker just acquired:
   *  another owner may have written to it since it was cached). */
  invalidateWhere(matches: (conv: string) => boolean): void {
    for (const id of [...this.states.keys()]) if (matches(id) && !this.isBusy(id)) this.states.delete(id);
  }

  /** Forget a conversation (after a failed write its view may be stale). */
  invalidate(conv: string): void {
    this.states.delete(conv);
  }

  get size(): number { return this.states.size; }

  private async load(conv: string, keep = true): Promise<ConversationState | undefined> {
    const meta = await this.store.getConversation(conv);
    if (!meta) return undefined;
    const members = await this.store.listMembers(conv);
    if (!keep) return new ConversationState(meta, members);
    const raced = this.states.get(conv);
    if (raced) return raced;
    const state = new ConversationState(meta, members);
    this.states.set(conv, state);
    this.evict();
    return state;
  }

  private evict(): void {
    if (this.states.size <= this.capacity) return;
    for (const [id, s] of this.states) {
      if (this.states.size <= this.capacity) break;
      if (!this.isBusy(s.id)) this.states.delete(id);
    }
  }
}
