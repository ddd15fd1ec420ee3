// Gapless offline sync across all of a user's conversations in one paged exchange.
// The cursor is the client's own per-conversation high-water map {conv: seq}: it is what the
// client needs anyway to detect gaps, and it lets the server answer with exactly what is missing.
import type { ConversationInfo, Message, RequestParams, SyncResult } from '../protocol/frames.ts';
import type { DeviceSession, EngineSettings } from './api.ts';
import type { ConversationCache } from './conversation-state.ts';
import type { Conversations } from './conversations.ts';
import type { TimelineStore } from './ports.ts';

export class Sync {
  constructor(
    private readonly store: TimelineStore,
    private readonly cache: ConversationCache,
    private readonly conversations: Conversations,
    private readonly settings: EngineSettings,
  ) {}

  async sync(who: DeviceSession, p: RequestParams<'sync'>): Promise<SyncResult> {
    let budget = Math.min(p.limit ?? this.settings.syncPageDefault, this.settings.syncPageMax);
    const since = p.since;
    const memberships = await this.store.listUserConversations(who.user);
    const current = new Set<string>();
    const convs: ConversationInfo[] = [];
    const msgs: Message[] = [];
    let more = false;
    for (const membership of memberships) {
      const state = await this.cache.get(membership.conv);
      const member = state?.members.get(who.user);
      if (!state || !member) continue;
      current.add(state.id);
      const known = Object.hasOwn(since, state.id);
      const from = Math.max(known ? since[state.id]! : 0, member.joined);
      const behind = state.head > from;
      if (!behind && known) continue;
      if (behind && budget === 0) { more = true; continue; }
      convs.push(await this.conversations.info(state, who.user));
      if (!behind) continue;
      const page = await this.store.readAfter(state.id, from, budget);
      msgs.push(...page);
      budget -= page.length;
      const last = page.at(-1)?.seq ?? from;
      if (last < state.head) more = true;
    }
    const removed = Object.keys(since).filter((c) => !current.has(c));
    return { convs, msgs, removed, more };
  }
}
