// The chat engine: wires the domain services over the ports and dispatches requests by type.
import { LanternError } from '../protocol/errors.ts';
import type { AdminRequestMap, RequestParams, RequestResult, RequestType } from '../protocol/frames.ts';
import { DEFAULT_ENGINE_SETTINGS, type DeviceSession, type Engine, type EngineSettings } from './api.ts';
import { Contacts } from './contacts.ts';
import { ConversationCache } from './conversation-state.ts';
import { ConversationWriter } from './conversation-writer.ts';
import { Conversations, directConversationId, isGroupConversation } from './conversations.ts';
import { Messaging, SendLimit } from './messaging.ts';
import { silentLogger, systemClock, type ChatStore, type Clock, type Delivery, type Logger, type PresenceRegistry, type RateLimiter } from './ports.ts';
import { Presence } from './presence.ts';
import { Sync } from './sync.ts';
import { Sales, type SaleSignals } from './sales/sales.ts';
import type { SaleStore, StockGate } from './sales/ports.ts';
import { Envelopes } from './wallet/envelopes.ts';
import type { GrabDecider, WalletStore } from './wallet/ports.ts';
import type { RandomInt } from './wallet/split.ts';
import { Transfers } from './wallet/transfers.ts';
import { Wallet } from './wallet/wallet.ts';

export interface ChatEngineDeps {
  store: ChatStore;
  presence: PresenceRegistry;
  delivery: Delivery;
  /** Distributed mode: whether this worker currently owns the conversation's partition (its single
   *  writer). Conversations it does not own are read from the store, never cached. Default: all. */
  ownsConversation?: (conv: string) => boolean;
  /** Messages per user across all their devices (absent: no per-user limit). */
  sendLimiter?: RateLimiter;
  /** Wallet, transfers and red envelopes (absent: those requests answer not_found). */
  wallet?: { store: WalletStore; decider: GrabDecider; random?: RandomInt };
  /** Flash sales (needs the wallet; absent: sale requests answer not_found). */
  sales?: { store: SaleStore; gate: StockGate; signals: SaleSignals; attemptLimiter?: RateLimiter };
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

  const money = deps.wallet && {
    wallet: new Wallet(deps.wallet.store, settings, clock),
    transfers: new Transfers(deps.wallet.store, messaging, delivery, settings, clock, log),
    envelopes: new Envelopes(deps.wallet.store, deps.wallet.decider, cache, messaging, delivery, settings, clock, log, deps.wallet.random),
  };
  const saleService = deps.sales && deps.wallet && new Sales({
    store: deps.sales.store, gate: deps.sales.gate, signals: deps.sales.signals, wallet: deps.wallet.store,
    ...(deps.sales.attemptLimiter ? { attemptLimit: new SendLimit(deps.sales.attemptLimiter, log, clock, 'purchase attempts') } : {}),
    messaging, cache, delivery, settings, clock, log,
  });
  const sales = (): Sales => {
    if (!saleService) throw new LanternError('not_found', 'flash sales are not enabled on this server');
    return saleService;
  };
  const wallet = (): NonNullable<typeof money> => {
    if (!money) throw new LanternError('not_found', 'the wallet is not enabled on this server');
    return money;
  };

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
    'wallet.balance': (w) => wallet().wallet.balance(w),
    'wallet.statement': (w, p) => wallet().wallet.statement(w, p),
    'transfer.send': (w, p) => wallet().transfers.send(w, p),
    'transfer.accept': (w, p) => wallet().transfers.accept(w, p),
    'transfer.return': (w, p) => wallet().transfers.return(w, p),
    'transfer.info': (w, p) => wallet().transfers.info(w, p),
    'envelope.send': (w, p) => wallet().envelopes.send(w, p),
    'envelope.grab': (w, p) => wallet().envelopes.grab(w, p),
    'envelope.info': (w, p) => wallet().envelopes.info(w, p),
    'sale.buy': (w, p) => sales().buy(w, p),
    'sale.pay': (w, p) => sales().pay(w, p),
    'sale.info': (w, p) => sales().info(w, p),
    'sale.orders': (w, p) => sales().orders(w, p),
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
    admin: ((type: keyof AdminRequestMap, params: never) => {
      switch (type) {
        case 'wallet.topup': return wallet().wallet.topup(params);
        case 'sale.create': return sales().create(params);
        case 'sale.orders': return sales().orders(undefined, params);
        default: throw new LanternError('unknown_type', `unknown admin request "${String(type)}"`, { field: 't' });
      }
    }) as Engine['admin'],
    ...(money ? {
      sweepWallet: async () => ({
        envelopes: await money.envelopes.sweep(), transfers: await money.transfers.sweep(), orders: saleService ? await saleService.sweep() : 0,
      }),
    } : {}),
    close: async () => {
      await store.close();
      await deps.wallet?.store.close();
      await deps.sales?.store.close();
    },
  };
}
