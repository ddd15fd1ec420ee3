// The chat engine: wires the domain services over the ports and dispatches requests by type.
import { LanternError } from '../protocol/errors.ts';
import type { RequestParams, RequestResult, RequestType } from '../protocol/frames.ts';
import { DEFAULT_ENGINE_SETTINGS, type DeviceSession, type Engine, type EngineSettings } from './api.ts';
import { Contacts } from './contacts.ts';
import { ConversationCache } from './conversation-state.ts';
import { ConversationWriter } from './conversation-writer.ts';
import { Conversations, directConversationId, isGroupConversation } from './conversations.ts';
import { Messaging, SendLimit } from './messaging.ts';
import { silentLogger, systemClock, type ChatStore, type Clock, type Delivery, type Logger, type PresenceRegistry, type RateLimiter } from './ports.ts';
import { Presence } from './presence.ts';
import { Sync } from './sync.ts';

export interface ChatEngineDeps {
  store: ChatStore;
  presence: PresenceRegistry;
  delivery: Delivery;
  /** Distributed mode: whether this worker currently owns the conversation's partition (its single
   *  writer). Conversations it does not own are read from the store, never cached. Default: all. */
  ownsConversation?: (conv: string) => boolean;
  /** Messages per user across all their devices (absent: no per-user limit). */
  sendLimiter?: RateLimiter;
  settings?: Partial<EngineSettings>;
  clock?: Clock;
  log?: Logger;
}

type Handler<T extends RequestType> = (who: DeviceSession, params: RequestParams<T>) => Promise<RequestResult<T>>;
type HandlerTable = { [T in RequestType]: Handler<T> };

export function createChatEngine(deps: ChatEngineDeps): Engine {
  const settings: EngineSettings = Object.freeze({ ...DEFAULT_ENGINE_SETTINGS, ...deps.settings });
  const clock = deps.clock ?? systemClock;
  const log = deps.log ?? silentLogger;
  const { store, delivery } = deps;

  const cache = new ConversationCache(store, settings.conversationCacheSize);
  if (deps.ownsConversation) cache.owns = deps.ownsConversation;
  const writer = new ConversationWriter(store, cache, delivery, clock, log);
  const contacts = new Contacts(store, delivery, settings, clock, (a, b) => {
    const state = cache.peek(directConversationId(a, b));
    state?.resetBlocked();
  });
  const sendLimit = deps.sendLimiter ? new SendLimit(deps.sendLimiter, log, clock) : undefined;
  const messaging = new Messaging(store, cache, writer, delivery, settings, clock, sendLimit);
  const conversations = new Conversations(store, cache, writer, delivery, settings, clock);
  const sync = new Sync(store, conversations, settings);
  const presence = new Presence(store, deps.presence, contacts, delivery, clock);

  const limitUsers = (users: string[]): void => {
    if (users.length > settings.maxUsersPerCall) {
      throw new LanternError('too_large', `at most ${settings.maxUsersPerCall} users per call`, { field: 'users' });
    }
  };

  const handlers: HandlerTable = {
    ping: async () => ({ ts: clock.now() }),
    send: (w, p) => messaging.send(w, p),
    recall: (w, p) => messaging.recall(w, p),
    history: (w, p) => messaging.history(w, p),
    sync: (w, p) => sync.sync(w, p),
    read: (w, p) => messaging.read(w, p),
    receipts: (w, p) => messaging.receipts(w, p),
    typing: (w, p) => messaging.typing(w, p),
    presence: (w, p) => { limitUsers(p.users); return presence.query(w, p); },
    'contact.request': (w, p) => contacts.request(w, p),
    'contact.accept': (w, p) => contacts.accept(w, p),
    'contact.remove': (w, p) => contacts.remove(w, p),
    'contact.block': (w, p) => contacts.block(w, p),
    'contact.unblock': (w, p) => contacts.unblock(w, p),
    'contact.list': (w) => contacts.list(w),
    'conv.direct': (w, p) => conversations.direct(w, p),
    'conv.list': (w) => conversations.list(w),
    'conv.info': (w, p) => conversations.describe(w, p),
    'group.create': (w, p) => conversations.createGroup(w, p),
    'group.add': (w, p) => conversations.add(w, p),
    'group.remove': (w, p) => conversations.remove(w, p),
    'group.leave': (w, p) => conversations.leave(w, p),
    'group.role': (w, p) => conversations.setRole(w, p),
  };

  return {
    epoch: store.epoch,
    async request<T extends RequestType>(who: DeviceSession, type: T, params: RequestParams<T>): Promise<RequestResult<T>> {
      const handler = handlers[type] as Handler<T> | undefined;
      if (!handler) throw new LanternError('unknown_type', `unknown request type "${type}"`, { field: 't' });
      return handler(who, params);
    },
    connected: (who) => presence.connected(who),
    disconnected: (who) => presence.disconnected(who),
    refresh: (sessions) => presence.refresh(sessions),
    sweep: () => presence.sweep(),
    forget: (matches) => cache.invalidateWhere(matches),
    groups: async (user) => (await store.listUserConversations(user)).map((m) => m.conv).filter(isGroupConversation),
    close: () => store.close(),
  };
}
