// Test harness: a chat engine over the in-memory store with a recording delivery and a manual clock.
import { MemoryChatStore } from '../../storage/memory/chat-store.ts';
import { MemoryPresenceRegistry } from '../../storage/memory/presence-registry.ts';
import type { RequestParams, RequestResult, RequestType, ServerEvent } from '../../protocol/frames.ts';
import type { DeviceSession, Engine, EngineSettings } from '../api.ts';
import { createChatEngine, type ChatEngineDeps } from '../chat-engine.ts';
import { audienceUsers, type ChatStore, type ConversationAudience, type Delivery } from '../ports.ts';

export class RecordingDelivery implements Delivery {
  readonly events = new Map<string, ServerEvent[]>();
  toUsers(users: readonly string[], event: ServerEvent): void {
    for (const u of users) {
      let list = this.events.get(u);
      if (!list) { list = []; this.events.set(u, list); }
      list.push(event);
    }
  }
  toConversation(_conv: string, event: ServerEvent, audience: ConversationAudience): void {
    this.toUsers(audienceUsers(audience), event);
  }
  of<T extends ServerEvent['t']>(user: string, t: T): Array<Extract<ServerEvent, { t: T }>> {
    return (this.events.get(user) ?? []).filter((e): e is Extract<ServerEvent, { t: T }> => e.t === t);
  }
}

export class ManualClock {
  constructor(public ms = 1_700_000_000_000) {}
  now(): number { return this.ms; }
}

export interface Harness {
  engine: Engine;
  store: ChatStore;
  delivery: RecordingDelivery;
  clock: ManualClock;
  as(user: string, device?: string): Client;
  friends(a: string, b: string): Promise<string>;
}

export interface Client {
  who: DeviceSession;
  req<T extends RequestType>(type: T, params: RequestParams<T>): Promise<RequestResult<T>>;
  text(conv: string, text: string, cid?: string): Promise<RequestResult<'send'>>;
}

let sessions = 0;

export function harness(settings: Partial<EngineSettings> = {}, store: ChatStore = new MemoryChatStore(), more: Partial<ChatEngineDeps> = {}): Harness {
  const delivery = new RecordingDelivery();
  const clock = new ManualClock();
  const engine = createChatEngine({ store, presence: new MemoryPresenceRegistry(), delivery, clock, settings, ...more });
  let cids = 0;
  const as = (user: string, device = 'phone'): Client => {
    const who = { user, device, session: `s${++sessions}` };
    return {
      who,
      req: (type, params) => engine.request(who, type, params),
      text: (conv, text, cid = `c${++cids}`) => engine.request(who, 'send', { conv, cid, kind: 'text', body: { text } }),
    };
  };
  const friends = async (a: string, b: string): Promise<string> => {
    await as(a).req('contact.request', { user: b });
    await as(b).req('contact.accept', { user: a });
    return (await as(a).req('conv.direct', { user: b })).conv;
  };
  return { engine, store, delivery, clock, as, friends };
}
