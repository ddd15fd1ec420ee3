// Gapless offline sync across all of a user's conversations in one paged exchange.
// The cursor is the client's own per-conversation high-water map {conv: seq}: it is what the
// client needs anyway to detect gaps, and it lets the server answer with exactly what is missing.
import type { ConversationInfo, Message, RequestParams, SyncResult } from '../protocol/frames.ts';
import type { DeviceSession, EngineSettings } from './api.ts';
import type { Conversations } from './conversations.ts';
import type { TimelineStore } from './ports.ts';

export class Sync {
  constructor(
    private readonly store: TimelineStore,
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
    // Metadata and the user's own membership only: member lists are never loaded here.
    for (const member of memberships) {
      const meta = await this.conversations.meta(member.conv);
      if (!meta) continue;
      current.add(meta.id);
      const known = Object.hasOwn(since, meta.id);
      const from = Math.max(known ? since[meta.id]! : 0, member.joined);
      const behind = meta.head > from;
      if (!behind && known) continue;
      if (behind && budget === 0) { more = true; continue; }
      convs.push(await this.conversations.describeFor(meta, member));
      if (!behind) continue;
      const page = await this.store.readAfter(meta.id, from, Math.min(budget, meta.head - from));
      msgs.push(...page);
      budget -= page.length;
      const last = page.at(-1)?.seq ?? from;
      if (last < meta.head) more = true;
    }
    const removed = Object.keys(since).filter((c) => !current.has(c));
    return { convs, msgs, removed, more };
  }
}
